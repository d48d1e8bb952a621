//! Spate's Kafka wire codec.
//!
//! Sans-IO: this crate turns bytes into typed Kafka messages and back. It opens no sockets,
//! starts no runtime and reads no clock. Decoding is safe against hostile input: no length
//! field can make it allocate more than the bytes that remain, and every failure is a value.

pub mod records;
