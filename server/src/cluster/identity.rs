//! The data directory's stamp, `meta.properties` (as Kafka's): which node and which cluster
//! the directory belongs to.
//!
//! The node id is stamped at the first start, the cluster id as soon as it is known (given
//! with `--cluster-id`, or learned from the quorum). A node refuses to start on a directory
//! stamped for another node or cluster: pointing node 2 at node 1's data, or a new cluster at
//! an old one's, would otherwise serve the wrong partitions under the right names.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use spate_cluster::NodeId;

/// The stamp's file name under the data dir.
pub const META_PROPERTIES: &str = "meta.properties";
/// Locked for as long as a node runs on the data dir (Kafka's `.lock`).
pub const LOCK_FILE: &str = ".lock";
/// Where the single-node releases kept the cluster id (adopted by the first stamp).
const LEGACY_CLUSTER_ID_FILE: &str = "cluster-id";
const STAMP_VERSION: u32 = 1;

/// What the directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub node_id: NodeId,
    pub cluster_id: Option<String>,
}

/// Why the directory cannot be used by this node.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "data dir {dir} belongs to node {stamped} ({META_PROPERTIES}); this node is {configured}: start it with --node-id {stamped}, or give node {configured} its own (empty) data dir"
    )]
    OtherNode {
        dir: PathBuf,
        stamped: NodeId,
        configured: NodeId,
    },
    #[error(
        "data dir {dir} belongs to cluster '{stamped}' ({META_PROPERTIES}); this node is joining cluster '{configured}': use an empty data dir to join '{configured}', or start it with --cluster-id {stamped}"
    )]
    OtherCluster {
        dir: PathBuf,
        stamped: String,
        configured: String,
    },
    #[error(
        "data dir {dir} is in use by another running node ({LOCK_FILE} is locked); stop it first, or give this node its own data dir"
    )]
    InUse { dir: PathBuf },
    #[error("{path}: {reason}; fix or remove the file only if this data dir is really this node's")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Checks the stamp against this node's id and configured cluster id, and writes it at the
/// first start. Returns the stamp as it now stands.
pub fn check_and_stamp(
    data_dir: &Path,
    node_id: NodeId,
    configured_cluster_id: Option<&str>,
) -> Result<Stamp, IdentityError> {
    let path = data_dir.join(META_PROPERTIES);
    let existing = read(&path)?;
    let stamp = match existing {
        Some(stamp) => {
            if stamp.node_id != node_id {
                return Err(IdentityError::OtherNode {
                    dir: data_dir.to_owned(),
                    stamped: stamp.node_id,
                    configured: node_id,
                });
            }
            if let (Some(stamped), Some(configured)) = (&stamp.cluster_id, configured_cluster_id)
                && stamped != configured
            {
                return Err(IdentityError::OtherCluster {
                    dir: data_dir.to_owned(),
                    stamped: stamped.clone(),
                    configured: configured.to_owned(),
                });
            }
            stamp
        }
        None => Stamp {
            node_id,
            cluster_id: configured_cluster_id
                .map(str::to_owned)
                .or_else(|| legacy_cluster_id(data_dir)),
        },
    };
    let stamp = Stamp {
        cluster_id: stamp
            .cluster_id
            .or_else(|| configured_cluster_id.map(str::to_owned)),
        ..stamp
    };
    write(&path, &stamp)?;
    Ok(stamp)
}

/// Takes the data dir's lock, so two processes never open the same logs; held until the
/// returned file is dropped (the process exits).
pub fn lock_data_dir(data_dir: &Path) -> Result<fs::File, IdentityError> {
    let path = data_dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| IdentityError::Io {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(IdentityError::InUse {
            dir: data_dir.to_owned(),
        }),
        Err(fs::TryLockError::Error(source)) => Err(IdentityError::Io { path, source }),
    }
}

/// Records the cluster id once it is known; refuses one that differs from the stamp.
pub fn stamp_cluster_id(data_dir: &Path, cluster_id: &str) -> Result<Stamp, IdentityError> {
    let path = data_dir.join(META_PROPERTIES);
    let Some(mut stamp) = read(&path)? else {
        return Err(IdentityError::Corrupt {
            path,
            reason: "the stamp disappeared while the node was running".to_owned(),
        });
    };
    match &stamp.cluster_id {
        Some(stamped) if stamped == cluster_id => return Ok(stamp),
        Some(stamped) => {
            return Err(IdentityError::OtherCluster {
                dir: data_dir.to_owned(),
                stamped: stamped.clone(),
                configured: cluster_id.to_owned(),
            });
        }
        None => stamp.cluster_id = Some(cluster_id.to_owned()),
    }
    write(&path, &stamp)?;
    Ok(stamp)
}

