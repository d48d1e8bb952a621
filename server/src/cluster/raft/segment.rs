//! Log segment files: `<first index, 20 digits>.log`, each a run of frames holding one
//! serialized openraft entry apiece, with consecutive indexes starting at the name's.
//!
//! Only the last segment is ever written. Before a new segment is started the previous one
//! is synced, so every segment but the last is whole; and an entry is acknowledged only
//! after its segment is synced, so the only damage a crash can leave is a torn tail of the
//! last segment, of entries never acknowledged. Recovery ([`read_segment`]) cuts exactly
//! that and refuses anything else.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use super::durable_file;
use super::error::StoreError;
use super::frame::{self, FRAME_HEADER_BYTES, FrameRead};
use super::types::Entry;

/// A segment is closed and a new one started once it reaches this size. Small enough that
/// purging after a snapshot frees space promptly; large enough that a metadata log (a few
/// hundred bytes an entry) rolls rarely. An entry is never split, so a segment may pass it
/// by one entry.
pub const SEGMENT_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// Largest serialized entry accepted. Metadata batches are kilobytes; a create-topics batch
/// of thousands of partitions is a few megabytes. Anything larger is a bug, and the limit
/// also bounds what a damaged length field can make recovery read.
pub const ENTRY_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// The most a segment file can hold: it is rolled at [`SEGMENT_BYTES_MAX`], so only its
/// last entry can run past that.
const SEGMENT_FILE_BYTES_MAX: u64 =
    SEGMENT_BYTES_MAX + (FRAME_HEADER_BYTES as u64) + ENTRY_BYTES_MAX as u64;

const SEGMENT_SUFFIX: &str = ".log";
const SEGMENT_INDEX_DIGITS: usize = 20;

/// One segment file: where its entries start, for truncation.
#[derive(Debug)]
pub struct Segment {
    pub first_index: u64,
    pub path: PathBuf,
    /// Byte offset of entry `first_index + i` at `offsets[i]`.
    pub offsets: Vec<u64>,
    pub size_bytes: u64,
}

impl Segment {
    pub fn new(dir: &Path, first_index: u64) -> Self {
        Segment {
            first_index,
            path: dir.join(file_name(first_index)),
            offsets: Vec::new(),
            size_bytes: 0,
        }
    }

    /// Index of the last entry, if it holds any.
    pub fn last_index(&self) -> Option<u64> {
        let count = u64::try_from(self.offsets.len()).ok()?;
        count
            .checked_sub(1)
            .map(|n| self.first_index.saturating_add(n))
    }

    /// Byte offset of entry `index`, if this segment holds it.
    pub fn offset_of(&self, index: u64) -> Option<u64> {
        let i = usize::try_from(index.checked_sub(self.first_index)?).ok()?;
        self.offsets.get(i).copied()
    }
}

/// The file name of the segment whose first entry is `first_index`.
pub fn file_name(first_index: u64) -> String {
    format!(
        "{first_index:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_INDEX_DIGITS
    )
}

/// The segments in `dir`, by first index. Other files are ignored (they are the state files
/// and the snapshot).
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else {
            continue;
        };
        let first_index = match stem.parse::<u64>() {
            Ok(index) if stem.len() == SEGMENT_INDEX_DIGITS => index,
            _ => {
                return Err(StoreError::corrupt(
                    &entry.path(),
                    0,
                    "not a segment name (expected 20 digits and .log)",
                ));
            }
        };
        found.push((first_index, entry.path()));
    }
    found.sort_unstable_by_key(|(first, _)| *first);
    Ok(found)
}

/// Reads and checks one segment. In the last segment (`is_last`) a bad frame with no valid
/// frame after it is a torn tail: the file is cut there and synced. Any other bad frame, a
/// payload that does not decode, or an index out of sequence is an error naming the file
/// and byte.
pub fn read_segment(
    first_index: u64,
    path: &Path,
    is_last: bool,
) -> Result<(Segment, Vec<Entry>), StoreError> {
    let bytes = durable_file::read_bounded(path, SEGMENT_FILE_BYTES_MAX)?
        .ok_or_else(|| StoreError::io(path, std::io::ErrorKind::NotFound.into()))?;
    let mut segment = Segment {
        first_index,
        path: path.to_owned(),
        offsets: Vec::new(),
        size_bytes: 0,
    };
    let mut entries = Vec::new();
    let mut offset = 0;
    loop {
        match frame::decode_at(&bytes, offset, ENTRY_BYTES_MAX) {
            FrameRead::Valid { payload, end } => {
                let entry: Entry =
                    serde_json::from_slice(payload).map_err(|e| StoreError::Undecodable {
                        path: path.to_owned(),
                        offset: offset as u64,
                        reason: e.to_string(),
                    })?;
                let expected = first_index.saturating_add(entries.len() as u64);
                if entry.log_id.index != expected {
                    return Err(StoreError::corrupt(
                        path,
                        offset as u64,
                        format!(
                            "entry index {} where {expected} is next",
                            entry.log_id.index
                        ),
                    ));
                }
                segment.offsets.push(offset as u64);
                entries.push(entry);
                offset = end;
            }
            FrameRead::End => break,
            FrameRead::Bad(reason) => {
                if !is_last {
                    return Err(StoreError::corrupt(
                        path,
                        offset as u64,
                        format!("{reason} in a segment that is not the last"),
                    ));
                }
                if let Some(next) = frame::valid_frame_after(&bytes, offset + 1, ENTRY_BYTES_MAX) {
                    return Err(StoreError::corrupt(
                        path,
                        offset as u64,
                        format!("{reason}, and a valid entry follows at byte {next}"),
                    ));
                }
                tracing::warn!(
                    path = %path.display(),
                    offset,
                    cut_bytes = bytes.len() - offset,
                    reason,
                    "cutting the torn tail of the metadata log (entries never acknowledged)"
                );
                cut(path, offset as u64)?;
                break;
            }
        }
    }
    segment.size_bytes = offset as u64;
    Ok((segment, entries))
}

/// Cuts the file at `path` to `size_bytes` and syncs it.
pub fn cut(path: &Path, size_bytes: u64) -> Result<(), StoreError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(size_bytes)?;
            f.sync_data()
        })
        .map_err(|e| StoreError::io(path, e))
}
