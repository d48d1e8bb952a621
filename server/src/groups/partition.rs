//! One `__consumer_offsets` partition's coordinator on its shard: the sans-IO state machine,
//! the requests waiting on it, and the task that carries out its effects in order.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use spate_coordinator::records::Record;
use spate_coordinator::{
    Coordinator, Effect, ErrorCode, JoinGroup, JoinResult, Millis, Reply, SyncGroup, SyncResult,
    Token,
};
use spate_engine::{Engine, ShardContext, TopicPartition};
use tokio::sync::oneshot;

use super::offsets_log;

/// The wall clock in ms, which is what Kafka stores in commit timestamps.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

enum Waiter {
    Join(oneshot::Sender<JoinResult>),
    Sync(oneshot::Sender<SyncResult>),
}

/// Lives on the shard that owns `partition`; reached only through `groups::on_owner`.
pub struct PartitionCoordinator {
    partition: TopicPartition,
    engine: Engine,
    context: ShardContext,
    state: RefCell<Coordinator>,
    waiters: RefCell<HashMap<Token, Waiter>>,
    next_token: Cell<u64>,
    effects: RefCell<VecDeque<Effect>>,
    pumping: Cell<bool>,
    /// One write to the partition at a time, with the state change that follows it: a
    /// snapshot taken under this lock can never be older than a record already in the log.
    write_lock: tokio::sync::Mutex<()>,
    /// Records appended since the last snapshot (or load), and how many the state had then.
    appended_since_snapshot: Cell<u64>,
    live_at_snapshot: Cell<u64>,
    compacting: Cell<bool>,
}

/// The log is rewritten as a snapshot once it holds this many records beyond the live
/// ones (and at least twice as many as are live): replay at startup stays proportional to
/// the live state, not to every commit ever made.
const SNAPSHOT_AFTER_RECORDS_MIN: u64 = 50_000;
/// Records per batch when writing a snapshot: keeps each batch far below `max.message.bytes`.
const SNAPSHOT_BATCH_RECORDS: usize = 500;

impl PartitionCoordinator {
    pub(super) fn new(
        partition: TopicPartition,
        engine: Engine,
        context: ShardContext,
        state: Coordinator,
        loaded_records: u64,
    ) -> Self {
        Self {
            partition,
            engine,
            context,
            state: RefCell::new(state),
            waiters: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            effects: RefCell::new(VecDeque::new()),
            pumping: Cell::new(false),
            write_lock: tokio::sync::Mutex::new(()),
            appended_since_snapshot: Cell::new(loaded_records),
            live_at_snapshot: Cell::new(0),
            compacting: Cell::new(false),
        }
    }

    pub fn partition(&self) -> &TopicPartition {
        &self.partition
    }

    /// Runs `f` on the state machine with the current time, then starts carrying out any
    /// effects it queued. Never hold the borrow across an await: `f` is synchronous.
    pub fn with<R>(self: &Rc<Self>, f: impl FnOnce(&mut Coordinator, Millis) -> R) -> R {
        let result = f(&mut self.state.borrow_mut(), now_ms());
        self.schedule_effects();
        result
    }

    /// Read-only access (describe, list, fetch): no effects can come of it.
    pub fn read<R>(&self, f: impl FnOnce(&Coordinator) -> R) -> R {
        f(&self.state.borrow())
    }

    fn token(&self) -> Token {
        let token = self.next_token.get();
        self.next_token.set(token.wrapping_add(1));
        Token(token)
    }

    /// JoinGroup: answered at once, or when the rebalance's join phase completes.
    pub async fn join(self: &Rc<Self>, request: JoinGroup) -> JoinResult {
        let token = self.token();
        let member_id = request.member_id.clone();
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(token, Waiter::Join(tx));
        match self.with(|c, now| c.join_group(now, token, request)) {
            Reply::Now(result) => {
                self.waiters.borrow_mut().remove(&token);
                result
            }
            Reply::Later => rx.await.unwrap_or_else(|_| {
                JoinResult::error(ErrorCode::CoordinatorNotAvailable, member_id)
            }),
        }
    }

