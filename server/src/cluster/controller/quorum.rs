//! DescribeQuorum as the active controller answers it: the quorum's epoch, high watermark
//! and how far each voter's log reaches (from openraft's metrics), and the brokers that are
//! not voters as observers, with the metadata offset their last heartbeat reported.

use super::Controller;
use crate::cluster::rpc::{QuorumState, ReplicaProgress};

impl Controller {
    pub(super) fn quorum_state(&self) -> QuorumState {
        let metrics = self.raft.metrics().borrow().clone();
        let matched = metrics.replication.clone().unwrap_or_default();
        let own_end = metrics.last_log_index.unwrap_or(0);
        let voters = self
            .settings
            .voters
            .iter()
            .map(|(id, address)| {
                let end = if *id == self.settings.node_id {
                    Some(own_end)
                } else {
                    u64::try_from(*id)
                        .ok()
                        .and_then(|raft_id| matched.get(&raft_id).cloned())
                        .flatten()
                        .map(|log_id| log_id.index)
                };
                ReplicaProgress {
                    node_id: *id,
                    // Kafka's log end offset is one past the last entry.
                    log_end_offset: end.map_or(-1, |e| i64::try_from(e + 1).unwrap_or(i64::MAX)),
                    address: address.clone(),
                    last_fetch_ms: None,
                }
            })
            .collect();
        QuorumState {
            leader_id: self.settings.node_id,
            leader_epoch: i64::try_from(metrics.current_term).unwrap_or(i64::MAX),
            high_watermark: metrics
                .last_applied
                .map_or(-1, |l| i64::try_from(l.index + 1).unwrap_or(i64::MAX)),
            observers: self.observers(),
            voters,
        }
    }

    fn observers(&self) -> Vec<ReplicaProgress> {
        let image = self.feed.image();
        image
            .brokers()
            .filter(|b| !self.settings.voters.iter().any(|(id, _)| *id == b.node_id))
            .map(|b| {
                let reported = self.broker_offsets.get(&b.node_id);
                ReplicaProgress {
                    node_id: b.node_id,
                    log_end_offset: reported.map_or(-1, |(offset, _)| {
                        i64::try_from(offset + 1).unwrap_or(i64::MAX)
                    }),
                    address: b.cluster_addr.clone(),
                    last_fetch_ms: reported.map(|(_, at)| unix_ms(*at)),
                }
            })
            .collect()
    }
}

fn unix_ms(at: std::time::SystemTime) -> i64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
