//! Shared by the write-failure tests: the file-size limit that makes writes fail, and the
//! one-record batches they append.

use bytes::Bytes;
use spate_engine::log::fixture::TestBatch;

/// A batch of one record with a `value_size_bytes` value.
pub fn batch(value_size_bytes: usize) -> Bytes {
    TestBatch::new(1, value_size_bytes, 1_700_000_000_000)
        .encode()
        .freeze()
}

/// Caps the size of every file this process writes (RLIMIT_FSIZE): a write crossing it is cut
/// short and the rest refused with EFBIG. Per process, so each test using it has its own
/// test binary.
pub fn limit_file_size(limit_bytes: u64) {
    // SAFETY: setting the disposition of SIGXFSZ to SIG_IGN passes no pointers; ignoring it
    // turns "file too large" into the EFBIG error the tests want instead of a killed process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let limit = libc::rlimit {
        rlim_cur: limit_bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `limit` is a live rlimit on our stack; setrlimit only reads it.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}
