//! The active controller's partition requests: ISR changes from partition leaders
//! (AlterPartition, KIP-497), leader elections (ElectLeaders, KIP-460), reassignments
//! (KIP-455), and the upkeep it runs on its own: preferred-leader rebalancing
//! (`auto.leader.rebalance.enable`), unclean elections for topics that allow them, and
//! reassignments whose new replicas have all caught up.

use spate_cluster::controller::{
    self as decide, AlterPartitionError, ElectionError, ElectionKind, ReassignmentError,
};
use spate_cluster::image::TopicImage;
use spate_cluster::replication::IsrMember;
use spate_cluster::{ClusterImage, TopicId};

use super::{Controller, reply};
use crate::cluster::rpc::{
    AlterPartitionRequest, ControllerError, ControllerReply, ControllerReplyBody, PartitionResult,
};
use crate::handlers::error_code;

impl Controller {
    /// AlterPartition: applies the leader's ISR change (or refuses it), and answers with the
    /// partition as it then stands.
    pub(super) async fn alter_partition(
        &mut self,
        request: AlterPartitionRequest,
    ) -> Result<ControllerReply, ControllerError> {
        let image = self.feed.image();
        let decided = decide::AlterPartition {
            broker: request.broker,
            broker_epoch: request.broker_epoch,
            topic_id: request.topic_id,
            partition: request.partition,
            leader_epoch: request.leader_epoch,
            partition_epoch: request.partition_epoch,
            new_isr: request
                .new_isr
                .iter()
                .map(|&(node, broker_epoch)| IsrMember { node, broker_epoch })
                .collect(),
            leader_recovery_state: request.leader_recovery_state,
        };
        let records = match decide::alter_partition(&image, &decided) {
            Ok(records) => records,
            Err(e) => {
                tracing::debug!(broker = request.broker, topic_id = %request.topic_id, partition = request.partition, error = %e, "ISR change refused");
                let body =
                    ControllerReplyBody::Partition(Err((alter_partition_code(&e), e.to_string())));
                return Ok(reply(image.offset(), body));
            }
        };
        let offset = if records.is_empty() {
            image.offset()
        } else {
            self.write(records).await?
        };
        let image = self.feed.image();
        let body = match partition_state(&image, request.topic_id, request.partition) {
            Some(state) => {
                if !decided.new_isr.is_empty() {
                    tracing::info!(topic_id = %request.topic_id, partition = request.partition, isr = ?state.isr, partition_epoch = state.partition_epoch, "ISR changed");
                }
                Ok(state)
            }
            None => Err((
                error_code::UNKNOWN_TOPIC_OR_PARTITION,
                "the partition was deleted".to_owned(),
            )),
        };
        Ok(reply(offset, ControllerReplyBody::Partition(body)))
    }

    /// ElectLeaders: `partitions` by name, or every partition (then partitions that need no
    /// election are left out of the answer, as Kafka does).
    pub(super) async fn elect_leaders(
        &mut self,
        unclean: bool,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<ControllerReply, ControllerError> {
        let image = self.feed.image();
        let all = partitions.is_none();
        let (resolved, mut results) = resolve(&image, partitions);
        let kind = if unclean {
            ElectionKind::Unclean
        } else {
            ElectionKind::Preferred
        };
        let outcome = decide::elect_leaders(&image, &resolved, kind);
        for (topic_id, partition, result) in outcome.results {
            if all && result == Err(ElectionError::ElectionNotNeeded) {
                continue;
            }
            let (code, message) = match result {
                Ok(leader) => (error_code::NONE, format!("node {leader} leads it now")),
                Err(e) => (election_code(e), e.to_string()),
            };
            results.push(result_for(&image, topic_id, partition, code, message));
        }
        let offset = if outcome.records.is_empty() {
            image.offset()
        } else {
            let count = outcome.records.len();
            let offset = self.write(outcome.records).await?;
            tracing::info!(elections = count, unclean, "leaders elected on request");
            offset
        };
        Ok(reply(
            offset,
            ControllerReplyBody::PartitionResults(results),
        ))
    }

    /// AlterPartitionReassignments.
    pub(super) async fn alter_reassignments(
        &mut self,
        changes: Vec<(String, i32, Option<Vec<i32>>)>,
    ) -> Result<ControllerReply, ControllerError> {
        let image = self.feed.image();
        let mut results = Vec::new();
        let mut resolved = Vec::new();
        for (topic, partition, target) in changes {
            match image.topic(&topic) {
                Some(t) => resolved.push((t.id, partition, target)),
                None => results.push(PartitionResult {
                    topic: topic.clone(),
                    partition,
                    error_code: error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    message: Some(format!("topic '{topic}' does not exist")),
                }),
            }
        }
        let outcome = decide::alter_partition_reassignments(&image, &resolved);
        for (topic_id, partition, result) in outcome.results {
            let (code, message) = match result {
                Ok(()) => (error_code::NONE, String::new()),
                Err(e) => (reassignment_code(&e), e.to_string()),
            };
            results.push(result_for(&image, topic_id, partition, code, message));
        }
        let offset = if outcome.records.is_empty() {
            image.offset()
        } else {
            let count = outcome.records.len();
            let offset = self.write(outcome.records).await?;
            tracing::info!(partitions = count, "reassignments changed");
            offset
        };
        Ok(reply(
            offset,
            ControllerReplyBody::PartitionResults(results),
        ))
    }

    /// What the controller does on its own after brokers come and go: unclean elections
    /// where a topic allows them, and reassignments that can complete.
    pub(super) async fn upkeep(&mut self) {
        let image = self.feed.image();
        let mut records = decide::unclean_elections(&image, &allows_unclean);
        records.extend(decide::complete_reassignments(&image));
        if records.is_empty() {
            return;
        }
        let count = records.len();
        match self.write(records).await {
            Ok(_) => tracing::warn!(
                changes = count,
                "elected leaders uncleanly (unclean.leader.election.enable) or completed reassignments"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "partition upkeep could not be written; retrying later")
            }
        }
    }

