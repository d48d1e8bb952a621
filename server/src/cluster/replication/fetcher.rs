//! The follower's side, on the shard that owns each partition it follows: a slot per
//! partition (its `FollowerReplica` and a copy of its epoch cache), and one fetch loop per
//! leader node that this shard follows partitions of.
//!
//! A loop sends one Fetch for every partition whose state machine has a fetch ready, waits
//! for the answer (the leader parks it until it has something, up to
//! `replica.fetch.wait.max.ms`), and carries out the actions the state machine returns, in
//! order: truncation before anything else, appends through the engine's group commit, the
//! HW last. A partition fetches again as soon as its append is written; when the append is
//! synced, its new durable offset goes to the leader at once in a small report, so the HW
//! and `acks=all` do not wait for the next long poll (replication-notes §5).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spate_cluster::replication::{
    EpochCache, FollowerAction, FollowerFetch, FollowerReplica, LeaderAnswer, LocalOffsets,
    ReplicaError,
};
use spate_cluster::{NodeId, TopicId};
use spate_engine::{PartitionOffsets, TopicPartition};
use spate_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use spate_protocol::messages::fetch_response::PartitionData;
use spate_protocol::messages::{FetchRequest, FetchResponse};
use spate_protocol::wire::Uuid;
use tokio::sync::{Notify, mpsc, watch};

use super::leader::local_of;
use super::{ReplicationContext, registry};
use crate::handlers::error_code;
use spate_protocol::replica_fetch::{self as wire, set_durable_offset};

/// How long a fetch may wait for its answer beyond the leader's long poll before the loop
/// gives up on it (the state machine then fetches again).
const FETCH_ANSWER_SLACK_MS: u64 = 10_000;

/// One partition this node follows, on its shard.
pub(super) struct FollowerSlot {
    pub tp: TopicPartition,
    pub topic_id: TopicId,
    pub state: RefCell<FollowerReplica>,
    pub epochs: RefCell<EpochCache>,
    /// The latest epoch the copy of the cache matches.
    epochs_latest: Cell<Option<i32>>,
    pub offsets: watch::Receiver<PartitionOffsets>,
    pub stopped: Cell<bool>,
    /// An append of this partition is being staged (the next fetch waits for it).
    appending: Cell<bool>,
    /// The last answer brought no records: fetch again only in the long poll.
    idle: Cell<bool>,
}

impl FollowerSlot {
    pub fn new(
        tp: TopicPartition,
        topic_id: TopicId,
        state: FollowerReplica,
        epochs: EpochCache,
        offsets: watch::Receiver<PartitionOffsets>,
    ) -> Rc<Self> {
        let latest = epochs.entries().last().map(|e| e.0);
        Rc::new(Self {
            tp,
            topic_id,
            state: RefCell::new(state),
            epochs: RefCell::new(epochs),
            epochs_latest: Cell::new(latest),
            offsets,
            stopped: Cell::new(false),
            appending: Cell::new(false),
            idle: Cell::new(false),
        })
    }

    fn local(&self) -> LocalOffsets {
        local_of(&self.offsets.borrow())
    }

    /// Re-reads the epoch cache from the engine when the log's latest epoch moved (a
    /// replicated batch began a new epoch) or after a truncation.
    async fn refresh_epochs(&self, context: &ReplicationContext, force: bool) {
        let latest = self.offsets.borrow().latest_epoch;
        if !force && latest == self.epochs_latest.get() {
            return;
        }
        match context.engine.epoch_entries(&self.tp).await {
            Ok(entries) => {
                let mut cache = EpochCache::new();
                for entry in entries {
                    cache.assign(entry.epoch, entry.start_offset);
                }
                self.epochs_latest.set(cache.entries().last().map(|e| e.0));
                *self.epochs.borrow_mut() = cache;
            }
            Err(e) => {
                tracing::warn!(partition = %self.tp, error = %e, "cannot read the epoch cache")
            }
        }
    }
}

/// The fetch loop of one (shard, leader node) pair.
///
/// At most three requests per loop are in flight, so a node following thousands of
/// partitions from one leader still uses a handful of the connection's streams (which it
/// shares with the quorum): one long poll (it parks at the leader until any of its
/// partitions has data), one eager fetch (no wait) for partitions that got records last time
/// and are ready again while the long poll is parked, and one durable-offset report.
pub(super) struct Fetcher {
    pub leader: NodeId,
    pub partitions: RefCell<BTreeMap<TopicPartition, Rc<FollowerSlot>>>,
    pub wake: Notify,
    long_poll_in_flight: Cell<bool>,
    eager_in_flight: Cell<bool>,
    report_in_flight: Cell<bool>,
    context: Arc<ReplicationContext>,
}

