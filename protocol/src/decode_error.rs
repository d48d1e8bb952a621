//! The one error type of the decoding layer.
//!
//! Every variant names the field it failed on as `Message.field` (or `Struct.field` for a nested
//! struct), because a hostile or buggy client is far easier to diagnose from "which field" than
//! from "somewhere in this frame". Handlers turn these into Kafka error codes (usually
//! `CORRUPT_MESSAGE` or `INVALID_REQUEST`); this layer knows nothing about codes.

/// Why a Kafka message could not be decoded from the bytes given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A fixed-size value needs more bytes than remain.
    #[error("{field}: needs {needed_bytes} bytes but only {remaining_bytes} remain")]
    Truncated {
        field: &'static str,
        needed_bytes: usize,
        remaining_bytes: usize,
    },
    /// A length or count prefix promises more data than the frame holds.
    #[error("{field}: {kind} length {length} exceeds {remaining_bytes} remaining bytes")]
    LengthExceedsRemaining {
        field: &'static str,
        kind: &'static str,
        length: i64,
        remaining_bytes: usize,
    },
    /// A length prefix is negative but not the null marker -1.
    #[error("{field}: invalid {kind} length {length}")]
    InvalidLength {
        field: &'static str,
        kind: &'static str,
        length: i64,
    },
    /// A null was sent for a field that is not nullable in this version.
    #[error("{field}: null is not allowed here")]
    UnexpectedNull { field: &'static str },
    /// A string is not valid UTF-8; Kafka strings always are.
    #[error("{field}: string is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    /// A varint runs longer than its type allows.
    #[error("{field}: varint is longer than {max_bytes} bytes")]
    VarintTooLong {
        field: &'static str,
        max_bytes: usize,
    },
    /// More tagged fields than any real client sends; see `TAGGED_FIELDS_MAX`.
    #[error("{field}: {count} tagged fields exceed the limit of {limit}")]
    TooManyTaggedFields {
        field: &'static str,
        count: u64,
        limit: usize,
    },
    /// The message does not exist at this version in Kafka 4.0.
    #[error("{message}: version {version} is not supported")]
    UnsupportedVersion { message: &'static str, version: i16 },
    /// The API key is not one this codec knows.
    #[error("unknown API key {api_key}")]
    UnknownApiKey { api_key: i16 },
}
