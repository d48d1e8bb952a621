//! The shard threads and the bounded queues that are the only way into them.
//!
//! `ShardSet` is `Send + Sync` and cheap to share: it holds a queue sender per shard. Each
//! shard thread is pinned, runs a tokio `current_thread` runtime with a `LocalSet`, owns an
//! [`IoDriver`], and pulls jobs from its queue. A job is a closure that runs on the shard and
//! returns a `!Send` future; the reply crosses back on a oneshot channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::affinity;
use super::context::ShardContext;
use super::panic_guard::{PanicGuard, panic_message};
use super::{LocalBoxFuture, ShardError, ShardId};
use crate::uring::IoDriver;

/// Default depth of each shard's inbound call queue. A call costs a few µs to dispatch, so
/// 1024 queued calls is ~ms of work: deep enough that bursts from every other shard do not
/// block their senders, shallow enough that an overloaded shard pushes back on its callers
/// within milliseconds instead of buffering without bound.
pub const CROSS_SHARD_QUEUE_DEPTH: usize = 1024;

/// How long shutdown waits for a shard's tasks to finish before dropping them. Long enough for
/// an in-flight group commit (a few fdatasyncs), short enough that a stuck connection cannot
/// hold the process open.
pub const SHUTDOWN_GRACE_MS: u64 = 5_000;

thread_local! {
    /// The shard this thread runs, so shutdown never joins the thread it is running on.
    static CURRENT_SHARD: std::cell::Cell<Option<ShardId>> = const { std::cell::Cell::new(None) };
    /// This shard's context, for calls a shard makes to itself (they skip the queue).
    static CURRENT_CONTEXT: std::cell::RefCell<Option<ShardContext>> =
        const { std::cell::RefCell::new(None) };
}

/// The shard the calling thread belongs to, if it is a shard thread.
pub fn current_shard() -> Option<ShardId> {
    CURRENT_SHARD.with(std::cell::Cell::get)
}

/// How to start the shard threads.
#[derive(Debug, Clone)]
pub struct ShardSetConfig {
    /// 0 = one per CPU this process may run on.
    pub shard_count: usize,
    /// Pin shard `i` to the `i`-th allowed CPU. Failure to pin is a warning.
    pub pin_threads: bool,
    /// Capacity of each shard's inbound queue; see [`CROSS_SHARD_QUEUE_DEPTH`].
    pub queue_depth: usize,
}

impl Default for ShardSetConfig {
    fn default() -> Self {
        Self {
            shard_count: 0,
            pin_threads: true,
            queue_depth: CROSS_SHARD_QUEUE_DEPTH,
        }
    }
}

type Job = Box<dyn FnOnce(&ShardContext) + Send>;

enum ShardMessage {
    Run(Job),
    /// Raise the shard's shutdown signal so its long-lived tasks start finishing. Sent to all
    /// shards first, so their grace periods overlap instead of adding up.
    Signal,
    Stop,
}

