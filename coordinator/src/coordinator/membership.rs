//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: the checks Kafka's
//! `GroupMetadataManager` makes, in its order, before driving the group's state machine.

use bytes::Bytes;
use spate_protocol::ErrorCode;

use super::group::{Group, Member, NEW_MEMBER_JOIN_TIMEOUT_MS, after};
use super::{Coordinator, Cx};
use crate::api::*;

/// Cap on member ids handed out with MEMBER_ID_REQUIRED and not yet used, per group. They
/// expire after a session timeout anyway; the cap stops a client looping on empty joins
/// from growing the table within that window. The oldest is dropped first (its client
/// gets UNKNOWN_MEMBER_ID and simply asks again).
const PENDING_MEMBERS_MAX: usize = 4096;

impl Coordinator {
    pub(super) fn join(&mut self, now: Millis, token: Token, req: JoinGroup) -> Reply<JoinResult> {
        if req.group_id.is_empty() {
            return Reply::Now(JoinResult::error(ErrorCode::InvalidGroupId, req.member_id));
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Reply::Now(JoinResult::error(
                ErrorCode::InvalidSessionTimeout,
                req.member_id,
            ));
        }
        if !self.groups.contains_key(&req.group_id) {
            // Only a member without an id may create a group; the group is created before
            // any other check, as in Kafka, but a refused join leaves it vacant and
            // `settle` drops it again.
            if !req.member_id.is_empty() {
                return Reply::Now(JoinResult::error(ErrorCode::UnknownMemberId, req.member_id));
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(req.group_id.clone(), now));
        }
        let Some((group, mut cx)) = self.group_cx(&req.group_id, now) else {
            return Reply::Now(JoinResult::error(
                ErrorCode::CoordinatorNotAvailable,
                req.member_id,
            ));
        };
        join_group(group, &mut cx, token, req)
    }

    pub(super) fn sync(&mut self, now: Millis, token: Token, req: SyncGroup) -> Reply<SyncResult> {
        let Some((group, mut cx)) = self.group_cx(&req.group_id, now) else {
            return Reply::Now(SyncResult::error(ErrorCode::UnknownMemberId));
        };
        sync_group(group, &mut cx, token, req)
    }

    pub(super) fn beat(&mut self, now: Millis, req: Heartbeat) -> ErrorCode {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if let Err(error) = group.validate_member(&req.member_id, req.group_instance_id.as_deref())
        {
            return error;
        }
        if req.generation_id != group.generation {
            return ErrorCode::IllegalGeneration;
        }
        let state = group.state;
        let Some(member) = group.members.get_mut(&req.member_id) else {
            return ErrorCode::UnknownMemberId;
        };
        match state {
            GroupState::Empty | GroupState::Dead => ErrorCode::UnknownMemberId,
            GroupState::PreparingRebalance => {
                member.touch(now);
                ErrorCode::RebalanceInProgress
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.touch(now);
                ErrorCode::None
            }
        }
    }

    pub(super) fn leave(
        &mut self,
        now: Millis,
        group_id: &str,
        leaving: Vec<LeavingMember>,
    ) -> LeaveResult {
        let Some((group, mut cx)) = self.group_cx(group_id, now) else {
            // Kafka answers an unknown group member by member, not at the group level.
            let members = leaving
                .into_iter()
                .map(|m| (m.member_id, m.group_instance_id, ErrorCode::UnknownMemberId))
                .collect();
            return LeaveResult {
                error: ErrorCode::None,
                members,
            };
        };
        let mut answers = Vec::with_capacity(leaving.len());
        let mut removed_any = false;
        for m in leaving {
            let error = leave_one(group, &mut cx, &m);
            removed_any |= error == ErrorCode::None;
            answers.push((m.member_id, m.group_instance_id, error));
        }
        if removed_any {
            match group.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    group.maybe_prepare_rebalance_or_complete_join(&mut cx)
                }
                GroupState::PreparingRebalance => group.maybe_complete_join_phase(&mut cx),
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        LeaveResult {
            error: ErrorCode::None,
            members: answers,
        }
    }
}

fn join_group(
    group: &mut Group,
    cx: &mut Cx<'_>,
    token: Token,
    req: JoinGroup,
) -> Reply<JoinResult> {
    if !accepts_joining(group, cx.config.max_group_size, &req) {
        // Kafka drops whatever the refused id held: a parked member that could not be
        // kept, or a pending id.
        if group.remove_member(cx, &req.member_id) {
            group.after_member_removed(cx);
        }
        return Reply::Now(JoinResult::error(ErrorCode::GroupMaxSizeReached, ""));
    }
    if req.member_id.is_empty() {
        join_new_member(group, cx, token, req)
    } else {
        join_existing_member(group, cx, token, req)
    }
}

