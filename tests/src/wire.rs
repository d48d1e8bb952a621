//! A raw Kafka wire client: frames, request headers and the few responses the hostile-input
//! tests read, encoded and decoded by hand.
//!
//! It deliberately does not use the broker's own codec: a test that shares the code it checks
//! can agree with a bug. Only non-flexible request versions are used, so no tagged fields appear.
//! Every decode step is bounds-checked and returns an error on short or absurd input.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::HarnessError;

/// The largest response frame we accept; any real answer here is far smaller, and a broken
/// length must not make the test allocate gigabytes.
pub const RESPONSE_SIZE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// How long one read may wait for the broker before the test calls it hung.
pub const READ_TIMEOUT_MS: u64 = 10_000;

/// The client id every raw request carries, so the broker's logs show who sent it.
pub const CLIENT_ID: &str = "spate-interop-tests";

/// Kafka API keys used here.
pub mod api_key {
    pub const PRODUCE: i16 = 0;
    pub const FETCH: i16 = 1;
    pub const LIST_OFFSETS: i16 = 2;
    pub const METADATA: i16 = 3;
    pub const OFFSET_FETCH: i16 = 9;
    pub const API_VERSIONS: i16 = 18;
    pub const CREATE_TOPICS: i16 = 19;
    pub const INIT_PRODUCER_ID: i16 = 22;
}

/// Kafka error codes the tests expect.
pub mod error_code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const UNSUPPORTED_VERSION: i16 = 35;
}

/// Big-endian request body builder for Kafka's classic (non-flexible) encodings.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    pub bytes: Vec<u8>,
}

impl Encoder {
    pub fn i8(&mut self, value: i8) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }
    pub fn i16(&mut self, value: i16) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }
    pub fn i32(&mut self, value: i32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }
    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }
    pub fn string(&mut self, value: &str) -> &mut Self {
        self.i16(i16::try_from(value.len()).unwrap_or(i16::MAX));
        self.bytes.extend_from_slice(value.as_bytes());
        self
    }
    pub fn null_string(&mut self) -> &mut Self {
        self.i16(-1)
    }
    pub fn bytes_i32(&mut self, value: &[u8]) -> &mut Self {
        self.i32(i32::try_from(value.len()).unwrap_or(i32::MAX));
        self.bytes.extend_from_slice(value);
        self
    }
    pub fn array_len(&mut self, count: usize) -> &mut Self {
        self.i32(i32::try_from(count).unwrap_or(i32::MAX))
    }
}

