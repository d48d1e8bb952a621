//! Broker registration, heartbeats, fencing and controlled shutdown (KIP-631's broker
//! lifecycle), with leader elections for the partitions each change touches.
//!
//! A broker's life, as the image records it:
//!
//! 1. It registers: a [`RecordBody::RegisterBroker`] gives it a new broker epoch (the log
//!    index of that record) and leaves it fenced.
//! 2. It heartbeats; once its metadata offset reaches its own registration it is unfenced,
//!    and leaderless partitions whose ISR holds it elect it.
//! 3. If its heartbeats stop for a session timeout it is fenced: it leaves every ISR where
//!    it is not the last member, and the partitions it led elect another live ISR member.
//! 4. To stop cleanly it heartbeats with `want_shutdown`: it enters controlled shutdown (no
//!    new leaderships, out of the ISRs, leaderships moved), and once it leads nothing it is
//!    told to shut down and is fenced.
//!
//! Sessions live only in the active controller's memory: the log records who is fenced, not
//! when a broker last called. A new active controller gives every broker a fresh session
//! ([`BrokerSessions::reset`]), as Kafka's does, so a failover never fences a healthy broker.
//!
//! Every method takes the image that includes every earlier decision's records (decisions
//! are made one at a time). The sessions remember what they decided (a pending
//! registration, an unfence), and check it against each image they are given.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::NodeId;
use crate::controller::leadership;
use crate::image::{BrokerRegistration, ClusterImage, NAME_BYTES_MAX};
use crate::records::{Endpoint, RecordBody};

/// A broker asks to join (at start, or after its registration was lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBroker {
    pub node_id: NodeId,
    pub incarnation_id: String,
    pub kafka: Endpoint,
    pub cluster_addr: String,
    pub rack: Option<String>,
}

/// A broker's periodic heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub node_id: NodeId,
    pub broker_epoch: i64,
    /// The offset of the last metadata record the broker has applied.
    pub metadata_offset: u64,
    /// The broker is stopping and asks for its leaderships to move first.
    pub want_shutdown: bool,
}

/// What the controller tells a broker after a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
    /// Controlled shutdown is done: the broker leads nothing any more and may exit.
    pub should_shut_down: bool,
}

/// Why a registration or heartbeat is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("broker {0} is not registered; register first")]
    UnknownBroker(NodeId),
    #[error(
        "broker {node_id}'s epoch is {current}, not {found}: it restarted or was re-registered; register again"
    )]
    StaleBrokerEpoch {
        node_id: NodeId,
        current: i64,
        found: i64,
    },
    #[error(
        "node id {0} is already registered by a live broker (another incarnation is heartbeating); give each node its own --node-id"
    )]
    DuplicateRegistration(NodeId),
    #[error("invalid registration: {0}")]
    Invalid(String),
}

/// One broker's session.
#[derive(Debug, Clone)]
struct Session {
    /// The incarnation this session belongs to.
    incarnation_id: String,
    /// The epoch of the registration this session belongs to; `None` while the registration
    /// this controller decided is not yet in the image (the epoch is its log index).
    broker_epoch: Option<i64>,
    last_heartbeat_at: Instant,
    /// Fenced as of the last image seen, or as this controller has since decided.
    fenced: bool,
    /// This controller has heard from this incarnation (a registration or heartbeat), as
    /// opposed to a session it presumed when it took over. Only a session it has heard from
    /// makes another incarnation's registration a duplicate: a node restarted while the
    /// controller moved (a single node restarting, above all) re-registers at once instead
    /// of waiting out the session the new controller presumed for its dead predecessor.
    heard_from: bool,
}

impl Session {
    fn for_registration(broker: &BrokerRegistration, now: Instant) -> Self {
        Self {
            incarnation_id: broker.incarnation_id.clone(),
            broker_epoch: Some(broker.broker_epoch),
            last_heartbeat_at: now,
            fenced: broker.fenced,
            heard_from: false,
        }
    }

    fn is_pending(&self) -> bool {
        self.broker_epoch.is_none()
    }
}

/// The active controller's view of broker sessions: when each broker last heartbeated.
/// Kept in memory only; a new active controller gives every broker a fresh session.
#[derive(Debug)]
pub struct BrokerSessions {
    session_timeout: Duration,
    sessions: BTreeMap<NodeId, Session>,
}

impl BrokerSessions {
    pub fn new(session_timeout: Duration) -> Self {
        Self {
            session_timeout,
            sessions: BTreeMap::new(),
        }
    }

    /// On becoming the active controller: every registered broker gets a full session.
    pub fn reset(&mut self, image: &ClusterImage, now: Instant) {
        self.sessions = image
            .brokers()
            .map(|broker| (broker.node_id, Session::for_registration(broker, now)))
            .collect();
    }

