//! Committed offsets: OffsetCommit (validated, then made visible once written), OffsetFetch,
//! OffsetDelete, and KIP-211 expiry.
//!
//! Offsets belong to a group. A commit from outside any group (`assign()`, admin tools)
//! creates a "simple" group with no protocol type to own them, as Kafka does; such a group
//! is never written to the log as a group record, only its offsets are.

use std::collections::BTreeSet;

use spate_protocol::ErrorCode;

use super::Coordinator;
use super::group::{CONSUMER_PROTOCOL_TYPE, Group};
use crate::api::*;
use crate::records::{OffsetValue, Record};

impl Coordinator {
    pub(super) fn validate_commit(
        &mut self,
        now: Millis,
        req: OffsetCommit,
    ) -> Result<PreparedCommit, ErrorCode> {
        if req.group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        match self.groups.get_mut(&req.group_id) {
            // Kafka answers ILLEGAL_GENERATION below OffsetCommit v9 (GROUP_ID_NOT_FOUND
            // from v9, which the handler may substitute).
            None if req.generation_id >= 0 => return Err(ErrorCode::IllegalGeneration),
            None => {}
            Some(group) => {
                validate_group_commit(group, &req)?;
                // A commit proves the member alive, as a heartbeat would.
                if let Some(member) = group.members.get_mut(&req.member_id) {
                    member.touch(now);
                }
            }
        }
        let max_bytes = self.config.offset_metadata_max_bytes;
        let expire_timestamp_ms = if req.retention_time_ms > 0 {
            now.saturating_add(req.retention_time_ms)
        } else {
            -1
        };
        let mut records = Vec::with_capacity(req.partitions.len());
        let mut results = Vec::with_capacity(req.partitions.len());
        for partition in req.partitions {
            let metadata = partition.metadata.unwrap_or_default();
            if metadata.len() > max_bytes {
                results.push((partition.key, ErrorCode::OffsetMetadataTooLarge));
                continue;
            }
            records.push(Record::Offset {
                group: req.group_id.clone(),
                topic: partition.key.topic.clone(),
                partition: partition.key.partition,
                value: Some(OffsetValue {
                    offset: partition.offset,
                    leader_epoch: partition.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now,
                    expire_timestamp_ms,
                }),
            });
            results.push((partition.key, ErrorCode::None));
        }
        Ok(PreparedCommit {
            group_id: req.group_id,
            records,
            results,
        })
    }

    /// Applies the written records; returns the groups touched.
    pub(super) fn apply_commit(
        &mut self,
        now: Millis,
        commit: &PreparedCommit,
    ) -> BTreeSet<String> {
        let mut touched = BTreeSet::new();
        for record in &commit.records {
            if let Record::Offset {
                group,
                topic,
                partition,
                value,
            } = record
            {
                let key = PartitionKey::new(topic.clone(), *partition);
                let owner = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(group.clone(), now));
                match value {
                    Some(value) => {
                        owner.offsets.insert(key, stored_offset(value));
                    }
                    None => {
                        owner.offsets.remove(&key);
                    }
                }
                touched.insert(group.clone());
            }
        }
        touched
    }

    pub(super) fn committed(
        &self,
        group_id: &str,
        partitions: Option<&[PartitionKey]>,
    ) -> Vec<(PartitionKey, Option<OffsetAndMetadata>)> {
        let group = self.groups.get(group_id);
        match partitions {
            Some(keys) => keys
                .iter()
                .map(|key| (key.clone(), group.and_then(|g| g.offsets.get(key)).cloned()))
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn remove_offsets(
        &mut self,
        group_id: &str,
        partitions: &[PartitionKey],
    ) -> Result<(Vec<(PartitionKey, ErrorCode)>, Vec<Record>), ErrorCode> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(ErrorCode::GroupIdNotFound);
        };
        // Only a consumer group can tell which topics it still uses.
        if group.state != GroupState::Empty
            && group.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE)
        {
            return Err(ErrorCode::NonEmptyGroup);
        }
        let subscribed: BTreeSet<&str> = partitions
            .iter()
            .map(|k| k.topic.as_str())
            .filter(|topic| group.is_subscribed_to(topic))
            .collect();
        let mut results = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        for key in partitions {
            if subscribed.contains(key.topic.as_str()) {
                results.push((key.clone(), ErrorCode::GroupSubscribedToTopic));
                continue;
            }
            if group.offsets.remove(key).is_some() {
                records.push(tombstone(group_id, key));
            }
            results.push((key.clone(), ErrorCode::None));
        }
        Ok((results, records))
    }
}

