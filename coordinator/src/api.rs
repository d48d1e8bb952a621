//! The coordinator's inputs and outputs. Plain data, independent of the wire versions: the
//! server's handlers translate each request version to and from these.

use bytes::Bytes;
use spate_protocol::ErrorCode;

use crate::records::Record;

/// Wall-clock milliseconds since the Unix epoch, as Kafka stores timestamps. Injected by the
/// caller on every call; the coordinator never reads a clock.
pub type Millis = i64;

/// The broker settings that shape group behaviour. Names and defaults are Kafka's.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// `group.min.session.timeout.ms`: a join asking for less gets INVALID_SESSION_TIMEOUT.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: a join asking for more gets INVALID_SESSION_TIMEOUT.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members, so a fleet starting together gets one rebalance, not N.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`: a join beyond it gets GROUP_MAX_SIZE_REACHED.
    pub max_group_size: usize,
    /// `offsets.retention.minutes` in ms: offsets of a group that has been empty this long
    /// expire (KIP-211). Offsets of a group with members never expire.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`: longer commit metadata gets OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_group_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

/// Names a request whose answer may come later, through an [`Effect`]. Chosen by the caller,
/// unique among its outstanding requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// The group states of Kafka's classic protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name DescribeGroups and ListGroups report, as Kafka spells it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One protocol (assignor) a joining member supports, with its subscription metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// JoinGroup, any version. v0 has no rebalance timeout: pass the session timeout.
#[derive(Debug, Clone)]
pub struct JoinGroup {
    pub group_id: String,
    /// Empty on a member's first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub client_id: String,
    pub client_host: String,
    /// v4+: an unknown dynamic member first gets MEMBER_ID_REQUIRED with its new id (KIP-394).
    pub require_known_member_id: bool,
    pub reason: Option<String>,
}

/// A member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The JoinGroup response. `members` is filled for the leader only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: ErrorCode,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// KIP-814: a static leader rejoining without a rebalance must not reassign.
    pub skip_assignment: bool,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    /// A refusal: the error, with `member_id` echoed (MEMBER_ID_REQUIRED carries the new id).
    pub fn error(error: ErrorCode, member_id: impl Into<String>) -> Self {
        Self {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.into(),
            members: Vec::new(),
        }
    }
}

/// SyncGroup, any version. Only the leader sends assignments.
#[derive(Debug, Clone)]
pub struct SyncGroup {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// v5+: must match the group's, or INCONSISTENT_GROUP_PROTOCOL.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ErrorCode) -> Self {
        Self {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
}

/// One member leaving. v0–2 name one dynamic member; v3+ a batch, by member id or by
/// `group.instance.id` (KIP-345: an admin may remove static members by instance id alone).
#[derive(Debug, Clone)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveResult {
    /// Group-level error (unknown group, coordinator problems).
    pub error: ErrorCode,
    /// Per member, in request order: (member_id, group_instance_id, error).
    pub members: Vec<(String, Option<String>, ErrorCode)>,
}

/// A topic partition, as groups name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub topic: String,
    pub partition: i32,
}

impl PartitionKey {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

/// A committed offset as stored and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    /// -1 when the client did not send one.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: Millis,
    /// Only from OffsetCommit v2–v4 with an explicit retention time; otherwise `None` and
    /// expiry follows `offsets.retention.minutes` from when the group became empty.
    pub expire_timestamp_ms: Option<Millis>,
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub key: PartitionKey,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// OffsetCommit, any version. A consumer outside any group (assign(), or a group with no
/// members) commits with `generation_id` -1 and an empty `member_id`.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// v2–v4 `retention_time_ms`; -1 means the broker default.
    pub retention_time_ms: i64,
    pub partitions: Vec<CommitPartition>,
}

/// A validated commit: the records to append, and the answer per partition. Partitions
/// refused individually (metadata too large) have no record.
#[derive(Debug, Clone)]
pub struct PreparedCommit {
    pub group_id: String,
    pub records: Vec<Record>,
    /// In request order.
    pub results: Vec<(PartitionKey, ErrorCode)>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub error: ErrorCode,
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol (assignor) name; empty unless Stable or CompletingRebalance.
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The member's metadata for the selected protocol; empty when none is selected.
    pub metadata: Bytes,
    /// The member's assignment; empty unless Stable.
    pub assignment: Bytes,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// Work the coordinator hands back to its caller, in the order it must be done.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Append these records to this coordinator's `__consumer_offsets` partition, before
    /// delivering any reply queued after this effect.
    Append(Vec<Record>),
    /// The answer to a JoinGroup that waited.
    JoinDone { token: Token, result: JoinResult },
    /// The answer to a SyncGroup that waited.
    SyncDone { token: Token, result: SyncResult },
}

/// A request's answer: now, or later through an [`Effect`] carrying the same token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    Now(T),
    Later,
}
