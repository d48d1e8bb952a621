//! A cluster lets in only its own: nodes and data directories that belong elsewhere are
//! refused, loudly.
//!
//! (a) Nodes with a certificate from another CA (made with `spate cluster ca` in another
//! directory), pointed at the cluster's voters as brokers, never become ready (no listening line
//! within 10 s, though they keep running), never appear among the brokers of any node's
//! `/cluster`, and the cluster's logs record the refused connections. One trusts only its own CA
//! (its side of the handshake fails first); the other trusts the cluster's CA as well, so the
//! cluster's own check of its certificate is what keeps it out.
//! (b) A data directory stamped for one cluster or node is refused to another: a node started
//! with `--cluster-id alpha`, stopped, then started on the same directory with `--cluster-id
//! beta` exits non-zero at once with a message naming both ids; so does `--node-id 2` on a
//! directory stamped by node 1.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use spate_tests::cluster::{broker_in, free_udp_ports, make_ca, make_node_cert};
use spate_tests::workspace::spate_binary;
use spate_tests::{
    Broker, BrokerOptions, Cluster, ClusterOptions, HarnessError, ProcessOutput, run_with_timeout,
};

/// How long the stranger gets: several election timeouts and registration retries.
const STRANGER_WAIT: Duration = Duration::from_secs(10);
/// A refused data directory is detected before anything else starts.
const REFUSAL_MAX: Duration = Duration::from_secs(10);
/// A stranger that trusts only its own CA: the handshake fails on its side first.
const FOREIGN_ID: i32 = 4;
/// A stranger that trusts the cluster's CA too: only the cluster's check of its certificate
/// keeps it out.
const TRUSTING_ID: i32 = 5;

#[test]
fn nodes_with_a_foreign_ca_certificate_are_refused_by_the_cluster() {
    let cluster = Cluster::start(ClusterOptions::default()).unwrap();
    let foreign = tempfile::Builder::new()
        .prefix("spate-foreign-ca-")
        .tempdir()
        .unwrap();
    let ca_dir = foreign.path().join("ca");
    make_ca(&ca_dir).unwrap();
    for id in [FOREIGN_ID, TRUSTING_ID] {
        make_node_cert(&ca_dir, id, foreign.path()).unwrap();
    }
    // Trusts both CAs, so it accepts the cluster's certificates and the refusal must come from
    // the cluster's side.
    let both_cas = foreign.path().join("both-cas.pem");
    let bundle = [cluster.ca_dir().join("ca.pem"), ca_dir.join("ca.pem")]
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect::<String>();
    std::fs::write(&both_cas, bundle).unwrap();

    let ports = free_udp_ports(2).unwrap();
    let mut strangers = [
        (FOREIGN_ID, ports[0], ca_dir.join("ca.pem")),
        (TRUSTING_ID, ports[1], both_cas),
    ]
    .map(|(id, port, ca)| {
        let stranger = spawn_stranger(&cluster, id, port, &ca, foreign.path());
        (id, port, stranger)
    });

    let deadline = Instant::now() + STRANGER_WAIT;
    for (id, _, stranger) in &mut strangers {
        let left = deadline.saturating_duration_since(Instant::now());
        match stranger.await_ready_within(left.max(Duration::from_secs(1))) {
            Err(HarnessError::BrokerNotReady {
                reason,
                stderr_tail,
            }) => assert!(
                reason.contains("no listening line within"),
                "stranger {id} must keep trying, not fail to start: {reason}\n{stderr_tail}"
            ),
            Ok(()) => panic!(
                "node {id}, with a foreign CA's certificate, joined the cluster\n{}",
                cluster.logs()
            ),
            Err(other) => panic!("{other}"),
        }
    }

    for id in cluster.node_ids() {
        let status = cluster.status(id).unwrap();
        for (stranger, _, _) in &strangers {
            assert!(
                broker_in(&status, *stranger).is_none(),
                "node {id} lists stranger {stranger}: {status}"
            );
        }
    }
    let log = cluster
        .node_ids()
        .into_iter()
        .map(|id| cluster.node(id).log_tail(usize::MAX))
        .collect::<String>();
    for (id, port, _) in &strangers {
        let from = format!("127.0.0.1:{port}");
        let refusals: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("refused") && line.contains(&from))
            .collect();
        assert!(
            !refusals.is_empty(),
            "no node logged refusing stranger {id} ({from})\n{}",
            cluster.logs()
        );
        eprintln!(
            "stranger {id}: {} refusals logged, the first: {}",
            refusals.len(),
            refusals[0]
        );
    }
    let trusting_from = format!("refused cluster connection from 127.0.0.1:{}", ports[1]);
    assert!(
        log.contains(&trusting_from),
        "the cluster itself must refuse the certificate of the stranger that trusts it \
         ({trusting_from:?})\n{}",
        cluster.logs()
    );
}

