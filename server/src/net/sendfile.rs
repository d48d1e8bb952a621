//! Moving bytes from a segment file to a socket: zero-copy with `sendfile(2)`, or by copying
//! (`pread(2)` into a buffer, then a normal write) for comparison and for TLS later.
//!
//! This is the only module in the server with `unsafe`: two libc calls on borrowed file
//! descriptors. Both functions loop on partial transfers, and the socket path waits for
//! writability with tokio's readiness API, so a slow consumer parks the task instead of a
//! thread.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Linux transfers at most this much per `sendfile` call (`MAX_RW_COUNT`); asking for more is
/// silently truncated, so the loop asks for at most this.
const SENDFILE_CHUNK_BYTES_MAX: usize = 0x7fff_f000;
/// Buffer size of the copying path: large enough to amortize syscalls, small enough per
/// connection.
pub const COPY_CHUNK_BYTES: usize = 256 * 1024;

/// Sends `len` bytes of `file` starting at `position` to `stream` with `sendfile(2)`.
///
/// Fails with `UnexpectedEof` if the file ends first (a truncated segment): the caller has
/// already promised those bytes in the response's size prefix, so the connection must close.
pub async fn send_file(
    stream: &TcpStream,
    file: &(impl AsFd + ?Sized),
    position: u64,
    len: u64,
) -> io::Result<()> {
    let mut offset = libc::off_t::try_from(position)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file position too large"))?;
    let mut remaining = len;
    while remaining > 0 {
        stream.writable().await?;
        let chunk = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(SENDFILE_CHUNK_BYTES_MAX);
        let sent = stream.try_io(Interest::WRITABLE, || {
            sendfile_once(
                stream.as_raw_fd(),
                file.as_fd().as_raw_fd(),
                &mut offset,
                chunk,
            )
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended before the promised slice",
                ));
            }
            Ok(n) => remaining -= n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One `sendfile` call; `offset` advances by the bytes sent.
fn sendfile_once(
    socket_fd: i32,
    file_fd: i32,
    offset: &mut libc::off_t,
    count: usize,
) -> io::Result<usize> {
    // SAFETY: both descriptors are borrowed from objects (`TcpStream`, the segment file) that
    // the caller keeps alive for the whole call, so they are open and not reused; `offset`
    // is a valid, exclusive pointer to an `off_t` for the duration of the call; the kernel
    // reads from the file and writes to the socket and touches no user memory besides
    // `offset`.
    let sent = unsafe { libc::sendfile(socket_fd, file_fd, offset, count) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent.unsigned_abs())
}

/// Reads exactly `buf.len()` bytes of `file` at `position` (the copying path).
pub fn read_exact_at(
    file: &(impl AsFd + ?Sized),
    mut position: u64,
    mut buf: &mut [u8],
) -> io::Result<()> {
    while !buf.is_empty() {
        let offset = libc::off_t::try_from(position)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file position too large"))?;
        // SAFETY: the descriptor is borrowed from a live object the caller holds; `buf` is a
        // valid, exclusive, writable region of exactly `buf.len()` bytes, and pread writes at
        // most that many.
        let n = unsafe {
            libc::pread(
                file.as_fd().as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                offset,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment file ended before the promised slice",
            ));
        }
        let n = n.unsigned_abs();
        position += n as u64;
        buf = &mut buf[n..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    fn file_with(bytes: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[tokio::test]
    async fn sendfile_delivers_exactly_the_requested_slice() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let file = file_with(&data);
        let (tx, mut rx) = socket_pair().await;
        send_file(&tx, &file, 1234, 5000).await.unwrap();
        drop(tx);
        let mut got = Vec::new();
        rx.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, &data[1234..6234]);
    }

    #[tokio::test]
    async fn sendfile_survives_partial_writes_to_a_slow_reader() {
        // 16 MiB is far beyond the socket buffers, so sendfile must hit EAGAIN and resume.
        let data: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 253) as u8).collect();
        let file = file_with(&data);
        let (tx, mut rx) = socket_pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = rx.read(&mut buf).await.unwrap();
                if n == 0 {
                    break got;
                }
                got.extend_from_slice(&buf[..n]);
                tokio::task::yield_now().await;
            }
        });
        send_file(&tx, &file, 0, data.len() as u64).await.unwrap();
        drop(tx);
        assert!(reader.await.unwrap() == data);
    }

    #[tokio::test]
    async fn sendfile_past_end_of_file_is_an_error() {
        let file = file_with(b"short");
        let (tx, _rx) = socket_pair().await;
        let err = send_file(&tx, &file, 0, 100).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn pread_copies_the_slice_and_refuses_to_read_past_the_end() {
        let file = file_with(b"0123456789");
        let mut buf = [0u8; 4];
        read_exact_at(&file, 3, &mut buf).unwrap();
        assert_eq!(&buf, b"3456");
        let mut long = [0u8; 20];
        assert_eq!(
            read_exact_at(&file, 0, &mut long).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
