//! Fuzzes each compression codec's decompressor with arbitrary bytes and a small output cap:
//! it must return an error or at most the cap, never panic or run away with memory.

#![no_main]

use spate_protocol::compression::{Codec, Gzip, Lz4, Snappy, Zstd};

const OUTPUT_SIZE_MAX_BYTES: usize = 1 << 20;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let codec: &dyn Codec = match selector % 4 {
        0 => &Gzip,
        1 => &Snappy,
        2 => &Lz4,
        _ => &Zstd,
    };
    if let Ok(output) = codec.decompress(input, OUTPUT_SIZE_MAX_BYTES) {
        assert!(output.len() <= OUTPUT_SIZE_MAX_BYTES);
    }
});
