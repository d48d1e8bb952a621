//! Where things are: the workspace root, the `spate` binary, and the client tools.
//!
//! Paths are derived from this crate's manifest directory and from the running test executable,
//! never from the current directory, because nextest and cargo start tests in different ones.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::{HarnessError, run_with_timeout};

/// The workspace root: this crate lives in `<root>/tests`.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.to_path_buf())
}

/// The `spate` binary under test.
///
/// `SPATE_BIN` wins, so a release build or an installed binary can be tested as is. Otherwise
/// it is `target/<profile>/spate`, next to the test executable (two levels above
/// `target/<profile>/deps/<test>`), brought up to date first by [`build_spate_once`]: `cargo test`
/// and `cargo nextest run --workspace` build a package's plain binary only for that package's own
/// integration tests, so without this the tests would find no binary, or a stale one.
pub fn spate_binary() -> Result<PathBuf, HarnessError> {
    if let Some(path) = std::env::var_os("SPATE_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::BinaryNotFound(path))
        };
    }
    let exe = std::env::current_exe().map_err(|e| HarnessError::io("current_exe", e))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    build_spate_once(&profile_dir)?;
    let candidate = profile_dir.join("spate");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(HarnessError::BinaryNotFound(candidate))
    }
}

/// A first build compiles only the binary's own crate (its libraries are already built for the
/// tests); this leaves room for a loaded 2-core machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `cargo build -p spate` for the test executable's profile and target directory, once per
/// test run: once per process (`OnceLock`), and once across nextest's one-process-per-test runs
/// (a stamp file holding `NEXTEST_RUN_ID`, guarded by a file lock so only one process builds).
pub fn build_spate_once(profile_dir: &Path) -> Result<(), HarnessError> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_spate_for_run(profile_dir).map_err(|e| e.to_string()))
        .clone()
        .map_err(HarnessError::BuildFailed)
}

fn build_spate_for_run(profile_dir: &Path) -> Result<(), HarnessError> {
    let run_id = std::env::var("NEXTEST_RUN_ID")
        .unwrap_or_else(|_| format!("process-{}", std::process::id()));
    let lock = File::create(profile_dir.join(".spate-tests-build.lock"))
        .map_err(|e| HarnessError::io("create build lock", e))?;
    lock.lock()
        .map_err(|e| HarnessError::io("take build lock", e))?;
    let stamp_path = profile_dir.join(".spate-tests-build.stamp");
    if std::fs::read_to_string(&stamp_path).is_ok_and(|stamp| stamp == run_id) {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "--quiet", "-p", "spate", "--bin", "spate"]);
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    if let Some(target_dir) = profile_dir.parent() {
        command.env("CARGO_TARGET_DIR", target_dir);
    }
    let output = run_with_timeout(&mut command, None, BUILD_TIMEOUT)?;
    if !output.status.success() {
        return Err(HarnessError::BuildFailed(output.describe()));
    }
    std::fs::write(&stamp_path, &run_id).map_err(|e| HarnessError::io("write build stamp", e))?;
    Ok(())
}

/// The venv Python that `scripts/install-test-deps.sh` creates with the Kafka client packages.
pub fn venv_python() -> Result<PathBuf, HarnessError> {
    let path = workspace_root().join("target/pyenv/bin/python");
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::ToolMissing {
            tool: "venv python (target/pyenv) with confluent-kafka and kafka-python",
            path,
        })
    }
}

/// A Python script shipped in `tests/python/`.
pub fn python_script(name: &str) -> PathBuf {
    workspace_root().join("tests/python").join(name)
}

/// The `kcat` executable, looked up on `PATH` (Debian installs it as `/usr/bin/kcat`).
pub fn kcat() -> Result<PathBuf, HarnessError> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join("kcat"))
        .find(|candidate| candidate.is_file())
        .ok_or(HarnessError::ToolMissing {
            tool: "kcat",
            path: PathBuf::from("kcat on PATH"),
        })
}
