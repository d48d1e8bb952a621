//! The broker process: start the engine, reconcile topics, listen on every shard, serve
//! admin HTTP, and shut down cleanly on SIGTERM/SIGINT.
//!
//! Startup order: engine (recovers logs) → metadata → reconcile → listeners → admin → the
//! one `spate listening …` line on stdout. Shutdown runs in reverse: `/health` turns 503,
//! acceptors stop, connections stop reading and answer what they already read, then the
//! engine flushes and checkpoints every log.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use spate_engine::{Engine, EngineConfig, LogConfig, ShardContext, ShardId, TopicPartition};
use tokio::sync::watch;

use crate::ServerConfig;
use crate::connection::{ConnectionSettings, RequestHandler, serve_connection};
use crate::error::ServerError;
use crate::handlers::Dispatcher;
use crate::metadata::{MetadataStore, Topic};
use crate::net::listener::bind_reuseport;

/// How long shutdown waits for connections to answer the requests they already read. Long
/// enough for a Fetch long poll (clients default to 500 ms) and a last fsync.
const SHUTDOWN_DRAIN_MS: u64 = 10_000;

/// State shared by every shard's connections. `Send + Sync`; lives until the process exits.
pub struct Broker {
    pub config: ServerConfig,
    pub engine: Engine,
    pub metadata: MetadataStore,
    /// Serializes admin operations (create/delete/alter) so check-then-act is atomic. Never
    /// taken on the produce or fetch path.
    pub admin_lock: tokio::sync::Mutex<()>,
    /// Host and port that Metadata advertises.
    pub advertised: (String, u16),
    /// The node id of this single node.
    pub node_id: i32,
    /// Stable for the life of the data dir (derived from its first topic id) — see
    /// [`cluster_id`].
    pub cluster_id: String,
    /// Where each consumer group's coordinator lives.
    pub groups: crate::groups::GroupRouter,
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

/// Runs the broker until SIGTERM or SIGINT. Blocks the calling thread.
pub fn run(config: ServerConfig) -> Result<(), ServerError> {
    run_until(config, wait_for_termination(), announce)
}

/// Runs the broker until `stop` completes. `on_ready` gets the bound Kafka and admin
/// addresses once both listen (the binary prints them; tests connect to them).
pub fn run_until(
    config: ServerConfig,
    stop: impl Future<Output = ()>,
    on_ready: impl FnOnce(SocketAddr, SocketAddr),
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let mut engine_config = EngineConfig::new(config.data_dir.clone());
    engine_config.shard_count = config.cores;
    engine_config.pin_threads = config.pin_threads;
    engine_config.default_log_config = config.log_defaults.clone();
    engine_config.retention_check_interval_ms = config.log_retention_check_interval_ms;
    let engine = Engine::start(engine_config)?;
    let metadata = MetadataStore::open(&config.data_dir, config.log_defaults.clone())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    runtime.block_on(serve(config, engine, metadata, stop, on_ready))
}

async fn serve(
    config: ServerConfig,
    engine: Engine,
    metadata: MetadataStore,
    stop: impl Future<Output = ()>,
    on_ready: impl FnOnce(SocketAddr, SocketAddr),
) -> Result<(), ServerError> {
    reconcile(&engine, &metadata).await?;
    let groups = crate::groups::start(&engine, &metadata, &config).await;
    let listeners = bind_reuseport(config.listen, engine.shard_count()).map_err(|source| {
        ServerError::Bind {
            addr: config.listen,
            source,
        }
    })?;
    let kafka_addr = listeners
        .first()
        .map(|l| l.local_addr())
        .transpose()
        .map_err(ServerError::Runtime)?
        .unwrap_or(config.listen);
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.admin_listen,
            source,
        })?;
    let admin_addr = admin_listener.local_addr().map_err(ServerError::Runtime)?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let broker = Arc::new(Broker {
        advertised: config.advertised_address(kafka_addr),
        cluster_id: cluster_id(&config.data_dir),
        node_id: 0,
        groups,
        config,
        engine: engine.clone(),
        metadata,
        admin_lock: tokio::sync::Mutex::new(()),
        connection_count: AtomicUsize::new(0),
        shutdown: shutdown_rx,
    });
    for (index, listener) in listeners.into_iter().enumerate() {
        let broker = broker.clone();
        engine.spawn_on(ShardId(index), move |ctx| {
            Box::pin(accept_connections(ctx.clone(), broker, listener))
        })?;
    }
    let ready = Arc::new(AtomicBool::new(false));
    let admin = tokio::spawn(crate::admin::serve(admin_listener, ready.clone()));
    ready.store(true, Ordering::Release);
    on_ready(kafka_addr, admin_addr);
    tracing::info!(
        kafka = %kafka_addr, admin = %admin_addr, shards = engine.shard_count(),
        data_dir = %broker.config.data_dir.display(), "broker serving"
    );

    stop.await;
    tracing::info!("shutting down: answering in-flight requests, then flushing logs");
    ready.store(false, Ordering::Release);
    shutdown_tx.send_replace(true);
    let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS);
    while broker.connection_count.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.shutdown().await;
    admin.abort();
    tracing::info!("shutdown complete");
    Ok(())
}

