//! snappy (Kafka codec id 2) in the xerial `snappy-java` stream framing.
//!
//! Kafka's Java client wraps snappy in `SnappyOutputStream`, which is not the official
//! snappy framing format: a 16-byte header (the magic below, then big-endian version and
//! minimum-compatible-version ints, both 1), then blocks of a big-endian `i32` length and one
//! raw snappy block. librdkafka writes the same. Like Kafka, we also accept raw unframed snappy
//! on decompress, which some older clients send.

use snap::raw::{Decoder, Encoder, decompress_len, max_compress_len};

use super::{Codec, CompressionError};

const NAME: &str = "snappy";

/// First 8 bytes of a xerial snappy stream.
pub const SNAPPY_XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version and compatible-version.
const XERIAL_HEADER_SIZE_BYTES: usize = 16;
/// Version fields snappy-java writes (`SnappyCodec.DEFAULT_VERSION` / `MINIMUM_COMPATIBLE_VERSION`).
const XERIAL_VERSION: i32 = 1;
/// Uncompressed bytes per block; snappy-java's default block size, so our output looks like
/// the Java client's.
const XERIAL_BLOCK_SIZE_BYTES: usize = 32 * 1024;
/// Size of each block's length prefix.
const XERIAL_BLOCK_LENGTH_BYTES: usize = 4;

/// snappy codec with xerial framing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snappy;

impl Codec for Snappy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn compress(&self, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
        let mut output = Vec::with_capacity(XERIAL_HEADER_SIZE_BYTES + input.len() / 2);
        output.extend_from_slice(&SNAPPY_XERIAL_MAGIC);
        output.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
        output.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
        let mut encoder = Encoder::new();
        let mut block = vec![0u8; max_compress_len(XERIAL_BLOCK_SIZE_BYTES)];
        for chunk in input.chunks(XERIAL_BLOCK_SIZE_BYTES) {
            let written_bytes = encoder.compress(chunk, &mut block).map_err(|error| {
                CompressionError::CompressFailed {
                    codec: NAME,
                    reason: error.to_string(),
                }
            })?;
            // A block is at most max_compress_len(32 KiB) bytes, far below i32::MAX.
            let length = written_bytes as i32;
            output.extend_from_slice(&length.to_be_bytes());
            output.extend_from_slice(&block[..written_bytes]);
        }
        Ok(output)
    }

    fn decompress(
        &self,
        input: &[u8],
        max_output_bytes: usize,
    ) -> Result<Vec<u8>, CompressionError> {
        if is_xerial(input) {
            decompress_xerial(input, max_output_bytes)
        } else {
            let mut output = Vec::new();
            decompress_block(input, max_output_bytes, &mut output)?;
            Ok(output)
        }
    }
}

fn is_xerial(input: &[u8]) -> bool {
    input.len() >= XERIAL_HEADER_SIZE_BYTES && input.starts_with(&SNAPPY_XERIAL_MAGIC)
}

fn corrupt(reason: impl Into<String>) -> CompressionError {
    CompressionError::Corrupt {
        codec: NAME,
        reason: reason.into(),
    }
}

fn decompress_xerial(input: &[u8], max_output_bytes: usize) -> Result<Vec<u8>, CompressionError> {
    let mut output = Vec::new();
    let mut rest = &input[XERIAL_HEADER_SIZE_BYTES..];
    while !rest.is_empty() {
        // snappy-java tolerates streams concatenated header and all; a header's first byte
        // (0x82) makes it a negative length, so it cannot be mistaken for a block.
        if is_xerial(rest) {
            rest = &rest[XERIAL_HEADER_SIZE_BYTES..];
            continue;
        }
        let Some((length_bytes, after_length)) =
            rest.split_first_chunk::<XERIAL_BLOCK_LENGTH_BYTES>()
        else {
            return Err(corrupt(format!(
                "block length truncated: {} of 4 bytes",
                rest.len()
            )));
        };
        let length = i32::from_be_bytes(*length_bytes);
        let Some(block) = usize::try_from(length)
            .ok()
            .and_then(|length| after_length.get(..length))
        else {
            return Err(corrupt(format!(
                "block length {length} with {} bytes remaining",
                after_length.len()
            )));
        };
        decompress_block(block, max_output_bytes, &mut output)?;
        rest = &after_length[block.len()..];
    }
    Ok(output)
}

/// Appends one raw snappy block to `output`, allocating only after checking that the block's
/// declared length keeps `output` within `max_output_bytes`.
fn decompress_block(
    block: &[u8],
    max_output_bytes: usize,
    output: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    let declared_bytes = decompress_len(block).map_err(|error| corrupt(error.to_string()))?;
    let budget_bytes = max_output_bytes.saturating_sub(output.len());
    if declared_bytes > budget_bytes {
        return Err(CompressionError::OutputTooLarge {
            codec: NAME,
            limit_bytes: max_output_bytes,
        });
    }
    let start = output.len();
    output.resize(start + declared_bytes, 0);
    let written_bytes = Decoder::new()
        .decompress(block, &mut output[start..])
        .map_err(|error| corrupt(error.to_string()))?;
    output.truncate(start + written_bytes);
    Ok(())
}
