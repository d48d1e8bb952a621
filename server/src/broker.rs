//! The broker process: start the engine, reconcile topics, listen on every shard, serve
//! admin HTTP, and shut down cleanly on SIGTERM/SIGINT.
//!
//! Startup order: data dir stamp → engine (recovers logs) → control plane (cluster listener,
//! metadata quorum, active controller) → reconciler (metadata image → local replicas) →
//! registration with the controller → unfenced → listeners → the one `spate listening …`
//! line on stdout. Shutdown runs in reverse: `/health` turns 503, a controlled shutdown
//! moves this broker's leaderships away, acceptors stop, connections answer what they
//! already read, the quorum stops, then the engine flushes and checkpoints every log.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use spate_cluster::records::Endpoint;
use spate_cluster::{NO_LEADER, TopicId};
use spate_engine::{Engine, EngineConfig, ShardContext, ShardId};
use tokio::sync::watch;

use crate::ServerConfig;
use crate::cluster::control::ControlClient;
use crate::cluster::identity::{self, Stamp};
use crate::cluster::lifecycle::{Lifecycle, LifecycleSettings};
use crate::cluster::node;
use crate::cluster::reconcile::Reconciler;
use crate::cluster::replication::{ReplicationContext, ReplicationSettings};
use crate::cluster::status::StatusSource;
use crate::connection::{ConnectionSettings, RequestHandler, serve_connection};
use crate::error::ServerError;
use crate::handlers::Dispatcher;
use crate::handlers::init_producer_id::ProducerIdBlock;
use crate::metadata::MetadataView;
use crate::net::listener::bind_reuseport;

/// How long shutdown waits for connections to answer the requests they already read. Long
/// enough for a Fetch long poll (clients default to 500 ms) and a last fsync.
const SHUTDOWN_DRAIN_MS: u64 = 10_000;
/// How often handlers' idea of the active controller is refreshed from the quorum.
const CONTROLLER_ID_REFRESH_MS: u64 = 100;

/// State shared by every shard's connections. `Send + Sync`; lives until the process exits.
pub struct Broker {
    pub config: ServerConfig,
    pub engine: Engine,
    /// The metadata image this node has applied, as handlers see it.
    pub metadata: Arc<MetadataView>,
    /// Requests to the active controller (topic changes, producer-id blocks), from any shard.
    pub control: ControlClient,
    /// This node's id.
    pub node_id: i32,
    /// Where each consumer group's coordinator lives.
    pub groups: crate::groups::GroupRouter,
    /// Producer ids this node hands out, in blocks from the controller.
    pub producer_ids: ProducerIdBlock,
    connection_count: AtomicUsize,
    shutdown: watch::Receiver<bool>,
}

impl Broker {
    /// A receiver that turns `true` when the broker starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    fn connection_settings(&self) -> ConnectionSettings {
        ConnectionSettings {
            request_size_bytes_max: self.config.request_size_bytes_max as usize,
            in_flight_max: self.config.in_flight_requests_per_connection_max,
            fetch_copy: self.config.fetch_copy,
        }
    }
}

/// Where a started node listens, for the one line `spate serve` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The Kafka listener (brokers only).
    pub kafka: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// The cluster (QUIC) listener, if the node has one.
    pub cluster: Option<SocketAddr>,
}

/// Runs the node until SIGTERM or SIGINT. Blocks the calling thread.
pub fn run(config: ServerConfig) -> Result<(), ServerError> {
    run_until(config, wait_for_termination(), announce)
}

