//! The connection table: at most one preferred connection per peer, and at most one dial to
//! a peer at a time.
//!
//! Two nodes that call each other for the first time at the same moment each dial, and both
//! connections complete. Each side then applies the same rule ([`choose`]) and so prefers the
//! same one: the connection dialed by the lower node id. The other is "lingered" by the node
//! that dialed it: no new calls go over it, and it is closed once it has been idle for a
//! while, so calls the peer made over it before it switched still get their answers. A
//! connection from a restarted node (a new incarnation) or a redial by the same node replaces
//! the old one at once: the old one is closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// Who opened a connection, and which process of the peer is at its other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Origin {
    pub dialed_by: i32,
    pub peer_incarnation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    Existing,
    New,
}

/// What happens to the connection that is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Its far end is gone or has moved on: close it now.
    CloseNow,
    /// This node dialed it: close it once idle (the peer may still be using it briefly).
    Linger,
    /// The peer dialed it and will linger it.
    Leave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Choice {
    pub keep: Keep,
    pub loser: Fate,
}

/// Which of two live, verified connections to the same peer node `self_id` keeps.
///
/// Both nodes reach the same answer from their own side, which is what makes the pair settle
/// on one connection.
pub(super) fn choose(self_id: i32, existing: Origin, new: Origin) -> Choice {
    if existing.peer_incarnation != new.peer_incarnation || existing.dialed_by == new.dialed_by {
        return Choice {
            keep: Keep::New,
            loser: Fate::CloseNow,
        };
    }
    let (keep, loser_dialed_by) = match new.dialed_by < existing.dialed_by {
        true => (Keep::New, existing.dialed_by),
        false => (Keep::Existing, new.dialed_by),
    };
    let loser = match loser_dialed_by == self_id {
        true => Fate::Linger,
        false => Fate::Leave,
    };
    Choice { keep, loser }
}

/// Streams on one connection, in both directions, for deciding when a lingered one is idle.
#[derive(Debug, Default)]
pub(super) struct Activity {
    in_flight: AtomicUsize,
    started: AtomicU64,
}

impl Activity {
    pub fn begin(self: &Arc<Self>) -> ActivityGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        ActivityGuard(self.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

/// One stream in flight; ends when dropped.
pub(super) struct ActivityGuard(Arc<Activity>);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection whose Hello exchange succeeded: its peer's identity is proven.
#[derive(Clone)]
pub(super) struct Link {
    pub conn: quinn::Connection,
    pub peer: i32,
    pub origin: Origin,
    pub activity: Arc<Activity>,
}

impl Link {
    pub fn new(conn: quinn::Connection, peer: i32, origin: Origin) -> Self {
        Link {
            conn,
            peer,
            origin,
            activity: Arc::default(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.conn.close_reason().is_none()
    }
}

/// Why a dial failed, shared by every call that waited on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DialError {
    Unreachable(String),
    Refused(String),
    Closed,
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Unreachable(reason) => write!(f, "unreachable: {reason}"),
            DialError::Refused(reason) => write!(f, "refused: {reason}"),
            DialError::Closed => f.write_str("the transport is closed"),
        }
    }
}

/// `None` while the dial runs.
pub(super) type DialOutcome = Option<Result<Link, DialError>>;

/// What a caller should do to reach a peer.
pub(super) enum Lookup {
    Live(Link),
    /// Another call is dialing: wait for its outcome.
    Join(watch::Receiver<DialOutcome>),
    /// Nobody is: this caller must start the dial, send its outcome and call
    /// [`Links::finish_dial`].
    Dial(watch::Sender<DialOutcome>, watch::Receiver<DialOutcome>),
}

/// The result of [`Links::adopt`].
pub(super) struct Adopted {
    /// The connection calls to this peer now use.
    pub preferred: Link,
    /// The connection that lost, if there was a contest, and what to do with it.
    pub loser: Option<(Link, Fate)>,
}

#[derive(Default)]
struct Table {
    preferred: HashMap<i32, Link>,
    dialing: HashMap<i32, watch::Receiver<DialOutcome>>,
}

/// `Send + Sync`; one per transport.
#[derive(Default)]
pub(super) struct Links {
    table: Mutex<Table>,
}

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn lookup(&self, peer: i32) -> Lookup {
        let mut table = self.lock();
        match table.preferred.get(&peer) {
            Some(link) if link.is_open() => return Lookup::Live(link.clone()),
            Some(_) => {
                table.preferred.remove(&peer);
            }
            None => {}
        }
        if let Some(receiver) = table.dialing.get(&peer) {
            return Lookup::Join(receiver.clone());
        }
        let (sender, receiver) = watch::channel(None);
        table.dialing.insert(peer, receiver.clone());
        Lookup::Dial(sender, receiver)
    }

