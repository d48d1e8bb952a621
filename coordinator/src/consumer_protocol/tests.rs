//! Tests of the consumer-protocol readers against the bytes real clients send.

use proptest::prelude::*;

use super::*;

/// A test-only writer of both structures, at any version, so round trips cover every layout.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn str(self, s: &str) -> Self {
        self.i16(s.len() as i16).raw(s.as_bytes())
    }
    fn nullable_str(self, s: Option<&str>) -> Self {
        match s {
            Some(s) => self.str(s),
            None => self.i16(-1),
        }
    }
    fn nullable_bytes(self, b: Option<&[u8]>) -> Self {
        match b {
            Some(b) => self.i32(b.len() as i32).raw(b),
            None => self.i32(-1),
        }
    }
    fn topics(self, topics: &[String]) -> Self {
        topics
            .iter()
            .fold(self.i32(topics.len() as i32), |w, t| w.str(t))
    }
    fn topic_partitions(self, entries: &[(String, Vec<i32>)]) -> Self {
        entries
            .iter()
            .fold(self.i32(entries.len() as i32), |w, (topic, parts)| {
                parts
                    .iter()
                    .fold(w.str(topic).i32(parts.len() as i32), |w, p| w.i32(*p))
            })
    }
    fn done(self) -> Vec<u8> {
        self.0
    }
}

#[derive(Debug, Clone)]
struct Subscription {
    version: i16,
    topics: Vec<String>,
    user_data: Option<Vec<u8>>,
    owned: Vec<(String, Vec<i32>)>,
    generation: i32,
    rack: Option<String>,
}

impl Subscription {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default()
            .i16(self.version)
            .topics(&self.topics)
            .nullable_bytes(self.user_data.as_deref());
        if self.version >= 1 {
            w = w.topic_partitions(&self.owned);
        }
        if self.version >= 2 {
            w = w.i32(self.generation);
        }
        if self.version >= 3 {
            w = w.nullable_str(self.rack.as_deref());
        }
        w.done()
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

// ---- bytes as clients write them ----

#[test]
fn reads_a_v0_subscription_as_old_java_clients_and_librdkafka_send_it() {
    // version 0, topics ["orders", "payments"], userData null.
    let bytes = [
        0, 0, 0, 0, 0, 2, 0, 6, b'o', b'r', b'd', b'e', b'r', b's', 0, 8, b'p', b'a', b'y', b'm',
        b'e', b'n', b't', b's', 0xff, 0xff, 0xff, 0xff,
    ];
    assert_eq!(
        subscribed_topics(&bytes),
        Some(strings(&["orders", "payments"]))
    );
}

#[test]
fn reads_a_v1_subscription_with_owned_partitions_as_cooperative_clients_send_it() {
    // version 1, topics ["t"], userData 2 bytes, ownedPartitions [{"t", [0, 2]}].
    let bytes = [
        0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0xab, 0xcd, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2,
        0, 0, 0, 0, 0, 0, 0, 2,
    ];
    assert_eq!(subscribed_topics(&bytes), Some(strings(&["t"])));
}

#[test]
fn reads_a_v3_subscription_with_generation_and_rack_as_java_3_5_sends_it() {
    // version 3, topics ["a", "b"], userData null, ownedPartitions [], generationId 7,
    // rackId "rack-1".
    let bytes = [
        0, 3, 0, 0, 0, 2, 0, 1, b'a', 0, 1, b'b', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 7,
        0, 6, b'r', b'a', b'c', b'k', b'-', b'1',
    ];
    assert_eq!(subscribed_topics(&bytes), Some(strings(&["a", "b"])));
}

#[test]
fn reads_an_assignment_as_java_sends_it() {
    // version 3, [{"a", [0, 1]}, {"b", [4]}], userData null.
    let bytes = [
        0, 3, 0, 0, 0, 2, 0, 1, b'a', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b'b', 0, 0, 0, 1,
        0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff,
    ];
    let expected = vec![("a".to_string(), vec![0, 1]), ("b".to_string(), vec![4])];
    assert_eq!(assigned_partitions(&bytes), Some(expected));
}

#[test]
fn reads_a_v0_assignment_with_user_data_and_no_partitions() {
    let bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x42];
    assert_eq!(assigned_partitions(&bytes), Some(Vec::new()));
}

#[test]
fn empty_assignment_bytes_are_an_empty_assignment() {
    assert_eq!(assigned_partitions(&[]), Some(Vec::new()));
}

// ---- versions ----

#[test]
fn newer_versions_are_read_with_the_v3_layout_and_extra_fields_ignored() {
    let mut subscription = Subscription {
        version: 9,
        topics: strings(&["x"]),
        user_data: None,
        owned: vec![("x".into(), vec![1])],
        generation: 3,
        rack: None,
    }
    .encode();
    subscription.extend_from_slice(&[1, 2, 3, 4, 5]);
    assert_eq!(subscribed_topics(&subscription), Some(strings(&["x"])));
    let assignment = Writer::default()
        .i16(4)
        .topic_partitions(&[("x".into(), vec![1])])
        .nullable_bytes(None)
        .raw(&[0xee; 3])
        .done();
    assert_eq!(
        assigned_partitions(&assignment),
        Some(vec![("x".into(), vec![1])])
    );
}

