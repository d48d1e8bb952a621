//! Known replication bugs, put back on purpose, to prove that the simulator (and the nemesis
//! harness) would catch them.
//!
//! Each [`Bug`] is one mistake replicated logs are known to have made; the code that would
//! make it asks [`enabled`] at the one place the mistake lives, in the sans-IO state
//! machines, so the deterministic simulator drives exactly the code the broker runs.
//!
//! **Off in every real build.** The switch exists only with the `bug-injection` cargo
//! feature, which no shipped build enables (build a binary for a nemesis run with
//! `--features spate-cluster/bug-injection`). Without it [`enabled`] is a constant `false`,
//! and the compiler removes every injected branch.
//!
//! With the feature, a bug is on when it is in the process-wide set or in the calling
//! thread's set:
//! - the process-wide set comes from `SPATE_INJECT_BUG` (a comma-separated list of
//!   [`Bug::name`]s, read once; `env_injection` reports a name it does not know) and from
//!   `inject_globally`;
//! - the thread's set comes from `inject_on_this_thread`, which tests use: `cargo test`
//!   runs tests as threads of one process, and a bug one test injects must not leak into
//!   the test next to it. The simulator runs every state machine on its own thread.

/// One injectable bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bug {
    /// The leader's high watermark moves with its own sync alone, before the ISR has the
    /// data (`acks=all` degrades to `acks=1`; KAFKA-15583's cousin).
    HwBeforeIsr,
    /// A follower reports its log end as durable before its fdatasync under `flush=always`
    /// (notes §5: the durable offset it sends is what it has written, not what it synced).
    AckBeforeFsync,
    /// A leader is elected from outside the ISR when a broker leaves or returns, as an
    /// unclean election would, without being asked for one (and without KIP-704's recovery).
    UncleanElection,
    /// A follower skips the truncation that follows a leader change: it never names the
    /// epoch of its last batch (KIP-595's `LastFetchedEpoch`), so the leader cannot tell its
    /// log diverges (the KAFKA-1211 family).
    SkipTruncation,
}

impl Bug {
    /// Every bug, in a fixed order.
    pub const ALL: [Bug; 4] = [
        Bug::HwBeforeIsr,
        Bug::AckBeforeFsync,
        Bug::UncleanElection,
        Bug::SkipTruncation,
    ];

    /// The name `SPATE_INJECT_BUG` uses.
    pub fn name(self) -> &'static str {
        match self {
            Bug::HwBeforeIsr => "hw-before-isr",
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::UncleanElection => "unclean-election",
            Bug::SkipTruncation => "skip-truncation",
        }
    }

    /// The bug `name` names, if any.
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|bug| bug.name() == name.trim())
    }

    #[cfg_attr(not(feature = "bug-injection"), allow(dead_code))]
    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A name in `SPATE_INJECT_BUG` that names no bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "SPATE_INJECT_BUG names an unknown bug {0:?} (known: hw-before-isr, ack-before-fsync, unclean-election, skip-truncation)"
)]
pub struct UnknownBug(pub String);

/// Parses a comma-separated list of bug names (empty entries are skipped).
pub fn parse(list: &str) -> Result<Vec<Bug>, UnknownBug> {
    list.split(',')
        .filter(|name| !name.trim().is_empty())
        .map(|name| Bug::from_name(name).ok_or_else(|| UnknownBug(name.trim().to_owned())))
        .collect()
}

/// Whether `bug` is injected. Always `false` without the `bug-injection` feature.
#[cfg(not(feature = "bug-injection"))]
#[inline(always)]
pub const fn enabled(_bug: Bug) -> bool {
    false
}

/// Whether `bug` is injected: in the process-wide set or in this thread's.
#[cfg(feature = "bug-injection")]
pub fn enabled(bug: Bug) -> bool {
    injection::enabled(bug)
}

#[cfg(feature = "bug-injection")]
pub use injection::{ThreadInjection, env_injection, inject_globally, inject_on_this_thread};

#[cfg(feature = "bug-injection")]
mod injection {
    use std::cell::Cell;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::{Bug, UnknownBug, parse};

    /// Bugs injected with [`inject_globally`].
    static GLOBAL: AtomicU32 = AtomicU32::new(0);
    /// Bugs `SPATE_INJECT_BUG` names, parsed on first use.
    static FROM_ENV: OnceLock<Result<Vec<Bug>, UnknownBug>> = OnceLock::new();

    thread_local! {
        static THREAD: Cell<u32> = const { Cell::new(0) };
    }

    fn from_env() -> &'static Result<Vec<Bug>, UnknownBug> {
        FROM_ENV.get_or_init(|| parse(&std::env::var("SPATE_INJECT_BUG").unwrap_or_default()))
    }

    fn env_bits() -> u32 {
        from_env()
            .as_ref()
            .map_or(0, |bugs| bugs.iter().fold(0, |bits, bug| bits | bug.bit()))
    }

    pub(super) fn enabled(bug: Bug) -> bool {
        let bits = GLOBAL.load(Ordering::Relaxed) | THREAD.with(Cell::get) | env_bits();
        bits & bug.bit() != 0
    }

    /// The bugs `SPATE_INJECT_BUG` injects, or the name it does not know (a harness checks
    /// this at start, so a typo does not silently test nothing).
    pub fn env_injection() -> Result<Vec<Bug>, UnknownBug> {
        from_env().clone()
    }

    /// Injects `bug` for every thread of the process, for good.
    pub fn inject_globally(bug: Bug) {
        GLOBAL.fetch_or(bug.bit(), Ordering::Relaxed);
    }

    /// Injects `bugs` on this thread until the guard is dropped (the set before comes back).
    pub fn inject_on_this_thread(bugs: &[Bug]) -> ThreadInjection {
        let bits = bugs.iter().fold(0, |bits, bug| bits | bug.bit());
        let before = THREAD.with(|set| set.replace(bits));
        ThreadInjection { before }
    }

    /// Restores the thread's previous set of injected bugs when dropped.
    #[must_use = "the bugs are injected only while the guard lives"]
    pub struct ThreadInjection {
        before: u32,
    }

    impl Drop for ThreadInjection {
        fn drop(&mut self) {
            THREAD.with(|set| set.set(self.before));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_reported() {
        for bug in Bug::ALL {
            assert_eq!(Bug::from_name(bug.name()), Some(bug));
        }
        assert_eq!(
            parse(" hw-before-isr,,skip-truncation "),
            Ok(vec![Bug::HwBeforeIsr, Bug::SkipTruncation])
        );
        assert_eq!(parse("hw-before-isr,typo"), Err(UnknownBug("typo".into())));
    }

    #[cfg(feature = "bug-injection")]
    #[test]
    fn a_thread_injection_is_scoped_to_its_guard_and_thread() {
        assert!(!enabled(Bug::SkipTruncation));
        {
            let _guard = inject_on_this_thread(&[Bug::SkipTruncation]);
            assert!(enabled(Bug::SkipTruncation));
            let elsewhere = std::thread::spawn(|| enabled(Bug::SkipTruncation));
            assert_eq!(elsewhere.join().ok(), Some(false));
        }
        assert!(!enabled(Bug::SkipTruncation));
    }

    #[cfg(not(feature = "bug-injection"))]
    #[test]
    fn without_the_feature_nothing_is_ever_injected() {
        assert!(Bug::ALL.into_iter().all(|bug| !enabled(bug)));
    }
}
