//! lz4 (Kafka codec id 3) in the standard LZ4 frame format.
//!
//! Kafka's `KafkaLZ4BlockOutputStream` writes LZ4 frames (64 KiB independent blocks). Magic
//! 0 and 1 batches had a header-checksum bug (KAFKA-3160); v2 batches, the only ones Spate
//! accepts, use the correct checksum, so a standard frame codec reads them.

use std::io::Write;

use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use super::bounded::read_to_end_bounded;
use super::{Codec, CompressionError};

const NAME: &str = "lz4";

/// lz4 frame codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lz4;

impl Codec for Lz4 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn compress(&self, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
        let failed = |reason: String| CompressionError::CompressFailed {
            codec: NAME,
            reason,
        };
        // Same block size and independence as Kafka's writer, so readers see familiar frames.
        let info = FrameInfo::new()
            .block_size(BlockSize::Max64KB)
            .block_mode(BlockMode::Independent);
        let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
        encoder
            .write_all(input)
            .map_err(|error| failed(error.to_string()))?;
        encoder.finish().map_err(|error| failed(error.to_string()))
    }

    fn decompress(
        &self,
        input: &[u8],
        max_output_bytes: usize,
    ) -> Result<Vec<u8>, CompressionError> {
        read_to_end_bounded(FrameDecoder::new(input), max_output_bytes, NAME)
    }
}
