//! Linked write chains: what to submit for "these bytes at these positions, then fdatasync",
//! and what is left to do when the kernel wrote less than asked.
//!
//! Pure planning, no I/O, so the short-write arithmetic is tested directly.

use bytes::Bytes;

use super::op_table::SharedFile;

/// `IOV_MAX` on Linux: a `writev` takes at most this many buffers.
pub const IOVECS_PER_WRITE_MAX: usize = 1024;

/// Largest byte count one write may carry. Linux caps a single write at `0x7ffff000` bytes
/// and the CQE result is an `i32`; staying at 1 GiB keeps both comfortably satisfied.
pub const WRITE_SIZE_BYTES_MAX: usize = 1 << 30;

/// Writes to one file, optionally followed by one fdatasync, submitted together.
///
/// The group commit builds one chain per dirty segment: all of that segment's new batches,
/// then its fdatasync, linked so the sync cannot start before the writes are done.
pub struct WriteChain {
    pub file: SharedFile,
    /// `(position, bytes)` pairs; contiguous neighbours are merged into one `writev`.
    pub writes: Vec<(u64, Bytes)>,
    /// Append an fdatasync after the writes (flush policy `always`).
    pub sync: bool,
}

/// One SQE's worth of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlannedOp {
    Writev { position: u64, buffers: Vec<Bytes> },
    Fdatasync,
}

impl PlannedOp {
    pub(crate) fn len_bytes(&self) -> usize {
        match self {
            PlannedOp::Writev { buffers, .. } => buffers.iter().map(Bytes::len).sum(),
            PlannedOp::Fdatasync => 0,
        }
    }
}

/// Turns a chain into SQE-sized operations: contiguous writes share a `writev` (up to
/// [`IOVECS_PER_WRITE_MAX`] buffers and [`WRITE_SIZE_BYTES_MAX`] bytes), empty writes vanish,
/// and the sync, if asked for, comes last.
pub(crate) fn plan_chain(writes: &[(u64, Bytes)], sync: bool) -> Vec<PlannedOp> {
    let mut ops = Vec::new();
    let mut run: Option<(u64, Vec<Bytes>, usize)> = None;
    for (position, bytes) in writes {
        if bytes.is_empty() {
            continue;
        }
        let extends_run = match &run {
            Some((start, buffers, len)) => {
                start.checked_add(*len as u64) == Some(*position)
                    && buffers.len() < IOVECS_PER_WRITE_MAX
                    && len + bytes.len() <= WRITE_SIZE_BYTES_MAX
            }
            None => false,
        };
        if extends_run {
            if let Some((_, buffers, len)) = run.as_mut() {
                buffers.push(bytes.clone());
                *len += bytes.len();
            }
        } else {
            if let Some((start, buffers, _)) = run.take() {
                ops.push(PlannedOp::Writev {
                    position: start,
                    buffers,
                });
            }
            run = Some((*position, vec![bytes.clone()], bytes.len()));
        }
    }
    if let Some((start, buffers, _)) = run {
        ops.push(PlannedOp::Writev {
            position: start,
            buffers,
        });
    }
    if sync {
        ops.push(PlannedOp::Fdatasync);
    }
    ops
}

/// The bytes a `writev` of `buffers` at `position` still owes after the kernel reported
/// `written_bytes`, as `(position, bytes)` pieces (zero-copy slices of the originals).
pub(crate) fn unwritten_rest(
    position: u64,
    buffers: &[Bytes],
    written_bytes: usize,
) -> Vec<(u64, Bytes)> {
    let mut rest = Vec::new();
    let mut skipped_bytes = 0usize;
    let mut cursor = position;
    for buffer in buffers {
        let buffer_end = skipped_bytes + buffer.len();
        if buffer_end <= written_bytes {
            skipped_bytes = buffer_end;
            cursor += buffer.len() as u64;
            continue;
        }
        let from = written_bytes.saturating_sub(skipped_bytes);
        rest.push((cursor + from as u64, buffer.slice(from..)));
        skipped_bytes = buffer_end;
        cursor += buffer.len() as u64;
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn contiguous_writes_share_one_writev_and_the_sync_comes_last() {
        let ops = plan_chain(&[(0, b("ab")), (2, b("cd")), (10, b("x"))], true);
        assert_eq!(
            ops,
            vec![
                PlannedOp::Writev {
                    position: 0,
                    buffers: vec![b("ab"), b("cd")]
                },
                PlannedOp::Writev {
                    position: 10,
                    buffers: vec![b("x")]
                },
                PlannedOp::Fdatasync,
            ]
        );
    }

    #[test]
    fn a_run_longer_than_iov_max_is_split() {
        let writes: Vec<_> = (0..IOVECS_PER_WRITE_MAX as u64 + 1)
            .map(|i| (i, b("z")))
            .collect();
        let ops = plan_chain(&writes, false);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].len_bytes(), IOVECS_PER_WRITE_MAX);
        assert_eq!(
            ops[1],
            PlannedOp::Writev {
                position: IOVECS_PER_WRITE_MAX as u64,
                buffers: vec![b("z")]
            }
        );
    }

    #[test]
    fn short_write_leaves_the_tail_of_the_partly_written_buffer_and_the_rest() {
        let rest = unwritten_rest(100, &[b("abc"), b("defg"), b("hi")], 5);
        assert_eq!(rest, vec![(105, b("fg")), (107, b("hi"))]);
    }

    #[test]
    fn short_write_on_a_buffer_boundary_leaves_whole_buffers() {
        let rest = unwritten_rest(0, &[b("abc"), b("de")], 3);
        assert_eq!(rest, vec![(3, b("de"))]);
        assert!(unwritten_rest(0, &[b("abc"), b("de")], 5).is_empty());
        assert_eq!(unwritten_rest(7, &[b("abc")], 0), vec![(7, b("abc"))]);
    }
}
