//! The controller quorum's openraft storage: the durable metadata log and the state machine
//! over the metadata image.
//!
//! Everything lives in one directory (the server passes `<data_dir>/__cluster_metadata/`):
//!
//! | file | holds | written |
//! |---|---|---|
//! | `<first index:020>.log` | log entries, framed (see [`frame`]) | appended, synced before ack |
//! | `vote` | the last vote granted | replaced whole, durable |
//! | `committed` | the last committed log id known | replaced whole, atomic |
//! | `purged` | the last purged log id | replaced whole, durable, before segments go |
//! | `snapshot` | the image at a log id, with openraft's meta | replaced whole, durable |
//!
//! [`LogStore`] and [`StateMachine`] are what `openraft::Raft::new` takes; [`raft_config`]
//! is the config to run them with. What this module does not do: talk to other nodes (the
//! network is the transport's), decide anything (the controller in `spate-cluster` does),
//! or apply the image to the engine (the feed's readers do).

mod durable_file;
mod error;
mod frame;
mod log_store;
mod segment;
mod snapshot_file;
mod state_machine;
mod types;

use std::sync::Arc;

use openraft::{Config, ConfigError, SnapshotPolicy};

pub use error::StoreError;
pub use log_store::{LogReader, LogStore};
pub use segment::{ENTRY_BYTES_MAX, SEGMENT_BYTES_MAX};
pub use snapshot_file::IMAGE_BYTES_MAX;
pub use state_machine::{SnapshotBuilder, StateMachine};
pub use types::{
    ApplyOutcome, Entry, LogId, Raft, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig, Vote, from_raft_id, to_raft_id,
};

/// Entries applied since the last snapshot before openraft builds a new one. A snapshot
/// writes the whole image, while entries are a few hundred bytes, so this keeps snapshots
/// rare (minutes apart even under a burst of topic and leadership changes) while bounding
/// the log kept on disk and in memory to a few megabytes, and a restart's re-apply to
/// milliseconds.
pub const SNAPSHOT_LOGS_SINCE_LAST: u64 = 10_000;

/// Entries already in a snapshot kept anyway, so a follower a little behind catches up from
/// the log instead of being sent the whole image.
pub const SNAPSHOT_LOGS_TO_KEEP: u64 = 1_000;

/// How far behind a follower may fall before it is sent a snapshot. Above
/// [`SNAPSHOT_LOGS_SINCE_LAST`], as openraft asks, so a snapshot always fixes the lag.
pub const REPLICATION_LAG_MAX: u64 = 2 * SNAPSHOT_LOGS_SINCE_LAST;

/// Time to send a snapshot and have it installed. A full image of a large cluster is tens of
/// megabytes and is written durably on arrival; openraft's 200 ms default would cut that off.
pub const SNAPSHOT_INSTALL_TIMEOUT_MS: u64 = 30_000;

/// The openraft config for the metadata quorum, for Kafka's
/// `controller.quorum.election.timeout.ms` = `election_timeout_ms`: a follower that hears
/// nothing from the leader for that long stands for election.
///
/// openraft makes a follower of a committed leader wait out a leader lease (its maximum
/// election timeout) and then a random election timeout before it stands. So its range is
/// set to a third and two thirds of the configured timeout: a follower stands after between
/// `election_timeout_ms` and 4/3 of it without a heartbeat (randomized, so split votes are
/// rare), as a KRaft voter would, instead of three to four times it. A leader sends
/// heartbeats every `heartbeat_interval_ms`, which must be below a third of the timeout.
pub fn raft_config(
    election_timeout_ms: u64,
    heartbeat_interval_ms: u64,
) -> Result<Arc<Config>, Box<ConfigError>> {
    let config = Config {
        cluster_name: "spate".to_owned(),
        election_timeout_min: election_timeout_ms / 3,
        election_timeout_max: election_timeout_ms.saturating_mul(2) / 3,
        heartbeat_interval: heartbeat_interval_ms,
        install_snapshot_timeout: SNAPSHOT_INSTALL_TIMEOUT_MS,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_LOGS_SINCE_LAST),
        max_in_snapshot_log_to_keep: SNAPSHOT_LOGS_TO_KEEP,
        replication_lag_threshold: REPLICATION_LAG_MAX,
        ..Config::default()
    };
    Ok(Arc::new(config.validate().map_err(Box::new)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_validates_and_refuses_heartbeats_slower_than_elections() {
        let config = raft_config(1_000, 100).unwrap();
        assert_eq!(config.cluster_name, "spate");
        // Lease (the max) plus a random timeout: a follower stands after 1 to 1.33 s.
        assert_eq!(config.election_timeout_min, 333);
        assert_eq!(config.election_timeout_max, 666);
        assert!(raft_config(300, 100).is_err());
        assert!(raft_config(0, 0).is_err());
    }
}
