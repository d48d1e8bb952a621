//! The Kafka error codes the handlers answer with, as the `i16` the generated messages
//! carry. Values come from the protocol crate's [`ErrorCode`] table, so they cannot drift.

use spate_protocol::ErrorCode;

pub const UNKNOWN_SERVER_ERROR: i16 = ErrorCode::UnknownServerError as i16;
pub const NONE: i16 = ErrorCode::None as i16;
pub const OFFSET_OUT_OF_RANGE: i16 = ErrorCode::OffsetOutOfRange as i16;
pub const CORRUPT_MESSAGE: i16 = ErrorCode::CorruptMessage as i16;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = ErrorCode::UnknownTopicOrPartition as i16;
pub const NOT_LEADER_OR_FOLLOWER: i16 = ErrorCode::NotLeaderOrFollower as i16;
pub const MESSAGE_TOO_LARGE: i16 = ErrorCode::MessageTooLarge as i16;
pub const INVALID_TOPIC_EXCEPTION: i16 = ErrorCode::InvalidTopicException as i16;
pub const INVALID_REQUIRED_ACKS: i16 = ErrorCode::InvalidRequiredAcks as i16;
pub const UNSUPPORTED_VERSION: i16 = ErrorCode::UnsupportedVersion as i16;
pub const TOPIC_ALREADY_EXISTS: i16 = ErrorCode::TopicAlreadyExists as i16;
pub const INVALID_PARTITIONS: i16 = ErrorCode::InvalidPartitions as i16;
pub const INVALID_REPLICATION_FACTOR: i16 = ErrorCode::InvalidReplicationFactor as i16;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = ErrorCode::InvalidReplicaAssignment as i16;
pub const INVALID_CONFIG: i16 = ErrorCode::InvalidConfig as i16;
pub const INVALID_REQUEST: i16 = ErrorCode::InvalidRequest as i16;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = ErrorCode::UnsupportedForMessageFormat as i16;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = ErrorCode::OutOfOrderSequenceNumber as i16;
pub const INVALID_PRODUCER_EPOCH: i16 = ErrorCode::InvalidProducerEpoch as i16;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
    ErrorCode::TransactionalIdAuthorizationFailed as i16;
pub const KAFKA_STORAGE_ERROR: i16 = ErrorCode::KafkaStorageError as i16;
pub const UNKNOWN_PRODUCER_ID: i16 = ErrorCode::UnknownProducerId as i16;
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = ErrorCode::FetchSessionIdNotFound as i16;
pub const INVALID_RECORD: i16 = ErrorCode::InvalidRecord as i16;
pub const UNKNOWN_TOPIC_ID: i16 = ErrorCode::UnknownTopicId as i16;
pub const INCONSISTENT_TOPIC_ID: i16 = ErrorCode::InconsistentTopicId as i16;
pub const LEADER_NOT_AVAILABLE: i16 = ErrorCode::LeaderNotAvailable as i16;
pub const REQUEST_TIMED_OUT: i16 = ErrorCode::RequestTimedOut as i16;
pub const NOT_COORDINATOR: i16 = ErrorCode::NotCoordinator as i16;
pub const COORDINATOR_NOT_AVAILABLE: i16 = ErrorCode::CoordinatorNotAvailable as i16;
pub const NOT_CONTROLLER: i16 = ErrorCode::NotController as i16;
pub const FENCED_LEADER_EPOCH: i16 = ErrorCode::FencedLeaderEpoch as i16;
pub const UNKNOWN_LEADER_EPOCH: i16 = ErrorCode::UnknownLeaderEpoch as i16;
pub const REPLICA_NOT_AVAILABLE: i16 = ErrorCode::ReplicaNotAvailable as i16;
pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = ErrorCode::UnsupportedEndpointType as i16;
pub const NOT_ENOUGH_REPLICAS: i16 = ErrorCode::NotEnoughReplicas as i16;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = ErrorCode::NotEnoughReplicasAfterAppend as i16;
pub const OPERATION_NOT_ATTEMPTED: i16 = ErrorCode::OperationNotAttempted as i16;
pub const STALE_BROKER_EPOCH: i16 = ErrorCode::StaleBrokerEpoch as i16;
pub const OFFSET_NOT_AVAILABLE: i16 = ErrorCode::OffsetNotAvailable as i16;
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = ErrorCode::PreferredLeaderNotAvailable as i16;
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = ErrorCode::EligibleLeadersNotAvailable as i16;
pub const ELECTION_NOT_NEEDED: i16 = ErrorCode::ElectionNotNeeded as i16;
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = ErrorCode::NoReassignmentInProgress as i16;
pub const INVALID_UPDATE_VERSION: i16 = ErrorCode::InvalidUpdateVersion as i16;
pub const INELIGIBLE_REPLICA: i16 = ErrorCode::IneligibleReplica as i16;
