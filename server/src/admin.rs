//! The admin HTTP endpoint: a deliberately tiny HTTP/1.1 server on the admin port.
//!
//! `GET /health` answers `200 ok` once the broker serves Kafka requests and `503` before
//! (and while shutting down), so orchestrators and tests can wait on it. `GET /cluster` is
//! the cluster as this node sees it, as JSON (`spate cluster status` reads it). One request
//! per connection, `Connection: close`; it needs no HTTP library. Metrics and the console
//! come later; this module does not serve them yet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request head larger than this is refused: `/health` probes send a few hundred bytes.
const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// A client that has not sent its request head by then is dropped, so idle sockets cannot pile up.
const REQUEST_TIMEOUT_MS: u64 = 5_000;

/// Produces `/cluster`'s JSON body.
pub type ClusterStatusFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves admin HTTP on `listener` until the task is dropped. `ready` flips `/health`.
pub async fn serve(listener: TcpListener, ready: Arc<AtomicBool>, cluster: ClusterStatusFn) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let ready = ready.clone();
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
            if let Err(e) = tokio::time::timeout(timeout, answer(stream, &ready, &cluster)).await {
                tracing::debug!(error = %e, "admin client timed out");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, ready: &AtomicBool, cluster: &ClusterStatusFn) {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > REQUEST_HEAD_BYTES_MAX {
            let _ = stream
                .write_all(&response(431, "request head too large\n"))
                .await;
            return;
        }
    }
    let reply = route(&head, ready.load(Ordering::Acquire), cluster);
    let _ = stream.write_all(&reply).await;
    let _ = stream.shutdown().await;
}

/// Maps a request head to a full HTTP response. Pure, so it is tested without sockets.
fn route(head: &[u8], ready: bool, cluster: &ClusterStatusFn) -> Vec<u8> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    match (method, path) {
        (b"GET" | b"HEAD", b"/health") if ready => response(200, "ok\n"),
        (b"GET" | b"HEAD", b"/health") => response(503, "starting or stopping\n"),
        (b"GET" | b"HEAD", b"/cluster") => json_response(&cluster()),
        (b"GET" | b"HEAD", _) => response(404, "not found; try /health or /cluster\n"),
        _ => response(405, "only GET is supported\n"),
    }
}

fn json_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn response(status: u16, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(reply: &[u8]) -> &[u8] {
        &reply[9..12]
    }

    fn no_cluster() -> ClusterStatusFn {
        Arc::new(|| "{\"node_id\":0}".to_owned())
    }

    #[test]
    fn health_is_503_until_ready_then_200() {
        let head = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(status_of(&route(head, false, &no_cluster())), b"503");
        assert_eq!(status_of(&route(head, true, &no_cluster())), b"200");
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        assert_eq!(
            status_of(&route(b"GET /nope HTTP/1.1\r\n\r\n", true, &no_cluster())),
            b"404"
        );
        assert_eq!(
            status_of(&route(
                b"POST /health HTTP/1.1\r\n\r\n",
                true,
                &no_cluster()
            )),
            b"405"
        );
        assert_eq!(status_of(&route(b"\xff\xfe", true, &no_cluster())), b"405");
    }

    #[test]
    fn cluster_answers_json() {
        let reply = route(b"GET /cluster HTTP/1.1\r\n\r\n", true, &no_cluster());
        assert_eq!(status_of(&reply), b"200");
        let text = String::from_utf8(reply).unwrap();
        assert!(text.contains("application/json") && text.ends_with("{\"node_id\":0}"));
    }

    #[tokio::test]
    async fn health_answers_over_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ready = Arc::new(AtomicBool::new(true));
        let server = tokio::spawn(serve(listener, ready, no_cluster()));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /health HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
        assert!(reply.ends_with(b"ok\n"));
        server.abort();
    }
}
