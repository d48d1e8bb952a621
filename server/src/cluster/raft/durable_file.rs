//! Small files replaced whole: the vote, the committed and purged log ids, the snapshot.
//!
//! A replacement is written to `<name>.tmp`, flushed, and renamed over `<name>`, so a crash
//! leaves the old contents or the new, never a mix. Whether the rename itself must survive a
//! crash is the caller's choice ([`Durability`]): the vote must, the committed log id need
//! not (an older one is still true). A `<name>.tmp` left by a crash is removed at open.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::error::StoreError;
use super::frame::{self, FrameRead};

/// Suffix of a replacement being written; any left at open are from a crash and are removed.
pub const TMP_SUFFIX: &str = ".tmp";

/// How far a replacement must have reached when [`write_atomic`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The new contents survive a crash: file and directory are synced.
    Durable,
    /// A crash leaves the old contents or the new: the file is synced, the directory is not.
    Atomic,
}

/// Replaces `dir/name` with `contents`.
pub fn write_atomic(
    dir: &Path,
    name: &str,
    contents: &[u8],
    durability: Durability,
) -> Result<(), StoreError> {
    let target = dir.join(name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_data()
    };
    write().map_err(|e| StoreError::io(&tmp, e))?;
    fs::rename(&tmp, &target).map_err(|e| StoreError::io(&target, e))?;
    if durability == Durability::Durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Replaces `dir/name` with one frame holding `payload`.
pub fn write_framed(
    dir: &Path,
    name: &str,
    payload: &[u8],
    durability: Durability,
) -> Result<(), StoreError> {
    let mut contents = Vec::with_capacity(frame::FRAME_HEADER_BYTES + payload.len());
    frame::encode(payload, &mut contents);
    write_atomic(dir, name, &contents, durability)
}

/// Reads `dir/name` written by [`write_framed`]: `None` if it does not exist. Any damage is
/// an error: these files are only ever replaced whole, so a bad one was not torn by a crash.
pub fn read_framed(
    dir: &Path,
    name: &str,
    payload_bytes_max: u32,
) -> Result<Option<Vec<u8>>, StoreError> {
    let path = dir.join(name);
    let size_bytes_max = frame::FRAME_HEADER_BYTES as u64 + u64::from(payload_bytes_max);
    let Some(bytes) = read_bounded(&path, size_bytes_max)? else {
        return Ok(None);
    };
    match frame::decode_at(&bytes, 0, payload_bytes_max) {
        FrameRead::Valid { payload, end } if end == bytes.len() => Ok(Some(payload.to_vec())),
        FrameRead::Valid { end, .. } => Err(StoreError::corrupt(
            &path,
            end as u64,
            "unexpected bytes after the frame",
        )),
        FrameRead::End => Err(StoreError::corrupt(&path, 0, "empty file")),
        FrameRead::Bad(reason) => Err(StoreError::corrupt(&path, 0, reason)),
    }
}

/// Reads the file at `path` whole, `None` if it does not exist. A file larger than
/// `size_bytes_max` is refused before anything is allocated for it.
pub fn read_bounded(path: &Path, size_bytes_max: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let size_bytes = match fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    if size_bytes > size_bytes_max {
        return Err(StoreError::corrupt(
            path,
            size_bytes_max,
            format!("{size_bytes} B, over the {size_bytes_max} B this file can hold"),
        ));
    }
    fs::read(path)
        .map(Some)
        .map_err(|e| StoreError::io(path, e))
}

/// Makes creations, renames and removals in `dir` survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// Removes the replacements of `names` a crash left behind. Each store clears only its own
/// files: the log store and the state machine share the directory.
pub fn remove_stale_tmp(dir: &Path, names: &[&str]) -> Result<(), StoreError> {
    for name in names {
        let path = dir.join(format!("{name}{TMP_SUFFIX}"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&path, e)),
        }
    }
    Ok(())
}

/// Creates `dir` (and its parents) if missing, and syncs its parent so the directory
/// itself survives a crash before anything in it is acknowledged. The sync is unconditional:
/// a caller may have created the directory just before, without syncing.
pub fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}