/// Kafka's `ClassicGroup.validateOffsetCommit`.
fn validate_group_commit(group: &Group, req: &OffsetCommit) -> Result<(), ErrorCode> {
    let empty = group.state == GroupState::Empty;
    if req.generation_id < 0 && empty {
        // A commit from outside the group's management, allowed while nobody is in it.
        return Ok(());
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        group.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != group.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
    } else if !empty {
        return Err(ErrorCode::UnknownMemberId);
    }
    if group.state == GroupState::CompletingRebalance {
        // The member knows the new generation but has no assignment yet: it must finish
        // the rebalance before committing.
        return Err(ErrorCode::RebalanceInProgress);
    }
    Ok(())
}

pub(super) fn stored_offset(value: &OffsetValue) -> OffsetAndMetadata {
    OffsetAndMetadata {
        offset: value.offset,
        leader_epoch: value.leader_epoch,
        metadata: value.metadata.clone(),
        commit_timestamp_ms: value.commit_timestamp_ms,
        expire_timestamp_ms: (value.expire_timestamp_ms >= 0).then_some(value.expire_timestamp_ms),
    }
}

pub(super) fn offset_record(
    group_id: &str,
    key: &PartitionKey,
    offset: &OffsetAndMetadata,
) -> Record {
    Record::Offset {
        group: group_id.to_owned(),
        topic: key.topic.clone(),
        partition: key.partition,
        value: Some(OffsetValue {
            offset: offset.offset,
            leader_epoch: offset.leader_epoch,
            metadata: offset.metadata.clone(),
            commit_timestamp_ms: offset.commit_timestamp_ms,
            expire_timestamp_ms: offset.expire_timestamp_ms.unwrap_or(-1),
        }),
    }
}

fn tombstone(group_id: &str, key: &PartitionKey) -> Record {
    Record::Offset {
        group: group_id.to_owned(),
        topic: key.topic.clone(),
        partition: key.partition,
        value: None,
    }
}

/// Tombstones for every offset of a group being deleted.
pub(super) fn tombstones(group: &Group) -> Vec<Record> {
    group
        .offsets
        .keys()
        .map(|key| tombstone(&group.id, key))
        .collect()
}

// ---- KIP-211 expiry ----

/// From when an offset's retention counts, per Kafka's `offsetExpirationCondition`.
enum Retention {
    /// An empty group: everything expires a retention period after it became empty.
    SinceEmpty(Option<Millis>),
    /// A simple group, or a Stable consumer group's topics nobody subscribes to anymore:
    /// each offset expires a retention period after its last commit.
    SinceCommit { kept_topics: BTreeSet<String> },
}

fn retention(group: &Group) -> Option<Retention> {
    match group.protocol_type.as_deref() {
        None => Some(Retention::SinceCommit {
            kept_topics: BTreeSet::new(),
        }),
        Some(_) if group.state == GroupState::Empty => {
            Some(Retention::SinceEmpty(group.state_timestamp))
        }
        Some(CONSUMER_PROTOCOL_TYPE) if group.state == GroupState::Stable => group
            .subscribed_topics()
            .map(|kept_topics| Retention::SinceCommit { kept_topics }),
        // A group with members whose subscriptions are unknown keeps everything.
        Some(_) => None,
    }
}

fn expires_at(
    rule: &Retention,
    key: &PartitionKey,
    offset: &OffsetAndMetadata,
    retention_ms: i64,
) -> Option<Millis> {
    let base = match rule {
        Retention::SinceCommit { kept_topics } if kept_topics.contains(&key.topic) => return None,
        Retention::SinceCommit { .. } => offset.commit_timestamp_ms,
        Retention::SinceEmpty(since) => since.unwrap_or(offset.commit_timestamp_ms),
    };
    // An explicit expiry (OffsetCommit v2–v4 retention_time_ms) wins over the default.
    Some(
        offset
            .expire_timestamp_ms
            .unwrap_or_else(|| base.saturating_add(retention_ms)),
    )
}

/// When the group's next offset expires.
pub(super) fn next_expiry(group: &Group, retention_ms: i64) -> Option<Millis> {
    let rule = retention(group)?;
    group
        .offsets
        .iter()
        .filter_map(|(key, offset)| expires_at(&rule, key, offset, retention_ms))
        .min()
}

/// Drops the offsets that have expired by `now`; returns their tombstones.
pub(super) fn expire(group: &mut Group, now: Millis, retention_ms: i64) -> Vec<Record> {
    let Some(rule) = retention(group) else {
        return Vec::new();
    };
    let expired: Vec<PartitionKey> = group
        .offsets
        .iter()
        .filter(|(key, offset)| {
            expires_at(&rule, key, offset, retention_ms).is_some_and(|at| at <= now)
        })
        .map(|(key, _)| key.clone())
        .collect();
    let mut records = Vec::with_capacity(expired.len());
    for key in expired {
        group.offsets.remove(&key);
        records.push(tombstone(&group.id, &key));
    }
    records
}
