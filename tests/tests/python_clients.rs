//! The Python clients talk to Spate unchanged: `confluent-kafka` (librdkafka underneath) and
//! `kafka-python` (its own protocol code, which depends on the v0 UNSUPPORTED_VERSION answer)
//! round-trip records and administer topics: create, describe configs, add partitions, delete.
//! The scripts in `tests/python/` do the work and exit non-zero with a FAILED line.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::time::Duration;

use spate_tests::Broker;
use spate_tests::clients::run_python_script;

/// Each script moves a few thousand records and a handful of admin calls.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn run_script_against_fresh_broker(script: &str) {
    let broker = Broker::start().unwrap();
    let output = run_python_script(script, &broker.bootstrap(), &[], SCRIPT_TIMEOUT)
        .unwrap_or_else(|error| {
            panic!("{script}: {error}\nbroker log:\n{}", broker.log_tail(4096))
        });
    assert!(
        output.status.success(),
        "{script} failed: {}\nbroker log:\n{}",
        output.describe(),
        broker.log_tail(4096)
    );
}

#[test]
fn confluent_kafka_round_trips_and_administers_topics() {
    run_script_against_fresh_broker("confluent_kafka_clients.py");
}

#[test]
fn kafka_python_round_trips_and_administers_topics() {
    run_script_against_fresh_broker("kafka_python_clients.py");
}
