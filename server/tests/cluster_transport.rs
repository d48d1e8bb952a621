//! The cluster transport between nodes in one process, on 127.0.0.1 with real QUIC and mutual
//! TLS: who may call whom, one connection per pair used both ways, message limits, timeouts,
//! and peers that restart or crash.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use spate_server::cluster::certs::{write_ca, write_node_cert};
use spate_server::cluster::tls::ClusterTls;
use spate_server::cluster::transport::hello::{Hello, HelloKind};
use spate_server::cluster::transport::{RpcHandler, Transport, TransportConfig, TransportError};

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A refusal must come from a handshake, not from waiting out a timeout.
const REFUSAL_TIME_MAX: Duration = Duration::from_secs(2);

/// A CA with certificates for nodes 1 to 4, and a foreign CA with one for node 3.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_ca(dir.path()).unwrap();
        for node in 1..=4 {
            write_node_cert(dir.path(), node, dir.path()).unwrap();
        }
        let foreign = dir.path().join("foreign");
        write_ca(&foreign).unwrap();
        write_node_cert(&foreign, 3, &foreign).unwrap();
        Certs { dir }
    }

    fn tls(&self, node: i32) -> ClusterTls {
        self.tls_from(self.dir.path(), node)
    }

    fn foreign_tls(&self, node: i32) -> ClusterTls {
        self.tls_from(&self.dir.path().join("foreign"), node)
    }

    fn tls_from(&self, dir: &Path, node: i32) -> ClusterTls {
        let file = |ext: &str| -> PathBuf { dir.join(format!("node-{node}.{ext}")) };
        ClusterTls::load(&dir.join("ca.pem"), &file("pem"), &file("key"), node).unwrap()
    }
}

