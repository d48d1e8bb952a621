//! What every handler knows about the request it serves, and how it turns a response body
//! into a frame.

use bytes::BytesMut;
use spate_protocol::api_key::ApiKey;
use spate_protocol::header::ResponseHeader;
use spate_protocol::wire::Encode;

use crate::response::Outcome;

/// The parsed request header, minus the body. Lives on the connection's shard.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The client's address, `/ip` as Kafka reports it in group descriptions.
    pub client_host: std::rc::Rc<str>,
}

impl RequestContext {
    /// Encodes the response header and `body` at the request's version.
    ///
    /// A body the version cannot carry is a bug in a handler, not the client's fault; the
    /// connection is closed (the client reconnects) rather than sending a wrong frame.
    pub fn respond<T: Encode>(&self, body: &T) -> Outcome {
        let header_version = self.api.response_header_version(self.version);
        let header = ResponseHeader {
            correlation_id: self.correlation_id,
            ..Default::default()
        };
        let size = header
            .encoded_len(header_version)
            .and_then(|h| body.encoded_len(self.version).map(|b| h + b));
        let mut buf = BytesMut::with_capacity(size.unwrap_or(256));
        let encoded = header
            .encode(&mut buf, header_version)
            .and_then(|()| body.encode(&mut buf, self.version));
        match encoded {
            Ok(()) => Outcome::from_body(buf),
            Err(e) => {
                tracing::error!(api = self.api.name(), version = self.version, error = %e, "cannot encode response; closing the connection");
                Outcome::Close(format!("cannot encode {} response: {e}", self.api.name()))
            }
        }
    }

    /// The body did not parse: Kafka closes the connection, and so do we.
    pub fn malformed(&self, error: impl std::fmt::Display) -> Outcome {
        tracing::debug!(api = self.api.name(), version = self.version, client = ?self.client_id, %error, "malformed request; closing the connection");
        Outcome::Close(format!(
            "malformed {} v{} request: {error}",
            self.api.name(),
            self.version
        ))
    }
}
