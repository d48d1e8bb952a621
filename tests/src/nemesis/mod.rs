//! The nemesis harness: real `spate serve` processes, each in its own network namespace,
//! under a workload that records a history, while faults are injected and healed; then the
//! history checker ([`crate::history`]) judges what the clients saw.
//!
//! Why real processes and namespaces, when a simulator exists: the simulator checks the
//! replication state machines under schedules it can enumerate; this checks the binary users
//! run (QUIC, io_uring, the Kafka wire, librdkafka's retries) under faults a kernel really
//! produces. Jepsen found lost acknowledged writes in Kafka-compatible brokers this way.
//!
//! The parts, in the order a trial uses them:
//! - [`netns`]: the bridge, one namespace and address per node, removed on drop (and swept
//!   after a killed run);
//! - [`nodes`]: a [`crate::Cluster`] whose nodes run inside the namespaces;
//! - [`proxy`]: the userspace UDP delay relay for slow links (this kernel has no netem);
//! - [`faults`]: the nemeses, each an inject and a heal;
//! - [`workload`]: the Python clients writing the history, and the final read;
//! - [`verdict`]: the checker's counts; [`trial`]: one trial; [`matrix`]: the table.
//!
//! Namespaces need root (or CAP_NET_ADMIN) and `ip`/`nft`; without them a trial returns
//! [`TrialError::Unsupported`] and the tests skip, saying so.

pub mod faults;
pub mod matrix;
pub mod netns;
pub mod nodes;
pub mod proxy;
pub mod trial;
pub mod verdict;
pub mod workload;

pub use faults::Nemesis;
pub use matrix::{MatrixRow, render_table};
pub use trial::{TrialError, TrialOptions, TrialOutcome, run_trial};
