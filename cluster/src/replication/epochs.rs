//! The leader-epoch cache (epoch → start offset), as Kafka's `LeaderEpochFileCache` keeps
//! it: the reference for [`EpochSource`] answers, used by the simulator and available to the
//! engine.
//!
//! Entries are strictly increasing in both epoch and start offset. A leader *assigns* its
//! epoch at its log end when it takes over (KAFKA-7415), so the entry can exist with no
//! batch after it; truncation removes every entry that starts at or after the new end
//! (Kafka's `UnifiedLog.truncateTo` does so even when the end does not move, which is how
//! such an empty entry goes away once another leader's data replaces it).

use super::EpochSource;

/// A leader-epoch cache in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    /// `(epoch, start offset)`, both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `LeaderEpochFileCache.assign`):
    /// a no-op if it is the latest entry already; otherwise every entry with an epoch ≥
    /// `epoch` or a start ≥ `start_offset` is replaced by it. Negative values are ignored.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) {
        if epoch < 0 || start_offset < 0 {
            return;
        }
        if let Some(&(latest, start)) = self.entries.last()
            && latest == epoch
            && start <= start_offset
        {
            return;
        }
        self.entries
            .retain(|&(e, start)| e < epoch && start < start_offset);
        self.entries.push((epoch, start_offset));
    }

    /// Drops every entry that starts at or after `end_offset` (a truncation of the log to
    /// `end_offset`; Kafka's `truncateFromEnd`).
    pub fn truncate_from_end(&mut self, end_offset: i64) {
        self.entries.retain(|&(_, start)| start < end_offset);
    }

    /// Drops entries wholly below `start_offset` and moves the first kept one up to it
    /// (retention moved the log start; Kafka's `truncateFromStart`).
    pub fn truncate_from_start(&mut self, start_offset: i64) {
        let first_kept = self
            .entries
            .iter()
            .rposition(|&(_, start)| start <= start_offset);
        if let Some(index) = first_kept {
            self.entries.drain(..index);
            if let Some(first) = self.entries.first_mut() {
                first.1 = start_offset;
            }
        }
    }

    /// Kafka's `endOffsetFor` over a log that ends at `log_end`; see
    /// [`EpochSource::end_offset_for`].
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        let &(latest, _) = self.entries.last()?;
        if latest == epoch {
            return Some((epoch, log_end));
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= epoch);
        let &(_, next_start) = self.entries.get(higher)?;
        let floor = higher.checked_sub(1).and_then(|i| self.entries.get(i));
        Some((floor.map_or(epoch, |&(e, _)| e), next_start))
    }

    /// The cache as an [`EpochSource`] for a log that ends at `log_end`.
    pub fn view(&self, log_end: i64) -> EpochView<'_> {
        EpochView {
            cache: self,
            log_end,
        }
    }
}

/// An [`EpochCache`] with its log's end: what [`EpochSource`] lookups need.
#[derive(Debug, Clone, Copy)]
pub struct EpochView<'a> {
    cache: &'a EpochCache,
    log_end: i64,
}

impl EpochSource for EpochView<'_> {
    fn end_offset_for(&self, epoch: i32) -> Option<(i32, i64)> {
        self.cache.end_offset_for(epoch, self.log_end)
    }

    fn latest_epoch(&self) -> Option<i32> {
        self.cache.entries.last().map(|&(epoch, _)| epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut cache = EpochCache::new();
        for &(epoch, start) in entries {
            cache.assign(epoch, start);
        }
        assert_eq!(cache.entries(), entries);
        cache
    }

    #[test]
    fn end_offsets_follow_kafkas_leader_epoch_file_cache() {
        let c = cache(&[(1, 0), (3, 10), (6, 25)]);
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(6, 40), Some((6, 40)));
        // An epoch in the cache ends where the next starts.
        assert_eq!(c.end_offset_for(3, 40), Some((3, 25)));
        // An epoch the cache lacks: the largest below it, ending where the next starts.
        assert_eq!(c.end_offset_for(2, 40), Some((1, 10)));
        assert_eq!(c.end_offset_for(5, 40), Some((3, 25)));
        // Below every entry: the epoch asked, ending at the first start.
        assert_eq!(cache(&[(4, 7)]).end_offset_for(2, 9), Some((2, 7)));
        // Above the latest, negative, or empty: undefined.
        assert_eq!(c.end_offset_for(7, 40), None);
        assert_eq!(c.end_offset_for(-1, 40), None);
        assert_eq!(EpochCache::new().end_offset_for(0, 0), None);
    }

    #[test]
    fn assigning_replaces_conflicting_entries_and_truncation_drops_empty_tenures() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        c.assign(3, 12);
        assert_eq!(
            c.entries(),
            &[(1, 0), (3, 10)],
            "re-assigning the latest is a no-op"
        );
        c.assign(5, 10);
        assert_eq!(
            c.entries(),
            &[(1, 0), (5, 10)],
            "same start: the older tenure never wrote"
        );
        c.assign(2, 8);
        assert_eq!(
            c.entries(),
            &[(1, 0), (2, 8)],
            "a lower epoch replaces everything after"
        );
        // A tenure begun at the log end with no append is dropped by a truncation to it.
        c.assign(7, 20);
        c.truncate_from_end(20);
        assert_eq!(c.entries(), &[(1, 0), (2, 8)]);
        c.truncate_from_start(9);
        assert_eq!(c.entries(), &[(2, 9)]);
        c.truncate_from_start(3);
        assert_eq!(
            c.entries(),
            &[(2, 9)],
            "below the first start: nothing to drop"
        );
    }
}
