//! Shell blocks of the project's documents, run by tests exactly as written.
//!
//! A tested block is the ```` ```sh ```` fence that follows a marker line such as
//! `<!-- quick-start -->`; the tests hand it to bash unchanged (or with only free ports put
//! in place of the documented ones), so the documents cannot drift from what works.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::workspace::spate_binary;
use crate::{HarnessError, ProcessOutput, run_with_timeout};

/// Runs `block` with bash in `folder`, as a newcomer's shell would: the freshly built
/// `spate` first on `PATH`, stopping at the first failing command (`set -eu`), with `env`
/// added. Should the block fail before its own last line stops what it started in the
/// background, an EXIT trap stops it, so the output pipes close and the test reports
/// instead of hanging. The block runs in its own process group.
pub fn run_shell_block(
    block: &str,
    folder: &Path,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<ProcessOutput, HarnessError> {
    let binary = spate_binary()?;
    let bin_dir = binary.parent().unwrap_or(Path::new("."));
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("set -eu\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{block}");
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(&script)
        .current_dir(folder)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .process_group(0);
    for (key, value) in env {
        command.env(key, value);
    }
    run_with_timeout(&mut command, None, timeout)
}

/// The lines between the ```` ```sh ```` fence after `marker` and its closing fence,
/// verbatim, ending in a newline. Panics (failing the test) if the marker or the block is
/// missing, which is what a test of a document wants.
pub fn shell_block_after(document: &str, marker: &str) -> String {
    let after_marker = document
        .split_once(marker)
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("the document has no {marker} line"));
    let mut lines = after_marker
        .lines()
        .skip_while(|line| line.trim().is_empty());
    let fence = lines.next().unwrap_or_default();
    assert_eq!(
        fence.trim(),
        "```sh",
        "the line after {marker} must open a ```sh block"
    );
    let block: Vec<&str> = lines.take_while(|line| line.trim() != "```").collect();
    assert!(!block.is_empty(), "the block after {marker} is empty");
    block.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_after_the_marker_is_returned_verbatim() {
        let doc = "intro\n<!-- x -->\n\n```sh\necho  one\n  echo two\n```\nafter\n";
        assert_eq!(
            shell_block_after(doc, "<!-- x -->"),
            "echo  one\n  echo two\n"
        );
    }
}
