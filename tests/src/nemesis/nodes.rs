//! A [`Cluster`] whose nodes each run in their own network namespace.
//!
//! The nodes are ordinary [`Cluster`] nodes (certificates, kill -9, restart on the same ports,
//! pause, logs all come from there); what differs is the binary they run: a small generated
//! shell wrapper that `exec`s `ip netns exec <ns> spate …` (so the node's pid is the wrapper's,
//! and signals reach spate itself) after rewriting the loopback addresses the cluster harness
//! picks into the node's namespace address: `--listen 127.0.0.1:0` becomes `10.X.Y.<id>:0`, and
//! each voter `K@127.0.0.1:P` becomes `K@10.X.Y.K:P` (every namespace has its own ports, so the
//! ports stay). With the delay proxy the voters and the advertised cluster address name the
//! proxy's fronts instead. For the full-disk nemesis the wrapper mounts a small tmpfs on one
//! node's data directory before its first start.
//!
//! Field order matters: the cluster (its processes) drops before the proxy and the network.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use tempfile::TempDir;

use super::netns::Network;
use super::proxy::DelayProxy;
use crate::workspace::spate_binary;
use crate::{Cluster, ClusterOptions, HarnessError, NodeId};

/// The cluster port of every node inside its namespace when the proxy is used (each
/// namespace has its own port space, so one fixed port serves all).
const PROXIED_CLUSTER_PORT: u16 = 9093;

/// How a nemesis cluster is set up.
#[derive(Debug, Clone, Default)]
pub struct NemesisClusterOptions {
    /// The cluster harness's options (node count, timeouts, extra `serve` flags).
    pub cluster: ClusterOptions,
    /// Route all cluster traffic through a [`DelayProxy`] (the slow-link nemesis).
    pub proxied: bool,
    /// A node whose data directory is a tmpfs of this many MB (the full-disk nemesis).
    pub small_disk: Option<(NodeId, u32)>,
}

/// Why a nemesis cluster did not start.
#[derive(Debug)]
pub enum SetupError {
    /// Namespaces (or nft inside them) cannot be made here: skip, saying why.
    Unsupported(String),
    /// They can, but the cluster failed: a real failure.
    Failed(HarnessError),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Unsupported(reason) => write!(f, "namespaces unavailable: {reason}"),
            SetupError::Failed(error) => write!(f, "{error}"),
        }
    }
}

/// A cluster in namespaces, with its network and (optionally) its delay proxy.
pub struct NemesisCluster {
    /// The nodes. Declared first: dropped (SIGKILLed) before the network goes.
    pub cluster: Cluster,
    proxy: Option<DelayProxy>,
    pub network: Network,
    small_disk: Option<NodeId>,
    _wrapper_dir: TempDir,
}

impl NemesisCluster {
    /// Builds the network, the wrapper, the proxy if asked, and starts the cluster.
    pub fn start(options: NemesisClusterOptions) -> Result<NemesisCluster, SetupError> {
        let ids: Vec<NodeId> = (1..=options.cluster.nodes)
            .filter_map(|id| NodeId::try_from(id).ok())
            .collect();
        let network = Network::create(&ids).map_err(SetupError::Unsupported)?;
        // nft inside a namespace: checked now, so that a machine without it skips cleanly.
        let probe = "table inet spn_probe {\n}\n";
        network
            .nft(ids[0], probe)
            .map_err(SetupError::Unsupported)?;
        network.nft_delete_table(ids[0], "spn_probe");
        let mut proxy = None;
        let mut fronts = Vec::new();
        if options.proxied {
            let (bound, sockets) = DelayProxy::bind(network.bridge_addr(), &ids)
                .map_err(|e| SetupError::Failed(HarnessError::io("bind the delay proxy", e)))?;
            proxy = Some(bound);
            fronts = sockets;
        }
        let wrapper_dir = tempfile::Builder::new()
            .prefix("spate-nemesis-")
            .tempdir()
            .map_err(|e| SetupError::Failed(HarnessError::io("create wrapper dir", e)))?;
        let spate = spate_binary().map_err(SetupError::Failed)?;
        let script = wrapper_script(&spate, &network, proxy.as_ref(), options.small_disk);
        let wrapper = wrapper_dir.path().join("spate-in-netns");
        std::fs::write(&wrapper, script)
            .and_then(|()| {
                std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            })
            .map_err(|e| SetupError::Failed(HarnessError::io("write the node wrapper", e)))?;
        if let Some(proxy) = proxy.as_mut() {
            let backends: HashMap<NodeId, SocketAddr> = ids
                .iter()
                .map(|id| {
                    (
                        *id,
                        SocketAddr::from((network.node_addr(*id), PROXIED_CLUSTER_PORT)),
                    )
                })
                .collect();
            proxy
                .start(fronts, &backends)
                .map_err(|e| SetupError::Failed(HarnessError::io("start the delay proxy", e)))?;
        }
        let mut cluster_options = options.cluster.clone();
        cluster_options.binary = Some(wrapper);
        let cluster = Cluster::start(cluster_options).map_err(SetupError::Failed)?;
        Ok(NemesisCluster {
            cluster,
            proxy,
            network,
            small_disk: options.small_disk.map(|(id, _)| id),
            _wrapper_dir: wrapper_dir,
        })
    }