/// Kafka's `acceptJoiningMember`, made strict: a new member needs room among all members,
/// not only among those that rejoined, so the group never exceeds `group.max.size`. A
/// restarting static member replaces itself, so it is always let in.
fn accepts_joining(group: &Group, max_size: usize, req: &JoinGroup) -> bool {
    let replaces_static = req.member_id.is_empty()
        && req
            .group_instance_id
            .as_ref()
            .is_some_and(|instance| group.static_members.contains_key(instance));
    match group.members.get(&req.member_id) {
        Some(member) if group.state == GroupState::PreparingRebalance => {
            member.join_token.is_some() || group.awaiting_join_count() < max_size
        }
        Some(_) => true,
        None => replaces_static || group.members.len() < max_size,
    }
}

fn join_new_member(
    group: &mut Group,
    cx: &mut Cx<'_>,
    token: Token,
    req: JoinGroup,
) -> Reply<JoinResult> {
    if !group.supports_protocols(&req.protocol_type, &req.protocols) {
        return Reply::Now(JoinResult::error(ErrorCode::InconsistentGroupProtocol, ""));
    }
    let prefix = req
        .group_instance_id
        .as_deref()
        .unwrap_or(&req.client_id)
        .to_owned();
    let mut new_id = cx.ids.next(cx.now, &prefix);
    while group.members.contains_key(&new_id) || group.pending.contains_key(&new_id) {
        new_id = cx.ids.next(cx.now, &prefix);
    }
    if let Some(instance) = req.group_instance_id.clone() {
        if let Some(old_id) = group.static_members.get(&instance).cloned() {
            return rejoin_static_member(group, cx, token, req, &instance, &old_id, new_id);
        }
        return add_member_then_rebalance(group, cx, token, req, new_id);
    }
    if req.require_known_member_id {
        if group.pending.len() >= PENDING_MEMBERS_MAX {
            evict_oldest_pending(group, cx);
        }
        let expiry = after(cx.now, i64::from(req.session_timeout_ms));
        group.pending.insert(new_id.clone(), expiry);
        return Reply::Now(JoinResult::error(ErrorCode::MemberIdRequired, new_id));
    }
    add_member_then_rebalance(group, cx, token, req, new_id)
}

fn evict_oldest_pending(group: &mut Group, cx: &mut Cx<'_>) {
    let oldest = group
        .pending
        .iter()
        .min_by_key(|(_, expiry)| **expiry)
        .map(|(id, _)| id.clone());
    if let Some(id) = oldest {
        group.remove_member(cx, &id);
    }
}

fn join_existing_member(
    group: &mut Group,
    cx: &mut Cx<'_>,
    token: Token,
    req: JoinGroup,
) -> Reply<JoinResult> {
    let member_id = req.member_id.clone();
    if !group.supports_protocols(&req.protocol_type, &req.protocols) {
        return Reply::Now(JoinResult::error(
            ErrorCode::InconsistentGroupProtocol,
            member_id,
        ));
    }
    if group.pending.contains_key(&member_id) {
        // Pending ids are only handed to dynamic members; a static one claiming it is
        // answered as any other unknown static member would be.
        if let Some(instance) = req.group_instance_id.as_deref()
            && let Err(error) = group.validate_member(&member_id, Some(instance))
        {
            return Reply::Now(JoinResult::error(error, member_id));
        }
        return add_member_then_rebalance(group, cx, token, req, member_id);
    }
    if let Err(error) = group.validate_member(&member_id, req.group_instance_id.as_deref()) {
        return Reply::Now(JoinResult::error(error, member_id));
    }
    let (unchanged, is_leader) = match group.members.get_mut(&member_id) {
        Some(member) => {
            member.touch(cx.now);
            (
                member.protocols == req.protocols,
                group.leader.as_deref() == Some(member_id.as_str()),
            )
        }
        None => return Reply::Now(JoinResult::error(ErrorCode::UnknownMemberId, member_id)),
    };
    match group.state {
        GroupState::PreparingRebalance => update_member_then_rebalance(group, cx, token, req),
        // A member that lost its JoinGroup answer asks again: repeat it.
        GroupState::CompletingRebalance if unchanged => {
            Reply::Now(group.join_result(&member_id, false))
        }
        GroupState::CompletingRebalance => update_member_then_rebalance(group, cx, token, req),
        // The leader rejoins to force a rebalance (e.g. topic metadata changed); others
        // only when their subscription changed (this is also KIP-429's second rebalance).
        GroupState::Stable if is_leader || !unchanged => {
            update_member_then_rebalance(group, cx, token, req)
        }
        GroupState::Stable => {
            let mut result = group.join_result(&member_id, false);
            result.members.clear();
            Reply::Now(result)
        }
        GroupState::Empty | GroupState::Dead => {
            Reply::Now(JoinResult::error(ErrorCode::UnknownMemberId, member_id))
        }
    }
}

