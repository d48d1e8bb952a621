//! The groups of one `__consumer_offsets` partition: Kafka's classic group coordinator.
//!
//! This file is the public face and the bookkeeping shared by every operation: the group
//! table, the queue of effects and the deadline index. The behaviour lives in submodules:
//! `group` (one group's state machine), `membership` (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup), `offsets` (commits, fetches, deletes and expiry), `timers` (what is due
//! and firing it) and `loading` (replay and snapshots).
//!
//! Every mutation of a group ends in [`Coordinator::settle`], which re-files the group's
//! earliest deadline, so `tick` and `next_deadline` never scan groups with nothing due.

mod group;
mod loading;
mod member_id;
mod membership;
mod offsets;
mod timers;

#[cfg(test)]
mod invariants;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::api::*;
use crate::records::Record;
use group::Group;
use member_id::MemberIds;
use spate_protocol::ErrorCode;

/// The groups of one `__consumer_offsets` partition, and their committed offsets.
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    effects: VecDeque<Effect>,
    groups: BTreeMap<String, Group>,
    ids: MemberIds,
    /// (earliest deadline, group id) for every group that has one.
    deadlines: BTreeSet<(Millis, String)>,
    /// The deadline each group is filed under in `deadlines`.
    filed: BTreeMap<String, Millis>,
}

