//! A userspace UDP relay between the nodes' cluster (QUIC) ports that can delay packets: the
//! slow-link nemesis. This kernel has no netem, so delay cannot be a qdisc.
//!
//! Each node gets a front socket on the bridge address; the nodes are told (through
//! `--controller-voters` and `--cluster-advertised-listen`) that their peers live at those
//! fronts. A datagram from node J to node K's front is sent on to K's real cluster address from
//! an upstream socket kept per source, so K's answers come back on it and are relayed to J from
//! K's front. QUIC authenticates peers by certificate, not by address, so the relay is
//! invisible to the nodes; it only adds `delay_ms` (plus up to `jitter_ms`, which reorders) to
//! every datagram while a delay is set. With no delay a datagram is relayed at once.
//!
//! What it does not do: drop, duplicate or corrupt (nft does loss); shape bandwidth. Every
//! socket has a read timeout, so the threads see the stop flag and end when the proxy drops.

use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::NodeId;

/// How often a relay thread looks at the stop flag.
const READ_TIMEOUT_MS: u64 = 100;
/// Larger than any QUIC datagram (at most 1,500 bytes on this bridge).
const DATAGRAM_BYTES_MAX: usize = 65_536;

/// A datagram waiting for its release time.
struct Delayed {
    due: Instant,
    order: u64,
    bytes: Vec<u8>,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    /// Reversed: the heap's top is the earliest due datagram.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.order).cmp(&(self.due, self.order))
    }
}

/// The relay; its threads stop when it is dropped.
pub struct DelayProxy {
    fronts: HashMap<NodeId, SocketAddr>,
    delay_ms: Arc<AtomicU64>,
    jitter_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DelayProxy {
    /// Binds one front per node on `bind` (the bridge address). Relaying starts once
    /// [`DelayProxy::start`] knows where each node's cluster port is.
    pub fn bind(
        bind: Ipv4Addr,
        node_ids: &[NodeId],
    ) -> std::io::Result<(DelayProxy, Vec<(NodeId, UdpSocket)>)> {
        let mut sockets = Vec::new();
        let mut fronts = HashMap::new();
        for id in node_ids {
            let socket = UdpSocket::bind((bind, 0))?;
            fronts.insert(*id, socket.local_addr()?);
            sockets.push((*id, socket));
        }
        let proxy = DelayProxy {
            fronts,
            delay_ms: Arc::new(AtomicU64::new(0)),
            jitter_ms: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        Ok((proxy, sockets))
    }

    /// Node `id`'s front address, which the other nodes dial.
    pub fn front(&self, id: NodeId) -> Option<SocketAddr> {
        self.fronts.get(&id).copied()
    }

    /// Starts relaying each front socket to its node's real cluster address.
    pub fn start(
        &mut self,
        fronts: Vec<(NodeId, UdpSocket)>,
        backends: &HashMap<NodeId, SocketAddr>,
    ) -> std::io::Result<()> {
        let (queue, released) = mpsc::channel::<Delayed>();
        let stop = Arc::clone(&self.stop);
        self.threads
            .push(std::thread::spawn(move || release_loop(&released, &stop)));
        for (id, socket) in fronts {
            let Some(backend) = backends.get(&id).copied() else {
                continue;
            };
            socket.set_read_timeout(Some(Duration::from_millis(READ_TIMEOUT_MS)))?;
            let relay = FrontRelay {
                front: Arc::new(socket),
                backend,
                upstreams: Arc::new(Mutex::new(HashMap::new())),
                queue: queue.clone(),
                delay_ms: Arc::clone(&self.delay_ms),
                jitter_ms: Arc::clone(&self.jitter_ms),
                stop: Arc::clone(&self.stop),
            };
            self.threads.push(std::thread::spawn(move || relay.run()));
        }
        Ok(())
    }

    /// Delays every datagram by `delay_ms` plus a random share of `jitter_ms` from now on.
    pub fn set_delay(&self, delay_ms: u64, jitter_ms: u64) {
        self.delay_ms.store(delay_ms, Ordering::Relaxed);
        self.jitter_ms.store(jitter_ms, Ordering::Relaxed);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One node's front: datagrams from peers go to the node, its answers back to each peer.
struct FrontRelay {
    front: Arc<UdpSocket>,
    backend: SocketAddr,
    /// Per source peer, the socket its datagrams reach the node from.
    upstreams: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
    queue: mpsc::Sender<Delayed>,
    delay_ms: Arc<AtomicU64>,
    jitter_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl FrontRelay {
    fn run(self) {
        let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX];
        let mut order = 0u64;
        let mut answer_threads = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let Ok((length, source)) = self.front.recv_from(&mut buffer) else {
                continue;
            };
            let upstream = {
                let Ok(mut upstreams) = self.upstreams.lock() else {
                    return;
                };
                match upstreams.get(&source) {
                    Some(upstream) => Arc::clone(upstream),
                    None => {
                        let Ok(socket) = UdpSocket::bind((self.front_ip(), 0)) else {
                            continue;
                        };
                        let _ =
                            socket.set_read_timeout(Some(Duration::from_millis(READ_TIMEOUT_MS)));
                        let socket = Arc::new(socket);
                        upstreams.insert(source, Arc::clone(&socket));
                        answer_threads.push(self.spawn_answers(Arc::clone(&socket), source));
                        socket
                    }
                }
            };
            order += 1;
            self.send(upstream, self.backend, buffer[..length].to_vec(), order);
        }
        for thread in answer_threads {
            let _ = thread.join();
        }
    }

    fn front_ip(&self) -> std::net::IpAddr {
        self.front
            .local_addr()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip())
    }

    /// Relays what the node answers on `upstream` back to `peer`, from the front.
    fn spawn_answers(&self, upstream: Arc<UdpSocket>, peer: SocketAddr) -> JoinHandle<()> {
        let relay = FrontRelay {
            front: Arc::clone(&self.front),
            backend: self.backend,
            upstreams: Arc::clone(&self.upstreams),
            queue: self.queue.clone(),
            delay_ms: Arc::clone(&self.delay_ms),
            jitter_ms: Arc::clone(&self.jitter_ms),
            stop: Arc::clone(&self.stop),
        };
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; DATAGRAM_BYTES_MAX];
            let mut order = 1u64 << 62;
            while !relay.stop.load(Ordering::Relaxed) {
                let Ok((length, from)) = upstream.recv_from(&mut buffer) else {
                    continue;
                };
                if from != relay.backend {
                    continue;
                }
                order += 1;
                relay.send(
                    Arc::clone(&relay.front),
                    peer,
                    buffer[..length].to_vec(),
                    order,
                );
            }
        })
    }

    fn send(&self, socket: Arc<UdpSocket>, to: SocketAddr, bytes: Vec<u8>, order: u64) {
        let delay_ms = self.delay_ms.load(Ordering::Relaxed);
        if delay_ms == 0 {
            let _ = socket.send_to(&bytes, to);
            return;
        }
        let jitter_ms = self.jitter_ms.load(Ordering::Relaxed);
        let extra_ms = if jitter_ms == 0 {
            0
        } else {
            cheap_random(order) % jitter_ms
        };
        let due = Instant::now() + Duration::from_millis(delay_ms + extra_ms);
        let _ = self.queue.send(Delayed {
            due,
            order,
            bytes,
            socket,
            to,
        });
    }
}

