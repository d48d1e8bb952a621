//! One pipelined TCP connection to one broker.
//!
//! Requests are framed and written in the caller's order; each waits for the response with
//! its correlation id, so many requests can be in flight at once and answers are matched
//! whatever order they come back in. A reader task and a writer task own the socket halves;
//! callers only touch a shared in-flight map and a bounded channel.
//!
//! A request that gets no answer within `request.timeout.ms` closes the whole connection, as
//! Kafka's clients do: a broker that stopped answering one request is not trusted with the
//! next, and a late answer could otherwise never be told apart from a fresh one. Closing
//! fails every in-flight request with the same error; the [`crate::Client`]'s pool opens a
//! new connection on next use.

pub mod request;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use spate_protocol::frame::{FrameDecoder, finish_frame, start_frame};
use spate_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use spate_protocol::{ApiKey, Decode, Encode, ErrorCode, RequestHeader, ResponseHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;

pub use request::{ApiVersionTable, Request};

use crate::error::Error;

/// Requests one connection may have unanswered at once. Bounds the in-flight map and the
/// frames queued for the writer; callers past it wait. Far above what one producer or
/// fetcher keeps in flight, so it only bites on a runaway caller.
pub const IN_FLIGHT_REQUESTS_MAX: usize = 64;

/// Largest response frame accepted. Kafka's clients have no such cap, but `fetch.max.bytes`
/// defaults to 50 MiB and a broker may exceed it by one batch; 128 MiB leaves room while
/// keeping a corrupt size prefix from reserving gigabytes.
pub const RESPONSE_SIZE_MAX_BYTES: usize = 128 * 1024 * 1024;

/// Socket read granularity.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Settings one connection needs, copied out of the client's config.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub client_id: String,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

/// A cheap-to-clone handle to one broker connection.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    broker: String,
    writer: mpsc::Sender<Bytes>,
    shared: Arc<Shared>,
    versions: ApiVersionTable,
    settings: ConnectionSettings,
    in_flight: Arc<Semaphore>,
    tasks: [AbortHandle; 2],
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Pending {
    api_key: ApiKey,
    version: i16,
    reply: oneshot::Sender<Result<Bytes, Error>>,
}

#[derive(Default)]
struct State {
    pending: HashMap<i32, Pending>,
    /// Set once: why the connection is unusable.
    closed: Option<Error>,
}

struct Shared {
    broker: String,
    state: Mutex<State>,
    next_correlation_id: AtomicI32,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves the map consistent (each operation is one
    // insert or remove), so a poisoned lock is still usable.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn fail_all(&self, reason: Error) {
        let pending = {
            let mut state = lock(&self.state);
            if state.closed.is_none() {
                state.closed = Some(reason.clone());
            }
            std::mem::take(&mut state.pending)
        };
        for (_, waiter) in pending {
            let _ = waiter.reply.send(Err(reason.clone()));
        }
    }

    fn lost(&self, reason: impl ToString) -> Error {
        Error::ConnectionLost {
            broker: self.broker.clone(),
            reason: reason.to_string(),
        }
    }

    /// Routes one response frame to the request waiting for it.
    fn dispatch(&self, mut frame: Bytes) -> Result<(), Error> {
        let Some(prefix) = frame.first_chunk::<4>() else {
            return Err(self.protocol("response frame shorter than a correlation id"));
        };
        let correlation_id = i32::from_be_bytes(*prefix);
        let Some(waiter) = lock(&self.state).pending.remove(&correlation_id) else {
            return Err(self.protocol(format!(
                "response with correlation id {correlation_id}, which no request is waiting for"
            )));
        };
        let header_version = waiter.api_key.response_header_version(waiter.version);
        if let Err(e) = ResponseHeader::decode(&mut frame, header_version) {
            let error = self.protocol(format!("{} response header: {e}", waiter.api_key.name()));
            let _ = waiter.reply.send(Err(error.clone()));
            return Err(error);
        }
        let _ = waiter.reply.send(Ok(frame));
        Ok(())
    }

    fn protocol(&self, reason: impl ToString) -> Error {
        Error::Protocol {
            broker: self.broker.clone(),
            reason: reason.to_string(),
        }
    }
}

impl Connection {
    /// Connects to `address`, then asks the broker which API versions it serves.
    ///
    /// `broker` labels the broker in every error this connection reports.
    pub async fn connect(
        address: &str,
        broker: String,
        settings: ConnectionSettings,
    ) -> Result<Connection, Error> {
        let connect_error = |reason: String| Error::Connect {
            broker: broker.clone(),
            reason,
        };
        let stream =
            match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(address)).await
            {
                Err(_) => {
                    return Err(connect_error(format!(
                        "no TCP connection within {} ms",
                        settings.connect_timeout.as_millis()
                    )));
                }
                Ok(Err(e)) => return Err(connect_error(e.to_string())),
                Ok(Ok(stream)) => stream,
            };
        stream
            .set_nodelay(true)
            .map_err(|e| connect_error(e.to_string()))?;
        let (reader, writer) = stream.into_split();
        let shared = Arc::new(Shared {
            broker: broker.clone(),
            state: Mutex::new(State::default()),
            next_correlation_id: AtomicI32::new(0),
        });
        let (frames_tx, frames_rx) = mpsc::channel(IN_FLIGHT_REQUESTS_MAX);
        let read_task = tokio::spawn(read_loop(reader, shared.clone()));
        let write_task = tokio::spawn(write_loop(writer, frames_rx, shared.clone()));
        let mut connection = Connection {
            inner: Arc::new(Inner {
                broker,
                writer: frames_tx,
                shared,
                versions: ApiVersionTable::default(),
                settings,
                in_flight: Arc::new(Semaphore::new(IN_FLIGHT_REQUESTS_MAX)),
                tasks: [read_task.abort_handle(), write_task.abort_handle()],
            }),
        };
        let versions = connection.negotiate_versions().await?;
        // Nothing has cloned the handle yet (the tasks hold only `Shared`), so this is the
        // only reference; were it not, the connection would be refused rather than used
        // with an empty version table.
        let Some(inner) = Arc::get_mut(&mut connection.inner) else {
            return Err(connection
                .inner
                .shared
                .protocol("connection shared during negotiation"));
        };
        inner.versions = versions;
        Ok(connection)
    }

    /// ApiVersions at the newest version this client knows; a broker that does not know it
    /// answers v0-style with `UNSUPPORTED_VERSION` and its own range, and the client asks
    /// again at the broker's newest, as Kafka's clients do.
    async fn negotiate_versions(&self) -> Result<ApiVersionTable, Error> {
        let request = ApiVersionsRequest {
            client_software_name: "spate-client".into(),
            client_software_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        let mut version = *ApiVersionsRequest::VERSIONS.end();
        for _attempt in 0..2 {
            let body = self
                .round_trip(ApiKey::ApiVersions, version, &request)
                .await?;
            // A broker that does not know `version` answers at v0, whatever was asked (as
            // Kafka's own clients expect): parse as asked, then fall back to v0.
            let response = match ApiVersionsResponse::decode(&mut body.clone(), version) {
                Ok(response) => response,
                Err(first) => ApiVersionsResponse::decode(&mut body.clone(), 0).map_err(|_| {
                    self.inner
                        .shared
                        .protocol(format!("ApiVersions v{version} response: {first}"))
                })?,
            };
            let code = crate::error::error_code(response.error_code);
            if code == ErrorCode::None {
                return Ok(ApiVersionTable::from_response(&response));
            }
            let broker_max = response
                .api_keys
                .iter()
                .find(|api| api.api_key == ApiKey::ApiVersions.id())
                .map(|api| api.max_version);
            match broker_max {
                Some(max) if code == ErrorCode::UnsupportedVersion && max < version => {
                    version = max.max(0);
                }
                _ => {
                    return Err(Error::Broker {
                        broker: self.broker().to_string(),
                        what: "ApiVersions".into(),
                        code,
                        message: None,
                    });
                }
            }
        }
        Err(self
            .inner
            .shared
            .protocol("ApiVersions negotiation did not converge"))
    }

    /// The label errors use for this broker, e.g. `node 1 at 127.0.0.1:9092`.
    pub fn broker(&self) -> &str {
        &self.inner.broker
    }

    pub fn versions(&self) -> &ApiVersionTable {
        &self.inner.versions
    }

    /// Whether the connection can still carry requests.
    pub fn is_open(&self) -> bool {
        lock(&self.inner.shared.state).closed.is_none()
    }

    /// Sends `request` at the highest common version and waits for its response.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response, Error> {
        let version = self.inner.versions.pick::<R>(self.broker())?;
        self.send_at(request, version).await
    }

    /// The version [`Connection::send`] would use for `R`.
    pub fn version_of<R: Request>(&self) -> Result<i16, Error> {
        self.inner.versions.pick::<R>(self.broker())
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn send_at<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, Error> {
        self.start_at(request, version).await?.response().await
    }

    /// Queues `request` for the socket and returns without waiting for the answer.
    ///
    /// Requests started one after another from one task reach the broker in that order,
    /// which is what lets the producer keep several batches of one partition in flight: the
    /// broker appends them in the order it reads them.
    pub async fn start<R: Request>(&self, request: &R) -> Result<PendingResponse<R>, Error> {
        let version = self.inner.versions.pick::<R>(self.broker())?;
        self.start_at(request, version).await
    }

    async fn start_at<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<PendingResponse<R>, Error> {
        let queued = self.enqueue(R::KEY, version, request, true).await?;
        Ok(PendingResponse {
            queued,
            version,
            request: std::marker::PhantomData,
        })
    }

    /// Sends a request the broker will not answer (Produce with acks=0); returns once it is
    /// queued for the socket.
    pub async fn send_without_response<R: Request>(&self, request: &R) -> Result<(), Error> {
        let version = self.inner.versions.pick::<R>(self.broker())?;
        self.enqueue(R::KEY, version, request, false)
            .await
            .map(|_| ())
    }

    async fn round_trip(
        &self,
        api_key: ApiKey,
        version: i16,
        body: &(dyn Encode + Sync),
    ) -> Result<Bytes, Error> {
        self.enqueue(api_key, version, body, true)
            .await?
            .wait()
            .await
    }

    /// Takes an in-flight permit, registers the correlation id and hands the frame to the
    /// writer, whose channel keeps call order.
    async fn enqueue(
        &self,
        api_key: ApiKey,
        version: i16,
        body: &(dyn Encode + Sync),
        expect_response: bool,
    ) -> Result<Queued, Error> {
        let inner = &self.inner;
        let permit = inner
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| inner.shared.lost("connection closed"))?;
        let correlation_id = inner
            .shared
            .next_correlation_id
            .fetch_add(1, Ordering::Relaxed);
        let frame = self.encode_frame(api_key, version, correlation_id, body)?;
        let (reply_tx, reply_rx) = oneshot::channel();
        if expect_response {
            let mut state = lock(&inner.shared.state);
            if let Some(reason) = &state.closed {
                return Err(reason.clone());
            }
            state.pending.insert(
                correlation_id,
                Pending {
                    api_key,
                    version,
                    reply: reply_tx,
                },
            );
        } else if let Some(reason) = &lock(&inner.shared.state).closed {
            return Err(reason.clone());
        }
        if inner.writer.send(frame).await.is_err() {
            lock(&inner.shared.state).pending.remove(&correlation_id);
            return Err(inner.shared.lost("writer stopped"));
        }
        Ok(Queued {
            connection: self.clone(),
            api_key,
            reply: reply_rx,
            _permit: permit,
        })
    }

    fn encode_frame(
        &self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &(dyn Encode + Sync),
    ) -> Result<Bytes, Error> {
        let encode_error = |reason: String| Error::Encode {
            broker: self.broker().to_string(),
            api: api_key.name(),
            reason,
        };
        let header = RequestHeader {
            request_api_key: api_key.id(),
            request_api_version: version,
            correlation_id,
            client_id: Some(self.inner.settings.client_id.clone()),
            ..Default::default()
        };
        let header_version = api_key.request_header_version(version);
        let mut out = BytesMut::new();
        let start = start_frame(&mut out);
        header
            .encode(&mut out, header_version)
            .map_err(|e| encode_error(e.to_string()))?;
        body.encode(&mut out, version)
            .map_err(|e| encode_error(e.to_string()))?;
        finish_frame(&mut out, start).map_err(|e| encode_error(e.to_string()))?;
        Ok(out.freeze())
    }

    /// Closes the connection, failing everything in flight with `reason`.
    pub fn close(&self, reason: Error) {
        self.inner.shared.fail_all(reason);
        for task in &self.inner.tasks {
            task.abort();
        }
    }
}

