//! Shared bodies of the generated fuzz targets (one binary per request decoder).
//!
//! Each target checks two things on arbitrary input: decoding never panics, and whatever
//! does decode re-encodes to bytes that decode and re-encode to the very same bytes (a
//! differential check between reader and writer, byte-based so NaN floats compare equal).

use bytes::{Bytes, BytesMut};
use spate_protocol::messages::ApiKey;
use spate_protocol::{
    Decode, Encode, RequestHeader, decode_request, decode_request_header, encode_request,
};

/// Picks a valid version of `api_key` from one selector byte.
fn version_from(api_key: ApiKey, selector: u8) -> i16 {
    let versions = api_key.valid_versions();
    let span = i32::from(*versions.end()) - i32::from(*versions.start()) + 1;
    let offset = i32::from(selector) % span.max(1);
    // `offset` < span <= i16 range, so the sum is a valid i16 version.
    (i32::from(*versions.start()) + offset) as i16
}

/// Fuzzes the request decoder of `api_key`: the first byte picks the version, the rest is the
/// body.
pub fn request(api_key: ApiKey, data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let version = version_from(api_key, selector);
    let mut buf = Bytes::copy_from_slice(body);
    let Ok(decoded) = decode_request(api_key, version, &mut buf) else {
        return;
    };
    let mut first = BytesMut::new();
    encode_request(&decoded, version, &mut first).expect("a decoded request must re-encode");
    let again = decode_request(api_key, version, &mut first.clone().freeze())
        .expect("re-encoded request must decode");
    let mut second = BytesMut::new();
    encode_request(&again, version, &mut second).expect("second encode");
    assert_eq!(
        first, second,
        "{api_key:?} v{version}: encode/decode not stable"
    );
}

/// Fuzzes the request header decoder, which picks the header version itself.
pub fn request_header(data: &[u8]) {
    let mut buf = Bytes::copy_from_slice(data);
    let Ok(header) = decode_request_header(&mut buf) else {
        return;
    };
    let header_version = ApiKey::from_i16(header.request_api_key)
        .map(|key| key.request_header_version(header.request_api_version))
        .unwrap_or(spate_protocol::header::UNKNOWN_API_REQUEST_HEADER_VERSION);
    let mut first = BytesMut::new();
    header
        .encode(&mut first, header_version)
        .expect("a decoded header must re-encode");
    let again = RequestHeader::decode(&mut first.clone().freeze(), header_version)
        .expect("re-encoded header must decode");
    assert_eq!(again, header);
}
