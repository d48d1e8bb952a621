//! One client never takes down another: while hostile connections keep arriving (garbage,
//! negative and huge frame lengths, the `i32::MAX` Metadata array, half frames left hanging),
//! a well-behaved kcat producer and consumer move 50,000 messages and get every one back.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use spate_tests::Broker;
use spate_tests::clients::run_kcat;
use spate_tests::kafka_requests::check_broker_serves;
use spate_tests::wire::{api_key, request_frame};

const MESSAGE_COUNT: usize = 50_000;
const KCAT_TIMEOUT: Duration = Duration::from_secs(120);
/// Hostile connections made before the producer starts.
const HOSTILE_BEFORE_START: usize = 50;

/// The hostile frames, cycled through by the attacker thread.
fn hostile_payloads() -> Vec<Vec<u8>> {
    let mut garbage = 2000i32.to_be_bytes().to_vec();
    garbage.extend((0..2000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    vec![
        garbage,
        (-1i32).to_be_bytes().to_vec(),
        0x7fff_fff0i32.to_be_bytes().to_vec(),
        request_frame(api_key::METADATA, 1, 7, &i32::MAX.to_be_bytes()),
        request_frame(31_000, 0, 8, &[1, 2, 3]),
        vec![0, 0, 1, 0, 0, 18], // half a frame, then silence
    ]
}

fn attack(addr: SocketAddr, stop: Arc<AtomicBool>, sent: Arc<AtomicUsize>) {
    let payloads = hostile_payloads();
    let mut held = Vec::new();
    let mut index = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.write_all(&payloads[index % payloads.len()]);
            // Keep a few connections open and silent, drop the rest at once.
            if index % 10 == 0 && held.len() < 50 {
                held.push(stream);
            }
            sent.fetch_add(1, Ordering::Relaxed);
        }
        index += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn hostile_connections_do_not_disturb_a_producer_and_consumer() {
    let broker = Broker::start().unwrap();
    let bootstrap = broker.bootstrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let attacker = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        let addr = broker.kafka_addr();
        std::thread::spawn(move || attack(addr, stop, sent))
    };

    // The attack is under way before the well-behaved clients start.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sent.load(Ordering::Relaxed) < HOSTILE_BEFORE_START {
        assert!(
            std::time::Instant::now() < deadline,
            "attacker cannot connect"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let input: String = (0..MESSAGE_COUNT).map(|i| format!("m-{i:06}\n")).collect();
    let produced = run_kcat(
        &bootstrap,
        &["-P", "-t", "steady", "-p", "0"],
        Some(input.clone().into_bytes()),
        KCAT_TIMEOUT,
    )
    .unwrap();
    let consumed = run_kcat(
        &bootstrap,
        &[
            "-C",
            "-t",
            "steady",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
        KCAT_TIMEOUT,
    )
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();

    assert!(produced.status.success(), "{}", produced.describe());
    assert!(consumed.status.success(), "{}", consumed.describe());
    assert!(
        consumed.stdout_text() == input,
        "consumed {} bytes, produced {}",
        consumed.stdout.len(),
        input.len()
    );
    let hostile = sent.load(Ordering::Relaxed);
    eprintln!("{hostile} hostile connections during the round trip");
    check_broker_serves(broker.kafka_addr()).unwrap();
    assert_eq!(broker.first_panic_line(), None, "the broker panicked");
}
