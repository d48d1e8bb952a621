//! Rebuilding the groups from `__consumer_offsets` at startup, and writing them back out
//! as a snapshot when the log is compacted.
//!
//! A loaded group with members comes back Stable at its stored generation with its stored
//! assignments, as Kafka loads it: a consumer that reconnects within its session timeout
//! carries on without a rebalance.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::group::{Group, Member};
use super::offsets::{offset_record, stored_offset};
use super::{Coordinator, Cx, timers};
use crate::api::*;
use crate::records::{GroupValue, Record};

impl Coordinator {
    pub(super) fn replay(&mut self, record: Record) {
        match record {
            Record::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let key = PartitionKey::new(topic, partition);
                match value {
                    Some(value) => {
                        let owner = self
                            .groups
                            .entry(group.clone())
                            .or_insert_with(|| loaded_simple_group(group));
                        owner.offsets.insert(key, stored_offset(&value));
                    }
                    None => {
                        if let Some(owner) = self.groups.get_mut(&group) {
                            owner.offsets.remove(&key);
                        }
                    }
                }
            }
            Record::Group {
                group,
                value: Some(value),
            } => {
                let offsets = self
                    .groups
                    .remove(&group)
                    .map(|g| g.offsets)
                    .unwrap_or_default();
                let mut loaded = loaded_group(group.clone(), value);
                loaded.offsets = offsets;
                self.groups.insert(group, loaded);
            }
            Record::Group { group, value: None } => {
                // The group is gone; offsets not yet tombstoned keep a simple group as
                // their owner, as they would in Kafka's separate offset table.
                if let Some(existing) = self.groups.remove(&group)
                    && !existing.offsets.is_empty()
                {
                    let mut owner = loaded_simple_group(group.clone());
                    owner.offsets = existing.offsets;
                    self.groups.insert(group, owner);
                }
            }
        }
    }

    pub(super) fn start_loaded_groups(&mut self, now: Millis) {
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            let max_size = self.config.max_group_size;
            let Some((group, mut cx)) = self.group_cx(&id, now) else {
                continue;
            };
            start_loaded_group(group, &mut cx, max_size);
            self.settle(&id);
        }
    }

    pub(super) fn live_records(&self) -> Vec<Record> {
        let mut records = Vec::new();
        for group in self.groups.values() {
            if let Some(value) = &group.stored {
                records.push(Record::Group {
                    group: group.id.clone(),
                    value: Some(value.clone()),
                });
            }
            for (key, offset) in &group.offsets {
                records.push(offset_record(&group.id, key, offset));
            }
        }
        records
    }
}

fn start_loaded_group(group: &mut Group, cx: &mut Cx<'_>, max_size: usize) {
    let now = cx.now;
    for member in group.members.values_mut() {
        member.touch(now);
    }
    if group.state == GroupState::Empty && group.state_timestamp.is_none() {
        // Written before KIP-211 recorded when the group became empty: offsets then age
        // from their commit time, and an offsetless group counts as empty since now.
        if group.offsets.is_empty() {
            group.state_timestamp = Some(now);
        }
    }
    if group.members.len() > max_size {
        // `group.max.size` was lowered: rebalance so that the surplus falls out.
        group.prepare_rebalance(cx);
    }
    timers::refresh_retention(group, cx.config);
}

/// The owner of offsets whose group has no group record: a simple group.
fn loaded_simple_group(id: String) -> Group {
    let mut group = Group::new(id, 0);
    group.state_timestamp = None;
    group
}

fn loaded_group(id: String, value: GroupValue) -> Group {
    let mut group = Group::new(id, 0);
    group.generation = value.generation;
    group.protocol_type = (!value.protocol_type.is_empty()).then(|| value.protocol_type.clone());
    group.protocol_name = value.protocol.clone();
    group.state_timestamp =
        (value.current_state_timestamp_ms != -1).then_some(value.current_state_timestamp_ms);

    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    let mut instances: BTreeSet<String> = BTreeSet::new();
    for (seq, stored) in value.members.iter().enumerate() {
        if members.contains_key(&stored.member_id) {
            continue;
        }
        if let Some(instance) = &stored.group_instance_id
            && !instances.insert(instance.clone())
        {
            continue;
        }
        let protocols = value
            .protocol
            .iter()
            .map(|name| Protocol {
                name: name.clone(),
                metadata: stored.subscription.clone(),
            })
            .collect();
        let member = Member {
            id: stored.member_id.clone(),
            instance_id: stored.group_instance_id.clone(),
            client_id: stored.client_id.clone(),
            client_host: stored.client_host.clone(),
            // Records from before rebalance timeouts existed store -1.
            rebalance_timeout_ms: if stored.rebalance_timeout_ms == -1 {
                stored.session_timeout_ms
            } else {
                stored.rebalance_timeout_ms
            },
            session_timeout_ms: stored.session_timeout_ms,
            protocols,
            assignment: Bytes::clone(&stored.assignment),
            join_token: None,
            sync_token: None,
            is_new: false,
            session_deadline: 0,
            seq: seq as u64,
        };
        if let Some(instance) = &member.instance_id {
            group
                .static_members
                .insert(instance.clone(), member.id.clone());
        }
        members.insert(member.id.clone(), member);
    }
    group.next_seq = value.members.len() as u64;
    group.members = members;
    group.leader = value
        .leader
        .clone()
        .filter(|leader| group.members.contains_key(leader))
        .or_else(|| group.members_in_order().first().map(|m| m.id.clone()));
    if !group.members.is_empty() {
        group.state = GroupState::Stable;
    }
    group.stored = Some(value);
    group
}
