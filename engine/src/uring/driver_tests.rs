//! The driver against a real kernel: io_uring is what runs here, and what it writes lands.

use std::fs::{File, OpenOptions};
use std::sync::Arc;

use bytes::Bytes;

use super::*;

fn on_shard<F: std::future::Future>(f: impl FnOnce(IoDriver) -> F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let driver = IoDriver::new_uring().expect("io_uring must be available on this machine");
        let reaper = driver.spawn_reaper();
        let out = f(driver).await;
        reaper.abort();
        out
    })
}

fn temp_file(dir: &tempfile::TempDir, name: &str) -> (std::path::PathBuf, SharedFile) {
    let path = dir.path().join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    (path, Arc::new(file))
}

#[test]
fn write_then_fdatasync_round_trips_through_io_uring() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = temp_file(&dir, "a.log");
    let stats = on_shard(|driver| async move {
        assert_eq!(driver.kind(), DriverKind::IoUring);
        let chain = WriteChain {
            file,
            writes: vec![
                (0, Bytes::from_static(b"hello ")),
                (6, Bytes::from_static(b"world")),
            ],
            sync: true,
        };
        let results = driver.write_chains(vec![chain]).await;
        assert!(results.into_iter().all(|r| r.is_ok()));
        driver.stats()
    });
    assert_eq!(std::fs::read(path).unwrap(), b"hello world");
    assert_eq!(stats.submit_calls, 1, "one chain, one io_uring_enter");
    assert_eq!(stats.writes, 1, "contiguous writes merge into one writev");
    assert_eq!(stats.fdatasyncs, 1);
    assert_eq!(stats.sqes, 2);
}

#[test]
fn chains_for_many_files_go_in_one_submission() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..10)
        .map(|i| temp_file(&dir, &format!("{i}.log")))
        .collect();
    let chains: Vec<WriteChain> = files
        .iter()
        .enumerate()
        .map(|(i, (_, file))| WriteChain {
            file: file.clone(),
            writes: vec![(3, Bytes::from(vec![b'0' + i as u8; 100]))],
            sync: true,
        })
        .collect();
    let stats = on_shard(|driver| async move {
        let results = driver.write_chains(chains).await;
        assert_eq!(results.len(), 10);
        assert!(results.into_iter().all(|r| r.is_ok()));
        driver.stats()
    });
    assert_eq!(stats.submit_calls, 1);
    assert_eq!(stats.fdatasyncs, 10);
    for (i, (path, _)) in files.iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(bytes.len(), 103);
        assert!(bytes[3..].iter().all(|&b| b == b'0' + i as u8));
    }
}

#[test]
fn more_concurrent_writes_than_the_in_flight_limit_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = temp_file(&dir, "many.log");
    let write_count = IN_FLIGHT_OPS_MAX * 4;
    on_shard(|driver| async move {
        let mut tasks = Vec::new();
        for i in 0..write_count {
            let driver = driver.clone();
            let file = file.clone();
            tasks.push(tokio::task::spawn_local(async move {
                let bytes = Bytes::from(format!("{i:08}"));
                driver.write_all_at(file, i as u64 * 8, bytes).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        driver.fdatasync(file).await.unwrap();
    });
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len(), write_count * 8);
    for i in 0..write_count {
        assert_eq!(&bytes[i * 8..i * 8 + 8], format!("{i:08}").as_bytes());
    }
}

#[test]
fn a_dropped_write_future_still_completes_in_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = temp_file(&dir, "dropped.log");
    on_shard(|driver| async move {
        let payload = Bytes::from(vec![7u8; 1 << 20]);
        {
            let write = driver.write_all_at(file.clone(), 0, payload);
            tokio::pin!(write);
            // Poll once so the SQE is submitted, then drop the future mid-flight.
            let _ = futures_poll_once(write.as_mut()).await;
        }
        // A later op on the same driver still works, and the abandoned slot is recycled.
        for _ in 0..3 {
            driver.fdatasync(file.clone()).await.unwrap();
        }
    });
    let len = std::fs::metadata(path).unwrap().len();
    assert!(
        len == 0 || len == 1 << 20,
        "write is all or nothing here, got {len}"
    );
}

async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[test]
fn writing_to_a_read_only_file_fails_with_the_os_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.log");
    std::fs::write(&path, b"x").unwrap();
    let file: SharedFile = Arc::new(File::open(&path).unwrap());
    let error = on_shard(|driver| async move {
        driver
            .write_all_at(file, 0, Bytes::from_static(b"nope"))
            .await
            .unwrap_err()
    });
    assert_eq!(error.raw_os_error(), Some(libc::EBADF));
}

#[test]
fn blocking_fallback_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = temp_file(&dir, "blocking.log");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stats = runtime.block_on(async move {
        let driver = IoDriver::new_blocking();
        assert_eq!(driver.kind(), DriverKind::Blocking);
        let chain = WriteChain {
            file,
            writes: vec![
                (0, Bytes::from_static(b"abc")),
                (3, Bytes::from_static(b"def")),
            ],
            sync: true,
        };
        assert!(driver.write_chains(vec![chain]).await[0].is_ok());
        driver.stats()
    });
    assert_eq!(std::fs::read(path).unwrap(), b"abcdef");
    assert_eq!(stats.submit_calls, 0);
    assert_eq!(stats.fdatasyncs, 1);
}
