//! The minimal controller: broker sessions, AlterPartition, elections and reassignments,
//! through the real decisions of `spate_cluster::controller`, on a real `ClusterImage`.
use std::sync::Arc;
use std::time::Duration;

use spate_cluster::controller::alter_partition::{
    AlterPartition, AlterPartitionError, alter_partition,
};
use spate_cluster::controller::elections::{ElectionKind, elect_leaders};
use spate_cluster::controller::reassignment::{
    alter_partition_reassignments, complete_reassignments,
};
use spate_cluster::controller::sessions::Heartbeat;
use spate_cluster::replication::IsrChangeRequest;
use spate_cluster::{NodeId, RecordBody};

use super::super::register_request;
use super::{CONTROLLER, Invariant, Payload, Sim};

impl Sim {
    pub(super) fn broadcast_metadata(&mut self) {
        let image = Arc::new(self.cluster.image.clone());
        for id in 0..self.nodes.len() {
            let id = NodeId::try_from(id).expect("few nodes");
            self.send(
                CONTROLLER,
                id,
                Payload::Metadata(image.clone()),
                Duration::ZERO,
            );
        }
    }

    /// Applies controller records and tells every node.
    pub fn apply_records(&mut self, records: Vec<RecordBody>) {
        if records.is_empty() {
            return;
        }
        let before = self.partition();
        let applied = self.cluster.apply(records.clone());
        if let Err(error) = applied {
            self.violate(
                Invariant::ControllerAccepts,
                format!("a controller decision was refused: {error}: {records:?}"),
            );
        }
        let p = self.partition();
        if p.isr.len() < before.isr.len() {
            self.count("isr shrinks");
        }
        if p.isr.len() > before.isr.len() {
            self.count("isr expansions");
        }
        if p.isr.len() < self.config.min_insync && before.isr.len() >= self.config.min_insync {
            self.count("isr below min insync");
        }
        if p.leader_epoch > before.leader_epoch {
            self.count("leader epochs");
        }
        self.log(format!(
            "metadata: leader {} epoch {} isr {:?} pe {}",
            p.leader, p.leader_epoch, p.isr, p.partition_epoch
        ));
        self.broadcast_metadata();
    }

    pub(super) fn controller_tick(&mut self) {
        let now = self.now;
        for index in 0..self.nodes.len() {
            let node = &self.nodes[index];
            if !node.alive || self.link_cut(node.id, CONTROLLER) {
                continue;
            }
            let id = node.id;
            let incarnation = node.incarnation_id();
            let registered = self
                .cluster
                .image
                .broker(id)
                .filter(|b| b.incarnation_id == incarnation);
            let records = match registered {
                None => self
                    .sessions
                    .register(
                        &self.cluster.image,
                        now,
                        &register_request(id, &incarnation, None),
                    )
                    .unwrap_or_default(),
                Some(broker) => {
                    let heartbeat = Heartbeat {
                        node_id: id,
                        broker_epoch: broker.broker_epoch,
                        metadata_offset: node.image.offset(),
                        want_shutdown: false,
                    };
                    self.sessions
                        .heartbeat(&self.cluster.image, now, &heartbeat)
                        .map(|(_, records)| records)
                        .unwrap_or_default()
                }
            };
            self.apply_records(records);
        }
        let records = self.sessions.expire(&self.cluster.image, now);
        self.apply_records(records);
        let records = complete_reassignments(&self.cluster.image);
        self.apply_records(records);
        // Brokers fetch metadata continuously: one that is behind (a lost update) catches up.
        let offset = self.cluster.image.offset();
        let behind: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.alive && n.image.offset() < offset)
            .map(|n| n.id)
            .collect();
        if !behind.is_empty() {
            let image = Arc::new(self.cluster.image.clone());
            for id in behind {
                self.send(
                    CONTROLLER,
                    id,
                    Payload::Metadata(image.clone()),
                    Duration::ZERO,
                );
            }
        }
    }

    pub(super) fn on_alter_partition(
        &mut self,
        from: NodeId,
        request: IsrChangeRequest,
        broker_epoch: i64,
    ) {
        let alter = AlterPartition::from_request(from, broker_epoch, self.topic_id, 0, &request);
        let outcome = match alter_partition(&self.cluster.image, &alter) {
            Ok(records) => {
                self.log(format!("alter isr {:?} from {from}: ok", request.isr()));
                self.apply_records(records);
                Ok(self.partition())
            }
            Err(error) => {
                self.log(format!(
                    "alter isr {:?} from {from}: {error}",
                    request.isr()
                ));
                self.count(match error {
                    AlterPartitionError::InvalidUpdateVersion { .. } => {
                        "alter: invalid update version"
                    }
                    AlterPartitionError::FencedLeaderEpoch { .. } => "alter: fenced leader epoch",
                    AlterPartitionError::IneligibleReplica { .. } => "alter: ineligible replica",
                    AlterPartitionError::StaleBrokerEpoch { .. } => "alter: stale broker epoch",
                    _ => "alter: other refusal",
                });
                Err(error.refusal())
            }
        };
        self.send(
            CONTROLLER,
            from,
            Payload::AlterPartitionAnswer { request, outcome },
            Duration::ZERO,
        );
    }

    /// ElectLeaders for the partition; returns the new leader if one was elected.
    pub fn elect(&mut self, kind: ElectionKind) -> Option<NodeId> {
        let outcome = elect_leaders(&self.cluster.image, &[(self.topic_id, 0)], kind);
        let leader = outcome.results.first().and_then(|(_, _, r)| r.ok());
        if kind == ElectionKind::Unclean
            && self.partition().isr.iter().all(|&m| Some(m) != leader)
            && leader.is_some()
        {
            self.faults.unclean_elections += 1;
        }
        self.event(format!(
            "elect {kind:?}: {:?}",
            outcome.results.first().map(|r| &r.2)
        ));
        self.apply_records(outcome.records);
        leader
    }

    /// Another controller becomes active: every broker gets a fresh session (as Kafka's
    /// new active controller gives them), and the requests in flight to the old one, and
    /// its answers, are lost (their senders time out).
    pub fn fail_over_controller(&mut self) {
        let now = self.now;
        self.sessions.reset(&self.cluster.image, now);
        let (lost, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|m| m.to == CONTROLLER || m.from == CONTROLLER);
        self.net = kept;
        for message in lost {
            self.lose(message);
        }
        self.event("controller failover: sessions reset, its messages in flight lost".to_owned());
    }

    /// Holds back metadata for `id` until `for_` has passed.
    pub fn hold_metadata(&mut self, id: NodeId, for_: Duration) {
        if let Some(index) = self.index(id) {
            self.nodes[index].metadata_held_until = Some(self.now + for_);
            self.event(format!("hold metadata for node {id} for {for_:?}"));
        }
    }

    /// AlterPartitionReassignments for the partition (`None` cancels).
    pub fn reassign(&mut self, target: Option<Vec<NodeId>>) -> bool {
        let outcome = alter_partition_reassignments(
            &self.cluster.image,
            &[(self.topic_id, 0, target.clone())],
        );
        let ok = outcome.results.iter().all(|(_, _, r)| r.is_ok());
        self.event(format!(
            "reassign to {target:?}: {:?}",
            outcome.results.first().map(|r| &r.2)
        ));
        self.apply_records(outcome.records);
        ok
    }
}
