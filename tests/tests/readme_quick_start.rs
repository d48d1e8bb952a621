//! The README's "Quick start" runs exactly as written: the shell block between the
//! `<!-- quick-start -->` marker and its closing fence is handed to bash unchanged, with the
//! freshly built `spate` first on `PATH`, in an empty folder (so `./data` is new). Only the
//! environment differs from a newcomer's terminal: `SPATE_LISTEN`, `SPATE_ADMIN_LISTEN` and
//! `SPATE_BOOTSTRAP` point at free ports, so the test cannot collide with a broker already on
//! 9092. Every flag of `spate` also reads its variable, so the text itself is untouched.
//!
//! The output is checked, not just the exit status: the records the quick start produces must
//! come back from `spate consume` as often as the comments say, and `spate group describe`
//! must show the lag it promises.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test by panicking"
)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use spate_tests::run_with_timeout;
use spate_tests::workspace::{spate_binary, workspace_root};

/// The marker line in README.md that opens the tested block.
const MARKER: &str = "<!-- quick-start -->";

/// Generous: the block starts a broker, creates a topic, produces, consumes twice (once in a
/// group, which waits out the first rebalance) and describes the group, on a loaded machine.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// The shell block after [`MARKER`]: the lines between its opening ```` ```sh ```` fence and the
/// closing fence, verbatim.
fn quick_start_block(readme: &str) -> String {
    let after_marker = readme
        .split_once(MARKER)
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("README.md has no {MARKER} line"));
    let mut lines = after_marker
        .lines()
        .skip_while(|line| line.trim().is_empty());
    let fence = lines.next().unwrap_or_default();
    assert_eq!(
        fence.trim(),
        "```sh",
        "the line after {MARKER} must open a ```sh block"
    );
    let block: Vec<&str> = lines.take_while(|line| line.trim() != "```").collect();
    assert!(!block.is_empty(), "the quick-start block is empty");
    block.join("\n") + "\n"
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn readme_quick_start_runs_as_written() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let block = quick_start_block(&readme);
    let binary = spate_binary().unwrap();
    let bin_dir = binary.parent().unwrap_or(Path::new("."));
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let folder = tempfile::tempdir().unwrap();
    let kafka = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());

    // The block runs as a newcomer's shell would, stopping at the first failing command. Should
    // it fail before its own last line stops the broker, the EXIT trap stops whatever it left in
    // the background, so the output pipes close and the test reports instead of hanging.
    let script = format!("set -eu\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{block}");
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(&script)
        .current_dir(folder.path())
        .env("PATH", path)
        .env("SPATE_LISTEN", &kafka)
        .env("SPATE_ADMIN_LISTEN", &admin)
        .env("SPATE_BOOTSTRAP", &kafka)
        .env("NO_COLOR", "1")
        .process_group(0);
    let output = run_with_timeout(&mut command, None, SCRIPT_TIMEOUT).unwrap();
    assert!(
        output.status.success(),
        "the quick start failed:\n{block}\n{}",
        output.describe()
    );

    let stdout = output.stdout_text();
    let printed = |value: &str| stdout.lines().filter(|line| *line == value).count();
    // Both values once from the plain consume and once from the group's first run; carol's
    // record only from the group's second run, which resumes at the committed offsets.
    for (value, times) in [("1 coffee", 2), ("2 bagels", 2), ("3 tea", 1)] {
        assert_eq!(
            printed(value),
            times,
            "{value:?} should be printed {times} times:\n{}",
            output.describe()
        );
    }
    let lag_rows: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("billing") && line.contains("orders"))
        .collect();
    assert_eq!(
        lag_rows.len(),
        3,
        "group describe should list the 3 partitions of orders:\n{}",
        output.describe()
    );
    let lags: Vec<&str> = lag_rows
        .iter()
        .filter_map(|row| row.split_whitespace().nth(5))
        .collect();
    let mut sorted = lags.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["0", "0", "1"],
        "one partition should lag by carol's record: {lag_rows:?}"
    );
    assert!(
        stdout.lines().any(|line| line.starts_with("orders")),
        "topic list should name orders:\n{}",
        output.describe()
    );
    assert!(
        folder.path().join("data").is_dir(),
        "the broker should keep its data in ./data"
    );
}
