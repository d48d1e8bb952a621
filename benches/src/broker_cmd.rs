//! A broker started for the run (`--broker-cmd`), and what `/proc` says about a broker.
//!
//! The command runs under `sh -c "exec taskset -c CORES …"`, so the pid we hold is the
//! broker's own (both `sh` and `taskset` exec), which is what RSS and fd sampling need. It
//! is stopped with SIGTERM (then SIGKILL) when dropped.

use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a broker may take to accept connections; a debug build recovering data on a
/// loaded 2-core machine needs tens of seconds.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a SIGTERM'd broker may take to exit before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A broker process this bench started.
pub struct ManagedBroker {
    child: Option<Child>,
    bootstrap: String,
    data_dir: PathBuf,
    owned_dir: Option<PathBuf>,
    log_path: PathBuf,
}

impl ManagedBroker {
    /// Starts `command` pinned to `cores` and waits until it accepts connections.
    ///
    /// `{port}` in the command becomes a free port (and the bootstrap address); without it,
    /// `bootstrap` must say where the broker will listen. `{data_dir}` becomes `data_dir`,
    /// or a fresh temporary directory removed afterwards.
    pub fn start(
        command: &str,
        cores: &str,
        bootstrap: Option<&str>,
        data_dir: Option<&Path>,
    ) -> io::Result<ManagedBroker> {
        let (data_dir, owned_dir) = match data_dir {
            Some(dir) => (dir.to_path_buf(), None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "spate-bench-broker-{}-{}",
                    std::process::id(),
                    unique_suffix()
                ));
                (dir.clone(), Some(dir))
            }
        };
        std::fs::create_dir_all(&data_dir)?;
        let bootstrap = if command.contains("{port}") {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            format!("127.0.0.1:{port}")
        } else {
            bootstrap
                .ok_or_else(|| {
                    io::Error::other("--broker-cmd without {port} needs --bootstrap to find it")
                })?
                .to_string()
        };
        let port = bootstrap.rsplit(':').next().unwrap_or_default().to_string();
        let command = command
            .replace("{port}", &port)
            .replace("{data_dir}", &data_dir.to_string_lossy());
        let log_path = std::env::temp_dir().join(format!(
            "spate-bench-broker-{}-{}.log",
            std::process::id(),
            unique_suffix()
        ));
        let log = File::create(&log_path)?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec taskset -c {cores} {command}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut broker = ManagedBroker {
            child: Some(child),
            bootstrap,
            data_dir,
            owned_dir,
            log_path,
        };
        broker.wait_ready()?;
        Ok(broker)
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!(
                    "broker exited at startup ({status}); its output:\n{}",
                    self.log_tail()
                )));
            }
            if TcpStream::connect(&self.bootstrap).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!(
                    "broker did not listen on {} within {READY_TIMEOUT:?}; its output:\n{}",
                    self.bootstrap,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last 4 KiB of the broker's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on our own unreaped child, whose pid cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ManagedBroker {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.owned_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Resident set size of `pid`, from `/proc/<pid>/status` (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Open file descriptors of `pid`, counted in `/proc/<pid>/fd`.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_sampling_sees_this_process() {
        let pid = std::process::id();
        let rss = rss_bytes(pid).unwrap();
        assert!(rss > 1024 * 1024, "{rss}");
        let before = open_fds(pid).unwrap();
        let _file = File::open("/proc/self/status").unwrap();
        assert!(open_fds(pid).unwrap() > before);
    }
}