/// What one RPC brought back: the fetches it carried and the leader's answer.
struct Returned {
    eager: bool,
    sent: Vec<(Rc<FollowerSlot>, FollowerFetch)>,
    answer: Result<FetchResponse, String>,
}

impl Fetcher {
    pub fn new(leader: NodeId, context: Arc<ReplicationContext>) -> Rc<Self> {
        Rc::new(Self {
            leader,
            partitions: RefCell::new(BTreeMap::new()),
            wake: Notify::new(),
            long_poll_in_flight: Cell::new(false),
            eager_in_flight: Cell::new(false),
            report_in_flight: Cell::new(false),
            context,
        })
    }
}

/// Runs until the fetcher follows no partition any more.
pub(super) async fn run(fetcher: Rc<Fetcher>) {
    let (returned_tx, mut returned_rx) = mpsc::unbounded_channel::<Returned>();
    loop {
        let slots: Vec<Rc<FollowerSlot>> = {
            let mut partitions = fetcher.partitions.borrow_mut();
            partitions.retain(|_, slot| !slot.stopped.get());
            partitions.values().cloned().collect()
        };
        if slots.is_empty() {
            registry::remove_fetcher(fetcher.leader, &fetcher);
            return;
        }
        // Marked seen before the offsets are read, so a change while this pass runs wakes
        // the wait below.
        let mut receivers: Vec<watch::Receiver<PartitionOffsets>> =
            slots.iter().map(|s| s.offsets.clone()).collect();
        for rx in &mut receivers {
            rx.borrow_and_update();
        }
        let now = Instant::now();
        let long_poll_free = !fetcher.long_poll_in_flight.get();
        let eager_free = !fetcher.eager_in_flight.get();
        let report_free = !fetcher.report_in_flight.get();
        let mut fetches = Vec::new();
        let mut reports = Vec::new();
        for slot in &slots {
            if slot.appending.get() {
                continue;
            }
            slot.refresh_epochs(&fetcher.context, false).await;
            let local = slot.local();
            let mut state = slot.state.borrow_mut();
            if let Some(high_watermark) = state.on_local(local) {
                let context = fetcher.context.clone();
                let tp = slot.tp.clone();
                tokio::task::spawn_local(async move {
                    let _ = context.engine.set_high_watermark(&tp, high_watermark).await;
                });
            }
            let may_fetch = long_poll_free || (eager_free && !slot.idle.get());
            let epochs = slot.epochs.borrow();
            let fetch = if may_fetch {
                state.next_fetch(now, local, &epochs.view(local.log_end))
            } else {
                None
            };
            match fetch {
                Some(fetch) => fetches.push((slot.clone(), fetch)),
                None if report_free => {
                    if let Some(report) = state.durable_report(local) {
                        reports.push((slot.clone(), report));
                    }
                }
                None => {}
            }
        }
        if !fetches.is_empty() {
            send(&fetcher, fetches, !long_poll_free, returned_tx.clone());
        }
        if !reports.is_empty() {
            send_report(&fetcher, reports);
        }
        let deadline = slots
            .iter()
            .filter_map(|s| s.state.borrow().next_deadline())
            .min()
            .map(tokio::time::Instant::from_std);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let grown = any_changed(&mut receivers);
        tokio::select! {
            returned = returned_rx.recv() => {
                if let Some(returned) = returned {
                    if returned.eager {
                        fetcher.eager_in_flight.set(false);
                    } else {
                        fetcher.long_poll_in_flight.set(false);
                    }
                    apply(&fetcher, returned).await;
                }
            }
            _ = fetcher.wake.notified() => {}
            _ = grown => {}
            _ = sleep => {}
        }
    }
}