    /// Records that register the broker (fenced, new epoch), or none if this incarnation is
    /// already registered (a retried request).
    ///
    /// Another incarnation's registration is replaced only once it is fenced or its session
    /// has expired; replacing an unfenced one also takes it out of every ISR and leadership,
    /// as its expiry would have, so no partition is left led by a fenced broker.
    pub fn register(
        &mut self,
        image: &ClusterImage,
        now: Instant,
        request: &RegisterBroker,
    ) -> Result<Vec<RecordBody>, SessionError> {
        check_registration(request).map_err(SessionError::Invalid)?;
        self.sync(image, now);
        let node_id = request.node_id;
        let existing = image.broker(node_id);
        if let Some(existing) = existing
            && existing.incarnation_id == request.incarnation_id
        {
            if let Some(session) = self.sessions.get_mut(&node_id)
                && session.broker_epoch == Some(existing.broker_epoch)
            {
                session.last_heartbeat_at = now;
                session.heard_from = true;
            }
            return Ok(Vec::new());
        }
        if let Some(session) = self.sessions.get(&node_id) {
            let same_incarnation = session.incarnation_id == request.incarnation_id;
            let in_service = session.is_pending() || existing.is_some_and(|b| !b.fenced);
            if !same_incarnation
                && in_service
                && session.heard_from
                && !self.is_expired(session, now)
            {
                return Err(SessionError::DuplicateRegistration(node_id));
            }
        }
        let mut records = Vec::new();
        if existing.is_some_and(|b| !b.fenced) {
            records.extend(leadership::remove_from_isrs(
                image,
                &BTreeSet::from([node_id]),
            ));
        }
        records.push(RecordBody::RegisterBroker {
            node_id,
            incarnation_id: request.incarnation_id.clone(),
            kafka: request.kafka.clone(),
            cluster_addr: request.cluster_addr.clone(),
            rack: request.rack.clone(),
        });
        self.sessions.insert(
            node_id,
            Session {
                incarnation_id: request.incarnation_id.clone(),
                broker_epoch: None,
                last_heartbeat_at: now,
                fenced: true,
                heard_from: true,
            },
        );
        Ok(records)
    }

    /// Renews the broker's session; returns the reply (computed on `image`) and the
    /// records the heartbeat calls for (unfence once caught up, controlled shutdown).
    ///
    /// A fenced broker that asks to shut down may do so at once: it leads nothing.
    pub fn heartbeat(
        &mut self,
        image: &ClusterImage,
        now: Instant,
        request: &Heartbeat,
    ) -> Result<(HeartbeatReply, Vec<RecordBody>), SessionError> {
        self.sync(image, now);
        let node_id = request.node_id;
        let broker = image
            .broker(node_id)
            .ok_or(SessionError::UnknownBroker(node_id))?;
        if broker.broker_epoch != request.broker_epoch {
            return Err(SessionError::StaleBrokerEpoch {
                node_id,
                current: broker.broker_epoch,
                found: request.broker_epoch,
            });
        }
        let session = self
            .sessions
            .entry(node_id)
            .or_insert_with(|| Session::for_registration(broker, now));
        // A pending registration of another incarnation keeps its session: this broker is
        // about to be replaced.
        if session.broker_epoch == Some(broker.broker_epoch) {
            session.last_heartbeat_at = now;
            session.heard_from = true;
        }

        let leads = leadership::leads_any(image, node_id);
        let stopping = broker.in_controlled_shutdown || (broker.fenced && request.want_shutdown);
        let reply = HeartbeatReply {
            fenced: broker.fenced,
            in_controlled_shutdown: broker.in_controlled_shutdown,
            should_shut_down: stopping && !leads,
        };
        let this_node = BTreeSet::from([node_id]);
        let change =
            |fenced: Option<bool>, in_controlled_shutdown: Option<bool>| RecordBody::BrokerChange {
                node_id,
                broker_epoch: broker.broker_epoch,
                fenced,
                in_controlled_shutdown,
            };
        let mut records = Vec::new();
        if !broker.fenced && reply.should_shut_down {
            // Controlled shutdown is done: fence it so it is in no new ISR.
            records.push(change(Some(true), None));
            records.extend(leadership::remove_from_isrs(image, &this_node));
            session.fenced = true;
        } else if !broker.fenced && (request.want_shutdown || broker.in_controlled_shutdown) {
            // Entering (or still in) controlled shutdown: move what can be moved. Once in
            // controlled shutdown a broker stays there until it registers again.
            if !broker.in_controlled_shutdown {
                records.push(change(None, Some(true)));
            }
            records.extend(leadership::remove_from_isrs(image, &this_node));
        } else if broker.fenced
            && !broker.in_controlled_shutdown
            && !request.want_shutdown
            && has_caught_up(broker, request.metadata_offset)
        {
            records.push(change(Some(false), None));
            records.extend(leadership::elect_leaderless(image, node_id));
            session.fenced = false;
        }
        Ok((reply, records))
    }

