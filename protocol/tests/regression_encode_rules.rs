//! Encoding follows Kafka's rules for fields a version cannot carry, and the header-version
//! quirks clients depend on. Each test pins a behaviour a broker bug report would be about.

use bytes::{Bytes, BytesMut};
use spate_protocol::messages::metadata_request::MetadataRequestTopic;
use spate_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use spate_protocol::messages::{ApiVersionsResponse, MetadataRequest, ProduceRequest};
use spate_protocol::{Decode, Encode, EncodeError};

#[test]
fn non_default_value_in_a_version_without_the_field_is_refused() {
    let request = MetadataRequest {
        allow_auto_topic_creation: false, // exists from v4, not ignorable
        ..Default::default()
    };
    let err = request.encode(&mut BytesMut::new(), 3).unwrap_err();
    assert_eq!(
        err,
        EncodeError::FieldNotInVersion {
            field: "MetadataRequest.allow_auto_topic_creation",
            version: 3
        }
    );
    request.encode(&mut BytesMut::new(), 4).unwrap();
}

#[test]
fn ignorable_field_is_silently_dropped_in_older_versions() {
    let response = ApiVersionsResponse {
        throttle_time_ms: 100, // v1+, ignorable
        ..Default::default()
    };
    let mut out = BytesMut::new();
    response.encode(&mut out, 0).unwrap();
    let decoded = ApiVersionsResponse::decode(&mut out.freeze(), 0).unwrap();
    assert_eq!(decoded.throttle_time_ms, 0);
}

#[test]
fn null_in_a_version_where_the_field_is_not_nullable_is_refused() {
    let request = MetadataRequest {
        topics: None, // nullable only from v1
        ..Default::default()
    };
    assert!(matches!(
        request.encode(&mut BytesMut::new(), 0),
        Err(EncodeError::NullNotAllowed { .. })
    ));
}

#[test]
fn metadata_v12_matches_hand_assembled_bytes() {
    let request = MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            name: Some("t".into()),
            ..Default::default()
        }]),
        allow_auto_topic_creation: true,
        ..Default::default()
    };
    let mut out = BytesMut::new();
    request.encode(&mut out, 12).unwrap();
    let expected: &[u8] = &[
        2, // compact array: 1 topic
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // topic id (zero uuid)
        2, b't', // compact nullable string "t"
        0,    // topic tagged fields
        1,    // allow_auto_topic_creation
        0,    // include_topic_authorized_operations
        0,    // tagged fields
    ];
    assert_eq!(&out[..], expected);
}

#[test]
fn produce_records_are_a_slice_of_the_frame() {
    let records = Bytes::from_static(b"pretend-record-batch");
    let request = ProduceRequest {
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: "events".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(records.clone()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    for version in [3, 8, 9, 11] {
        let mut out = BytesMut::new();
        request.encode(&mut out, version).unwrap();
        let frame = out.freeze();
        let decoded = ProduceRequest::decode(&mut frame.clone(), version).unwrap();
        let got = decoded.topic_data[0].partition_data[0]
            .records
            .clone()
            .unwrap();
        assert_eq!(got, records);
        let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(
            frame_range.contains(&(got.as_ptr() as usize)),
            "v{version} copied"
        );
    }
}