/// Resolves when any receiver sees a change.
async fn any_changed(receivers: &mut [watch::Receiver<PartitionOffsets>]) {
    let mut changes: Vec<_> = receivers
        .iter_mut()
        .map(|rx| Box::pin(rx.changed()))
        .collect();
    if changes.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(move |cx| {
        for change in changes.iter_mut() {
            if change.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// The Fetch carrying `fetches`, parked at the leader up to `wait`; `records: false` for a
/// report, which asks for no bytes (it only tells the leader a new durable offset; the fetch
/// in flight brings the records).
fn request_of(
    context: &ReplicationContext,
    fetches: &[(Rc<FollowerSlot>, FollowerFetch)],
    wait: Duration,
    records: bool,
) -> FetchRequest {
    let max_wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    let partition_max_bytes = if records {
        i32::try_from(context.settings.fetch_max_bytes).unwrap_or(i32::MAX)
    } else {
        0
    };
    let broker_epoch = fetches.first().map_or(-1, |(_, f)| f.broker_epoch);
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (slot, fetch) in fetches {
        let mut partition = FetchPartition {
            partition: slot.tp.partition,
            current_leader_epoch: fetch.current_leader_epoch,
            fetch_offset: fetch.fetch_offset,
            last_fetched_epoch: fetch.last_fetched_epoch.unwrap_or(-1),
            log_start_offset: fetch.log_start,
            partition_max_bytes,
            ..Default::default()
        };
        set_durable_offset(&mut partition, fetch.durable_offset);
        let topic_id = Uuid(slot.topic_id.0);
        match topics.iter_mut().find(|t| t.topic_id == topic_id) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(FetchTopic {
                topic_id,
                partitions: vec![partition],
                ..Default::default()
            }),
        }
    }
    FetchRequest {
        replica_state: ReplicaState {
            replica_id: context.node_id,
            replica_epoch: broker_epoch,
            ..Default::default()
        },
        max_wait_ms,
        min_bytes: 1,
        max_bytes: i32::try_from(context.settings.fetch_response_max_bytes).unwrap_or(i32::MAX),
        session_epoch: -1,
        topics,
        ..Default::default()
    }
}

/// Sends one Fetch carrying `fetches`; its answer comes back on `returned`.
fn send(
    fetcher: &Rc<Fetcher>,
    fetches: Vec<(Rc<FollowerSlot>, FollowerFetch)>,
    eager: bool,
    returned: mpsc::UnboundedSender<Returned>,
) {
    let context = fetcher.context.clone();
    let leader = fetcher.leader;
    let (wait, flag) = if eager {
        (Duration::ZERO, &fetcher.eager_in_flight)
    } else {
        (
            context.settings.fetch_wait_max,
            &fetcher.long_poll_in_flight,
        )
    };
    flag.set(true);
    let request = request_of(&context, &fetches, wait, true);
    tokio::task::spawn_local(async move {
        let answer = call(&context, leader, &request, wait).await;
        let _ = returned.send(Returned {
            eager,
            sent: fetches,
            answer,
        });
    });
}

fn send_report(fetcher: &Rc<Fetcher>, reports: Vec<(Rc<FollowerSlot>, FollowerFetch)>) {
    let context = fetcher.context.clone();
    let leader = fetcher.leader;
    let request = request_of(&context, &reports, Duration::ZERO, false);
    fetcher.report_in_flight.set(true);
    let fetcher = fetcher.clone();
    tokio::task::spawn_local(async move {
        // The answer to a report is interchangeable with the fetch's: it is not needed.
        if let Err(e) = call(&context, leader, &request, Duration::ZERO).await {
            tracing::debug!(leader, error = %e, "a durable-offset report was not answered");
        }
        fetcher.report_in_flight.set(false);
        fetcher.wake.notify_one();
    });
}

async fn call(
    context: &ReplicationContext,
    leader: NodeId,
    request: &FetchRequest,
    wait: Duration,
) -> Result<FetchResponse, String> {
    let Some(transport) = &context.transport else {
        return Err("this node has no cluster listener".to_owned());
    };
    let image = context.view.image();
    let address = image
        .broker(leader)
        .map(|b| b.cluster_addr.clone())
        .ok_or_else(|| format!("leader {leader} is not registered"))?;
    let message = wire::encode_request(request).map_err(|e| e.to_string())?;
    let timeout = wait + Duration::from_millis(FETCH_ANSWER_SLACK_MS);
    let answer = transport
        .call(leader, &address, message, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let response = wire::decode_response(answer).map_err(|e| e.to_string())?;
    if response.error_code != error_code::NONE {
        return Err(format!(
            "the leader refused the fetch (error {})",
            response.error_code
        ));
    }
    Ok(response)
}

/// Feeds an answer to each partition's state machine and carries out its actions.
async fn apply(fetcher: &Rc<Fetcher>, returned: Returned) {
    let now = Instant::now();
    let response = match returned.answer {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(leader = fetcher.leader, error = %e, "replica fetch failed; backing off");
            for (slot, fetch) in &returned.sent {
                slot.state.borrow_mut().on_fetch_failed(now, fetch);
            }
            return;
        }
    };
    for (slot, fetch) in returned.sent {
        let data = response
            .responses
            .iter()
            .filter(|t| t.topic_id.0 == slot.topic_id.0)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == slot.tp.partition);
        let Some(data) = data else {
            slot.state.borrow_mut().on_fetch_failed(now, &fetch);
            continue;
        };
        let records = data.records.clone().unwrap_or_default();
        slot.idle.set(records.is_empty());
        let answer = match answer_of(data, &fetch, &records) {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(partition = %slot.tp, leader = fetcher.leader, error = %e, "unusable replica fetch answer");
                slot.state.borrow_mut().on_fetch_failed(now, &fetch);
                continue;
            }
        };
        let local = slot.local();
        let actions = {
            let epochs = slot.epochs.borrow();
            slot.state.borrow_mut().on_answer(
                now,
                &fetch,
                answer,
                local,
                &epochs.view(local.log_end),
            )
        };
        carry_out(fetcher, &slot, actions, records).await;
    }
}

/// Reads the leader's answer for one partition into the state machine's terms.
fn answer_of(
    data: &PartitionData,
    fetch: &FollowerFetch,
    records: &Bytes,
) -> Result<LeaderAnswer, String> {
    match data.error_code {
        error_code::NONE if data.diverging_epoch.epoch >= 0 => Ok(LeaderAnswer::Diverging {
            epoch: data.diverging_epoch.epoch,
            end_offset: data.diverging_epoch.end_offset,
        }),
        error_code::NONE => Ok(LeaderAnswer::Records {
            high_watermark: data.high_watermark,
            log_start: data.log_start_offset,
            records_end: wire::records_end(records, fetch.fetch_offset)?,
        }),
        error_code::OFFSET_OUT_OF_RANGE => Ok(LeaderAnswer::OffsetOutOfRange {
            log_start: data.log_start_offset,
            log_end: data.last_stable_offset,
        }),
        error_code::FENCED_LEADER_EPOCH => {
            Ok(LeaderAnswer::Error(ReplicaError::FencedLeaderEpoch {
                fetched: fetch.current_leader_epoch,
                current: data.current_leader.leader_epoch,
            }))
        }
        error_code::UNKNOWN_LEADER_EPOCH => {
            Ok(LeaderAnswer::Error(ReplicaError::UnknownLeaderEpoch {
                fetched: fetch.current_leader_epoch,
            }))
        }
        error_code::NOT_LEADER_OR_FOLLOWER => {
            Ok(LeaderAnswer::Error(ReplicaError::NotLeaderOrFollower))
        }
        other => Err(format!("error code {other}")),
    }
}

/// Carries out `actions` in order. An append is started and left to finish (its write and
/// sync wake the loop through the offsets watch); everything else is awaited.
async fn carry_out(
    fetcher: &Rc<Fetcher>,
    slot: &Rc<FollowerSlot>,
    actions: Vec<FollowerAction>,
    records: Bytes,
) {
    let context = &fetcher.context;
    for action in actions {
        match action {
            FollowerAction::Truncate {
                to,
                below_high_watermark,
            } => {
                if below_high_watermark {
                    tracing::warn!(partition = %slot.tp, to, leader = fetcher.leader, "truncating below this replica's high watermark (expected only after an unclean election or lost data)");
                } else {
                    tracing::info!(partition = %slot.tp, to, leader = fetcher.leader, "truncating a divergent tail by leader epoch");
                }
                if let Err(e) = context.engine.truncate_to(&slot.tp, to).await {
                    tracing::error!(partition = %slot.tp, to, error = %e, "truncation failed; fetching again");
                    slot.state.borrow_mut().on_action_failed(Instant::now());
                    return;
                }
                slot.refresh_epochs(context, true).await;
            }
            FollowerAction::StartAt { offset } => {
                tracing::info!(partition = %slot.tp, offset, leader = fetcher.leader, "starting the replica over at the leader's log start");
                if let Err(e) = context
                    .engine
                    .truncate_fully_and_start_at(&slot.tp, offset)
                    .await
                {
                    tracing::error!(partition = %slot.tp, offset, error = %e, "cannot start the replica over; fetching again");
                    slot.state.borrow_mut().on_action_failed(Instant::now());
                    return;
                }
                slot.refresh_epochs(context, true).await;
            }
            FollowerAction::Append { .. } => {
                if records.is_empty() {
                    continue;
                }
                slot.appending.set(true);
                let context = context.clone();
                let slot = slot.clone();
                let records = records.clone();
                let wake = fetcher.clone();
                tokio::task::spawn_local(async move {
                    let outcome = context.engine.append_replica(&slot.tp, records).await;
                    slot.appending.set(false);
                    if let Err(e) = outcome {
                        tracing::warn!(partition = %slot.tp, error = %e, "appending replicated batches failed; fetching again");
                        slot.state.borrow_mut().on_action_failed(Instant::now());
                    }
                    wake.wake.notify_one();
                });
            }
            FollowerAction::AdvanceLogStart { offset } => {
                let high_watermark = slot.offsets.borrow().high_watermark;
                let to = offset.min(high_watermark);
                if let Err(e) = context.engine.delete_records_before(&slot.tp, to).await {
                    tracing::debug!(partition = %slot.tp, to, error = %e, "cannot follow the leader's log start");
                }
            }
            FollowerAction::SetHighWatermark { offset } => {
                if let Err(e) = context.engine.set_high_watermark(&slot.tp, offset).await {
                    tracing::warn!(partition = %slot.tp, offset, error = %e, "cannot move the high watermark");
                }
            }
        }
    }
}
