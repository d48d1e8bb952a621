//! The metadata log's durable openraft log store: entries, vote, committed and purged ids.
//!
//! Entries live in segment files (see [`super::segment`]) and, unpurged, in memory too: the
//! metadata log is small and bounded by the snapshot policy, so replication and re-apply
//! read from a map, never the disk. Every write reaches the disk before openraft hears it
//! succeeded: `append` syncs the segment before its callback, `save_vote` syncs the vote's
//! file and directory before returning.
//!
//! File I/O here is blocking, inside async methods. That is deliberate: metadata writes are
//! rare and small, they run on the controller task, not a data-path shard, and openraft
//! serializes every log write anyway. What this does not do: compress, preallocate, or
//! read entries back from disk after open.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::durable_file::{self, Durability};
use super::error::StoreError;
use super::frame::{self, FRAME_HEADER_BYTES};
use super::segment::{self, ENTRY_BYTES_MAX, SEGMENT_BYTES_MAX, Segment};
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The last vote granted: must survive a crash, or a node could vote twice in one term.
pub const VOTE_FILE: &str = "vote";
/// The last committed log id known, so a restart re-applies up to it before hearing from a
/// leader. Losing the latest one is harmless: an older committed id is still committed.
pub const COMMITTED_FILE: &str = "committed";
/// The last purged log id: entries up to it are gone, and the log resumes after it.
pub const PURGED_FILE: &str = "purged";
/// The state files hold a log id or a vote: a few dozen bytes of JSON.
const STATE_FILE_BYTES_MAX: u32 = 64 * 1024;

/// What the store and its readers share: the unpurged entries, by index.
#[derive(Default)]
struct LogEntries {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
}

impl std::fmt::Debug for LogEntries {
    /// A summary: the entries themselves would flood a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogEntries")
            .field("first", &self.entries.first_key_value().map(|(i, _)| i))
            .field("last", &self.entries.last_key_value().map(|(i, _)| i))
            .field("last_purged", &self.last_purged)
            .finish()
    }
}

/// Reads entries for openraft's replication and re-apply. Cheap to clone; lives wherever
/// openraft moves it (the controller task's runtime).
#[derive(Debug, Clone)]
pub struct LogReader {
    shared: Arc<Mutex<LogEntries>>,
}

impl LogReader {
    fn read(&self, range: impl RangeBounds<u64>) -> Vec<Entry> {
        let start = match range.start_bound() {
            Bound::Included(&start) => start,
            Bound::Excluded(&start) => match start.checked_add(1) {
                Some(start) => start,
                None => return Vec::new(),
            },
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&end) => end.checked_add(1),
            Bound::Excluded(&end) => Some(end),
            Bound::Unbounded => None,
        };
        let shared = lock(&self.shared);
        // `BTreeMap::range` panics on an inverted range; an empty answer is what is asked.
        match end {
            Some(end) if end <= start => Vec::new(),
            Some(end) => shared
                .entries
                .range(start..end)
                .map(|(_, e)| e.clone())
                .collect(),
            None => shared
                .entries
                .range(start..)
                .map(|(_, e)| e.clone())
                .collect(),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.read(range))
    }
}

/// The metadata log store. One per controller node, owned by its openraft task.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    shared: Arc<Mutex<LogEntries>>,
    /// By first index; only the last is written.
    segments: Vec<Segment>,
    /// The last segment, open for appending; `None` when there are no segments.
    active: Option<File>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