    /// Records that fence every broker whose session has expired by `now`, with the
    /// elections and ISR shrinks that follow.
    ///
    /// A session expires once `session_timeout` has passed since the last heartbeat. A
    /// broker seen here for the first time (registered under an earlier controller) gets a
    /// full session from `now` instead.
    pub fn expire(&mut self, image: &ClusterImage, now: Instant) -> Vec<RecordBody> {
        self.sync(image, now);
        let expired: Vec<&BrokerRegistration> = image
            .brokers()
            .filter(|broker| !broker.fenced)
            .filter(|broker| {
                self.sessions.get(&broker.node_id).is_some_and(|session| {
                    session.broker_epoch == Some(broker.broker_epoch)
                        && self.is_expired(session, now)
                })
            })
            .collect();
        let mut records: Vec<RecordBody> = expired
            .iter()
            .map(|broker| RecordBody::BrokerChange {
                node_id: broker.node_id,
                broker_epoch: broker.broker_epoch,
                fenced: Some(true),
                in_controlled_shutdown: None,
            })
            .collect();
        let leaving: BTreeSet<NodeId> = expired.iter().map(|broker| broker.node_id).collect();
        records.extend(leadership::remove_from_isrs(image, &leaving));
        for node_id in &leaving {
            if let Some(session) = self.sessions.get_mut(node_id) {
                session.fenced = true;
            }
        }
        records
    }

    /// When the next session expires, for the controller's timer: the earliest deadline of
    /// an unfenced broker's session. At that instant [`BrokerSessions::expire`] fences it.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter(|session| !session.fenced && !session.is_pending())
            .filter_map(|session| session.last_heartbeat_at.checked_add(self.session_timeout))
            .min()
    }

    fn is_expired(&self, session: &Session, now: Instant) -> bool {
        now.saturating_duration_since(session.last_heartbeat_at) >= self.session_timeout
    }

    /// Brings the sessions in line with `image`: a broker seen for the first time, or whose
    /// registration changed without this controller deciding it, gets a full session; a
    /// registration this controller decided picks up its epoch once applied; sessions of
    /// brokers no longer registered are dropped (a pending registration is kept for one
    /// session timeout, in case its record is still on its way).
    fn sync(&mut self, image: &ClusterImage, now: Instant) {
        let timeout = self.session_timeout;
        self.sessions.retain(|node_id, session| {
            image.broker(*node_id).is_some()
                || (session.is_pending()
                    && now.saturating_duration_since(session.last_heartbeat_at) < timeout)
        });
        for broker in image.brokers() {
            let Some(session) = self.sessions.get_mut(&broker.node_id) else {
                self.sessions
                    .insert(broker.node_id, Session::for_registration(broker, now));
                continue;
            };
            match session.broker_epoch {
                Some(epoch) if epoch == broker.broker_epoch => session.fenced = broker.fenced,
                None if session.incarnation_id == broker.incarnation_id => {
                    session.broker_epoch = Some(broker.broker_epoch);
                    session.fenced = broker.fenced;
                }
                // Our registration of another incarnation is not applied yet.
                None => {}
                Some(_) => *session = Session::for_registration(broker, now),
            }
        }
    }
}

/// A broker has caught up once it has applied its own registration.
fn has_caught_up(broker: &BrokerRegistration, metadata_offset: u64) -> bool {
    u64::try_from(broker.broker_epoch).is_ok_and(|epoch| metadata_offset >= epoch)
}

/// The checks the image makes on a registration, made here so a refused registration is an
/// error to the broker rather than a record every node refuses.
fn check_registration(request: &RegisterBroker) -> Result<(), String> {
    let node_id = request.node_id;
    if node_id < 0 {
        return Err(format!("node id {node_id} is negative"));
    }
    let bad = |text: &str| text.is_empty() || text.len() > NAME_BYTES_MAX;
    if bad(&request.incarnation_id) {
        return Err(format!(
            "broker {node_id}: the incarnation id must be 1 to {NAME_BYTES_MAX} bytes"
        ));
    }
    if bad(&request.kafka.host) || request.kafka.port == 0 {
        return Err(format!(
            "broker {node_id}: the Kafka listener '{}:{}' needs a host of 1 to {NAME_BYTES_MAX} bytes and a port",
            request.kafka.host.chars().take(64).collect::<String>(),
            request.kafka.port
        ));
    }
    if bad(&request.cluster_addr) {
        return Err(format!(
            "broker {node_id}: the cluster address must be 1 to {NAME_BYTES_MAX} bytes"
        ));
    }
    if request.rack.as_deref().is_some_and(bad) {
        return Err(format!(
            "broker {node_id}: a rack must be 1 to {NAME_BYTES_MAX} bytes"
        ));
    }
    Ok(())
}
