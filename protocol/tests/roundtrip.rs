//! Every request and response message, at every valid version, survives encode → decode
//! unchanged, and `encoded_len` predicts exactly the bytes `encode` writes.
//!
//! Values come from the generated `Sample` impls: only fields that exist at the version get
//! non-default values, null only where the version allows it, and flexible versions also carry
//! unknown tagged fields (which must be preserved byte for byte).

use bytes::BytesMut;
use proptest::prelude::*;
use spate_protocol::messages::{sample_request, sample_response};
use spate_protocol::wire::sample::SampleRng;
use spate_protocol::{
    ApiKey, RequestBody, ResponseBody, decode_request, decode_response, encode_request,
    encode_response,
};

fn request_round_trips(api_key: ApiKey, version: i16, seed: u64) -> Result<(), String> {
    let mut rng = SampleRng::new(seed);
    let sent: RequestBody = sample_request(api_key, &mut rng, version);
    let mut buf = BytesMut::new();
    encode_request(&sent, version, &mut buf).map_err(|e| format!("{api_key:?} v{version}: {e}"))?;
    let predicted = sent.encoded_len(version).map_err(|e| e.to_string())?;
    if predicted != buf.len() {
        return Err(format!(
            "{api_key:?} v{version}: encoded_len {predicted} != {}",
            buf.len()
        ));
    }
    let mut bytes = buf.freeze();
    let got = decode_request(api_key, version, &mut bytes)
        .map_err(|e| format!("{api_key:?} v{version} seed {seed}: {e}"))?;
    if !bytes.is_empty() {
        return Err(format!(
            "{api_key:?} v{version}: {} bytes left over",
            bytes.len()
        ));
    }
    if got != sent {
        return Err(format!(
            "{api_key:?} v{version} seed {seed}:\n sent {sent:?}\n  got {got:?}"
        ));
    }
    Ok(())
}

fn response_round_trips(api_key: ApiKey, version: i16, seed: u64) -> Result<(), String> {
    let mut rng = SampleRng::new(seed);
    let sent: ResponseBody = sample_response(api_key, &mut rng, version);
    let mut buf = BytesMut::new();
    encode_response(&sent, version, &mut buf)
        .map_err(|e| format!("{api_key:?} v{version}: {e}"))?;
    let predicted = sent.encoded_len(version).map_err(|e| e.to_string())?;
    if predicted != buf.len() {
        return Err(format!(
            "{api_key:?} v{version}: encoded_len {predicted} != {}",
            buf.len()
        ));
    }
    let mut bytes = buf.freeze();
    let got = decode_response(api_key, version, &mut bytes)
        .map_err(|e| format!("{api_key:?} v{version} seed {seed}: {e}"))?;
    if !bytes.is_empty() {
        return Err(format!(
            "{api_key:?} v{version}: {} bytes left over",
            bytes.len()
        ));
    }
    if got != sent {
        return Err(format!(
            "{api_key:?} v{version} seed {seed}:\n sent {sent:?}\n  got {got:?}"
        ));
    }
    Ok(())
}

#[test]
fn every_api_has_a_request_and_response_at_every_version() {
    let mut pairs = 0;
    for api_key in ApiKey::ALL {
        for version in api_key.valid_versions() {
            request_round_trips(api_key, version, 1).unwrap();
            response_round_trips(api_key, version, 1).unwrap();
            pairs += 1;
        }
    }
    assert_eq!(ApiKey::ALL.len(), 88, "Kafka 4.0 specs define 88 APIs");
    assert!(pairs > 300, "only {pairs} (api, version) pairs");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_request_round_trips_at_every_version(seed in any::<u64>()) {
        for api_key in ApiKey::ALL {
            for version in api_key.valid_versions() {
                if let Err(e) = request_round_trips(api_key, version, seed) {
                    prop_assert!(false, "{}", e);
                }
            }
        }
    }

    #[test]
    fn every_response_round_trips_at_every_version(seed in any::<u64>()) {
        for api_key in ApiKey::ALL {
            for version in api_key.valid_versions() {
                if let Err(e) = response_round_trips(api_key, version, seed) {
                    prop_assert!(false, "{}", e);
                }
            }
        }
    }
}
