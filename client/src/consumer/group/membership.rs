//! The membership task: find the coordinator, join, sync, heartbeat, rejoin.
//!
//! One loop, one step at a time. A step that fails for a reason time may cure (the
//! coordinator moved, is loading, or the connection dropped) is retried after a backoff
//! that doubles up to a second; one that cannot (another member took this static member's
//! instance id, the group refuses the protocol) stops the task and is handed to `poll`.
//!
//! Partitions are given up on the polling thread (see the module above): the task posts a
//! [`Revocation`] and waits for it, heartbeating meanwhile so the coordinator does not
//! time the member out while the application finishes its current records.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_protocol::ErrorCode;
use spate_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use spate_protocol::messages::leave_group_request::MemberIdentity;
use spate_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use tokio::sync::oneshot;

use super::assignor::Assignor;
use super::commit::{
    commit, coordinator, coordinator_failed, fenced, fetch_committed, join_connection,
};
use super::leader::{lead, partition_counts};
use super::protocol::{Assignment, Subscription};
use super::{GroupShared, Revocation};
use crate::client::Client;
use crate::connection::Connection;
use crate::error::{Error, error_code};
use crate::offsets::TopicPartition;

/// The consumer protocol's type name in JoinGroup and SyncGroup.
const PROTOCOL_TYPE: &str = "consumer";

/// How many MEMBER_ID_REQUIRED answers in a row one join accepts before backing off.
const MEMBER_ID_ROUNDS_MAX: usize = 3;

/// The longest backoff between failed steps (Kafka's `retry.backoff.max.ms`).
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Why a step stopped.
pub(super) enum Stop {
    /// Try again after a backoff.
    Retry(Error),
    /// The member cannot go on; `poll` reports it.
    Fatal(Error),
}

pub(super) type Step<T = ()> = Result<T, Stop>;

/// What one heartbeat found.
enum Beat {
    Alive,
    Rebalancing,
    /// The coordinator no longer knows this member or generation; partitions are dropped.
    Lost,
}

struct Membership {
    shared: Arc<GroupShared>,
    next_heartbeat: Instant,
    next_metadata_check: Instant,
}