/// The cluster id a single-node release left behind, if any.
fn legacy_cluster_id(data_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(data_dir.join(LEGACY_CLUSTER_ID_FILE)).ok()?;
    let id = text.trim();
    spate_cluster::image::check_cluster_id(id).ok()?;
    Some(id.to_owned())
}

fn read(path: &Path) -> Result<Option<Stamp>, IdentityError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(IdentityError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let corrupt = |reason: String| IdentityError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let mut version = None;
    let mut node_id = None;
    let mut cluster_id = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(corrupt(format!("line '{line}' is not key=value")));
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = value.parse::<u32>().ok(),
            "node.id" => {
                node_id = Some(
                    value
                        .parse::<NodeId>()
                        .ok()
                        .filter(|id| *id >= 0)
                        .ok_or_else(|| corrupt(format!("node.id '{value}' is not a node id")))?,
                )
            }
            "cluster.id" => {
                spate_cluster::image::check_cluster_id(value).map_err(corrupt)?;
                cluster_id = Some(value.to_owned());
            }
            // Kafka writes directory.id; later Spate releases may add keys.
            _ => {}
        }
    }
    if version != Some(STAMP_VERSION) {
        return Err(corrupt(format!(
            "version is {version:?}; this build reads version {STAMP_VERSION}"
        )));
    }
    let node_id = node_id.ok_or_else(|| corrupt("node.id is missing".to_owned()))?;
    Ok(Some(Stamp {
        node_id,
        cluster_id,
    }))
}

fn write(path: &Path, stamp: &Stamp) -> Result<(), IdentityError> {
    let mut text = format!(
        "# Spate data directory stamp: written once, checked at every start.\nversion={STAMP_VERSION}\nnode.id={}\n",
        stamp.node_id
    );
    if let Some(id) = &stamp.cluster_id {
        text.push_str(&format!("cluster.id={id}\n"));
    }
    if fs::read_to_string(path).is_ok_and(|current| current == text) {
        return Ok(());
    }
    write_atomically(path, text.as_bytes()).map_err(|source| IdentityError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Replaces `path` so that a crash leaves the old or the new file, never a torn one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_stamps_and_later_starts_check() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = check_and_stamp(dir.path(), 1, None).unwrap();
        assert_eq!(stamp.cluster_id, None);
        let stamp = stamp_cluster_id(dir.path(), "c1").unwrap();
        assert_eq!(stamp.cluster_id.as_deref(), Some("c1"));
        assert_eq!(check_and_stamp(dir.path(), 1, Some("c1")).unwrap(), stamp);
        assert_eq!(check_and_stamp(dir.path(), 1, None).unwrap(), stamp);
    }

    #[test]
    fn a_directory_of_another_node_or_cluster_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        check_and_stamp(dir.path(), 1, Some("alpha")).unwrap();
        let other_node = check_and_stamp(dir.path(), 2, None).unwrap_err();
        assert!(
            other_node.to_string().contains("belongs to node 1"),
            "{other_node}"
        );
        let other_cluster = check_and_stamp(dir.path(), 1, Some("beta")).unwrap_err();
        let text = other_cluster.to_string();
        assert!(
            text.contains("belongs to cluster 'alpha'") && text.contains("'beta'"),
            "{text}"
        );
        assert!(stamp_cluster_id(dir.path(), "beta").is_err());
    }

    #[test]
    fn a_locked_data_dir_is_refused_until_its_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_data_dir(dir.path()).unwrap();
        let refused = lock_data_dir(dir.path()).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("in use by another running node"),
            "{refused}"
        );
        drop(held);
        assert!(lock_data_dir(dir.path()).is_ok());
    }

    #[test]
    fn the_single_node_cluster_id_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LEGACY_CLUSTER_ID_FILE), "legacy-id-1\n").unwrap();
        let stamp = check_and_stamp(dir.path(), 0, None).unwrap();
        assert_eq!(stamp.cluster_id.as_deref(), Some("legacy-id-1"));
    }

    #[test]
    fn a_damaged_stamp_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(META_PROPERTIES);
        for text in [
            "version=1\n",
            "node.id=1\n",
            "version=1\nnode.id=-4\n",
            "garbage",
            "version=1\nnode.id=1\ncluster.id=a b\n",
        ] {
            fs::write(&path, text).unwrap();
            assert!(
                matches!(
                    check_and_stamp(dir.path(), 1, None),
                    Err(IdentityError::Corrupt { .. })
                ),
                "{text}"
            );
        }
    }
}
