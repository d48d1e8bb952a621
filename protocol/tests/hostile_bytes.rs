//! Arbitrary and truncated bytes fed to every request decoder at every version: decoding
//! returns `Ok` or `Err`, never panics, and a strict prefix of a valid encoding is always an
//! error. (The long-running version of this is the cargo-fuzz campaign, `scripts/fuzz.sh`.)

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use spate_protocol::messages::sample_request;
use spate_protocol::wire::sample::SampleRng;
use spate_protocol::{ApiKey, decode_request, decode_request_header, encode_request};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_any_request_decoder(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let frame = Bytes::from(data);
        for api_key in ApiKey::ALL {
            for version in api_key.valid_versions() {
                let mut body = frame.clone();
                let _ = decode_request(api_key, version, &mut body);
            }
        }
        let _ = decode_request_header(&mut frame.clone());
    }

    #[test]
    fn every_strict_prefix_of_a_valid_request_is_an_error(seed in any::<u64>()) {
        for api_key in ApiKey::ALL {
            for version in api_key.valid_versions() {
                let sent = sample_request(api_key, &mut SampleRng::new(seed), version);
                let mut out = BytesMut::new();
                encode_request(&sent, version, &mut out).unwrap();
                let frame = out.freeze();
                // Checking every cut is quadratic; a handful of cuts covers each field kind.
                let cuts = [0, 1, frame.len() / 3, frame.len() / 2, frame.len().saturating_sub(1)];
                for cut in cuts.into_iter().filter(|&c| c < frame.len()) {
                    let mut prefix = frame.slice(..cut);
                    prop_assert!(
                        decode_request(api_key, version, &mut prefix).is_err(),
                        "{:?} v{} decoded from {} of {} bytes", api_key, version, cut, frame.len()
                    );
                }
            }
        }
    }

    #[test]
    fn bit_flipped_valid_requests_never_panic(seed in any::<u64>(), flip in any::<u32>()) {
        for api_key in ApiKey::ALL {
            for version in api_key.valid_versions() {
                let sent = sample_request(api_key, &mut SampleRng::new(seed), version);
                let mut out = BytesMut::new();
                encode_request(&sent, version, &mut out).unwrap();
                if out.is_empty() {
                    continue;
                }
                let index = flip as usize % out.len();
                out[index] ^= 1 << (flip % 8);
                let _ = decode_request(api_key, version, &mut out.freeze());
            }
        }
    }
}
