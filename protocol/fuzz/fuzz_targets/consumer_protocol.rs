//! Fuzzes the readers of the embedded consumer protocol (JoinGroup subscriptions, SyncGroup
//! assignments): arbitrary bytes must never panic, and nothing read may claim more bytes than
//! the input holds.

#![no_main]

use spate_coordinator::consumer_protocol::{assigned_partitions, subscribed_topics};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(topics) = subscribed_topics(data) {
        // Each topic is at least its 2-byte length prefix plus its text.
        let size_bytes: usize = topics.iter().map(|t| 2 + t.len()).sum();
        assert!(size_bytes <= data.len(), "topics larger than the input");
    }
    if let Some(assignment) = assigned_partitions(data) {
        let size_bytes: usize = assignment
            .iter()
            .map(|(topic, partitions)| 6 + topic.len() + 4 * partitions.len())
            .sum();
        assert!(size_bytes <= data.len(), "assignment larger than the input");
    }
});
