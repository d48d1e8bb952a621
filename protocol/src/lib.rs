//! Spate's Kafka wire codec.
//!
//! Sans-IO: this crate turns bytes into typed Kafka messages and back. It opens no sockets,
//! starts no runtime and reads no clock. Decoding is safe against hostile input: no length
//! field can make it allocate more than the bytes that remain, and every failure is a value.

pub mod api_key;
pub mod compression;
pub mod decode_error;
pub mod error_code;
pub mod frame;
pub mod header;
pub mod messages;
pub mod records;
pub mod replica_fetch;
pub mod wire;

pub use api_key::ApiKey;
pub use decode_error::DecodeError;
pub use error_code::ErrorCode;
pub use header::{RequestHeader, ResponseHeader, decode_request_header};
pub use messages::{
    RequestBody, ResponseBody, decode_request, decode_response, encode_request, encode_response,
};
pub use wire::{Decode, Encode, EncodeError, RawTaggedField, Uuid};
