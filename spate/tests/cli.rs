//! The `spate` binary's command line, run as a user runs it.
//!
//! Being an integration test of the `spate` package, this file also makes `cargo test` and
//! `cargo nextest run --workspace` build the plain `spate` binary before any test runs, which
//! the black-box suite in `tests/` then starts.

use std::process::Command;

fn spate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(args)
        .output()
        .expect("spate runs")
}

#[test]
fn help_names_the_serve_subcommand() {
    let output = spate(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("serve"), "no serve subcommand in:\n{text}");
}

#[test]
fn serve_help_documents_every_listener_flag() {
    let output = spate(&["serve", "--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--data-dir",
        "--listen",
        "--advertised-listen",
        "--admin-listen",
        "--cores",
        "--config",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

#[test]
fn unknown_subcommand_fails_with_usage() {
    let output = spate(&["no-such-command"]);
    assert!(!output.status.success());
    assert!(!output.stderr.is_empty());
}