/// A request handed to the writer whose answer has not been read yet. Holds its in-flight
/// permit until then.
struct Queued {
    connection: Connection,
    api_key: ApiKey,
    reply: oneshot::Receiver<Result<Bytes, Error>>,
    _permit: OwnedSemaphorePermit,
}

impl Queued {
    /// The response body, or the connection's error; closes the connection when the answer
    /// is later than `request.timeout.ms`.
    async fn wait(self) -> Result<Bytes, Error> {
        let inner = &self.connection.inner;
        match tokio::time::timeout(inner.settings.request_timeout, self.reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(inner.shared.lost("connection task ended")),
            Err(_) => {
                let error = Error::Timeout {
                    broker: self.connection.broker().to_string(),
                    api: self.api_key.name(),
                    timeout_ms: inner.settings.request_timeout.as_millis() as u64,
                };
                self.connection.close(error.clone());
                Err(error)
            }
        }
    }
}

/// The answer to a request started with [`Connection::start`].
pub struct PendingResponse<R: Request> {
    queued: Queued,
    version: i16,
    request: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> PendingResponse<R> {
    /// Waits for the broker's answer and decodes it.
    pub async fn response(self) -> Result<R::Response, Error> {
        let connection = self.queued.connection.clone();
        let version = self.version;
        let mut body = self.queued.wait().await?;
        R::Response::decode(&mut body, version).map_err(|e| {
            connection
                .inner
                .shared
                .protocol(format!("{} v{version} response: {e}", R::KEY.name()))
        })
    }
}

async fn read_loop(mut reader: OwnedReadHalf, shared: Arc<Shared>) {
    let mut decoder = FrameDecoder::new(RESPONSE_SIZE_MAX_BYTES);
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let reason = loop {
        match decoder.decode(&mut buffer) {
            Ok(Some(frame)) => match shared.dispatch(frame) {
                Ok(()) => continue,
                Err(e) => break e,
            },
            Ok(None) => {}
            Err(e) => break shared.protocol(e),
        }
        if buffer.capacity() == buffer.len() {
            buffer.reserve(READ_CHUNK_BYTES);
        }
        match reader.read_buf(&mut buffer).await {
            Ok(0) => break shared.lost("closed by the broker"),
            Ok(_) => {}
            Err(e) => break shared.lost(e),
        }
    };
    tracing::debug!(broker = %shared.broker, %reason, "connection reader stopped");
    shared.fail_all(reason);
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut frames: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
) {
    while let Some(frame) = frames.recv().await {
        if let Err(e) = writer.write_all(&frame).await {
            shared.fail_all(shared.lost(e));
            return;
        }
    }
}
