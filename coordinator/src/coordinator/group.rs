//! One classic group: its members and the state machine of Kafka's `ClassicGroup`.
//!
//! The transitions live here so that every path (a join, a leave, a timer) goes through the
//! same few functions — `prepare_rebalance`, `complete_join`, `remove_member` — exactly as
//! Kafka's `GroupMetadataManager` funnels them. Requests are parsed and validated in
//! `membership.rs`; timers are found and fired in `timers.rs`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use spate_protocol::ErrorCode;

use super::Cx;
use crate::api::*;
use crate::consumer_protocol;
use crate::records::{GroupValue, MemberValue, Record};

/// Kafka's `group.classic.new.member.join.timeout.ms` default. A new member cannot heartbeat
/// while its first JoinGroup is parked, and a client that gave up and retried leaves a
/// defunct member behind: this bounds how long such a member can hold up a rebalance.
pub(super) const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

/// The protocol type whose embedded subscriptions the coordinator can read (offset expiry
/// and OffsetDelete depend on which topics the members subscribe to).
pub(super) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// `now + ms`, never overflowing, and never in the past for a negative (absurd) timeout.
pub(super) fn after(now: Millis, ms: i64) -> Millis {
    now.saturating_add(ms.max(0))
}

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// The parked JoinGroup, answered when the join phase completes.
    pub join_token: Option<Token>,
    /// The parked SyncGroup, answered when the leader's assignment is stored.
    pub sync_token: Option<Token>,
    /// Joined but not yet through a completed join phase: it must be expired even while
    /// parked, since it has no member id to heartbeat with.
    pub is_new: bool,
    pub session_deadline: Millis,
    /// Join order: the successor of a departed leader is the oldest member.
    pub seq: u64,
}

impl Member {
    /// The metadata the member sent for `protocol`; empty when it did not name it.
    pub fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|name| self.protocols.iter().find(|p| p.name == name))
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// When the session expires, or `None` while parked in a rebalance: Kafka lets parked
    /// members skip heartbeats (they are bounded by the rebalance timeout instead).
    pub fn expiry(&self) -> Option<Millis> {
        let parked = self.join_token.is_some() || self.sync_token.is_some();
        if parked && !self.is_new {
            None
        } else {
            Some(self.session_deadline)
        }
    }

    pub fn touch(&mut self, now: Millis) {
        self.session_deadline = after(now, i64::from(self.session_timeout_ms));
    }
}

/// What the join-phase timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JoinTimer {
    /// The rebalance timeout: complete with whoever rejoined.
    Rebalance,
    /// Kafka's `InitialDelayedJoin`: a new group waits for more members, extending the
    /// delay while they keep coming, within the rebalance timeout.
    InitialDelay { delay_ms: i64, remaining_ms: i64 },
}

#[derive(Debug, Clone)]
pub(super) struct Group {
    pub id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    /// When the group entered its state; `None` for groups loaded from old records.
    pub state_timestamp: Option<Millis>,
    pub generation: i32,
    /// `None` for a "simple" group that only stores offsets.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id.
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry (KIP-394).
    pub pending: BTreeMap<String, Millis>,
    /// Members that have not sent SyncGroup since the join phase completed.
    pub pending_sync: BTreeSet<String>,
    pub join_timer: Option<(Millis, JoinTimer)>,
    pub new_member_added: bool,
    pub sync_deadline: Option<Millis>,
    pub offsets: BTreeMap<PartitionKey, OffsetAndMetadata>,
    /// The group record last handed to the log: what a restart would load.
    pub stored: Option<GroupValue>,
    pub next_seq: u64,
    /// When offsets expire or the group itself is due for deletion. Cached because it
    /// depends on every offset and subscription; refreshed by every change but heartbeats.
    pub retention_at: Option<Millis>,
}

