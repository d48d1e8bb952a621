//! `spate cluster dev` and `spate cluster status`, run as a developer runs them: a real
//! three-node cluster of `spate serve` processes, looked at through a node's admin port, then
//! stopped with Ctrl-C (SIGINT) and started again from the same directory.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Three nodes elect a controller and register; this 2-core machine runs tests in parallel.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The dev command gives nodes 30 s before SIGKILL; it must be done by then, plus slack.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
/// How long node 1 may take to see the other brokers' registrations after they printed
/// their lines (its metadata log replays a little behind the controller's).
const STATUS_SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

fn spate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spate"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One `spate cluster dev` process. Dropping it (a failed test) stops it with SIGINT, as a
/// developer would, and kills it if it does not stop: its nodes then get SIGTERM from the
/// kernel, since the dev command asks for that when it starts them.
struct Dev {
    child: Child,
    lines: Receiver<String>,
    stderr_path: std::path::PathBuf,
}

/// What the dev command printed for one node.
#[derive(Debug)]
struct NodeLine {
    id: u32,
    pid: u32,
    kafka: String,
    admin: String,
}

impl Dev {
    fn start(data_dir: &Path, stderr_path: &Path) -> Dev {
        let mut child = spate()
            .args(["cluster", "dev", "--nodes", "3", "--data-dir"])
            .arg(data_dir)
            .args(["--ready-timeout-ms", "85000"])
            .stdout(Stdio::piped())
            .stderr(File::create(stderr_path).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Dev {
            child,
            lines,
            stderr_path: stderr_path.to_owned(),
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The node lines and the bootstrap list, once printed.
    fn wait_ready(&mut self) -> (Vec<NodeLine>, String) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut nodes = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!(
                    "no `bootstrap:` line within {READY_TIMEOUT:?} ({e}); stderr:\n{}",
                    self.stderr()
                )
            });
            if let Some(bootstrap) = line.strip_prefix("bootstrap: ") {
                return (nodes, bootstrap.to_owned());
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [
                    "node",
                    id,
                    "pid",
                    pid,
                    "kafka",
                    kafka,
                    "admin",
                    admin,
                    "cluster",
                    _,
                ] => {
                    nodes.push(NodeLine {
                        id: id.parse().unwrap(),
                        pid: pid.parse().unwrap(),
                        kafka: (*kafka).to_owned(),
                        admin: (*admin).to_owned(),
                    });
                }
                _ => panic!("unexpected line {line:?}"),
            }
        }
    }

    /// Sends SIGINT and returns how it exited, within [`STOP_TIMEOUT`].
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {STOP_TIMEOUT:?} after SIGINT; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn status(admin: &str, output: &str) -> Output {
    spate()
        .args(["cluster", "status", "--admin", admin, "--output", output])
        .output()
        .unwrap()
}

fn process_exists(pid: u32) -> bool {
    let probe = Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
    probe.unwrap().success()
}

/// Polls `status --output json` on `admin` until it shows three live brokers and a leader.
fn wait_for_three_live_brokers(admin: &str) -> String {
    let deadline = Instant::now() + STATUS_SETTLE_TIMEOUT;
    loop {
        let output = status(admin, "json");
        let json = text(&output.stdout);
        let live = json.matches("\"fenced\": false").count() == 3
            && json.matches("\"controlled_shutdown\": false").count() == 3;
        let leader = json
            .split("\"leader_id\": ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
        if output.status.success() && live && leader {
            return json;
        }
        assert!(
            Instant::now() < deadline,
            "no 3 live brokers and a leader at {admin} after {STATUS_SETTLE_TIMEOUT:?}; exit {:?}\n{json}\n{}",
            output.status,
            text(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn dev_runs_three_nodes_that_status_shows_and_ctrl_c_stops_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("cluster");
    let mut dev = Dev::start(&data_dir, &dir.path().join("dev-1.stderr"));
    let (nodes, bootstrap) = dev.wait_ready();
    assert_eq!(nodes.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 2, 3]);
    let kafkas: Vec<&str> = nodes.iter().map(|n| n.kafka.as_str()).collect();
    assert_eq!(bootstrap, kafkas.join(","));

    let json = wait_for_three_live_brokers(&nodes[0].admin);
    assert!(json.contains("\"node_id\": 1"), "{json}");

    let table = status(&nodes[0].admin, "table");
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    assert!(table.contains("\ncontroller "), "{table}");
    assert!(table.contains("(as seen by node 1)"), "{table}");
    for node in &nodes {
        let row = table.lines().find(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|first| first.trim_end_matches('*') == node.id.to_string())
        });
        let row = row.unwrap_or_else(|| panic!("no row for node {}:\n{table}", node.id));
        assert!(
            row.contains("broker+voter") && row.contains(" live ") && row.contains(&node.kafka),
            "{row}"
        );
    }
    assert!(table.contains("* active controller"), "{table}");

    // A second run on the same directory is refused while this one runs.
    let second = spate()
        .args(["cluster", "dev", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains("another `spate cluster dev` is running"),
        "{}",
        text(&second.stderr)
    );

    let exit = dev.interrupt();
    assert!(exit.success(), "exit {exit:?}; stderr:\n{}", dev.stderr());
    for node in &nodes {
        assert!(
            !process_exists(node.pid),
            "node {} (pid {}) outlived `spate cluster dev`",
            node.id,
            node.pid
        );
    }

    // The same directory brings the same cluster back, on the same ports.
    let mut again = Dev::start(&data_dir, &dir.path().join("dev-2.stderr"));
    let (_, bootstrap_again) = again.wait_ready();
    assert_eq!(bootstrap_again, bootstrap);
    let exit = again.interrupt();
    assert!(exit.success(), "exit {exit:?}; stderr:\n{}", again.stderr());
}

#[test]
fn dev_refuses_zero_or_more_than_nine_nodes_as_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for nodes in ["0", "10"] {
        let output = spate()
            .args(["cluster", "dev", "--nodes", nodes, "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "--nodes {nodes}: {}",
            text(&output.stderr)
        );
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing is made on a usage error"
    );
}

#[test]
fn status_of_an_address_nobody_listens_on_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("127.0.0.1:{port}");
    let output = status(&admin, "table");
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("spate cluster status: "), "{stderr}");
    assert!(
        stderr.contains(&admin) && stderr.contains("--admin"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
