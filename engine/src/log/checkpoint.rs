//! Small durable files of a partition: written whole through a temp file, fsync and rename,
//! so a crash leaves either the old or the new contents, never a mix.
//!
//! Formats are Kafka's text checkpoint layout: a version line, then the payload lines.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

/// Records that every offset below it was fsynced. Recovery trusts nothing above it and treats
/// damage below it as loss of acknowledged data.
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";

/// The log start offset set by `delete_records_before`, when it lies above the first
/// segment's base. Without it a restart would bring deleted records back.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";

/// The high watermark of a replicated partition (Kafka keeps one such file per log dir; Spate
/// keeps one per partition, beside the recovery point). Written only in
/// `HighWatermarkMode::Replicated`, never above the flushed offset; lowered at once when the
/// high watermark or the log goes below it.
pub const REPLICATION_OFFSET_FILE: &str = "replication-offset-checkpoint";

/// The only checkpoint format version so far.
pub const CHECKPOINT_VERSION: u32 = 0;

/// No checkpoint Spate writes is this large; a bigger file is garbage and is not read.
pub const CHECKPOINT_FILE_BYTES_MAX: u64 = 1 << 20;

/// Replaces `dir/name` with `contents` atomically and durably.
pub fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    let temp_path = dir.join(format!("{name}.tmp"));
    {
        let mut file = File::create(&temp_path)?;
        io::Write::write_all(&mut file, contents)?;
        file.sync_all()?;
    }
    fs::rename(&temp_path, dir.join(name))?;
    sync_dir(dir)
}

/// Makes creations, renames and unlinks in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads a checkpoint file as text, or `None` if it is missing, too large or not UTF-8.
pub fn read_small_text(path: &Path) -> io::Result<Option<String>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut text = String::new();
    let mut limited = file.take(CHECKPOINT_FILE_BYTES_MAX + 1);
    match limited.read_to_string(&mut text) {
        Ok(read) if (read as u64) <= CHECKPOINT_FILE_BYTES_MAX => Ok(Some(text)),
        Ok(_) => Ok(None),
        Err(error) if error.kind() == io::ErrorKind::InvalidData => Ok(None),
        Err(error) => Err(error),
    }
}

/// Reads a one-offset checkpoint, or `None` if it is missing or garbled (with a warning:
/// both files only ever make recovery more careful or deletion more complete).
pub fn read_offset_checkpoint(dir: &Path, name: &str) -> io::Result<Option<i64>> {
    let path = dir.join(name);
    let Some(text) = read_small_text(&path)? else {
        return Ok(None);
    };
    let parsed = decode_offset_checkpoint(&text);
    if parsed.is_none() {
        tracing::warn!(file = %path.display(), "ignoring garbled checkpoint");
    }
    Ok(parsed)
}

/// `0\n<offset>\n`.
pub fn encode_offset_checkpoint(offset: i64) -> Vec<u8> {
    format!("{CHECKPOINT_VERSION}\n{offset}\n").into_bytes()
}

/// Parses what [`encode_offset_checkpoint`] wrote; `None` for anything else.
pub fn decode_offset_checkpoint(text: &str) -> Option<i64> {
    let mut lines = text.lines();
    if lines.next()?.trim().parse::<u32>().ok()? != CHECKPOINT_VERSION {
        return None;
    }
    let offset = lines.next()?.trim().parse::<i64>().ok()?;
    if offset < 0 || lines.any(|line| !line.trim().is_empty()) {
        return None;
    }
    Some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_point_round_trips() {
        let bytes = encode_offset_checkpoint(1234);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(decode_offset_checkpoint(&text), Some(1234));
    }

    #[test]
    fn garbled_recovery_point_is_ignored() {
        assert_eq!(decode_offset_checkpoint(""), None);
        assert_eq!(decode_offset_checkpoint("1\n5\n"), None);
        assert_eq!(decode_offset_checkpoint("0\n-5\n"), None);
        assert_eq!(decode_offset_checkpoint("0\nfive\n"), None);
        assert_eq!(decode_offset_checkpoint("0\n5\n6\n"), None);
    }

    #[test]
    fn atomic_write_replaces_contents() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "f", b"one").unwrap();
        write_atomically(dir.path(), "f", b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"two");
        assert!(!dir.path().join("f.tmp").exists());
    }
}
