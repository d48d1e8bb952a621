//! Which shard owns which partition, persisted so ownership survives restarts.
//!
//! The table lives in `data_dir/placement`, one `topic<TAB>partition<TAB>shard` line per
//! partition under a header naming the shard count it was made for. It is rewritten whole on
//! every change through a temp file, fsync, rename and a directory fsync, so a crash leaves
//! either the old or the new table, never a mix. New partitions go to the least-loaded shard
//! (ties to the lowest id). If the shard count changed since the table was written, every
//! partition is re-placed deterministically (sorted by name, each to the least-loaded shard),
//! so two restarts with the same count agree. This is control-plane state: it is consulted to
//! route a call, never on a shard's data path.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::TopicPartition;
use crate::shard::ShardId;

/// File name of the table inside the data dir. It has no `-<digits>` suffix, so it can never
/// be mistaken for a partition folder.
pub const PLACEMENT_FILE_NAME: &str = "placement";

const HEADER_PREFIX: &str = "spate-placement v1 shard_count=";

/// A placement file larger than this is refused rather than read: at ~40 bytes a line it
/// holds 1.6 M partitions, far beyond what one node serves.
pub const PLACEMENT_FILE_SIZE_BYTES_MAX: u64 = 64 << 20;

/// Errors of the placement table.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("placement file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("placement file {}: line {line_number}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        line_number: usize,
        reason: String,
    },
    #[error("partition {0} already has a shard")]
    AlreadyPlaced(TopicPartition),
}

/// The partition → shard table of one node.
#[derive(Debug)]
pub struct Placement {
    path: PathBuf,
    shard_count: usize,
    shards: BTreeMap<TopicPartition, ShardId>,
}

impl Placement {
    /// Loads the table from `data_dir`, or starts an empty one. Re-places every partition if
    /// the file was written for a different shard count, and persists the result.
    pub fn load(data_dir: &Path, shard_count: usize) -> Result<Self, PlacementError> {
        let path = data_dir.join(PLACEMENT_FILE_NAME);
        let shard_count = shard_count.max(1);
        let mut placement = Self {
            path: path.clone(),
            shard_count,
            shards: BTreeMap::new(),
        };
        let text = match read_bounded(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(placement),
            Err(source) => return Err(PlacementError::Io { path, source }),
        };
        let (written_for, entries) = parse(&path, &text)?;
        if written_for == shard_count && entries.iter().all(|(_, s)| s.0 < shard_count) {
            placement.shards = entries.into_iter().collect();
        } else {
            tracing::info!(
                from = written_for,
                to = shard_count,
                "shard count changed; re-placing partitions"
            );
            let names: Vec<TopicPartition> = entries.into_iter().map(|(tp, _)| tp).collect();
            placement.place_all(names);
            placement.persist()?;
        }
        Ok(placement)
    }

    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    pub fn shard_for(&self, tp: &TopicPartition) -> Option<ShardId> {
        self.shards.get(tp).copied()
    }

    /// Every placed partition and its shard, sorted by partition.
    pub fn partitions(&self) -> Vec<(TopicPartition, ShardId)> {
        self.shards.iter().map(|(tp, s)| (tp.clone(), *s)).collect()
    }

