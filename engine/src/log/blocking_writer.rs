//! Performs staged writes with plain blocking syscalls.
//!
//! The shard runtime does this through io_uring; tests, the crash test's child process and the
//! floor benchmarks use this instead, so the log can be driven without a runtime.

use std::os::unix::fs::FileExt;

use super::append::StagedAppend;
use super::error::LogError;
use super::partition_log::PartitionLog;
use crate::FlushPolicy;

/// Writes `staged` with `pwrite`, fdatasyncs the segments it touched when the log's policy is
/// `flush=always`, and reports both to the log. On an I/O error the append is aborted (the log
/// rolls back to before it) and the error returned.
pub fn apply_writes_blocking(
    log: &mut PartitionLog,
    staged: &StagedAppend,
) -> Result<(), LogError> {
    if staged.duplicate || staged.writes.is_empty() {
        return Ok(());
    }
    let sync = log.config().flush == FlushPolicy::Always;
    let result = staged.writes.iter().try_for_each(|write| {
        write
            .segment
            .file()
            .write_all_at(&write.bytes, write.position)
            .and_then(|()| {
                if sync {
                    write.segment.file().sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(|source| LogError::Io {
                partition: log.name().clone(),
                path: write.segment.path().to_path_buf(),
                source,
            })
    });
    if let Err(error) = result {
        log.abort_staged(staged.base_offset)?;
        return Err(error);
    }
    log.mark_written(staged.last_offset);
    if sync {
        log.mark_synced(staged.last_offset);
    }
    Ok(())
}
