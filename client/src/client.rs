//! [`Client`]: the connection pool and metadata cache the producer, consumer and admin share.
//!
//! Connections are opened lazily, one per broker address, and reopened after they close,
//! waiting `reconnect.backoff.ms` (doubling to `reconnect.backoff.max.ms`) between failed
//! attempts so a restarting broker is not hammered. That is what lets every higher layer
//! survive a broker restart: it retries its request and the pool reconnects underneath.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use spate_protocol::ErrorCode;
use spate_protocol::messages::{MetadataRequest, metadata_request::MetadataRequestTopic};

use crate::config::ClientConfig;
use crate::connection::{Connection, ConnectionSettings, Request};
use crate::error::Error;
use crate::metadata::{ClusterMetadata, TopicInfo};

/// A handle to a cluster; cheap to clone, and clones share connections and metadata.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    bootstrap: Vec<String>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    metadata: RwLock<Arc<ClusterMetadata>>,
}

#[derive(Default)]
struct Slot {
    connection: Option<Connection>,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Client {
    /// Checks the config and reaches the cluster once, so a wrong bootstrap list fails here
    /// rather than on first use.
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        let client = Client::lazy(config)?;
        client.refresh_metadata(&[], false).await?;
        Ok(client)
    }

    /// Checks the config but connects to nothing until first use.
    pub fn lazy(config: ClientConfig) -> Result<Client, Error> {
        let bootstrap = config.bootstrap_addresses()?;
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                bootstrap,
                slots: Mutex::new(HashMap::new()),
                metadata: RwLock::new(Arc::new(ClusterMetadata::default())),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The current metadata snapshot (possibly empty before the first refresh).
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        match self.inner.metadata.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn settings(&self) -> ConnectionSettings {
        let config = &self.inner.config;
        ConnectionSettings {
            client_id: config.client_id.clone(),
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
        }
    }

    /// An open connection to `address`, reconnecting (after backoff) if the last one closed.
    pub async fn connection_to(&self, address: &str, label: &str) -> Result<Connection, Error> {
        let slot = {
            let mut slots = self
                .inner
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slots.entry(address.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(connection) = &slot.connection
            && connection.is_open()
        {
            return Ok(connection.clone());
        }
        slot.connection = None;
        if let Some(retry_at) = slot.retry_at {
            tokio::time::sleep_until(retry_at.into()).await;
        }
        match Connection::connect(address, label.to_string(), self.settings()).await {
            Ok(connection) => {
                slot.failures = 0;
                slot.retry_at = None;
                slot.connection = Some(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                slot.failures = slot.failures.saturating_add(1);
                let delay = self.inner.config.reconnect_delay(slot.failures);
                slot.retry_at = Some(Instant::now() + delay);
                tracing::debug!(%address, %error, ?delay, "connect failed");
                Err(error)
            }
        }
    }

    /// A connection to the broker with `node_id`, found through metadata.
    pub async fn connection_to_node(&self, node_id: i32) -> Result<Connection, Error> {
        let mut metadata = self.metadata();
        if !metadata.brokers.contains_key(&node_id) {
            metadata = self.refresh_metadata(&[], false).await?;
        }
        let Some(broker) = metadata.brokers.get(&node_id) else {
            return Err(Error::Connect {
                broker: format!("node {node_id}"),
                reason: "the cluster's metadata lists no such broker".into(),
            });
        };
        let label = metadata.broker_label(node_id);
        self.connection_to(&broker.address(), &label).await
    }

    /// Sends a request built for the version `connection` speaks (see
    /// [`Client::send_any_versioned`]).
    pub async fn send_versioned<R: Request, B: std::borrow::Borrow<R>>(
        connection: &Connection,
        build: impl Fn(i16) -> Result<B, Error>,
    ) -> Result<R::Response, Error> {
        let version = connection.version_of::<R>()?;
        let request = build(version)?;
        connection.send_at(request.borrow(), version).await
    }

    /// Sends `request` to the broker with `node_id`.
    pub async fn send_to_node<R: Request>(
        &self,
        node_id: i32,
        request: &R,
    ) -> Result<R::Response, Error> {
        self.connection_to_node(node_id).await?.send(request).await
    }

    /// Sends `request` to whichever broker answers first: known brokers, then the bootstrap
    /// list. For requests any broker can serve (Metadata, admin calls on one node).
    pub async fn send_any<R: Request>(&self, request: &R) -> Result<R::Response, Error> {
        Ok(self.send_any_labeled(request).await?.1)
    }

    /// As [`Client::send_any`], also returning the label of the broker that answered, so
    /// errors about the answer can name it.
    pub async fn send_any_labeled<R: Request>(
        &self,
        request: &R,
    ) -> Result<(String, R::Response), Error> {
        self.send_any_versioned::<R, &R>(|_| Ok(request)).await
    }

    /// As [`Client::send_any`], building the request for the version the chosen broker
    /// speaks: some requests move fields between versions (DeleteTopics names topics in
    /// `topic_names` up to v5 and in `topics` from v6).
    pub async fn send_any_versioned<'r, R: Request + 'r, B>(
        &self,
        build: impl Fn(i16) -> Result<B, Error>,
    ) -> Result<(String, R::Response), Error>
    where
        B: std::borrow::Borrow<R>,
    {
        let metadata = self.metadata();
        let mut candidates: Vec<(String, String)> = metadata
            .brokers
            .values()
            .map(|b| (b.address(), metadata.broker_label(b.node_id)))
            .collect();
        candidates.sort();
        for address in &self.inner.bootstrap {
            if !candidates.iter().any(|(known, _)| known == address) {
                candidates.push((address.clone(), format!("{address} (bootstrap)")));
            }
        }
        let mut last_error = None;
        for (address, label) in &candidates {
            let connection = match self.connection_to(address, label).await {
                Ok(connection) => connection,
                Err(error) => {
                    last_error = Some(error);
                    continue;
                }
            };
            let version = connection.version_of::<R>()?;
            let request = build(version)?;
            match connection.send_at(request.borrow(), version).await {
                Ok(response) => return Ok((connection.broker().to_string(), response)),
                Err(error) if error.is_retriable() => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(Error::NoBrokerReachable {
            bootstrap: self.inner.config.bootstrap.clone(),
            last_error: last_error.map(|e| e.to_string()).unwrap_or_default(),
        })
    }

    /// Asks the cluster about `topics` (none: brokers only) and merges the answer into the
    /// cache.
    pub async fn refresh_metadata(
        &self,
        topics: &[String],
        allow_auto_topic_creation: bool,
    ) -> Result<Arc<ClusterMetadata>, Error> {
        let request = MetadataRequest {
            topics: Some(
                topics
                    .iter()
                    .map(|name| MetadataRequestTopic {
                        name: Some(name.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            allow_auto_topic_creation,
            ..Default::default()
        };
        self.apply_metadata_request(&request).await
    }

    /// Describes every topic in the cluster and merges the answer into the cache.
    pub async fn refresh_all_metadata(&self) -> Result<Arc<ClusterMetadata>, Error> {
        let request = MetadataRequest {
            topics: None,
            ..Default::default()
        };
        self.apply_metadata_request(&request).await
    }

    async fn apply_metadata_request(
        &self,
        request: &MetadataRequest,
    ) -> Result<Arc<ClusterMetadata>, Error> {
        let response = self.send_any(request).await?;
        let mut guard = self
            .inner
            .metadata
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = Arc::new(guard.merged(&response, Instant::now(), request.topics.is_none()));
        *guard = next.clone();
        Ok(next)
    }

    /// The topic's metadata from cache, refreshed when missing, failed or older than
    /// `metadata.max.age.ms`. Retriable failures (a topic being created, a leader being
    /// elected, a broker restarting) are retried every `retry.backoff.ms` for up to
    /// `max_wait`.
    pub async fn topic_info(
        &self,
        topic: &str,
        allow_auto_topic_creation: bool,
        max_wait: Duration,
    ) -> Result<Arc<TopicInfo>, Error> {
        let cached = self.metadata();
        if let (Some(info), Some(at)) = (
            cached.topics.get(topic),
            cached.topic_refreshed_at.get(topic),
        ) {
            let fresh = at.elapsed() < self.inner.config.metadata_max_age;
            if fresh && info.error == ErrorCode::None && usable(info) {
                return Ok(info.clone());
            }
        }
        let deadline = Instant::now() + max_wait;
        loop {
            let result = self
                .refresh_metadata(&[topic.to_string()], allow_auto_topic_creation)
                .await
                .and_then(|metadata| match metadata.topics.get(topic) {
                    Some(info) if info.error == ErrorCode::None && usable(info) => Ok(info.clone()),
                    Some(info) if info.error == ErrorCode::None => Err(Error::Topic {
                        topic: topic.to_string(),
                        code: ErrorCode::LeaderNotAvailable,
                    }),
                    Some(info) => Err(Error::Topic {
                        topic: topic.to_string(),
                        code: info.error,
                    }),
                    None => Err(Error::Topic {
                        topic: topic.to_string(),
                        code: ErrorCode::UnknownTopicOrPartition,
                    }),
                });
            match result {
                Err(error) if error.is_retriable() && Instant::now() < deadline => {
                    let wake = (Instant::now() + self.inner.config.retry_backoff).min(deadline);
                    tokio::time::sleep_until(wake.into()).await;
                }
                other => return other,
            }
        }
    }
}

/// Whether a described topic can be produced to: it has partitions and each has a leader.
fn usable(info: &TopicInfo) -> bool {
    !info.partitions.is_empty() && info.leaderless_partitions == 0
}
