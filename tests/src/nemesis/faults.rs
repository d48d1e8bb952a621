//! The nemeses: each picks its targets from the cluster as it is at that moment (the leader of
//! partition 0, the active controller…), injects its fault, and returns an [`ActiveFault`]
//! that knows how to heal exactly that.
//!
//! Network faults are nft rules inside the affected nodes' namespaces, in a table of their own
//! (`spn_fault`), matching the peers' addresses: the clients (from the bridge address) keep
//! reaching every node, as in Jepsen, so a client may well be talking to an isolated leader.
//! Rules drop on the input hook, so a packet is lost as on a wire; the sender gets no error.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use super::nodes::NemesisCluster;
use crate::{HarnessError, NodeId};

/// The nft table every network fault uses in a namespace.
const FAULT_TABLE: &str = "spn_fault";
/// The share of cluster packets the lossy-link nemesis drops, in percent.
const LOSS_PERCENT: u32 = 20;
/// The slow-link nemesis's one-way delay and jitter (so a round trip gains ~2× this).
const SLOW_DELAY_MS: u64 = 150;
const SLOW_JITTER_MS: u64 = 50;
/// The file the full-disk nemesis grows until the disk is full.
const FILLER_NAME: &str = "spn-disk-filler";
const FILLER_CHUNK_BYTES: usize = 1024 * 1024;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Nemesis {
    /// kill -9 of a node chosen by the seed; restarted at the heal.
    KillNode,
    /// kill -9 of the leader of partition 0.
    KillLeader,
    /// kill -9 of the active controller (the metadata quorum's leader).
    KillController,
    /// SIGSTOP of the leader of partition 0; SIGCONT at the heal.
    Pause,
    /// A node chosen by the seed cut from the other two (with 3 nodes: minority | majority).
    PartitionMajority,
    /// The leader of partition 0 cut from the other nodes; clients still reach it.
    PartitionLeader,
    /// Two nodes cut from each other, the third (the bridge) sees both.
    PartitionBridge,
    /// The leader of partition 0 receives nothing from its peers, but they still hear it.
    OneWayLoss,
    /// Every cluster packet between nodes is dropped with probability [`LOSS_PERCENT`].
    Lossy,
    /// Every cluster packet is delayed by [`SLOW_DELAY_MS`] ± jitter (needs the proxy).
    Slow,
    /// The small disk of one node filled up; freed at the heal (needs the small disk).
    DiskFull,
}

impl Nemesis {
    /// Every nemesis, in the order of the matrix.
    pub const ALL: [Nemesis; 11] = [
        Nemesis::KillNode,
        Nemesis::KillLeader,
        Nemesis::KillController,
        Nemesis::Pause,
        Nemesis::PartitionMajority,
        Nemesis::PartitionLeader,
        Nemesis::PartitionBridge,
        Nemesis::OneWayLoss,
        Nemesis::Lossy,
        Nemesis::Slow,
        Nemesis::DiskFull,
    ];

    /// Whether a seeded mix may draw it: all but [`Nemesis::Slow`], whose proxy hides the
    /// peers' addresses from the partition rules.
    pub fn mixable(self) -> bool {
        self != Nemesis::Slow
    }

    /// The name the script and the table use.
    pub fn name(self) -> &'static str {
        match self {
            Nemesis::KillNode => "kill-node",
            Nemesis::KillLeader => "kill-leader",
            Nemesis::KillController => "kill-controller",
            Nemesis::Pause => "pause",
            Nemesis::PartitionMajority => "partition-majority",
            Nemesis::PartitionLeader => "partition-leader",
            Nemesis::PartitionBridge => "partition-bridge",
            Nemesis::OneWayLoss => "one-way-loss",
            Nemesis::Lossy => "lossy",
            Nemesis::Slow => "slow",
            Nemesis::DiskFull => "disk-full",
        }
    }
}

impl fmt::Display for Nemesis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Nemesis {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Nemesis::ALL
            .into_iter()
            .find(|n| n.name() == name)
            .ok_or_else(|| format!("unknown nemesis {name:?}"))
    }
}