pub(super) async fn run(shared: Arc<GroupShared>) {
    let now = Instant::now();
    let metadata_max_age = shared.consumer.client().config().metadata_max_age;
    let retry_backoff = shared.consumer.client().config().retry_backoff;
    let mut membership = Membership {
        shared: shared.clone(),
        next_heartbeat: now,
        next_metadata_check: now + metadata_max_age,
    };
    let mut failures: u32 = 0;
    loop {
        match membership.step().await {
            Ok(()) => failures = 0,
            Err(Stop::Fatal(error)) => {
                tracing::error!(%error, group = shared.group(), "the group member stops");
                shared.lock().fatal.get_or_insert(error);
                shared.poll_wake.notify_one();
                return;
            }
            Err(Stop::Retry(error)) => {
                coordinator_failed(&shared, &error);
                failures = failures.saturating_add(1);
                let delay = retry_backoff
                    .saturating_mul(1 << failures.saturating_sub(1).min(10))
                    .min(RETRY_BACKOFF_MAX.max(retry_backoff));
                tracing::info!(%error, group = shared.group(), ?delay, "group step failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// A group-level error answer as a stop: retriable codes are retried, others end the member.
fn refused(connection: &Connection, what: String, code: ErrorCode) -> Stop {
    let error = Error::Broker {
        broker: connection.broker().to_string(),
        what,
        code,
        message: None,
    };
    if code.is_retriable() || code == ErrorCode::RebalanceInProgress {
        Stop::Retry(error)
    } else {
        Stop::Fatal(error)
    }
}

fn millis(duration: Duration) -> i32 {
    duration.as_millis().min(i32::MAX as u128) as i32
}

impl Membership {
    async fn step(&mut self) -> Step {
        let (idle, subscribed, settled, rejoin) = {
            let state = self.shared.lock();
            (
                state.left_idle,
                !state.topics.is_empty(),
                state.generation.is_some(),
                state.rejoin_needed,
            )
        };
        if !subscribed && settled {
            self.unsubscribed().await;
            return Ok(());
        }
        if idle || !subscribed {
            self.shared.membership_wake.notified().await;
            return Ok(());
        }
        if !settled || rejoin {
            return self.join().await;
        }
        self.settled().await
    }

    /// One wait in a settled generation: heartbeat, metadata check, or poll timeout.
    async fn settled(&mut self) -> Step {
        let poll_deadline = self.poll_deadline();
        let wake_at = self
            .next_heartbeat
            .min(self.next_metadata_check)
            .min(poll_deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at.into()) => {}
            _ = self.shared.membership_wake.notified() => return Ok(()),
        }
        let now = Instant::now();
        if now >= self.poll_deadline() {
            self.leave_idle().await;
            return Ok(());
        }
        if now >= self.next_heartbeat {
            self.heartbeat().await?;
        }
        if now >= self.next_metadata_check {
            self.next_metadata_check =
                now + self.shared.consumer.client().config().metadata_max_age;
            self.check_partition_counts().await;
        }
        Ok(())
    }

    fn poll_deadline(&self) -> Instant {
        self.shared.lock().last_poll + self.shared.config.max_poll_interval
    }

    async fn heartbeat(&mut self) -> Step<Beat> {
        self.next_heartbeat = Instant::now() + self.shared.config.heartbeat_interval;
        let shared = &self.shared;
        let (generation, member_id) = {
            let state = shared.lock();
            (state.generation, state.member_id.clone())
        };
        let Some(generation) = generation else {
            return Ok(Beat::Rebalancing);
        };
        let connection = coordinator(shared).await.map_err(Stop::Retry)?;
        let request = HeartbeatRequest {
            group_id: shared.group().to_string(),
            generation_id: generation,
            member_id,
            group_instance_id: shared.config.group_instance_id.clone(),
            ..Default::default()
        };
        let response = connection.send(&request).await.map_err(Stop::Retry)?;
        let code = error_code(response.error_code);
        let mut state = shared.lock();
        match code {
            ErrorCode::None => Ok(Beat::Alive),
            ErrorCode::RebalanceInProgress => {
                state.rejoin_needed = true;
                Ok(Beat::Rebalancing)
            }
            ErrorCode::IllegalGeneration | ErrorCode::UnknownMemberId => {
                tracing::warn!(group = shared.group(), %code, "heartbeat refused; rejoining");
                if code == ErrorCode::UnknownMemberId {
                    state.member_id.clear();
                }
                shared.lose_partitions(&mut state);
                Ok(Beat::Lost)
            }
            ErrorCode::FencedInstanceId => Err(Stop::Fatal(fenced(shared, &connection))),
            code => Err(refused(
                &connection,
                format!("heartbeat of group {}", shared.group()),
                code,
            )),
        }
    }

    /// Gives up `partitions` through the polling thread, heartbeating while it finishes.
    async fn revoke(&mut self, partitions: BTreeSet<TopicPartition>) -> Step {
        if partitions.is_empty() {
            return Ok(());
        }
        let (done, mut finished) = oneshot::channel();
        self.shared.lock().revocation = Some(Revocation { partitions, done });
        self.shared.poll_wake.notify_one();
        loop {
            let poll_deadline = self.poll_deadline();
            tokio::select! {
                _ = &mut finished => return Ok(()),
                _ = tokio::time::sleep_until(self.next_heartbeat.into()) => {
                    if let Beat::Lost = self.heartbeat().await? {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep_until(poll_deadline.into()) => {
                    if Instant::now() >= self.poll_deadline() {
                        self.leave_idle().await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A full rebalance round: give up what the protocol says to, JoinGroup, assign when
    /// leading, SyncGroup, then take up the new assignment.
    async fn join(&mut self) -> Step {
        let shared = self.shared.clone();
        let group = shared.group();
        let cooperative = shared.config.cooperative();
        if !cooperative {
            let owned = shared.lock().owned.clone();
            self.revoke(owned).await?;
            if shared.lock().left_idle {
                return Ok(());
            }
        }
        let connection = join_connection(&shared).await.map_err(Stop::Retry)?;
        let (subscription, mut member_id) = {
            let mut state = shared.lock();
            state.rejoin_needed = false;
            state.generation = None;
            let subscription = Subscription {
                topics: state.topics.iter().cloned().collect(),
                user_data: None,
                owned: state.owned.iter().cloned().collect(),
                generation: state.owned_generation,
                rack: None,
            };
            (subscription, state.member_id.clone())
        };
        let metadata = subscription.encode().map_err(|e| {
            Stop::Fatal(Error::Encode {
                broker: connection.broker().to_string(),
                api: "JoinGroup",
                reason: format!("subscription of group {group}: {e}"),
            })
        })?;
        let mut rounds = 0;
        let joined = loop {
            rounds += 1;
            let request = JoinGroupRequest {
                group_id: group.to_string(),
                session_timeout_ms: millis(shared.config.session_timeout),
                rebalance_timeout_ms: millis(shared.config.max_poll_interval),
                member_id: member_id.clone(),
                group_instance_id: shared.config.group_instance_id.clone(),
                protocol_type: PROTOCOL_TYPE.into(),
                protocols: shared
                    .config
                    .assignors
                    .iter()
                    .map(|a| JoinGroupRequestProtocol {
                        name: a.name().into(),
                        metadata: metadata.clone(),
                        ..Default::default()
                    })
                    .collect(),
                reason: Some("spate-client (re)joining".into()),
                ..Default::default()
            };
            let response = connection.send(&request).await.map_err(Stop::Retry)?;
            match error_code(response.error_code) {
                ErrorCode::None => break response,
                ErrorCode::MemberIdRequired if rounds < MEMBER_ID_ROUNDS_MAX => {
                    member_id = response.member_id.clone();
                    shared.lock().member_id = member_id.clone();
                }
                ErrorCode::UnknownMemberId => {
                    let mut state = shared.lock();
                    state.member_id.clear();
                    shared.lose_partitions(&mut state);
                    return Ok(());
                }
                ErrorCode::FencedInstanceId => {
                    return Err(Stop::Fatal(fenced(&shared, &connection)));
                }
                code => {
                    return Err(refused(&connection, format!("joining group {group}"), code));
                }
            }
        };
        let generation = joined.generation_id;
        member_id = joined.member_id.clone();
        shared.lock().member_id = member_id.clone();
        let protocol = joined.protocol_name.clone().unwrap_or_default();
        let Some(assignor) =
            Assignor::from_name(&protocol).filter(|a| shared.config.assignors.contains(a))
        else {
            return Err(Stop::Fatal(Error::Protocol {
                broker: connection.broker().to_string(),
                reason: format!(
                    "the coordinator chose assignor {protocol:?} for group {group}, which this \
                     member did not offer"
                ),
            }));
        };
        let assignments = if joined.leader == member_id && !joined.skip_assignment {
            lead(&shared, assignor, &joined.members, &connection).await?
        } else {
            Vec::new()
        };
        let request = SyncGroupRequest {
            group_id: group.to_string(),
            generation_id: generation,
            member_id: member_id.clone(),
            group_instance_id: shared.config.group_instance_id.clone(),
            protocol_type: Some(PROTOCOL_TYPE.into()),
            protocol_name: Some(protocol),
            assignments,
            ..Default::default()
        };
        let synced = connection.send(&request).await.map_err(Stop::Retry)?;
        match error_code(synced.error_code) {
            ErrorCode::None => {}
            ErrorCode::RebalanceInProgress => return Ok(()),
            code @ (ErrorCode::IllegalGeneration | ErrorCode::UnknownMemberId) => {
                let mut state = shared.lock();
                if code == ErrorCode::UnknownMemberId {
                    state.member_id.clear();
                }
                shared.lose_partitions(&mut state);
                return Ok(());
            }
            ErrorCode::FencedInstanceId => return Err(Stop::Fatal(fenced(&shared, &connection))),
            code => {
                return Err(refused(
                    &connection,
                    format!("syncing group {group} (generation {generation})"),
                    code,
                ));
            }
        }
        let assignment = Assignment::decode(synced.assignment).map_err(|e| {
            Stop::Fatal(Error::Protocol {
                broker: connection.broker().to_string(),
                reason: format!(
                    "the assignment of group {group} (generation {generation}) is not a \
                     consumer assignment: {e}"
                ),
            })
        })?;
        self.take_assignment(generation, assignment.partitions, cooperative)
            .await
    }

    /// Applies a new generation's assignment: gives up what it leaves out (then, when
    /// cooperative, rejoins so those partitions can move), and starts what it adds at the
    /// group's committed offsets.
    async fn take_assignment(
        &mut self,
        generation: i32,
        partitions: Vec<TopicPartition>,
        cooperative: bool,
    ) -> Step {
        let shared = self.shared.clone();
        let assigned: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        let (revoked, added, topics) = {
            let mut state = shared.lock();
            state.generation = Some(generation);
            let revoked: BTreeSet<TopicPartition> =
                state.owned.difference(&assigned).cloned().collect();
            let added: Vec<TopicPartition> = assigned.difference(&state.owned).cloned().collect();
            let topics: Vec<String> = state.topics.iter().cloned().collect();
            (revoked, added, topics)
        };
        self.next_heartbeat = Instant::now() + shared.config.heartbeat_interval;
        if !revoked.is_empty() {
            self.revoke(revoked).await?;
            if cooperative {
                shared.lock().rejoin_needed = true;
            }
        }
        let committed = match fetch_committed(&shared, &added).await {
            Ok(committed) => committed,
            Err(error) => {
                // Without the committed offsets the partitions would start at
                // auto.offset.reset; rejoin instead and fetch them again.
                shared.lock().rejoin_needed = true;
                return Err(Stop::Retry(error));
            }
        };
        {
            let mut state = shared.lock();
            if state.generation != Some(generation) {
                return Ok(());
            }
            state.owned.extend(added.iter().cloned());
            shared.consumer.assign(state.owned.iter().cloned());
            for (tp, offset) in &committed {
                if let Some(offset) = offset
                    && let Err(error) = shared.consumer.seek(&tp.0, tp.1, *offset)
                {
                    tracing::warn!(%error, "seek to committed offset failed");
                }
            }
            state.owned_generation = generation;
            tracing::info!(group = shared.group(), generation, owned = ?state.owned, added = ?added, "assignment taken");
        }
        match partition_counts(shared.consumer.client(), &topics).await {
            Ok(counts) => shared.lock().partition_counts = counts,
            Err(error) => {
                tracing::debug!(%error, "partition counts unknown; checking again soon");
                self.next_metadata_check = Instant::now() + shared.config.heartbeat_interval;
            }
        }
        Ok(())
    }

    /// Rejoins when a subscribed topic gained partitions (or appeared), so they get owners.
    async fn check_partition_counts(&mut self) {
        let topics: Vec<String> = self.shared.lock().topics.iter().cloned().collect();
        let Ok(counts) = partition_counts(self.shared.consumer.client(), &topics).await else {
            return;
        };
        let mut state = self.shared.lock();
        if counts != state.partition_counts {
            tracing::info!(group = self.shared.group(), before = ?state.partition_counts, now = ?counts,
                "subscribed topics changed; rejoining");
            state.rejoin_needed = true;
        }
    }

    /// Subscribed to nothing: commit (with auto-commit) and leave, as Kafka's
    /// `unsubscribe` does.
    async fn unsubscribed(&mut self) {
        if self.shared.config.enable_auto_commit {
            let offsets = self.shared.consumed_positions();
            if let Err(error) = commit(&self.shared, offsets).await {
                tracing::warn!(%error, "commit before unsubscribing failed");
            }
        }
        if let Err(error) = leave(&self.shared, "the consumer unsubscribed").await {
            tracing::debug!(%error, "leaving the group failed");
        }
        let mut state = self.shared.lock();
        self.shared.lose_partitions(&mut state);
    }

    /// `max.poll.interval.ms` passed without a poll: leave, as Kafka's consumer does, so the
    /// partitions go to members that are consuming. The next poll rejoins.
    async fn leave_idle(&mut self) {
        tracing::warn!(
            group = self.shared.group(),
            "no poll within max.poll.interval.ms ({} ms); leaving the group. Poll more \
             often, or raise max_poll_interval",
            self.shared.config.max_poll_interval.as_millis()
        );
        if let Err(error) = leave(&self.shared, "consumer poll timeout has expired").await {
            tracing::debug!(%error, "leaving the group failed");
        }
        let mut state = self.shared.lock();
        self.shared.lose_partitions(&mut state);
        state.left_idle = true;
    }
}

/// LeaveGroup for a dynamic member, so its partitions move now rather than after the
/// session timeout. Static members do not leave (KIP-345): a restart keeps their place.
pub(super) async fn leave(shared: &GroupShared, reason: &str) -> Result<(), Error> {
    let member_id = shared.lock().member_id.clone();
    if shared.config.group_instance_id.is_some() || member_id.is_empty() {
        return Ok(());
    }
    let connection = coordinator(shared).await?;
    let group = shared.group();
    let build = |version: i16| {
        Ok(LeaveGroupRequest {
            group_id: group.to_string(),
            members: vec![MemberIdentity {
                member_id: member_id.clone(),
                group_instance_id: None,
                reason: (version >= 5).then(|| reason.to_string()),
                ..Default::default()
            }],
            ..Default::default()
        })
    };
    let response = Client::send_versioned::<LeaveGroupRequest, _>(&connection, build).await?;
    {
        let mut state = shared.lock();
        state.member_id.clear();
        state.generation = None;
    }
    let code = match error_code(response.error_code) {
        ErrorCode::None => response
            .members
            .iter()
            .map(|m| error_code(m.error_code))
            .find(|c| *c != ErrorCode::None)
            .unwrap_or(ErrorCode::None),
        code => code,
    };
    match code {
        // Already gone (its session expired): nothing to leave.
        ErrorCode::None | ErrorCode::UnknownMemberId => Ok(()),
        code => Err(Error::Broker {
            broker: connection.broker().to_string(),
            what: format!("leaving group {group} as member {member_id}"),
            code,
            message: None,
        }),
    }
}
