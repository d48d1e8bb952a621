//! A consumer in a group: Kafka's classic group protocol on top of [`Consumer`].
//!
//! The [`Consumer`] keeps fetching exactly as with manual assignment; this module only
//! decides which partitions it holds. A background task owns the group membership
//! (`membership`): it finds the coordinator, joins and syncs, runs the assignor when it
//! leads, and heartbeats. Giving partitions up is left to the thread that calls
//! [`GroupConsumer::poll`], as in Kafka's consumer: the task asks, and the next `poll` (or a
//! running one, woken) commits the partitions' positions when auto-commit is on and drops
//! them. So a commit on revocation covers exactly what `poll` returned before the
//! application came back for more, and a member that stops polling gives nothing up and is
//! removed after `max.poll.interval.ms`, as Kafka's are.
//!
//! Eager assignors (range, roundrobin) give up everything before each rejoin. When every
//! configured assignor is cooperative (cooperative-sticky), the member keeps its partitions
//! through the rebalance, reports them in its subscription, gives up only what the new
//! assignment leaves out, and then rejoins so those can move (KIP-429).

mod assignor;
mod commit;
mod leader;
mod membership;
pub(crate) mod protocol;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

pub use assignor::Assignor;

use super::{Consumer, ConsumerConfig, ConsumerRecord};
use crate::client::Client;
use crate::connection::Connection;
use crate::error::Error;
use crate::offsets::TopicPartition;

/// Group consumer settings; defaults are Kafka 4.0's.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    /// Fetch settings, `auto.offset.reset` (used where the group has no committed offset)
    /// and the connection settings.
    pub consumer: ConsumerConfig,
    /// `group.id`.
    pub group_id: String,
    /// `group.instance.id`: a static member (KIP-345) keeps its partitions across a
    /// restart within the session timeout, and does not leave the group on close.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` (45 s): how long the coordinator waits for a heartbeat before
    /// removing the member.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (3 s).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (300 s): the longest gap between polls before the member
    /// leaves the group; also the rebalance timeout sent in JoinGroup.
    pub max_poll_interval: Duration,
    /// `partition.assignment.strategy`, in order of preference ([range, cooperative-sticky]).
    pub assignors: Vec<Assignor>,
    /// `enable.auto.commit` (true).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (5 s).
    pub auto_commit_interval: Duration,
}

impl GroupConsumerConfig {
    pub fn new(bootstrap: impl Into<String>, group_id: impl Into<String>) -> Self {
        Self {
            consumer: ConsumerConfig::new(bootstrap),
            group_id: group_id.into(),
            group_instance_id: None,
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            max_poll_interval: Duration::from_millis(300_000),
            assignors: vec![Assignor::Range, Assignor::CooperativeSticky],
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
        }
    }

    /// Whether this member rebalances cooperatively: only when every assignor it offers
    /// can, since the coordinator may pick any of them.
    fn cooperative(&self) -> bool {
        !self.assignors.is_empty() && self.assignors.iter().all(|a| a.is_cooperative())
    }

    fn check(&self) -> Result<(), Error> {
        if self.group_id.is_empty() {
            return Err(Error::Config("group.id must not be empty".into()));
        }
        if self.assignors.is_empty() {
            return Err(Error::Config(
                "partition.assignment.strategy lists no assignor; give at least one".into(),
            ));
        }
        if self.heartbeat_interval >= self.session_timeout {
            return Err(Error::Config(format!(
                "heartbeat.interval.ms ({} ms) must be below session.timeout.ms ({} ms)",
                self.heartbeat_interval.as_millis(),
                self.session_timeout.as_millis()
            )));
        }
        Ok(())
    }
}

/// Partitions the membership task wants the polling thread to give up.
pub(crate) struct Revocation {
    partitions: BTreeSet<TopicPartition>,
    done: oneshot::Sender<()>,
}

/// What the membership task and the application's calls share.
pub(crate) struct GroupState {
    topics: BTreeSet<String>,
    owned: BTreeSet<TopicPartition>,
    /// Empty until the coordinator hands one out; kept across rejoins.
    member_id: String,
    /// The generation while the member is in a settled group; `None` while (re)joining.
    generation: Option<i32>,
    /// The generation `owned` was assigned in, reported in the subscription; -1 if none.
    owned_generation: i32,
    rejoin_needed: bool,
    revocation: Option<Revocation>,
    /// An error the member cannot recover from (e.g. FENCED_INSTANCE_ID); `poll` returns it.
    fatal: Option<Error>,
    last_poll: Instant,
    /// Left the group after `max.poll.interval.ms` without a poll; the next poll rejoins.
    left_idle: bool,
    coordinator: Option<crate::group_coordinator::GroupCoordinator>,
    /// The connection JoinGroup and SyncGroup use (see `commit::join_connection`).
    join_connection: Option<Connection>,
    /// Partition counts of the subscribed topics when the assignment was received; a change
    /// means new partitions to place, so a rejoin.
    partition_counts: BTreeMap<String, usize>,
    next_auto_commit: Instant,
}

