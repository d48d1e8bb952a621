//! `docs/cluster.md`'s "Start a 3-node cluster by hand" runs as written: the shell block
//! after the `<!-- cluster-by-hand -->` marker is handed to bash with the freshly built
//! `spate` first on `PATH`, in an empty folder. The only change to the text is the ports:
//! every documented port (19192 … 19394) is swapped for a free one, so the test cannot
//! collide with anything on this machine; `SPATE_TIMEOUT_MS` gives the CLI time for the
//! nodes to form the cluster on a loaded machine.
//!
//! The output is checked: the topic is created with 6 partitions led 2 per node, the status
//! table shows 3 live brokers and an active controller, and every node stops cleanly.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test by panicking"
)]

use std::collections::BTreeMap;
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use spate_tests::docs::{run_shell_block, shell_block_after};
use spate_tests::workspace::workspace_root;

const MARKER: &str = "<!-- cluster-by-hand -->";

/// Generous: three nodes start and elect a controller, a topic is created and described,
/// and every node does a controlled shutdown, on a loaded 2-core machine.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_three_node_cluster_of_the_docs_starts_serves_and_stops_as_written() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/cluster.md")).unwrap();
    let mut block = shell_block_after(&doc, MARKER);
    // Node n's documented ports: 19n92 Kafka, 19n93 cluster (UDP), 19n94 admin.
    let mut ports = BTreeMap::new();
    for node in 1..=3 {
        for (suffix, udp) in [("92", false), ("93", true), ("94", false)] {
            let documented = format!("19{node}{suffix}");
            let free = if udp {
                free_udp_port()
            } else {
                free_tcp_port()
            };
            assert!(
                block.contains(&documented),
                "the block should use port {documented}"
            );
            block = block.replace(&documented, &free.to_string());
            ports.insert(documented, free);
        }
    }
    let folder = tempfile::tempdir().unwrap();
    let env = [("SPATE_TIMEOUT_MS", "60000")];
    let output = run_shell_block(&block, folder.path(), &env, SCRIPT_TIMEOUT).unwrap();
    assert!(
        output.status.success(),
        "the documented cluster failed:\n{block}\n{}",
        output.describe()
    );
    let stdout = output.stdout_text();
    assert!(
        stdout.contains("created topic orders with 6 partitions"),
        "{}",
        output.describe()
    );
    // `topic describe`: one row per partition, LEADER in the second column.
    let mut leaders: BTreeMap<&str, usize> = BTreeMap::new();
    for row in stdout.lines() {
        let columns: Vec<&str> = row.split_whitespace().collect();
        if columns.len() >= 4 && columns[0].parse::<u32>().is_ok() && columns[2].contains(',') {
            *leaders.entry(columns[1]).or_default() += 1;
        }
    }
    assert_eq!(
        leaders,
        BTreeMap::from([("1", 2), ("2", 2), ("3", 2)]),
        "leaders should be spread 2 per node:\n{}",
        output.describe()
    );
    let live_rows = stdout
        .lines()
        .filter(|line| line.contains("broker+voter") && line.contains(" live "))
        .count();
    assert_eq!(
        live_rows,
        3,
        "status should show 3 live brokers:\n{}",
        output.describe()
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("controller ") && !line.contains("none")),
        "status should name the active controller:\n{}",
        output.describe()
    );
    for node in 1..=3 {
        let stamp =
            std::fs::read_to_string(folder.path().join(format!("data-{node}/meta.properties")))
                .unwrap();
        assert!(stamp.contains(&format!("node.id={node}")), "{stamp}");
    }
}