/// Bounds-checked big-endian reader over one response frame.
#[derive(Debug)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Decoder { bytes, position: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub fn take(&mut self, count: usize) -> Result<&'a [u8], HarnessError> {
        if count > self.remaining() {
            return Err(HarnessError::MalformedResponse(format!(
                "need {count} bytes at position {}, {} remain",
                self.position,
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.position..self.position + count];
        self.position += count;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], HarnessError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn i8(&mut self) -> Result<i8, HarnessError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    pub fn i16(&mut self) -> Result<i16, HarnessError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, HarnessError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, HarnessError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A nullable string; `None` for length -1.
    pub fn nullable_string(&mut self) -> Result<Option<String>, HarnessError> {
        let length = self.i16()?;
        if length < 0 {
            return Ok(None);
        }
        let bytes = self.take(usize::try_from(length).unwrap_or(0))?;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }

    pub fn string(&mut self) -> Result<String, HarnessError> {
        self.nullable_string()?
            .ok_or_else(|| HarnessError::MalformedResponse("null non-nullable string".into()))
    }

    /// An array length, refusing one larger than the bytes left could hold (each element takes
    /// at least `element_size_min_bytes`).
    pub fn array_len(&mut self, element_size_min_bytes: usize) -> Result<usize, HarnessError> {
        let length = self.i32()?;
        let count = usize::try_from(length.max(0)).unwrap_or(0);
        if count.saturating_mul(element_size_min_bytes.max(1)) > self.remaining() {
            return Err(HarnessError::MalformedResponse(format!(
                "array of {length} elements in {} bytes",
                self.remaining()
            )));
        }
        Ok(count)
    }
}

/// What reading one frame found.
#[derive(Debug)]
pub enum FrameRead {
    /// A whole response frame (without its 4-byte length).
    Frame(Vec<u8>),
    /// The broker closed the connection (EOF or reset).
    Closed,
}

/// One TCP connection speaking raw Kafka frames.
pub struct KafkaConnection {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl KafkaConnection {
    /// Connects with read/write timeouts of [`READ_TIMEOUT_MS`], so a hung broker fails the test.
    pub fn connect(addr: SocketAddr) -> Result<Self, HarnessError> {
        let timeout = Duration::from_millis(READ_TIMEOUT_MS);
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| HarnessError::io(format!("connect {addr}"), e))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| HarnessError::io("configure socket", e))?;
        Ok(KafkaConnection {
            stream,
            next_correlation_id: 1,
        })
    }

    /// Writes bytes exactly as given: for frames that are wrong on purpose.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), HarnessError> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| HarnessError::io("send raw bytes", e))
    }

    /// Frames and sends a request with header v1; returns its correlation id.
    pub fn send_request(
        &mut self,
        api_key: i16,
        api_version: i16,
        body: &[u8],
    ) -> Result<i32, HarnessError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let frame = request_frame(api_key, api_version, correlation_id, body);
        self.send_raw(&frame)?;
        Ok(correlation_id)
    }

    /// Reads one response frame, or notices that the broker closed the connection.
    pub fn read_frame(&mut self) -> Result<FrameRead, HarnessError> {
        let mut length_bytes = [0u8; 4];
        if let Err(error) = self.stream.read_exact(&mut length_bytes) {
            return closed_or_error(error, "read frame length");
        }
        let length = i32::from_be_bytes(length_bytes);
        let length = usize::try_from(length)
            .ok()
            .filter(|&length| length <= RESPONSE_SIZE_BYTES_MAX)
            .ok_or_else(|| HarnessError::MalformedResponse(format!("frame length {length}")))?;
        let mut frame = vec![0u8; length];
        if let Err(error) = self.stream.read_exact(&mut frame) {
            return closed_or_error(error, "read frame body");
        }
        Ok(FrameRead::Frame(frame))
    }

    /// Sends a request and returns the response body after checking its correlation id.
    /// Only for requests whose response header is v0 (non-flexible versions and ApiVersions).
    pub fn round_trip(
        &mut self,
        api_key: i16,
        api_version: i16,
        body: &[u8],
    ) -> Result<Vec<u8>, HarnessError> {
        let correlation_id = self.send_request(api_key, api_version, body)?;
        match self.read_frame()? {
            FrameRead::Frame(frame) => {
                let mut decoder = Decoder::new(&frame);
                let answered_id = decoder.i32()?;
                if answered_id != correlation_id {
                    return Err(HarnessError::MalformedResponse(format!(
                        "correlation id {answered_id}, expected {correlation_id}"
                    )));
                }
                Ok(frame[4..].to_vec())
            }
            FrameRead::Closed => Err(HarnessError::io(
                format!("api {api_key} v{api_version}"),
                std::io::Error::new(ErrorKind::ConnectionAborted, "broker closed the connection"),
            )),
        }
    }
}

fn closed_or_error(error: std::io::Error, context: &str) -> Result<FrameRead, HarnessError> {
    match error.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
            Ok(FrameRead::Closed)
        }
        _ => Err(HarnessError::io(context, error)),
    }
}

/// A whole request frame: length, header v1 (key, version, correlation id, client id), body.
pub fn request_frame(api_key: i16, api_version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut header = Encoder::default();
    header
        .i16(api_key)
        .i16(api_version)
        .i32(correlation_id)
        .string(CLIENT_ID);
    let length = header.bytes.len() + body.len();
    let mut frame = Vec::with_capacity(4 + length);
    frame.extend_from_slice(&i32::try_from(length).unwrap_or(i32::MAX).to_be_bytes());
    frame.extend_from_slice(&header.bytes);
    frame.extend_from_slice(body);
    frame
}
