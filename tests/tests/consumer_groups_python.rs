//! Consumer groups as the Python clients run them against Spate's group coordinator:
//! confluent-kafka (librdkafka underneath) members as separate OS processes, so one can be
//! SIGKILLed or stalled, and kafka-python with its own protocol code. Each test runs one script
//! from `tests/python/groups_*.py`; the script does the work, checks the members' event logs and
//! the AdminClient's view, and exits non-zero with a FAILED line naming what broke.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::time::Duration;

use spate_tests::clients::run_python_script;
use spate_tests::{Broker, BrokerOptions};

/// The scripts keep themselves well under a minute; this only stops a hung one.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// How much broker log a failure message carries.
const LOG_TAIL_BYTES: usize = 6_000;

/// Runs `script` against a fresh broker whose first rebalance of a new group waits
/// `initial_rebalance_delay_ms`: 0 where one member joins, longer where several start together
/// and should land in one generation rather than a string of rebalances.
fn run_against_fresh_broker(script: &str, initial_rebalance_delay_ms: u32) {
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--group-initial-rebalance-delay-ms".into(),
            initial_rebalance_delay_ms.to_string(),
        ],
        ..BrokerOptions::default()
    })
    .unwrap();
    let output = run_python_script(script, &broker.bootstrap(), &[], SCRIPT_TIMEOUT)
        .unwrap_or_else(|error| {
            panic!(
                "{script}: {error}\nbroker log:\n{}",
                broker.log_tail(LOG_TAIL_BYTES)
            )
        });
    assert!(
        output.status.success(),
        "{script} failed: {}\nbroker log:\n{}",
        output.describe(),
        broker.log_tail(LOG_TAIL_BYTES)
    );
}

#[test]
fn killed_member_partitions_move_to_survivors_without_overlap_or_loss() {
    run_against_fresh_broker("groups_rebalance_on_kill.py", 1_000);
}

#[test]
fn new_member_resumes_at_the_committed_offset_after_a_kill() {
    run_against_fresh_broker("groups_resume_after_kill.py", 0);
}

#[test]
fn auto_commit_reaches_the_coordinator_within_a_few_intervals() {
    run_against_fresh_broker("groups_auto_commit.py", 0);
}

#[test]
fn kafka_python_member_commits_is_described_and_leaves_an_empty_group() {
    run_against_fresh_broker("groups_kafka_python.py", 0);
}

#[test]
fn assign_only_consumer_never_joins_and_its_commit_makes_a_simple_group() {
    run_against_fresh_broker("groups_assign_only.py", 0);
}

#[test]
fn member_that_stops_polling_loses_its_partitions_after_max_poll_interval() {
    run_against_fresh_broker("groups_max_poll_interval.py", 1_000);
}

#[test]
fn admin_client_lists_describes_alters_and_deletes_groups() {
    run_against_fresh_broker("groups_admin.py", 0);
}
