//! The dev cluster's directory: the lock that keeps two runs apart, `cluster.toml` (the
//! cluster id and every node's ports, kept from one run to the next), and the certificates.
//! It starts nothing; [`super::nodes`] does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use spate_server::cluster::certs::{
    CA_CERT_FILE, CA_KEY_FILE, node_dns_name, write_ca, write_node_cert,
};
use spate_server::cluster::node::random_cluster_id;

use super::{HOST, NODE_COUNT_MAX, io_failure};
use crate::cluster::Failure;

/// Three voters is the smallest quorum that survives losing a node.
const NODE_COUNT_DEFAULT: u8 = 3;
const CLUSTER_FILE: &str = "cluster.toml";
const LOCK_FILE: &str = "dev.lock";

/// Holds `DIR/dev.lock` for as long as it lives, so two runs cannot share node data dirs.
pub(super) fn lock_dir(dir: &Path) -> Result<File, Failure> {
    let path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_failure("cannot open", &path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => Err(Failure::Failed(format!(
            "another `spate cluster dev` is running on {}; stop it first (Ctrl-C in its terminal), \
             or choose another --data-dir",
            dir.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(io_failure("cannot lock", &path, e)),
    }
}

/// Node N's three listeners, on [`HOST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Ports {
    pub(super) kafka: u16,
    pub(super) admin: u16,
    pub(super) cluster: u16,
}

/// `DIR/cluster.toml`: what must stay the same from one run to the next. A port of 0 is one
/// not chosen yet. Written and read here, in a TOML subset, so it needs no TOML library.
#[derive(Debug, PartialEq)]
pub(super) struct DevFile {
    pub(super) cluster_id: String,
    pub(super) node_count: u8,
    pub(super) ports: BTreeMap<i32, Ports>,
}

impl DevFile {
    pub(super) fn load_or_create(dir: &Path, nodes: Option<u8>) -> Result<DevFile, Failure> {
        let path = dir.join(CLUSTER_FILE);
        let file = match fs::read_to_string(&path) {
            Ok(text) => DevFile::parse(&text).map_err(|e| {
                Failure::Failed(format!(
                    "{}: {e}; fix it, or remove {} to start over",
                    path.display(),
                    dir.display()
                ))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => DevFile {
                cluster_id: random_cluster_id(),
                node_count: nodes.unwrap_or(NODE_COUNT_DEFAULT),
                ports: BTreeMap::new(),
            },
            Err(e) => return Err(io_failure("cannot read", &path, e)),
        };
        match nodes {
            Some(n) if n != file.node_count => Err(Failure::Usage(format!(
                "{} holds a {}-node cluster; run it with --nodes {}, or use another --data-dir for {n} nodes",
                dir.display(),
                file.node_count,
                file.node_count
            ))),
            _ => Ok(file),
        }
    }

    fn parse(text: &str) -> Result<DevFile, String> {
        let (mut cluster_id, mut node_count) = (None, None);
        let mut ports = BTreeMap::<i32, Ports>::new();
        let mut node = None;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            let bad = |what: &str| format!("line {}: {what}", index + 1);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(id) = line
                .strip_prefix("[node.")
                .and_then(|rest| rest.strip_suffix(']'))
            {
                node = Some(id.parse::<i32>().map_err(|_| bad("expected [node.N]"))?);
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad("expected KEY = VALUE"))?;
            let (key, value) = (key.trim(), value.trim());
            let port = || {
                value
                    .parse::<u16>()
                    .map_err(|_| bad("expected a port number"))
            };
            match (node, key) {
                (None, "cluster_id") => {
                    let id = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                    cluster_id = Some(
                        id.ok_or_else(|| bad("expected a quoted cluster id"))?
                            .to_owned(),
                    );
                }
                (None, "nodes") => {
                    node_count = Some(
                        value
                            .parse::<u8>()
                            .map_err(|_| bad("expected a node count"))?,
                    )
                }
                (Some(id), "kafka") => ports.entry(id).or_default().kafka = port()?,
                (Some(id), "admin") => ports.entry(id).or_default().admin = port()?,
                (Some(id), "cluster") => ports.entry(id).or_default().cluster = port()?,
                _ => return Err(bad(&format!("unknown key `{key}`"))),
            }
        }
        let cluster_id =
            cluster_id.ok_or("no cluster_id (the nodes' data dirs hold it in meta.properties)")?;
        let node_count = node_count
            .filter(|n| (1..=NODE_COUNT_MAX).contains(n))
            .ok_or("no `nodes = N` (1 to 9)")?;
        Ok(DevFile {
            cluster_id,
            node_count,
            ports,
        })
    }

    fn render(&self) -> String {
        let mut out = String::from(
            "# Written by `spate cluster dev`, and read back by every run on this directory, so the\n\
             # nodes keep their ports (and what Metadata advertises) from one run to the next.\n\
             # Remove a port's line to have a free one picked next time. Keep cluster_id: the\n\
             # nodes' data dirs are stamped with it.\n",
        );
        let _ = writeln!(
            out,
            "cluster_id = \"{}\"\nnodes = {}",
            self.cluster_id, self.node_count
        );
        for (id, ports) in &self.ports {
            let _ = write!(out, "\n[node.{id}]\n");
            for (key, port) in [
                ("kafka", ports.kafka),
                ("admin", ports.admin),
                ("cluster", ports.cluster),
            ] {
                if port != 0 {
                    let _ = writeln!(out, "{key} = {port}");
                }
            }
        }
        out
    }

    /// Writes a temporary file and renames it over the old one, so a crash leaves either.
    pub(super) fn save(&self, dir: &Path) -> Result<(), Failure> {
        let path = dir.join(CLUSTER_FILE);
        let temporary = dir.join(format!("{CLUSTER_FILE}.tmp"));
        fs::write(&temporary, self.render())
            .map_err(|e| io_failure("cannot write", &temporary, e))?;
        fs::rename(&temporary, &path).map_err(|e| io_failure("cannot write", &path, e))
    }
}

/// Checks that every remembered port is free and picks a free one (the kernel's choice for
/// port 0) for every other, then releases them all for the nodes to bind. A remembered port
/// that is taken is an error rather than silently moved, since clients may rely on it.
pub(super) fn assign_ports(
    file: &mut DevFile,
    dir: &Path,
) -> Result<BTreeMap<i32, Ports>, Failure> {
    // Every port stays bound until all are chosen, so no two of ours are the same.
    let (mut held_tcp, mut held_udp) = (Vec::new(), Vec::new());
    let mut hold = |port: u16, udp: bool, node: i32, what: &str| -> Result<u16, Failure> {
        let bound = if udp {
            UdpSocket::bind((HOST, port)).and_then(|s| {
                let port = s.local_addr()?.port();
                held_udp.push(s);
                Ok(port)
            })
        } else {
            TcpListener::bind((HOST, port)).and_then(|s| {
                let port = s.local_addr()?.port();
                held_tcp.push(s);
                Ok(port)
            })
        };
        match bound {
            Ok(port) => Ok(port),
            Err(e) if port != 0 => Err(Failure::Failed(format!(
                "{HOST}:{port}, node {node}'s {what} port, remembered in {}, is not free ({e}); \
                 is a node of an earlier run still up (`pgrep -a spate`)? If not, remove that \
                 line to pick a new port",
                dir.join(CLUSTER_FILE).display()
            ))),
            Err(e) => Err(Failure::Failed(format!(
                "cannot find a free port on {HOST}: {e}"
            ))),
        }
    };
    let mut assigned = BTreeMap::new();
    for id in 1..=i32::from(file.node_count) {
        let remembered = file.ports.get(&id).copied().unwrap_or_default();
        let ports = Ports {
            kafka: hold(remembered.kafka, false, id, "kafka")?,
            admin: hold(remembered.admin, false, id, "admin")?,
            cluster: hold(remembered.cluster, true, id, "cluster")?,
        };
        assigned.insert(id, ports);
    }
    file.ports = assigned.clone();
    Ok(assigned)
}

/// Makes the CA and each node's certificate under `certs`, keeping any from an earlier run.
pub(super) fn ensure_certs(certs: &Path, node_count: u8) -> Result<(), Failure> {
    let failed = |e: spate_server::cluster::certs::CertError| Failure::Failed(e.to_string());
    let pair = |stem: &str| {
        (
            certs.join(format!("{stem}.pem")),
            certs.join(format!("{stem}.key")),
        )
    };
    let node_pairs: Vec<(i32, (PathBuf, PathBuf))> = (1..=i32::from(node_count))
        .map(|id| (id, pair(&node_dns_name(id))))
        .collect();
    let half_made = |(cert, key): &(PathBuf, PathBuf)| {
        Failure::Failed(format!(
            "{} exists without {} (or the other way round); remove {} to make new certificates",
            cert.display(),
            key.display(),
            certs.display()
        ))
    };
    let ca = (certs.join(CA_CERT_FILE), certs.join(CA_KEY_FILE));
    match (ca.0.exists(), ca.1.exists()) {
        (true, true) => {}
        (false, false) => {
            if let Some((_, (cert, _))) = node_pairs.iter().find(|(_, (cert, _))| cert.exists()) {
                return Err(Failure::Failed(format!(
                    "{} was signed by a CA that is gone; remove {} to make new certificates",
                    cert.display(),
                    certs.display()
                )));
            }
            write_ca(certs).map_err(failed)?;
        }
        _ => return Err(half_made(&ca)),
    }
    for (id, files) in &node_pairs {
        match (files.0.exists(), files.1.exists()) {
            (true, true) => {}
            (false, false) => {
                write_node_cert(certs, *id, certs).map_err(failed)?;
            }
            _ => return Err(half_made(files)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_file_round_trips_and_keeps_the_cluster_id_and_ports() {
        let mut ports = BTreeMap::new();
        ports.insert(
            1,
            Ports {
                kafka: 39001,
                admin: 39002,
                cluster: 39003,
            },
        );
        ports.insert(
            2,
            Ports {
                kafka: 39011,
                admin: 39012,
                cluster: 39013,
            },
        );
        let file = DevFile {
            cluster_id: "Ab3-x_Y".to_owned(),
            node_count: 2,
            ports,
        };
        assert_eq!(DevFile::parse(&file.render()).unwrap(), file);
    }

    #[test]
    fn a_port_line_removed_by_hand_is_left_for_the_next_run_to_pick() {
        let text = "cluster_id = \"c1\"\nnodes = 1\n\n[node.1]\nkafka = 39001\ncluster = 39003\n";
        let file = DevFile::parse(text).unwrap();
        assert_eq!(
            file.ports[&1],
            Ports {
                kafka: 39001,
                admin: 0,
                cluster: 39003
            }
        );
    }

    #[test]
    fn cluster_file_errors_name_the_line() {
        let error = DevFile::parse("cluster_id = \"c1\"\nnodes = 3\n[node.1]\nkafka = 70000\n")
            .unwrap_err();
        assert!(error.starts_with("line 4:"), "{error}");
        assert!(
            DevFile::parse("nodes = 3\n")
                .unwrap_err()
                .contains("cluster_id")
        );
        assert!(DevFile::parse("cluster_id = \"c\"\nnodes = 10\n").is_err());
        assert!(
            DevFile::parse("cluster_id = \"c\"\nnodes = 3\ncolour = 1\n")
                .unwrap_err()
                .contains("colour")
        );
    }

    #[test]
    fn assigned_ports_are_distinct_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = DevFile {
            cluster_id: "c".to_owned(),
            node_count: 3,
            ports: BTreeMap::new(),
        };
        let ports = assign_ports(&mut file, dir.path()).unwrap();
        let mut all: Vec<u16> = ports
            .values()
            .flat_map(|p| [p.kafka, p.admin, p.cluster])
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 9);
        assert_eq!(file.ports, ports);
        assert_eq!(
            assign_ports(&mut file, dir.path()).unwrap(),
            ports,
            "a second run reuses them"
        );
    }

    #[test]
    fn a_remembered_port_in_use_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let taken = TcpListener::bind((HOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let mut ports = BTreeMap::new();
        ports.insert(
            1,
            Ports {
                kafka: port,
                admin: 0,
                cluster: 0,
            },
        );
        let mut file = DevFile {
            cluster_id: "c".to_owned(),
            node_count: 1,
            ports,
        };
        let error = assign_ports(&mut file, dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(&format!("127.0.0.1:{port}, node 1's kafka port")),
            "{error}"
        );
    }
}
