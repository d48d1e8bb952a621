//! Which header version each API uses, on top of the generated [`ApiKey`] table.
//!
//! The rules are Kafka's (`ApiMessageType.requestHeaderVersion`/`responseHeaderVersion`), not
//! in the JSON specs, so they are written here by hand:
//! - a flexible request version uses request header v2, otherwise v1;
//! - except ControlledShutdown v0, which predates the client id and uses header v0;
//! - a flexible response version uses response header v1, otherwise v0;
//! - except ApiVersions, whose response always uses header v0, because a client that asked
//!   with a version the broker does not know must still be able to read the error reply.

pub use crate::messages::ApiKey;

impl ApiKey {
    /// The request header version a request of this API at `version` carries.
    pub fn request_header_version(self, version: i16) -> i16 {
        if self == ApiKey::ControlledShutdown && version == 0 {
            0
        } else if self.is_flexible(version) {
            2
        } else {
            1
        }
    }

    /// The response header version the reply to a request at `version` carries.
    pub fn response_header_version(self, version: i16) -> i16 {
        if self == ApiKey::ApiVersions {
            0
        } else if self.is_flexible(version) {
            1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_versions_follow_kafka_rules() {
        assert_eq!(ApiKey::Metadata.request_header_version(8), 1);
        assert_eq!(ApiKey::Metadata.request_header_version(9), 2);
        assert_eq!(ApiKey::Metadata.response_header_version(9), 1);
        assert_eq!(ApiKey::ControlledShutdown.request_header_version(0), 0);
        assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
        assert_eq!(ApiKey::ApiVersions.response_header_version(3), 0);
        assert_eq!(ApiKey::Produce.request_header_version(9), 2);
        assert_eq!(ApiKey::Produce.request_header_version(8), 1);
    }

    #[test]
    fn from_i16_round_trips_every_key_and_rejects_unknown() {
        for key in ApiKey::ALL {
            assert_eq!(ApiKey::from_i16(key.id()), Some(key));
        }
        assert_eq!(ApiKey::from_i16(-1), None);
        assert_eq!(ApiKey::from_i16(i16::MAX), None);
        assert_eq!(ApiKey::Produce.valid_versions(), 0..=11);
        assert_eq!(ApiKey::Metadata.name(), "Metadata");
    }
}
