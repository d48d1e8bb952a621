//! Kafka's size-prefixed frames, sans-IO.
//!
//! Every Kafka request and response is a big-endian `i32` size followed by that many bytes.
//! The connection loop reads socket bytes into a `BytesMut` and hands it to a
//! [`FrameDecoder`], which splits off whole frames without copying them. The size is checked
//! against a limit (`socket.request.max.bytes`) *before* any memory is reserved for the
//! frame, and even then memory is reserved only in steps, as bytes really arrive, so a peer
//! that announces 100 MiB and sends four bytes costs nothing.
//!
//! [`peek_request_header`] reads the three fixed fields every request header version starts
//! with, so a server can answer an unknown API key or unsupported version with the right
//! correlation id without decoding the body.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of the size prefix before each frame.
pub const FRAME_SIZE_PREFIX_BYTES: usize = 4;

/// Default largest frame accepted: Kafka's `socket.request.max.bytes` default (100 MiB).
pub const DEFAULT_MAX_REQUEST_SIZE_BYTES: usize = 100 * 1024 * 1024;

/// Most memory reserved ahead of bytes that have not arrived yet.
///
/// A frame's size is a promise from the peer, not a fact. Reserving the whole announced size
/// would let every idle connection pin up to the frame limit; 64 KiB matches a typical socket
/// read and lets a large frame grow in amortised steps as it arrives.
pub const RESERVE_AHEAD_MAX_BYTES: usize = 64 * 1024;

/// Bytes of `api_key`, `api_version` and `correlation_id`: the part common to request header
/// v0, v1 and v2.
pub const REQUEST_HEADER_PREFIX_BYTES: usize = 8;

/// Why a frame was refused. Any of these closes the connection: after a bad size, where the
/// next frame starts is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size_bytes} is negative")]
    NegativeSize { size_bytes: i32 },
    #[error("frame of {size_bytes} bytes exceeds the {limit_bytes}-byte limit")]
    TooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
    #[error("request header field {field} truncated: frame has {available_bytes} bytes")]
    HeaderTruncated {
        field: &'static str,
        available_bytes: usize,
    },
    #[error("frame payload of {size_bytes} bytes does not fit the i32 size prefix")]
    PayloadTooLarge { size_bytes: usize },
}

/// Splits whole frames off a growing read buffer.
///
/// Lives on the connection's shard. It holds no buffer of its own, only the limit: the caller
/// owns the read buffer, so it can read from the socket straight into it.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size_bytes: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_REQUEST_SIZE_BYTES)
    }
}

impl FrameDecoder {
    /// A decoder refusing frames larger than `max_frame_size_bytes` (payload, not counting
    /// the 4-byte prefix).
    pub fn new(max_frame_size_bytes: usize) -> Self {
        Self {
            max_frame_size_bytes,
        }
    }

    pub fn max_frame_size_bytes(&self) -> usize {
        self.max_frame_size_bytes
    }

    /// Takes the next whole frame's payload off the front of `buffer`, without copying.
    ///
    /// Returns `Ok(None)` when more bytes are needed; it then reserves room for at most
    /// [`RESERVE_AHEAD_MAX_BYTES`] more (never more than the validated frame still needs), so
    /// the caller can read straight into `buffer`. Call again until it returns `None`:
    /// a buffer may hold several pipelined frames.
    pub fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(prefix) = buffer.first_chunk::<FRAME_SIZE_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let size_bytes = i32::from_be_bytes(*prefix);
        let Ok(size_bytes) = usize::try_from(size_bytes) else {
            return Err(FrameError::NegativeSize { size_bytes });
        };
        if size_bytes > self.max_frame_size_bytes {
            return Err(FrameError::TooLarge {
                size_bytes,
                limit_bytes: self.max_frame_size_bytes,
            });
        }
        let frame_end = FRAME_SIZE_PREFIX_BYTES + size_bytes;
        if buffer.len() < frame_end {
            let missing_bytes = frame_end - buffer.len();
            buffer.reserve(missing_bytes.min(RESERVE_AHEAD_MAX_BYTES));
            return Ok(None);
        }
        let mut frame = buffer.split_to(frame_end);
        let _prefix = frame.split_to(FRAME_SIZE_PREFIX_BYTES);
        Ok(Some(frame.freeze()))
    }
}

