//! Each Kafka codec round-trips, writes the framing Kafka's Java client writes, refuses to
//! expand past its output limit, and turns garbage into errors.

// A panic in a test helper is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use proptest::prelude::*;
use spate_protocol::compression::{
    Codec, CompressionError, Gzip, Lz4, SNAPPY_XERIAL_MAGIC, Snappy, ZSTD_WINDOW_LOG_MAX, Zstd,
    codec_for,
};
use spate_protocol::records::Compression;

const CODECS: [&dyn Codec; 4] = [&Gzip, &Snappy, &Lz4, &Zstd];
const MIB: usize = 1024 * 1024;

fn compressible(size_bytes: usize) -> Vec<u8> {
    (0..size_bytes).map(|i| (i % 251) as u8 / 8).collect()
}

#[test]
fn every_codec_round_trips_empty_small_and_multi_block_inputs() {
    for codec in CODECS {
        for size_bytes in [0, 1, 100, 70_000, 300_000] {
            let input = compressible(size_bytes);
            let compressed = codec.compress(&input).unwrap();
            let output = codec.decompress(&compressed, size_bytes).unwrap();
            assert_eq!(output, input, "{} at {size_bytes} bytes", codec.name());
        }
    }
}

#[test]
fn codec_for_maps_batch_attributes_to_codecs() {
    assert!(codec_for(Compression::None).is_none());
    assert_eq!(codec_for(Compression::Gzip).unwrap().name(), "gzip");
    assert_eq!(codec_for(Compression::Snappy).unwrap().name(), "snappy");
    assert_eq!(codec_for(Compression::Lz4).unwrap().name(), "lz4");
    assert_eq!(codec_for(Compression::Zstd).unwrap().name(), "zstd");
}

#[test]
fn every_codec_refuses_output_one_byte_over_the_limit() {
    for codec in CODECS {
        let input = compressible(100_000);
        let compressed = codec.compress(&input).unwrap();
        assert_eq!(
            codec.decompress(&compressed, input.len() - 1),
            Err(CompressionError::OutputTooLarge {
                codec: codec.name(),
                limit_bytes: input.len() - 1
            })
        );
    }
}

#[test]
fn decompression_bombs_stop_at_the_limit() {
    let zeros = vec![0u8; 64 * MIB];
    for codec in CODECS {
        let bomb = codec.compress(&zeros).unwrap();
        assert!(bomb.len() < 4 * MIB, "{}: {}", codec.name(), bomb.len());
        let result = codec.decompress(&bomb, MIB);
        assert!(
            matches!(result, Err(CompressionError::OutputTooLarge { .. })),
            "{}",
            codec.name()
        );
    }
}

#[test]
fn snappy_writes_xerial_framing_like_the_java_client() {
    let input = compressible(40_000);
    let compressed = Snappy.compress(&input).unwrap();
    assert_eq!(compressed[..8], SNAPPY_XERIAL_MAGIC);
    assert_eq!(compressed[8..12], 1i32.to_be_bytes(), "version");
    assert_eq!(compressed[12..16], 1i32.to_be_bytes(), "compatible version");
    // 40 000 bytes make two 32 KiB blocks: the first length prefix covers exactly one block.
    let first_length = i32::from_be_bytes(compressed[16..20].try_into().unwrap()) as usize;
    let first_block = &compressed[20..20 + first_length];
    assert_eq!(
        snap::raw::Decoder::new()
            .decompress_vec(first_block)
            .unwrap(),
        input[..32 * 1024]
    );
}

#[test]
fn snappy_accepts_raw_unframed_blocks() {
    let input = compressible(10_000);
    let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
    assert_eq!(Snappy.decompress(&raw, input.len()).unwrap(), input);
}

#[test]
fn snappy_accepts_concatenated_xerial_streams() {
    let mut stream = Snappy.compress(b"first ").unwrap();
    stream.extend(Snappy.compress(b"second").unwrap());
    assert_eq!(Snappy.decompress(&stream, 100).unwrap(), b"first second");
}

#[test]
fn snappy_block_claiming_four_gib_is_refused_before_allocating() {
    // Raw snappy starts with the uncompressed length as a varint: here 0xffff_ffff.
    let lying = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    assert_eq!(
        Snappy.decompress(&lying, MIB),
        Err(CompressionError::OutputTooLarge {
            codec: "snappy",
            limit_bytes: MIB
        })
    );
}

#[test]
fn snappy_negative_or_overlong_block_length_is_corrupt() {
    for length in [-1i32, 1000] {
        let mut stream = Snappy.compress(b"").unwrap();
        stream.extend_from_slice(&length.to_be_bytes());
        stream.extend_from_slice(b"short");
        assert!(matches!(
            Snappy.decompress(&stream, MIB),
            Err(CompressionError::Corrupt {
                codec: "snappy",
                ..
            })
        ));
    }
}

#[test]
fn gzip_reads_concatenated_members_like_java() {
    let mut stream = Gzip.compress(b"one ").unwrap();
    stream.extend(Gzip.compress(b"two").unwrap());
    assert_eq!(Gzip.decompress(&stream, 100).unwrap(), b"one two");
}

#[test]
fn zstd_frame_asking_for_a_window_above_the_limit_is_refused() {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.window_log(ZSTD_WINDOW_LOG_MAX + 2).unwrap();
    encoder.write_all(&compressible(10_000)).unwrap();
    let frame = encoder.finish().unwrap();
    assert!(matches!(
        Zstd.decompress(&frame, MIB),
        Err(CompressionError::Corrupt { codec: "zstd", .. })
    ));
}

#[test]
fn lz4_output_is_a_standard_frame() {
    let compressed = Lz4.compress(b"hello kafka").unwrap();
    assert_eq!(compressed[..4], [0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic");
    let mut decoder = lz4_flex::frame::FrameDecoder::new(&compressed[..]);
    let mut output = Vec::new();
    std::io::Read::read_to_end(&mut decoder, &mut output).unwrap();
    assert_eq!(output, b"hello kafka");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_input_round_trips_through_every_codec(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        for codec in CODECS {
            let compressed = codec.compress(&input).unwrap();
            prop_assert_eq!(codec.decompress(&compressed, input.len()).unwrap(), input.clone());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbage_never_panics_and_never_exceeds_the_limit(
        garbage in proptest::collection::vec(any::<u8>(), 0..512),
        prefix_magic in any::<bool>(),
    ) {
        let mut input = Vec::new();
        if prefix_magic {
            input.extend_from_slice(&SNAPPY_XERIAL_MAGIC);
            input.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        }
        input.extend_from_slice(&garbage);
        for codec in CODECS {
            if let Ok(output) = codec.decompress(&input, 4096) {
                prop_assert!(output.len() <= 4096);
            }
        }
    }
}
