//! The open `.log` file of one segment, shared by the log, the I/O driver and readers.
//!
//! It lives on the shard that owns the partition, but it is `Send + Sync`: it is only a file
//! handle, so a connection task may hold an `Arc` of it while `sendfile` runs, and keep
//! reading after retention has unlinked the path.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

/// Digits in a segment file name: an i64 offset, zero-padded as Kafka does, so that file
/// names sort like offsets.
const SEGMENT_NAME_DIGITS: usize = 20;

/// A segment's `.log` file and the offset its name carries.
#[derive(Debug)]
pub struct SegmentFile {
    file: File,
    base_offset: i64,
    path: PathBuf,
}

impl SegmentFile {
    /// Creates a new empty segment file; fails if it already exists, because a stale file
    /// under the same name would mean two segments claim the same offsets.
    pub(crate) fn create(dir: &Path, base_offset: i64) -> io::Result<Self> {
        let path = dir.join(segment_file_name(base_offset, "log"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Self {
            file,
            base_offset,
            path,
        })
    }

    pub(crate) fn open(dir: &Path, base_offset: i64) -> io::Result<Self> {
        let path = dir.join(segment_file_name(base_offset, "log"));
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(Self {
            file,
            base_offset,
            path,
        })
    }

    /// The offset of the first batch this segment holds (or will hold).
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying file, for positioned reads and writes (`FileExt`).
    pub fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.path.with_extension("index")
    }

    pub(crate) fn time_index_path(&self) -> PathBuf {
        self.path.with_extension("timeindex")
    }
}

impl AsRawFd for SegmentFile {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for SegmentFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// A run of whole batches in one segment, ready to be sent with `sendfile`.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub segment: Arc<SegmentFile>,
    pub position: u64,
    pub len: u32,
}

/// Bytes `stage_append` wants written at `position` of `segment`. The runtime performs it
/// (through io_uring), then calls `mark_written` / `mark_synced`.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    pub segment: Arc<SegmentFile>,
    pub position: u64,
    pub bytes: Bytes,
}

/// `<baseOffset:020>.<extension>`.
pub(crate) fn segment_file_name(base_offset: i64, extension: &str) -> String {
    format!(
        "{base_offset:0width$}.{extension}",
        width = SEGMENT_NAME_DIGITS
    )
}

/// The base offset in a `<baseOffset:020>.log` name, or `None` for any other file.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_zero_padded_and_round_trip() {
        assert_eq!(segment_file_name(42, "log"), "00000000000000000042.log");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.log"),
            Some(42)
        );
    }

    #[test]
    fn foreign_file_names_are_not_segments() {
        assert_eq!(parse_segment_file_name("00000000000000000042.index"), None);
        assert_eq!(parse_segment_file_name("42.log"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_file_name("99999999999999999999.log"), None);
    }
}