/// Runs the node until `stop` completes. `on_ready` gets the bound addresses once the node
/// serves: for a broker, once the controller has unfenced it (the binary prints them; tests
/// connect to them).
pub fn run_until(
    config: ServerConfig,
    stop: impl Future<Output = ()>,
    on_ready: impl FnOnce(Ready),
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let _lock = identity::lock_data_dir(&config.data_dir)?;
    let stamp = identity::check_and_stamp(
        &config.data_dir,
        config.cluster.node_id,
        config.cluster.cluster_id.as_deref(),
    )?;
    let mut engine_config = EngineConfig::new(config.data_dir.clone());
    engine_config.shard_count = config.cores;
    engine_config.pin_threads = config.pin_threads;
    engine_config.default_log_config = config.log_defaults.clone();
    engine_config.retention_check_interval_ms = config.log_retention_check_interval_ms;
    let engine = Engine::start(engine_config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    runtime.block_on(serve(config, engine, stamp, stop, on_ready))
}

async fn serve(
    config: ServerConfig,
    engine: Engine,
    stamp: Stamp,
    stop: impl Future<Output = ()>,
    on_ready: impl FnOnce(Ready),
) -> Result<(), ServerError> {
    tokio::pin!(stop);
    let node_id = config.cluster.node_id;
    let control = node::start(&config, &engine, &stamp).await?;
    let view = Arc::new(MetadataView::new(node_id));
    let incarnation_id = TopicId::random().to_string();
    let (fatal_tx, mut fatal) = watch::channel(None::<String>);
    let control_client = ControlClient::spawn(control.plane.clone());
    let replication = Arc::new(ReplicationContext {
        node_id,
        engine: engine.clone(),
        view: view.clone(),
        control: control_client.clone(),
        transport: control.transport.clone(),
        settings: ReplicationSettings::from_config(&config.cluster),
    });
    let _ = control.replication.set(replication.clone());
    let mut reconciler = Reconciler::new(
        node_id,
        incarnation_id.clone(),
        engine.clone(),
        view.clone(),
        config.groups.clone(),
        config.data_dir.clone(),
        config.log_defaults.clone(),
    );
    reconciler.replication = Some(replication);
    let images = control.feed.subscribe();
    tokio::spawn(async move {
        if let Err(e) = reconciler.run(images).await {
            fatal_tx.send_replace(Some(e.to_string()));
        }
    });
    tokio::spawn(track_controller(control.plane.clone(), view.clone()));

    let roles = config.cluster.roles;
    let listeners = if roles.broker {
        bind_reuseport(config.listen, engine.shard_count()).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?
    } else {
        Vec::new()
    };
    let kafka_addr = listeners
        .first()
        .map(|l| l.local_addr())
        .transpose()
        .map_err(ServerError::Runtime)?;
    let lifecycle = match kafka_addr {
        Some(kafka_addr) => {
            let (host, port) = config.advertised_address(kafka_addr);
            Some(Lifecycle::spawn(
                control.plane.clone(),
                view.clone(),
                LifecycleSettings {
                    node_id,
                    incarnation_id,
                    kafka: Endpoint { host, port },
                    cluster_addr: node::cluster_address(
                        &config.cluster,
                        control.transport.as_ref(),
                    )
                    .if_empty("-"),
                    rack: config.cluster.rack.clone(),
                    heartbeat_interval: Duration::from_millis(config.cluster.heartbeat_interval_ms),
                },
            ))
        }
        None => None,
    };
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.admin_listen,
            source,
        })?;
    let admin_addr = admin_listener.local_addr().map_err(ServerError::Runtime)?;
    let ready = Arc::new(AtomicBool::new(false));
    let status = Arc::new(StatusSource {
        config: config.cluster.clone(),
        view: view.clone(),
        plane: control.plane.clone(),
        raft: control.raft.clone(),
    });
    let admin = tokio::spawn(crate::admin::serve(
        admin_listener,
        ready.clone(),
        Arc::new(move || status.json()),
    ));

    // A broker serves once the controller has unfenced it: its partitions exist locally and
    // it has caught up with the metadata log.
    if let Some(lifecycle) = &lifecycle {
        let waited = Instant::now();
        tokio::select! {
            _ = lifecycle.unfenced() => {
                tracing::info!(waited_ms = waited.elapsed().as_millis() as u64, "joined the cluster");
            }
            _ = &mut stop => {
                tracing::info!("stopped before joining the cluster");
                admin.abort();
                control.shutdown().await;
                engine.shutdown().await;
                return Ok(());
            }
            reason = fatal.wait_for(Option::is_some) => {
                let reason = reason.ok().and_then(|r| r.clone()).unwrap_or_default();
                admin.abort();
                control.shutdown().await;
                engine.shutdown().await;
                return Err(ServerError::Cluster(reason));
            }
        }
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let broker = Arc::new(Broker {
        producer_ids: ProducerIdBlock::default(),
        node_id,
        groups: crate::groups::GroupRouter::default(),
        metadata: view.clone(),
        control: control_client,
        config,
        engine: engine.clone(),
        connection_count: AtomicUsize::new(0),
        shutdown: shutdown_rx,
    });
    for (index, listener) in listeners.into_iter().enumerate() {
        let broker = broker.clone();
        engine.spawn_on(ShardId(index), move |ctx| {
            Box::pin(accept_connections(ctx.clone(), broker, listener))
        })?;
    }
    ready.store(true, Ordering::Release);
    on_ready(Ready {
        kafka: kafka_addr,
        admin: admin_addr,
        cluster: control.transport.as_ref().map(|t| t.local_addr()),
    });
    tracing::info!(
        node = node_id,
        kafka = ?kafka_addr, admin = %admin_addr, shards = engine.shard_count(),
        data_dir = %broker.config.data_dir.display(), "node serving"
    );

    let failure = tokio::select! {
        _ = &mut stop => None,
        reason = fatal.wait_for(Option::is_some) => Some(reason.ok().and_then(|r| r.clone()).unwrap_or_default()),
    };
    tracing::info!(
        "shutting down: moving leaderships away, answering in-flight requests, then flushing logs"
    );
    ready.store(false, Ordering::Release);
    if let Some(lifecycle) = &lifecycle
        && failure.is_none()
    {
        let timeout = Duration::from_millis(broker.config.cluster.controlled_shutdown_timeout_ms);
        if lifecycle.controlled_shutdown(timeout).await {
            tracing::info!("controlled shutdown done: this broker leads no partition");
        } else {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "controlled shutdown did not finish in time; leaderships move when this broker's session expires"
            );
        }
    }
    shutdown_tx.send_replace(true);
    let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS);
    while broker.connection_count.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    control.shutdown().await;
    engine.shutdown().await;
    admin.abort();
    tracing::info!("shutdown complete");
    match failure {
        Some(reason) => Err(ServerError::Cluster(reason)),
        None => Ok(()),
    }
}

