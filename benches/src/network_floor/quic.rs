//! The QUIC paths: a throwaway cluster CA, endpoints with the cluster's TLS and quinn
//! settings, a raw stream, and the cluster transport's calls.
//!
//! The certificates are made by `spate_server::cluster::certs` and loaded by
//! `spate_server::cluster::tls::ClusterTls`, and the quinn settings start from the transport's
//! own (transport and endpoint), so the crypto, the flow control and the packet sizes are what
//! nodes run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use quinn::VarInt;
use quinn::congestion::{BbrConfig, ControllerFactory, CubicConfig, NewRenoConfig};
use serde::{Deserialize, Serialize};
use spate_server::cluster::certs::{node_dns_name, write_ca, write_node_cert};
use spate_server::cluster::tls::ClusterTls;
use spate_server::cluster::transport::{
    self, MESSAGE_BYTES_MAX_DEFAULT, RpcHandler, Transport, TransportConfig,
};

use crate::BenchError;
use crate::args::{CongestionArg, QuicOverrides};
use crate::metrics::Meter;

/// The node id of the client process (the bench) in the throwaway cluster.
pub const CLIENT_NODE: i32 = 1;
/// The node id of the server process (the peer).
pub const SERVER_NODE: i32 = 2;

/// A call slower than this fails the path. Far above a 64 MiB answer on any loopback, so
/// it only fires when the peer is gone.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The request of every call: a few bytes, as a replica fetch's is small beside its answer.
const FETCH_REQUEST: &[u8] = b"fetch";

/// A temporary directory with a cluster CA and the certificates of both nodes; removed on drop.
pub struct CertDir {
    path: PathBuf,
}

