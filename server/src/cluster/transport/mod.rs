//! The QUIC transport between nodes: request/response calls over mutual TLS.
//!
//! Each node has one quinn endpoint (one UDP socket) that both accepts and dials. Between two
//! nodes there is one connection, used in both directions: whichever node dialed it, either
//! may call the other over it. Every call is one bidirectional stream (see `rpc.rs`), so calls
//! never queue behind each other the way they would on one TCP stream.
//!
//! Identity comes from the cluster CA ([`super::tls`]): a dialer names the node it means to
//! reach (`node-{id}`, checked against the server's certificate), then says who it is in a
//! Hello ([`hello`]), which the acceptor checks against the client certificate. Nodes of
//! another cluster are refused once both know their cluster id. How two simultaneous dials
//! settle on one connection is in `links.rs`.
//!
//! The transport does not retry calls (a call that may have been handled is reported as
//! [`TransportError::Lost`], never resent), does not know where peers are (the caller passes
//! an address each call), and does not frame anything inside a request or answer.

mod handshake;
pub mod hello;
mod links;
mod rpc;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use quinn::{ConnectionError, IdleTimeout, VarInt};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use self::hello::Hello;
use self::links::{DialError, Fate, Link, Links, Lookup};
use self::rpc::ExchangeError;
use super::tls::ClusterTls;

/// The default limit on one request or answer. Bounds what a peer can make this node buffer
/// per stream; replication batches stay well under it.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;

/// A ping on an otherwise quiet connection this often, so the idle timeout only fires when
/// the peer is really gone.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// A connection with no packets from the peer for this long is dead: a `kill -9`ed or
/// partitioned peer is noticed within it (and the next call redials). Six missed keep-alives
/// on a LAN is not congestion. Also bounds how long a dial to a silent address takes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(6);
const _: () = assert!(KEEP_ALIVE_INTERVAL.as_millis() * 3 <= IDLE_TIMEOUT.as_millis());

/// How long either side waits for the other's Hello on a new connection.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests a peer may have in flight to this node on its connection. More wait in the
/// peer's `open_bi` (backpressure, not an error). quinn's default is 100; the controller and
/// every shard's replication share one connection, so allow a little more. Each request is
/// read whole before its handler runs, so a peer can make this node hold up to this many
/// times `message_bytes_max`: peers are authenticated cluster members, not strangers.
pub const REQUESTS_IN_FLIGHT_MAX: u32 = 256;

/// The largest UDP payload, in bytes, that path MTU discovery probes for and that a node
/// accepts (quinn's defaults: probe up to 1452, accept 1472, which suit the internet). A
/// cluster LAN with jumbo frames (an AWS VPC carries 9001) or a test cluster's loopback
/// carries bigger packets, and QUIC's cost is per packet: raw QUIC on loopback moved 1703
/// MB/s instead of 710 at 0.56/0.53 CPU s/GB (sender/receiver) instead of 1.31/1.15, and
/// over a 9001-byte link 1079 MB/s instead of 466 (`spate bench network-floor`, BENCHMARKS.md).
/// On a 1500-byte link discovery settles where quinn's default does (1466 B seen).
///
/// At most [`GSO_BATCH_BYTES_MAX`] / 10: quinn 0.11 sends up to 10 datagrams per GSO
/// `sendmsg` (its private `MAX_TRANSMIT_SEGMENTS`), and a batch over a UDP datagram's 65,507
/// bytes fails; at 6600 a loopback connection collapses to ~6 MB/s, and at 8952 over a 9001-byte
/// link black-hole detection drops it to 1200-byte packets (380 MB/s).
pub const UDP_PAYLOAD_BYTES_MAX: u16 = 6500;
/// The bytes one GSO send may carry: the largest UDP payload over IPv4.
const GSO_BATCH_BYTES_MAX: u32 = 65_507;
/// Datagrams quinn 0.11 puts in one GSO send (`MAX_TRANSMIT_SEGMENTS` in quinn's connection.rs).
const QUINN_GSO_SEGMENTS_MAX: u32 = 10;
const _: () = assert!(UDP_PAYLOAD_BYTES_MAX as u32 * QUINN_GSO_SEGMENTS_MAX <= GSO_BATCH_BYTES_MAX);
// quinn accepts 1200..=65527 for both settings.
const _: () = assert!(UDP_PAYLOAD_BYTES_MAX >= 1200);