impl Group {
    pub fn new(id: String, now: Millis) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            previous_state: GroupState::Dead,
            state_timestamp: Some(now),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_timer: None,
            new_member_added: false,
            sync_deadline: None,
            offsets: BTreeMap::new(),
            stored: None,
            next_seq: 0,
            retention_at: None,
        }
    }

    /// Nothing to remember: no members, no offsets, never written. Dropping such a group
    /// loses nothing, and keeps refused joins from leaving groups behind.
    pub fn is_vacant(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending.is_empty()
            && self.offsets.is_empty()
            && self.stored.is_none()
    }

    pub fn transition(&mut self, to: GroupState, now: Millis) {
        debug_assert!(
            legal_transition(self.state, to),
            "illegal transition {:?} -> {:?}",
            self.state,
            to
        );
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp = Some(now);
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// The members in join order.
    pub fn members_in_order(&self) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        members
    }

    /// The group's rebalance timeout: the longest any member asked for.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
            .max(0)
    }

    pub fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.join_token.is_some())
            .count()
    }

    pub fn all_members_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_token.is_some())
    }

    /// Kafka's `ClassicGroup.validateMember`: a static member is checked by instance id
    /// first, so a stale member id of a live instance is told it was fenced.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ErrorCode> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                None => return Err(ErrorCode::UnknownMemberId),
                Some(current) if current != member_id => return Err(ErrorCode::FencedInstanceId),
                Some(_) => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ErrorCode::UnknownMemberId)
        }
    }

    /// Whether a joining member could share a protocol with everyone already in the group.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| self.members.values().all(|m| m.supports(&p.name)))
    }

    /// Kafka's vote: each member votes for its most preferred protocol that every member
    /// supports; the most votes wins (ties go to the smaller name, to be deterministic).
    pub fn select_protocol(&self) -> Option<String> {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            let choice = member
                .protocols
                .iter()
                .find(|p| self.members.values().all(|other| other.supports(&p.name)));
            if let Some(protocol) = choice {
                *votes.entry(protocol.name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, most)| count > most) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_owned())
    }

    /// The topics the members subscribe to, when the group is a consumer group whose
    /// subscriptions can all be read; `None` when the coordinator cannot know.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            topics.extend(consumer_protocol::subscribed_topics(
                &member.metadata(Some(protocol)),
            )?);
        }
        Some(topics)
    }

    /// Kafka's `isSubscribedToTopic`: when a consumer group's subscriptions cannot be read,
    /// assume it is subscribed, so its offsets are never deleted from under it.
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        match self.subscribed_topics() {
            Some(topics) => topics.contains(topic),
            None => self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE),
        }
    }

    pub fn add_member(&mut self, mut member: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_owned());
        }
        member.seq = self.next_seq;
        self.next_seq += 1;
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        self.pending.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member, answering whatever it had parked: it is no longer a member, so
    /// UNKNOWN_MEMBER_ID tells the client to join afresh.
    pub fn remove_member(&mut self, cx: &mut Cx<'_>, member_id: &str) -> bool {
        let Some(member) = self.members.remove(member_id) else {
            return self.pending.remove(member_id).is_some();
        };
        if let Some(token) = member.join_token {
            let result = JoinResult::error(ErrorCode::UnknownMemberId, "");
            cx.effects.push_back(Effect::JoinDone { token, result });
        }
        if let Some(token) = member.sync_token {
            let result = SyncResult::error(ErrorCode::UnknownMemberId);
            cx.effects.push_back(Effect::SyncDone { token, result });
        }
        if let Some(instance) = &member.instance_id
            && self.static_members.get(instance) == Some(&member.id)
        {
            self.static_members.remove(instance);
        }
        if self.is_leader(member_id) {
            self.leader = self.members_in_order().first().map(|m| m.id.clone());
        }
        self.pending_sync.remove(member_id);
        true
    }

    /// KIP-345: a restarted static member takes over its predecessor's place (assignment
    /// included) under a new member id; the old id is fenced from now on.
    pub fn replace_static_member(
        &mut self,
        cx: &mut Cx<'_>,
        instance: &str,
        old_id: &str,
        new_id: &str,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            return;
        };
        if let Some(token) = member.join_token.take() {
            let mut result = JoinResult::error(ErrorCode::FencedInstanceId, old_id);
            result.leader = String::new();
            cx.effects.push_back(Effect::JoinDone { token, result });
        }
        if let Some(token) = member.sync_token.take() {
            let result = SyncResult::error(ErrorCode::FencedInstanceId);
            cx.effects.push_back(Effect::SyncDone { token, result });
        }
        member.id = new_id.to_owned();
        member.is_new = false;
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_owned());
        }
        self.static_members
            .insert(instance.to_owned(), new_id.to_owned());
        self.members.insert(new_id.to_owned(), member);
    }

    /// The JoinGroup answer for the current generation. The leader gets every member's
    /// metadata for the selected protocol, to compute the assignment from.
    pub fn join_result(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let members = if self.is_leader(member_id) {
            let protocol = self.protocol_name.as_deref();
            self.members_in_order()
                .into_iter()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    metadata: m.metadata(protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: ErrorCode::None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_owned(),
            members,
        }
    }

    /// The group as `__consumer_offsets` stores it.
    pub fn value(&self) -> GroupValue {
        let protocol = self.protocol_name.as_deref();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.state_timestamp.unwrap_or(-1),
            members: self
                .members_in_order()
                .into_iter()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Queues the group record; replies queued after it go out only once it is written.
    pub fn persist(&mut self, cx: &mut Cx<'_>) {
        let value = self.value();
        self.stored = Some(value.clone());
        cx.effects.push_back(Effect::Append(vec![Record::Group {
            group: self.id.clone(),
            value: Some(value),
        }]));
    }

    // ---- the rebalance state machine ----

    pub fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    pub fn maybe_prepare_rebalance_or_complete_join(&mut self, cx: &mut Cx<'_>) {
        if self.can_rebalance() {
            self.prepare_rebalance(cx);
        } else {
            self.maybe_complete_join_phase(cx);
        }
    }

    /// Completes the join phase early when every member has rejoined — except during the
    /// initial delay, whose point is to wait for members that have not joined yet.
    pub fn maybe_complete_join_phase(&mut self, cx: &mut Cx<'_>) {
        if self.state == GroupState::PreparingRebalance
            && self.previous_state != GroupState::Empty
            && self.all_members_joined()
        {
            self.complete_join(cx);
        }
    }

    pub fn prepare_rebalance(&mut self, cx: &mut Cx<'_>) {
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
            }
            self.propagate_sync(cx, ErrorCode::RebalanceInProgress);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let initial = self.state == GroupState::Empty;
        self.transition(GroupState::PreparingRebalance, cx.now);
        if initial {
            let delay_ms = i64::from(cx.config.initial_rebalance_delay_ms).max(0);
            let remaining_ms = (self.rebalance_timeout_ms() - delay_ms).max(0);
            let timer = JoinTimer::InitialDelay {
                delay_ms,
                remaining_ms,
            };
            self.join_timer = Some((after(cx.now, delay_ms), timer));
        } else if self.all_members_joined() {
            self.complete_join(cx);
        } else {
            let at = after(cx.now, self.rebalance_timeout_ms());
            self.join_timer = Some((at, JoinTimer::Rebalance));
        }
    }

    /// Ends the join phase: drops dynamic members that did not rejoin, starts the next
    /// generation and answers every parked JoinGroup.
    pub fn complete_join(&mut self, cx: &mut Cx<'_>) {
        self.join_timer = None;
        self.new_member_added = false;
        let absent: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_token.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in absent {
            self.remove_member(cx, &id);
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin are left: wait another rebalance
            // timeout for them (or for their sessions to expire). At least a millisecond,
            // so a zero timeout cannot re-arm the timer at the instant it fired.
            let at = after(cx.now, self.rebalance_timeout_ms().max(1));
            self.join_timer = Some((at, JoinTimer::Rebalance));
            return;
        }
        self.generation = self.generation.saturating_add(1);
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, cx.now);
            self.persist(cx);
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, cx.now);
        let ids: Vec<String> = self
            .members_in_order()
            .iter()
            .map(|m| m.id.clone())
            .collect();
        for id in ids {
            let result = self.join_result(&id, false);
            if let Some(member) = self.members.get_mut(&id) {
                if let Some(token) = member.join_token.take() {
                    cx.effects.push_back(Effect::JoinDone { token, result });
                }
                member.touch(cx.now);
                member.is_new = false;
            }
            self.pending_sync.insert(id);
        }
        self.sync_deadline = Some(after(cx.now, self.rebalance_timeout_ms()));
    }

    /// Keeps the leader if it rejoined, else hands leadership to a member that did.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(|m| m.join_token.is_some())
        {
            return true;
        }
        let successor = self
            .members_in_order()
            .into_iter()
            .find(|m| m.join_token.is_some())
            .map(|m| m.id.clone());
        match successor {
            Some(id) => {
                self.leader = Some(id);
                true
            }
            None => false,
        }
    }

    /// Answers every parked SyncGroup: with its assignment, or with `error`.
    pub fn propagate_sync(&mut self, cx: &mut Cx<'_>, error: ErrorCode) {
        let (protocol_type, protocol_name) = if error == ErrorCode::None {
            (self.protocol_type.clone(), self.protocol_name.clone())
        } else {
            (None, None)
        };
        let mut members: Vec<&mut Member> = self.members.values_mut().collect();
        members.sort_by_key(|m| m.seq);
        for member in members {
            if let Some(token) = member.sync_token.take() {
                let result = SyncResult {
                    error,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                cx.effects.push_back(Effect::SyncDone { token, result });
                member.touch(cx.now);
            }
        }
    }

    /// A member left or failed: the group rebalances without it, or the join phase it was
    /// holding up completes.
    pub fn after_member_removed(&mut self, cx: &mut Cx<'_>) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(cx)
            }
            GroupState::PreparingRebalance if self.all_members_joined() => self.complete_join(cx),
            _ => {}
        }
    }
}

/// Kafka's `ClassicGroupState.validPreviousStates`.
fn legal_transition(from: GroupState, to: GroupState) -> bool {
    use GroupState::*;
    match to {
        PreparingRebalance => matches!(from, Stable | CompletingRebalance | Empty),
        CompletingRebalance => from == PreparingRebalance,
        Stable => from == CompletingRebalance,
        Empty => from == PreparingRebalance,
        Dead => true,
    }
}
