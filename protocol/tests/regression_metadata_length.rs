//! Regression: a 4-byte MetadataRequest v1 body `7f ff ff ff` (topic array length i32::MAX).
//!
//! `kafka-protocol` 0.18 sizes a `Vec` from this length before reading any element, asks the
//! allocator for ~2^31 elements and aborts the whole process: one 4-byte request takes down
//! the broker and every other client on it. Our decoder must return an error naming the field
//! and must not make any large allocation on the way. A counting global allocator in this test
//! binary records the largest single allocation made while decoding.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use spate_protocol::messages::MetadataRequest;
use spate_protocol::{ApiKey, Decode, DecodeError, decode_request};

/// Records the largest allocation while `TRACKING` is set.
struct MaxAllocation;

static TRACKING: AtomicBool = AtomicBool::new(false);
static LARGEST_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Tests in one binary run on several threads; serialise the tracked sections.
static TRACKED_SECTION: Mutex<()> = Mutex::new(());

// SAFETY: forwards every call unchanged to the system allocator; the only addition is
// bookkeeping in atomics, which neither allocates nor touches the returned memory.
unsafe impl GlobalAlloc for MaxAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            LARGEST_BYTES.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            LARGEST_BYTES.fetch_max(new_size, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System` with `layout`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: MaxAllocation = MaxAllocation;

/// Anything above this from a 4-byte input is the bug coming back.
const ALLOCATION_BYTES_MAX: usize = 1024 * 1024;

fn largest_allocation_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _guard = TRACKED_SECTION.lock().unwrap_or_else(|e| e.into_inner());
    LARGEST_BYTES.store(0, Ordering::SeqCst);
    TRACKING.store(true, Ordering::SeqCst);
    let out = f();
    TRACKING.store(false, Ordering::SeqCst);
    (out, LARGEST_BYTES.load(Ordering::SeqCst))
}

#[test]
fn metadata_v1_with_i32_max_topic_count_is_an_error_without_large_allocation() {
    let (result, largest) = largest_allocation_during(|| {
        let mut body = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]);
        MetadataRequest::decode(&mut body, 1)
    });
    let err = result.unwrap_err();
    assert_eq!(
        err,
        DecodeError::LengthExceedsRemaining {
            field: "MetadataRequest.topics",
            kind: "array",
            length: i32::MAX as i64,
            remaining_bytes: 0,
        }
    );
    assert_eq!(
        err.to_string(),
        "MetadataRequest.topics: array length 2147483647 exceeds 0 remaining bytes"
    );
    assert!(
        largest < ALLOCATION_BYTES_MAX,
        "largest allocation {largest} B"
    );
}

#[test]
fn every_request_at_every_version_survives_an_i32_max_prefix_cheaply() {
    // The same four bytes (and the compact-varint equivalent) fed to every decoder: whatever
    // the first field is, nothing may allocate more than a small bound.
    let inputs: [&'static [u8]; 2] = [&[0x7f, 0xff, 0xff, 0xff], &[0xff, 0xff, 0xff, 0xff, 0x07]];
    for api_key in ApiKey::ALL {
        for version in api_key.valid_versions() {
            for input in inputs {
                let (_, largest) = largest_allocation_during(|| {
                    let mut body = Bytes::from_static(input);
                    decode_request(api_key, version, &mut body)
                });
                assert!(
                    largest < ALLOCATION_BYTES_MAX,
                    "{api_key:?} v{version}: largest allocation {largest} B"
                );
            }
        }
    }
}