fn add_member_then_rebalance(
    group: &mut Group,
    cx: &mut Cx<'_>,
    token: Token,
    req: JoinGroup,
    member_id: String,
) -> Reply<JoinResult> {
    let member = Member {
        id: member_id,
        instance_id: req.group_instance_id,
        client_id: req.client_id,
        client_host: req.client_host,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        session_timeout_ms: req.session_timeout_ms,
        protocols: req.protocols,
        assignment: Bytes::new(),
        join_token: Some(token),
        sync_token: None,
        is_new: true,
        session_deadline: after(cx.now, NEW_MEMBER_JOIN_TIMEOUT_MS),
        seq: 0,
    };
    if group.state == GroupState::PreparingRebalance && group.previous_state == GroupState::Empty {
        group.new_member_added = true;
    }
    group.add_member(member, &req.protocol_type);
    group.maybe_prepare_rebalance_or_complete_join(cx);
    Reply::Later
}

fn update_member_then_rebalance(
    group: &mut Group,
    cx: &mut Cx<'_>,
    token: Token,
    req: JoinGroup,
) -> Reply<JoinResult> {
    let Some(member) = group.members.get_mut(&req.member_id) else {
        return Reply::Now(JoinResult::error(ErrorCode::UnknownMemberId, req.member_id));
    };
    update_member(member, cx, token, &req);
    group.maybe_prepare_rebalance_or_complete_join(cx);
    Reply::Later
}

/// Parks the member's join and takes its new subscription. A JoinGroup it had parked
/// already is superseded: it is answered so that no request is left hanging.
fn update_member(member: &mut Member, cx: &mut Cx<'_>, token: Token, req: &JoinGroup) {
    if let Some(old) = member.join_token.replace(token)
        && old != token
    {
        let result = JoinResult::error(ErrorCode::RebalanceInProgress, member.id.clone());
        cx.effects
            .push_back(Effect::JoinDone { token: old, result });
    }
    member.protocols = req.protocols.clone();
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.session_timeout_ms = req.session_timeout_ms;
    member.touch(cx.now);
}

/// KIP-345: a static member restarted (it joins with no member id). It takes its old
/// place under a new id; a Stable group whose protocol would not change skips the
/// rebalance, and the leader is told not to reassign (KIP-814).
fn rejoin_static_member(
    group: &mut Group,
    cx: &mut Cx<'_>,
    token: Token,
    req: JoinGroup,
    instance: &str,
    old_id: &str,
    new_id: String,
) -> Reply<JoinResult> {
    if !matches!(
        group.state,
        GroupState::Stable | GroupState::CompletingRebalance | GroupState::PreparingRebalance
    ) {
        return Reply::Now(JoinResult::error(ErrorCode::UnknownMemberId, ""));
    }
    group.replace_static_member(cx, instance, old_id, &new_id);
    let Some(member) = group.members.get_mut(&new_id) else {
        return Reply::Now(JoinResult::error(ErrorCode::UnknownMemberId, ""));
    };
    update_member(member, cx, token, &req);
    match group.state {
        GroupState::Stable => {
            let next_protocol = group.select_protocol();
            if next_protocol.is_some() && next_protocol == group.protocol_name {
                group.persist(cx);
                if let Some(member) = group.members.get_mut(&new_id) {
                    member.join_token = None;
                }
                let skip = group.is_leader(&new_id);
                let result = group.join_result(&new_id, skip);
                cx.effects.push_back(Effect::JoinDone { token, result });
            } else {
                group.maybe_prepare_rebalance_or_complete_join(cx);
            }
        }
        // The leader may already have been sent the old id: only a new generation makes
        // the assignment name the new one.
        GroupState::CompletingRebalance => group.prepare_rebalance(cx),
        _ => group.maybe_complete_join_phase(cx),
    }
    Reply::Later
}

