//! The shard runtime: calls land on the right pinned thread, queues push back, panics are
//! contained, and shutdown is ordered and final.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spate_engine::shard::{
    LocalBoxFuture, ShardContext, ShardError, ShardId, ShardInit, ShardSet, ShardSetConfig,
    allowed_cpus, current_shard,
};

fn no_init() -> ShardInit {
    Arc::new(
        |_: &ShardContext| -> LocalBoxFuture<'static, Result<(), String>> {
            Box::pin(async { Ok(()) })
        },
    )
}

fn start(shard_count: usize, queue_depth: usize) -> ShardSet {
    let config = ShardSetConfig {
        shard_count,
        pin_threads: true,
        queue_depth,
    };
    ShardSet::start(&config, no_init()).unwrap()
}

#[tokio::test]
async fn invoke_on_runs_on_the_target_shard_and_returns_its_reply() {
    let shards = start(2, 16);
    for index in 0..2 {
        let (seen, thread_name) = shards
            .invoke_on(ShardId(index), |ctx: &ShardContext| {
                let id = ctx.shard_id();
                Box::pin(async move {
                    (
                        (id, current_shard()),
                        std::thread::current().name().map(str::to_owned),
                    )
                })
                    as LocalBoxFuture<'static, ((ShardId, Option<ShardId>), Option<String>)>
            })
            .await
            .unwrap();
        assert_eq!(seen, (ShardId(index), Some(ShardId(index))));
        assert_eq!(
            thread_name.as_deref(),
            Some(format!("spate-shard-{index}").as_str())
        );
    }
    shards.shutdown().await;
}

#[tokio::test]
async fn shard_threads_are_pinned_to_one_allowed_cpu_each() {
    let cpus = allowed_cpus().unwrap();
    let shards = start(2, 16);
    for index in 0..2 {
        let seen = shards
            .invoke_on(ShardId(index), |_: &ShardContext| {
                Box::pin(async { allowed_cpus().unwrap() }) as LocalBoxFuture<'static, _>
            })
            .await
            .unwrap();
        assert_eq!(seen, vec![cpus[index % cpus.len()]]);
    }
    shards.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_makes_callers_wait_until_the_shard_drains() {
    let shards = Arc::new(start(1, 2));
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    // The closure itself runs on the shard's loop, so blocking in it stalls the queue.
    shards
        .spawn_on(ShardId(0), move |_: &ShardContext| {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
            Box::pin(async {})
        })
        .unwrap();
    started_rx.await.unwrap(); // the shard has taken the blocker off its queue
    for _ in 0..2 {
        shards
            .spawn_on(ShardId(0), |_: &ShardContext| Box::pin(async {}))
            .unwrap();
    }
    let refused = shards.spawn_on(ShardId(0), |_: &ShardContext| Box::pin(async {}));
    assert!(matches!(refused, Err(ShardError::QueueFull(ShardId(0)))));

    let waiting = {
        let shards = shards.clone();
        tokio::spawn(async move {
            shards
                .invoke_on(ShardId(0), |_: &ShardContext| {
                    Box::pin(async { 42 }) as LocalBoxFuture<'static, i32>
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "caller must wait while the queue is full"
    );
    release_tx.send(()).unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), 42);
    shards.shutdown().await;
}

#[tokio::test]
async fn calls_after_shutdown_fail_with_shard_gone() {
    let shards = start(2, 16);
    shards.shutdown().await;
    let result = shards
        .invoke_on(ShardId(1), |_: &ShardContext| {
            Box::pin(async { 1 }) as LocalBoxFuture<'static, i32>
        })
        .await;
    assert!(matches!(result, Err(ShardError::Gone(ShardId(1)))));
    let spawned = shards.spawn_on(ShardId(0), |_: &ShardContext| Box::pin(async {}));
    assert!(matches!(spawned, Err(ShardError::Gone(ShardId(0)))));
    shards.shutdown().await; // idempotent
}

#[tokio::test]
async fn a_panicking_call_is_reported_and_the_shard_keeps_serving() {
    let shards = start(1, 16);
    let result = shards
        .invoke_on(ShardId(0), |_: &ShardContext| {
            Box::pin(async {
                let fail = true;
                if fail {
                    panic!("boom");
                }
            }) as LocalBoxFuture<'static, ()>
        })
        .await;
    assert!(matches!(result, Err(ShardError::TaskPanicked(ShardId(0)))));
    let result = shards
        .invoke_on(
            ShardId(0),
            |_: &ShardContext| -> LocalBoxFuture<'static, ()> { panic!("boom before the future") },
        )
        .await;
    assert!(matches!(result, Err(ShardError::TaskPanicked(ShardId(0)))));
    let panic_count = shards
        .invoke_on(ShardId(0), |ctx: &ShardContext| {
            let count = ctx.panic_count();
            Box::pin(async move { count }) as LocalBoxFuture<'static, u64>
        })
        .await
        .unwrap();
    assert_eq!(panic_count, 2);
    shards.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_shards_in_reverse_order_after_their_tasks_finish() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let shards = start(3, 16);
    for index in 0..3 {
        let order = order.clone();
        shards
            .invoke_on(ShardId(index), move |ctx: &ShardContext| {
                let mut signal = ctx.shutdown_signal();
                let task_order = order.clone();
                // A long-lived task that finishes when told to.
                ctx.spawn(async move {
                    let _ = signal.wait_for(|stop| *stop).await;
                    task_order.lock().unwrap().push(format!("task-{index}"));
                });
                ctx.on_shutdown(move || {
                    Box::pin(async move {
                        order.lock().unwrap().push(format!("hook-{index}"));
                    })
                });
                Box::pin(async {}) as LocalBoxFuture<'static, ()>
            })
            .await
            .unwrap();
    }
    shards.shutdown().await;
    let order = order.lock().unwrap().clone();
    let position = |entry: &str| order.iter().position(|e| e == entry).unwrap();
    let hooks: Vec<&String> = order.iter().filter(|e| e.starts_with("hook")).collect();
    assert_eq!(
        hooks,
        vec!["hook-2", "hook-1", "hook-0"],
        "shards stop in reverse order"
    );
    for index in 0..3 {
        assert!(
            position(&format!("task-{index}")) < position(&format!("hook-{index}")),
            "shard {index}'s task finished before its logs were closed: {order:?}"
        );
    }
}

#[test]
fn an_init_failure_stops_every_shard_and_is_returned() {
    let init: ShardInit = Arc::new(
        |ctx: &ShardContext| -> LocalBoxFuture<'static, Result<(), String>> {
            let id = ctx.shard_id();
            Box::pin(async move {
                if id == ShardId(1) {
                    Err("disk on fire".to_owned())
                } else {
                    Ok(())
                }
            })
        },
    );
    let config = ShardSetConfig {
        shard_count: 2,
        pin_threads: false,
        queue_depth: 4,
    };
    match ShardSet::start(&config, init) {
        Err(ShardError::Init { shard, message }) => {
            assert_eq!(shard, ShardId(1));
            assert_eq!(message, "disk on fire");
        }
        other => panic!("expected an init error, got {:?}", other.map(|_| ())),
    }
}