    /// Ends the dial to `peer` that [`Lookup::Dial`] started (`dial` is its receiver): later
    /// calls dial afresh, or use the connection it adopted.
    pub fn finish_dial(&self, peer: i32, dial: &watch::Receiver<DialOutcome>) {
        let mut table = self.lock();
        if table
            .dialing
            .get(&peer)
            .is_some_and(|current| current.same_channel(dial))
        {
            table.dialing.remove(&peer);
        }
    }

    /// Makes `link` the peer's connection, or keeps the one already there, by [`choose`].
    pub fn adopt(&self, self_id: i32, link: Link) -> Adopted {
        let mut table = self.lock();
        let existing = match table.preferred.get(&link.peer) {
            Some(existing) if existing.is_open() => existing.clone(),
            _ => {
                table.preferred.insert(link.peer, link.clone());
                return Adopted {
                    preferred: link,
                    loser: None,
                };
            }
        };
        let choice = choose(self_id, existing.origin, link.origin);
        match choice.keep {
            Keep::New => {
                table.preferred.insert(link.peer, link.clone());
                Adopted {
                    preferred: link,
                    loser: Some((existing, choice.loser)),
                }
            }
            Keep::Existing => Adopted {
                preferred: existing,
                loser: Some((link, choice.loser)),
            },
        }
    }

    /// Forgets the peer's connection if it is this one (a connection that closed).
    pub fn forget(&self, peer: i32, conn: &quinn::Connection) {
        let mut table = self.lock();
        if table
            .preferred
            .get(&peer)
            .is_some_and(|link| link.conn.stable_id() == conn.stable_id())
        {
            table.preferred.remove(&peer);
        }
    }

    /// The peers with a preferred connection that is open.
    pub fn connected_peers(&self) -> Vec<i32> {
        let table = self.lock();
        let mut peers: Vec<i32> = table
            .preferred
            .iter()
            .filter(|(_, link)| link.is_open())
            .map(|(peer, _)| *peer)
            .collect();
        peers.sort_unstable();
        peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: u64 = 7;

    fn dialed_by(node: i32) -> Origin {
        Origin {
            dialed_by: node,
            peer_incarnation: BOOT,
        }
    }

    #[test]
    fn both_sides_of_a_simultaneous_dial_keep_the_lower_ids_connection() {
        // Nodes 1 and 2 dialed each other. Whichever each side registered first...
        let at_1 = [
            choose(1, dialed_by(1), dialed_by(2)),
            choose(1, dialed_by(2), dialed_by(1)),
        ];
        let at_2 = [
            choose(2, dialed_by(1), dialed_by(2)),
            choose(2, dialed_by(2), dialed_by(1)),
        ];
        // ...both keep node 1's connection.
        assert_eq!(at_1[0].keep, Keep::Existing);
        assert_eq!(at_1[1].keep, Keep::New);
        assert_eq!(at_2[0].keep, Keep::Existing);
        assert_eq!(at_2[1].keep, Keep::New);
        // Node 2 dialed the loser, so node 2 lingers it and node 1 leaves it to node 2.
        assert!(at_1.iter().all(|c| c.loser == Fate::Leave));
        assert!(at_2.iter().all(|c| c.loser == Fate::Linger));
    }

    #[test]
    fn a_restarted_peers_connection_replaces_the_old_one_at_once() {
        let old = dialed_by(1);
        let new = Origin {
            dialed_by: 2,
            peer_incarnation: BOOT + 1,
        };
        let choice = choose(1, old, new);
        assert_eq!(choice.keep, Keep::New);
        assert_eq!(choice.loser, Fate::CloseNow);
    }

    #[test]
    fn a_redial_by_the_same_node_replaces_the_old_connection() {
        for self_id in [1, 2] {
            let choice = choose(self_id, dialed_by(2), dialed_by(2));
            assert_eq!(choice.keep, Keep::New);
            assert_eq!(choice.loser, Fate::CloseNow);
        }
    }

    #[test]
    fn activity_counts_streams_in_flight_and_started() {
        let activity = Arc::new(Activity::default());
        let first = activity.begin();
        let second = activity.begin();
        assert_eq!((activity.in_flight(), activity.started()), (2, 2));
        drop(first);
        drop(second);
        assert_eq!((activity.in_flight(), activity.started()), (0, 2));
    }
}
