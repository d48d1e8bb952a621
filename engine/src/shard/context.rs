//! What a task running on a shard can reach: its shard's id, I/O driver and task tracking.
//!
//! A `ShardContext` lives on exactly one shard thread (`Rc` inside, so `!Send`). Closures given
//! to `invoke_on`/`spawn_on` receive a reference and may clone it into the future they return.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use tokio::sync::{Notify, watch};

use super::group_commit::GroupCommitStats;
use super::panic_guard::PanicGuard;
use super::partition_table::PartitionTable;
use super::{LocalBoxFuture, ShardId};
use crate::uring::IoDriver;

type ShutdownHook = Box<dyn FnOnce() -> LocalBoxFuture<'static, ()>>;

/// The shard-local view handed to every task on a shard.
#[derive(Clone)]
pub struct ShardContext {
    inner: Rc<ContextInner>,
}

struct ContextInner {
    shard_id: ShardId,
    shard_count: usize,
    io: IoDriver,
    shutdown_tx: watch::Sender<bool>,
    live_task_count: Cell<usize>,
    task_finished: Notify,
    panic_count: Cell<u64>,
    shutdown_hooks: RefCell<Vec<ShutdownHook>>,
    partitions: PartitionTable,
}

impl ShardContext {
    pub(crate) fn new(shard_id: ShardId, shard_count: usize, io: IoDriver) -> Self {
        let (shutdown_tx, _) = watch::channel(false);
        Self {
            inner: Rc::new(ContextInner {
                shard_id,
                shard_count,
                io,
                shutdown_tx,
                live_task_count: Cell::new(0),
                task_finished: Notify::new(),
                panic_count: Cell::new(0),
                shutdown_hooks: RefCell::new(Vec::new()),
                partitions: PartitionTable::new(),
            }),
        }
    }

    pub fn shard_id(&self) -> ShardId {
        self.inner.shard_id
    }

    pub fn shard_count(&self) -> usize {
        self.inner.shard_count
    }

    /// This shard's io_uring driver.
    pub fn io(&self) -> &IoDriver {
        &self.inner.io
    }

    /// The partitions this shard owns.
    pub(crate) fn partitions(&self) -> &PartitionTable {
        &self.inner.partitions
    }

    /// Partitions this shard owns.
    pub fn partition_count(&self) -> usize {
        self.inner.partitions.len()
    }

    /// Group-commit counters of this shard.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.inner.partitions.commit.stats()
    }

    /// Tasks on this shard that panicked since start (each was logged).
    pub fn panic_count(&self) -> u64 {
        self.inner.panic_count.get()
    }

    /// Becomes `true` when the engine shuts down. Long-lived tasks (acceptors, connections)
    /// watch it and finish; whatever is still running after the grace period is dropped.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown_tx.subscribe()
    }

    /// Runs `future` on this shard as a tracked task: shutdown waits for it (up to its grace
    /// period) and a panic inside it is logged and counted instead of lost.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<Option<F::Output>>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let context = self.clone();
        context
            .inner
            .live_task_count
            .set(context.inner.live_task_count.get() + 1);
        tokio::task::spawn_local(async move {
            let outcome = PanicGuard::new(future).await;
            let inner = &context.inner;
            inner.live_task_count.set(inner.live_task_count.get() - 1);
            inner.task_finished.notify_waiters();
            match outcome {
                Ok(value) => Some(value),
                Err(message) => {
                    inner.panic_count.set(inner.panic_count.get() + 1);
                    tracing::error!(shard = %inner.shard_id, panic = %message, "shard task panicked");
                    None
                }
            }
        })
    }

    /// Registers work to run when the shard stops, after its tasks have finished. Hooks run
    /// in reverse order of registration (last started, first stopped).
    pub fn on_shutdown(&self, hook: impl FnOnce() -> LocalBoxFuture<'static, ()> + 'static) {
        self.inner.shutdown_hooks.borrow_mut().push(Box::new(hook));
    }

    /// Runs `work` now; a panic inside it is logged and counted instead of unwinding into the
    /// caller (timer tasks use this so one bad pass does not end the timer).
    pub(crate) fn run_guarded(&self, work: impl FnOnce()) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        if let Err(payload) = outcome {
            self.record_panic(&super::panic_guard::panic_message(payload.as_ref()));
        }
    }

    pub(crate) fn record_panic(&self, message: &str) {
        let inner = &self.inner;
        inner.panic_count.set(inner.panic_count.get() + 1);
        tracing::error!(shard = %inner.shard_id, panic = %message, "shard call panicked");
    }

    /// Raises the shutdown signal (idempotent).
    pub(crate) fn signal_shutdown(&self) {
        self.inner.shutdown_tx.send_replace(true);
    }

    /// Signals shutdown, waits up to `grace_ms` for tracked tasks, then runs the hooks.
    pub(crate) async fn stop(&self, grace_ms: u64) {
        let inner = &self.inner;
        inner.shutdown_tx.send_replace(true);
        let drained = async {
            loop {
                let finished = inner.task_finished.notified();
                if inner.live_task_count.get() == 0 {
                    break;
                }
                finished.await;
            }
        };
        if tokio::time::timeout(std::time::Duration::from_millis(grace_ms), drained)
            .await
            .is_err()
        {
            tracing::warn!(
                shard = %inner.shard_id,
                live_task_count = inner.live_task_count.get(),
                "shard tasks still running after the shutdown grace period; dropping them"
            );
        }
        let hooks: Vec<ShutdownHook> = inner.shutdown_hooks.borrow_mut().drain(..).collect();
        for hook in hooks.into_iter().rev() {
            if let Err(message) = PanicGuard::new(hook()).await {
                self.record_panic(&message);
            }
        }
    }
}
