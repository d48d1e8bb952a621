//! Round trip of a cross-shard call: `invoke_on` from shard 0 to shard 1 and back, one call
//! at a time, versus a call a shard makes to itself (which skips the queue).
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
}
