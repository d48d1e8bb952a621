//! `spate cluster ca` and `spate cluster cert`, run as an operator runs them.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn spate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(args)
        .output()
        .expect("spate runs")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn ca_then_node_cert_write_pem_files_with_owner_only_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");

    let ca = spate(&["cluster", "ca", "--out", arg(&out)]);
    assert!(
        ca.status.success(),
        "{}",
        String::from_utf8_lossy(&ca.stderr)
    );
    let stdout = String::from_utf8_lossy(&ca.stdout);
    assert!(stdout.contains(arg(&out.join("ca.pem"))), "{stdout}");
    assert!(stdout.contains(arg(&out.join("ca.key"))), "{stdout}");

    let cert = spate(&[
        "cluster",
        "cert",
        "--ca",
        arg(&out),
        "--node-id",
        "1",
        "--out",
        arg(&out),
    ]);
    assert!(
        cert.status.success(),
        "{}",
        String::from_utf8_lossy(&cert.stderr)
    );
    let stdout = String::from_utf8_lossy(&cert.stdout);
    assert!(stdout.contains(arg(&out.join("node-1.pem"))), "{stdout}");
    assert!(stdout.contains(arg(&out.join("node-1.key"))), "{stdout}");

    for pem in ["ca.pem", "node-1.pem"] {
        let text = std::fs::read_to_string(out.join(pem)).unwrap();
        assert!(
            text.starts_with("-----BEGIN CERTIFICATE-----"),
            "{pem}: {text}"
        );
    }
    for key in ["ca.key", "node-1.key"] {
        let text = std::fs::read_to_string(out.join(key)).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        assert_eq!(mode(&out.join(key)), 0o600, "{key}");
    }
}

#[test]
fn running_ca_twice_fails_and_leaves_the_first_ca_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = arg(dir.path());
    assert!(spate(&["cluster", "ca", "--out", out]).status.success());
    let before = std::fs::read(dir.path().join("ca.key")).unwrap();

    let again = spate(&["cluster", "ca", "--out", out]);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(again.stdout.is_empty());
    assert_eq!(std::fs::read(dir.path().join("ca.key")).unwrap(), before);
}

#[test]
fn cert_without_a_ca_fails_and_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = arg(dir.path());
    let cert = spate(&[
        "cluster",
        "cert",
        "--ca",
        out,
        "--node-id",
        "1",
        "--out",
        out,
    ]);
    assert_eq!(cert.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&cert.stderr);
    assert!(stderr.contains("spate cluster ca"), "{stderr}");
}