/// What a group's state machine needs from the coordinator for one operation.
pub(crate) struct Cx<'a> {
    pub now: Millis,
    pub config: &'a CoordinatorConfig,
    pub effects: &'a mut VecDeque<Effect>,
    pub ids: &'a mut MemberIds,
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig) -> Self {
        Self {
            config,
            effects: VecDeque::new(),
            groups: BTreeMap::new(),
            ids: MemberIds::default(),
            deadlines: BTreeSet::new(),
            filed: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    // ---- loading (startup replay of the partition, oldest record first) ----

    /// Applies one record read back from the log. Later records win; a tombstone (`value`
    /// None) removes. Never fails: a record the coordinator cannot use is skipped.
    pub fn load_record(&mut self, record: Record) {
        self.replay(record);
    }

    /// Ends loading: loaded groups with members get a fresh session deadline (`now` +
    /// their session timeout) so members that come back in time keep their place.
    pub fn finish_loading(&mut self, now: Millis) {
        self.start_loaded_groups(now);
    }

    /// The live state as records, newest value per key, for compacting the log: replaying
    /// them alone rebuilds what a replay of the whole log would.
    pub fn snapshot(&self) -> Vec<Record> {
        self.live_records()
    }

    // ---- group membership ----

    pub fn join_group(&mut self, now: Millis, token: Token, req: JoinGroup) -> Reply<JoinResult> {
        let group_id = req.group_id.clone();
        let reply = self.join(now, token, req);
        self.settle(&group_id);
        reply
    }

    pub fn sync_group(&mut self, now: Millis, token: Token, req: SyncGroup) -> Reply<SyncResult> {
        let group_id = req.group_id.clone();
        let reply = self.sync(now, token, req);
        self.settle(&group_id);
        reply
    }

    pub fn heartbeat(&mut self, now: Millis, req: Heartbeat) -> ErrorCode {
        // Kafka checks the group id before anything else, as JoinGroup and OffsetCommit do.
        if req.group_id.is_empty() {
            return ErrorCode::InvalidGroupId;
        }
        let group_id = req.group_id.clone();
        let error = self.beat(now, req);
        // A heartbeat only moves a session deadline: the cached retention still holds.
        self.settle_with(&group_id, false);
        error
    }

    pub fn leave_group(
        &mut self,
        now: Millis,
        group_id: &str,
        members: Vec<LeavingMember>,
    ) -> LeaveResult {
        let result = self.leave(now, group_id, members);
        self.settle(group_id);
        result
    }

    // ---- offsets ----

    /// Validates a commit. `Err` is a group-level error for every partition.
    pub fn prepare_commit(
        &mut self,
        now: Millis,
        req: OffsetCommit,
    ) -> Result<PreparedCommit, ErrorCode> {
        let group_id = req.group_id.clone();
        let prepared = self.validate_commit(now, req);
        self.settle(&group_id);
        prepared
    }

    /// The prepared commit's records are durable: make the offsets visible.
    pub fn commit_written(&mut self, now: Millis, commit: &PreparedCommit) {
        for group_id in self.apply_commit(now, commit) {
            self.settle(&group_id);
        }
    }

    /// Committed offsets of a group: all of them (`None`), or the listed partitions (those
    /// without a commit come back as `None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[PartitionKey]>,
    ) -> Result<Vec<(PartitionKey, Option<OffsetAndMetadata>)>, ErrorCode> {
        Ok(self.committed(group_id, partitions))
    }

    /// OffsetDelete: per-partition results and the tombstones to append.
    #[allow(clippy::type_complexity)]
    pub fn delete_offsets(
        &mut self,
        _now: Millis,
        group_id: &str,
        partitions: &[PartitionKey],
    ) -> Result<(Vec<(PartitionKey, ErrorCode)>, Vec<Record>), ErrorCode> {
        let outcome = self.remove_offsets(group_id, partitions);
        self.settle(group_id);
        outcome
    }

    // ---- admin ----

    /// An unknown group is described as Dead with no error, as Kafka answers DescribeGroups
    /// v0–5; from v6 the handler turns that into GROUP_ID_NOT_FOUND.
    pub fn describe_group(&self, group_id: &str) -> DescribedGroup {
        let Some(group) = self.groups.get(group_id) else {
            return DescribedGroup {
                group_id: group_id.to_owned(),
                error: ErrorCode::None,
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        // Like Kafka, only a Stable group shows its protocol and the members' metadata.
        let protocol = match group.state {
            GroupState::Stable => group.protocol_name.clone(),
            _ => None,
        };
        DescribedGroup {
            group_id: group_id.to_owned(),
            error: ErrorCode::None,
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone().unwrap_or_default(),
            members: group
                .members_in_order()
                .into_iter()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata(protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    pub fn list_groups(&self) -> Vec<ListedGroup> {
        self.groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// DeleteGroups: per group, and the tombstones (group and all its offsets) to append.
    pub fn delete_groups(
        &mut self,
        _now: Millis,
        group_ids: &[String],
    ) -> (Vec<(String, ErrorCode)>, Vec<Record>) {
        let mut results = Vec::with_capacity(group_ids.len());
        let mut records = Vec::new();
        for group_id in group_ids {
            let error = match self.groups.get(group_id) {
                None => ErrorCode::GroupIdNotFound,
                Some(g) if g.state != GroupState::Empty => ErrorCode::NonEmptyGroup,
                Some(_) => {
                    if let Some(group) = self.remove_group(group_id) {
                        records.extend(offsets::tombstones(&group));
                        records.push(Record::Group {
                            group: group.id.clone(),
                            value: None,
                        });
                    }
                    ErrorCode::None
                }
            };
            results.push((group_id.clone(), error));
        }
        (results, records)
    }

    // ---- time ----

    /// Fires every deadline at or before `now`: session expiry, rebalance and join
    /// timeouts, the initial rebalance delay, and offset expiry.
    pub fn tick(&mut self, now: Millis) {
        let due: Vec<String> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| id.clone())
            .collect();
        for group_id in due {
            self.fire_due(now, &group_id);
            self.settle(&group_id);
        }
    }

    /// The earliest pending deadline, if any.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Takes the queued effects, oldest first.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        self.effects.drain(..).collect()
    }

    // ---- bookkeeping shared by the submodules ----

    /// The group and the context its state machine runs in, borrowed together.
    fn group_cx(&mut self, group_id: &str, now: Millis) -> Option<(&mut Group, Cx<'_>)> {
        let group = self.groups.get_mut(group_id)?;
        let cx = Cx {
            now,
            config: &self.config,
            effects: &mut self.effects,
            ids: &mut self.ids,
        };
        Some((group, cx))
    }

    /// Re-files a group's deadline after a change, and forgets a group left vacant.
    fn settle(&mut self, group_id: &str) {
        self.settle_with(group_id, true);
    }

    fn settle_with(&mut self, group_id: &str, retention_changed: bool) {
        let deadline = match self.groups.get_mut(group_id) {
            Some(group) if group.is_vacant() => {
                self.remove_group(group_id);
                return;
            }
            Some(group) => {
                if retention_changed {
                    timers::refresh_retention(group, &self.config);
                }
                timers::next_deadline(group)
            }
            None => None,
        };
        self.file(group_id, deadline);
    }

    fn file(&mut self, group_id: &str, deadline: Option<Millis>) {
        let previous = self.filed.get(group_id).copied();
        if previous == deadline {
            return;
        }
        if let Some(at) = previous {
            self.deadlines.remove(&(at, group_id.to_owned()));
            self.filed.remove(group_id);
        }
        if let Some(at) = deadline {
            self.deadlines.insert((at, group_id.to_owned()));
            self.filed.insert(group_id.to_owned(), at);
        }
    }

    fn remove_group(&mut self, group_id: &str) -> Option<Group> {
        self.file(group_id, None);
        self.groups.remove(group_id)
    }
}
