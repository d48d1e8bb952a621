//! The null broker: a Kafka-protocol sink that stores nothing.
//!
//! It gives the ceiling of the client, the loopback and the framing, which is what a broker
//! can at best reach: Produce is answered without storing (offsets still advance, so
//! consumers see a high watermark), and Fetch is served from one fixed pre-built RecordBatch
//! v2 whose base offset is patched per copy (the base offset lies outside the CRC). It
//! answers ApiVersions, Metadata (pointing at itself), InitProducerId, CreateTopics,
//! Produce, ListOffsets and Fetch; any other API closes the connection.
//!
//! It runs on its own thread with a current-thread runtime, pinned to the broker's cores,
//! so that it competes with the load generator exactly as a real broker would. It does not
//! apply `flush`: it is the floor of everything but the disk.

mod answers;

use std::io;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use spate_protocol::frame::{FrameDecoder, finish_frame, start_frame};
use spate_protocol::{
    ApiKey, Encode, ResponseHeader, decode_request, decode_request_header, encode_response,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::affinity;
use answers::{Shared, State, Template, respond};

/// The APIs served, each at versions whose fields the answers below fill in correctly.
pub(crate) const SERVED_APIS: [(ApiKey, RangeInclusive<i16>); 7] = [
    (ApiKey::Produce, 3..=9),
    (ApiKey::Fetch, 4..=12),
    (ApiKey::ListOffsets, 1..=7),
    (ApiKey::Metadata, 4..=12),
    (ApiKey::ApiVersions, 0..=4),
    (ApiKey::CreateTopics, 2..=5),
    (ApiKey::InitProducerId, 0..=4),
];

/// Shape of the fixed Fetch buffer and of topics nobody created.
#[derive(Debug, Clone)]
pub struct NullConfig {
    pub partitions: u32,
    pub record_size_bytes: usize,
    pub batch_size_bytes: usize,
}

/// The fixed batch served by Fetch.
pub struct NullBroker {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NullBroker {
    /// Binds `listen` and serves on a new thread pinned to `cores` (if any).
    pub fn spawn(listen: &str, config: NullConfig, cores: Option<Vec<usize>>) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread = std::thread::Builder::new()
            .name("null-broker".into())
            .spawn(move || {
                if let Some(cores) = &cores
                    && let Err(e) = affinity::pin_current_thread(cores)
                {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        result = serve(listener, config) => {
                            if let Err(e) = result {
                                eprintln!("null broker stopped: {e}");
                            }
                        }
                        _ = stop_rx => {}
                    }
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(NullBroker {
                address,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("null broker thread died at startup")),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for NullBroker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until the listener fails.
pub async fn serve(listener: TcpListener, config: NullConfig) -> io::Result<()> {
    let shared = Arc::new(Shared {
        template: Template::build(&config)?,
        config,
        state: Mutex::new(State::default()),
        produced: Notify::new(),
    });
    let address = listener.local_addr()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            // A client going away is the normal end of a connection; anything else is a
            // request the null broker cannot answer, which the operator should hear about.
            if let Err(e) = connection(stream, address, shared).await
                && !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                )
            {
                eprintln!("null broker: closed a connection: {e}");
            }
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    address: SocketAddr,
    shared: Arc<Shared>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut decoder = FrameDecoder::default();
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = BytesMut::with_capacity(64 * 1024);
    loop {
        while let Some(frame) = decoder.decode(&mut input).map_err(io::Error::other)? {
            answer(frame, address, &shared, &mut output).await?;
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
        if input.capacity() - input.len() < 4096 {
            input.reserve(64 * 1024);
        }
        if stream.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
    }
}

async fn answer(
    mut frame: Bytes,
    address: SocketAddr,
    shared: &Shared,
    output: &mut BytesMut,
) -> io::Result<()> {
    let header = decode_request_header(&mut frame).map_err(io::Error::other)?;
    let version = header.request_api_version;
    let Some(key) = ApiKey::from_i16(header.request_api_key) else {
        return Err(io::Error::other("unknown API key"));
    };
    let served = SERVED_APIS
        .iter()
        .any(|(k, versions)| *k == key && versions.contains(&version));
    if !served {
        return Err(io::Error::other(format!("{key:?} v{version} not served")));
    }
    let request = decode_request(key, version, &mut frame).map_err(io::Error::other)?;
    let Some(response) = respond(request, address, shared).await else {
        return Ok(());
    };
    let start = start_frame(output);
    ResponseHeader {
        correlation_id: header.correlation_id,
        ..Default::default()
    }
    .encode(output, key.response_header_version(version))
    .map_err(io::Error::other)?;
    encode_response(&response, version, output).map_err(io::Error::other)?;
    finish_frame(output, start).map_err(io::Error::other)
}
