//! Opening a connection: the TLS handshake (quinn and rustls), then the Hello exchange on the
//! connection's first stream, from the dialer's side ([`dial`]) and the acceptor's
//! ([`accept`]).
//!
//! The acceptor reads nothing but the Hello until the dialer's identity is proven, so no
//! request is served on a connection whose Hello has not completed.

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{ConnectError, ConnectionError, ReadError, ReadToEndError};
use rustls_pki_types::CertificateDer;
use tracing::{debug, warn};

use super::hello::{HELLO_BYTES_MAX, Hello, HelloKind};
use super::links::{DialError, Link, Origin};
use super::rpc::ResetOnDrop;
use super::{HELLO_TIMEOUT, IDLE_TIMEOUT, Inner, code};
use crate::cluster::certs::node_dns_name;
use crate::cluster::tls::verify_peer_node;

/// Resolved addresses looked at per dial.
const RESOLVED_ADDRS_MAX: usize = 16;

/// Why a Hello exchange failed.
enum HelloFailure {
    /// This side refuses the other: close the connection with this reason.
    Refuse(String),
    /// The connection closed under the exchange (the other side may have refused).
    Connection(ConnectionError),
}

/// Connects to node `peer` at `addr` and exchanges Hellos. The connection is not adopted yet.
pub(super) async fn dial(inner: &Inner, peer: i32, addr: &str) -> Result<Link, DialError> {
    let remote = resolve(addr, inner.local_addr).await?;
    // rustls checks the server's certificate for this name: another node at `addr` is refused.
    let connecting = inner
        .endpoint
        .connect(remote, &node_dns_name(peer))
        .map_err(|e| match e {
            ConnectError::EndpointStopping => DialError::Closed,
            other => DialError::Unreachable(other.to_string()),
        })?;
    let conn = connecting
        .await
        .map_err(|e| dial_error(&e, remote, "during the handshake"))?;
    let ack = match tokio::time::timeout(HELLO_TIMEOUT, hello_as_dialer(inner, &conn, peer)).await {
        Ok(Ok(ack)) => ack,
        Ok(Err(HelloFailure::Refuse(reason))) => {
            conn.close(code::REFUSED, reason.as_bytes());
            return Err(DialError::Refused(reason));
        }
        Ok(Err(HelloFailure::Connection(e))) => {
            return Err(dial_error(&e, remote, "during the hello"));
        }
        Err(_elapsed) => {
            conn.close(code::REFUSED, b"no hello answer in time");
            return Err(DialError::Unreachable(format!(
                "{remote} did not answer the hello within {HELLO_TIMEOUT:?}"
            )));
        }
    };
    let origin = Origin {
        dialed_by: inner.node_id,
        peer_incarnation: ack.incarnation,
    };
    Ok(Link::new(conn, peer, origin))
}

async fn hello_as_dialer(
    inner: &Inner,
    conn: &quinn::Connection,
    peer: i32,
) -> Result<Hello, HelloFailure> {
    // Also checked by rustls against the server name; this keeps the rule in one place.
    verify_peer_node(&peer_certificates(conn), peer)
        .map_err(|e| HelloFailure::Refuse(format!("node {peer}'s side: {e}")))?;
    let hello = inner.own_hello();
    let bytes = hello
        .encode(HelloKind::Hello)
        .map_err(|e| HelloFailure::Refuse(format!("this node's hello: {e}")))?;
    let (send, mut recv) = conn.open_bi().await.map_err(HelloFailure::Connection)?;
    let mut send = ResetOnDrop::new(send, code::CANCELLED);
    send.write_all(&bytes).await.map_err(|e| match e {
        quinn::WriteError::ConnectionLost(e) => HelloFailure::Connection(e),
        other => HelloFailure::Refuse(format!("the hello stream failed: {other}")),
    })?;
    send.finish();
    let answer = recv
        .read_to_end(HELLO_BYTES_MAX)
        .await
        .map_err(read_failure)?;
    let ack = Hello::decode(HelloKind::Ack, &answer)
        .map_err(|e| HelloFailure::Refuse(format!("its hello answer is malformed: {e}")))?;
    if ack.node_id != peer {
        return Err(HelloFailure::Refuse(format!(
            "the node at {} answered as node {}, not node {peer}",
            conn.remote_address(),
            ack.node_id
        )));
    }
    if let Some(reason) = cluster_mismatch(&ack, &hello) {
        return Err(HelloFailure::Refuse(reason));
    }
    Ok(ack)
}