impl LogStore {
    /// Opens the log in `dir`, creating it if missing, and checks every segment.
    ///
    /// A torn tail of the last segment is cut (those entries were never acknowledged). Any
    /// other damage, a hole in the log, or an entry this build cannot decode is an error
    /// naming the file and byte: the node must not start on a log it cannot trust.
    pub fn open(dir: &Path) -> Result<LogStore, StoreError> {
        durable_file::ensure_dir(dir)?;
        durable_file::remove_stale_tmp(dir, &[VOTE_FILE, COMMITTED_FILE, PURGED_FILE])?;
        let vote: Option<Vote> = read_state(dir, VOTE_FILE)?;
        let committed = read_state::<Option<LogId>>(dir, COMMITTED_FILE)?.flatten();
        let last_purged: Option<LogId> = read_state(dir, PURGED_FILE)?;

        let Recovered {
            segments,
            entries,
            removed,
        } = recover_segments(dir, last_purged)?;
        if removed {
            durable_file::sync_dir(dir)?;
        }
        let active = match segments.last() {
            Some(last) => Some(open_for_append(&last.path)?),
            None => None,
        };
        tracing::info!(
            dir = %dir.display(),
            segments = segments.len(),
            first = ?entries.first_key_value().map(|(i, _)| *i),
            last = ?entries.last_key_value().map(|(i, _)| *i),
            last_purged = ?last_purged,
            "opened the metadata log"
        );
        Ok(LogStore {
            dir: dir.to_owned(),
            shared: Arc::new(Mutex::new(LogEntries {
                entries,
                last_purged,
            })),
            segments,
            active,
            vote,
            committed,
        })
    }

    fn reader(&self) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    /// The index the next entry must have, or `None` for an empty log with nothing purged
    /// (openraft starts at 0, but nothing here depends on it).
    fn next_index(&self) -> Option<u64> {
        let shared = lock(&self.shared);
        match shared.entries.last_key_value() {
            Some((&last, _)) => last.checked_add(1),
            None => shared.last_purged.and_then(|p| p.index.checked_add(1)),
        }
    }

    /// Writes `entries` at the end of the log and syncs them; returns them for the map.
    ///
    /// Entries at or below the purge point are skipped: they are committed, so already in
    /// the snapshot the purge followed. openraft's storage suite appends such entries
    /// after a purge; a live node does not.
    fn write_entries(
        &mut self,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut next = self.next_index();
        let purged = lock(&self.shared).last_purged.map(|p| p.index);
        let mut buf = Vec::new();
        let mut written = Vec::new();
        let mut started_segment = false;
        for entry in entries {
            let index = entry.log_id.index;
            if purged.is_some_and(|purged| index <= purged) {
                tracing::debug!(index, ?purged, "skipping a log entry already purged");
                continue;
            }
            if let Some(expected) = next
                && index != expected
            {
                return Err(StoreError::OutOfOrder {
                    expected,
                    found: index,
                });
            }
            let payload = serde_json::to_vec(&entry).map_err(|source| StoreError::Encode {
                what: "a metadata log entry",
                source,
            })?;
            if payload.len() > ENTRY_BYTES_MAX as usize {
                return Err(StoreError::TooLarge {
                    size_bytes: payload.len() as u64,
                    limit_bytes: u64::from(ENTRY_BYTES_MAX),
                });
            }
            let full = self
                .segments
                .last()
                .is_none_or(|s| s.size_bytes >= SEGMENT_BYTES_MAX);
            if full {
                // The old segment is synced before the new one exists: only the last
                // segment may ever hold a torn tail.
                self.flush(&mut buf)?;
                self.start_segment(index)?;
                started_segment = true;
            }
            let Some(segment) = self.segments.last_mut() else {
                return Err(no_active_segment(&self.dir));
            };
            segment.offsets.push(segment.size_bytes);
            frame::encode(&payload, &mut buf);
            segment.size_bytes += (FRAME_HEADER_BYTES + payload.len()) as u64;
            written.push(entry);
            next = index.checked_add(1);
        }
        self.flush(&mut buf)?;
        if started_segment {
            durable_file::sync_dir(&self.dir)?;
        }
        Ok(written)
    }

