//! Kafka's record-batch compression codecs: gzip, snappy (xerial framing), lz4 (frame format)
//! and zstd, behind one trait.
//!
//! The broker never calls these on the produce path: it stores compressed batches as they
//! arrive. They exist for clients, tools, tests and benchmarks, which build and read batches.
//! Every decompressor takes an explicit output limit and fails cleanly past it, because a few
//! hundred hostile bytes can otherwise expand into gigabytes (a decompression bomb).

mod bounded;
mod gzip;
mod lz4;
mod snappy;
mod zstd;

pub use gzip::Gzip;
pub use lz4::Lz4;
pub use snappy::{SNAPPY_XERIAL_MAGIC, Snappy};
pub use zstd::{ZSTD_WINDOW_LOG_MAX, Zstd};

use crate::records::Compression;

/// Default cap on one batch's decompressed records.
///
/// A batch is limited by `message.max.bytes` (1 MiB by default in Kafka) *compressed*; real
/// log data compresses 5–20x, so 64 MiB leaves ample headroom for honest batches while keeping
/// a bomb from taking more than that much memory.
pub const DEFAULT_DECOMPRESSED_SIZE_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Why a codec failed. Decompression errors mean the input was corrupt or exceeded the limit;
/// compression errors are rare and come from the codec library itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    #[error("decompressed {codec} output exceeds the {limit_bytes}-byte limit")]
    OutputTooLarge {
        codec: &'static str,
        limit_bytes: usize,
    },
    #[error("corrupt {codec} input: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    #[error("{codec} compression failed: {reason}")]
    CompressFailed { codec: &'static str, reason: String },
}

/// One of Kafka's batch compression codecs.
///
/// Implementations are stateless unit structs, so callers can hold `&'static dyn Codec`.
pub trait Codec: Sync {
    /// Short name used in errors and logs, as Kafka spells it (`compression.type`).
    fn name(&self) -> &'static str;

    /// Compresses `input` into the byte format Kafka's Java client writes for this codec.
    fn compress(&self, input: &[u8]) -> Result<Vec<u8>, CompressionError>;

    /// Decompresses `input`, failing with [`CompressionError::OutputTooLarge`] rather than
    /// producing more than `max_output_bytes`.
    fn decompress(
        &self,
        input: &[u8],
        max_output_bytes: usize,
    ) -> Result<Vec<u8>, CompressionError>;
}

/// The codec for a batch's compression attribute, or `None` for uncompressed batches.
pub fn codec_for(compression: Compression) -> Option<&'static dyn Codec> {
    match compression {
        Compression::None => None,
        Compression::Gzip => Some(&Gzip),
        Compression::Snappy => Some(&Snappy),
        Compression::Lz4 => Some(&Lz4),
        Compression::Zstd => Some(&Zstd),
    }
}