impl CertDir {
    pub fn create() -> Result<CertDir, BenchError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = CertDir {
            path: std::env::temp_dir().join(format!(
                "spate-bench-network-floor-{}-{nanos}",
                std::process::id()
            )),
        };
        let setup = |e: spate_server::cluster::certs::CertError| BenchError::Setup(e.to_string());
        write_ca(&dir.path).map_err(setup)?;
        for node in [CLIENT_NODE, SERVER_NODE] {
            write_node_cert(&dir.path, node, &dir.path).map_err(setup)?;
        }
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Node `node`'s TLS identity from a [`CertDir`]'s files.
pub fn tls(certs: &Path, node: i32) -> Result<ClusterTls, BenchError> {
    let name = node_dns_name(node);
    ClusterTls::load(
        &certs.join(spate_server::cluster::certs::CA_CERT_FILE),
        &certs.join(format!("{name}.pem")),
        &certs.join(format!("{name}.key")),
        node,
    )
    .map_err(|e| BenchError::Setup(e.to_string()))
}

/// The cluster transport's quinn settings with `overrides` applied.
pub fn quinn_config(overrides: &QuicOverrides) -> quinn::TransportConfig {
    let mut config = transport::quinn_transport_config();
    if let Some(congestion) = overrides.quic_congestion {
        let factory: Arc<dyn ControllerFactory + Send + Sync> = match congestion {
            CongestionArg::Cubic => Arc::new(CubicConfig::default()),
            CongestionArg::NewReno => Arc::new(NewRenoConfig::default()),
            CongestionArg::Bbr => Arc::new(BbrConfig::default()),
        };
        config.congestion_controller_factory(factory);
    }
    let varint = |bytes: u64| VarInt::from_u64(bytes).unwrap_or(VarInt::MAX);
    if let Some(window) = overrides.quic_stream_window {
        config.stream_receive_window(varint(window.bytes()));
    }
    if let Some(window) = overrides.quic_receive_window {
        config.receive_window(varint(window.bytes()));
    }
    if let Some(window) = overrides.quic_send_window {
        config.send_window(window.bytes());
    }
    if let Some(mtu) = overrides.quic_initial_mtu {
        config.initial_mtu(mtu);
    }
    if overrides.quic_no_mtu_discovery {
        config.mtu_discovery_config(None);
    } else if let Some(bound) = overrides.quic_mtu_upper_bound {
        let mut discovery = quinn::MtuDiscoveryConfig::default();
        discovery.upper_bound(bound);
        config.mtu_discovery_config(Some(discovery));
    }
    if let Some(threshold) = overrides.quic_ack_threshold {
        let mut acks = quinn::AckFrequencyConfig::default();
        acks.ack_eliciting_threshold(VarInt::from_u32(threshold));
        config.ack_frequency_config(Some(acks));
    }
    if overrides.quic_no_gso {
        config.enable_segmentation_offload(false);
    }
    config
}

/// A quinn endpoint on 127.0.0.1 with node `tls`'s identity; it accepts when `serve`.
pub fn endpoint(
    tls: &ClusterTls,
    serve: bool,
    overrides: &QuicOverrides,
) -> Result<quinn::Endpoint, BenchError> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    if let Some(bytes) = overrides.udp_buffer_bytes {
        set_buffer_bytes(&socket, bytes.bytes_usize())?;
    }
    let tuning = Arc::new(quinn_config(overrides));
    let server = serve.then(|| {
        let mut server = tls.server_config();
        server.transport_config(tuning.clone());
        server
    });
    let mut endpoint_config = transport::quinn_endpoint_config();
    if let Some(bytes) = overrides.quic_max_udp_payload {
        endpoint_config
            .max_udp_payload_size(bytes)
            .map_err(|e| BenchError::Setup(format!("--quic-max-udp-payload {bytes}: {e}")))?;
    }
    let mut endpoint = quinn::Endpoint::new(
        endpoint_config,
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    let mut client = tls.client_config();
    client.transport_config(tuning);
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}

fn set_buffer_bytes(socket: &std::net::UdpSocket, bytes: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: a valid socket fd and a c_int option value of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What quinn-udp finds the kernel offers on a loopback UDP socket.
#[derive(Debug, Clone, Serialize)]
pub struct Offload {
    /// Datagrams one `sendmsg` may carry with UDP GSO (1: no GSO).
    pub gso_segments_max: usize,
    /// Datagrams one receive may coalesce with UDP GRO (1: no GRO).
    pub gro_segments: usize,
}

pub fn offload() -> std::io::Result<Offload> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let state = quinn::udp::UdpSocketState::new((&socket).into())?;
    Ok(Offload {
        gso_segments_max: state.max_gso_segments(),
        gro_segments: state.gro_segments(),
    })
}

/// One end's view of a connection over the whole run (warm-up included).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuicStats {
    pub udp_tx_datagrams: u64,
    pub udp_tx_ios: u64,
    /// (quinn counts a receive "io" per datagram, not per system call, so there is no
    /// receive-side batching figure here.)
    pub udp_rx_datagrams: u64,
    /// UDP datagrams per send system call: above 1 only with GSO.
    pub datagrams_per_send_io: f64,
    pub sent_packets: u64,
    pub lost_packets: u64,
    pub congestion_events: u64,
    pub cwnd_bytes: u64,
    pub rtt_us: u64,
    pub mtu_bytes: u16,
    pub acks_sent: u64,
    pub acks_received: u64,
    pub max_stream_data_sent: u64,
}

impl From<quinn::ConnectionStats> for QuicStats {
    fn from(stats: quinn::ConnectionStats) -> Self {
        let per = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        QuicStats {
            udp_tx_datagrams: stats.udp_tx.datagrams,
            udp_tx_ios: stats.udp_tx.ios,
            udp_rx_datagrams: stats.udp_rx.datagrams,
            datagrams_per_send_io: per(stats.udp_tx.datagrams, stats.udp_tx.ios),
            sent_packets: stats.path.sent_packets,
            lost_packets: stats.path.lost_packets,
            congestion_events: stats.path.congestion_events,
            cwnd_bytes: stats.path.cwnd,
            rtt_us: u64::try_from(stats.path.rtt.as_micros()).unwrap_or(u64::MAX),
            mtu_bytes: stats.path.current_mtu,
            acks_sent: stats.frame_tx.acks,
            acks_received: stats.frame_rx.acks,
            max_stream_data_sent: stats.frame_tx.max_stream_data,
        }
    }
}