/// Answers `hang` never, `big:N` with N bytes, anything else with a line naming both nodes.
struct Node {
    id: i32,
    callers: Mutex<Vec<i32>>,
    hang_dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl RpcHandler for Node {
    fn handle(&self, from: i32, request: Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>> {
        self.callers.lock().unwrap().push(from);
        let id = self.id;
        if &request[..] == b"hang" {
            let flag = SetOnDrop(self.hang_dropped.clone());
            return Box::pin(async move {
                let _flag = flag;
                std::future::pending::<()>().await;
                Bytes::new()
            });
        }
        if let Some(len) = request.strip_prefix(b"big:") {
            let len: usize = std::str::from_utf8(len).unwrap().parse().unwrap();
            return Box::pin(async move { pattern(len) });
        }
        Box::pin(async move {
            let text = String::from_utf8_lossy(&request);
            Bytes::from(format!("node {id} answers node {from}: {text}"))
        })
    }
}

fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn node(id: i32) -> Arc<Node> {
    Arc::new(Node {
        id,
        callers: Mutex::new(Vec::new()),
        hang_dropped: Arc::new(AtomicBool::new(false)),
    })
}

fn config(id: i32, tls: ClusterTls) -> TransportConfig {
    TransportConfig::new(id, "127.0.0.1:0".parse().unwrap(), tls)
}

fn with_cluster(mut config: TransportConfig, cluster_id: &str) -> TransportConfig {
    let cluster_id = cluster_id.to_owned();
    config.cluster_id = Arc::new(move || Some(cluster_id.clone()));
    config
}

fn start(config: TransportConfig) -> (Transport, Arc<Node>) {
    let handler = node(config.node_id);
    let transport = Transport::bind(config, handler.clone()).unwrap();
    (transport, handler)
}

fn addr(transport: &Transport) -> String {
    transport.local_addr().to_string()
}

async fn call(
    from: &Transport,
    to: i32,
    at: &Transport,
    request: &str,
) -> Result<Bytes, TransportError> {
    from.call(to, &addr(at), Bytes::from(request.to_owned()), CALL_TIMEOUT)
        .await
}

/// Polls `condition` every 50 ms until it holds or `within` passes.
async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_answered_and_the_peer_calls_back_over_the_same_connection() {
    let certs = Certs::new();
    let (one, one_node) = start(config(1, certs.tls(1)));
    let (two, two_node) = start(config(2, certs.tls(2)));

    let answer = call(&one, 2, &two, "hello").await.unwrap();
    assert_eq!(&answer[..], b"node 2 answers node 1: hello");
    assert_eq!(*two_node.callers.lock().unwrap(), vec![1]);

    // Node 2 is given an address where nothing listens: only the connection node 1 opened
    // can carry this call.
    let nowhere = "127.0.0.1:9";
    let answer = two
        .call(1, nowhere, Bytes::from_static(b"back"), CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(&answer[..], b"node 1 answers node 2: back");
    assert_eq!(*one_node.callers.lock().unwrap(), vec![2]);
    assert_eq!(one.open_connections(), 1);
    assert_eq!(two.open_connections(), 1);
    assert_eq!(one.connected_peers(), vec![2]);
    assert_eq!(two.connected_peers(), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dialed_from_another_runtime_outlives_that_runtime() {
    let certs = Certs::new();
    let (one, _) = start(config(1, certs.tls(1)));
    let (two, _) = start(config(2, certs.tls(2)));

    // A shard-like caller: its own current-thread runtime, on its own thread, then gone.
    let (caller, two_addr) = (one.clone(), addr(&two));
    let answer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(caller.call(
            2,
            &two_addr,
            Bytes::from_static(b"from a shard"),
            CALL_TIMEOUT,
        ))
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(&answer[..], b"node 2 answers node 1: from a shard");

    // The connection lives on node 1's transport runtime, so it is still there.
    call(&one, 2, &two, "again").await.unwrap();
    assert_eq!((one.open_connections(), two.open_connections()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_first_calls_settle_on_one_connection() {
    let certs = Certs::new();
    let (one, _) = start(config(1, certs.tls(1)));
    let (two, _) = start(config(2, certs.tls(2)));
    for round in 0..3 {
        let (a, b) = tokio::join!(call(&one, 2, &two, "ping"), call(&two, 1, &one, "ping"));
        a.unwrap();
        b.unwrap();
        if round == 0 {
            // Both dials may have completed: the duplicate is closed once idle.
            assert!(
                eventually(Duration::from_secs(5), || one.open_connections() == 1
                    && two.open_connections() == 1)
                .await,
                "still {} and {} connections",
                one.open_connections(),
                two.open_connections()
            );
        }
    }
    assert_eq!((one.open_connections(), two.open_connections()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_foreign_ca_certificate_can_neither_call_nor_be_called() {
    let certs = Certs::new();
    let (one, one_node) = start(config(1, certs.tls(1)));
    let (stranger, stranger_node) = start(config(3, certs.foreign_tls(3)));

    let started = Instant::now();
    let error = call(&stranger, 1, &one, "let me in").await.unwrap_err();
    assert!(
        started.elapsed() < REFUSAL_TIME_MAX,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, TransportError::Refused { peer: 1, .. }),
        "{error}"
    );

    let started = Instant::now();
    let error = call(&one, 3, &stranger, "who are you").await.unwrap_err();
    assert!(
        started.elapsed() < REFUSAL_TIME_MAX,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, TransportError::Refused { peer: 3, .. }),
        "{error}"
    );

    assert!(one_node.callers.lock().unwrap().is_empty());
    assert!(stranger_node.callers.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_holding_node_4s_certificate_that_claims_id_2_is_refused() {
    let certs = Certs::new();
    let (one, one_node) = start(config(1, certs.tls(1)));

    // A Transport refuses to start with that mix-up...
    let error = Transport::bind(config(2, certs.tls(4)), node(2))
        .err()
        .unwrap();
    assert!(matches!(error, TransportError::Config { .. }), "{error}");

    // ...so speak the protocol by hand, as a misbehaving node would.
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(certs.tls(4).client_config());
    let conn = endpoint
        .connect(one.local_addr(), "node-1")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let hello = Hello {
        node_id: 2,
        incarnation: 1,
        cluster_id: None,
    };
    send.write_all(&hello.encode(HelloKind::Hello).unwrap())
        .await
        .unwrap();
    send.finish().unwrap();
    // The refusal is the connection's close reason; the stream may be reset just before it.
    let error = recv.read_to_end(1024).await.unwrap_err();
    let quinn::ConnectionError::ApplicationClosed(close) = conn.closed().await else {
        panic!(
            "expected a refusal, got {error} and {:?}",
            conn.close_reason()
        );
    };
    let reason = String::from_utf8_lossy(&close.reason);
    assert_eq!(reason, "its certificate is for node-4, not node 2");
    assert!(one_node.callers.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialing_node_2_where_node_3_listens_is_refused() {
    let certs = Certs::new();
    let (one, _) = start(config(1, certs.tls(1)));
    let (three, three_node) = start(config(3, certs.tls(3)));

    let started = Instant::now();
    let error = one
        .call(2, &addr(&three), Bytes::from_static(b"hi"), CALL_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < REFUSAL_TIME_MAX,
        "took {:?}",
        started.elapsed()
    );
    let TransportError::Refused { peer: 2, reason } = &error else {
        panic!("expected a refusal, got {error}");
    };
    assert!(
        reason.contains("node-2") && reason.contains("node-3"),
        "{reason}"
    );
    assert!(three_node.callers.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_different_clusters_refuse_each_other() {
    let certs = Certs::new();
    let (one, one_node) = start(with_cluster(config(1, certs.tls(1)), "blue"));
    let (two, two_node) = start(with_cluster(config(2, certs.tls(2)), "green"));

    for (from, to, at) in [(&one, 2, &two), (&two, 1, &one)] {
        let error = call(from, to, at, "hi").await.unwrap_err();
        let TransportError::Refused { reason, .. } = &error else {
            panic!("expected a refusal, got {error}");
        };
        assert!(
            reason.contains("is in cluster blue") && reason.contains("is in cluster green"),
            "{reason}"
        );
    }
    assert!(one_node.callers.lock().unwrap().is_empty());
    assert!(two_node.callers.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_know_its_cluster_yet_is_accepted_either_way() {
    let certs = Certs::new();
    let (one, _) = start(with_cluster(config(1, certs.tls(1)), "blue"));
    let (two, _) = start(config(2, certs.tls(2)));
    let (three, _) = start(config(3, certs.tls(3)));

    call(&one, 2, &two, "from a known cluster").await.unwrap();
    call(&three, 1, &one, "to a known cluster").await.unwrap();
    call(&two, 3, &three, "neither knows").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_mib_answer_arrives_intact() {
    let certs = Certs::new();
    let (one, _) = start(config(1, certs.tls(1)));
    let (two, _) = start(config(2, certs.tls(2)));
    let len = 16 * 1024 * 1024;
    let answer = call(&one, 2, &two, &format!("big:{len}")).await.unwrap();
    assert_eq!(answer.len(), len);
    assert!(answer == pattern(len), "the answer's bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_is_an_error_and_the_peer_keeps_serving() {
    let certs = Certs::new();
    let limit = 1024 * 1024;
    let (one, _) = start(config(1, certs.tls(1)));
    let mut small = config(2, certs.tls(2));
    small.message_bytes_max = limit;
    let (two, two_node) = start(small);

    // Over the peer's limit: the peer refuses it.
    let request = pattern(limit + 1);
    let error = one
        .call(2, &addr(&two), request, CALL_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, TransportError::Refused { peer: 2, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("message_bytes_max"), "{error}");
    assert!(two_node.callers.lock().unwrap().is_empty());

    // Over the caller's own limit: refused before sending, whichever way.
    let error = two
        .call(1, &addr(&one), pattern(limit + 1), CALL_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, TransportError::TooLarge { bytes_max } if bytes_max == limit),
        "{error}"
    );
    let error = call(&two, 1, &one, &format!("big:{}", limit + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(error, TransportError::TooLarge { bytes_max } if bytes_max == limit),
        "{error}"
    );

    // And everyone keeps serving.
    call(&one, 2, &two, "still there?").await.unwrap();
    call(&two, 1, &one, "still there?").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_never_answers_times_out_and_others_still_work() {
    let certs = Certs::new();
    let (one, _) = start(config(1, certs.tls(1)));
    let (two, two_node) = start(config(2, certs.tls(2)));

    let timeout = Duration::from_millis(300);
    let two_addr = addr(&two);
    let (hung, answered) = tokio::join!(
        one.call(2, &two_addr, Bytes::from_static(b"hang"), timeout),
        call(&one, 2, &two, "quick")
    );
    assert!(
        matches!(
            hung,
            Err(TransportError::Timeout {
                peer: 2,
                after_ms: 300
            })
        ),
        "{hung:?}"
    );
    answered.unwrap();
    // The caller's giving up reaches the peer, which drops the handler's future.
    let dropped = two_node.hang_dropped.clone();
    assert!(eventually(Duration::from_secs(2), || dropped.load(Ordering::SeqCst)).await);
    call(&one, 2, &two, "after").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_restarted_on_the_same_port_is_redialed() {
    let certs = Certs::new();
    let (one, _) = start(config(1, certs.tls(1)));
    let (two, _) = start(config(2, certs.tls(2)));
    let two_addr = two.local_addr();
    call(&one, 2, &two, "before").await.unwrap();

    two.close();
    two.wait_idle().await;
    drop(two);
    let two = bind_when_free(TransportConfig::new(2, two_addr, certs.tls(2))).await;

    let started = Instant::now();
    let answer = call(&one, 2, &two, "after").await.unwrap();
    assert_eq!(&answer[..], b"node 2 answers node 1: after");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // The old connection drains away (quinn keeps a closed one for three probe timeouts).
    assert!(eventually(Duration::from_secs(2), || one.open_connections() == 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_peer_that_restarts_and_calls_first_replaces_its_old_connection() {
    let certs = Certs::new();
    let (one, _) = start(config(1, certs.tls(1)));
    let relay = crash_node_2_behind_a_relay(&certs, &one).await;
    let (two, _) = start(config(2, certs.tls(2)));
    relay.forward_to(two.local_addr());

    // Node 1 has not noticed the crash (nothing reached it), but the new process's connection
    // replaces the old one as soon as its Hello arrives.
    call(&two, 1, &one, "I am back").await.unwrap();
    let started = Instant::now();
    let answer = one
        .call(
            2,
            &relay.addr.to_string(),
            Bytes::from_static(b"welcome back"),
            CALL_TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(&answer[..], b"node 2 answers node 1: welcome back");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert!(eventually(Duration::from_secs(2), || one.open_connections() == 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_peer_is_noticed_within_the_idle_timeout_and_redialed() {
    let certs = Certs::new();
    let (one, _) = start(config(1, certs.tls(1)));
    let relay = crash_node_2_behind_a_relay(&certs, &one).await;
    let (two, _) = start(config(2, certs.tls(2)));
    relay.forward_to(two.local_addr());

    // Calls over the dead connection fail until the idle timeout; then node 1 redials.
    let started = Instant::now();
    let mut failures = 0;
    loop {
        let attempt = one
            .call(
                2,
                &relay.addr.to_string(),
                Bytes::from_static(b"anyone?"),
                Duration::from_millis(500),
            )
            .await;
        match attempt {
            Ok(_) => break,
            Err(_) if started.elapsed() < Duration::from_secs(9) => failures += 1,
            Err(error) => panic!("no answer after {:?}: {error}", started.elapsed()),
        }
    }
    assert!(
        failures > 0,
        "the first call should have used the dead connection"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "noticed after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_an_address_where_nothing_listens_time_out() {
    let certs = Certs::new();
    let (one, _) = start(config(1, certs.tls(1)));
    let error = one
        .call(
            2,
            "127.0.0.1:9",
            Bytes::from_static(b"hi"),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Timeout {
                peer: 2,
                after_ms: 300
            }
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_transport_refuses_calls() {
    let certs = Certs::new();
    let (one, _) = start(config(1, certs.tls(1)));
    let (two, _) = start(config(2, certs.tls(2)));
    call(&one, 2, &two, "before").await.unwrap();
    one.close();
    let error = call(&one, 2, &two, "after").await.unwrap_err();
    assert!(matches!(error, TransportError::Closed), "{error}");
}

/// Starts node 2 behind a relay, has node 1 call it through the relay, then cuts the relay
/// and closes node 2: its goodbye never arrives, as if it had been `kill -9`ed. The relay
/// drops everything until [`Relay::forward_to`] puts a new node behind it.
async fn crash_node_2_behind_a_relay(certs: &Certs, one: &Transport) -> Relay {
    let (two, _) = start(config(2, certs.tls(2)));
    let relay = Relay::start(two.local_addr()).await;
    let answer = one
        .call(
            2,
            &relay.addr.to_string(),
            Bytes::from_static(b"before"),
            CALL_TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(&answer[..], b"node 2 answers node 1: before");
    relay.cut();
    two.close();
    two.wait_idle().await;
    relay
}

/// A UDP relay for one client: what arrives at `addr` goes to the backend, and the backend's
/// answers go back to the client. With no backend, everything is dropped.
struct Relay {
    addr: std::net::SocketAddr,
    backend: Arc<Mutex<Option<std::net::SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(backend: std::net::SocketAddr) -> Relay {
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        let backend = Arc::new(Mutex::new(Some(backend)));
        let task = tokio::spawn(relay(front, back, backend.clone()));
        Relay {
            addr,
            backend,
            task,
        }
    }

    fn cut(&self) {
        *self.backend.lock().unwrap() = None;
    }

    fn forward_to(&self, backend: std::net::SocketAddr) {
        *self.backend.lock().unwrap() = Some(backend);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    front: tokio::net::UdpSocket,
    back: tokio::net::UdpSocket,
    backend: Arc<Mutex<Option<std::net::SocketAddr>>>,
) {
    let mut client = None;
    let (mut from_client, mut from_backend) = (vec![0; 65536], vec![0; 65536]);
    loop {
        tokio::select! {
            Ok((len, sender)) = front.recv_from(&mut from_client) => {
                client = Some(sender);
                let target = *backend.lock().unwrap();
                if let Some(target) = target {
                    let _ = back.send_to(&from_client[..len], target).await;
                }
            }
            Ok((len, sender)) = back.recv_from(&mut from_backend) => {
                let target = *backend.lock().unwrap();
                if let (Some(client), true) = (client, target == Some(sender)) {
                    let _ = front.send_to(&from_backend[..len], client).await;
                }
            }
        }
    }
}

/// Binds `config`, retrying while its port is still held by the previous endpoint.
async fn bind_when_free(config: TransportConfig) -> Transport {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match Transport::bind(config.clone(), node(config.node_id)) {
            Ok(transport) => return transport,
            Err(TransportError::Bind { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot bind again: {error}"),
        }
    }
}
