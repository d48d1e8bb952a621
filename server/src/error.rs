//! The server layer's error type: what stops the broker from starting or running.
//! Per-request failures are not errors here; handlers turn them into Kafka error codes.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why `spate serve` could not start (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create data dir {path}: {source}; check the path and its permissions")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}; is another broker running, or use port 0")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("storage engine: {0}")]
    Engine(#[from] spate_engine::EngineError),
    #[error(transparent)]
    Identity(#[from] crate::cluster::identity::IdentityError),
    #[error(transparent)]
    Node(#[from] crate::cluster::node::NodeError),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}
