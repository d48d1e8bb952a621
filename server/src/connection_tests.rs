use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::response::{SharedFile, frame_parts};

/// Echoes the frame back; a first byte of `d` delays by the second byte × 10 ms, `c` asks to
/// close, `s` is silent, `f` answers with the bytes of `FILE` via a file slice.
struct Echo {
    file: SharedFile,
}

const FILE: &[u8] = b"hello from a segment file";

impl RequestHandler for Echo {
    fn handle(&self, frame: Bytes) -> Pin<Box<dyn Future<Output = Outcome>>> {
        let file = self.file.clone();
        Box::pin(async move {
            match frame.first() {
                Some(b'd') => {
                    let ms = u64::from(frame.get(1).copied().unwrap_or(0)) * 10;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Some(b'c') => return Outcome::Close("asked to".into()),
                Some(b's') => return Outcome::Silent,
                Some(b'f') => {
                    return Outcome::Respond(frame_parts(vec![
                        ResponsePart::Bytes(frame),
                        ResponsePart::File {
                            file,
                            position: 0,
                            len: FILE.len() as u32,
                        },
                    ]));
                }
                _ => {}
            }
            Outcome::from_body(BytesMut::from(&frame[..]))
        })
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_i32(payload.len() as i32);
    out.put_slice(payload);
    out.to_vec()
}

async fn read_frame(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let size = stream.read_i32().await.ok()?;
    let mut payload = vec![0u8; size as usize];
    stream.read_exact(&mut payload).await.ok()?;
    Some(payload)
}

/// Starts a server for one connection with `settings` and returns the client end.
async fn connect(settings: ConnectionSettings) -> tokio::net::TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut file, FILE).unwrap();
    let handler: Rc<dyn RequestHandler> = Rc::new(Echo {
        file: Arc::new(file),
    });
    tokio::task::spawn_local(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (_keep, shutdown) = watch::channel(false);
        let _ = serve_connection(stream, handler, settings, shutdown).await;
    });
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        request_size_bytes_max: 1024,
        in_flight_max: 8,
        fetch_copy: false,
    }
}

fn local<F: Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, f)
}

#[test]
fn pipelined_responses_come_back_in_request_order() {
    local(async {
        let mut client = connect(settings()).await;
        let mut burst = Vec::new();
        burst.extend(frame(&[b'd', 5, 1]));
        burst.extend(frame(&[b'd', 0, 2]));
        burst.extend(frame(b"s"));
        burst.extend(frame(&[b'd', 2, 3]));
        client.write_all(&burst).await.unwrap();
        assert_eq!(read_frame(&mut client).await.unwrap(), [b'd', 5, 1]);
        assert_eq!(read_frame(&mut client).await.unwrap(), [b'd', 0, 2]);
        assert_eq!(read_frame(&mut client).await.unwrap(), [b'd', 2, 3]);
    });
}

#[test]
fn more_requests_than_the_in_flight_limit_are_all_answered() {
    local(async {
        let mut client = connect(ConnectionSettings {
            in_flight_max: 2,
            ..settings()
        })
        .await;
        let mut burst = Vec::new();
        for i in 0..50u8 {
            burst.extend(frame(&[b'd', 0, i]));
        }
        client.write_all(&burst).await.unwrap();
        for i in 0..50u8 {
            assert_eq!(read_frame(&mut client).await.unwrap(), [b'd', 0, i]);
        }
    });
}

#[test]
fn oversize_frame_closes_the_connection() {
    local(async {
        let mut client = connect(settings()).await;
        client.write_all(&frame(b"x")).await.unwrap();
        assert_eq!(read_frame(&mut client).await.unwrap(), b"x");
        client.write_all(&2000i32.to_be_bytes()).await.unwrap();
        assert_eq!(read_frame(&mut client).await, None);
    });
}

#[test]
fn negative_frame_length_closes_the_connection() {
    local(async {
        let mut client = connect(settings()).await;
        client.write_all(&(-5i32).to_be_bytes()).await.unwrap();
        assert_eq!(read_frame(&mut client).await, None);
    });
}

#[test]
fn unparsable_request_closes_after_earlier_responses() {
    local(async {
        let mut client = connect(settings()).await;
        let mut burst = frame(&[b'd', 3, 9]);
        burst.extend(frame(b"c"));
        burst.extend(frame(b"never answered"));
        client.write_all(&burst).await.unwrap();
        assert_eq!(read_frame(&mut client).await.unwrap(), [b'd', 3, 9]);
        assert_eq!(read_frame(&mut client).await, None);
    });
}

#[test]
fn file_slices_are_sent_with_sendfile_and_with_the_copy_path() {
    for fetch_copy in [false, true] {
        local(async move {
            let mut client = connect(ConnectionSettings {
                fetch_copy,
                ..settings()
            })
            .await;
            client.write_all(&frame(b"f:")).await.unwrap();
            let got = read_frame(&mut client).await.unwrap();
            assert_eq!(&got[..2], b"f:");
            assert_eq!(&got[2..], FILE);
        });
    }
}