/// Incoming handshakes (TLS and Hello) in progress at once; more are refused. A cluster has
/// few peers, so this only bounds what unauthenticated senders to the UDP port can cost.
pub const HANDSHAKES_IN_FLIGHT_MAX: usize = 64;

/// A duplicate connection (see `links.rs`) is closed once it has been idle for a whole check
/// interval. One second is far above a LAN round trip, so the peer has stopped using it.
const LINGER_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Closes a duplicate connection after this many checks even if it is still busy.
const LINGER_CHECKS_MAX: u32 = 120;

/// Application error codes on the wire.
mod code {
    use quinn::VarInt;

    // Connection close codes.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(0);
    pub const REFUSED: VarInt = VarInt::from_u32(1);
    pub const SUPERSEDED: VarInt = VarInt::from_u32(2);

    // Stream stop and reset codes. quinn stops a dropped, unread stream with 0.
    pub const CANCELLED: VarInt = VarInt::from_u32(0);
    pub const TOO_LARGE: VarInt = VarInt::from_u32(1);
    pub const HANDLER_FAILED: VarInt = VarInt::from_u32(2);
    pub const ANSWER_TOO_LARGE: VarInt = VarInt::from_u32(3);
}

/// Answers the calls peers make to this node.
pub trait RpcHandler: Send + Sync + 'static {
    /// Answers one request from an authenticated peer.
    ///
    /// The future is dropped if the caller gives up (its timeout) or the connection closes.
    fn handle(&self, from: i32, request: Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>>;
}

/// How to start a [`Transport`].
#[derive(Clone)]
pub struct TransportConfig {
    pub node_id: i32,
    pub listen: SocketAddr,
    pub tls: ClusterTls,
    /// The cluster id this node knows, if any: peers of another cluster are refused.
    pub cluster_id: Arc<dyn Fn() -> Option<String> + Send + Sync>,
    pub message_bytes_max: usize,
}

impl TransportConfig {
    /// A config with no cluster id yet and the default message limit.
    pub fn new(node_id: i32, listen: SocketAddr, tls: ClusterTls) -> Self {
        TransportConfig {
            node_id,
            listen,
            tls,
            cluster_id: Arc::new(|| None),
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
        }
    }
}

/// Why the transport could not start, or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "cannot bind the cluster transport on UDP {addr}: {source}; is another node using that \
         port?"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cluster transport misconfigured: {reason}")]
    Config { reason: String },
    #[error("node {peer} at {addr} is unreachable: {reason}")]
    Unreachable {
        peer: i32,
        addr: String,
        reason: String,
    },
    #[error(
        "node {peer} did not answer within {after_ms} ms; check that it is running and not \
         overloaded, then retry"
    )]
    Timeout { peer: i32, after_ms: u64 },
    #[error("call to node {peer} refused: {reason}")]
    Refused { peer: i32, reason: String },
    #[error(
        "the message is over this node's {bytes_max}-byte limit (message_bytes_max); send \
         smaller messages or raise the limit on every node"
    )]
    TooLarge { bytes_max: usize },
    #[error(
        "the connection to node {peer} was lost during the call ({reason}); the request may or \
         may not have been handled"
    )]
    Lost { peer: i32, reason: String },
    #[error("the cluster transport is closed (the node is shutting down)")]
    Closed,
}