/// A fault in place, and what undoes it.
#[derive(Debug)]
pub enum ActiveFault {
    Killed(NodeId),
    Paused(NodeId),
    /// nft tables to delete, by node.
    Rules(Vec<NodeId>),
    Delayed,
    DiskFilled(PathBuf),
}

impl ActiveFault {
    /// Undoes the fault: restarts a killed node (waiting until it serves again), resumes a
    /// paused one, deletes rules, removes the delay or the filler file.
    pub fn heal(self, nodes: &mut NemesisCluster) -> Result<(), HarnessError> {
        match self {
            ActiveFault::Killed(id) => nodes.cluster.restart(id),
            ActiveFault::Paused(id) => nodes.cluster.resume(id),
            ActiveFault::Rules(ids) => {
                for id in ids {
                    nodes.network.nft_delete_table(id, FAULT_TABLE);
                }
                Ok(())
            }
            ActiveFault::Delayed => {
                if let Some(proxy) = nodes.proxy() {
                    proxy.set_delay(0, 0);
                }
                Ok(())
            }
            ActiveFault::DiskFilled(path) => {
                std::fs::remove_file(&path)
                    .map_err(|e| HarnessError::io(format!("remove {}", path.display()), e))?;
                // A node whose metadata log could not be written exits (as Kafka halts) for
                // its supervisor to restart it once there is room again: be that supervisor.
                for id in nodes.cluster.node_ids() {
                    if !nodes.cluster.node_mut(id).is_running() {
                        nodes.cluster.restart(id)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Injects `nemesis` into `nodes`, picking targets with `pick` (a seeded choice among node ids)
/// and the partitions of `topic`. Returns the fault and a description of what it hit.
pub fn inject(
    nemesis: Nemesis,
    nodes: &mut NemesisCluster,
    topic: &str,
    pick: &mut impl FnMut(&[NodeId]) -> NodeId,
) -> Result<(ActiveFault, String), HarnessError> {
    let all = nodes.cluster.node_ids();
    match nemesis {
        Nemesis::KillNode => {
            let id = pick(&all);
            nodes.cluster.kill9(id)?;
            Ok((ActiveFault::Killed(id), format!("killed node {id}")))
        }
        Nemesis::KillLeader => {
            let id = leader_of(nodes, topic, 0)?;
            nodes.cluster.kill9(id)?;
            Ok((
                ActiveFault::Killed(id),
                format!("killed node {id}, leader of {topic}-0"),
            ))
        }
        Nemesis::KillController => {
            let id = nodes.cluster.controller_leader()?;
            nodes.cluster.kill9(id)?;
            Ok((
                ActiveFault::Killed(id),
                format!("killed node {id}, the active controller"),
            ))
        }
        Nemesis::Pause => {
            let id = leader_of(nodes, topic, 0)?;
            nodes.cluster.pause(id)?;
            Ok((
                ActiveFault::Paused(id),
                format!("paused node {id}, leader of {topic}-0"),
            ))
        }
        Nemesis::PartitionMajority => {
            let id = pick(&all);
            let rest = others(&all, &[id]);
            isolate(nodes, &[id], &rest)?;
            Ok((
                ActiveFault::Rules(all),
                format!("cut node {id} from {rest:?}"),
            ))
        }
        Nemesis::PartitionLeader => {
            let id = leader_of(nodes, topic, 0)?;
            isolate(nodes, &[id], &others(&all, &[id]))?;
            Ok((
                ActiveFault::Rules(all),
                format!("cut node {id} (leader of {topic}-0) from the others"),
            ))
        }
        Nemesis::PartitionBridge => {
            let bridge = pick(&all);
            let sides = others(&all, &[bridge]);
            let (left, right) = sides.split_at(sides.len() / 2);
            isolate(nodes, left, right)?;
            Ok((
                ActiveFault::Rules(all),
                format!("cut {left:?} from {right:?}; node {bridge} sees both"),
            ))
        }
        Nemesis::OneWayLoss => {
            let id = leader_of(nodes, topic, 0)?;
            let peers = others(&all, &[id]);
            drop_from(nodes, id, &peers, None)?;
            Ok((
                ActiveFault::Rules(vec![id]),
                format!("node {id} (leader of {topic}-0) hears nothing from {peers:?}"),
            ))
        }
        Nemesis::Lossy => {
            for id in &all {
                drop_from(nodes, *id, &others(&all, &[*id]), Some(LOSS_PERCENT))?;
            }
            Ok((
                ActiveFault::Rules(all),
                format!("{LOSS_PERCENT}% loss on every link"),
            ))
        }
        Nemesis::Slow => {
            let proxy = nodes
                .proxy()
                .ok_or_else(|| setup_missing("the slow-link nemesis needs a proxied cluster"))?;
            proxy.set_delay(SLOW_DELAY_MS, SLOW_JITTER_MS);
            Ok((
                ActiveFault::Delayed,
                format!("{SLOW_DELAY_MS} ms + up to {SLOW_JITTER_MS} ms jitter on every link"),
            ))
        }
        Nemesis::DiskFull => {
            let id = nodes.small_disk_node().ok_or_else(|| {
                setup_missing("the full-disk nemesis needs a node with a small disk")
            })?;
            let path = nodes.data_dir(id).join(FILLER_NAME);
            let written_mb = fill(&path)?;
            Ok((
                ActiveFault::DiskFilled(path),
                format!("filled node {id}'s disk ({written_mb} MB filler)"),
            ))
        }
    }
}

/// The leader of `topic`-`partition` as the first answering node sees it.
pub fn leader_of(
    nodes: &NemesisCluster,
    topic: &str,
    partition: i32,
) -> Result<NodeId, HarnessError> {
    let mut last = String::from("no node answered");
    for id in nodes.cluster.running_ids() {
        match nodes.cluster.metadata(id) {
            Ok(metadata) => {
                let leader = metadata
                    .topic(topic)
                    .and_then(|t| t.partition(partition))
                    .map(|p| p.leader);
                match leader {
                    Some(leader) if leader >= 0 => return Ok(leader),
                    other => last = format!("node {id} names leader {other:?}"),
                }
            }
            Err(error) => last = format!("node {id}: {error}"),
        }
    }
    Err(HarnessError::MalformedResponse(format!(
        "no leader of {topic}-{partition}: {last}"
    )))
}

fn others(all: &[NodeId], excluded: &[NodeId]) -> Vec<NodeId> {
    all.iter()
        .copied()
        .filter(|id| !excluded.contains(id))
        .collect()
}

/// Cuts every node of `left` from every node of `right`, both ways.
fn isolate(nodes: &NemesisCluster, left: &[NodeId], right: &[NodeId]) -> Result<(), HarnessError> {
    for id in left {
        drop_from(nodes, *id, right, None)?;
    }
    for id in right {
        drop_from(nodes, *id, left, None)?;
    }
    Ok(())
}

/// In node `id`'s namespace, drops what arrives from `peers` (all of it, or `percent`%).
fn drop_from(
    nodes: &NemesisCluster,
    id: NodeId,
    peers: &[NodeId],
    percent: Option<u32>,
) -> Result<(), HarnessError> {
    let addresses: Vec<String> = peers
        .iter()
        .map(|p| nodes.network.node_addr(*p).to_string())
        .collect();
    let chance = percent.map_or(String::new(), |p| format!("numgen random mod 100 < {p} "));
    let script = format!(
        "table inet {FAULT_TABLE} {{\n  chain input {{\n    type filter hook input priority -10; policy accept;\n    ip saddr {{ {} }} {chance}drop\n  }}\n}}\n",
        addresses.join(", ")
    );
    nodes
        .network
        .nft(id, &script)
        .map_err(|e| HarnessError::io("nft in a namespace", std::io::Error::other(e)))
}

/// Writes `path` until the file system is full; returns the MB written.
fn fill(path: &PathBuf) -> Result<usize, HarnessError> {
    let mut file = std::fs::File::create(path)
        .map_err(|e| HarnessError::io(format!("create {}", path.display()), e))?;
    let chunk = vec![0x5a_u8; FILLER_CHUNK_BYTES];
    let mut written = 0;
    while file.write_all(&chunk).is_ok() {
        written += 1;
    }
    let _ = file.sync_all();
    Ok(written)
}

fn setup_missing(what: &str) -> HarnessError {
    HarnessError::io(
        what.to_string(),
        std::io::Error::new(std::io::ErrorKind::Unsupported, "cluster set up without it"),
    )
}