pub(crate) struct GroupShared {
    config: GroupConsumerConfig,
    consumer: Consumer,
    state: Mutex<GroupState>,
    /// Wakes the membership task: the subscription changed, or a poll after leaving idle.
    membership_wake: Notify,
    /// Wakes a waiting `poll`: partitions to give up, or a fatal error.
    poll_wake: Notify,
}

impl GroupShared {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn group(&self) -> &str {
        &self.config.group_id
    }

    /// Positions of the owned partitions: what `poll` has returned so far.
    fn consumed_positions(&self) -> BTreeMap<TopicPartition, i64> {
        let owned = self.lock().owned.clone();
        self.consumer
            .positions()
            .into_iter()
            .filter(|(tp, _)| owned.contains(tp))
            .collect()
    }

    /// Gives up the partitions the membership task asked for, committing their positions
    /// first when auto-commit is on. Runs on the polling thread.
    async fn apply_revocation(&self) {
        let Some(revocation) = self.lock().revocation.take() else {
            return;
        };
        if self.config.enable_auto_commit {
            let offsets: BTreeMap<TopicPartition, i64> = self
                .consumed_positions()
                .into_iter()
                .filter(|(tp, _)| revocation.partitions.contains(tp))
                .collect();
            if let Err(error) = commit::commit(self, offsets).await {
                tracing::warn!(%error, group = self.group(), "commit before revoking partitions failed");
            }
        }
        {
            let mut state = self.lock();
            state.owned.retain(|tp| !revocation.partitions.contains(tp));
            self.consumer.assign(state.owned.iter().cloned());
        }
        tracing::info!(group = self.group(), partitions = ?revocation.partitions, "revoked");
        let _ = revocation.done.send(());
    }

    /// Drops every partition without committing: the member is no longer in the
    /// generation that assigned them, so another member may already own them (Kafka's
    /// "partitions lost").
    fn lose_partitions(&self, state: &mut GroupState) {
        if !state.owned.is_empty() {
            tracing::warn!(group = self.group(), partitions = ?state.owned, "partitions lost");
        }
        state.owned.clear();
        state.owned_generation = -1;
        state.generation = None;
        state.revocation = None;
        self.consumer.assign(Vec::new());
    }
}

/// Aborts the membership task when the consumer goes away.
struct MembershipTask(JoinHandle<()>);

impl Drop for MembershipTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A member of a consumer group: subscribe to topics and the group shares their
/// partitions among its members.
///
/// Dropping it stops the membership without leaving the group (the coordinator removes the
/// member after `session.timeout.ms`); call [`GroupConsumer::close`] to commit and leave.
pub struct GroupConsumer {
    shared: Arc<GroupShared>,
    membership: MembershipTask,
}

impl GroupConsumer {
    /// Reaches the cluster and starts the membership task, which joins once something is
    /// subscribed.
    pub async fn new(config: GroupConsumerConfig) -> Result<GroupConsumer, Error> {
        config.check()?;
        let consumer = Consumer::new(config.consumer.clone()).await?;
        let now = Instant::now();
        let shared = Arc::new(GroupShared {
            state: Mutex::new(GroupState {
                topics: BTreeSet::new(),
                owned: BTreeSet::new(),
                member_id: String::new(),
                generation: None,
                owned_generation: -1,
                rejoin_needed: false,
                revocation: None,
                fatal: None,
                last_poll: now,
                left_idle: false,
                coordinator: None,
                join_connection: None,
                partition_counts: BTreeMap::new(),
                next_auto_commit: now + config.auto_commit_interval,
            }),
            config,
            consumer,
            membership_wake: Notify::new(),
            poll_wake: Notify::new(),
        });
        let task = tokio::spawn(membership::run(shared.clone()));
        Ok(GroupConsumer {
            shared,
            membership: MembershipTask(task),
        })
    }

    /// The consumer underneath, for reading (positions, its client). Do not `assign` or
    /// `seek` through it: the group decides the assignment and would be contradicted.
    pub fn consumer(&self) -> &Consumer {
        &self.shared.consumer
    }

    /// The connections and metadata this member uses, e.g. for an [`crate::Admin`] sharing
    /// them.
    pub fn client(&self) -> &Client {
        self.shared.consumer.client()
    }

    /// The next offset `poll` returns for an owned partition; `None` while it is being
    /// looked up.
    pub fn position(&self, topic: &str, partition: i32) -> Result<Option<i64>, Error> {
        self.shared.consumer.position(topic, partition)
    }

