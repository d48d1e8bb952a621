//! The TCP path: one connection, bulk `write_all` of messages; the server reads and discards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::quic::QuicStats;
use crate::metrics::Meter;

/// The server's read buffer: at least a 1 MiB message per `read`, so the floor is not held
/// down by the number of system calls a small buffer would cost.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// Client side: writes `message` until `stop`.
pub async fn send(
    addr: SocketAddr,
    message: Bytes,
    meter: Arc<Meter>,
    stop: Arc<AtomicBool>,
) -> Result<Option<QuicStats>, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("TCP connect to the peer: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    while !stop.load(Ordering::Relaxed) {
        stream
            .write_all(&message)
            .await
            .map_err(|e| e.to_string())?;
        meter.add(message.len() as u64, 1);
    }
    let _ = stream.shutdown().await;
    Ok(None)
}

/// Server side: reads every connection to its end, discarding the bytes.
pub async fn receive(listener: TcpListener) {
    while let Ok((mut stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut buffer = vec![0u8; READ_BUFFER_BYTES];
            while let Ok(1..) = stream.read(&mut buffer).await {}
        });
    }
}
