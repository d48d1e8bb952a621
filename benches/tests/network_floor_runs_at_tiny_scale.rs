//! `spate bench network-floor` at a tiny scale, so the tool cannot rot: TCP, raw QUIC and the
//! cluster transport's calls (at two concurrencies) each run between two real processes, and
//! the figures are sane: nonzero throughput and CPU on both sides, no errors, JSON that parses.
//! Speed is not checked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BENCH: &str = env!("CARGO_BIN_EXE_spate-bench");

#[test]
fn every_path_moves_bytes_between_two_processes_with_sane_figures() {
    let out = tempfile::tempdir().unwrap();
    let json_path = out.path().join("network-floor.json");
    let output = Command::new(BENCH)
        .args([
            "network-floor",
            "--bytes",
            "4MiB",
            "--message-bytes",
            "256KiB",
        ])
        .args(["--warmup", "0.1", "--duration", "0.3", "--interval", "0.1"])
        .args([
            "--concurrency",
            "1,3",
            "--json",
            json_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "network-floor failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let paths = report["paths"].as_array().unwrap();
    let names: Vec<(String, u64)> = paths
        .iter()
        .map(|p| {
            let name = p["path"].as_str().unwrap().to_string();
            (name, p["concurrency"].as_u64().unwrap())
        })
        .collect();
    let expected = [
        ("tcp", 1),
        ("quic-raw", 1),
        ("quic-call", 1),
        ("quic-call", 3),
    ];
    assert_eq!(
        names,
        expected.map(|(n, c)| (n.to_string(), c)).to_vec(),
        "{report}"
    );
    for path in paths {
        assert!(path["error"].is_null(), "{path}");
        assert!(
            path["throughput"]["mb_per_s"].as_f64().unwrap() > 0.0,
            "{path}"
        );
        // At least --bytes after the warm-up (a call's answer is 256 KiB, so whole answers).
        assert!(path["window_bytes"].as_u64().unwrap() >= 4 << 20, "{path}");
        for side in ["sender", "receiver"] {
            let cpu = path[side]["cpu_s_per_gb"].as_f64().unwrap();
            assert!(cpu.is_finite() && cpu > 0.0, "{side}: {path}");
            assert!(
                path[side]["busy_cores"].as_f64().unwrap() > 0.0,
                "{side}: {path}"
            );
        }
        if path["path"] != "tcp" {
            assert!(path["vs_tcp"].as_f64().unwrap() > 0.0, "{path}");
        }
    }
    let raw = &paths[1];
    assert!(
        raw["client_quic"]["sent_packets"].as_u64().unwrap() > 0,
        "{raw}"
    );
    assert!(
        raw["server_quic"]["udp_rx_datagrams"].as_u64().unwrap() > 0,
        "{raw}"
    );
    assert!(stdout.contains("quic-call x3"), "{stdout}");
}

#[test]
fn the_peer_process_exits_when_its_bench_goes_away() {
    let mut peer = Command::new(BENCH)
        .args([
            "network-floor-peer",
            "--path",
            "tcp",
            "--message-bytes",
            "1KiB",
        ])
        .args(["--certs", "/nonexistent"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(peer.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening 127.0.0.1:"), "{line:?}");
    drop(peer.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while peer.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the peer outlived its stdin");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(peer.wait().unwrap().success());
}