/// Sends each queued datagram at its due time.
fn release_loop(queued: &mpsc::Receiver<Delayed>, stop: &AtomicBool) {
    let mut heap = BinaryHeap::new();
    while !stop.load(Ordering::Relaxed) {
        let wait = heap
            .peek()
            .map_or(Duration::from_millis(READ_TIMEOUT_MS), |next: &Delayed| {
                next.due.saturating_duration_since(Instant::now())
            });
        match queued.recv_timeout(wait.min(Duration::from_millis(READ_TIMEOUT_MS))) {
            Ok(datagram) => heap.push(datagram),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|next| next.due <= now) {
            if let Some(datagram) = heap.pop() {
                let _ = datagram.socket.send_to(&datagram.bytes, datagram.to);
            }
        }
    }
}

/// A splitmix64 step: jitter needs spread, not quality, and no dependency.
fn cheap_random(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_are_relayed_both_ways_and_delayed_when_asked() {
        let ids = [1];
        let (mut proxy, fronts) = DelayProxy::bind(Ipv4Addr::LOCALHOST, &ids).unwrap();
        let node = UdpSocket::bind("127.0.0.1:0").unwrap();
        node.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let backends = HashMap::from([(1, node.local_addr().unwrap())]);
        proxy.start(fronts, &backends).unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let front = proxy.front(1).unwrap();
        let mut buffer = [0u8; 16];
        peer.send_to(b"ping", front).unwrap();
        let (length, relayed_from) = node.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], b"ping");
        node.send_to(b"pong", relayed_from).unwrap();
        let (length, from) = peer.recv_from(&mut buffer).unwrap();
        assert_eq!((&buffer[..length], from), (&b"pong"[..], front));
        proxy.set_delay(300, 0);
        let sent = Instant::now();
        peer.send_to(b"slow", front).unwrap();
        let (length, _) = node.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], b"slow");
        assert!(
            sent.elapsed() >= Duration::from_millis(280),
            "{:?}",
            sent.elapsed()
        );
    }
}