/// The fields every request header version begins with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeekedHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads api key, version and correlation id from a request frame's payload.
///
/// Decodes nothing else: no client id, no tagged fields, no body. This is enough to route the
/// request, or to refuse it with the correlation id the client is waiting for.
pub fn peek_request_header(frame: &[u8]) -> Result<PeekedHeader, FrameError> {
    let field = |start: usize, field: &'static str| -> Result<[u8; 2], FrameError> {
        match frame.get(start..start + 2) {
            Some([high, low]) => Ok([*high, *low]),
            _ => Err(FrameError::HeaderTruncated {
                field,
                available_bytes: frame.len(),
            }),
        }
    };
    let api_key = i16::from_be_bytes(field(0, "api_key")?);
    let api_version = i16::from_be_bytes(field(2, "api_version")?);
    let Some(correlation) = frame
        .get(4..REQUEST_HEADER_PREFIX_BYTES)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
    else {
        return Err(FrameError::HeaderTruncated {
            field: "correlation_id",
            available_bytes: frame.len(),
        });
    };
    Ok(PeekedHeader {
        api_key,
        api_version,
        correlation_id: i32::from_be_bytes(correlation),
    })
}

/// Appends `payload` to `out` as one frame (size prefix, then the bytes).
pub fn write_frame(out: &mut BytesMut, payload: &[u8]) -> Result<(), FrameError> {
    let size_bytes = i32::try_from(payload.len()).map_err(|_| FrameError::PayloadTooLarge {
        size_bytes: payload.len(),
    })?;
    out.reserve(FRAME_SIZE_PREFIX_BYTES + payload.len());
    out.put_i32(size_bytes);
    out.extend_from_slice(payload);
    Ok(())
}

/// Starts a frame whose payload the caller will encode straight into `out`, avoiding a copy.
///
/// Writes a placeholder size and returns where the frame starts; pass that to
/// [`finish_frame`] once the payload is written.
pub fn start_frame(out: &mut BytesMut) -> FrameStart {
    let position = out.len();
    out.put_i32(0);
    FrameStart { position }
}

/// Where an unfinished frame's size prefix sits in its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a started frame must be finished, or its size prefix stays zero"]
pub struct FrameStart {
    position: usize,
}