    /// Replaces the subscription; the member (re)joins the group with it. No topics at
    /// all leaves the group (committing first with auto-commit), as Kafka's `unsubscribe`.
    pub fn subscribe(&self, topics: &[&str]) {
        let topics: BTreeSet<String> = topics.iter().map(|t| t.to_string()).collect();
        let mut state = self.shared.lock();
        if state.topics != topics {
            state.topics = topics;
            state.rejoin_needed = true;
            drop(state);
            self.shared.membership_wake.notify_one();
        }
    }

    /// Records from the owned partitions, waiting up to `timeout` for some. Also where the
    /// member gives up partitions a rebalance takes away and auto-commits, so call it at
    /// least every `max.poll.interval.ms`. An error the membership cannot recover from
    /// (another member took this static member's instance id) is returned from every poll.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        let deadline = Instant::now() + timeout;
        self.note_poll();
        self.maybe_auto_commit();
        loop {
            let woken = self.shared.poll_wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            self.shared.apply_revocation().await;
            if let Some(error) = self.shared.lock().fatal.clone() {
                return Err(error);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                records = self.shared.consumer.poll(remaining) => return records,
                _ = &mut woken => {}
            }
        }
    }

    fn note_poll(&self) {
        let mut state = self.shared.lock();
        state.last_poll = Instant::now();
        if state.left_idle {
            state.left_idle = false;
            state.rejoin_needed = true;
            drop(state);
            self.shared.membership_wake.notify_one();
        }
    }

    /// Kafka's auto-commit: at most every `auto.commit.interval.ms`, from poll, of the
    /// positions before this poll (so of records the application has had). Failures are
    /// logged; the next interval commits again.
    fn maybe_auto_commit(&self) {
        if !self.shared.config.enable_auto_commit {
            return;
        }
        {
            let mut state = self.shared.lock();
            let now = Instant::now();
            if now < state.next_auto_commit || state.generation.is_none() {
                return;
            }
            state.next_auto_commit = now + self.shared.config.auto_commit_interval;
        }
        let offsets = self.shared.consumed_positions();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            if let Err(error) = commit::commit(&shared, offsets).await {
                tracing::warn!(%error, group = shared.group(), "auto-commit failed");
            }
        });
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.shared.lock().owned.iter().cloned().collect()
    }

    /// Commits the position of every owned partition (what `poll` has returned).
    pub async fn commit_sync(&self) -> Result<(), Error> {
        let offsets = self.shared.consumed_positions();
        commit::commit(&self.shared, offsets).await
    }

    /// Commits the given offsets (the next offset to read, as Kafka's commits are).
    pub async fn commit_offsets_sync(
        &self,
        offsets: BTreeMap<TopicPartition, i64>,
    ) -> Result<(), Error> {
        commit::commit(&self.shared, offsets).await
    }

    /// Commits the owned partitions' positions in the background. The positions are taken
    /// now; the returned task's result says whether the commit succeeded (dropping the
    /// handle does not cancel it).
    pub fn commit_async(&self) -> JoinHandle<Result<(), Error>> {
        let offsets = self.shared.consumed_positions();
        let shared = self.shared.clone();
        tokio::spawn(async move { commit::commit(&shared, offsets).await })
    }

    /// The group's committed offsets for these partitions (`None` where there is none).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>, Error> {
        commit::fetch_committed(&self.shared, partitions).await
    }

    /// Moves an owned partition's position; the next poll returns records from there.
    pub fn seek(&self, topic: &str, partition: i32, offset: i64) -> Result<(), Error> {
        self.shared.consumer.seek(topic, partition, offset)
    }

    /// Stops returning records of these owned partitions, until resumed or revoked.
    pub fn pause(&self, partitions: &[TopicPartition]) {
        self.shared.consumer.pause(partitions);
    }

    pub fn resume(&self, partitions: &[TopicPartition]) {
        self.shared.consumer.resume(partitions);
    }

    /// (generation id, member id) while the member is in a settled generation.
    pub fn generation(&self) -> Option<(i32, String)> {
        let state = self.shared.lock();
        state.generation.map(|g| (g, state.member_id.clone()))
    }

    /// Commits the owned partitions' positions when auto-commit is on, then leaves the
    /// group so its partitions move at once (a static member stays, as in Kafka: its
    /// partitions wait for it until the session times out). Both are attempted; the first
    /// error is returned.
    pub async fn close(mut self) -> Result<(), Error> {
        self.membership.0.abort();
        let _ = (&mut self.membership.0).await;
        let mut first_error = None;
        let in_generation = self.shared.lock().generation.is_some();
        if self.shared.config.enable_auto_commit && in_generation {
            let offsets = self.shared.consumed_positions();
            if let Err(error) = commit::commit(&self.shared, offsets).await {
                first_error = Some(error);
            }
        }
        if let Err(error) = membership::leave(&self.shared, "the consumer is closing").await {
            first_error.get_or_insert(error);
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
