//! The connection against a scripted fake broker: version negotiation, answers matched by
//! correlation id whatever their order, and a timeout that closes the connection.

use std::time::Duration;

use bytes::BytesMut;
use spate_protocol::frame::{finish_frame, peek_request_header, start_frame};
use spate_protocol::messages::api_versions_response::ApiVersion;
use spate_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use spate_protocol::{ApiKey, Encode, ResponseHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

fn settings(request_timeout: Duration) -> ConnectionSettings {
    ConnectionSettings {
        client_id: "test".into(),
        request_timeout,
        connect_timeout: Duration::from_secs(5),
    }
}

/// One request as the fake broker read it.
struct Seen {
    api_version: i16,
    correlation_id: i32,
}

async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let size = stream.read_i32().await.ok()?;
    let mut payload = vec![0u8; size as usize];
    stream.read_exact(&mut payload).await.ok()?;
    let header = peek_request_header(&payload).ok()?;
    assert_eq!(header.api_key, ApiKey::ApiVersions.id());
    Some(Seen {
        api_version: header.api_version,
        correlation_id: header.correlation_id,
    })
}

/// An ApiVersions answer whose `throttle_time_ms` echoes the correlation id, so the test can
/// tell which request an answer went to.
async fn answer(stream: &mut TcpStream, seen: &Seen, error_code: i16, api_versions_max: i16) {
    let response = ApiVersionsResponse {
        error_code,
        api_keys: vec![ApiVersion {
            api_key: ApiKey::ApiVersions.id(),
            min_version: 0,
            max_version: api_versions_max,
            ..Default::default()
        }],
        throttle_time_ms: seen.correlation_id,
        ..Default::default()
    };
    let mut out = BytesMut::new();
    let start = start_frame(&mut out);
    let header = ResponseHeader {
        correlation_id: seen.correlation_id,
        ..Default::default()
    };
    header.encode(&mut out, 0).unwrap();
    response.encode(&mut out, seen.api_version).unwrap();
    finish_frame(&mut out, start).unwrap();
    stream.write_all(&out).await.unwrap();
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

#[tokio::test]
async fn answers_out_of_order_reach_the_right_requests() {
    let (listener, address) = listener().await;
    let fake = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let hello = read_request(&mut stream).await.unwrap();
        answer(&mut stream, &hello, 0, 4).await;
        let first = read_request(&mut stream).await.unwrap();
        let second = read_request(&mut stream).await.unwrap();
        answer(&mut stream, &second, 0, 4).await;
        answer(&mut stream, &first, 0, 4).await;
        (first.correlation_id, second.correlation_id)
    });
    let connection = Connection::connect(&address, "fake".into(), settings(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        connection.versions().broker_range(ApiKey::ApiVersions),
        Some((0, 4))
    );
    let request = ApiVersionsRequest::default();
    let (a, b) = tokio::join!(connection.send(&request), connection.send(&request));
    let (first_id, second_id) = fake.await.unwrap();
    let mut got = [a.unwrap().throttle_time_ms, b.unwrap().throttle_time_ms];
    got.sort();
    let mut sent = [first_id, second_id];
    sent.sort();
    assert_eq!(got, sent);
    assert_ne!(first_id, second_id);
}

#[tokio::test]
async fn negotiation_falls_back_to_the_brokers_api_versions_version() {
    let (listener, address) = listener().await;
    let fake = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let hello = read_request(&mut stream).await.unwrap();
        // An older broker: it knows ApiVersions only up to v2 and says so, v0-style.
        let refused = Seen {
            api_version: 0,
            correlation_id: hello.correlation_id,
        };
        answer(
            &mut stream,
            &refused,
            ErrorCode::UnsupportedVersion.code(),
            2,
        )
        .await;
        let retry = read_request(&mut stream).await.unwrap();
        answer(&mut stream, &retry, 0, 2).await;
        (hello.api_version, retry.api_version)
    });
    let connection = Connection::connect(&address, "old".into(), settings(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(fake.await.unwrap(), (4, 2));
    assert_eq!(connection.version_of::<ApiVersionsRequest>().unwrap(), 2);
}

#[tokio::test]
async fn unanswered_request_times_out_and_closes_the_connection() {
    let (listener, address) = listener().await;
    let _fake = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let hello = read_request(&mut stream).await.unwrap();
        answer(&mut stream, &hello, 0, 4).await;
        // Read the next requests but never answer them.
        while read_request(&mut stream).await.is_some() {}
    });
    let connection = Connection::connect(
        &address,
        "node 7 at fake".into(),
        settings(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let request = ApiVersionsRequest::default();
    let error = connection.send(&request).await.unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
    assert!(error.to_string().contains("node 7 at fake"));
    assert!(!connection.is_open());
    let after = connection.send(&request).await.unwrap_err();
    assert_eq!(
        after, error,
        "a closed connection refuses new requests with its reason"
    );
}

#[tokio::test]
async fn broker_closing_the_socket_fails_in_flight_requests() {
    let (listener, address) = listener().await;
    let _fake = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let hello = read_request(&mut stream).await.unwrap();
        answer(&mut stream, &hello, 0, 4).await;
        read_request(&mut stream).await;
        drop(stream);
    });
    let connection = Connection::connect(&address, "fake".into(), settings(Duration::from_secs(5)))
        .await
        .unwrap();
    let error = connection
        .send(&ApiVersionsRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ConnectionLost { .. }), "{error}");
    assert!(error.is_retriable());
    assert!(!connection.is_open());
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error_naming_the_broker() {
    let (listener, address) = listener().await;
    drop(listener);
    let error = match Connection::connect(
        &address,
        format!("bootstrap {address}"),
        settings(Duration::from_secs(1)),
    )
    .await
    {
        Err(error) => error,
        Ok(_) => panic!("connected to a closed port"),
    };
    assert!(matches!(error, Error::Connect { .. }));
    assert!(error.to_string().contains(&address));
}