/// Fills in the size prefix of the frame begun by [`start_frame`].
pub fn finish_frame(out: &mut BytesMut, start: FrameStart) -> Result<(), FrameError> {
    let payload_start = start.position + FRAME_SIZE_PREFIX_BYTES;
    // The prefix was written by start_frame, so the buffer reaches at least payload_start;
    // a caller that truncated it below that has broken the contract.
    assert!(
        out.len() >= payload_start,
        "frame buffer truncated below its size prefix"
    );
    let payload_size_bytes = out.len() - payload_start;
    let size_bytes =
        i32::try_from(payload_size_bytes).map_err(|_| FrameError::PayloadTooLarge {
            size_bytes: payload_size_bytes,
        })?;
    out[start.position..payload_start].copy_from_slice(&size_bytes.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(payloads: &[&[u8]]) -> BytesMut {
        let mut out = BytesMut::new();
        for payload in payloads {
            write_frame(&mut out, payload).unwrap();
        }
        out
    }

    #[test]
    fn pipelined_frames_come_out_whole_and_in_order() {
        let mut buffer = framed(&[b"first", b"", b"third frame"]);
        let mut decoder = FrameDecoder::default();
        assert_eq!(decoder.decode(&mut buffer).unwrap().unwrap(), &b"first"[..]);
        assert_eq!(decoder.decode(&mut buffer).unwrap().unwrap(), &b""[..]);
        assert_eq!(
            decoder.decode(&mut buffer).unwrap().unwrap(),
            &b"third frame"[..]
        );
        assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
        assert!(buffer.is_empty());
    }

    #[test]
    fn frame_is_a_view_of_the_read_buffer_not_a_copy() {
        let mut buffer = framed(&[b"payload"]);
        let payload_address = buffer[FRAME_SIZE_PREFIX_BYTES..].as_ptr();
        let frame = FrameDecoder::default()
            .decode(&mut buffer)
            .unwrap()
            .unwrap();
        assert_eq!(frame.as_ptr(), payload_address);
    }

    #[test]
    fn partial_frame_waits_for_more_bytes() {
        let whole = framed(&[b"0123456789"]);
        let mut decoder = FrameDecoder::default();
        let mut buffer = BytesMut::new();
        for byte in &whole[..whole.len() - 1] {
            buffer.put_u8(*byte);
            assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
        }
        buffer.put_u8(whole[whole.len() - 1]);
        assert_eq!(
            decoder.decode(&mut buffer).unwrap().unwrap(),
            &b"0123456789"[..]
        );
    }

    #[test]
    fn announced_size_reserves_only_a_bounded_step() {
        let mut buffer = BytesMut::new();
        buffer.put_i32(90 * 1024 * 1024);
        let mut decoder = FrameDecoder::default();
        assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
        assert!(buffer.capacity() <= FRAME_SIZE_PREFIX_BYTES + 2 * RESERVE_AHEAD_MAX_BYTES);
    }

    #[test]
    fn negative_size_is_refused() {
        let mut buffer = BytesMut::new();
        buffer.put_i32(-1);
        assert_eq!(
            FrameDecoder::default().decode(&mut buffer),
            Err(FrameError::NegativeSize { size_bytes: -1 })
        );
    }

    #[test]
    fn oversized_frame_is_refused_before_its_bytes_arrive() {
        let mut buffer = BytesMut::new();
        buffer.put_i32(1025);
        let capacity_before = buffer.capacity();
        assert_eq!(
            FrameDecoder::new(1024).decode(&mut buffer),
            Err(FrameError::TooLarge {
                size_bytes: 1025,
                limit_bytes: 1024
            })
        );
        assert_eq!(buffer.capacity(), capacity_before);
        buffer.clear();
        buffer.put_i32(1024);
        assert_eq!(FrameDecoder::new(1024).decode(&mut buffer), Ok(None));
    }

    #[test]
    fn default_limit_is_kafkas_socket_request_max_bytes() {
        assert_eq!(FrameDecoder::default().max_frame_size_bytes(), 104_857_600);
    }

    #[test]
    fn peek_reads_key_version_and_correlation_id() {
        // Metadata v12, correlation 0x01020304, then a client id the peek must not need.
        let frame = [0, 3, 0, 12, 1, 2, 3, 4, 0, 1, b'c'];
        assert_eq!(
            peek_request_header(&frame),
            Ok(PeekedHeader {
                api_key: 3,
                api_version: 12,
                correlation_id: 0x0102_0304
            })
        );
    }

    #[test]
    fn peek_names_the_truncated_field() {
        assert_eq!(
            peek_request_header(&[0]),
            Err(FrameError::HeaderTruncated {
                field: "api_key",
                available_bytes: 1
            })
        );
        assert_eq!(
            peek_request_header(&[0, 3, 0]),
            Err(FrameError::HeaderTruncated {
                field: "api_version",
                available_bytes: 3
            })
        );
        assert_eq!(
            peek_request_header(&[0, 3, 0, 1, 9, 9, 9]),
            Err(FrameError::HeaderTruncated {
                field: "correlation_id",
                available_bytes: 7
            })
        );
    }

    #[test]
    fn started_frame_is_finished_with_its_payload_size() {
        let mut out = BytesMut::new();
        write_frame(&mut out, b"ahead").unwrap();
        let start = start_frame(&mut out);
        out.extend_from_slice(b"encoded in place");
        finish_frame(&mut out, start).unwrap();
        let mut decoder = FrameDecoder::default();
        assert_eq!(decoder.decode(&mut out).unwrap().unwrap(), &b"ahead"[..]);
        assert_eq!(
            decoder.decode(&mut out).unwrap().unwrap(),
            &b"encoded in place"[..]
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_in_arbitrary_chunks_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            chunk_size_bytes in 1usize..64,
            limit_bytes in 0usize..256,
        ) {
            let mut decoder = FrameDecoder::new(limit_bytes);
            let mut buffer = BytesMut::new();
            let mut frames_bytes = 0;
            'feed: for chunk in bytes.chunks(chunk_size_bytes) {
                buffer.extend_from_slice(chunk);
                loop {
                    match decoder.decode(&mut buffer) {
                        Ok(Some(frame)) => {
                            prop_assert!(frame.len() <= limit_bytes);
                            let _ = peek_request_header(&frame);
                            frames_bytes += FRAME_SIZE_PREFIX_BYTES + frame.len();
                        }
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
            prop_assert!(frames_bytes <= bytes.len());
        }

        #[test]
        fn written_frames_decode_to_the_same_payloads(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..8),
            chunk_size_bytes in 1usize..40,
        ) {
            let mut wire = BytesMut::new();
            for payload in &payloads {
                write_frame(&mut wire, payload).unwrap();
            }
            let mut decoder = FrameDecoder::default();
            let mut buffer = BytesMut::new();
            let mut decoded = Vec::new();
            for chunk in wire.chunks(chunk_size_bytes) {
                buffer.extend_from_slice(chunk);
                while let Some(frame) = decoder.decode(&mut buffer).unwrap() {
                    decoded.push(frame.to_vec());
                }
            }
            prop_assert_eq!(decoded, payloads);
        }
    }
}