/// A node's end of the cluster transport. Cheap to clone; all clones share one endpoint.
///
/// The endpoint, the connections and the handler's futures run on the tokio runtime
/// [`Transport::bind`] was called in. [`Transport::call`] may be awaited from any tokio runtime
/// with timers (a shard's, say). Call [`Transport::close`] at shutdown: a handler that holds a
/// `Transport` keeps it alive otherwise.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    /// The runtime `bind` ran in: the endpoint, connections and handlers run there.
    runtime: tokio::runtime::Handle,
    node_id: i32,
    /// Random per `bind`: tells peers this is a new process.
    incarnation: u64,
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    handler: Arc<dyn RpcHandler>,
    cluster_id: Arc<dyn Fn() -> Option<String> + Send + Sync>,
    message_bytes_max: usize,
    links: Links,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.endpoint.close(code::SHUTDOWN, b"node shutting down");
    }
}

impl Transport {
    /// Binds the UDP socket and starts accepting peers. Must be called inside a tokio runtime.
    pub fn bind(
        config: TransportConfig,
        handler: Arc<dyn RpcHandler>,
    ) -> Result<Transport, TransportError> {
        check_config(&config)?;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TransportError::Config {
                reason: "Transport::bind must be called inside a tokio runtime".to_owned(),
            })?;
        let bind_error = |source| TransportError::Bind {
            addr: config.listen,
            source,
        };
        let socket = std::net::UdpSocket::bind(config.listen).map_err(bind_error)?;
        size_socket_buffers(&socket);
        let tuning = Arc::new(quinn_transport_config());
        let mut server_config = config.tls.server_config();
        server_config.transport_config(tuning.clone());
        let mut client_config = config.tls.client_config();
        client_config.transport_config(tuning);
        let mut endpoint = quinn::Endpoint::new(
            quinn_endpoint_config(),
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_error)?;
        endpoint.set_default_client_config(client_config);
        let local_addr = endpoint.local_addr().map_err(bind_error)?;