    /// `auto.leader.rebalance.enable`: gives partitions back to their preferred leaders.
    pub(super) async fn rebalance_leaders(&mut self) {
        let Some((_, percent)) = self.settings.leader_rebalance else {
            return;
        };
        let image = self.feed.image();
        let records = decide::preferred_leader_rebalance(&image, percent);
        if records.is_empty() {
            return;
        }
        let count = records.len();
        match self.write(records).await {
            Ok(_) => tracing::info!(
                elections = count,
                "moved leaderships back to preferred replicas (auto.leader.rebalance.enable)"
            ),
            Err(e) => tracing::warn!(error = %e, "preferred-leader rebalance could not be written"),
        }
    }
}

fn allows_unclean(topic: &TopicImage) -> bool {
    topic
        .configs
        .get("unclean.leader.election.enable")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// `partitions` as ids; unknown topics become results at once. `None`: every partition.
fn resolve(
    image: &ClusterImage,
    partitions: Option<Vec<(String, i32)>>,
) -> (Vec<(TopicId, i32)>, Vec<PartitionResult>) {
    let mut resolved = Vec::new();
    let mut results = Vec::new();
    match partitions {
        None => {
            for topic in image.topics() {
                resolved.extend((0..topic.partition_count()).map(|p| (topic.id, p)));
            }
        }
        Some(list) => {
            for (topic, partition) in list {
                match image.topic(&topic) {
                    Some(t) => resolved.push((t.id, partition)),
                    None => results.push(PartitionResult {
                        message: Some(format!("topic '{topic}' does not exist")),
                        topic,
                        partition,
                        error_code: error_code::UNKNOWN_TOPIC_OR_PARTITION,
                    }),
                }
            }
        }
    }
    (resolved, results)
}

fn result_for(
    image: &ClusterImage,
    topic_id: TopicId,
    partition: i32,
    code: i16,
    message: String,
) -> PartitionResult {
    PartitionResult {
        topic: image
            .topic_by_id(topic_id)
            .map_or_else(|| topic_id.to_string(), |t| t.name.to_string()),
        partition,
        error_code: code,
        message: (!message.is_empty()).then_some(message),
    }
}

fn partition_state(
    image: &ClusterImage,
    topic_id: TopicId,
    partition: i32,
) -> Option<spate_cluster::PartitionState> {
    image
        .topic_by_id(topic_id)
        .and_then(|t| t.partition(partition))
        .cloned()
}

fn alter_partition_code(error: &AlterPartitionError) -> i16 {
    match error {
        AlterPartitionError::StaleBrokerEpoch { .. } => error_code::STALE_BROKER_EPOCH,
        AlterPartitionError::UnknownTopicOrPartition { .. } => {
            error_code::UNKNOWN_TOPIC_OR_PARTITION
        }
        AlterPartitionError::NotController => error_code::NOT_CONTROLLER,
        AlterPartitionError::FencedLeaderEpoch { .. } => error_code::FENCED_LEADER_EPOCH,
        AlterPartitionError::InvalidUpdateVersion { .. } => error_code::INVALID_UPDATE_VERSION,
        AlterPartitionError::NotLeaderOrFollower { .. } => error_code::NOT_LEADER_OR_FOLLOWER,
        AlterPartitionError::InvalidRequest(_) => error_code::INVALID_REQUEST,
        AlterPartitionError::IneligibleReplica { .. } => error_code::INELIGIBLE_REPLICA,
    }
}

fn election_code(error: ElectionError) -> i16 {
    match error {
        ElectionError::UnknownTopicOrPartition => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        ElectionError::ElectionNotNeeded => error_code::ELECTION_NOT_NEEDED,
        ElectionError::PreferredLeaderNotAvailable => error_code::PREFERRED_LEADER_NOT_AVAILABLE,
        ElectionError::EligibleLeadersNotAvailable => error_code::ELIGIBLE_LEADERS_NOT_AVAILABLE,
    }
}

fn reassignment_code(error: &ReassignmentError) -> i16 {
    match error {
        ReassignmentError::UnknownTopicOrPartition => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        ReassignmentError::InvalidReplicaAssignment(_) => error_code::INVALID_REPLICA_ASSIGNMENT,
        ReassignmentError::NoReassignmentInProgress => error_code::NO_REASSIGNMENT_IN_PROGRESS,
    }
}
