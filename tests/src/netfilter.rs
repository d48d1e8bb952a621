//! Cutting the cluster link between two nodes on loopback with nftables, for tests of a
//! replication link that drops.
//!
//! A node's QUIC endpoint sends and receives every cluster packet on its one UDP socket (its
//! `--cluster-listen` port), so dropping UDP from port A to port B and back on the input
//! hook cuts exactly the link between those two nodes and nothing else (dropped on input, a
//! packet is lost as on a real network; on output the sender would get EPERM). The rules live
//! in a table of their own, named with this process's id and a counter, and the table is
//! deleted when the [`LinkCut`] is dropped (a test that fails still cleans up). Where `nft` is
//! missing or not permitted, [`LinkCut::new`] says why and the test skips.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT_TABLE: AtomicU32 = AtomicU32::new(0);

/// An nftables table that drops the UDP traffic between two ports while it exists.
#[derive(Debug)]
pub struct LinkCut {
    table: String,
}

impl LinkCut {
    /// Drops UDP between `port_a` and `port_b` (both directions). `Err` says why nftables
    /// cannot be used here (the caller skips the test with that reason).
    pub fn new(port_a: u16, port_b: u16) -> Result<LinkCut, String> {
        let table = format!(
            "spate_test_{}_{}",
            std::process::id(),
            NEXT_TABLE.fetch_add(1, Ordering::Relaxed)
        );
        let script = format!(
            "table inet {table} {{\n  chain out {{\n    type filter hook input priority 0; policy accept;\n    udp sport {port_a} udp dport {port_b} drop\n    udp sport {port_b} udp dport {port_a} drop\n  }}\n}}\n"
        );
        let output = Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                if let Some(stdin) = child.stdin.as_mut() {
                    stdin.write_all(script.as_bytes())?;
                }
                child.wait_with_output()
            })
            .map_err(|e| {
                format!("cannot run nft ({e}); install nftables (scripts/install-test-deps.sh)")
            })?;
        if !output.status.success() {
            return Err(format!(
                "nft refused the rules (not root, or no nf_tables in this kernel?): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(LinkCut { table })
    }

    /// Restores the link (also done on drop).
    pub fn heal(self) {}
}

impl Drop for LinkCut {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_cut_drops_udp_between_the_two_ports_until_healed() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        let cut = match LinkCut::new(pa, pb) {
            Ok(cut) => cut,
            Err(reason) => {
                eprintln!("skipping: {reason}");
                return;
            }
        };
        let mut buf = [0u8; 8];
        a.send_to(b"cut", b.local_addr().unwrap()).unwrap();
        assert!(
            b.recv_from(&mut buf).is_err(),
            "the packet should be dropped"
        );
        cut.heal();
        a.send_to(b"healed", b.local_addr().unwrap()).unwrap();
        assert!(b.recv_from(&mut buf).is_ok(), "the link should be back");
    }
}