        let inner = Arc::new(Inner {
            runtime: runtime.clone(),
            node_id: config.node_id,
            incarnation: new_incarnation(),
            endpoint: endpoint.clone(),
            local_addr,
            handler,
            cluster_id: config.cluster_id,
            message_bytes_max: config.message_bytes_max,
            links: Links::default(),
            closed: AtomicBool::new(false),
        });
        runtime.spawn(accept_loop(Arc::downgrade(&inner), endpoint));
        info!(node_id = config.node_id, %local_addr, "cluster transport listening on UDP {local_addr}");
        Ok(Transport { inner })
    }

    /// The address the endpoint is bound to (the real port if `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Sends `request` to node `peer` (at `addr`, "host:port", resolved with
    /// `tokio::net::lookup_host`) and returns its answer.
    ///
    /// Uses the connection to `peer` if there is one (whichever side dialed it), else dials
    /// `addr`; concurrent calls share one dial. `timeout` covers the dial and the exchange.
    pub async fn call(
        &self,
        peer: i32,
        addr: &str,
        request: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(TransportError::Closed);
        }
        if peer == self.inner.node_id {
            return Err(TransportError::Refused {
                peer,
                reason: "a node does not call itself over the cluster transport".to_owned(),
            });
        }
        if request.len() > self.inner.message_bytes_max {
            return Err(TransportError::TooLarge {
                bytes_max: self.inner.message_bytes_max,
            });
        }
        match tokio::time::timeout(timeout, self.call_within(peer, addr, request)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(TransportError::Timeout {
                peer,
                after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    async fn call_within(
        &self,
        peer: i32,
        addr: &str,
        request: Bytes,
    ) -> Result<Bytes, TransportError> {
        let bytes_max = self.inner.message_bytes_max;
        let link = self.link_to(peer, addr).await?;
        match rpc::exchange(&link, request.clone(), bytes_max).await {
            // The connection closed before the stream opened: nothing was sent, so one retry
            // on a fresh connection is safe.
            Err(ExchangeError::NotSent(reason)) => {
                debug!(
                    peer,
                    "connection to node {peer} closed ({reason}); redialing"
                );
                self.inner.links.forget(peer, &link.conn);
                let link = self.link_to(peer, addr).await?;
                rpc::exchange(&link, request, bytes_max)
                    .await
                    .map_err(|e| self.exchange_error(peer, e))
            }
            result => result.map_err(|e| self.exchange_error(peer, e)),
        }
    }

    /// The connection to `peer`: the live one, or the outcome of a (shared) dial.
    async fn link_to(&self, peer: i32, addr: &str) -> Result<Link, TransportError> {
        let mut receiver = match self.inner.links.lookup(peer) {
            Lookup::Live(link) => return Ok(link),
            Lookup::Join(receiver) => receiver,
            Lookup::Dial(sender, receiver) => {
                let inner = self.inner.clone();
                let dial_addr = addr.to_owned();
                let dial = receiver.clone();
                // On the transport's runtime, not the caller's: the connection outlives the call.
                self.inner.runtime.spawn(async move {
                    let finish = FinishDial {
                        inner: &inner,
                        peer,
                        dial,
                    };
                    let outcome = handshake::dial(&inner, peer, &dial_addr)
                        .await
                        .map(|link| inner.adopt(link));
                    match &outcome {
                        Err(e @ DialError::Refused(_)) => {
                            warn!(peer, addr = %dial_addr, "cannot connect to node {peer}: {e}");
                        }
                        Err(e) => {
                            info!(peer, addr = %dial_addr, "cannot connect to node {peer}: {e}")
                        }
                        Ok(_) => {}
                    }
                    // Later calls use the adopted connection or dial afresh.
                    drop(finish);
                    // Ignored if every caller has given up.
                    let _ = sender.send(Some(outcome));
                });
                receiver
            }
        };
        let outcome = receiver
            .wait_for(Option::is_some)
            .await
            .map(|outcome| outcome.clone());
        match outcome {
            Ok(Some(Ok(link))) => Ok(link),
            Ok(Some(Err(DialError::Unreachable(reason)))) => Err(TransportError::Unreachable {
                peer,
                addr: addr.to_owned(),
                reason,
            }),
            Ok(Some(Err(DialError::Refused(reason)))) => {
                Err(TransportError::Refused { peer, reason })
            }
            Ok(Some(Err(DialError::Closed))) => Err(TransportError::Closed),
            Ok(None) | Err(_) => Err(TransportError::Unreachable {
                peer,
                addr: addr.to_owned(),
                reason: "the dial ended without an outcome (is the runtime shutting down?)"
                    .to_owned(),
            }),
        }
    }

    fn exchange_error(&self, peer: i32, e: ExchangeError) -> TransportError {
        let bytes_max = self.inner.message_bytes_max;
        match e {
            ExchangeError::NotSent(ConnectionError::LocallyClosed)
            | ExchangeError::Lost(ConnectionError::LocallyClosed) => TransportError::Closed,
            ExchangeError::NotSent(reason) | ExchangeError::Lost(reason) => TransportError::Lost {
                peer,
                reason: reason.to_string(),
            },
            ExchangeError::PeerTooLarge => TransportError::Refused {
                peer,
                reason: "it refused the request as over its message_bytes_max".to_owned(),
            },
            ExchangeError::AnswerTooLarge => TransportError::TooLarge { bytes_max },
            ExchangeError::Reset(reset) => TransportError::Refused {
                peer,
                reason: describe_reset(reset),
            },
            ExchangeError::Stream(reason) => TransportError::Lost { peer, reason },
        }
    }

    /// The peers this node has a live connection with (dialed or accepted), in id order.
    pub fn connected_peers(&self) -> Vec<i32> {
        self.inner.links.connected_peers()
    }

    /// Open QUIC connections on this endpoint, including duplicates not yet closed and
    /// connections still in their handshake. For metrics and tests.
    pub fn open_connections(&self) -> usize {
        self.inner.endpoint.open_connections()
    }

    /// Closes the endpoint: every connection is closed (peers see "shutting down"), calls in
    /// flight fail, and new calls return [`TransportError::Closed`].
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner
            .endpoint
            .close(code::SHUTDOWN, b"node shutting down");
    }

    /// Waits until the closed connections' last packets are sent (bounded by quinn's drain
    /// period), so peers learn of the close rather than timing out.
    pub async fn wait_idle(&self) {
        self.inner.endpoint.wait_idle().await;
    }
}

/// Ends a dial when its task ends, whatever the reason (a panic included).
struct FinishDial<'a> {
    inner: &'a Inner,
    peer: i32,
    dial: tokio::sync::watch::Receiver<links::DialOutcome>,
}

