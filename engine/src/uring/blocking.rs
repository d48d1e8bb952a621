//! The fallback when io_uring cannot be set up (EPERM under seccomp, ENOSYS on old kernels):
//! plain blocking `pwritev` and `fdatasync` on the shard thread.
//!
//! Correct but slower: the shard stalls for every write. A warning is logged when it is chosen.

use std::io;
use std::os::fd::RawFd;

use bytes::Bytes;

/// Writes all of `bytes` at `position`, retrying on EINTR and resuming short writes.
pub(crate) fn pwrite_all(fd: RawFd, mut position: u64, bytes: &Bytes) -> io::Result<()> {
    let mut rest: &[u8] = bytes;
    while !rest.is_empty() {
        let offset = libc::off_t::try_from(position)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "position past off_t"))?;
        // SAFETY: `rest` is a live slice for the duration of the call and the length passed is
        // exactly its length; pwrite only reads from it.
        let written =
            unsafe { libc::pwrite(fd, rest.as_ptr().cast::<libc::c_void>(), rest.len(), offset) };
        if written < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if written == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        let written = written as usize;
        rest = &rest[written.min(rest.len())..];
        position += written as u64;
    }
    Ok(())
}

/// `fdatasync(fd)`, retrying on EINTR.
pub(crate) fn fdatasync(fd: RawFd) -> io::Result<()> {
    loop {
        // SAFETY: fdatasync takes no pointers; a bad fd is reported as EBADF.
        if unsafe { libc::fdatasync(fd) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}
