//! How engine append errors become Produce error codes.

use spate_engine::log::{AppendError as LogAppendError, ProducerError};
use spate_engine::{AppendError, EngineError};

use super::error_code;
use crate::cluster::replication::ReplicatedAppendError;

/// The Kafka error code for an append that was refused, failed, or not replicated in time.
pub fn replicated_append_error_code(error: &ReplicatedAppendError) -> i16 {
    match error {
        ReplicatedAppendError::Append(e) => append_error_code(e),
        ReplicatedAppendError::NotEnoughReplicas(_) => error_code::NOT_ENOUGH_REPLICAS,
        ReplicatedAppendError::NotEnoughReplicasAfterAppend(_) => {
            error_code::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        }
        ReplicatedAppendError::Timeout { .. } => error_code::REQUEST_TIMED_OUT,
        ReplicatedAppendError::NotLeader | ReplicatedAppendError::LeadershipMoved => {
            error_code::NOT_LEADER_OR_FOLLOWER
        }
    }
}

/// The Kafka error code for a refused or failed append.
pub fn append_error_code(error: &AppendError) -> i16 {
    match error {
        AppendError::Rejected(rejected) => rejected_code(rejected),
        AppendError::Engine(EngineError::UnknownPartition(_)) => {
            error_code::UNKNOWN_TOPIC_OR_PARTITION
        }
        AppendError::Engine(EngineError::PartitionOffline { .. }) => {
            error_code::NOT_LEADER_OR_FOLLOWER
        }
        AppendError::Io { .. } | AppendError::Engine(_) => error_code::KAFKA_STORAGE_ERROR,
    }
}

fn rejected_code(error: &LogAppendError) -> i16 {
    match error {
        LogAppendError::Corrupt { .. } | LogAppendError::Empty => error_code::CORRUPT_MESSAGE,
        LogAppendError::TooLarge { .. } => error_code::MESSAGE_TOO_LARGE,
        LogAppendError::ControlBatchFromClient { .. } => error_code::INVALID_RECORD,
        LogAppendError::Producer(ProducerError::OutOfOrderSequence { .. }) => {
            error_code::OUT_OF_ORDER_SEQUENCE_NUMBER
        }
        LogAppendError::Producer(ProducerError::InvalidProducerEpoch { .. }) => {
            error_code::INVALID_PRODUCER_EPOCH
        }
        #[allow(unreachable_patterns)]
        _ => error_code::KAFKA_STORAGE_ERROR,
    }
}
