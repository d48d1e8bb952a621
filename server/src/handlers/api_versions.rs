//! `ApiVersions` (key 18): which APIs and versions this broker serves.
//!
//! Answers from [`super::SUPPORTED_APIS`], the same table dispatch checks. A request at a
//! version we do not serve gets Kafka's fallback: an UNSUPPORTED_VERSION reply in the v0
//! format (response header v0, error code, the version ranges), which every client can parse;
//! kafka-python and franz-go then retry with a version from the list.

use std::ops::RangeInclusive;

use bytes::{Bytes, BytesMut};
use spate_protocol::header::ResponseHeader;
use spate_protocol::messages::api_versions_response::ApiVersion;
use spate_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use spate_protocol::wire::{Decode, Encode};

use super::{RequestContext, SUPPORTED_APIS, error_code};
use crate::broker::Broker;
use crate::response::Outcome;

pub const VERSIONS: RangeInclusive<i16> = 0..=4;

pub async fn handle(_broker: &Broker, ctx: &RequestContext, mut body: Bytes) -> Outcome {
    if let Err(e) = ApiVersionsRequest::decode(&mut body, ctx.version) {
        return ctx.malformed(e);
    }
    ctx.respond(&ApiVersionsResponse {
        error_code: error_code::NONE,
        api_keys: supported_api_versions(),
        ..Default::default()
    })
}

/// The advertised table.
pub fn supported_api_versions() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(key, versions)| ApiVersion {
            api_key: key.id(),
            min_version: *versions.start(),
            max_version: *versions.end(),
            ..Default::default()
        })
        .collect()
}

/// The v0-format UNSUPPORTED_VERSION reply, for an ApiVersions version (or an API key) we do
/// not serve.
pub fn unsupported_version_reply(correlation_id: i32) -> Outcome {
    let header = ResponseHeader {
        correlation_id,
        ..Default::default()
    };
    let body = ApiVersionsResponse {
        error_code: error_code::UNSUPPORTED_VERSION,
        api_keys: supported_api_versions(),
        ..Default::default()
    };
    let mut buf = BytesMut::with_capacity(256);
    match header
        .encode(&mut buf, 0)
        .and_then(|()| body.encode(&mut buf, 0))
    {
        Ok(()) => Outcome::from_body(buf),
        Err(e) => Outcome::Close(format!("cannot encode the ApiVersions fallback: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::ResponsePart;
    use spate_protocol::api_key::ApiKey;

    #[test]
    fn produce_is_advertised_from_v0() {
        let table = supported_api_versions();
        let produce = table
            .iter()
            .find(|v| v.api_key == ApiKey::Produce.id())
            .unwrap();
        assert_eq!(produce.min_version, 0);
    }

    #[test]
    fn advertised_versions_are_within_kafka_4_ranges() {
        for (key, versions) in SUPPORTED_APIS {
            let kafka = key.valid_versions();
            assert!(
                kafka.contains(versions.start()) && kafka.contains(versions.end()),
                "{}",
                key.name()
            );
        }
    }

    #[test]
    fn fallback_reply_is_v0_format_with_the_ranges() {
        let Outcome::Respond(parts) = unsupported_version_reply(42) else {
            panic!("expected a response")
        };
        let mut frame = Vec::new();
        for part in parts {
            let ResponsePart::Bytes(b) = part else {
                panic!("bytes only")
            };
            frame.extend_from_slice(&b);
        }
        let size = i32::from_be_bytes(frame[0..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4);
        assert_eq!(i32::from_be_bytes(frame[4..8].try_into().unwrap()), 42);
        assert_eq!(i16::from_be_bytes(frame[8..10].try_into().unwrap()), 35);
        let count = i32::from_be_bytes(frame[10..14].try_into().unwrap()) as usize;
        assert_eq!(count, SUPPORTED_APIS.len());
        assert_eq!(frame.len(), 14 + count * 6);
    }
}
