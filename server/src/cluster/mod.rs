//! The cluster: node identity, the controller quorum (openraft), the QUIC transport between
//! nodes, and the glue that turns the metadata image into local state.
//!
//! The decisions themselves (placement, sessions, elections) are sans-IO in
//! `spate-cluster`; this module stores, moves and applies them.

pub mod certs;
pub mod config;
pub mod control;
pub mod controller;
pub mod feed;
pub mod identity;
pub mod lifecycle;
pub mod node;
pub mod raft;
pub mod raft_network;
pub mod reconcile;
pub mod replication;
pub mod rpc;
pub mod status;
pub mod tls;
pub mod transport;
