//! Where settings come from, and that they take effect: the `--config` TOML file, a flag that
//! overrides it, `--advertised-listen` (what Metadata tells clients), auto topic creation turned
//! off, and the connection limits: `socket.request.max.bytes` (an oversized frame closes only its
//! connection), `max.connections` (extra connections are closed, freed slots reused) and
//! `max.in.flight.requests.per.connection` (deeper pipelines wait, they are not refused).

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use spate_tests::kafka_requests::{api_versions_v0, metadata_v4};
use spate_tests::wire::{FrameRead, KafkaConnection, api_key};
use spate_tests::{Broker, BrokerOptions};
use tempfile::TempDir;

/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn config_file(dir: &TempDir, toml: &str) -> PathBuf {
    let path = dir.path().join("server.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn start(args: &[String]) -> Broker {
    Broker::start_with(BrokerOptions {
        extra_args: args.to_vec(),
        ..BrokerOptions::default()
    })
    .unwrap()
}

/// Partition count of `topic` after auto-creating it through Metadata.
fn auto_created_partition_count(broker: &Broker, topic: &str) -> usize {
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metadata = metadata_v4(&mut connection, Some(&[topic]), true).unwrap();
        if let Some(found) = metadata
            .topics
            .iter()
            .find(|t| t.name == topic && t.error_code == 0 && t.partition_count > 0)
        {
            return found.partition_count;
        }
        assert!(Instant::now() < deadline, "{metadata:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn config_file_sets_defaults_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(&dir, "\"num.partitions\" = 3\n");
    let config_arg = path.display().to_string();

    let from_file = start(&["--config".into(), config_arg.clone()]);
    assert_eq!(auto_created_partition_count(&from_file, "from-file"), 3);

    let overridden = start(&[
        "--config".into(),
        config_arg,
        "--num-partitions".into(),
        "2".into(),
    ]);
    assert_eq!(auto_created_partition_count(&overridden, "from-flag"), 2);
}

#[test]
fn advertised_listen_is_what_metadata_tells_clients() {
    let broker = start(&[
        "--advertised-listen".into(),
        "kafka.example.test:19092".into(),
    ]);
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let metadata = metadata_v4(&mut connection, None, false).unwrap();
    assert_eq!(metadata.brokers.len(), 1, "{metadata:?}");
    assert_eq!(metadata.brokers[0].host, "kafka.example.test");
    assert_eq!(metadata.brokers[0].port, 19092);
}

#[test]
fn metadata_does_not_create_topics_when_auto_creation_is_off() {
    let broker = start(&["--auto-create-topics".into(), "false".into()]);
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let metadata = metadata_v4(&mut connection, Some(&["not-created"]), true).unwrap();
    let topic = metadata
        .topics
        .iter()
        .find(|t| t.name == "not-created")
        .unwrap();
    assert_eq!(topic.error_code, UNKNOWN_TOPIC_OR_PARTITION, "{metadata:?}");
    let all = metadata_v4(&mut connection, None, false).unwrap();
    assert!(
        all.topics.iter().all(|t| t.name != "not-created"),
        "{all:?}"
    );
}

#[test]
fn frame_over_socket_request_max_bytes_closes_only_that_connection() {
    const LIMIT_BYTES: usize = 4096;
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(
        &dir,
        &format!("\"socket.request.max.bytes\" = {LIMIT_BYTES}\n"),
    );
    let broker = start(&["--config".into(), path.display().to_string()]);

    let mut bystander = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    assert_eq!(api_versions_v0(&mut bystander).unwrap().error_code, 0);

    let mut oversized = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    // A Metadata request padded past the limit; its content never gets looked at.
    oversized
        .send_request(api_key::METADATA, 1, &vec![0u8; LIMIT_BYTES * 2])
        .unwrap();
    match oversized.read_frame().unwrap() {
        FrameRead::Closed => {}
        FrameRead::Frame(frame) => panic!("over-limit frame was answered: {frame:?}"),
    }
    assert_eq!(api_versions_v0(&mut bystander).unwrap().error_code, 0);
}

/// Sends ApiVersions on a fresh connection. Returns the connection and `true` if it was
/// answered; `false` if the broker closed or reset it (or refused it outright).
fn answered_on_new_connection(broker: &Broker) -> (Option<KafkaConnection>, bool) {
    let Ok(mut connection) = KafkaConnection::connect(broker.kafka_addr()) else {
        return (None, false);
    };
    if connection
        .send_request(api_key::API_VERSIONS, 0, &[])
        .is_err()
    {
        return (None, false);
    }
    match connection.read_frame() {
        Ok(FrameRead::Frame(_)) => (Some(connection), true),
        _ => (None, false),
    }
}

#[test]
fn connections_over_max_connections_are_closed_and_freed_slots_are_reused() {
    const LIMIT: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(&dir, &format!("\"max.connections\" = {LIMIT}\n"));
    let broker = start(&["--config".into(), path.display().to_string()]);

    let mut open = Vec::new();
    for index in 0..LIMIT {
        let (connection, answered) = answered_on_new_connection(&broker);
        assert!(answered, "connection {index} of {LIMIT} refused");
        open.push(connection);
    }
    let (_, answered) = answered_on_new_connection(&broker);
    assert!(
        !answered,
        "connection {} was served past max.connections={LIMIT}",
        LIMIT + 1
    );

    open.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !answered_on_new_connection(&broker).1 {
        assert!(Instant::now() < deadline, "a freed slot was never reused");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pipelining_past_the_in_flight_limit_is_slowed_not_refused() {
    const IN_FLIGHT_LIMIT: usize = 2;
    const REQUEST_COUNT: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(
        &dir,
        &format!("\"max.in.flight.requests.per.connection\" = {IN_FLIGHT_LIMIT}\n"),
    );
    let broker = start(&["--config".into(), path.display().to_string()]);
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let ids: Vec<i32> = (0..REQUEST_COUNT)
        .map(|_| {
            connection
                .send_request(api_key::API_VERSIONS, 0, &[])
                .unwrap()
        })
        .collect();
    for id in ids {
        match connection.read_frame().unwrap() {
            FrameRead::Frame(frame) => {
                assert_eq!(i32::from_be_bytes(frame[..4].try_into().unwrap()), id);
            }
            FrameRead::Closed => panic!("closed after pipelining past the in-flight limit"),
        }
    }
}
