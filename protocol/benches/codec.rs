//! Codec microbenchmarks: decoding a 64 KiB single-partition Produce request (v9, flexible)
//! and encoding a Metadata response (v12, 10 topics × 10 partitions).
//!
//! Run: `cargo bench -p spate-protocol --bench codec`. Besides criterion's ns/op, each bench
//! prints allocations/op, counted by a global allocator wrapper in this binary, because for a
//! broker's hot path the allocation count matters as much as the time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use spate_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use spate_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use spate_protocol::messages::{MetadataResponse, ProduceRequest};
use spate_protocol::{Decode, Encode, Uuid};

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// an atomic and never the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const PRODUCE_RECORDS_BYTES: usize = 64 * 1024;
const PRODUCE_VERSION: i16 = 9;
const METADATA_VERSION: i16 = 12;
const METADATA_TOPIC_COUNT: i32 = 10;
const METADATA_PARTITION_COUNT: i32 = 10;

fn allocations_per_op(iterations: u64, mut op: impl FnMut()) -> f64 {
    op(); // warm caches and lazily grown buffers
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..iterations {
        op();
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / iterations as f64
}

fn produce_frame() -> Bytes {
    let request = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: "bench-topic".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(Bytes::from(vec![0xAB; PRODUCE_RECORDS_BYTES])),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut out = BytesMut::new();
    request
        .encode(&mut out, PRODUCE_VERSION)
        .expect("bench request encodes");
    out.freeze()
}

fn metadata_response() -> MetadataResponse {
    let topics = (0..METADATA_TOPIC_COUNT)
        .map(|topic| MetadataResponseTopic {
            name: Some(format!("topic-{topic}")),
            topic_id: Uuid::from_u64_pair(topic as u64, 1),
            partitions: (0..METADATA_PARTITION_COUNT)
                .map(|partition| MetadataResponsePartition {
                    partition_index: partition,
                    leader_id: 1,
                    leader_epoch: 0,
                    replica_nodes: vec![1],
                    isr_nodes: vec![1],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            ..Default::default()
        }],
        cluster_id: Some("spate-bench".into()),
        controller_id: 1,
        topics,
        ..Default::default()
    }
}

fn bench_codec(c: &mut Criterion) {
    let frame = produce_frame();
    let decode = || {
        let mut buf = frame.clone();
        black_box(ProduceRequest::decode(&mut buf, PRODUCE_VERSION).expect("decodes"))
    };
    println!(
        "produce_decode_64k_v9: {:.2} allocations/op, frame {} B",
        allocations_per_op(10_000, || {
            decode();
        }),
        frame.len()
    );
    c.bench_function("produce_decode_64k_v9", |b| b.iter(decode));

    let response = metadata_response();
    let mut out = BytesMut::with_capacity(64 * 1024);
    let len = response.encoded_len(METADATA_VERSION).expect("encodes");
    println!(
        "metadata_encode_10x10_v12: {:.2} allocations/op, {len} B",
        allocations_per_op(10_000, || {
            out.clear();
            response
                .encode(&mut out, METADATA_VERSION)
                .expect("encodes");
        })
    );
    c.bench_function("metadata_encode_10x10_v12", |b| {
        b.iter(|| {
            out.clear();
            black_box(&response)
                .encode(&mut out, METADATA_VERSION)
                .expect("encodes");
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