#[test]
fn a_newer_version_that_breaks_the_v3_layout_is_refused() {
    // v4 claiming an owned-partitions count it does not have.
    let bytes = Writer::default()
        .i16(4)
        .topics(&strings(&["x"]))
        .nullable_bytes(None)
        .i32(1_000)
        .done();
    assert_eq!(subscribed_topics(&bytes), None);
}

#[test]
fn trailing_bytes_after_a_known_version_are_refused() {
    for version in 0..=3 {
        let mut bytes = Subscription {
            version,
            topics: strings(&["x"]),
            user_data: None,
            owned: Vec::new(),
            generation: -1,
            rack: None,
        }
        .encode();
        assert_eq!(
            subscribed_topics(&bytes),
            Some(strings(&["x"])),
            "v{version}"
        );
        bytes.push(0);
        assert_eq!(subscribed_topics(&bytes), None, "v{version}");
    }
    let assignment = Writer::default()
        .i16(3)
        .i32(0)
        .nullable_bytes(None)
        .raw(&[0])
        .done();
    assert_eq!(assigned_partitions(&assignment), None);
}

// ---- malformed ----

#[test]
fn bytes_that_are_not_a_subscription_are_refused() {
    assert_eq!(subscribed_topics(&[]), None);
    assert_eq!(subscribed_topics(&[0]), None);
    // Negative version.
    assert_eq!(
        subscribed_topics(&[0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        None
    );
    // Null topic array.
    assert_eq!(
        subscribed_topics(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        None
    );
    // Null topic name.
    assert_eq!(
        subscribed_topics(&[0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        None
    );
    // Not UTF-8.
    assert_eq!(
        subscribed_topics(&[0, 0, 0, 0, 0, 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff]),
        None
    );
    // Missing userData.
    assert_eq!(subscribed_topics(&[0, 0, 0, 0, 0, 0]), None);
}

#[test]
fn counts_the_bytes_cannot_hold_are_refused_before_allocating() {
    let topics = Writer::default().i16(0).i32(i32::MAX).raw(&[0; 16]).done();
    assert_eq!(subscribed_topics(&topics), None);
    let partitions = Writer::default()
        .i16(0)
        .i32(1)
        .str("t")
        .i32(i32::MAX)
        .raw(&[0; 16])
        .done();
    assert_eq!(assigned_partitions(&partitions), None);
    let user_data = Writer::default()
        .i16(0)
        .i32(0)
        .i32(1 << 30)
        .raw(&[0; 4])
        .done();
    assert_eq!(assigned_partitions(&user_data), None);
}

#[test]
fn every_cut_of_an_assignment_is_refused() {
    let bytes = Writer::default()
        .i16(1)
        .topic_partitions(&[("a".into(), vec![0, 1]), ("b".into(), vec![2])])
        .nullable_bytes(Some(b"ud"))
        .done();
    assert!(assigned_partitions(&bytes).is_some());
    for cut in 1..bytes.len() {
        assert_eq!(assigned_partitions(&bytes[..cut]), None, "cut at {cut}");
    }
}

// ---- round trips ----

fn topic() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(?s).{0,10}").expect("valid regex")
}

fn topic_partitions() -> impl Strategy<Value = Vec<(String, Vec<i32>)>> {
    proptest::collection::vec(
        (topic(), proptest::collection::vec(any::<i32>(), 0..5)),
        0..4,
    )
}

fn subscription() -> impl Strategy<Value = Subscription> {
    (
        0i16..=3,
        proptest::collection::vec(topic(), 0..5),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        topic_partitions(),
        any::<i32>(),
        proptest::option::of(topic()),
    )
        .prop_map(
            |(version, topics, user_data, owned, generation, rack)| Subscription {
                version,
                topics,
                user_data,
                owned,
                generation,
                rack,
            },
        )
}

proptest! {
    #[test]
    fn subscriptions_of_every_version_give_back_their_topics(s in subscription()) {
        let bytes = s.encode();
        prop_assert_eq!(subscribed_topics(&bytes), Some(s.topics.clone()));
        for cut in 0..bytes.len() {
            prop_assert_eq!(subscribed_topics(&bytes[..cut]), None);
        }
    }

    #[test]
    fn assignments_give_back_their_partitions(
        version in 0i16..=3,
        partitions in topic_partitions(),
        user_data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
    ) {
        let bytes = Writer::default()
            .i16(version)
            .topic_partitions(&partitions)
            .nullable_bytes(user_data.as_deref())
            .done();
        prop_assert_eq!(assigned_partitions(&bytes), Some(partitions));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = subscribed_topics(&bytes);
        let _ = assigned_partitions(&bytes);
    }
}
