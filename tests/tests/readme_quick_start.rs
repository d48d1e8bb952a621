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
use std::time::Duration;

use spate_tests::docs::{run_shell_block, shell_block_after};
use spate_tests::workspace::workspace_root;

/// The marker line in README.md that opens the tested block.
const MARKER: &str = "<!-- quick-start -->";

/// Generous: the block starts a broker, creates a topic, produces, consumes twice (once in a
/// group, which waits out the first rebalance) and describes the group, on a loaded machine.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

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
    let block = shell_block_after(&readme, MARKER);
    let folder = tempfile::tempdir().unwrap();
    let kafka = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let env = [
        ("SPATE_LISTEN", kafka.as_str()),
        ("SPATE_ADMIN_LISTEN", admin.as_str()),
        ("SPATE_BOOTSTRAP", kafka.as_str()),
    ];
    let output = run_shell_block(&block, folder.path(), &env, SCRIPT_TIMEOUT).unwrap();
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
