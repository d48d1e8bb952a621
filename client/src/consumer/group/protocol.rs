//! The bytes a consumer group's members exchange through the coordinator.
//!
//! The broker treats JoinGroup metadata and SyncGroup assignments as opaque; consumers agree
//! on Kafka's `ConsumerProtocolSubscription` and `ConsumerProtocolAssignment` (never
//! flexible). We write version 3 of both, as Kafka 4.0's Java consumer does, so a Java or
//! librdkafka leader reads our owned partitions and generation (KIP-429), and we read any
//! version: a newer one with the v3 layout, ignoring what follows, as the schema promises
//! new versions only append fields.

use std::collections::BTreeMap;

use bytes::Bytes;
use spate_protocol::DecodeError;
use spate_protocol::wire::{
    EncodeError, read_array, read_i16, read_i32, read_nullable_bytes, read_nullable_string,
    read_string, write_array, write_i16, write_i32, write_nullable_bytes, write_nullable_string,
    write_string,
};

use crate::offsets::TopicPartition;

/// The version of both structures this client writes.
pub const WRITE_VERSION: i16 = 3;

/// A member's subscription as carried in JoinGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub user_data: Option<Bytes>,
    /// v1+: what the member holds now, so a cooperative leader can keep it there.
    pub owned: Vec<TopicPartition>,
    /// v2+: the generation `owned` was assigned in; -1 when unknown.
    pub generation: i32,
    pub rack: Option<String>,
}

/// A member's share as carried in SyncGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub partitions: Vec<TopicPartition>,
    pub user_data: Option<Bytes>,
}

fn group_by_topic(partitions: &[TopicPartition]) -> Vec<(String, Vec<i32>)> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    topics
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            partitions.dedup();
            (topic.to_string(), partitions)
        })
        .collect()
}

fn write_topic_partitions(
    out: &mut Vec<u8>,
    field: &'static str,
    partitions: &[TopicPartition],
) -> Result<(), EncodeError> {
    write_array(
        out,
        false,
        field,
        &group_by_topic(partitions),
        |out, entry| {
            write_string(out, false, field, &entry.0)?;
            write_array(out, false, field, &entry.1, |out, p| {
                write_i32(out, *p);
                Ok(())
            })
        },
    )
}

fn read_topic_partitions(
    buf: &mut Bytes,
    field: &'static str,
) -> Result<Vec<TopicPartition>, DecodeError> {
    let topics = read_array(buf, false, field, 6, |buf| {
        let topic = read_string(buf, false, field)?;
        let partitions = read_array(buf, false, field, 4, |buf| read_i32(buf, field))?;
        Ok((topic, partitions))
    })?;
    Ok(topics
        .into_iter()
        .flat_map(|(topic, partitions)| partitions.into_iter().map(move |p| (topic.clone(), p)))
        .collect())
}

impl Subscription {
    pub fn encode(&self) -> Result<Bytes, EncodeError> {
        let mut out = Vec::new();
        write_i16(&mut out, WRITE_VERSION);
        write_array(
            &mut out,
            false,
            "Subscription.topics",
            &self.topics,
            |out, t| write_string(out, false, "Subscription.topics", t),
        )?;
        write_nullable_bytes(
            &mut out,
            false,
            "Subscription.userData",
            self.user_data.as_deref(),
        )?;
        write_topic_partitions(&mut out, "Subscription.ownedPartitions", &self.owned)?;
        write_i32(&mut out, self.generation);
        write_nullable_string(&mut out, false, "Subscription.rackId", self.rack.as_deref())?;
        Ok(Bytes::from(out))
    }

    /// Reads any version; fields a version lacks keep their defaults (generation -1).
    pub fn decode(mut buf: Bytes) -> Result<Subscription, DecodeError> {
        let version = read_i16(&mut buf, "Subscription.version")?;
        let topics = read_array(&mut buf, false, "Subscription.topics", 2, |buf| {
            read_string(buf, false, "Subscription.topics")
        })?;
        let mut subscription = Subscription {
            topics,
            user_data: read_nullable_bytes(&mut buf, false, "Subscription.userData")?,
            generation: -1,
            ..Default::default()
        };
        if version >= 1 {
            subscription.owned = read_topic_partitions(&mut buf, "Subscription.ownedPartitions")?;
        }
        if version >= 2 {
            subscription.generation = read_i32(&mut buf, "Subscription.generationId")?;
        }
        if version >= 3 {
            subscription.rack = read_nullable_string(&mut buf, false, "Subscription.rackId")?;
        }
        Ok(subscription)
    }
}

