//! A private network for one nemesis run: a Linux bridge in the root namespace and one network
//! namespace per node, joined to it by a veth pair, each with its own address.
//!
//! Why namespaces: a fault must hit one node's traffic and nothing else. On loopback every node
//! shares one address and one nftables ruleset; in its own namespace a node has its own
//! address, its own ruleset (so a partition is a drop rule inside the cut nodes, as on separate
//! hosts) and its own routing, while the root namespace reaches every node through the
//! bridge's address, which is where the test's clients run.
//!
//! Everything created carries the run's prefix `spn<pid>x<run>` (interface names must fit in
//! 15 bytes) and lives in 10.X.Y.0/24, a subnet chosen from the process id and checked against
//! the routes already present. [`Network`] removes it all on drop, also when a test panics;
//! [`Network::sweep_stale`] removes what a run that was SIGKILLed left behind (its pid is gone).
//! What this does not do: touch any interface, route or rule outside the prefix, or forward
//! anything beyond the bridge (no NAT, no default route in the namespaces).

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::NodeId;

/// The prefix of every name a nemesis run creates.
pub const NAME_PREFIX: &str = "spn";

/// The last octet of the bridge's (the root namespace's) address; nodes get 1..=N.
pub const BRIDGE_HOST_OCTET: u8 = 254;

static NEXT_RUN: AtomicU32 = AtomicU32::new(0);

/// The bridge, namespaces and veth pairs of one run; removed on drop.
#[derive(Debug)]
pub struct Network {
    prefix: String,
    subnet: [u8; 3],
    node_ids: Vec<NodeId>,
}

impl Network {
    /// Creates the bridge and one namespace per node. `Err` says why namespaces cannot be made
    /// here; the caller skips with that reason. A partly built network is removed.
    pub fn create(node_ids: &[NodeId]) -> Result<Network, String> {
        Network::sweep_stale();
        let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{NAME_PREFIX}{}x{}", std::process::id(), radix36(run));
        let subnet = free_subnet()?;
        let network = Network {
            prefix,
            subnet,
            node_ids: node_ids.to_vec(),
        };
        network.build()?;
        Ok(network)
    }

