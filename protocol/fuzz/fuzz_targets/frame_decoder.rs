//! Fuzzes the frame decoder and header peek: arbitrary bytes, fed in chunks of a size the
//! input chooses, with a small frame limit. Frames must come out whole and within the limit.

#![no_main]

use bytes::BytesMut;
use spate_protocol::frame::{FRAME_SIZE_PREFIX_BYTES, FrameDecoder, peek_request_header};

const FRAME_SIZE_MAX_BYTES: usize = 4096;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let chunk_size_bytes = usize::from(chunk).max(1);
    let mut decoder = FrameDecoder::new(FRAME_SIZE_MAX_BYTES);
    let mut buffer = BytesMut::new();
    let mut consumed_bytes = 0;
    for piece in input.chunks(chunk_size_bytes) {
        buffer.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= FRAME_SIZE_MAX_BYTES);
                    consumed_bytes += FRAME_SIZE_PREFIX_BYTES + frame.len();
                    let _ = peek_request_header(&frame);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert!(consumed_bytes <= input.len());
});