impl Assignment {
    pub fn encode(&self) -> Result<Bytes, EncodeError> {
        let mut out = Vec::new();
        write_i16(&mut out, WRITE_VERSION);
        write_topic_partitions(&mut out, "Assignment.assignedPartitions", &self.partitions)?;
        write_nullable_bytes(
            &mut out,
            false,
            "Assignment.userData",
            self.user_data.as_deref(),
        )?;
        Ok(Bytes::from(out))
    }

    /// Reads any version. Empty bytes are an empty assignment: a leader may send nothing
    /// for a member with no partitions.
    pub fn decode(mut buf: Bytes) -> Result<Assignment, DecodeError> {
        if buf.is_empty() {
            return Ok(Assignment::default());
        }
        let _version = read_i16(&mut buf, "Assignment.version")?;
        let mut partitions = read_topic_partitions(&mut buf, "Assignment.assignedPartitions")?;
        partitions.sort();
        partitions.dedup();
        // Some writers end the structure early when there is no user data.
        let user_data = if buf.is_empty() {
            None
        } else {
            read_nullable_bytes(&mut buf, false, "Assignment.userData")?
        };
        Ok(Assignment {
            partitions,
            user_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        (topic.to_string(), partition)
    }

    #[test]
    fn subscription_round_trips_and_matches_the_v3_layout() {
        let subscription = Subscription {
            topics: vec!["a".into()],
            user_data: None,
            owned: vec![tp("a", 1), tp("a", 0)],
            generation: 7,
            rack: None,
        };
        let bytes = subscription.encode().unwrap();
        let expected: Vec<u8> = [
            &[0, 3][..],                                                   // version
            &[0, 0, 0, 1, 0, 1, b'a'],                                     // topics
            &[0xff, 0xff, 0xff, 0xff],                                     // null user data
            &[0, 0, 0, 1, 0, 1, b'a', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1], // owned, sorted
            &[0, 0, 0, 7],                                                 // generation
            &[0xff, 0xff],                                                 // null rack
        ]
        .concat();
        assert_eq!(bytes.as_ref(), expected.as_slice());
        let decoded = Subscription::decode(bytes).unwrap();
        assert_eq!(decoded.owned, vec![tp("a", 0), tp("a", 1)]);
        assert_eq!(decoded.generation, 7);
    }

    #[test]
    fn old_and_truncated_subscriptions() {
        // v0 as Java's consumer wrote it before KIP-429: no owned partitions, no generation.
        let v0: Vec<u8> = [&[0, 0][..], &[0, 0, 0, 1, 0, 1, b't'], &[0, 0, 0, 0]].concat();
        let decoded = Subscription::decode(Bytes::from(v0.clone())).unwrap();
        assert_eq!(decoded.topics, vec!["t".to_string()]);
        assert_eq!(decoded.generation, -1);
        assert!(decoded.owned.is_empty());
        assert!(Subscription::decode(Bytes::from(v0[..5].to_vec())).is_err());
        let v1_cut: Vec<u8> = [&[0, 1][..], &v0[2..]].concat();
        assert!(Subscription::decode(Bytes::from(v1_cut)).is_err());
    }

    #[test]
    fn assignment_round_trips_and_empty_bytes_are_nothing() {
        let assignment = Assignment {
            partitions: vec![tp("b", 2), tp("a", 0)],
            user_data: None,
        };
        let decoded = Assignment::decode(assignment.encode().unwrap()).unwrap();
        assert_eq!(decoded.partitions, vec![tp("a", 0), tp("b", 2)]);
        assert_eq!(
            Assignment::decode(Bytes::new()).unwrap(),
            Assignment::default()
        );
        assert!(Assignment::decode(Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_err());
    }
}
