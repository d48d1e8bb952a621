//! The one error type of the encoding layer.

/// Why a Kafka message could not be encoded at the requested version.
///
/// Encoding fails only on values the target version cannot express, mirroring Kafka's
/// `UnsupportedVersionException`: silently dropping a field the peer needs is worse than
/// refusing to send it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message does not exist at this version.
    #[error("{message}: version {version} is not supported")]
    UnsupportedVersion { message: &'static str, version: i16 },
    /// A non-default value is set on a field this version lacks, and the field is not
    /// ignorable, so dropping it would change the meaning of the message.
    #[error("{field}: has a non-default value but does not exist in version {version}")]
    FieldNotInVersion { field: &'static str, version: i16 },
    /// `None` was given for a field that is not nullable in this version.
    #[error("{field}: null is not allowed in version {version}")]
    NullNotAllowed { field: &'static str, version: i16 },
    /// Unknown tagged fields are set but this version has no tagged-field section.
    #[error("{message}: tagged fields are set but version {version} is not flexible")]
    TaggedFieldsNotInVersion { message: &'static str, version: i16 },
    /// A string, byte array or array is longer than its length prefix can express.
    #[error("{field}: length {length} exceeds the maximum {limit} of its length prefix")]
    TooLong {
        field: &'static str,
        length: usize,
        limit: usize,
    },
}
