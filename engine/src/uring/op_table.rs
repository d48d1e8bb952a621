//! The table of operations the kernel currently holds: what keeps their memory alive.
//!
//! Lives on one shard (it is `!Send`). Every submitted SQE carries the key of its entry as
//! `user_data`. An entry owns the file handle, the buffers and the iovec array the kernel reads
//! from, so they cannot be freed before the kernel has posted the completion, even if the
//! future that asked for the operation is dropped first (then the entry is *orphaned* and freed
//! by the reaper when the CQE arrives). This table is the memory-safety half of the io_uring
//! driver; `ring.rs` holds the other half.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::Waker;

use bytes::Bytes;

/// A file the driver may write to. `Arc` so an in-flight operation keeps the descriptor open.
pub type SharedFile = Arc<dyn AsRawFd + Send + Sync>;

/// What an entry keeps alive until its completion arrives. Never read: owning it is the point.
#[allow(dead_code)]
pub(crate) struct OpResources {
    pub(crate) file: SharedFile,
    pub(crate) buffers: Vec<Bytes>,
    pub(crate) iovecs: Box<[libc::iovec]>,
}

/// One in-flight operation.
struct OpEntry {
    /// Held only so the kernel's view of the memory stays valid; read by nobody.
    _resources: OpResources,
    result: Option<i32>,
    waker: Option<Waker>,
    /// The future that asked for it is gone; free the entry as soon as the CQE arrives.
    orphaned: bool,
}

/// A slab of in-flight operations with a fixed capacity.
pub(crate) struct OpTable {
    entries: Vec<Option<OpEntry>>,
    free_keys: Vec<usize>,
    in_flight_count: usize,
}

impl OpTable {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: (0..capacity).map(|_| None).collect(),
            free_keys: (0..capacity).rev().collect(),
            in_flight_count: 0,
        }
    }

    pub(crate) fn free_count(&self) -> usize {
        self.free_keys.len()
    }

    #[cfg(test)]
    pub(crate) fn in_flight_count(&self) -> usize {
        self.in_flight_count
    }

    /// Stores `resources` and returns the key to put in the SQE's `user_data`, or `None` when
    /// the table is full (the caller waits for a slot).
    pub(crate) fn insert(&mut self, resources: OpResources) -> Option<usize> {
        let key = self.free_keys.pop()?;
        self.entries[key] = Some(OpEntry {
            _resources: resources,
            result: None,
            waker: None,
            orphaned: false,
        });
        self.in_flight_count += 1;
        Some(key)
    }

    /// Records the kernel's result for `key`. Returns the waker to wake, if any. Unknown keys
    /// are ignored: a CQE we did not ask for must not crash the shard.
    pub(crate) fn complete(&mut self, key: usize, result: i32) -> Option<Waker> {
        let slot = self.entries.get_mut(key)?;
        let entry = slot.as_mut()?;
        if entry.result.is_some() {
            return None;
        }
        if entry.orphaned {
            *slot = None;
            self.free_keys.push(key);
            self.in_flight_count -= 1;
            return None;
        }
        entry.result = Some(result);
        entry.waker.take()
    }

    /// Takes the result of a completed entry and frees it; otherwise stores `waker`.
    pub(crate) fn poll_result(&mut self, key: usize, waker: &Waker) -> Option<i32> {
        let slot = self.entries.get_mut(key)?;
        let entry = slot.as_mut()?;
        match entry.result {
            Some(result) => {
                *slot = None;
                self.free_keys.push(key);
                self.in_flight_count -= 1;
                Some(result)
            }
            None => {
                entry.waker = Some(waker.clone());
                None
            }
        }
    }

    /// The waiting future was dropped: free now if the kernel is done, else on completion.
    pub(crate) fn abandon(&mut self, key: usize) {
        let Some(slot) = self.entries.get_mut(key) else {
            return;
        };
        let Some(entry) = slot.as_mut() else {
            return;
        };
        if entry.result.is_some() {
            *slot = None;
            self.free_keys.push(key);
            self.in_flight_count -= 1;
        } else {
            entry.orphaned = true;
            entry.waker = None;
        }
    }

    /// Keys the kernel still owns (no result yet), for the drop-time drain.
    pub(crate) fn kernel_owned_count(&self) -> usize {
        self.entries
            .iter()
            .flatten()
            .filter(|entry| entry.result.is_none())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn resources() -> OpResources {
        let file: SharedFile = Arc::new(File::open("/dev/null").unwrap());
        OpResources {
            file,
            buffers: vec![Bytes::from_static(b"x")],
            iovecs: Box::new([]),
        }
    }

    #[test]
    fn full_table_refuses_inserts_until_a_result_is_taken() {
        let mut table = OpTable::with_capacity(2);
        let a = table.insert(resources()).unwrap();
        let _b = table.insert(resources()).unwrap();
        assert!(table.insert(resources()).is_none());
        table.complete(a, 1);
        assert!(table.insert(resources()).is_none(), "result not taken yet");
        let waker = std::task::Waker::noop();
        assert_eq!(table.poll_result(a, waker), Some(1));
        assert!(table.insert(resources()).is_some());
    }

    #[test]
    fn abandoned_entry_is_kept_until_the_kernel_completes_it() {
        let mut table = OpTable::with_capacity(1);
        let key = table.insert(resources()).unwrap();
        table.abandon(key);
        assert_eq!(table.kernel_owned_count(), 1);
        assert!(table.insert(resources()).is_none());
        table.complete(key, 0);
        assert_eq!(table.in_flight_count(), 0);
        assert!(table.insert(resources()).is_some());
    }

    #[test]
    fn completion_for_an_unknown_key_is_ignored() {
        let mut table = OpTable::with_capacity(1);
        assert!(table.complete(7, 0).is_none());
        assert!(table.complete(0, 0).is_none());
    }
}
