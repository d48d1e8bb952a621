//! Harness for Spate's black-box interop tests.
//!
//! The tests in `tests/tests/` start the real `spate` binary as a child process, on ephemeral
//! ports and in a temporary data directory, and drive it with real Kafka clients: kcat, the
//! `rdkafka` crate (librdkafka), the Python `confluent-kafka` and `kafka-python` packages, and
//! hand-built wire bytes for hostile input. Nothing here links against the broker's code: what is
//! tested is what a user's client sees on the socket.
//!
//! [`Cluster`] starts several such processes as one cluster (certificates, a controller quorum,
//! brokers that register with it) for the cluster tests; [`cluster_requests`] reads what each
//! node tells clients about it.
//!
//! This crate does not install the clients. `scripts/install-test-deps.sh` does; when a client
//! is missing, the helpers return an error that says to run it, so a test fails loudly instead
//! of skipping.

pub mod admin_requests;
pub mod broker;
pub mod cli;
pub mod clients;
pub mod cluster;
pub mod cluster_requests;
pub mod docs;
pub mod error;
pub mod fetch_request;
pub mod group_requests;
pub mod history;
pub mod kafka_requests;
pub mod nemesis;
pub mod netfilter;
pub mod process_run;
pub mod record_batch;
pub mod replication;
pub mod wire;
pub mod workspace;

pub use broker::{Broker, BrokerOptions};
pub use cluster::{Cluster, ClusterOptions, NodeId, NodeRole};
pub use error::HarnessError;
pub use process_run::{ProcessOutput, run_with_timeout};
