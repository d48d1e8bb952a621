//! Finishing a chain after the kernel answered: the rest of a short write, a retry after
//! EINTR/EAGAIN or a link cancelled by an earlier short write, and the fdatasync again after
//! any repair. Runs on the driver's shard, one SQE at a time (repairs are rare).

use std::io;

use bytes::Bytes;

use super::chain::{PlannedOp, unwritten_rest};
use super::driver::{IoDriver, STALLED_RETRIES_MAX, bump};
use super::op_table::SharedFile;

impl IoDriver {
    /// Completes a chain from its raw CQE results: resubmits the rest of short writes, retries
    /// ops that were interrupted or cancelled by a broken link, and re-syncs after any repair.
    pub(super) async fn finish_chain(
        &self,
        file: &SharedFile,
        ops: &[PlannedOp],
        raw: &[i32],
    ) -> io::Result<()> {
        if raw.len() != ops.len() {
            return Err(io::Error::other("io_uring lost completions of a chain"));
        }
        let mut repaired = false;
        let mut sync_wanted = false;
        let mut sync_done = false;
        for (op, &result) in ops.iter().zip(raw) {
            match op {
                PlannedOp::Writev { position, buffers } => {
                    let written = usize::try_from(result).ok();
                    if written.is_some_and(|w| w >= op.len_bytes()) {
                        continue;
                    }
                    if written.is_some() {
                        bump(&self.inner.counters.short_writes, 1);
                    } else if is_retryable(result) {
                        bump(&self.inner.counters.retries, 1);
                    } else {
                        return Err(io::Error::from_raw_os_error(-result));
                    }
                    let rest = unwritten_rest(*position, buffers, written.unwrap_or(0));
                    self.write_pieces(file, rest).await?;
                    repaired = true;
                }
                PlannedOp::Fdatasync => {
                    sync_wanted = true;
                    if result >= 0 {
                        sync_done = true;
                    } else if !is_retryable(result) {
                        return Err(io::Error::from_raw_os_error(-result));
                    }
                }
            }
        }
        if sync_wanted && (repaired || !sync_done) {
            self.sync_retrying(file).await?;
        }
        Ok(())
    }

    /// Writes `pieces` one SQE at a time until all bytes are down.
    async fn write_pieces(&self, file: &SharedFile, pieces: Vec<(u64, Bytes)>) -> io::Result<()> {
        let mut pieces: std::collections::VecDeque<(u64, Bytes)> = pieces.into();
        let mut stalled_count = 0u32;
        while let Some((position, bytes)) = pieces.pop_front() {
            let op = PlannedOp::Writev {
                position,
                buffers: vec![bytes.clone()],
            };
            let raw = self.submit_wave(&[&(file.clone(), vec![op])], 1).await;
            let result = raw
                .first()
                .and_then(|r| r.first())
                .copied()
                .unwrap_or(-libc::EIO);
            match usize::try_from(result) {
                Ok(written) if written >= bytes.len() => stalled_count = 0,
                Ok(written) if written > 0 => {
                    bump(&self.inner.counters.short_writes, 1);
                    stalled_count = 0;
                    pieces.push_front((position + written as u64, bytes.slice(written..)));
                }
                Ok(_) => {
                    stalled_count += 1;
                    if stalled_count > STALLED_RETRIES_MAX {
                        return Err(io::Error::from(io::ErrorKind::WriteZero));
                    }
                    pieces.push_front((position, bytes));
                }
                Err(_) if is_retryable(result) && stalled_count < STALLED_RETRIES_MAX => {
                    bump(&self.inner.counters.retries, 1);
                    stalled_count += 1;
                    pieces.push_front((position, bytes));
                }
                Err(_) => return Err(io::Error::from_raw_os_error(-result)),
            }
        }
        Ok(())
    }

    async fn sync_retrying(&self, file: &SharedFile) -> io::Result<()> {
        let mut attempt_count = 0u32;
        loop {
            attempt_count += 1;
            let chain = (file.clone(), vec![PlannedOp::Fdatasync]);
            let raw = self.submit_wave(&[&chain], 1).await;
            let result = raw
                .first()
                .and_then(|r| r.first())
                .copied()
                .unwrap_or(-libc::EIO);
            if result >= 0 {
                return Ok(());
            }
            if !is_retryable(result) || attempt_count > STALLED_RETRIES_MAX {
                return Err(io::Error::from_raw_os_error(-result));
            }
            bump(&self.inner.counters.retries, 1);
        }
    }
}

fn is_retryable(result: i32) -> bool {
    result == -libc::EINTR || result == -libc::EAGAIN || result == -libc::ECANCELED
}
