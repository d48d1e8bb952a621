//! Reading a decompressing stream into memory without exceeding a limit.

use std::io::Read;

use super::CompressionError;

/// Bytes requested from the decoder per read; also the most we over-allocate beyond what the
/// stream has really produced.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Drains `reader` into a vector of at most `max_output_bytes`.
///
/// The vector grows only as output really arrives, so a header that claims a huge size costs
/// nothing. One byte past the limit is enough to know the stream is too large.
pub(super) fn read_to_end_bounded(
    mut reader: impl Read,
    max_output_bytes: usize,
    codec: &'static str,
) -> Result<Vec<u8>, CompressionError> {
    let mut output = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let read_bytes = match reader.read(&mut chunk) {
            Ok(0) => return Ok(output),
            Ok(read_bytes) => read_bytes,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(CompressionError::Corrupt {
                    codec,
                    reason: error.to_string(),
                });
            }
        };
        if output.len() + read_bytes > max_output_bytes {
            return Err(CompressionError::OutputTooLarge {
                codec,
                limit_bytes: max_output_bytes,
            });
        }
        output.extend_from_slice(&chunk[..read_bytes]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_one_chunk_past_the_limit_without_reading_everything() {
        let endless = std::io::repeat(7);
        let result = read_to_end_bounded(endless, 1000, "test");
        assert_eq!(
            result,
            Err(CompressionError::OutputTooLarge {
                codec: "test",
                limit_bytes: 1000
            })
        );
    }

    #[test]
    fn output_exactly_at_the_limit_is_accepted() {
        let input = vec![1u8; 1000];
        let output = read_to_end_bounded(&input[..], 1000, "test").unwrap();
        assert_eq!(output, input);
    }
}
