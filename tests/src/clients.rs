//! Launching the real client tools against a broker: kcat and the venv's Python.
//!
//! Both are found through [`crate::workspace`]; a missing tool is an error that says to run
//! `scripts/install-test-deps.sh`, never a silent skip.

use std::process::Command;
use std::time::Duration;

use crate::workspace::{kcat, python_script, venv_python};
use crate::{HarnessError, ProcessOutput, run_with_timeout};

/// A `kcat -b <bootstrap>` command, ready for more args.
pub fn kcat_command(bootstrap: &str) -> Result<Command, HarnessError> {
    let mut command = Command::new(kcat()?);
    command.args(["-b", bootstrap]);
    use_system_libraries(&mut command);
    Ok(command)
}

/// Cargo puts build-output directories on `LD_LIBRARY_PATH` for tests, and `rdkafka-sys` leaves
/// a librdkafka built without zstd there. kcat (and the Python wheel) would load that one
/// instead of their own and refuse `-z zstd`, so client tools run with the variable removed.
fn use_system_libraries(command: &mut Command) {
    command.env_remove("LD_LIBRARY_PATH");
}

/// Runs kcat with `args` (after `-b`), feeding `stdin`, within `timeout`.
pub fn run_kcat(
    bootstrap: &str,
    args: &[&str],
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<ProcessOutput, HarnessError> {
    let mut command = kcat_command(bootstrap)?;
    command.args(args);
    run_with_timeout(&mut command, stdin, timeout)
}

/// Runs `tests/python/<script>` with the venv's Python: `python <script> <bootstrap> <args…>`.
pub fn run_python_script(
    script: &str,
    bootstrap: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<ProcessOutput, HarnessError> {
    let python = venv_python()?;
    let mut check = Command::new(&python);
    use_system_libraries(&mut check);
    check.args(["-c", "import confluent_kafka, kafka"]);
    let check = run_with_timeout(&mut check, None, timeout)?;
    if !check.status.success() {
        return Err(HarnessError::ToolMissing {
            tool: "confluent-kafka and kafka-python in the venv",
            path: python,
        });
    }
    let mut command = Command::new(&python);
    use_system_libraries(&mut command);
    command
        .arg("-u")
        .arg(python_script(script))
        .arg(bootstrap)
        .args(args);
    run_with_timeout(&mut command, None, timeout)
}
