//! gzip (Kafka codec id 1), as `java.util.zip.GZIPOutputStream` writes it.

use std::io::Write;

use flate2::Compression as Level;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::bounded::read_to_end_bounded;
use super::{Codec, CompressionError};

const NAME: &str = "gzip";

/// gzip codec. Decompression accepts concatenated members, as Java's `GZIPInputStream` does.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gzip;

impl Codec for Gzip {
    fn name(&self) -> &'static str {
        NAME
    }

    fn compress(&self, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
        let failed = |error: std::io::Error| CompressionError::CompressFailed {
            codec: NAME,
            reason: error.to_string(),
        };
        let mut encoder = GzEncoder::new(Vec::new(), Level::default());
        encoder.write_all(input).map_err(failed)?;
        encoder.finish().map_err(failed)
    }

    fn decompress(
        &self,
        input: &[u8],
        max_output_bytes: usize,
    ) -> Result<Vec<u8>, CompressionError> {
        read_to_end_bounded(MultiGzDecoder::new(input), max_output_bytes, NAME)
    }
}