/// Raw QUIC, client side: one connection, one stream, `message` written until `stop`.
/// Returns the connection's stats.
pub async fn send_raw(
    addr: SocketAddr,
    certs: PathBuf,
    overrides: QuicOverrides,
    message: Bytes,
    meter: Arc<Meter>,
    stop: Arc<AtomicBool>,
) -> Result<Option<QuicStats>, String> {
    let tls = tls(&certs, CLIENT_NODE).map_err(|e| e.to_string())?;
    let endpoint = endpoint(&tls, false, &overrides).map_err(|e| e.to_string())?;
    let connection = endpoint
        .connect(addr, &node_dns_name(SERVER_NODE))
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| format!("QUIC handshake with the peer: {e}"))?;
    let (mut send, _recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    while !stop.load(Ordering::Relaxed) {
        send.write_chunk(message.clone())
            .await
            .map_err(|e| e.to_string())?;
        meter.add(message.len() as u64, 1);
    }
    let stats = QuicStats::from(connection.stats());
    let _ = send.finish();
    connection.close(VarInt::from_u32(0), b"done");
    Ok(Some(stats))
}

/// Raw QUIC, server side: accepts connections and reads every stream to its end, discarding
/// the bytes. The latest connection is kept in `latest` for its stats.
pub async fn receive_raw(endpoint: quinn::Endpoint, latest: Arc<Mutex<Option<quinn::Connection>>>) {
    while let Some(incoming) = endpoint.accept().await {
        let Ok(connection) = incoming.await else {
            continue;
        };
        if let Ok(mut latest) = latest.lock() {
            *latest = Some(connection.clone());
        }
        tokio::spawn(async move {
            while let Ok((_send, mut recv)) = connection.accept_bi().await {
                tokio::spawn(async move {
                    while let Ok(Some(_chunk)) = recv.read_chunk(usize::MAX, true).await {}
                });
            }
        });
    }
}

/// The transport limit for `message_bytes` answers: the default, or more for larger ones.
fn message_bytes_max(message_bytes: usize) -> usize {
    message_bytes.max(MESSAGE_BYTES_MAX_DEFAULT)
}

/// Answers every call with the same message, as a leader answers a fetch with log bytes
/// (without the disk: this is the floor).
struct Answer(Bytes);

impl RpcHandler for Answer {
    fn handle(&self, _from: i32, _request: Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>> {
        let answer = self.0.clone();
        Box::pin(async move { answer })
    }
}

/// Transport calls, server side: answers each call with `message`.
pub fn serve_calls(certs: &Path, message: Bytes) -> Result<Transport, BenchError> {
    let mut config = TransportConfig::new(
        SERVER_NODE,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        tls(certs, SERVER_NODE)?,
    );
    config.message_bytes_max = message_bytes_max(message.len());
    Transport::bind(config, Arc::new(Answer(message))).map_err(|e| BenchError::Setup(e.to_string()))
}

/// Transport calls, client side: `concurrency` callers issue calls back to back until `stop`
/// (or until one fails, which stops them all).
pub async fn call(
    addr: SocketAddr,
    certs: PathBuf,
    message_bytes: usize,
    concurrency: usize,
    meter: Arc<Meter>,
    stop: Arc<AtomicBool>,
) -> Result<Option<QuicStats>, String> {
    let mut config = TransportConfig::new(
        CLIENT_NODE,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        tls(&certs, CLIENT_NODE).map_err(|e| e.to_string())?,
    );
    config.message_bytes_max = message_bytes_max(message_bytes);
    let transport =
        Transport::bind(config, Arc::new(Answer(Bytes::new()))).map_err(|e| e.to_string())?;
    let addr = addr.to_string();
    let callers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (transport, addr) = (transport.clone(), addr.clone());
            let (meter, stop) = (meter.clone(), stop.clone());
            tokio::spawn(async move {
                let request = Bytes::from_static(FETCH_REQUEST);
                while !stop.load(Ordering::Relaxed) {
                    match transport
                        .call(SERVER_NODE, &addr, request.clone(), CALL_TIMEOUT)
                        .await
                    {
                        Ok(answer) => meter.add(answer.len() as u64, 1),
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e.to_string());
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    let mut outcome = Ok(None);
    for caller in callers {
        let result = caller.await.unwrap_or_else(|e| Err(e.to_string()));
        if let (Err(e), Ok(_)) = (result, &outcome) {
            outcome = Err(e);
        }
    }
    transport.close();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throwaway_certificates_load_as_both_nodes_and_are_removed() {
        let dir = CertDir::create().unwrap();
        let path = dir.path().to_path_buf();
        assert_eq!(tls(&path, CLIENT_NODE).unwrap().node_id(), CLIENT_NODE);
        assert_eq!(tls(&path, SERVER_NODE).unwrap().node_id(), SERVER_NODE);
        drop(dir);
        assert!(!path.exists());
    }
}
