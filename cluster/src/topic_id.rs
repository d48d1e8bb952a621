//! Topic ids (KIP-516): 16 random bytes that tell a re-created topic from the old one.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

/// A topic's UUID. All zeros is Kafka's "no id" sentinel and is never generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// Kafka's sentinel for "no topic id" (older request versions, or a name lookup).
    pub const ZERO: TopicId = TopicId([0; 16]);

    /// A random version-4 UUID. Falls back to time and address entropy if the OS random
    /// source cannot be read, since a topic id must be unique, not secret.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        if read.is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let stack = &bytes as *const _ as usize as u128;
            bytes = (nanos ^ stack.rotate_left(64)).to_le_bytes();
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        if bytes == [0; 16] {
            bytes[15] = 1;
        }
        TopicId(bytes)
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The text was not a hyphenated or plain 32-hex-digit UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTopicId;

impl FromStr for TopicId {
    type Err = BadTopicId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
        if hex.len() != 32 {
            return Err(BadTopicId);
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| BadTopicId)?;
            bytes[i] = u8::from_str_radix(text, 16).map_err(|_| BadTopicId)?;
        }
        Ok(TopicId(bytes))
    }
}

impl serde::Serialize for TopicId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TopicId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("'{text}' is not a topic id (a UUID)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_distinct_v4_and_round_trip_through_text() {
        let a = TopicId::random();
        let b = TopicId::random();
        assert_ne!(a, b);
        assert_ne!(a, TopicId::ZERO);
        assert_eq!(a.0[6] >> 4, 4);
        assert_eq!(a.to_string().parse::<TopicId>(), Ok(a));
        assert_eq!(a.to_string().len(), 36);
    }

    #[test]
    fn malformed_text_is_refused() {
        assert_eq!("zz".parse::<TopicId>(), Err(BadTopicId));
        assert_eq!("g".repeat(32).parse::<TopicId>(), Err(BadTopicId));
    }
}
