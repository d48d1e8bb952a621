//! Producer settings, with Kafka 4.0's names and defaults.

use std::time::Duration;

use spate_protocol::records::Compression;

use crate::config::ClientConfig;
use crate::error::Error;

/// `acks`: how many replicas must have a batch before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker does not answer; offsets are unknown and loss goes unseen.
    None,
    /// `acks=1`: the leader has it.
    Leader,
    /// `acks=all` (Kafka's default since 3.0): every in-sync replica has it.
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings. Defaults are Kafka 4.0's.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub client: ClientConfig,
    /// `acks` (all).
    pub acks: Acks,
    /// `linger.ms` (5 ms since Kafka 4.0, KIP-1030): how long a batch waits for company.
    pub linger: Duration,
    /// `batch.size` (16384): a partition's batch is sent once it reaches this size.
    pub batch_size_bytes: usize,
    /// `buffer.memory` (32 MiB): records waiting to be acknowledged may hold at most this
    /// much; `send` waits for room beyond it.
    pub buffer_memory_bytes: usize,
    /// `max.block.ms` (60 s): longest `send` waits for metadata or buffer room.
    pub max_block: Duration,
    /// `max.request.size` (1 MiB): the largest record accepted.
    pub max_request_size_bytes: usize,
    /// `compression.type` (none).
    pub compression: Compression,
    /// `enable.idempotence` (true since Kafka 3.0): retries cannot duplicate or reorder.
    pub enable_idempotence: bool,
    /// `delivery.timeout.ms` (120 s): a record not acknowledged within this of `send` fails.
    pub delivery_timeout: Duration,
    /// `max.in.flight.requests.per.connection` (5): batches of one partition that may await
    /// an answer at once. One is a round trip per batch; five lets a partition's batches
    /// share the broker's group commit. Idempotence keeps order up to 5, as in Kafka.
    pub max_in_flight: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size_bytes: 16_384,
            buffer_memory_bytes: 32 * 1024 * 1024,
            max_block: Duration::from_millis(60_000),
            max_request_size_bytes: 1024 * 1024,
            compression: Compression::None,
            enable_idempotence: true,
            delivery_timeout: Duration::from_millis(120_000),
            max_in_flight: 5,
        }
    }
}

impl ProducerConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            client: ClientConfig::new(bootstrap),
            ..Self::default()
        }
    }

    /// Refuses combinations Kafka refuses.
    pub fn validate(&self) -> Result<(), Error> {
        if self.enable_idempotence && self.acks != Acks::All {
            return Err(Error::Config(
                "enable.idempotence requires acks=all; set enable_idempotence = false to use \
                 acks=0 or acks=1"
                    .into(),
            ));
        }
        if self.max_in_flight == 0 {
            return Err(Error::Config(
                "max.in.flight.requests.per.connection must be at least 1".into(),
            ));
        }
        if self.enable_idempotence && self.max_in_flight > 5 {
            return Err(Error::Config(format!(
                "enable.idempotence allows at most 5 max.in.flight.requests.per.connection \
                 (got {}): the broker remembers only a producer's last 5 batches",
                self.max_in_flight
            )));
        }
        if self.batch_size_bytes == 0 || self.buffer_memory_bytes == 0 {
            return Err(Error::Config(
                "batch.size and buffer.memory must be positive".into(),
            ));
        }
        if self.buffer_memory_bytes > u32::MAX as usize {
            return Err(Error::Config("buffer.memory must be below 4 GiB".into()));
        }
        if self.delivery_timeout < self.linger + self.client.request_timeout {
            return Err(Error::Config(
                "delivery.timeout.ms must be at least linger.ms + request.timeout.ms".into(),
            ));
        }
        Ok(())
    }
}
