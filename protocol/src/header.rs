//! Request header v0–v2 and response header v0–v1.
//!
//! The structs are generated from Kafka's `RequestHeader.json`/`ResponseHeader.json`; this
//! module adds what the specs leave out: choosing the header version from the API key and
//! version at the front of the header, before the body is touched.

use bytes::{Buf, Bytes};

use crate::api_key::ApiKey;
use crate::decode_error::DecodeError;
use crate::wire::{Decode, read_i16};

pub use crate::messages::request_header::RequestHeader;
pub use crate::messages::response_header::ResponseHeader;

/// Header version assumed for an API key this codec does not know: v1 is what every
/// non-flexible client sends, and it lets the server read the correlation id to reply.
pub const UNKNOWN_API_REQUEST_HEADER_VERSION: i16 = 1;

/// Decodes a request header, picking its version from the API key and version it starts
/// with; `buf` is left at the start of the body.
///
/// An unknown API key is not an error here: the header is read as v1 so the server still
/// gets the correlation id, and can check [`ApiKey::from_i16`] itself.
pub fn decode_request_header(buf: &mut Bytes) -> Result<RequestHeader, DecodeError> {
    let mut peek = buf.slice(..buf.remaining().min(4));
    let api_key = read_i16(&mut peek, "RequestHeader.request_api_key")?;
    let api_version = read_i16(&mut peek, "RequestHeader.request_api_version")?;
    let header_version = match ApiKey::from_i16(api_key) {
        Some(key) => key.request_header_version(api_version),
        None => UNKNOWN_API_REQUEST_HEADER_VERSION,
    };
    RequestHeader::decode(buf, header_version)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::wire::Encode;

    fn header(key: ApiKey, version: i16) -> RequestHeader {
        RequestHeader {
            request_api_key: key.id(),
            request_api_version: version,
            correlation_id: 7,
            client_id: Some("rdkafka".into()),
            ..Default::default()
        }
    }

    #[test]
    fn flexible_request_header_round_trips_and_leaves_body() {
        let sent = header(ApiKey::Metadata, 12);
        let mut out = BytesMut::new();
        sent.encode(&mut out, 2).unwrap();
        out.extend_from_slice(&[0xAA]);
        let mut buf = out.freeze();
        let got = decode_request_header(&mut buf).unwrap();
        assert_eq!(got, sent);
        assert_eq!(&buf[..], &[0xAA]);
    }

    #[test]
    fn client_id_uses_legacy_string_even_in_header_v2() {
        let mut out = BytesMut::new();
        header(ApiKey::ApiVersions, 3).encode(&mut out, 2).unwrap();
        // key, version, correlation id, then an int16 length 7 (not a compact length 8).
        assert_eq!(&out[8..10], &[0, 7]);
    }

    #[test]
    fn controlled_shutdown_v0_header_has_no_client_id() {
        let mut out = BytesMut::new();
        let sent = RequestHeader {
            client_id: Some(String::new()),
            ..header(ApiKey::ControlledShutdown, 0)
        };
        sent.encode(&mut out, 0).unwrap();
        assert_eq!(out.len(), 8);
        let got = decode_request_header(&mut out.freeze()).unwrap();
        assert_eq!(got.correlation_id, 7);
    }

    #[test]
    fn truncated_header_is_an_error_naming_the_field() {
        let mut buf = Bytes::from_static(&[0, 3]);
        let err = decode_request_header(&mut buf).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("RequestHeader.request_api_version")
        );
    }
}