impl Drop for FinishDial<'_> {
    fn drop(&mut self) {
        self.inner.links.finish_dial(self.peer, &self.dial);
    }
}

impl Inner {
    fn own_hello(&self) -> Hello {
        Hello {
            node_id: self.node_id,
            incarnation: self.incarnation,
            cluster_id: (self.cluster_id)(),
        }
    }

    /// Registers a verified connection, serves its peer's requests on it, and deals with the
    /// connection it beat (or that beat it). Returns the connection to use for calls.
    fn adopt(self: &Arc<Self>, link: Link) -> Link {
        let adopted = self.links.adopt(self.node_id, link.clone());
        let remote = link.conn.remote_address();
        let (peer, dialed_by) = (link.peer, link.origin.dialed_by);
        match adopted.preferred.conn.stable_id() == link.conn.stable_id() {
            true => info!(peer, %remote, dialed_by, "cluster connection with node {peer} open"),
            false => debug!(peer, %remote, dialed_by, "duplicate connection with node {peer}"),
        }
        self.runtime.spawn(serve(Arc::downgrade(self), link));
        if let Some((loser, fate)) = adopted.loser {
            debug!(
                peer = loser.peer,
                ?fate,
                "two connections with node {}",
                loser.peer
            );
            match fate {
                Fate::CloseNow => loser
                    .conn
                    .close(code::SUPERSEDED, b"superseded by a newer connection"),
                Fate::Linger => {
                    self.runtime.spawn(linger(loser));
                }
                Fate::Leave => {}
            }
        }
        adopted.preferred
    }
}

async fn accept_loop(inner: Weak<Inner>, endpoint: quinn::Endpoint) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX));
    while let Some(incoming) = endpoint.accept().await {
        let Some(inner) = inner.upgrade() else {
            incoming.refuse();
            break;
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            warn!(
                remote = %incoming.remote_address(),
                "refused cluster connection from {}: {HANDSHAKES_IN_FLIGHT_MAX} handshakes in progress",
                incoming.remote_address()
            );
            incoming.refuse();
            continue;
        };
        tokio::spawn(async move {
            handshake::accept(inner, incoming).await;
            drop(permit);
        });
    }
}

/// Serves `link`'s peer until the connection closes, then forgets the connection.
async fn serve(inner: Weak<Inner>, link: Link) {
    let Some((handler, bytes_max)) = inner
        .upgrade()
        .map(|inner| (inner.handler.clone(), inner.message_bytes_max))
    else {
        return;
    };
    let reason = rpc::serve_connection(&link, handler, bytes_max).await;
    if let Some(inner) = inner.upgrade() {
        inner.links.forget(link.peer, &link.conn);
    }
    let peer = link.peer;
    match &reason {
        ConnectionError::LocallyClosed => debug!(peer, "connection with node {peer} closed"),
        ConnectionError::ApplicationClosed(close) if close.error_code == code::SUPERSEDED => {
            debug!(peer, "duplicate connection with node {peer} closed")
        }
        ConnectionError::TimedOut => warn!(
            peer,
            "lost the connection with node {peer}: nothing heard for {IDLE_TIMEOUT:?}"
        ),
        other => info!(peer, "connection with node {peer} closed: {other}"),
    }
}