/// Prints the one startup line tests and scripts parse, and flushes it.
fn announce(kafka: SocketAddr, admin: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "spate listening kafka={kafka} admin={admin}");
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

/// Makes the engine's partitions match the metadata: creates missing partitions, applies
/// each topic's config, and adopts partitions the metadata does not know (a lost or older
/// metadata file must never make the broker delete data).
async fn reconcile(engine: &Engine, metadata: &MetadataStore) -> Result<(), ServerError> {
    let existing: HashSet<TopicPartition> =
        engine.partitions().into_iter().map(|(tp, _)| tp).collect();
    let image = metadata.image();
    for topic in image.topics() {
        let mut missing = Vec::new();
        for partition in 0..topic.partition_count {
            let tp = TopicPartition::new(topic.name.clone(), partition);
            if existing.contains(&tp) {
                engine.set_config(&tp, topic.log_config.clone()).await?;
            } else {
                missing.push(tp);
            }
        }
        create_all(engine, missing, topic.log_config.clone()).await?;
    }
    let mut orphans: BTreeMap<Arc<str>, i32> = BTreeMap::new();
    for tp in &existing {
        if image.topic(&tp.topic).is_none() {
            let count = orphans.entry(tp.topic.clone()).or_default();
            *count = (*count).max(tp.partition + 1);
        }
    }
    for (name, partition_count) in orphans {
        tracing::warn!(topic = %name, partition_count, "adopting partitions found on disk but missing from the metadata");
        let topic: Topic = metadata.new_topic(&name, partition_count, BTreeMap::new())?;
        let missing: Vec<TopicPartition> = (0..partition_count)
            .map(|partition| TopicPartition::new(name.clone(), partition))
            .filter(|tp| !existing.contains(tp))
            .collect();
        create_all(engine, missing, topic.log_config.clone()).await?;
        metadata.insert_topic(topic)?;
    }
    Ok(())
}

/// Creates `tps` in one engine call; fails with the first partition that could not be
/// created.
async fn create_all(
    engine: &Engine,
    tps: Vec<TopicPartition>,
    log_config: LogConfig,
) -> Result<(), ServerError> {
    if tps.is_empty() {
        return Ok(());
    }
    for outcome in engine.create_partitions(tps, log_config).await? {
        outcome?;
    }
    Ok(())
}

/// A cluster id for DescribeCluster/Metadata: stable per data dir, from a file created once.
fn cluster_id(data_dir: &std::path::Path) -> String {
    let path = data_dir.join("cluster-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() && id.len() <= 64 {
            return id.to_owned();
        }
    }
    let id = crate::metadata::TopicId::random().to_string();
    if let Err(e) = std::fs::write(&path, &id) {
        tracing::warn!(error = %e, path = %path.display(), "cannot persist the cluster id");
    }
    id
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
