//! The classic group APIs at the wire, against the real `spate` binary: every error path a
//! Kafka client relies on answers with the exact code Kafka 4.0's group coordinator sends, and
//! the edge cases (batched versions, static members, held joins, deletes, durability) behave as
//! Kafka's do. Each assertion's message names the Kafka behaviour it holds Spate to.

#![allow(
    clippy::unwrap_used,
    reason = "test code: helpers outside #[test] fns fail the test by panicking, as the tests do"
)]

#[path = "group_protocol_errors/support.rs"]
#[macro_use]
mod support;
#[path = "group_protocol_errors/find_coordinator.rs"]
mod find_coordinator;
#[path = "group_protocol_errors/group_admin.rs"]
mod group_admin;
#[path = "group_protocol_errors/join_group.rs"]
mod join_group;
#[path = "group_protocol_errors/offsets.rs"]
mod offsets;
#[path = "group_protocol_errors/static_and_leave.rs"]
mod static_and_leave;
#[path = "group_protocol_errors/sync_and_heartbeat.rs"]
mod sync_and_heartbeat;