/// A stranger retrying keeps being refused; one line per address per this interval says so
/// without flooding the log (a misconfigured node redials several times a second).
const REFUSAL_LOG_INTERVAL_MS: u64 = 10_000;
/// Addresses whose refusals are being counted; past this many the table starts over, so
/// a scan from many addresses cannot grow it without bound.
const REFUSAL_LOG_ADDRESSES_MAX: usize = 1024;

static REFUSALS: std::sync::Mutex<
    Option<std::collections::HashMap<std::net::IpAddr, (std::time::Instant, u64)>>,
> = std::sync::Mutex::new(None);

/// Whether to log a refusal of `remote` now; `Some(n)` counts the refusals of that address
/// not logged since its last line.
fn refusal_to_log(remote: std::net::SocketAddr) -> Option<u64> {
    let mut guard = REFUSALS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let table = guard.get_or_insert_with(std::collections::HashMap::new);
    if table.len() >= REFUSAL_LOG_ADDRESSES_MAX {
        table.clear();
    }
    let now = std::time::Instant::now();
    let entry = table.entry(remote.ip()).or_insert((now, 0));
    if entry.1 > 0
        && now.duration_since(entry.0) < std::time::Duration::from_millis(REFUSAL_LOG_INTERVAL_MS)
    {
        entry.1 += 1;
        return None;
    }
    let suppressed = entry.1.saturating_sub(1);
    *entry = (now, 1);
    Some(suppressed)
}

/// Completes an incoming connection: the TLS handshake, then the dialer's Hello. On success
/// the connection is adopted and served; otherwise it is closed with the reason, which is also
/// logged.
pub(super) async fn accept(inner: Arc<Inner>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        // This node's TLS refused the dialer (its certificate, usually).
        Err(ConnectionError::TransportError(e)) => {
            if let Some(more) = refusal_to_log(remote) {
                warn!(%remote, more, "refused cluster connection from {remote}: {e}");
            }
            return;
        }
        // The dialer's TLS refused this node.
        Err(ConnectionError::ConnectionClosed(close)) => {
            warn!(%remote, "cluster connection from {remote} failed: it refused this node: {close}");
            return;
        }
        Err(e) => {
            debug!(%remote, "cluster connection from {remote} failed during the handshake: {e}");
            return;
        }
    };
    match tokio::time::timeout(HELLO_TIMEOUT, hello_as_acceptor(&inner, &conn)).await {
        Ok(Ok(())) => {}
        Ok(Err(HelloFailure::Refuse(reason))) => {
            if let Some(more) = refusal_to_log(remote) {
                warn!(%remote, more, "refused cluster connection from {remote}: {reason}");
            }
            conn.close(code::REFUSED, reason.as_bytes());
        }
        Ok(Err(HelloFailure::Connection(e))) => {
            debug!(%remote, "cluster connection from {remote} closed before its hello: {e}");
        }
        Err(_elapsed) => {
            let reason = format!("no hello within {HELLO_TIMEOUT:?}");
            warn!(%remote, "refused cluster connection from {remote}: {reason}");
            conn.close(code::REFUSED, reason.as_bytes());
        }
    }
}

async fn hello_as_acceptor(
    inner: &Arc<Inner>,
    conn: &quinn::Connection,
) -> Result<(), HelloFailure> {
    let (send, mut recv) = conn.accept_bi().await.map_err(HelloFailure::Connection)?;
    let mut send = ResetOnDrop::new(send, code::CANCELLED);
    let bytes = recv
        .read_to_end(HELLO_BYTES_MAX)
        .await
        .map_err(read_failure)?;
    let hello = Hello::decode(HelloKind::Hello, &bytes)
        .map_err(|e| HelloFailure::Refuse(format!("malformed hello: {e}")))?;
    let claimed = hello.node_id;
    verify_peer_node(&peer_certificates(conn), claimed)
        .map_err(|e| HelloFailure::Refuse(e.to_string()))?;
    if claimed == inner.node_id {
        return Err(HelloFailure::Refuse(format!(
            "it claims node id {claimed}, the id of the node it dialed; do two nodes share id \
             {claimed}?"
        )));
    }
    let own = inner.own_hello();
    if let Some(reason) = cluster_mismatch(&hello, &own) {
        return Err(HelloFailure::Refuse(reason));
    }
    let ack = own
        .encode(HelloKind::Ack)
        .map_err(|e| HelloFailure::Refuse(format!("the acceptor's hello: {e}")))?;
    // Adopt before answering: once the dialer has the answer it may rely on this side knowing
    // the connection (see `links`).
    let origin = Origin {
        dialed_by: claimed,
        peer_incarnation: hello.incarnation,
    };
    inner.adopt(Link::new(conn.clone(), claimed, origin));
    send.write_all(&ack).await.map_err(|e| match e {
        quinn::WriteError::ConnectionLost(e) => HelloFailure::Connection(e),
        other => HelloFailure::Refuse(format!("the hello stream failed: {other}")),
    })?;
    send.finish();
    Ok(())
}