    /// Partitions per shard, indexed by shard id.
    pub fn load_per_shard(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.shard_count];
        for shard in self.shards.values() {
            if let Some(count) = counts.get_mut(shard.0) {
                *count += 1;
            }
        }
        counts
    }

    /// Places a new partition on the least-loaded shard and persists the table.
    pub fn assign(&mut self, tp: TopicPartition) -> Result<ShardId, PlacementError> {
        let shards = self.assign_all(std::slice::from_ref(&tp))?;
        shards
            .first()
            .copied()
            .ok_or(PlacementError::AlreadyPlaced(tp))
    }

    /// Places new partitions, in order, each on the least-loaded shard at its turn, and
    /// persists the table once: creating a topic of n partitions costs one table write, not
    /// n. All or nothing: if any is already placed (or listed twice) or the write fails,
    /// nothing changes.
    pub fn assign_all(&mut self, tps: &[TopicPartition]) -> Result<Vec<ShardId>, PlacementError> {
        let mut listed = BTreeSet::new();
        for tp in tps {
            if self.shards.contains_key(tp) || !listed.insert(tp) {
                return Err(PlacementError::AlreadyPlaced(tp.clone()));
            }
        }
        let mut counts = self.load_per_shard();
        let shards: Vec<ShardId> = tps
            .iter()
            .map(|tp| {
                let shard = take_least_loaded(&mut counts);
                self.shards.insert(tp.clone(), shard);
                shard
            })
            .collect();
        if let Err(error) = self.persist() {
            for tp in tps {
                self.shards.remove(tp);
            }
            return Err(error);
        }
        Ok(shards)
    }

    /// Forgets a partition and persists the table. Unknown partitions are a no-op.
    pub fn remove(&mut self, tp: &TopicPartition) -> Result<(), PlacementError> {
        self.remove_all(std::slice::from_ref(tp))
    }

    /// Forgets partitions and persists the table once. Unknown partitions are skipped; if
    /// the write fails, nothing changes.
    pub fn remove_all(&mut self, tps: &[TopicPartition]) -> Result<(), PlacementError> {
        let removed: Vec<(TopicPartition, ShardId)> = tps
            .iter()
            .filter_map(|tp| self.shards.remove(tp).map(|shard| (tp.clone(), shard)))
            .collect();
        if removed.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.persist() {
            self.shards.extend(removed);
            return Err(error);
        }
        Ok(())
    }

    /// Makes the table match the partition folders found on disk: folders without an entry
    /// are placed (in sorted order, so deterministically), entries without a folder dropped.
    pub fn reconcile(&mut self, on_disk: &[TopicPartition]) -> Result<(), PlacementError> {
        let mut on_disk: Vec<TopicPartition> = on_disk.to_vec();
        on_disk.sort();
        on_disk.dedup();
        let before = self.shards.clone();
        self.shards
            .retain(|tp, _| on_disk.binary_search(tp).is_ok());
        let mut counts = self.load_per_shard();
        for tp in on_disk {
            self.shards
                .entry(tp)
                .or_insert_with(|| take_least_loaded(&mut counts));
        }
        if self.shards != before {
            self.persist()?;
        }
        Ok(())
    }

    fn place_all(&mut self, mut names: Vec<TopicPartition>) {
        names.sort();
        names.dedup();
        self.shards.clear();
        let mut counts = vec![0usize; self.shard_count];
        for tp in names {
            let shard = take_least_loaded(&mut counts);
            self.shards.insert(tp, shard);
        }
    }

    fn persist(&self) -> Result<(), PlacementError> {
        use std::fmt::Write as _;
        let mut text = format!("{HEADER_PREFIX}{}\n", self.shard_count);
        for (tp, shard) in &self.shards {
            // Writing to a String cannot fail.
            let _ = writeln!(text, "{}\t{}\t{}", tp.topic, tp.partition, shard.0);
        }
        write_atomically(&self.path, text.as_bytes()).map_err(|source| PlacementError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// The least-loaded shard (ties to the lowest id), counted as now holding one more partition.
/// `counts` is kept by the caller so placing n partitions costs O(n × shards), not O(n²).
fn take_least_loaded(counts: &mut [usize]) -> ShardId {
    let index = counts
        .iter()
        .enumerate()
        .min_by_key(|(index, count)| (**count, *index))
        .map(|(index, _)| index)
        .unwrap_or(0);
    if let Some(count) = counts.get_mut(index) {
        *count += 1;
    }
    ShardId(index)
}

fn read_bounded(path: &Path) -> io::Result<String> {
    let size_bytes = fs::metadata(path)?.len();
    if size_bytes > PLACEMENT_FILE_SIZE_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{size_bytes} bytes exceeds the {PLACEMENT_FILE_SIZE_BYTES_MAX}-byte limit"),
        ));
    }
    let bytes = fs::read(path)?;
    String::from_utf8(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

type Entries = Vec<(TopicPartition, ShardId)>;

fn parse(path: &Path, text: &str) -> Result<(usize, Entries), PlacementError> {
    let corrupt = |line_number: usize, reason: &str| PlacementError::Corrupt {
        path: path.to_path_buf(),
        line_number,
        reason: reason.to_owned(),
    };
    let mut lines = text.lines().enumerate();
    let written_for = lines
        .next()
        .and_then(|(_, header)| header.strip_prefix(HEADER_PREFIX))
        .and_then(|count| count.parse::<usize>().ok())
        .ok_or_else(|| corrupt(1, "missing or malformed header"))?;
    let mut entries = Vec::new();
    for (index, line) in lines {
        let line_number = index + 1;
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        let (Some(topic), Some(partition), Some(shard), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(corrupt(
                line_number,
                "expected topic<TAB>partition<TAB>shard",
            ));
        };
        let partition: i32 = partition
            .parse()
            .map_err(|_| corrupt(line_number, "partition is not an i32"))?;
        let shard: usize = shard
            .parse()
            .map_err(|_| corrupt(line_number, "shard is not a number"))?;
        if topic.is_empty() {
            return Err(corrupt(line_number, "empty topic"));
        }
        entries.push((TopicPartition::new(topic, partition), ShardId(shard)));
    }
    Ok((written_for, entries))
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp_path = PathBuf::from(temp_name);
    {
        let mut file = fs::File::create(&temp_path)?;
        file.write_all(bytes)?;
        file.sync_data()?;
    }
    fs::rename(&temp_path, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    #[test]
    fn new_partitions_go_to_the_least_loaded_shard() {
        let dir = tempfile::tempdir().unwrap();
        let mut placement = Placement::load(dir.path(), 3).unwrap();
        let shards: Vec<usize> = (0..7)
            .map(|p| placement.assign(tp("t", p)).unwrap().0)
            .collect();
        assert_eq!(shards, vec![0, 1, 2, 0, 1, 2, 0]);
        placement.remove(&tp("t", 1)).unwrap();
        assert_eq!(placement.assign(tp("u", 0)).unwrap(), ShardId(1));
        assert!(matches!(
            placement.assign(tp("u", 0)),
            Err(PlacementError::AlreadyPlaced(_))
        ));
    }

    #[test]
    fn assign_all_balances_like_one_by_one_and_persists_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut placement = Placement::load(dir.path(), 3).unwrap();
        placement.assign(tp("a", 0)).unwrap();
        let batch: Vec<TopicPartition> = (0..5).map(|p| tp("b", p)).collect();
        let shards = placement.assign_all(&batch).unwrap();
        assert_eq!(
            shards.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![1, 2, 0, 1, 2]
        );
        assert_eq!(placement.load_per_shard(), vec![2, 2, 2]);
        let reloaded = Placement::load(dir.path(), 3).unwrap();
        assert_eq!(reloaded.partitions(), placement.partitions());
    }

    #[test]
    fn assign_all_refuses_the_whole_batch_if_one_is_placed_or_listed_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut placement = Placement::load(dir.path(), 2).unwrap();
        placement.assign(tp("t", 1)).unwrap();
        let before = placement.partitions();
        for batch in [
            vec![tp("t", 0), tp("t", 1), tp("t", 2)],
            vec![tp("u", 0), tp("u", 1), tp("u", 0)],
        ] {
            assert!(matches!(
                placement.assign_all(&batch),
                Err(PlacementError::AlreadyPlaced(_))
            ));
            assert_eq!(placement.partitions(), before);
        }
        assert_eq!(Placement::load(dir.path(), 2).unwrap().partitions(), before);
    }

    #[test]
    fn remove_all_forgets_the_listed_partitions_and_skips_unknown_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut placement = Placement::load(dir.path(), 2).unwrap();
        let batch: Vec<TopicPartition> = (0..4).map(|p| tp("t", p)).collect();
        placement.assign_all(&batch).unwrap();
        placement
            .remove_all(&[tp("t", 1), tp("t", 3), tp("never", 0)])
            .unwrap();
        let expected = vec![(tp("t", 0), ShardId(0)), (tp("t", 2), ShardId(0))];
        assert_eq!(placement.partitions(), expected);
        assert_eq!(
            Placement::load(dir.path(), 2).unwrap().partitions(),
            expected
        );
    }

    #[test]
    fn placement_survives_a_restart_with_the_same_shard_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut placement = Placement::load(dir.path(), 4).unwrap();
        for p in 0..10 {
            placement.assign(tp("orders-eu", p)).unwrap();
        }
        placement.remove(&tp("orders-eu", 0)).unwrap();
        let before = placement.partitions();
        let reloaded = Placement::load(dir.path(), 4).unwrap();
        assert_eq!(reloaded.partitions(), before);
    }

    #[test]
    fn a_changed_shard_count_re_places_deterministically_and_in_range() {
        let dir_a = tempfile::tempdir().unwrap();
        let dir_b = tempfile::tempdir().unwrap();
        for dir in [&dir_a, &dir_b] {
            let mut placement = Placement::load(dir.path(), 4).unwrap();
            for p in 0..9 {
                placement.assign(tp("t", p)).unwrap();
            }
        }
        let a = Placement::load(dir_a.path(), 2).unwrap();
        let b = Placement::load(dir_b.path(), 2).unwrap();
        assert_eq!(a.partitions(), b.partitions());
        assert!(a.partitions().iter().all(|(_, s)| s.0 < 2));
        assert_eq!(a.load_per_shard(), vec![5, 4]);
        let again = Placement::load(dir_a.path(), 2).unwrap();
        assert_eq!(again.partitions(), a.partitions());
    }

    #[test]
    fn reconcile_places_folders_missing_from_the_table_and_drops_stale_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut placement = Placement::load(dir.path(), 2).unwrap();
        placement.assign(tp("gone", 0)).unwrap();
        placement.reconcile(&[tp("b", 0), tp("a", 0)]).unwrap();
        assert_eq!(
            placement.partitions(),
            vec![(tp("a", 0), ShardId(0)), (tp("b", 0), ShardId(1))]
        );
        let reloaded = Placement::load(dir.path(), 2).unwrap();
        assert_eq!(reloaded.partitions(), placement.partitions());
    }

    #[test]
    fn a_corrupt_file_is_an_error_with_its_line_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PLACEMENT_FILE_NAME);
        for (text, line) in [
            ("garbage\n", 1),
            ("spate-placement v1 shard_count=2\nt\tx\t0\n", 2),
            ("spate-placement v1 shard_count=2\nt\t1\n", 2),
            ("spate-placement v1 shard_count=2\nt\t1\t0\nu\t1\t-3\n", 3),
        ] {
            fs::write(&path, text).unwrap();
            match Placement::load(dir.path(), 2) {
                Err(PlacementError::Corrupt { line_number, .. }) => assert_eq!(line_number, line),
                other => panic!("expected Corrupt for {text:?}, got {other:?}"),
            }
        }
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            Placement::load(dir.path(), 2),
            Err(PlacementError::Io { .. })
        ));
    }
}