    /// The delay proxy, when the cluster was started with one.
    pub fn proxy(&self) -> Option<&DelayProxy> {
        self.proxy.as_ref()
    }

    /// The node whose data directory is a small tmpfs, if any.
    pub fn small_disk_node(&self) -> Option<NodeId> {
        self.small_disk
    }

    /// Node `id`'s data directory.
    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.cluster.node(id).data_dir().to_path_buf()
    }
}

/// The shell wrapper every node runs instead of `spate` (see the module doc). Commands that
/// are not a node's `serve` (no `--node-id`) run the real binary unchanged.
fn wrapper_script(
    spate: &std::path::Path,
    network: &Network,
    proxy: Option<&DelayProxy>,
    small_disk: Option<(NodeId, u32)>,
) -> String {
    let net = network.subnet_prefix();
    let mut voters_sed = String::new();
    for id in network.node_ids() {
        let target = match proxy.and_then(|p| p.front(*id)) {
            Some(front) => front.to_string(),
            None => format!("{net}.{id}:\\2"),
        };
        let _ = write!(
            voters_sed,
            " -e 's/\\(^\\|,\\){id}@127\\.0\\.0\\.1:\\([0-9]*\\)/\\1{id}@{target}/g'"
        );
    }
    let cluster_listen = if proxy.is_some() {
        format!("{net}.$id:{PROXIED_CLUSTER_PORT}")
    } else {
        format!("{net}.$id:$cport")
    };
    let mut advertised = String::new();
    if let Some(proxy) = proxy {
        advertised.push_str("case $id in\n");
        for id in network.node_ids() {
            if let Some(front) = proxy.front(*id) {
                let _ = writeln!(
                    advertised,
                    "  {id}) set -- \"$@\" --cluster-advertised-listen {front} ;;"
                );
            }
        }
        advertised.push_str("esac\n");
    }
    let (disk_node, disk_mb) = small_disk.unwrap_or((0, 0));
    format!(
        r#"#!/bin/sh
# Generated by spate_tests::nemesis: runs node --node-id of a nemesis cluster in its namespace.
set -e
SPATE='{spate}'
id=''; prev=''; dir=''; cport=''
for a in "$@"; do
  [ "$prev" = "--node-id" ] && id="$a"
  [ "$prev" = "--data-dir" ] && dir="$a"
  [ "$prev" = "--cluster-listen" ] && cport="${{a##*:}}"
  prev="$a"
done
[ -n "$id" ] || exec "$SPATE" "$@"
first=1; prev=''
for a in "$@"; do
  if [ "$first" = 1 ]; then set --; first=0; fi
  if [ "$prev" = "--controller-voters" ]; then
    a=$(printf '%s' "$a" | sed{voters_sed})
  elif [ "$prev" = "--cluster-listen" ]; then
    a="{cluster_listen}"
  else
    a=$(printf '%s' "$a" | sed -e "s/^127\.0\.0\.1:/{net}.$id:/")
  fi
  set -- "$@" "$a"
  prev="$a"
done
{advertised}if [ "$id" = "{disk_node}" ] && ! mountpoint -q "$dir"; then
  mount -t tmpfs -o size={disk_mb}m '{source}' "$dir"
fi
exec ip netns exec '{prefix}n'"$id" "$SPATE" "$@"
"#,
        spate = spate.display(),
        source = network.mount_source(),
        prefix = network.prefix(),
    )
}
