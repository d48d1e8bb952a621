//! What a leader knows of one follower during its tenure (Kafka's `Replica` state).

use std::time::{Duration, Instant};

use super::leader::FollowerFetch;

/// Leader log ends remembered per follower, with the time of the fetch that saw each.
///
/// Kafka remembers one (the leader's log end at the follower's previous fetch): a follower
/// whose fetch offset has reached it was caught up at that fetch's time. Spate measures
/// the durable offset instead (notes §5), and a follower that reports its sync in a later
/// message than its fetch trails its fetch offset by a round or two; four fetches of history
/// keep a healthy follower's caught-up time within a couple of round trips of now, at
/// 4 × 24 bytes per follower.
const CAUGHT_UP_SAMPLES_MAX: usize = 4;

/// One follower's positions and clocks, as the leader sees them.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    /// Its log end at its last fetch; `None` until it fetches in this tenure.
    pub(crate) fetch_offset: Option<i64>,
    /// Its durable offset at its last fetch (what counts for the HW); `None` likewise.
    pub(crate) durable_offset: Option<i64>,
    pub(crate) log_start: Option<i64>,
    /// The broker epoch its last fetch carried (KIP-903).
    pub(crate) broker_epoch: Option<i64>,
    pub(crate) last_fetch_at: Option<Instant>,
    /// The last time its durable offset covered the leader's log end; `None` is Kafka's 0.
    pub(crate) last_caught_up_at: Option<Instant>,
    /// Whether it may join the ISR, as of the last check against the image.
    pub(crate) eligible: bool,
    /// It fetched since the leader last considered ISR changes: Kafka decides an
    /// expansion on the fetch path (`maybeExpandIsr`), so only a follower that is fetching
    /// is added.
    pub(crate) fetched_since_poll: bool,
    samples: [Option<(Instant, i64)>; CAUGHT_UP_SAMPLES_MAX],
    next_sample: usize,
}

impl Progress {
    /// A follower at the start of a tenure: positions unknown, so the HW waits for it if it
    /// is in the ISR; an ISR member counts as caught up now, anyone else as never
    /// (`Replica.resetReplicaState`).
    pub(crate) fn new(now: Instant, in_isr: bool) -> Self {
        Self {
            fetch_offset: None,
            durable_offset: None,
            log_start: None,
            broker_epoch: None,
            last_fetch_at: None,
            last_caught_up_at: in_isr.then_some(now),
            eligible: false,
            fetched_since_poll: false,
            samples: [None; CAUGHT_UP_SAMPLES_MAX],
            next_sample: 0,
        }
    }

    /// Records a fetch the leader accepted (`Replica.updateFetchStateOrThrow`): the
    /// positions are overwritten, as Kafka does, and the caught-up time moves to the latest
    /// fetch at which the leader's log end was at or below the durable offset now reported.
    pub(crate) fn record(&mut self, now: Instant, fetch: &FollowerFetch, leader_log_end: i64) {
        self.samples[self.next_sample] = Some((now, leader_log_end));
        self.next_sample = (self.next_sample + 1) % CAUGHT_UP_SAMPLES_MAX;
        let caught_up_at = self
            .samples
            .iter()
            .flatten()
            .filter(|&&(_, end)| end <= fetch.durable_offset)
            .map(|&(at, _)| at)
            .max();
        self.last_caught_up_at = self.last_caught_up_at.max(caught_up_at);
        self.fetch_offset = Some(fetch.fetch_offset);
        self.durable_offset = Some(fetch.durable_offset);
        self.log_start = Some(fetch.log_start);
        self.broker_epoch = Some(fetch.broker_epoch);
        self.last_fetch_at = Some(now);
        self.fetched_since_poll = true;
    }

    /// Kafka's `ReplicaState.isCaughtUp`, on durable offsets: it holds the leader's whole log,
    /// or it did less than `lag_max` ago. (Kafka allows exactly `lag_max`; Spate's timer
    /// fires at the deadline, so the boundary itself counts as late.)
    pub(crate) fn is_caught_up(
        &self,
        now: Instant,
        leader_log_end: i64,
        lag_max: Duration,
    ) -> bool {
        self.durable_offset == Some(leader_log_end)
            || self
                .last_caught_up_at
                .is_some_and(|at| now.saturating_duration_since(at) < lag_max)
    }

    /// When it stops counting as caught up if it does not fetch again, unless it already
    /// holds the leader's whole log.
    pub(crate) fn lag_deadline(&self, leader_log_end: i64, lag_max: Duration) -> Option<Instant> {
        if self.durable_offset == Some(leader_log_end) {
            return None;
        }
        self.last_caught_up_at
            .and_then(|at| at.checked_add(lag_max))
    }
}
