//! The metadata store's error: why a file could not be read or written, naming the file.
//!
//! Opening returns it as is, so an operator sees which file and byte stopped the node. Inside
//! openraft's traits it is wrapped in [`StorageError`], which openraft treats as fatal: the
//! Raft task stops rather than run on a log it cannot trust.

use std::io;
use std::path::{Path, PathBuf};

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError, StorageIOError};

/// An error of the metadata store on disk.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Bytes that were once acknowledged no longer read back: the node must not start on a
    /// log that may have lost committed entries.
    #[error(
        "{} is corrupt at byte {offset}: {reason}; refusing to start (restore the metadata directory from a backup, or remove it so this node rejoins from its peers)",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The checksum matches but the payload does not decode: written by a newer release.
    #[error(
        "{} holds a record at byte {offset} this build cannot read ({reason}): upgrade this node",
        path.display()
    )]
    Undecodable {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("a metadata log entry of {size_bytes} B exceeds the {limit_bytes} B limit")]
    TooLarge { size_bytes: u64, limit_bytes: u64 },
    /// openraft asked for a write that would leave a hole in the log or move it backwards.
    #[error("metadata log entry {found} appended where entry {expected} is next")]
    OutOfOrder { expected: u64, found: u64 },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            path: path.to_owned(),
            offset,
            reason: reason.into(),
        }
    }

    /// Wraps the error for openraft, saying what was being done to what.
    pub(crate) fn into_storage(
        self,
        subject: ErrorSubject<u64>,
        verb: ErrorVerb,
    ) -> StorageError<u64> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}

impl From<StoreError> for StorageError<u64> {
    fn from(e: StoreError) -> Self {
        e.into_storage(ErrorSubject::Store, ErrorVerb::Read)
    }
}