    /// SyncGroup: answered at once, or when the leader's assignment is stored.
    pub async fn sync(self: &Rc<Self>, request: SyncGroup) -> SyncResult {
        let token = self.token();
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(token, Waiter::Sync(tx));
        match self.with(|c, now| c.sync_group(now, token, request)) {
            Reply::Now(result) => {
                self.waiters.borrow_mut().remove(&token);
                result
            }
            Reply::Later => rx
                .await
                .unwrap_or_else(|_| SyncResult::error(ErrorCode::CoordinatorNotAvailable)),
        }
    }

    /// Appends records to this partition and waits until they are durable.
    pub async fn append(
        self: &Rc<Self>,
        records: &[Record],
    ) -> Result<(), offsets_log::AppendFailure> {
        self.append_then(records, |_| ()).await
    }

    /// Appends records, then (only if they are durable) applies `then` to the state, with
    /// no other write in between; starts a snapshot when the log has grown enough.
    pub async fn append_then<R>(
        self: &Rc<Self>,
        records: &[Record],
        then: impl FnOnce(&mut Coordinator) -> R,
    ) -> Result<R, offsets_log::AppendFailure> {
        let outcome = {
            let _write = self.write_lock.lock().await;
            offsets_log::append(&self.engine, &self.partition, records)
                .await
                .map(|()| self.with(|state, _| then(state)))
        };
        if outcome.is_ok() && !records.is_empty() {
            let appended = self.appended_since_snapshot.get() + records.len() as u64;
            self.appended_since_snapshot.set(appended);
            self.maybe_snapshot();
        }
        outcome
    }

    fn maybe_snapshot(self: &Rc<Self>) {
        let due = SNAPSHOT_AFTER_RECORDS_MIN.max(2 * self.live_at_snapshot.get());
        if self.appended_since_snapshot.get() < due || self.compacting.replace(true) {
            return;
        }
        let this = self.clone();
        self.context.spawn(async move {
            if let Err(e) = this.snapshot().await {
                tracing::warn!(partition = %this.partition, error = %e, "cannot compact the offsets log; it keeps growing until the next try");
            }
            this.compacting.set(false);
        });
    }

    /// Rewrites the live state at the end of the log and drops everything before it. A crash
    /// part-way leaves the old records in place: replaying them and then the partial
    /// snapshot gives the same state, since every snapshot record is the newest value.
    async fn snapshot(self: &Rc<Self>) -> Result<(), String> {
        let _write = self.write_lock.lock().await;
        let records = self.read(|state| state.snapshot());
        let start = self
            .engine
            .offsets(&self.partition)
            .await
            .map_err(|e| e.to_string())?
            .log_end_offset;
        for chunk in records.chunks(SNAPSHOT_BATCH_RECORDS) {
            offsets_log::append(&self.engine, &self.partition, chunk)
                .await
                .map_err(|e| e.to_string())?;
        }
        let log_start = self
            .engine
            .delete_records_before(&self.partition, start)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(partition = %self.partition, live_records = records.len(), log_start, "compacted the offsets log");
        self.live_at_snapshot.set(records.len() as u64);
        self.appended_since_snapshot.set(records.len() as u64);
        Ok(())
    }

    /// Moves the state machine's queued effects to our queue and makes sure a task is
    /// working through it. One task at a time, so appends and replies keep their order.
    fn schedule_effects(self: &Rc<Self>) {
        let queued = self.state.borrow_mut().take_effects();
        if queued.is_empty() {
            return;
        }
        self.effects.borrow_mut().extend(queued);
        if self.pumping.replace(true) {
            return;
        }
        let this = self.clone();
        self.context.spawn(async move { this.run_effects().await });
    }

    async fn run_effects(self: Rc<Self>) {
        loop {
            let next = self.effects.borrow_mut().pop_front();
            let Some(effect) = next else {
                self.pumping.set(false);
                return;
            };
            match effect {
                Effect::Append(records) => {
                    if let Err(e) = self.append(&records).await {
                        tracing::error!(partition = %self.partition, error = %e, records = records.len(), "cannot store group metadata; members rejoin if the broker restarts");
                    }
                }
                Effect::JoinDone { token, result } => {
                    if let Some(Waiter::Join(tx)) = self.waiters.borrow_mut().remove(&token) {
                        let _ = tx.send(result);
                    }
                }
                Effect::SyncDone { token, result } => {
                    if let Some(Waiter::Sync(tx)) = self.waiters.borrow_mut().remove(&token) {
                        let _ = tx.send(result);
                    }
                }
            }
        }
    }
}
