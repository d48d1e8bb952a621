//! Kafka's 128-bit UUID (topic ids, directory ids).

use std::fmt;

/// A Kafka UUID: 16 raw bytes, big-endian most-significant half first, as on the wire.
///
/// A plain byte array rather than a `uuid` crate type because the codec never generates or
/// parses textual UUIDs; it only moves them. The all-zero value is Kafka's `ZERO_UUID`, the
/// default for every uuid field.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Kafka's "no id" value.
    pub const ZERO: Uuid = Uuid([0; 16]);

    /// Builds a UUID from its two 64-bit halves, as Kafka's Java `Uuid` stores it.
    pub fn from_u64_pair(most_significant: u64, least_significant: u64) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&most_significant.to_be_bytes());
        bytes[8..].copy_from_slice(&least_significant.to_be_bytes());
        Uuid(bytes)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Uuid {
    /// Hex with dashes (8-4-4-4-12); Kafka's own text form is base64, but hex is what logs
    /// and people read most easily.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if matches!(index, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_dashed_hex_of_the_wire_bytes() {
        let id = Uuid::from_u64_pair(0x0011_2233_4455_6677, 0x8899_aabb_ccdd_eeff);
        assert_eq!(id.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(Uuid::default(), Uuid::ZERO);
    }
}