/// Keeps the handlers' idea of the active controller current.
async fn track_controller(
    plane: Arc<crate::cluster::control::ControlPlane>,
    view: Arc<MetadataView>,
) {
    loop {
        view.set_controller_id(plane.leader().unwrap_or(NO_LEADER));
        tokio::time::sleep(Duration::from_millis(CONTROLLER_ID_REFRESH_MS)).await;
    }
}

/// Prints the one startup line tests and scripts parse, and flushes it.
fn announce(ready: Ready) {
    let mut line = String::from("spate listening");
    if let Some(kafka) = ready.kafka {
        line.push_str(&format!(" kafka={kafka}"));
    }
    line.push_str(&format!(" admin={}", ready.admin));
    if let Some(cluster) = ready.cluster {
        line.push_str(&format!(" cluster={cluster}"));
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn wait_for_termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop the broker with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

trait IfEmpty {
    fn if_empty(self, fallback: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, fallback: &str) -> String {
        if self.is_empty() {
            fallback.to_owned()
        } else {
            self
        }
    }
}

/// Accepts connections on one shard until shutdown. Each connection becomes a tracked task
/// on this shard.
async fn accept_connections(
    ctx: ShardContext,
    broker: Arc<Broker>,
    listener: std::net::TcpListener,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(shard = %ctx.shard_id(), error = %e, "cannot register the listener; this shard accepts no connections");
            return;
        }
    };
    let mut shutdown = broker.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed; raise `ulimit -n` if this repeats");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let count = broker.connection_count.fetch_add(1, Ordering::AcqRel);
        let guard = ConnectionSlot(broker.clone());
        if count >= broker.config.connections_max {
            tracing::warn!(%peer, limit = broker.config.connections_max, "connection refused: max.connections reached");
            drop(stream);
            continue;
        }
        let handler: Rc<dyn RequestHandler> = Rc::new(Dispatcher::new(broker.clone(), Some(peer)));
        let settings = broker.connection_settings();
        let shutdown = broker.shutdown_signal();
        ctx.spawn(async move {
            let _slot = guard;
            if let Err(e) = serve_connection(stream, handler, settings, shutdown).await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
}

/// Holds one of the `max.connections` slots; frees it when the connection ends.
struct ConnectionSlot(Arc<Broker>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connection_count.fetch_sub(1, Ordering::AcqRel);
    }
}
