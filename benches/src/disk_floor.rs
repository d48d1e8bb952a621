//! The disk floor: a plain `pwrite` loop of the same write size, with `fdatasync` after
//! every write for `flush=always` (or every interval for `flush=<ms>`), on the broker's disk.
//!
//! No broker can persist faster than this loop, so `spate / disk` is how much of the disk a
//! broker turns into acknowledged writes. The loop rewrites one buffer (the kindest case for
//! the floor) and wraps its file at [`FILE_BYTES_MAX`], so a long `never` run measures the
//! page cache rather than filling the disk. It runs on its own thread, pinned to the
//! broker's cores, because that is where a broker would do this work.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::affinity;
use crate::metrics::{self, Latency};

/// The floor's file wraps at this size.
pub const FILE_BYTES_MAX: u64 = 1 << 30;

/// When the floor syncs, mirroring the topic's `flush` config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    Always,
    Never,
    IntervalMs(u64),
}

impl SyncPolicy {
    /// Reads a `flush` value: always, never or a number of milliseconds.
    pub fn parse(flush: &str) -> Option<SyncPolicy> {
        match flush {
            "always" => Some(SyncPolicy::Always),
            "never" => Some(SyncPolicy::Never),
            ms => ms
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(SyncPolicy::IntervalMs),
        }
    }
}

/// What the floor measured.
#[derive(Debug, Clone, Serialize)]
pub struct DiskFloor {
    pub dir: PathBuf,
    pub write_bytes: usize,
    pub flush: String,
    pub mb_per_s: f64,
    pub writes: u64,
    /// Latency of each `fdatasync`, when any ran.
    pub fdatasync: Option<Latency>,
}

/// Runs the floor for `duration` on a thread pinned to `cores`.
pub fn measure(
    dir: &Path,
    write_bytes: usize,
    policy: SyncPolicy,
    flush: &str,
    duration: Duration,
    cores: Option<Vec<usize>>,
) -> io::Result<DiskFloor> {
    let path = dir.join(format!("spate-bench-disk-floor-{}.tmp", std::process::id()));
    let dir = dir.to_path_buf();
    let flush = flush.to_string();
    let thread = std::thread::Builder::new()
        .name("disk-floor".into())
        .spawn(move || {
            if let Some(cores) = &cores {
                affinity::pin_current_thread(cores)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?;
            let result = write_loop(&file, write_bytes.max(1), policy, duration);
            let _ = std::fs::remove_file(&path);
            let (mb_per_s, writes, fdatasync) = result?;
            Ok(DiskFloor {
                dir,
                write_bytes,
                flush,
                mb_per_s,
                writes,
                fdatasync,
            })
        })?;
    thread
        .join()
        .map_err(|_| io::Error::other("disk floor thread panicked"))?
}

fn write_loop(
    file: &File,
    write_bytes: usize,
    policy: SyncPolicy,
    duration: Duration,
) -> io::Result<(f64, u64, Option<Latency>)> {
    let buffer: Vec<u8> = (0..write_bytes).map(|i| (i % 251) as u8).collect();
    let mut histogram = metrics::new_histogram();
    let mut offset = 0u64;
    let mut writes = 0u64;
    let start = Instant::now();
    let mut last_sync = start;
    let deadline = start + duration;
    // At least one write, so a zero duration still yields a figure.
    while writes == 0 || Instant::now() < deadline {
        file.write_all_at(&buffer, offset)?;
        writes += 1;
        offset += write_bytes as u64;
        if offset + write_bytes as u64 > FILE_BYTES_MAX {
            offset = 0;
        }
        let sync_due = match policy {
            SyncPolicy::Always => true,
            SyncPolicy::Never => false,
            SyncPolicy::IntervalMs(ms) => last_sync.elapsed() >= Duration::from_millis(ms),
        };
        if sync_due {
            let before = Instant::now();
            file.sync_data()?;
            metrics::record(&mut histogram, before.elapsed().as_nanos() as u64);
            last_sync = Instant::now();
        }
    }
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let mb_per_s = (writes * write_bytes as u64) as f64 / seconds / 1e6;
    let fdatasync = (!histogram.is_empty()).then(|| metrics::latency(&histogram));
    Ok((mb_per_s, writes, fdatasync))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_syncs_every_write_and_never_syncs_none() {
        let dir = tempfile::tempdir().unwrap();
        let always = measure(
            dir.path(),
            4096,
            SyncPolicy::Always,
            "always",
            Duration::from_millis(50),
            None,
        )
        .unwrap();
        let synced = always.fdatasync.as_ref().unwrap();
        assert_eq!(synced.count, always.writes);
        assert!(always.mb_per_s > 0.0);
        let never = measure(
            dir.path(),
            4096,
            SyncPolicy::Never,
            "never",
            Duration::from_millis(20),
            None,
        )
        .unwrap();
        assert!(never.fdatasync.is_none());
        assert!(never.writes > 0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "floor file left behind"
        );
    }

    #[test]
    fn flush_values_read_like_the_topic_config() {
        assert_eq!(SyncPolicy::parse("always"), Some(SyncPolicy::Always));
        assert_eq!(SyncPolicy::parse("never"), Some(SyncPolicy::Never));
        assert_eq!(SyncPolicy::parse("250"), Some(SyncPolicy::IntervalMs(250)));
        assert_eq!(SyncPolicy::parse("0"), None);
        assert_eq!(SyncPolicy::parse("sometimes"), None);
    }
}
