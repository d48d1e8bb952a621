//! Disk sizes for the admin APIs (DescribeLogDirs): what each partition occupies and how
//! much room the data dir's volume has. The one `statvfs` call is the only unsafe code here.

use std::path::Path;

use super::{Engine, EngineError};
use crate::TopicPartition;
use crate::shard::partition_table;

/// The space a data dir's volume has, as `statvfs` reports it (DescribeLogDirs v4's
/// `total_bytes` and `usable_bytes`, Java's `FileStore.getTotalSpace`/`getUsableSpace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSpace {
    pub total_bytes: u64,
    /// What this (unprivileged) process may still write: blocks free to non-root users.
    pub usable_bytes: u64,
}

/// Sizes for the admin APIs (DescribeLogDirs): what the partitions occupy on disk and how
/// much room their volume has left, so operators can see where the bytes are without a shell
/// on the node.
impl Engine {
    /// Bytes in the partition's segment files (the `.log`s; indexes are not counted, as in
    /// Kafka's `UnifiedLog.size`), read on its owning shard, which alone knows its segments.
    pub async fn partition_size_bytes(&self, tp: &TopicPartition) -> Result<u64, EngineError> {
        self.call_on_owner(tp, |context, name| {
            partition_table::slot_of(context, name).map(|slot| slot.log.borrow().size_bytes())
        })
        .await
    }

    /// The data dir's volume: total and usable bytes. One `statvfs`, no shard hop.
    pub fn data_dir_space(&self) -> std::io::Result<VolumeSpace> {
        volume_space(&self.inner.data_dir)
    }
}

fn volume_space(path: &Path) -> std::io::Result<VolumeSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in data dir"))?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value for it to overwrite.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `stats` is a live
    // statvfs on our stack that the call only writes into.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // `c_ulong` and `fsblkcnt_t` are u64 on the 64-bit Linux targets Spate runs on (io_uring),
    // but not on every libc target, hence the conversions clippy sees as useless here.
    #[allow(clippy::useless_conversion)]
    let (fragment_bytes, blocks, available_blocks) = (
        u64::from(stats.f_frsize),
        u64::from(stats.f_blocks),
        u64::from(stats.f_bavail),
    );
    Ok(VolumeSpace {
        total_bytes: blocks.saturating_mul(fragment_bytes),
        usable_bytes: available_blocks.saturating_mul(fragment_bytes),
    })
}
