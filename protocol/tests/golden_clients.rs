//! Requests that real Kafka clients sent, decoded by our codec.
//!
//! The fixtures in `fixtures/` are whole request frames (size prefix included) captured from
//! kcat 1.7.1 (librdkafka 2.0.2), confluent-kafka-python 2.16.1 (librdkafka 2.16.0) and
//! kafka-python 3.0.12 by `examples/capture_clients`; `fixtures/README.md` says how. These
//! tests need only the files, never the clients. They prove that the frame reader, the
//! generated request decoders and the record iterator agree with what clients really send,
//! including every compression codec as each client writes it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use spate_protocol::frame::{FrameDecoder, peek_request_header};
use spate_protocol::records::{BatchRecords, Compression, Record, read_all_records};
use spate_protocol::{ApiKey, RequestBody, decode_request, decode_request_header};

const CLIENTS: [(&str, &str); 3] = [
    ("kcat", "kcat-golden"),
    ("confluent", "confluent-kafka-golden"),
    ("kafka-python", "kafka-python-golden"),
];
const CODECS: [(&str, Compression); 5] = [
    ("none", Compression::None),
    ("gzip", Compression::Gzip),
    ("snappy", Compression::Snappy),
    ("lz4", Compression::Lz4),
    ("zstd", Compression::Zstd),
];
const TOPIC: &str = "golden";
const GROUP: &str = "golden-group";
/// The topic id the capture tool gave `golden` in its Metadata responses.
const TOPIC_ID: [u8; 16] = [
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x01,
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture whose name starts with `prefix`, sorted.
fn fixtures(prefix: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".bin")
        })
        .collect();
    paths.sort();
    paths
}

/// One captured request, decoded.
struct Captured {
    name: String,
    client_id: Option<String>,
    body: RequestBody,
}

/// Reads a fixture through the frame decoder, checks the peeked header against the decoded
/// one and the file name, and decodes the body, which must be consumed exactly.
fn decode_fixture(path: &Path) -> Captured {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut buffer = BytesMut::from(&std::fs::read(path).unwrap()[..]);
    let mut decoder = FrameDecoder::default();
    let frame = decoder.decode(&mut buffer).unwrap().unwrap();
    assert!(buffer.is_empty(), "{name}: one frame per fixture");
    let peeked = peek_request_header(&frame).unwrap();
    let mut rest: Bytes = frame.clone();
    let header = decode_request_header(&mut rest).unwrap();
    assert_eq!(header.request_api_key, peeked.api_key, "{name}");
    assert_eq!(header.request_api_version, peeked.api_version, "{name}");
    assert_eq!(header.correlation_id, peeked.correlation_id, "{name}");
    let api_key = ApiKey::from_i16(peeked.api_key).unwrap();
    assert!(
        name.ends_with(&format!("-v{}.bin", peeked.api_version)),
        "{name}: file name names the version"
    );
    let body = decode_request(api_key, peeked.api_version, &mut rest)
        .unwrap_or_else(|error| panic!("{name}: {error}"));
    assert!(
        rest.is_empty(),
        "{name}: {} body bytes left over",
        rest.len()
    );
    Captured {
        name,
        client_id: header.client_id,
        body,
    }
}

fn client_id_for(name: &str) -> &'static str {
    CLIENTS
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, client_id)| *client_id)
        .unwrap()
}

/// The single Produce fixture for a client and codec.
fn produce_fixture(client: &str, codec: &str) -> PathBuf {
    let found = fixtures(&format!("{client}-produce-{codec}-Produce-"));
    assert_eq!(found.len(), 1, "{client} {codec}: {found:?}");
    found.into_iter().next().unwrap()
}

#[test]
fn every_fixture_decodes_completely_with_the_clients_id() {
    let all = fixtures("");
    assert!(all.len() >= 50, "only {} fixtures", all.len());
    for path in all {
        let captured = decode_fixture(&path);
        assert_eq!(
            captured.client_id.as_deref(),
            Some(client_id_for(&captured.name)),
            "{}",
            captured.name
        );
    }
}

#[test]
fn each_client_sent_the_apis_the_issue_asks_for() {
    for (client, _) in CLIENTS {
        for api in [
            "ApiVersions",
            "Metadata",
            "Fetch",
            "JoinGroup",
            "OffsetCommit",
        ] {
            assert!(
                !fixtures(&format!("{client}-group-{api}-v")).is_empty(),
                "{client} {api}"
            );
        }
        for (codec, _) in CODECS {
            produce_fixture(client, codec);
        }
    }
}

fn records_of(captured: &Captured) -> (Vec<Record>, Compression) {
    let RequestBody::Produce(produce) = &captured.body else {
        panic!("{}: not a Produce", captured.name);
    };
    assert!(produce.acks == -1 || produce.acks == 1, "{}", captured.name);
    assert_eq!(produce.topic_data.len(), 1, "{}", captured.name);
    let topic = &produce.topic_data[0];
    assert_eq!(topic.name, TOPIC);
    assert_eq!(topic.partition_data.len(), 1);
    assert_eq!(topic.partition_data[0].index, 0);
    let records = topic.partition_data[0].records.clone().unwrap();
    let compression = BatchRecords::new(records.clone()).unwrap().compression();
    (read_all_records(&records, 1 << 20).unwrap(), compression)
}