    fn build(&self) -> Result<(), String> {
        let bridge = self.bridge();
        run_ip(&["link", "add", &bridge, "type", "bridge"])?;
        run_ip(&["link", "set", &bridge, "up"])?;
        run_ip(&[
            "addr",
            "add",
            &format!("{}/24", self.bridge_addr()),
            "dev",
            &bridge,
        ])?;
        for id in &self.node_ids {
            let ns = self.namespace(*id);
            let host_end = format!("{}h{id}", self.prefix);
            let node_end = format!("{}p{id}", self.prefix);
            run_ip(&["netns", "add", &ns])?;
            run_ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
            ])?;
            run_ip(&["link", "set", &node_end, "netns", &ns])?;
            run_ip(&["link", "set", &host_end, "master", &bridge, "up"])?;
            let addr = format!("{}/24", self.node_addr(*id));
            run_ip(&["-n", &ns, "addr", "add", &addr, "dev", &node_end])?;
            run_ip(&["-n", &ns, "link", "set", &node_end, "up"])?;
            run_ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The run's name prefix (`spn<pid>x<run>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Node `id`'s namespace name.
    pub fn namespace(&self, id: NodeId) -> String {
        format!("{}n{id}", self.prefix)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// Node `id`'s address on the bridge.
    pub fn node_addr(&self, id: NodeId) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, u8::try_from(id).unwrap_or(0))
    }

    /// The root namespace's address on the bridge: where the clients and the delay proxy are.
    pub fn bridge_addr(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, BRIDGE_HOST_OCTET)
    }

    /// The first three octets, `10.X.Y`, for the node wrapper's address rewriting.
    pub fn subnet_prefix(&self) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}")
    }

    /// The node ids the network was made for.
    pub fn node_ids(&self) -> &[NodeId] {
        &self.node_ids
    }

    /// Loads `script` (nft syntax) into node `id`'s namespace.
    pub fn nft(&self, id: NodeId, script: &str) -> Result<(), String> {
        let ns = self.namespace(id);
        run_with_stdin("ip", &["netns", "exec", &ns, "nft", "-f", "-"], script)
    }

    /// Deletes an nft table in node `id`'s namespace; a table that is not there is fine.
    pub fn nft_delete_table(&self, id: NodeId, table: &str) {
        let ns = self.namespace(id);
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &ns, "nft", "delete", "table", "inet", table,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The source name of the run's tmpfs mounts (the full-disk nemesis mounts one on a data
    /// directory); [`Network`] unmounts every mount with this source on drop.
    pub fn mount_source(&self) -> String {
        format!("{}disk", self.prefix)
    }

    /// Removes everything named with `spn<pid>` whose pid no longer runs: the leftovers of a
    /// run that was SIGKILLed before its drop guards ran.
    pub fn sweep_stale() {
        for (source, target) in mounts() {
            if stale(&source) {
                unmount(&target);
            }
        }
        for ns in list_names(&["netns", "list"], 0) {
            if stale(&ns) {
                let _ = run_ip(&["netns", "delete", &ns]);
            }
        }
        for link in list_names(&["-o", "link", "show"], 1) {
            let link = link.trim_end_matches(':');
            let link = link.split('@').next().unwrap_or(link);
            if stale(link) {
                let _ = run_ip(&["link", "delete", link]);
            }
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let source = self.mount_source();
        for (mounted, target) in mounts() {
            if mounted == source {
                unmount(&target);
            }
        }
        for id in &self.node_ids {
            let _ = run_ip(&["netns", "delete", &self.namespace(*id)]);
            let _ = run_ip(&["link", "delete", &format!("{}h{id}", self.prefix)]);
        }
        let _ = run_ip(&["link", "delete", &self.bridge()]);
    }
}

/// Every mount's (source, target), from /proc/mounts.
fn mounts() -> Vec<(String, String)> {
    let table = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some((fields.next()?.to_string(), fields.next()?.to_string()))
        })
        .filter(|(source, _)| source.starts_with(NAME_PREFIX))
        .collect()
}

/// Lazily unmounts `target` (a node may still hold files open there) and removes the then
/// empty mount point, which the data directory's own cleanup could not.
fn unmount(target: &str) {
    let _ = run("umount", &["-l", target]);
    let _ = std::fs::remove_dir(target);
}

/// Whether `name` is `spn<pid>…` of a process that no longer exists.
fn stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
        return false;
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u32>() {
        Ok(pid) => {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        Err(_) => false,
    }
}

/// The `field`th whitespace-separated word of each line of `ip ARGS`.
fn list_names(args: &[&str], field: usize) -> Vec<String> {
    let Ok(output) = Command::new("ip").args(args).stderr(Stdio::null()).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(field).map(str::to_string))
        .collect()
}

/// A 10.X.Y.0/24 no route of this machine uses: derived from the pid so that parallel test
/// processes differ, then stepped past any subnet that is taken.
fn free_subnet() -> Result<[u8; 3], String> {
    let routes = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .map_err(|e| {
            format!("cannot run ip ({e}); install iproute2 (scripts/install-test-deps.sh)")
        })?;
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    for step in 0..64u32 {
        let value = seed.wrapping_add(step.wrapping_mul(7919));
        // 10.128.0.0 – 10.191.255.0: far from the 10.0/16 that container tools favour.
        let second = 128 + u8::try_from((value >> 8) % 64).unwrap_or(0);
        let third = u8::try_from(value % 256).unwrap_or(0);
        let probe = format!("10.{second}.{third}.");
        if !routes.contains(&probe) {
            return Ok([10, second, third]);
        }
    }
    Err("no free 10.x.y.0/24 subnet found".into())
}

fn run_ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run {program} ({e}); install it (scripts/install-test-deps.sh)")
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed (not root, or no namespaces/veth/bridge here?): {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn run_with_stdin(program: &str, args: &[&str], input: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program} ({e})"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("write to {program}: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("wait for {program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` refused:\n{input}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn radix36(mut value: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}
