//! Settings shared by the producer, consumer and admin client.
//!
//! Names and defaults follow Kafka's Java client, so that a setting read in Kafka's docs
//! means the same here. Durations are `Duration`s; the doc of each says the Kafka key.

use std::time::Duration;

use crate::error::Error;

/// Connection and metadata settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port[,host:port…]`. Only used to find the cluster; the
    /// brokers' advertised addresses are used after that.
    pub bootstrap: String,
    /// `client.id`, sent in every request header and shown in broker logs.
    pub client_id: String,
    /// `request.timeout.ms` (30 s): how long a request may go unanswered before its
    /// connection is closed.
    pub request_timeout: Duration,
    /// `socket.connection.setup.timeout.ms` (10 s).
    pub connect_timeout: Duration,
    /// `reconnect.backoff.ms` (50 ms): first wait before reconnecting to a broker.
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms` (1 s): the wait doubles per failure up to this.
    pub reconnect_backoff_max: Duration,
    /// `metadata.max.age.ms` (5 min): topic metadata older than this is refreshed on use,
    /// so new partitions and moved leaders are found even without errors.
    pub metadata_max_age: Duration,
    /// `retry.backoff.ms` (100 ms): wait before retrying a failed request.
    pub retry_backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".into(),
            client_id: "spate-client".into(),
            request_timeout: Duration::from_millis(30_000),
            connect_timeout: Duration::from_millis(10_000),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(1_000),
            metadata_max_age: Duration::from_millis(300_000),
            retry_backoff: Duration::from_millis(100),
        }
    }
}

impl ClientConfig {
    /// Defaults with the given bootstrap list.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            ..Self::default()
        }
    }

    /// The bootstrap list split into `host:port` entries, checked for shape.
    pub fn bootstrap_addresses(&self) -> Result<Vec<String>, Error> {
        let entries: Vec<String> = self
            .bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if entries.is_empty() {
            return Err(Error::Config(
                "bootstrap list is empty; give host:port[,host:port]".into(),
            ));
        }
        for entry in &entries {
            let port_ok = entry
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(Error::Config(format!(
                    "bootstrap entry {entry:?} is not host:port"
                )));
            }
        }
        Ok(entries)
    }

    /// The wait before reconnect attempt number `failures` (1-based): doubling from
    /// `reconnect.backoff.ms`, capped at `reconnect.backoff.max.ms`.
    pub fn reconnect_delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(16);
        self.reconnect_backoff
            .saturating_mul(1u32 << shift)
            .min(self.reconnect_backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_list_is_split_and_checked() {
        let config = ClientConfig::new(" a:1, b:2 ,");
        assert_eq!(config.bootstrap_addresses().unwrap(), vec!["a:1", "b:2"]);
        assert!(ClientConfig::new("a").bootstrap_addresses().is_err());
        assert!(ClientConfig::new("a:x").bootstrap_addresses().is_err());
        assert!(ClientConfig::new("").bootstrap_addresses().is_err());
    }

    #[test]
    fn reconnect_backoff_doubles_up_to_the_cap() {
        let config = ClientConfig::default();
        assert_eq!(config.reconnect_delay(1), Duration::from_millis(50));
        assert_eq!(config.reconnect_delay(2), Duration::from_millis(100));
        assert_eq!(config.reconnect_delay(5), Duration::from_millis(800));
        assert_eq!(config.reconnect_delay(6), Duration::from_millis(1_000));
        assert_eq!(config.reconnect_delay(60), Duration::from_millis(1_000));
    }
}
