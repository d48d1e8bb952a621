//! One client connection: read frames, run each request as its own task, write responses in
//! request order.
//!
//! Lives on the shard that accepted the socket, for its whole life. Requests are pipelined:
//! a reader splits frames off the socket and starts a task per request, so a Produce waiting
//! for its fsync does not hold up the next request's decoding (and appends that wait together
//! share one group commit). A writer takes the requests' results in the order the requests
//! arrived, which is what Kafka clients require. At most `in_flight_max` requests are
//! outstanding; beyond that the reader stops reading the socket, and TCP pushes back on the
//! client.
//!
//! A frame that cannot be framed (negative or over-size length) or parsed closes this
//! connection only. This module knows nothing about Kafka APIs: the [`RequestHandler`] does.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use spate_protocol::frame::FrameDecoder;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::net::sendfile::{COPY_CHUNK_BYTES, read_exact_at, send_file};
use crate::response::{Outcome, ResponsePart};

/// Socket reads ask for at least this much room: large enough that a stream of small
/// requests costs one syscall per many requests.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Encoded response bytes are gathered up to this size before one write, so pipelined small
/// responses share a syscall.
const WRITE_COALESCE_BYTES: usize = 64 * 1024;

/// Turns one request frame (header and body, no size prefix) into an [`Outcome`].
///
/// Implemented by the broker's dispatcher; tests plug in fakes to exercise the loop alone.
pub trait RequestHandler: 'static {
    fn handle(&self, frame: Bytes) -> Pin<Box<dyn Future<Output = Outcome>>>;
}

/// Per-connection limits and choices, copied from the server config.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    pub request_size_bytes_max: usize,
    pub in_flight_max: usize,
    /// Copy file slices through a buffer instead of `sendfile`.
    pub fetch_copy: bool,
}

/// Why a connection ended; logged at debug level, since clients closing is normal.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("malformed frame: {0}")]
    Frame(#[from] spate_protocol::frame::FrameError),
    #[error("request could not be parsed: {0}")]
    Request(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Serves `stream` until the client closes it, it misbehaves, or `shutdown` turns true.
///
/// Must run inside a `LocalSet`: request tasks are spawned with `spawn_local` on this shard.
/// On shutdown it stops reading, answers every request already read, then returns.
pub async fn serve_connection(
    stream: TcpStream,
    handler: Rc<dyn RequestHandler>,
    settings: ConnectionSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let _ = stream.set_nodelay(true);
    let (queue_tx, queue_rx) = mpsc::channel(settings.in_flight_max.max(1));
    let reader = read_requests(&stream, handler, settings, queue_tx, shutdown);
    let writer = write_responses(&stream, queue_rx, settings.fetch_copy);
    tokio::pin!(reader, writer);
    tokio::select! {
        read = &mut reader => {
            // The queue sender is gone with the reader: the writer drains what was read.
            let written = writer.await;
            read.and(written)
        }
        written = &mut writer => written,
    }
}

async fn read_requests(
    stream: &TcpStream,
    handler: Rc<dyn RequestHandler>,
    settings: ConnectionSettings,
    queue: mpsc::Sender<oneshot::Receiver<Outcome>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let mut decoder = FrameDecoder::new(settings.request_size_bytes_max);
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        while let Some(frame) = decoder.decode(&mut buffer)? {
            let (done_tx, done_rx) = oneshot::channel();
            let request = handler.handle(frame);
            tokio::task::spawn_local(async move {
                let _ = done_tx.send(request.await);
            });
            // Waits here when `in_flight_max` responses are outstanding: backpressure.
            if queue.send(done_rx).await.is_err() {
                return Ok(());
            }
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        tokio::select! {
            ready = stream.readable() => ready?,
            _ = shutdown.changed() => return Ok(()),
        }
        if buffer.capacity() - buffer.len() < READ_CHUNK_BYTES / 4 {
            buffer.reserve(READ_CHUNK_BYTES);
        }
        match stream.try_read_buf(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

async fn write_responses(
    stream: &TcpStream,
    mut queue: mpsc::Receiver<oneshot::Receiver<Outcome>>,
    fetch_copy: bool,
) -> Result<(), ConnectionError> {
    let mut pending = BytesMut::with_capacity(WRITE_COALESCE_BYTES);
    let mut next: Option<oneshot::Receiver<Outcome>> = None;
    loop {
        let mut done = match next.take() {
            Some(done) => done,
            None => {
                write_all(stream, &mut pending).await?;
                match queue.recv().await {
                    Some(done) => done,
                    None => break,
                }
            }
        };
        let outcome = match done.try_recv() {
            Ok(outcome) => outcome,
            Err(oneshot::error::TryRecvError::Empty) => {
                // Not ready (a long poll, an fsync): send what is ready first.
                write_all(stream, &mut pending).await?;
                match done.await {
                    Ok(outcome) => outcome,
                    Err(_) => return Err(ConnectionError::Request("request task died".into())),
                }
            }
            Err(oneshot::error::TryRecvError::Closed) => {
                return Err(ConnectionError::Request("request task died".into()));
            }
        };
        match outcome {
            Outcome::Silent => {}
            Outcome::Close(reason) => {
                write_all(stream, &mut pending).await?;
                return Err(ConnectionError::Request(reason));
            }
            Outcome::Respond(parts) => {
                for part in parts {
                    write_part(stream, &mut pending, part, fetch_copy).await?;
                }
            }
        }
        if pending.len() >= WRITE_COALESCE_BYTES {
            write_all(stream, &mut pending).await?;
        }
        next = queue.try_recv().ok();
    }
    Ok(write_all(stream, &mut pending).await?)
}

async fn write_part(
    stream: &TcpStream,
    pending: &mut BytesMut,
    part: ResponsePart,
    fetch_copy: bool,
) -> Result<(), ConnectionError> {
    match part {
        ResponsePart::Bytes(bytes) => pending.extend_from_slice(&bytes),
        ResponsePart::File {
            file,
            position,
            len,
        } if !fetch_copy => {
            write_all(stream, pending).await?;
            send_file(stream, &*file, position, u64::from(len)).await?;
        }
        ResponsePart::File {
            file,
            mut position,
            len,
        } => {
            let mut remaining = len as usize;
            while remaining > 0 {
                let chunk = remaining.min(COPY_CHUNK_BYTES);
                let start = pending.len();
                pending.resize(start + chunk, 0);
                read_exact_at(&*file, position, &mut pending[start..])?;
                position += chunk as u64;
                remaining -= chunk;
                if pending.len() >= WRITE_COALESCE_BYTES {
                    write_all(stream, pending).await?;
                }
            }
        }
    }
    Ok(())
}

/// Writes and empties `pending`.
async fn write_all(stream: &TcpStream, pending: &mut BytesMut) -> io::Result<()> {
    let mut written = 0;
    while written < pending.len() {
        stream.writable().await?;
        match stream.try_write(&pending[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    pending.clear();
    Ok(())
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
