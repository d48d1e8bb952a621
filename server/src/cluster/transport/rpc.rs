//! One request per bidirectional stream: the caller writes the request and finishes its half;
//! the answerer reads it to the end, runs the handler, writes the answer and finishes.
//!
//! Both sides read with a size limit, so an oversized message is an error value, never an
//! unbounded allocation. A stream that is abandoned (the caller timed out, the handler
//! panicked) is reset, never finished: quinn finishes a dropped `SendStream`, which would
//! deliver a truncated request or an empty answer as if it were complete.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytes::Bytes;
use quinn::{ConnectionError, ReadError, ReadToEndError, SendStream, VarInt, WriteError};
use tracing::{debug, error, warn};

use super::RpcHandler;
use super::code;
use super::links::{ActivityGuard, Link};

/// A send half that is reset with `code` unless it was finished.
pub(super) struct ResetOnDrop {
    stream: SendStream,
    code: VarInt,
    done: bool,
}

impl ResetOnDrop {
    pub fn new(stream: SendStream, code: VarInt) -> Self {
        ResetOnDrop {
            stream,
            code,
            done: false,
        }
    }

    /// Ends the message: the peer reads it to its end.
    pub fn finish(mut self) {
        self.done = true;
        // Only fails if the stream was already stopped or reset: the peer then knows.
        let _ = self.stream.finish();
    }

    pub fn reset(mut self, code: VarInt) {
        self.done = true;
        let _ = self.stream.reset(code);
    }
}

impl Deref for ResetOnDrop {
    type Target = SendStream;
    fn deref(&self) -> &SendStream {
        &self.stream
    }
}

impl DerefMut for ResetOnDrop {
    fn deref_mut(&mut self) -> &mut SendStream {
        &mut self.stream
    }
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.stream.reset(self.code);
        }
    }
}

/// Why a call's exchange failed.
#[derive(Debug)]
pub(super) enum ExchangeError {
    /// The stream could not be opened: nothing was sent, so retrying elsewhere is safe.
    NotSent(ConnectionError),
    /// The connection was lost once the request may have left.
    Lost(ConnectionError),
    /// The peer refused the request as over its message limit.
    PeerTooLarge,
    /// The answer is over this node's message limit.
    AnswerTooLarge,
    /// The peer reset the stream without answering.
    Reset(VarInt),
    /// A stream state quinn reports that this protocol never creates (0-RTT is off).
    Stream(String),
}

/// Sends `request` over `link` on a new stream and reads the answer.
pub(super) async fn exchange(
    link: &Link,
    request: Bytes,
    bytes_max: usize,
) -> Result<Bytes, ExchangeError> {
    let _activity = link.activity.begin();
    let (send, mut recv) = link.conn.open_bi().await.map_err(ExchangeError::NotSent)?;
    let mut send = ResetOnDrop::new(send, code::CANCELLED);
    match send.write_chunk(request).await {
        Ok(()) => send.finish(),
        Err(WriteError::Stopped(stop)) if stop == code::TOO_LARGE => {
            return Err(ExchangeError::PeerTooLarge);
        }
        Err(WriteError::Stopped(stop)) => return Err(ExchangeError::Reset(stop)),
        Err(WriteError::ConnectionLost(e)) => return Err(ExchangeError::Lost(e)),
        Err(e) => return Err(ExchangeError::Stream(e.to_string())),
    }
    match recv.read_to_end(bytes_max).await {
        Ok(answer) => Ok(Bytes::from(answer)),
        Err(ReadToEndError::TooLong) => Err(ExchangeError::AnswerTooLarge),
        Err(ReadToEndError::Read(ReadError::Reset(reset))) if reset == code::TOO_LARGE => {
            Err(ExchangeError::PeerTooLarge)
        }
        Err(ReadToEndError::Read(ReadError::Reset(reset))) => Err(ExchangeError::Reset(reset)),
        Err(ReadToEndError::Read(ReadError::ConnectionLost(e))) => Err(ExchangeError::Lost(e)),
        Err(ReadToEndError::Read(e)) => Err(ExchangeError::Stream(e.to_string())),
    }
}

/// Answers the requests `link`'s peer sends until the connection closes, and returns why it
/// closed. Concurrent requests are bounded by the connection's stream limit.
pub(super) async fn serve_connection(
    link: &Link,
    handler: Arc<dyn RpcHandler>,
    bytes_max: usize,
) -> ConnectionError {
    loop {
        match link.conn.accept_bi().await {
            Ok((send, recv)) => {
                let activity = link.activity.begin();
                tokio::spawn(serve_request(
                    handler.clone(),
                    link.peer,
                    bytes_max,
                    send,
                    recv,
                    activity,
                ));
            }
            Err(reason) => return reason,
        }
    }
}

async fn serve_request(
    handler: Arc<dyn RpcHandler>,
    from: i32,
    bytes_max: usize,
    send: SendStream,
    mut recv: quinn::RecvStream,
    _activity: ActivityGuard,
) {
    // Reset, not finish, if the handler panics: the caller must not take silence for an answer.
    let send = ResetOnDrop::new(send, code::HANDLER_FAILED);
    let request = match recv.read_to_end(bytes_max).await {
        Ok(request) => Bytes::from(request),
        Err(ReadToEndError::TooLong) => {
            warn!(
                from,
                bytes_max, "refused a request from node {from}: over message_bytes_max"
            );
            let _ = recv.stop(code::TOO_LARGE);
            send.reset(code::TOO_LARGE);
            return;
        }
        Err(ReadToEndError::Read(e)) => {
            debug!(
                from,
                "request from node {from} abandoned before it arrived: {e}"
            );
            return;
        }
    };
    let stopped = send.stopped();
    let answer = tokio::select! {
        answer = handler.handle(from, request) => answer,
        // The caller gave up (timeout) or the connection closed: drop the handler's work.
        _ = stopped => {
            debug!(from, "node {from} stopped waiting for its answer");
            return;
        }
    };
    if answer.len() > bytes_max {
        error!(
            from,
            bytes = answer.len(),
            bytes_max,
            "the answer to node {from} is over message_bytes_max; the caller gets an error"
        );
        send.reset(code::ANSWER_TOO_LARGE);
        return;
    }
    let mut send = send;
    match send.write_chunk(answer).await {
        Ok(()) => send.finish(),
        Err(e) => debug!(from, "cannot answer node {from}: {e}"),
    }
}