struct ShardHandle {
    sender: mpsc::Sender<ShardMessage>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

/// Runs once on each shard before it serves calls (the engine recovers partitions here).
pub type ShardInit =
    Arc<dyn Fn(&ShardContext) -> LocalBoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The running shards. Dropping it without [`ShardSet::shutdown`] stops them too.
pub struct ShardSet {
    shards: Vec<ShardHandle>,
    accepting: AtomicBool,
}

impl ShardSet {
    /// Starts the shard threads, runs `init` on each (all shards in parallel) and returns once
    /// every shard is serving, or the first init error after stopping them all again.
    pub fn start(config: &ShardSetConfig, init: ShardInit) -> Result<Self, ShardError> {
        let cpus = affinity::allowed_cpus().unwrap_or_default();
        let shard_count = match config.shard_count {
            0 => cpus.len().max(1),
            n => n,
        };
        let queue_depth = config.queue_depth.max(1);
        let (ready_tx, ready_rx) = std_mpsc::channel::<(ShardId, Result<(), String>)>();
        let mut set = Self {
            shards: Vec::with_capacity(shard_count),
            accepting: AtomicBool::new(true),
        };
        for index in 0..shard_count {
            let shard_id = ShardId(index);
            let cpu = if config.pin_threads && !cpus.is_empty() {
                Some(cpus[index % cpus.len()])
            } else {
                None
            };
            let (sender, receiver) = mpsc::channel(queue_depth);
            let (stopped_tx, stopped_rx) = oneshot::channel();
            let init = init.clone();
            let ready_tx = ready_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("spate-shard-{index}"))
                .spawn(move || {
                    run_shard(shard_id, shard_count, cpu, receiver, init, ready_tx);
                    let _ = stopped_tx.send(());
                });
            let thread = match thread {
                Ok(thread) => thread,
                Err(error) => {
                    set.stop_blocking();
                    return Err(ShardError::Spawn(error));
                }
            };
            set.shards.push(ShardHandle {
                sender,
                thread: Mutex::new(Some(thread)),
                stopped: Mutex::new(Some(stopped_rx)),
            });
        }
        drop(ready_tx);
        let mut first_error = None;
        for _ in 0..shard_count {
            match ready_rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((shard, Err(message))) => {
                    first_error.get_or_insert(ShardError::Init { shard, message });
                }
                Err(_) => {
                    first_error.get_or_insert(ShardError::Init {
                        shard: ShardId(usize::MAX),
                        message: "a shard thread died during start".to_owned(),
                    });
                    break;
                }
            }
        }
        if let Some(error) = first_error {
            set.stop_blocking();
            return Err(error);
        }
        Ok(set)
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn handle(&self, shard: ShardId) -> Result<&ShardHandle, ShardError> {
        if !self.accepting.load(Ordering::Acquire) {
            return Err(ShardError::Gone(shard));
        }
        self.shards.get(shard.0).ok_or(ShardError::NoSuchShard {
            shard,
            shard_count: self.shards.len(),
        })
    }

    /// Runs `f` on `shard` and returns the output of the future it builds. Waits for room in
    /// the shard's bounded queue (backpressure). `Gone` once shutdown has begun;
    /// `TaskPanicked` if the call panicked on the shard.
    pub async fn invoke_on<R, F>(&self, shard: ShardId, f: F) -> Result<R, ShardError>
    where
        R: Send + 'static,
        F: FnOnce(&ShardContext) -> LocalBoxFuture<'static, R> + Send + 'static,
    {
        let handle = self.handle(shard)?;
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |context: &ShardContext| {
            let future = f(context);
            context.spawn(async move {
                let _ = reply_tx.send(future.await);
            });
        });
        // A call to our own shard runs here: no queue, no thread hop.
        if let Some(job) = run_here_if_local(shard, job) {
            handle
                .sender
                .send(ShardMessage::Run(job))
                .await
                .map_err(|_| ShardError::Gone(shard))?;
        }
        reply_rx.await.map_err(|_| {
            if self.accepting.load(Ordering::Acquire) {
                ShardError::TaskPanicked(shard)
            } else {
                ShardError::Gone(shard)
            }
        })
    }

    /// Starts a long-lived task on `shard` without waiting for it. Fails with `QueueFull`
    /// instead of waiting when the shard's queue is full, since this is not async.
    pub fn spawn_on<F>(&self, shard: ShardId, f: F) -> Result<(), ShardError>
    where
        F: FnOnce(&ShardContext) -> LocalBoxFuture<'static, ()> + Send + 'static,
    {
        let handle = self.handle(shard)?;
        let job: Job = Box::new(move |context: &ShardContext| {
            let future = f(context);
            context.spawn(future);
        });
        handle
            .sender
            .try_send(ShardMessage::Run(job))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => ShardError::QueueFull(shard),
                mpsc::error::TrySendError::Closed(_) => ShardError::Gone(shard),
            })
    }

    /// Stops accepting calls, then stops shards in reverse order of start: each finishes the
    /// calls already queued, signals its tasks, waits for them (bounded), runs its shutdown
    /// hooks (the engine flushes and checkpoints logs there) and exits. Idempotent.
    pub async fn shutdown(&self) {
        self.accepting.store(false, Ordering::Release);
        for handle in self.shards.iter().rev() {
            let _ = handle.sender.send(ShardMessage::Signal).await;
        }
        for handle in self.shards.iter().rev() {
            let _ = handle.sender.send(ShardMessage::Stop).await;
            let stopped = handle.stopped.lock().ok().and_then(|mut s| s.take());
            if let Some(stopped) = stopped {
                let _ = stopped.await;
            }
            join(handle);
        }
    }

    /// Shutdown for non-async callers (start failures and `Drop`).
    fn stop_blocking(&self) {
        self.accepting.store(false, Ordering::Release);
        for handle in self.shards.iter().rev() {
            // A full queue means the shard is still draining calls; wait for room behind them.
            let mut message = ShardMessage::Stop;
            loop {
                match handle.sender.try_send(message) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => break,
                    Err(mpsc::error::TrySendError::Full(returned)) => {
                        message = returned;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            }
            join(handle);
        }
    }
}

