//! zstd (Kafka codec id 4), one zstd frame per batch as `zstd-jni` writes it.

use zstd::stream::read::Decoder;

use super::bounded::read_to_end_bounded;
use super::{Codec, CompressionError};

const NAME: &str = "zstd";

/// Largest zstd window (log2 bytes) we agree to allocate while decoding.
///
/// A zstd frame header names its window size and the decoder allocates that much up front, so
/// a 20-byte hostile frame could ask for 2 GiB. 2^25 = 32 MiB covers every standard level
/// through 20 (level 3, the Kafka default, uses at most 2^21); frames made with the "ultra"
/// levels 21–22 are refused with an error naming this limit.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 25;

/// Kafka's default zstd level (`compression.zstd.level`).
const LEVEL_DEFAULT: i32 = 3;

/// zstd codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Zstd;

impl Codec for Zstd {
    fn name(&self) -> &'static str {
        NAME
    }

    fn compress(&self, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
        zstd::bulk::compress(input, LEVEL_DEFAULT).map_err(|error| {
            CompressionError::CompressFailed {
                codec: NAME,
                reason: error.to_string(),
            }
        })
    }

    fn decompress(
        &self,
        input: &[u8],
        max_output_bytes: usize,
    ) -> Result<Vec<u8>, CompressionError> {
        let corrupt = |error: std::io::Error| CompressionError::Corrupt {
            codec: NAME,
            reason: error.to_string(),
        };
        let mut decoder = Decoder::with_buffer(input).map_err(corrupt)?;
        decoder
            .window_log_max(ZSTD_WINDOW_LOG_MAX)
            .map_err(corrupt)?;
        read_to_end_bounded(decoder, max_output_bytes, NAME)
    }
}