fn sync_group(
    group: &mut Group,
    cx: &mut Cx<'_>,
    token: Token,
    req: SyncGroup,
) -> Reply<SyncResult> {
    if group.state == GroupState::Empty {
        return Reply::Now(SyncResult::error(ErrorCode::UnknownMemberId));
    }
    if let Err(error) = group.validate_member(&req.member_id, req.group_instance_id.as_deref()) {
        return Reply::Now(SyncResult::error(error));
    }
    if req.generation_id != group.generation {
        return Reply::Now(SyncResult::error(ErrorCode::IllegalGeneration));
    }
    if inconsistent(req.protocol_type.as_deref(), group.protocol_type.as_deref())
        || inconsistent(req.protocol_name.as_deref(), group.protocol_name.as_deref())
    {
        return Reply::Now(SyncResult::error(ErrorCode::InconsistentGroupProtocol));
    }
    match group.state {
        GroupState::PreparingRebalance => {
            Reply::Now(SyncResult::error(ErrorCode::RebalanceInProgress))
        }
        GroupState::CompletingRebalance => {
            let Some(member) = group.members.get_mut(&req.member_id) else {
                return Reply::Now(SyncResult::error(ErrorCode::UnknownMemberId));
            };
            if let Some(old) = member.sync_token.replace(token)
                && old != token
            {
                let result = SyncResult::error(ErrorCode::RebalanceInProgress);
                cx.effects
                    .push_back(Effect::SyncDone { token: old, result });
            }
            member.touch(cx.now);
            synced(group, &req.member_id);
            if group.is_leader(&req.member_id) {
                store_assignment(group, cx, req.assignments);
            }
            Reply::Later
        }
        GroupState::Stable => {
            synced(group, &req.member_id);
            let Some(member) = group.members.get_mut(&req.member_id) else {
                return Reply::Now(SyncResult::error(ErrorCode::UnknownMemberId));
            };
            member.touch(cx.now);
            Reply::Now(SyncResult {
                error: ErrorCode::None,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol_name.clone(),
                assignment: member.assignment.clone(),
            })
        }
        GroupState::Empty | GroupState::Dead => {
            Reply::Now(SyncResult::error(ErrorCode::UnknownMemberId))
        }
    }
}

/// The leader's SyncGroup: every member gets its share (nothing if the leader left it
/// out), the group is written, and only then are the parked syncs answered.
fn store_assignment(group: &mut Group, cx: &mut Cx<'_>, assignments: Vec<(String, Bytes)>) {
    for member in group.members.values_mut() {
        member.assignment = Bytes::new();
    }
    for (member_id, assignment) in assignments {
        if let Some(member) = group.members.get_mut(&member_id) {
            member.assignment = assignment;
        }
    }
    group.transition(GroupState::Stable, cx.now);
    group.persist(cx);
    group.propagate_sync(cx, ErrorCode::None);
}

/// The member sent its SyncGroup; the pending-sync timer stops once everyone has.
fn synced(group: &mut Group, member_id: &str) {
    group.pending_sync.remove(member_id);
    if group.pending_sync.is_empty() {
        group.sync_deadline = None;
    }
}

/// Kafka's `isProtocolInconsistent`: only a value given on both sides can disagree.
fn inconsistent(requested: Option<&str>, current: Option<&str>) -> bool {
    matches!((requested, current), (Some(r), Some(c)) if r != c)
}

fn leave_one(group: &mut Group, cx: &mut Cx<'_>, leaving: &LeavingMember) -> ErrorCode {
    if leaving.member_id.is_empty() {
        // An admin removing a static member by instance id alone (KIP-345).
        let member_id = leaving
            .group_instance_id
            .as_ref()
            .and_then(|instance| group.static_members.get(instance))
            .cloned();
        return match member_id {
            Some(id) if group.remove_member(cx, &id) => ErrorCode::None,
            _ => ErrorCode::UnknownMemberId,
        };
    }
    if group.pending.remove(&leaving.member_id).is_some() {
        return ErrorCode::None;
    }
    if let Err(error) =
        group.validate_member(&leaving.member_id, leaving.group_instance_id.as_deref())
    {
        return error;
    }
    group.remove_member(cx, &leaving.member_id);
    ErrorCode::None
}