impl Drop for ShardSet {
    fn drop(&mut self) {
        if self
            .shards
            .iter()
            .any(|h| h.thread.lock().map(|t| t.is_some()).unwrap_or(false))
        {
            self.stop_blocking();
        }
    }
}

fn join(handle: &ShardHandle) {
    let thread = handle.thread.lock().ok().and_then(|mut t| t.take());
    if let Some(thread) = thread {
        if thread.thread().id() == std::thread::current().id() {
            return; // a shard stopping itself: its thread exits on its own
        }
        if thread.join().is_err() {
            tracing::error!("a shard thread panicked while stopping");
        }
    }
}

/// Runs `job` now if the calling thread is `shard`, else hands it back. Synchronous, so the
/// shard's `Rc` context never lives in an async caller's (`Send`) future.
fn run_here_if_local(shard: ShardId, job: Job) -> Option<Job> {
    if current_shard() != Some(shard) {
        return Some(job);
    }
    CURRENT_CONTEXT.with(|cell| match cell.borrow().as_ref() {
        Some(context) => {
            run_job(context, job);
            None
        }
        None => Some(job),
    })
}

fn run_job(context: &ShardContext, job: Job) {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(context)));
    if let Err(payload) = run {
        context.record_panic(&panic_message(payload.as_ref()));
    }
}

/// The body of one shard thread.
fn run_shard(
    shard_id: ShardId,
    shard_count: usize,
    cpu: Option<usize>,
    mut receiver: mpsc::Receiver<ShardMessage>,
    init: ShardInit,
    ready_tx: std_mpsc::Sender<(ShardId, Result<(), String>)>,
) {
    CURRENT_SHARD.with(|c| c.set(Some(shard_id)));
    if let Some(cpu) = cpu
        && let Err(error) = affinity::pin_current_thread(cpu)
    {
        tracing::warn!(shard = %shard_id, cpu, %error, "could not pin shard thread; running unpinned");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready_tx.send((shard_id, Err(format!("tokio runtime: {error}"))));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let io = IoDriver::with_fallback();
        let _reaper = io.spawn_reaper();
        let context = ShardContext::new(shard_id, shard_count, io);
        CURRENT_CONTEXT.with(|c| *c.borrow_mut() = Some(context.clone()));
        let init_result = match PanicGuard::new(init(&context)).await {
            Ok(result) => result,
            Err(message) => Err(format!("init panicked: {message}")),
        };
        let _ = ready_tx.send((shard_id, init_result));
        drop(ready_tx);
        while let Some(message) = receiver.recv().await {
            match message {
                ShardMessage::Run(job) => run_job(&context, job),
                ShardMessage::Signal => context.signal_shutdown(),
                ShardMessage::Stop => break,
            }
        }
        // Calls queued behind Stop are refused: their reply channels drop, callers see Gone.
        receiver.close();
        while receiver.try_recv().is_ok() {}
        context.stop(SHUTDOWN_GRACE_MS).await;
        CURRENT_CONTEXT.with(|c| c.borrow_mut().take());
    });
    // Dropping the LocalSet cancels leftover tasks; the runtime and then the io driver (which
    // drains the kernel's in-flight ops) go with them.
    drop(local);
    drop(runtime);
}