/// A refusal reason if `theirs` and `ours` both know their cluster and it differs.
fn cluster_mismatch(theirs: &Hello, ours: &Hello) -> Option<String> {
    match (&theirs.cluster_id, &ours.cluster_id) {
        (Some(their_cluster), Some(our_cluster)) if their_cluster != our_cluster => Some(format!(
            "node {} is in cluster {their_cluster}; node {} is in cluster {our_cluster}",
            theirs.node_id, ours.node_id
        )),
        _ => None,
    }
}

/// The peer's certificate chain as TLS verified it (empty if it somehow has none).
fn peer_certificates(conn: &quinn::Connection) -> Vec<CertificateDer<'static>> {
    conn.peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|certs| *certs)
        .unwrap_or_default()
}

fn read_failure(e: ReadToEndError) -> HelloFailure {
    match e {
        ReadToEndError::TooLong => {
            HelloFailure::Refuse(format!("the hello is over {HELLO_BYTES_MAX} bytes"))
        }
        ReadToEndError::Read(ReadError::ConnectionLost(e)) => HelloFailure::Connection(e),
        ReadToEndError::Read(other) => {
            HelloFailure::Refuse(format!("the hello stream failed: {other}"))
        }
    }
}

/// What a failed connection means to the dialer.
pub(super) fn dial_error(e: &ConnectionError, remote: SocketAddr, when: &str) -> DialError {
    match e {
        ConnectionError::ApplicationClosed(close) if close.error_code == code::REFUSED => {
            DialError::Refused(format!(
                "{remote} refused this node's connection: {}",
                String::from_utf8_lossy(&close.reason)
            ))
        }
        ConnectionError::ApplicationClosed(close) if close.error_code == code::SHUTDOWN => {
            DialError::Unreachable(format!("{remote} is shutting down"))
        }
        ConnectionError::ApplicationClosed(close) => {
            DialError::Unreachable(format!("{remote} closed the connection {when}: {close}"))
        }
        // The peer's TLS refused this node (its certificate, usually).
        ConnectionError::ConnectionClosed(close) => DialError::Refused(format!(
            "{remote} refused this node's connection {when}: {close}; is this node's \
             certificate from the cluster's CA?"
        )),
        // This node's TLS refused the peer (its certificate, usually).
        ConnectionError::TransportError(e) => DialError::Refused(format!(
            "this node refused {remote} {when}: {e}; is the right node listening at that \
             address, with a certificate from the cluster's CA?"
        )),
        ConnectionError::TimedOut => DialError::Unreachable(format!(
            "no answer from {remote} {when} within {IDLE_TIMEOUT:?}; is the node running and \
             UDP open to it?"
        )),
        ConnectionError::Reset => {
            DialError::Unreachable(format!("{remote} reset the connection (did it restart?)"))
        }
        ConnectionError::LocallyClosed => DialError::Closed,
        other => DialError::Unreachable(format!("{remote} {when}: {other}")),
    }
}

/// The first address `addr` resolves to, preferring the family this node's socket uses.
async fn resolve(addr: &str, local: SocketAddr) -> Result<SocketAddr, DialError> {
    let resolved = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| DialError::Unreachable(format!("cannot resolve {addr:?}: {e}")))?;
    let mut first = None;
    for candidate in resolved.take(RESOLVED_ADDRS_MAX) {
        if candidate.is_ipv4() == local.is_ipv4() {
            return Ok(candidate);
        }
        first.get_or_insert(candidate);
    }
    first.ok_or_else(|| DialError::Unreachable(format!("{addr:?} resolves to no address")))
}
