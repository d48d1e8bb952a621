//! Records the request frames real Kafka clients send, for the golden tests.
//!
//! Listens on an ephemeral loopback port, pretends to be a one-broker Kafka 4.0 cluster (see
//! `responder`), and writes every request frame it receives, size prefix included, to
//! `<out>/<label>-<sequence>-<Api>-v<version>.bin`. It exits after `--idle-ms` without
//! traffic (once at least one request arrived) or after `--max-ms` in all, so a script can
//! run a client against it and collect the files. See `protocol/tests/fixtures/README.md`.
//!
//! ```text
//! cargo run -p spate-protocol --example capture_clients -- \
//!     --out /tmp/capture --label kcat-produce --topic golden
//! ```
//! The first line on stdout is `listening 127.0.0.1:<port>`.

mod apis;
mod responder;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use spate_protocol::frame::{FrameDecoder, finish_frame, peek_request_header, start_frame};
use spate_protocol::messages::response_header::ResponseHeader;
use spate_protocol::records::{BatchBuilder, NewRecord};
use spate_protocol::{ApiKey, Encode, decode_request, decode_request_header, encode_response};

use responder::Cluster;

/// How long a connection may sit silent before its thread gives up on it.
const READ_TIMEOUT_MS: u64 = 200;

struct Options {
    out: PathBuf,
    label: String,
    topics: Vec<String>,
    idle_ms: u64,
    max_ms: u64,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        out: PathBuf::from("capture"),
        label: "client".into(),
        topics: Vec::new(),
        idle_ms: 3000,
        max_ms: 60_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--out" => options.out = PathBuf::from(value),
            "--label" => options.label = value,
            "--topic" => options.topics.push(value),
            "--idle-ms" => options.idle_ms = value.parse().map_err(|e| format!("{e}"))?,
            "--max-ms" => options.max_ms = value.parse().map_err(|e| format!("{e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if options.topics.is_empty() {
        options.topics.push("golden".into());
    }
    Ok(options)
}

/// The batch served on the first fetch: two small records, so consumers advance and commit.
fn fetch_batch() -> Result<(Bytes, i64), String> {
    let mut builder = BatchBuilder::new();
    for (index, value) in ["served-0", "served-1"].iter().enumerate() {
        builder
            .push(&NewRecord {
                timestamp_ms: 1_700_000_000_000 + index as i64,
                key: Some(Bytes::from(format!("k{index}"))),
                value: Some(Bytes::from_static(value.as_bytes())),
                headers: Vec::new(),
            })
            .map_err(|e| e.to_string())?;
    }
    Ok((builder.build().map_err(|e| e.to_string())?, 2))
}

struct Capture {
    options: Options,
    cluster: Cluster,
    sequence: AtomicU32,
    last_activity_ms: AtomicU64,
    started: Instant,
}

impl Capture {
    fn touch(&self) {
        let elapsed_ms = self.started.elapsed().as_millis() as u64;
        self.last_activity_ms.store(elapsed_ms, Ordering::Relaxed);
    }

    fn save(&self, api_key: i16, version: i16, frame: &[u8]) -> std::io::Result<PathBuf> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let name = ApiKey::from_i16(api_key).map_or("Unknown".into(), apis::name);
        let file = format!("{}-{sequence:03}-{name}-v{version}.bin", self.options.label);
        let path = self.options.out.join(file);
        let mut framed = Vec::with_capacity(frame.len() + 4);
        framed.extend_from_slice(&(frame.len() as i32).to_be_bytes());
        framed.extend_from_slice(frame);
        std::fs::write(&path, framed)?;
        Ok(path)
    }
}

fn serve(capture: &Capture, mut stream: TcpStream) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(READ_TIMEOUT_MS)))
        .map_err(|e| e.to_string())?;
    let mut decoder = FrameDecoder::default();
    let mut buffer = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Duration::from_millis(capture.options.max_ms);
    while capture.started.elapsed() < deadline {
        let read_bytes = match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(read_bytes) => read_bytes,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        buffer.extend_from_slice(&chunk[..read_bytes]);
        while let Some(frame) = decoder.decode(&mut buffer).map_err(|e| e.to_string())? {
            capture.touch();
            let header = peek_request_header(&frame).map_err(|e| e.to_string())?;
            let path = capture
                .save(header.api_key, header.api_version, &frame)
                .map_err(|e| e.to_string())?;
            let response = answer(capture, &frame)?;
            eprintln!(
                "captured {} ({} bytes){}",
                path.display(),
                frame.len(),
                if response.is_some() {
                    ""
                } else {
                    ", no response"
                }
            );
            if let Some(response) = response {
                stream.write_all(&response).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Builds the framed response to one request, or `None` when none is due.
fn answer(capture: &Capture, frame: &Bytes) -> Result<Option<BytesMut>, String> {
    let mut rest = frame.clone();
    let header = decode_request_header(&mut rest).map_err(|e| e.to_string())?;
    let version = header.request_api_version;
    let Some(api_key) = ApiKey::from_i16(header.request_api_key) else {
        return Ok(None);
    };
    let request = decode_request(api_key, version, &mut rest).map_err(|e| e.to_string())?;
    let Some(response) = capture.cluster.respond(&request, version) else {
        return Ok(None);
    };
    let mut out = BytesMut::new();
    let start = start_frame(&mut out);
    let response_header = ResponseHeader {
        correlation_id: header.correlation_id,
        ..Default::default()
    };
    response_header
        .encode(&mut out, api_key.response_header_version(version))
        .map_err(|e| e.to_string())?;
    encode_response(&response, version, &mut out).map_err(|e| e.to_string())?;
    finish_frame(&mut out, start).map_err(|e| e.to_string())?;
    Ok(Some(out))
}

fn main() -> Result<(), String> {
    let options = parse_options()?;
    std::fs::create_dir_all(&options.out).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    println!("listening {address}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let (batch, batch_records) = fetch_batch()?;
    let cluster = Cluster::new(
        address.ip().to_string(),
        i32::from(address.port()),
        options.topics.clone(),
        batch,
        batch_records,
    );
    let capture = Arc::new(Capture {
        options,
        cluster,
        sequence: AtomicU32::new(0),
        last_activity_ms: AtomicU64::new(u64::MAX),
        started: Instant::now(),
    });
    let connections = Arc::new(AtomicU32::new(0));
    loop {
        let elapsed_ms = capture.started.elapsed().as_millis() as u64;
        let last_ms = capture.last_activity_ms.load(Ordering::Relaxed);
        let idle =
            last_ms != u64::MAX && elapsed_ms.saturating_sub(last_ms) > capture.options.idle_ms;
        if idle || elapsed_ms > capture.options.max_ms {
            break;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                capture.touch();
                let capture = Arc::clone(&capture);
                let connections = Arc::clone(&connections);
                connections.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || {
                    if let Err(error) = serve(&capture, stream) {
                        eprintln!("connection ended: {error}");
                    }
                    connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    eprintln!(
        "done: {} frames, {} connections still open",
        capture.sequence.load(Ordering::Relaxed),
        connections.load(Ordering::Relaxed)
    );
    Ok(())
}
