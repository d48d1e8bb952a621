//! Round trip of a cross-shard call: `invoke_on` from shard 0 to shard 1 and back, one call
//! at a time, versus a call a shard makes to itself (which skips the queue), and the floor:
//! two plain threads, pinned to the same two cores, bouncing a number over blocking channels.
//! On a VM the floor is mostly the cost of waking an idle vCPU, which no runtime can avoid.
//!
//! Run: cargo bench -p spate-engine --bench cross_shard
//! Needs at least two CPUs for the cross-shard number to mean a real core-to-core hop.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench may unwrap

use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_engine::shard::{
    LocalBoxFuture, ShardContext, ShardId, ShardInit, ShardSet, ShardSetConfig,
};

const CALL_COUNT: u32 = 200_000;

fn measure(shards: &Arc<ShardSet>, from: ShardId, to: ShardId) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let inner = shards.clone();
    runtime.block_on(async move {
        shards
            .invoke_on(from, move |_: &ShardContext| {
                Box::pin(async move {
                    let started = Instant::now();
                    for i in 0..CALL_COUNT {
                        let echoed = inner
                            .invoke_on(to, move |_: &ShardContext| {
                                Box::pin(async move { i }) as LocalBoxFuture<'static, u32>
                            })
                            .await
                            .unwrap();
                        assert_eq!(echoed, i);
                    }
                    started.elapsed()
                }) as LocalBoxFuture<'static, Duration>
            })
            .await
            .unwrap()
    })
}

/// The floor: a round trip between two OS threads pinned to cores 0 and 1 over blocking
/// `sync_channel`s, with no runtime at all.
fn measure_thread_floor() -> Duration {
    let (to_echo, echo_inbox) = std::sync::mpsc::sync_channel::<u32>(1);
    let (to_caller, caller_inbox) = std::sync::mpsc::sync_channel::<u32>(1);
    let echo = std::thread::spawn(move || {
        pin_to_cpu(1);
        for value in echo_inbox {
            if to_caller.send(value).is_err() {
                break;
            }
        }
    });
    let caller = std::thread::spawn(move || {
        pin_to_cpu(0);
        let started = Instant::now();
        for i in 0..CALL_COUNT {
            to_echo.send(i).unwrap();
            assert_eq!(caller_inbox.recv().unwrap(), i);
        }
        started.elapsed()
    });
    let elapsed = caller.join().unwrap();
    echo.join().unwrap();
    elapsed
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: `set` is a zeroed, properly sized cpu_set_t owned by this frame; CPU_SET writes
    // within it, and sched_setaffinity only reads it. Pid 0 means the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn main() {
    let init: ShardInit = Arc::new(
        |_: &ShardContext| -> LocalBoxFuture<'static, Result<(), String>> {
            Box::pin(async { Ok(()) })
        },
    );
    let config = ShardSetConfig {
        shard_count: 2,
        ..ShardSetConfig::default()
    };
    let shards = Arc::new(ShardSet::start(&config, init).unwrap());
    for (name, from, to) in [
        ("cross-shard (0 -> 1 -> 0)", ShardId(0), ShardId(1)),
        ("same shard (0 -> 0)", ShardId(0), ShardId(0)),
    ] {
        let _warm_up = measure(&shards, from, to);
        let elapsed = measure(&shards, from, to);
        let per_call_ns = elapsed.as_nanos() as f64 / f64::from(CALL_COUNT);
        println!("{name:<28} {per_call_ns:>8.0} ns per round trip ({CALL_COUNT} calls)");
    }
    let _warm_up = measure_thread_floor();
    let floor = measure_thread_floor();
    let floor_ns = floor.as_nanos() as f64 / f64::from(CALL_COUNT);
    println!(
        "{:<28} {floor_ns:>8.0} ns per round trip ({CALL_COUNT} calls)",
        "floor: std threads 0 <-> 1"
    );
}