    /// Writes `buf` to the active segment and syncs its data.
    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        if buf.is_empty() {
            return Ok(());
        }
        let (Some(file), Some(segment)) = (self.active.as_mut(), self.segments.last()) else {
            return Err(no_active_segment(&self.dir));
        };
        file.write_all(buf)
            .and_then(|()| file.sync_data())
            .map_err(|e| StoreError::io(&segment.path, e))?;
        buf.clear();
        Ok(())
    }

    fn start_segment(&mut self, first_index: u64) -> Result<(), StoreError> {
        let segment = Segment::new(&self.dir, first_index);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&segment.path)
            .map_err(|e| StoreError::io(&segment.path, e))?;
        self.active = Some(file);
        self.segments.push(segment);
        Ok(())
    }

    /// Removes entries from `index` on: later segments first, each removal synced, so a
    /// crash part way leaves a shorter log, never one with a hole.
    fn truncate_from(&mut self, index: u64) -> Result<(), StoreError> {
        while let Some(last) = self.segments.last() {
            if last.first_index < index {
                break;
            }
            self.active = None;
            fs::remove_file(&last.path).map_err(|e| StoreError::io(&last.path, e))?;
            durable_file::sync_dir(&self.dir)?;
            self.segments.pop();
        }
        if let Some(last) = self.segments.last_mut() {
            if let Some(offset) = last.offset_of(index) {
                segment::cut(&last.path, offset)?;
                let kept = usize::try_from(index - last.first_index).unwrap_or(usize::MAX);
                last.offsets.truncate(kept);
                last.size_bytes = offset;
            }
            if self.active.is_none() {
                self.active = Some(open_for_append(&last.path)?);
            }
        }
        drop(lock(&self.shared).entries.split_off(&index));
        Ok(())
    }

    /// Forgets entries up to `log_id`. The purged id is made durable first; the segments
    /// wholly below it are then removed without a sync, since open removes any that a crash
    /// brings back.
    fn purge_upto(&mut self, log_id: LogId) -> Result<(), StoreError> {
        if lock(&self.shared).last_purged.is_some_and(|p| p >= log_id) {
            return Ok(());
        }
        write_state(&self.dir, PURGED_FILE, &log_id, Durability::Durable)?;
        let purged_next = log_id.index.saturating_add(1);
        {
            let mut shared = lock(&self.shared);
            shared.entries = shared.entries.split_off(&purged_next);
            shared.last_purged = Some(log_id);
        }
        while let Some(first) = self.segments.first() {
            let wholly_purged = match self.segments.get(1) {
                Some(next) => next.first_index <= purged_next,
                None => first.last_index().is_none_or(|last| last < purged_next),
            };
            if !wholly_purged {
                break;
            }
            if self.segments.len() == 1 {
                self.active = None;
            }
            fs::remove_file(&first.path).map_err(|e| StoreError::io(&first.path, e))?;
            self.segments.remove(0);
        }
        Ok(())
    }
}

/// What [`recover_segments`] found.
struct Recovered {
    segments: Vec<Segment>,
    entries: BTreeMap<u64, Entry>,
    /// A file was removed: the caller syncs the directory once.
    removed: bool,
}

