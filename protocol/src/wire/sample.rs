//! Random values of every message type, for round-trip property tests and fuzz seeds.
//!
//! Compiled only with the `sample` feature. A hand-rolled deterministic generator rather than
//! proptest strategies: the generated `Sample` impls for ~180 messages compile in seconds,
//! whereas nested strategy combinators for the same types take minutes on a small machine.
//! Property tests drive it from a proptest-chosen seed, so failures still replay.

use bytes::Bytes;

use super::{RawTaggedField, Uuid};

/// Longest array a sample holds; enough to exercise counts > 1 while keeping nesting cheap.
pub const SAMPLE_ARRAY_LEN_MAX: u64 = 3;

/// A small deterministic random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct SampleRng {
    state: u64,
}

impl SampleRng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SampleRng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// A short string, sometimes with multi-byte UTF-8.
    pub fn string(&mut self) -> String {
        const ALPHABET: [&str; 8] = ["a", "b", "z", "0", "-", "_", "é", "ü"];
        let len = self.below(6);
        (0..len)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize])
            .collect()
    }

    /// A short byte string.
    pub fn bytes(&mut self) -> Bytes {
        let len = self.below(8);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// A vector of up to [`SAMPLE_ARRAY_LEN_MAX`] elements.
    pub fn vec<T>(&mut self, mut element: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let len = self.below(SAMPLE_ARRAY_LEN_MAX + 1);
        (0..len).map(|_| element(self)).collect()
    }

    /// A random UUID.
    pub fn uuid(&mut self) -> Uuid {
        Uuid::from_u64_pair(self.next_u64(), self.next_u64())
    }

    /// A finite float (NaN would break round-trip equality, not the codec).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / 1024.0 - 1.0e12
    }

    /// Unknown tagged fields with tags far above any Kafka 4.0 tag, in ascending order.
    pub fn unknown_tagged_fields(&mut self) -> Vec<RawTaggedField> {
        let count = self.below(3);
        (0..count)
            .map(|index| RawTaggedField {
                tag: 10_000 + index as u32 * 7,
                data: self.bytes(),
            })
            .collect()
    }
}

/// A type that can produce a random value valid at a given version: only fields that exist
/// in that version are set, and null only where the version allows it.
pub trait Sample: Sized {
    /// A random value for `version`.
    fn sample(rng: &mut SampleRng, version: i16) -> Self;
}
