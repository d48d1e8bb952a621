//! Member ids: `{client_id or group.instance.id}-{uuid-like suffix}`, as Kafka forms them.
//!
//! Kafka uses a random UUID. The coordinator has no randomness source (it is sans-IO and
//! deterministic for tests), so the suffix mixes the clock with a counter instead. Two ids
//! from one coordinator never share (time, counter); the time part never goes backwards
//! within a lifetime, and a restarted coordinator starts at a later time, so ids stay
//! unique across restarts too. The callers still check for a clash inside the group.

use crate::api::Millis;

#[derive(Debug, Default)]
pub(crate) struct MemberIds {
    latest_ms: Millis,
    counter: u64,
}

impl MemberIds {
    pub fn next(&mut self, now: Millis, prefix: &str) -> String {
        let prefix = bounded_prefix(prefix);
        self.latest_ms = self.latest_ms.max(now);
        self.counter = self.counter.wrapping_add(1);
        // Both halves go through a bijection, so distinct inputs give distinct outputs.
        let high = mix(self.latest_ms as u64 ^ 0x5350_4154_4547_5250);
        let low = mix(self.counter ^ (self.latest_ms as u64).rotate_left(32));
        format!(
            "{prefix}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xffff,
            high & 0xffff,
            low >> 48,
            low & 0xffff_ffff_ffff
        )
    }
}

/// Longest client-chosen prefix kept in a member id. A client id may be up to 32,767 bytes,
/// and the id with its suffix must still fit the 32,767-byte strings of the stored group
/// record; nobody reads a prefix this long anyway.
const PREFIX_LENGTH_MAX_BYTES: usize = 255;

fn bounded_prefix(prefix: &str) -> &str {
    if prefix.len() <= PREFIX_LENGTH_MAX_BYTES {
        return prefix;
    }
    let mut end = PREFIX_LENGTH_MAX_BYTES;
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    &prefix[..end]
}

/// SplitMix64's finaliser: a bijection on u64 that spreads nearby inputs apart, so ids look
/// unrelated (clients sometimes log or compare them) without being random.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_within_a_millisecond_and_across_restarts() {
        let mut seen = HashSet::new();
        let mut first = MemberIds::default();
        for _ in 0..10_000 {
            assert!(seen.insert(first.next(1_000, "c")));
        }
        // A clock that steps back does not reuse earlier (time, counter) pairs.
        for _ in 0..100 {
            assert!(seen.insert(first.next(999, "c")));
        }
        let mut restarted = MemberIds::default();
        for _ in 0..10_000 {
            assert!(seen.insert(restarted.next(1_001, "c")));
        }
    }

    #[test]
    fn id_has_the_prefix_and_a_uuid_shaped_suffix() {
        let id = MemberIds::default().next(0, "consumer-1");
        let suffix = id.strip_prefix("consumer-1-").expect("prefix");
        let groups: Vec<usize> = suffix.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12]);
    }

    #[test]
    fn long_client_ids_are_cut_at_a_char_boundary() {
        let mut ids = MemberIds::default();
        let long = "é".repeat(40_000);
        let id = ids.next(1, &long);
        assert!(id.len() <= PREFIX_LENGTH_MAX_BYTES + 40);
        assert!(id.starts_with("éé"));
    }
}
