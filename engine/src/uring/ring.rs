//! The only `unsafe` of the io_uring driver: pushing SQEs that point at memory, and the
//! eventfd syscalls.
//!
//! The invariant every SQE relies on: the file descriptor, the buffers and the iovec array an
//! SQE points at are owned by an entry of the driver's `OpTable`, and that entry is freed only
//! after the kernel has posted the CQE for that SQE (see `op_table.rs`), or after the driver's
//! drop has drained every completion. Nothing else can free them: `Bytes` are immutable and
//! reference counted, the iovec array is a boxed slice that is never reallocated, and the
//! file is an `Arc` that the entry holds.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{IoUring, opcode, squeue, types};
use tokio::io::unix::AsyncFd;

use super::chain::PlannedOp;

/// An io_uring instance owned by one shard.
pub(crate) struct Ring {
    uring: IoUring,
}

/// One SQE, ready to push, with the memory it points at already pinned in the op table.
pub(crate) struct PreparedSqe(squeue::Entry);

impl Ring {
    /// `sq_entries` submission slots and twice as many completion slots, so completions of a
    /// full SQ can never overflow the CQ.
    pub(crate) fn new(sq_entries: u32) -> io::Result<Self> {
        let uring = IoUring::builder()
            .setup_cqsize(sq_entries.saturating_mul(2))
            .build(sq_entries)?;
        Ok(Self { uring })
    }

    pub(crate) fn register_eventfd(&self, eventfd: RawFd) -> io::Result<()> {
        self.uring.submitter().register_eventfd(eventfd)
    }

    pub(crate) fn sq_free_count(&mut self) -> usize {
        let sq = self.uring.submission();
        sq.capacity() - sq.len()
    }

    /// Hands every pushed SQE to the kernel in one `io_uring_enter`.
    pub(crate) fn submit(&self) -> io::Result<usize> {
        self.uring.submit()
    }

    /// Blocks until at least `want` completions are ready (used only to drain at drop).
    pub(crate) fn submit_and_wait(&self, want: usize) -> io::Result<usize> {
        self.uring.submit_and_wait(want)
    }

    /// Takes every posted completion as `(user_data, result)`.
    pub(crate) fn drain_completions(&mut self, out: &mut Vec<(u64, i32)>) {
        for cqe in self.uring.completion() {
            out.push((cqe.user_data(), cqe.result()));
        }
    }

    /// Pushes `sqes` as one unit: either all go in or none does. Linked chains must not be
    /// split by a full queue, so the caller checks [`Ring::sq_free_count`] first and submits to
    /// make room; this returns `false` if there is still not enough room.
    pub(crate) fn push_all(&mut self, sqes: &[PreparedSqe]) -> bool {
        let mut sq = self.uring.submission();
        if sq.capacity() - sq.len() < sqes.len() {
            return false;
        }
        for sqe in sqes {
            // SAFETY: each SQE was built by `prepare` from resources that the op table owns
            // under the key stored in its user_data, and the table frees an entry only after
            // the kernel posted its CQE (or the driver's drop drained all of them). So every
            // pointer stays valid for as long as the kernel may dereference it. Capacity was
            // checked above, so the push cannot fail half-way through a chain.
            if unsafe { sq.push(&sqe.0) }.is_err() {
                return false;
            }
        }
        sq.sync();
        true
    }
}

/// Builds the SQE for `op` (tag it with [`PreparedSqe::with_user_data`]). `iovecs` must be the boxed array stored in the same op-table entry
/// as `op`'s buffers (it is filled here); `linked` sets `IOSQE_IO_LINK` so the next SQE of the
/// chain waits for this one.
pub(crate) fn prepare(
    op: &PlannedOp,
    fd: RawFd,
    iovecs: &mut [libc::iovec],
    linked: bool,
) -> PreparedSqe {
    let entry = match op {
        PlannedOp::Writev { position, buffers } => {
            for (slot, buffer) in iovecs.iter_mut().zip(buffers) {
                *slot = libc::iovec {
                    iov_base: buffer.as_ptr() as *mut libc::c_void,
                    iov_len: buffer.len(),
                };
            }
            let iovec_count = iovecs.len().min(buffers.len()) as u32;
            opcode::Writev::new(types::Fd(fd), iovecs.as_ptr(), iovec_count)
                .offset(*position)
                .build()
        }
        PlannedOp::Fdatasync => opcode::Fsync::new(types::Fd(fd))
            .flags(types::FsyncFlags::DATASYNC)
            .build(),
    };
    PreparedSqe(if linked {
        entry.flags(squeue::Flags::IO_LINK)
    } else {
        entry
    })
}

impl PreparedSqe {
    /// Tags the SQE with its op-table key, which comes back in the CQE.
    pub(crate) fn with_user_data(self, user_data: u64) -> Self {
        Self(self.0.user_data(user_data))
    }

    pub(crate) fn user_data(&self) -> u64 {
        self.0.get_user_data()
    }
}

/// A non-blocking eventfd the ring signals on every completion.
pub(crate) fn new_eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; the flags are valid constants.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by eventfd, is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Registers the eventfd with the current tokio reactor.
pub(crate) fn watch_eventfd(eventfd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is a valid open descriptor, `AsyncFd` takes ownership of it, and
    // `OwnedFd::as_raw_fd` always returns that same descriptor until it is dropped together
    // with the `AsyncFd`.
    Ok(unsafe { AsyncFd::register(eventfd) }?)
}

/// Resets the eventfd counter. `WouldBlock` means it was already zero.
pub(crate) fn clear_eventfd(eventfd: &OwnedFd) -> io::Result<u64> {
    let mut counter = 0u64;
    // SAFETY: the buffer is a live, writable u64 on our stack and the length says 8 bytes,
    // exactly what an eventfd read writes.
    let read_bytes = unsafe {
        libc::read(
            eventfd.as_raw_fd(),
            (&mut counter as *mut u64).cast::<libc::c_void>(),
            std::mem::size_of::<u64>(),
        )
    };
    if read_bytes < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(counter)
}