#[test]
fn produced_records_decode_from_every_client_and_codec() {
    for (client, _) in CLIENTS {
        for (codec, compression) in CODECS {
            let captured = decode_fixture(&produce_fixture(client, codec));
            let (records, used) = records_of(&captured);
            assert_eq!(used, compression, "{}", captured.name);
            assert_eq!(records.len(), 3, "{}", captured.name);
            for (index, record) in records.iter().enumerate() {
                let context = format!("{} record {index}", captured.name);
                assert_eq!(record.offset, index as i64, "{context}");
                assert_eq!(
                    record.key.as_deref(),
                    Some(format!("key-{index}").as_bytes()),
                    "{context}"
                );
                assert_eq!(
                    record.value.as_deref(),
                    Some(format!("golden-value-{index}").repeat(20).as_bytes()),
                    "{context}"
                );
                assert_eq!(record.headers.len(), 1, "{context}");
                assert_eq!(record.headers[0].0, "h", "{context}");
                assert!(record.timestamp_ms > 1_600_000_000_000, "{context}");
            }
        }
    }
}

#[test]
fn api_versions_requests_name_the_client_software() {
    for (client, _) in CLIENTS {
        for path in fixtures(&format!("{client}-")) {
            let captured = decode_fixture(&path);
            if let RequestBody::ApiVersions(request) = &captured.body {
                let expected = match client {
                    "kafka-python" => "kafka-python",
                    "confluent" => "confluent-kafka-python",
                    _ => "librdkafka",
                };
                assert_eq!(request.client_software_name, expected, "{}", captured.name);
                assert!(!request.client_software_version.is_empty());
            }
        }
    }
}

#[test]
fn metadata_requests_ask_only_for_the_golden_topic() {
    let mut named = 0;
    for path in fixtures("") {
        let captured = decode_fixture(&path);
        if let RequestBody::Metadata(request) = &captured.body {
            for topic in request.topics.iter().flatten() {
                assert_eq!(topic.name.as_deref(), Some(TOPIC), "{}", captured.name);
                named += 1;
            }
        }
    }
    assert!(named >= 1, "some client names the topic it produces to");
}

#[test]
fn group_requests_carry_the_group_and_topic() {
    for (client, _) in CLIENTS {
        for path in fixtures(&format!("{client}-group-")) {
            let captured = decode_fixture(&path);
            let name = &captured.name;
            match &captured.body {
                RequestBody::FindCoordinator(request) => {
                    let keys: Vec<&str> = if request.coordinator_keys.is_empty() {
                        vec![request.key.as_str()]
                    } else {
                        request
                            .coordinator_keys
                            .iter()
                            .map(String::as_str)
                            .collect()
                    };
                    assert_eq!(keys, vec![GROUP], "{name}");
                }
                RequestBody::JoinGroup(request) => {
                    assert_eq!(request.group_id, GROUP, "{name}");
                    assert_eq!(request.protocol_type, "consumer", "{name}");
                    assert!(!request.protocols.is_empty(), "{name}");
                    // The subscription metadata (ConsumerProtocolSubscription) lists the topic.
                    let metadata = &request.protocols[0].metadata;
                    assert!(
                        metadata.windows(TOPIC.len()).any(|w| w == TOPIC.as_bytes()),
                        "{name}"
                    );
                }
                RequestBody::SyncGroup(request) => assert_eq!(request.group_id, GROUP, "{name}"),
                RequestBody::Heartbeat(request) => assert_eq!(request.group_id, GROUP, "{name}"),
                RequestBody::LeaveGroup(request) => assert_eq!(request.group_id, GROUP, "{name}"),
                RequestBody::OffsetFetch(request) => {
                    let group = request
                        .groups
                        .first()
                        .map_or(request.group_id.as_str(), |g| g.group_id.as_str());
                    assert_eq!(group, GROUP, "{name}");
                }
                RequestBody::OffsetCommit(request) => {
                    assert_eq!(request.group_id, GROUP, "{name}");
                    assert_eq!(request.topics.len(), 1, "{name}");
                    assert_eq!(request.topics[0].name, TOPIC, "{name}");
                    let partition = &request.topics[0].partitions[0];
                    assert_eq!(partition.partition_index, 0, "{name}");
                    // The capture tool served two records, so the next offset is 2.
                    assert_eq!(partition.committed_offset, 2, "{name}");
                }
                RequestBody::Fetch(request) => {
                    let version = captured_version(name);
                    let topic = &request.topics[0];
                    if version >= 13 {
                        assert_eq!(topic.topic_id.0, TOPIC_ID, "{name}");
                    } else {
                        assert_eq!(topic.topic, TOPIC, "{name}");
                    }
                    assert_eq!(topic.partitions[0].partition, 0, "{name}");
                }
                RequestBody::ListOffsets(request) => {
                    assert_eq!(request.topics[0].name, TOPIC, "{name}");
                }
                _ => {}
            }
        }
    }
}

fn captured_version(name: &str) -> i16 {
    let version = name.rsplit("-v").next().unwrap().trim_end_matches(".bin");
    version.parse().unwrap()
}

/// librdkafka sends raw snappy blocks; kafka-python sends the xerial framing the Java client
/// uses. Both paths of our snappy decoder are exercised by real bytes.
#[test]
fn snappy_interop_covers_raw_and_xerial_framing() {
    for (client, xerial_expected) in [
        ("kcat", false),
        ("confluent", false),
        ("kafka-python", true),
    ] {
        let captured = decode_fixture(&produce_fixture(client, "snappy"));
        let RequestBody::Produce(produce) = &captured.body else {
            panic!("{}: not a Produce", captured.name);
        };
        let batch = produce.topic_data[0].partition_data[0]
            .records
            .clone()
            .unwrap();
        let body = &batch[spate_protocol::records::BATCH_HEADER_SIZE_BYTES..];
        let xerial = body.starts_with(&spate_protocol::compression::SNAPPY_XERIAL_MAGIC);
        assert_eq!(xerial, xerial_expected, "{}", captured.name);
    }
}
