//! The `spate serve` process contract the other tests rely on: one listening line naming both
//! ephemeral ports, `/health` answering 200 once ready, a clean exit (status 0) on SIGTERM, and
//! data that survives a clean restart.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::time::Duration;

use spate_tests::clients::run_kcat;
use spate_tests::fetch_request::{FetchParams, fetch_v5_body};
use spate_tests::kafka_requests::{check_broker_serves, metadata_v4};
use spate_tests::wire::{FrameRead, KafkaConnection, api_key};
use spate_tests::{Broker, BrokerOptions};

#[test]
fn serve_prints_its_ports_and_answers_health_with_200() {
    let broker = Broker::start().unwrap();
    assert_ne!(broker.kafka_addr().port(), 0);
    assert_ne!(broker.admin_addr().port(), 0);
    assert_ne!(broker.kafka_addr(), broker.admin_addr());
    assert_eq!(broker.admin_health_status().unwrap(), 200);
    check_broker_serves(broker.kafka_addr()).unwrap();
}

#[test]
fn sigterm_exits_cleanly_with_status_zero() {
    let mut broker = Broker::start().unwrap();
    check_broker_serves(broker.kafka_addr()).unwrap();
    let status = broker.terminate().unwrap();
    let status = status.unwrap_or_else(|| {
        panic!(
            "broker ignored SIGTERM and was killed:\n{}",
            broker.log_tail(4096)
        )
    });
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        broker.log_tail(4096)
    );
}

#[test]
fn sigterm_answers_in_flight_requests_before_exiting() {
    let mut broker = Broker::start().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !metadata_v4(&mut connection, Some(&["in-flight"]), true)
        .unwrap()
        .topics
        .iter()
        .any(|t| t.name == "in-flight" && t.error_code == 0 && t.partition_count > 0)
    {
        assert!(std::time::Instant::now() < deadline, "topic not created");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A long poll parked at the log end: in flight when SIGTERM arrives.
    let params = FetchParams {
        topic: "in-flight",
        partition: 0,
        fetch_offset: 0,
        max_wait_ms: 3_000,
        min_bytes: 1,
        max_bytes: 1024 * 1024,
        partition_max_bytes: 1024 * 1024,
    };
    let correlation_id = connection
        .send_request(api_key::FETCH, 5, &fetch_v5_body(&params))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let waiter = std::thread::spawn(move || connection.read_frame());
    let status = broker.terminate().unwrap();
    let answer = waiter.join().unwrap();
    match answer {
        Ok(FrameRead::Frame(frame)) => {
            let answered_id = i32::from_be_bytes(frame[..4].try_into().unwrap());
            assert_eq!(answered_id, correlation_id);
        }
        other => panic!("in-flight fetch not answered on SIGTERM: {other:?}"),
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
}

#[test]
fn records_and_topics_survive_a_clean_restart() {
    let mut broker = Broker::start().unwrap();
    let input: String = (0..500).map(|i| format!("record-{i}\n")).collect();
    let produced = run_kcat(
        &broker.bootstrap(),
        &["-P", "-t", "kept", "-p", "0"],
        Some(input.clone().into_bytes()),
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(produced.status.success(), "{}", produced.describe());

    broker.restart().unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let metadata = metadata_v4(&mut connection, None, false).unwrap();
    assert!(
        metadata.topics.iter().any(|t| t.name == "kept"),
        "topic lost across restart: {metadata:?}"
    );
    let consumed = run_kcat(
        &broker.bootstrap(),
        &["-C", "-t", "kept", "-p", "0", "-o", "beginning", "-e", "-q"],
        None,
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(consumed.status.success(), "{}", consumed.describe());
    assert_eq!(consumed.stdout_text(), input);
}

#[test]
fn spate_environment_variables_configure_the_broker() {
    let broker = Broker::start_with(BrokerOptions {
        env: vec![("SPATE_NUM_PARTITIONS".to_string(), "5".to_string())],
        ..BrokerOptions::default()
    })
    .unwrap();
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    // Like Kafka, the first answer for an auto-created topic may still say LEADER_NOT_AVAILABLE.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metadata = metadata_v4(&mut connection, Some(&["from-env"]), true).unwrap();
        let topic = metadata
            .topics
            .iter()
            .find(|t| t.name == "from-env")
            .unwrap();
        if topic.error_code == 0 {
            assert_eq!(topic.partition_count, 5, "SPATE_NUM_PARTITIONS=5 ignored");
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{metadata:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