/// Closes a duplicate connection this node dialed once no stream has used it for a whole
/// check interval.
async fn linger(link: Link) {
    let mut started = link.activity.started();
    for _ in 0..LINGER_CHECKS_MAX {
        tokio::select! {
            () = tokio::time::sleep(LINGER_CHECK_INTERVAL) => {}
            _ = link.conn.closed() => return,
        }
        let started_now = link.activity.started();
        if link.activity.in_flight() == 0 && started_now == started {
            break;
        }
        started = started_now;
    }
    debug!(
        peer = link.peer,
        "closing a duplicate connection with node {}", link.peer
    );
    link.conn.close(
        code::SUPERSEDED,
        b"duplicate connection; using the other one",
    );
}

fn describe_reset(reset: VarInt) -> String {
    match reset {
        code::HANDLER_FAILED => "its handler failed without answering; see its log".to_owned(),
        code::ANSWER_TOO_LARGE => "its answer is over its message_bytes_max".to_owned(),
        code::CANCELLED => "it abandoned the request (shutting down?)".to_owned(),
        other => format!("it reset the request with code {other}"),
    }
}

fn check_config(config: &TransportConfig) -> Result<(), TransportError> {
    let reason = if config.node_id < 0 {
        format!("node id {} is negative", config.node_id)
    } else if config.tls.node_id() != config.node_id {
        format!(
            "node id {} but the TLS identity was loaded for node {}",
            config.node_id,
            config.tls.node_id()
        )
    } else if config.message_bytes_max == 0 {
        "message_bytes_max is 0".to_owned()
    } else {
        return Ok(());
    };
    Err(TransportError::Config { reason })
}

/// quinn settings for a LAN cluster. Flow-control windows stay at quinn's defaults (1.25 MB
/// per stream, 10 MB sent per connection, unlimited connection receive window): enough for
/// bulk replication at LAN round trips, and the stream limit bounds buffering.
///
/// Public so `spate bench network-floor` runs raw QUIC with the settings nodes run.
pub fn quinn_transport_config() -> quinn::TransportConfig {
    let mut config = quinn::TransportConfig::default();
    config.keep_alive_interval(Some(KEEP_ALIVE_INTERVAL));
    let idle_ms = u32::try_from(IDLE_TIMEOUT.as_millis()).unwrap_or(u32::MAX);
    config.max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(idle_ms))));
    config.max_concurrent_bidi_streams(VarInt::from_u32(REQUESTS_IN_FLIGHT_MAX));
    // Calls use bidirectional streams only: refuse the rest.
    config.max_concurrent_uni_streams(VarInt::from_u32(0));
    config.datagram_receive_buffer_size(None);
    let mut discovery = quinn::MtuDiscoveryConfig::default();
    discovery.upper_bound(UDP_PAYLOAD_BYTES_MAX);
    config.mtu_discovery_config(Some(discovery));
    config
}

/// The kernel buffers asked for on the cluster's UDP socket. The default (212 KiB on Linux)
/// overflows while a follower's thread is busy appending a large fetch: datagrams are dropped
/// (`RcvbufErrors`) and every loss halves QUIC's congestion window. The kernel caps the
/// request at `net.core.rmem_max`/`wmem_max`; this node does not change those.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Asks for [`SOCKET_BUFFER_BYTES`] of receive and send buffer; a refusal only costs speed.
fn size_socket_buffers(socket: &std::net::UdpSocket) {
    let socket = socket2::SockRef::from(socket);
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!(error = %e, "cannot size the cluster socket's receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!(error = %e, "cannot size the cluster socket's send buffer");
    }
}

/// quinn endpoint settings: accept UDP payloads up to [`UDP_PAYLOAD_BYTES_MAX`] (the peer's
/// MTU discovery stops at what this node accepts).
///
/// Public so `spate bench network-floor` runs raw QUIC with the settings nodes run.
pub fn quinn_endpoint_config() -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::default();
    // Only refused outside 1200..=65527, which the assertions above rule out.
    let _ = config.max_udp_payload_size(UDP_PAYLOAD_BYTES_MAX);
    config
}

/// Random per process start (and per `bind`), for peers to tell a restart from a redial.
fn new_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish()
}
