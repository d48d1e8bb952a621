//! Catching panics of shard tasks so one bad task cannot silently wedge a shard.
//!
//! A panicking task is logged with its shard and dropped; the caller waiting on its reply sees
//! a typed error instead of waiting forever, and the shard keeps serving other tasks.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Wraps a future so a panic while polling it becomes `Err(message)`.
pub(crate) struct PanicGuard<F> {
    future: Pin<Box<F>>,
}

impl<F: Future> PanicGuard<F> {
    pub(crate) fn new(future: F) -> Self {
        Self {
            future: Box::pin(future),
        }
    }
}

impl<F: Future> Future for PanicGuard<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.future.as_mut();
        // AssertUnwindSafe: after a panic the future is never polled again (the guard is
        // dropped by its task), so no broken invariant inside it can be observed.
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

/// The text of a panic payload (`&str` or `String`), for the log line.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
