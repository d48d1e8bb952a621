//! Kafka's primitive wire types and the traits the generated messages implement.
//!
//! The generated code in `crate::messages` is a flat sequence of calls into this module, one
//! per field. Keeping every bounds check, length check and allocation decision here means the
//! hostile-input rules are argued once, in a few hundred hand-written lines, instead of in
//! hundreds of generated files.
//!
//! Decoding reads from `&mut Bytes` so that byte and record fields can be `split_to` slices of
//! the request frame (zero copy). Encoding writes through the [`Sink`] trait so one generated
//! routine serves both `encode` (into a `BytesMut`) and `encoded_len` (into a [`LenCounter`]).

mod encode_error;
mod read;
mod tagged;
mod uuid;
mod varint;
mod write;

#[cfg(feature = "sample")]
pub mod sample;

pub use encode_error::EncodeError;
pub use read::*;
pub use tagged::{
    RawTaggedField, TAGGED_FIELDS_MAX, read_tagged_fields, write_raw_tagged_field,
    write_tagged_count, write_tagged_header, write_unknown_tags_below,
};
pub use uuid::Uuid;
pub use varint::{read_uvarint, read_varint, uvarint_len, write_uvarint, write_varint};
pub use write::*;

use bytes::{Bytes, BytesMut};

use crate::decode_error::DecodeError;

/// A Kafka message (or header) that can be read at a given version.
pub trait Decode: Sized {
    /// Decodes one value from the front of `buf`, advancing it past the bytes consumed.
    ///
    /// Byte and record fields are slices of `buf`'s storage, not copies.
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError>;
}

/// A Kafka message (or header) that can be written at a given version.
pub trait Encode {
    /// Appends the encoding of `self` at `version` to `buf`.
    fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError>;
    /// The exact number of bytes `encode` would append, so callers can size frames up front.
    fn encoded_len(&self, version: i16) -> Result<usize, EncodeError>;
}

/// Where encoded bytes go: a real buffer, or a counter that only measures.
///
/// Kafka needs sizes before data in two places (the frame length and each tagged field's
/// size), so the generated writer is generic over this trait and is run once with a
/// [`LenCounter`] where a size is needed.
pub trait Sink {
    /// Appends raw bytes.
    fn put_slice(&mut self, bytes: &[u8]);
}

impl Sink for BytesMut {
    #[inline]
    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A [`Sink`] that counts bytes and stores nothing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LenCounter {
    /// Bytes "written" so far.
    pub len_bytes: usize,
}

impl Sink for LenCounter {
    #[inline]
    fn put_slice(&mut self, bytes: &[u8]) {
        self.len_bytes += bytes.len();
    }
}