/// Reads every segment in `dir` and keeps the entries after `last_purged`, removing
/// segments wholly below it and an empty last segment.
fn recover_segments(dir: &Path, last_purged: Option<LogId>) -> Result<Recovered, StoreError> {
    let purged_next = last_purged.map_or(0, |id| id.index.saturating_add(1));
    let mut listed = segment::list(dir)?;
    let mut removed = false;
    // Segments wholly below the purge point: a purge's removals a crash undid.
    while listed.len() >= 2 && listed[1].0 <= purged_next {
        let (_, path) = listed.remove(0);
        fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
        removed = true;
    }
    let mut segments: Vec<Segment> = Vec::new();
    let mut entries = BTreeMap::new();
    let count = listed.len();
    for (i, (first_index, path)) in listed.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let (read, read_entries) = segment::read_segment(first_index, &path, is_last)?;
        if let Some(previous_last) = segments.last().and_then(Segment::last_index)
            && Some(first_index) != previous_last.checked_add(1)
        {
            return Err(StoreError::corrupt(
                &path,
                0,
                format!(
                    "starts at entry {first_index}, but the previous segment ends at {previous_last}"
                ),
            ));
        }
        if read.offsets.is_empty() {
            if !is_last {
                return Err(StoreError::corrupt(
                    &path,
                    0,
                    "empty segment before the last",
                ));
            }
            // Started, but its first entry was torn: nothing in it was acknowledged.
            fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
            removed = true;
            continue;
        }
        entries.extend(
            read_entries
                .into_iter()
                .filter(|e| e.log_id.index >= purged_next)
                .map(|e| (e.log_id.index, e)),
        );
        segments.push(read);
    }
    while segments
        .first()
        .is_some_and(|s| s.last_index().is_none_or(|last| last < purged_next))
    {
        let gone = segments.remove(0);
        fs::remove_file(&gone.path).map_err(|e| StoreError::io(&gone.path, e))?;
        removed = true;
    }
    if let (Some(purged), Some((&first, _)), Some(segment)) =
        (last_purged, entries.first_key_value(), segments.first())
        && first != purged_next
    {
        return Err(StoreError::corrupt(
            &segment.path,
            0,
            format!(
                "the log resumes at entry {first}, but only entries up to {} were purged",
                purged.index
            ),
        ));
    }
    Ok(Recovered {
        segments,
        entries,
        removed,
    })
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.reader().read(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let shared = lock(&self.shared);
        let last_log_id = shared.entries.last_key_value().map(|(_, e)| e.log_id);
        Ok(LogState {
            last_purged_log_id: shared.last_purged,
            last_log_id: last_log_id.or(shared.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        write_state(&self.dir, VOTE_FILE, vote, Durability::Durable)
            .map_err(|e| e.into_storage(ErrorSubject::Vote, ErrorVerb::Write))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if committed == self.committed {
            return Ok(());
        }
        write_state(&self.dir, COMMITTED_FILE, &committed, Durability::Atomic)
            .map_err(|e| e.into_storage(ErrorSubject::Store, ErrorVerb::Write))?;
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let written = self
            .write_entries(entries)
            .map_err(|e| e.into_storage(ErrorSubject::Logs, ErrorVerb::Write))?;
        {
            let mut shared = lock(&self.shared);
            shared
                .entries
                .extend(written.into_iter().map(|e| (e.log_id.index, e)));
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.truncate_from(log_id.index)
            .map_err(|e| e.into_storage(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.purge_upto(log_id)
            .map_err(|e| e.into_storage(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }
}

/// The shared entries, even if a holder panicked: every critical section is a single map
/// operation or a clone, so a poisoned lock still guards a consistent map.
fn lock(shared: &Mutex<LogEntries>) -> MutexGuard<'_, LogEntries> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_for_append(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
}

fn no_active_segment(dir: &Path) -> StoreError {
    StoreError::io(dir, std::io::Error::other("no active metadata log segment"))
}

fn read_state<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, StoreError> {
    let Some(payload) = durable_file::read_framed(dir, name, STATE_FILE_BYTES_MAX)? else {
        return Ok(None);
    };
    serde_json::from_slice(&payload)
        .map(Some)
        .map_err(|e| StoreError::Undecodable {
            path: dir.join(name),
            offset: FRAME_HEADER_BYTES as u64,
            reason: e.to_string(),
        })
}

fn write_state<T: Serialize>(
    dir: &Path,
    name: &'static str,
    value: &T,
    durability: Durability,
) -> Result<(), StoreError> {
    let payload =
        serde_json::to_vec(value).map_err(|source| StoreError::Encode { what: name, source })?;
    durable_file::write_framed(dir, name, &payload, durability)
}