#[test]
fn data_dir_of_another_cluster_is_refused_naming_both_ids() {
    let mut node = Broker::start_with(BrokerOptions {
        extra_args: vec!["--cluster-id".into(), "alpha".into()],
        ..BrokerOptions::default()
    })
    .unwrap();
    let stopped = node.terminate().unwrap();
    assert!(stopped.is_some_and(|s| s.success()), "{stopped:?}");

    let refused = serve_on(node.data_dir(), &["--cluster-id", "beta"]);
    assert!(!refused.status.success(), "{}", refused.describe());
    assert!(refused.elapsed < REFUSAL_MAX, "{}", refused.describe());
    let stderr = refused.stderr_text();
    assert!(
        stderr.contains("alpha") && stderr.contains("beta"),
        "the refusal names both cluster ids: {stderr}"
    );

    let accepted = Broker::start_with(BrokerOptions {
        extra_args: vec!["--cluster-id".into(), "alpha".into()],
        ..BrokerOptions::default()
    });
    assert!(
        accepted.is_ok(),
        "a fresh dir takes any id: {:?}",
        accepted.err()
    );
}

#[test]
fn data_dir_of_another_node_is_refused_naming_both_ids() {
    let mut node = Broker::start_with(BrokerOptions {
        extra_args: vec!["--node-id".into(), "1".into()],
        ..BrokerOptions::default()
    })
    .unwrap();
    let stopped = node.terminate().unwrap();
    assert!(stopped.is_some_and(|s| s.success()), "{stopped:?}");

    let refused = serve_on(node.data_dir(), &["--node-id", "2"]);
    assert!(!refused.status.success(), "{}", refused.describe());
    assert!(refused.elapsed < REFUSAL_MAX, "{}", refused.describe());
    let stderr = refused.stderr_text();
    assert!(
        stderr.contains("node 1") && stderr.contains('2'),
        "the refusal names both node ids: {stderr}"
    );

    node.restart().unwrap();
    assert_eq!(node.admin_health_status().unwrap(), 200);
}

/// Spawns node `id` as a broker with the cluster's voters, its own certificate from
/// `cert_dir`, and `ca` as its trust.
fn spawn_stranger(cluster: &Cluster, id: i32, port: u16, ca: &Path, cert_dir: &Path) -> Broker {
    Broker::spawn_with(BrokerOptions {
        cores: Some(1),
        extra_args: [
            "--node-id",
            &id.to_string(),
            "--roles",
            "broker",
            "--cluster-listen",
            &format!("127.0.0.1:{port}"),
            "--controller-voters",
            cluster.voters(),
            "--cluster-ca",
            &path_text(ca),
            "--cluster-cert",
            &path_text(&cert_dir.join(format!("node-{id}.pem"))),
            "--cluster-key",
            &path_text(&cert_dir.join(format!("node-{id}.key"))),
        ]
        .map(String::from)
        .to_vec(),
        ..BrokerOptions::default()
    })
    .unwrap()
}

/// `spate serve` on `data_dir` with `args`, run to completion (a refused start exits at once).
fn serve_on(data_dir: &Path, args: &[&str]) -> ProcessOutput {
    let mut command = Command::new(spate_binary().unwrap());
    command
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--cores", "1"])
        .args(args);
    run_with_timeout(&mut command, None, Duration::from_secs(60)).unwrap()
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}
