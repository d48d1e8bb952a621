//! Shared set-up for the client's integration tests: a real broker and kcat.

#![allow(dead_code, clippy::unwrap_used)]

pub mod fake_broker;
pub mod group;

use std::time::Duration;

use spate_tests::clients::run_kcat;
use spate_tests::{Broker, BrokerOptions};

pub const KCAT_TIMEOUT: Duration = Duration::from_secs(20);

/// A broker whose auto-created topics have `partitions` partitions.
pub fn broker_with_partitions(partitions: u32) -> Broker {
    Broker::start_with(BrokerOptions {
        num_partitions: Some(partitions),
        ..Default::default()
    })
    .expect("broker starts")
}

/// One record as kcat printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KcatRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: String,
}

/// kcat's output format: lengths before key and value, so bytes are compared exactly (a
/// null key prints length -1).
pub const KCAT_FORMAT: &str = "P%p O%o T%T K%K:%k V%S:%s H%h\n";

/// Every record of `topic`, read with `kcat -C -e` from the beginning.
pub fn kcat_consume(broker: &Broker, topic: &str) -> Vec<KcatRecord> {
    let output = run_kcat(
        &broker.bootstrap(),
        &[
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            KCAT_FORMAT,
        ],
        None,
        KCAT_TIMEOUT,
    )
    .expect("kcat runs");
    assert!(
        output.status.success(),
        "kcat -C failed: {}",
        output.describe()
    );
    parse_kcat(&output.stdout)
}

fn take_until<'a>(rest: &mut &'a [u8], delimiter: u8) -> &'a [u8] {
    let end = rest
        .iter()
        .position(|b| *b == delimiter)
        .expect("delimiter");
    let head = &rest[..end];
    *rest = &rest[end + 1..];
    head
}

fn take_len(rest: &mut &[u8], len: i64) -> Option<Vec<u8>> {
    if len < 0 {
        return None;
    }
    let len = len as usize;
    let value = rest[..len].to_vec();
    *rest = &rest[len..];
    Some(value)
}

fn number(bytes: &[u8], prefix: &str) -> i64 {
    let text = std::str::from_utf8(bytes).unwrap();
    text.strip_prefix(prefix).unwrap().parse().unwrap()
}

pub fn parse_kcat(mut rest: &[u8]) -> Vec<KcatRecord> {
    let mut records = Vec::new();
    while !rest.is_empty() {
        let partition = number(take_until(&mut rest, b' '), "P") as i32;
        let offset = number(take_until(&mut rest, b' '), "O");
        let timestamp_ms = number(take_until(&mut rest, b' '), "T");
        let key_len = number(take_until(&mut rest, b':'), "K");
        let key = take_len(&mut rest, key_len);
        assert_eq!(rest[0], b' ');
        rest = &rest[1..];
        let value_len = number(take_until(&mut rest, b':'), "V");
        let value = take_len(&mut rest, value_len);
        assert_eq!(&rest[..2], b" H");
        rest = &rest[2..];
        let headers = String::from_utf8(take_until(&mut rest, b'\n').to_vec()).unwrap();
        records.push(KcatRecord {
            partition,
            offset,
            timestamp_ms,
            key,
            value,
            headers,
        });
    }
    records
}
