//! Tests of the `__consumer_offsets` codec: Kafka's exact bytes, round trips of every shape
//! and version, every kind of malformed input, and the partition hash. This module holds the
//! hand-built layouts they share.

mod kafka_bytes;
mod malformed;
mod partition;
mod round_trips;

use bytes::Bytes;

use super::*;

/// Builds Kafka layouts by hand, independently of the writer under test.
#[derive(Default)]
struct Layout(Vec<u8>);

impl Layout {
    fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    /// Classic string: int16 length, then UTF-8.
    fn str(self, s: &str) -> Self {
        self.i16(s.len() as i16).raw(s.as_bytes())
    }
    /// Classic bytes: int32 length, then data.
    fn bytes(self, b: &[u8]) -> Self {
        self.i32(b.len() as i32).raw(b)
    }
    /// Compact string (single-byte uvarint length + 1 is enough for these tests).
    fn cstr(self, s: &str) -> Self {
        assert!(s.len() < 127);
        self.raw(&[s.len() as u8 + 1]).raw(s.as_bytes())
    }
    fn done(self) -> Vec<u8> {
        self.0
    }
}

fn offset_record(value: Option<OffsetValue>) -> Record {
    Record::Offset {
        group: "grp".into(),
        topic: "topic".into(),
        partition: 7,
        value,
    }
}

fn sample_member() -> MemberValue {
    MemberValue {
        member_id: "m-1".into(),
        group_instance_id: Some("i-1".into()),
        client_id: "cli".into(),
        client_host: "/10.0.0.1".into(),
        rebalance_timeout_ms: 300_000,
        session_timeout_ms: 45_000,
        subscription: Bytes::from_static(&[0, 1, 2]),
        assignment: Bytes::from_static(&[9]),
    }
}

fn sample_group_value() -> GroupValue {
    GroupValue {
        protocol_type: "consumer".into(),
        generation: 5,
        protocol: Some("range".into()),
        leader: Some("m-1".into()),
        current_state_timestamp_ms: 1_700_000_000_000,
        members: vec![sample_member()],
    }
}

fn offset_key_bytes(version: i16) -> Vec<u8> {
    Layout::default()
        .i16(version)
        .str("grp")
        .str("topic")
        .i32(7)
        .done()
}

fn group_key_bytes() -> Vec<u8> {
    Layout::default().i16(2).str("grp").done()
}

/// One member as v3 lays it out.
fn member_v3(layout: Layout) -> Layout {
    layout
        .str("m-1")
        .str("i-1")
        .str("cli")
        .str("/10.0.0.1")
        .i32(300_000)
        .i32(45_000)
        .bytes(&[0, 1, 2])
        .bytes(&[9])
}

fn group_value_v3_bytes() -> Vec<u8> {
    let head = Layout::default()
        .i16(3)
        .str("consumer")
        .i32(5)
        .str("range")
        .str("m-1")
        .i64(1_700_000_000_000)
        .i32(1);
    member_v3(head).done()
}

fn malformed(key: &[u8], value: Option<&[u8]>) -> String {
    match Record::decode(key, value) {
        Err(RecordError::Malformed(message)) => message,
        Ok(record) => panic!("decoded {record:?}"),
    }
}
