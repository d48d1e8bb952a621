//! Choosing a partition, compatible with Kafka's Java producer.
//!
//! Keyed records go where the Java client would put them,
//! `toPositive(murmur2(key)) % numPartitions`, so that Spate and Java producers writing the
//! same keys to the same topic agree on partitions (and per-key order holds across them).
//! Keyless records stick to one partition until about `batch.size` bytes have gone to it,
//! then move to another (KIP-480's sticky partitioner, with KIP-794's byte-based switch):
//! fuller batches, fewer requests, and still an even spread over time.

/// Kafka's murmur2 seed.
const MURMUR2_SEED: u32 = 0x9747_b28c;
/// Murmur2's mixing constant and shift.
const MURMUR2_M: u32 = 0x5bd1_e995;
const MURMUR2_R: u32 = 24;

/// Kafka's 32-bit murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as a signed int
/// like Java's.
pub fn murmur2(data: &[u8]) -> i32 {
    let length = data.len() as u32;
    let mut h = MURMUR2_SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(MURMUR2_M);
        k ^= k >> MURMUR2_R;
        k = k.wrapping_mul(MURMUR2_M);
        h = h.wrapping_mul(MURMUR2_M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (index, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * index);
        }
        h = h.wrapping_mul(MURMUR2_M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(MURMUR2_M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on MIN).
pub fn to_positive(value: i32) -> i32 {
    value & 0x7fff_ffff
}

/// The partition the Java client picks for `key` among `partition_count` partitions.
pub fn partition_for_key(key: &[u8], partition_count: usize) -> i32 {
    debug_assert!(partition_count > 0);
    let count = partition_count.max(1) as i64;
    (i64::from(to_positive(murmur2(key))) % count) as i32
}

/// Per-topic sticky choice for keyless records.
#[derive(Debug, Default)]
pub struct StickyPartitioner {
    topics: std::collections::HashMap<String, Sticky>,
    rng_state: u64,
}

#[derive(Debug)]
struct Sticky {
    partition: i32,
    bytes_since_switch: usize,
}

impl StickyPartitioner {
    pub fn new(seed: u64) -> Self {
        Self {
            topics: Default::default(),
            // xorshift must not start at zero.
            rng_state: seed | 1,
        }
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng_state = x;
        x
    }

    /// The partition for a keyless record of `size_bytes`; switches to another partition
    /// once `batch_size_bytes` have gone to the current one.
    pub fn partition(
        &mut self,
        topic: &str,
        partition_count: usize,
        size_bytes: usize,
        batch_size_bytes: usize,
    ) -> i32 {
        let count = partition_count.max(1) as u64;
        let fresh = (self.next_random() % count) as i32;
        let another = {
            let step = 1 + self.next_random() % count.saturating_sub(1).max(1);
            move |current: i32| ((current as u64 + step) % count) as i32
        };
        let sticky = self.topics.entry(topic.to_string()).or_insert(Sticky {
            partition: fresh,
            bytes_since_switch: 0,
        });
        if sticky.partition as u64 >= count {
            sticky.partition = fresh;
            sticky.bytes_since_switch = 0;
        }
        if sticky.bytes_since_switch >= batch_size_bytes {
            sticky.partition = if count > 1 {
                another(sticky.partition)
            } else {
                0
            };
            sticky.bytes_since_switch = 0;
        }
        sticky.bytes_since_switch += size_bytes;
        sticky.partition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own vectors from `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka_java_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key),
                *expected,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn keyed_partition_is_positive_murmur2_modulo_count() {
        // toPositive(-973932308) = 1173551340; 1173551340 % 3 = 0, % 7 = 1173551340 % 7.
        assert_eq!(partition_for_key(b"21", 3), 1_173_551_340 % 3);
        assert_eq!(partition_for_key(b"21", 7), 1_173_551_340 % 7);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
    }

    #[test]
    fn sticky_partitioner_stays_for_a_batch_then_moves() {
        let mut sticky = StickyPartitioner::new(42);
        let first = sticky.partition("t", 4, 100, 1000);
        for _ in 0..9 {
            assert_eq!(sticky.partition("t", 4, 100, 1000), first);
        }
        let next = sticky.partition("t", 4, 100, 1000);
        assert_ne!(next, first, "switches after batch.size bytes");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..400 {
            seen.insert(sticky.partition("t", 4, 100, 1000));
        }
        assert_eq!(seen.len(), 4, "spreads over every partition in time");
        assert_eq!(sticky.partition("one", 1, 5000, 1000), 0);
        assert_eq!(sticky.partition("one", 1, 5000, 1000), 0);
    }
}
