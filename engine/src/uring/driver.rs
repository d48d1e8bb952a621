//! The per-shard I/O driver: submits write chains to the shard's io_uring and completes their
//! futures when the kernel answers.
//!
//! Lives on one shard thread (`!Send`, `Rc` inside). Completions wake the shard's tokio runtime
//! through an eventfd registered with the ring and wrapped in `AsyncFd`; the reaper task
//! ([`IoDriver::spawn_reaper`]) drains the CQ and wakes the waiting futures. It does not
//! decide *what* to write or when to sync: that is the group commit's job (`shard/`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use super::blocking;
use super::chain::{PlannedOp, WriteChain, plan_chain};
use super::op_table::{OpResources, OpTable, SharedFile};
use super::ring::{self, PreparedSqe, Ring};

/// Operations the kernel may hold at once per shard. Each pins its buffers, so this bounds the
/// memory a burst of appends can hold hostage; 256 covers a group commit of 255 dirty
/// segments plus their syncs, far more than one shard's turn produces. It is also the SQ size,
/// so a chain of at most this many SQEs always fits after one submit.
pub const IN_FLIGHT_OPS_MAX: usize = 256;

/// How many times an op that made no progress (EINTR, EAGAIN, a zero-byte write, a
/// cancelled link) is retried before the error is returned. Progress resets the count.
pub const STALLED_RETRIES_MAX: u32 = 16;

/// Set (to anything) to make every shard use the blocking backend: for comparing backends in
/// benchmarks, and for hosts whose seccomp policy lets io_uring set up but not run.
pub const FORCE_BLOCKING_ENV: &str = "SPATE_IO_BLOCKING";

/// Which backend a driver runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// io_uring, the default.
    IoUring,
    /// Blocking `pwrite`/`fdatasync`, used only when io_uring cannot be set up.
    Blocking,
}

/// Counters of what the driver did, for tests and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// `io_uring_enter` calls that handed SQEs to the kernel (group commit wants one per turn).
    pub submit_calls: u64,
    /// SQEs pushed.
    pub sqes: u64,
    /// Write operations (one `writev` SQE, or one blocking `pwrite` loop).
    pub writes: u64,
    /// fdatasync operations.
    pub fdatasyncs: u64,
    /// Writes the kernel completed only in part, whose rest was resubmitted.
    pub short_writes: u64,
    /// Ops retried after EINTR, EAGAIN or a cancelled link.
    pub retries: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    submit_calls: Cell<u64>,
    sqes: Cell<u64>,
    writes: Cell<u64>,
    fdatasyncs: Cell<u64>,
    pub(super) short_writes: Cell<u64>,
    pub(super) retries: Cell<u64>,
}

pub(super) fn bump(counter: &Cell<u64>, by: u64) {
    counter.set(counter.get().wrapping_add(by));
}

struct UringState {
    ring: RefCell<Ring>,
    ops: RefCell<OpTable>,
    eventfd: AsyncFd<OwnedFd>,
    /// SQEs pushed but not yet accepted by the kernel (a submit failed with EBUSY/EAGAIN).
    unsubmitted: Cell<bool>,
    /// Wakes the reaper to retry a failed submit.
    submit_wanted: Notify,
    /// Wakes futures waiting for free op-table slots.
    slots_freed: Notify,
}

enum Backend {
    Uring(Box<UringState>),
    Blocking,
}

pub(super) struct DriverInner {
    backend: Backend,
    pub(super) counters: Counters,
}

/// A shard's I/O driver. Cheap to clone; lives on (and never leaves) its shard's thread.
#[derive(Clone)]
pub struct IoDriver {
    pub(super) inner: Rc<DriverInner>,
}

impl IoDriver {
    /// Sets up io_uring; falls back to blocking I/O with a warning if the kernel refuses.
    /// Must be called inside a tokio runtime (the eventfd registers with its reactor).
    pub fn with_fallback() -> Self {
        if std::env::var_os(FORCE_BLOCKING_ENV).is_some() {
            tracing::warn!("{FORCE_BLOCKING_ENV} is set; using blocking pwrite/fdatasync");
            return Self::new_blocking();
        }
        match Self::new_uring() {
            Ok(driver) => driver,
            Err(error) => {
                tracing::warn!(%error, "io_uring unavailable; falling back to blocking pwrite/fdatasync");
                Self::new_blocking()
            }
        }
    }

    /// The io_uring backend, or the error that prevented it.
    pub fn new_uring() -> io::Result<Self> {
        let ring = Ring::new(IN_FLIGHT_OPS_MAX as u32)?;
        let eventfd = ring::new_eventfd()?;
        ring.register_eventfd(eventfd.as_raw_fd())?;
        let state = UringState {
            ring: RefCell::new(ring),
            ops: RefCell::new(OpTable::with_capacity(IN_FLIGHT_OPS_MAX)),
            eventfd: ring::watch_eventfd(eventfd)?,
            unsubmitted: Cell::new(false),
            submit_wanted: Notify::new(),
            slots_freed: Notify::new(),
        };
        Ok(Self::with_backend(Backend::Uring(Box::new(state))))
    }

    /// The blocking fallback, also useful to compare against in benches.
    pub fn new_blocking() -> Self {
        Self::with_backend(Backend::Blocking)
    }

    fn with_backend(backend: Backend) -> Self {
        Self {
            inner: Rc::new(DriverInner {
                backend,
                counters: Counters::default(),
            }),
        }
    }

    pub fn kind(&self) -> DriverKind {
        match self.inner.backend {
            Backend::Uring(_) => DriverKind::IoUring,
            Backend::Blocking => DriverKind::Blocking,
        }
    }

    pub fn stats(&self) -> IoStats {
        let c = &self.inner.counters;
        IoStats {
            submit_calls: c.submit_calls.get(),
            sqes: c.sqes.get(),
            writes: c.writes.get(),
            fdatasyncs: c.fdatasyncs.get(),
            short_writes: c.short_writes.get(),
            retries: c.retries.get(),
        }
    }

    /// Starts the task that reaps completions. Call once, inside the shard's `LocalSet`;
    /// without it, io_uring futures never complete.
    pub fn spawn_reaper(&self) -> tokio::task::JoinHandle<()> {
        let driver = self.clone();
        tokio::task::spawn_local(async move { driver.reap_forever().await })
    }

    /// Writes all of `bytes` at `position`.
    pub async fn write_all_at(
        &self,
        file: SharedFile,
        position: u64,
        bytes: Bytes,
    ) -> io::Result<()> {
        let chain = WriteChain {
            file,
            writes: vec![(position, bytes)],
            sync: false,
        };
        single(self.write_chains(vec![chain]).await)
    }

    /// fdatasync on `file`.
    pub async fn fdatasync(&self, file: SharedFile) -> io::Result<()> {
        let chain = WriteChain {
            file,
            writes: Vec::new(),
            sync: true,
        };
        single(self.write_chains(vec![chain]).await)
    }

    /// Submits every chain in as few `io_uring_enter` calls as fit (one, for up to
    /// [`IN_FLIGHT_OPS_MAX`] SQEs), each chain linked `write → … → fdatasync`, and returns one
    /// result per chain, in order. Short writes and retryable errors are finished off here.
    pub async fn write_chains(&self, chains: Vec<WriteChain>) -> Vec<io::Result<()>> {
        let plans: Vec<(SharedFile, Vec<PlannedOp>)> = chains
            .into_iter()
            .map(|chain| {
                let ops = plan_chain(&chain.writes, chain.sync);
                (chain.file, ops)
            })
            .collect();
        match &self.inner.backend {
            Backend::Blocking => plans
                .iter()
                .map(|(file, ops)| self.run_blocking(file, ops))
                .collect(),
            Backend::Uring(_) => self.run_uring(plans).await,
        }
    }

    fn run_blocking(&self, file: &SharedFile, ops: &[PlannedOp]) -> io::Result<()> {
        let fd = file.as_raw_fd();
        for op in ops {
            match op {
                PlannedOp::Writev { position, buffers } => {
                    bump(&self.inner.counters.writes, 1);
                    let mut cursor = *position;
                    for buffer in buffers {
                        blocking::pwrite_all(fd, cursor, buffer)?;
                        cursor += buffer.len() as u64;
                    }
                }
                PlannedOp::Fdatasync => {
                    bump(&self.inner.counters.fdatasyncs, 1);
                    blocking::fdatasync(fd)?;
                }
            }
        }
        Ok(())
    }

    async fn run_uring(&self, plans: Vec<(SharedFile, Vec<PlannedOp>)>) -> Vec<io::Result<()>> {
        let mut results: Vec<Option<io::Result<()>>> = plans.iter().map(|_| None).collect();
        // Waves of whole chains that fit in the op table together; a chain too long to link
        // as a whole runs alone, op by op.
        let mut wave: Vec<usize> = Vec::new();
        let mut wave_ops = 0usize;
        let mut index = 0usize;
        while index < plans.len() || !wave.is_empty() {
            let next_len = plans.get(index).map(|(_, ops)| ops.len());
            let fits = next_len.is_some_and(|len| wave_ops + len <= IN_FLIGHT_OPS_MAX);
            if fits {
                wave.push(index);
                wave_ops += next_len.unwrap_or(0);
                index += 1;
                continue;
            }
            if wave.is_empty() {
                if let Some((file, ops)) = plans.get(index) {
                    results[index] = Some(self.run_unlinked(file, ops).await);
                }
                index += 1;
                continue;
            }
            let members: Vec<&(SharedFile, Vec<PlannedOp>)> =
                wave.iter().map(|&i| &plans[i]).collect();
            let outcomes = self.submit_wave(&members, wave_ops).await;
            for (&i, raw) in wave.iter().zip(outcomes) {
                let (file, ops) = &plans[i];
                results[i] = Some(self.finish_chain(file, ops, &raw).await);
            }
            wave.clear();
            wave_ops = 0;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("chain was never run"))))
            .collect()
    }

    /// A chain longer than the op table: each op on its own, sync last.
    async fn run_unlinked(&self, file: &SharedFile, ops: &[PlannedOp]) -> io::Result<()> {
        for op in ops {
            let raw = self
                .submit_wave(&[&(file.clone(), vec![op.clone()])], 1)
                .await;
            let raw_op = raw.into_iter().next().unwrap_or_default();
            self.finish_chain(file, std::slice::from_ref(op), &raw_op)
                .await?;
        }
        Ok(())
    }

    /// Pushes all SQEs of `members` (total `op_count`) and submits them with one
    /// `io_uring_enter`, then waits for every completion. Returns the raw results per chain.
    pub(super) async fn submit_wave(
        &self,
        members: &[&(SharedFile, Vec<PlannedOp>)],
        op_count: usize,
    ) -> Vec<Vec<i32>> {
        let Backend::Uring(state) = &self.inner.backend else {
            return Vec::new();
        };
        let op_count = op_count.min(IN_FLIGHT_OPS_MAX);
        if op_count == 0 {
            return members.iter().map(|_| Vec::new()).collect();
        }
        loop {
            let notified = state.slots_freed.notified();
            if state.ops.borrow().free_count() >= op_count {
                break;
            }
            notified.await;
        }
        let mut keys_per_chain: Vec<Vec<usize>> = Vec::with_capacity(members.len());
        let mut sqes: Vec<PreparedSqe> = Vec::with_capacity(op_count);
        {
            let mut table = state.ops.borrow_mut();
            for (file, ops) in members {
                let mut keys = Vec::with_capacity(ops.len());
                for (position_in_chain, op) in ops.iter().enumerate() {
                    let buffers = match op {
                        PlannedOp::Writev { buffers, .. } => buffers.clone(),
                        PlannedOp::Fdatasync => Vec::new(),
                    };
                    let mut iovecs: Box<[libc::iovec]> = buffers
                        .iter()
                        .map(|_| libc::iovec {
                            iov_base: std::ptr::null_mut(),
                            iov_len: 0,
                        })
                        .collect();
                    let linked = position_in_chain + 1 < ops.len();
                    // The SQE points into the iovec box's heap allocation, which does not
                    // move when the box moves into the table below.
                    let sqe = ring::prepare(op, file.as_raw_fd(), &mut iovecs, linked);
                    let resources = OpResources {
                        file: (*file).clone(),
                        buffers,
                        iovecs,
                    };
                    let Some(key) = table.insert(resources) else {
                        // Unreachable: free slots were counted above and nothing ran since.
                        continue;
                    };
                    keys.push(key);
                    sqes.push(sqe.with_user_data(key as u64));
                    match op {
                        PlannedOp::Writev { .. } => bump(&self.inner.counters.writes, 1),
                        PlannedOp::Fdatasync => bump(&self.inner.counters.fdatasyncs, 1),
                    }
                }
                keys_per_chain.push(keys);
            }
        }
        self.push_and_submit(state, &sqes);
        bump(&self.inner.counters.sqes, sqes.len() as u64);
        let all_keys: Vec<usize> = keys_per_chain.iter().flatten().copied().collect();
        let raw = Completions {
            driver: self,
            keys: all_keys,
            results: Vec::new(),
        }
        .await;
        let mut raw = raw.into_iter();
        keys_per_chain
            .iter()
            .map(|keys| {
                keys.iter()
                    .map(|_| raw.next().unwrap_or(-libc::EIO))
                    .collect()
            })
            .collect()
    }
}

impl IoDriver {
    /// Pushes `sqes` as one unit and submits them. Room is guaranteed: the op table bounds
    /// SQEs alive at once to the SQ size, so after one submit the SQ has space.
    fn push_and_submit(&self, state: &UringState, sqes: &[PreparedSqe]) {
        let mut ring = state.ring.borrow_mut();
        if ring.sq_free_count() < sqes.len() {
            self.submit_now(state, &ring);
        }
        if !ring.push_all(sqes) {
            // Unreachable by the bound above; fail the ops instead of waiting forever.
            drop(ring);
            tracing::error!(sqe_count = sqes.len(), "io_uring SQ full after submit");
            let mut table = state.ops.borrow_mut();
            for sqe in sqes {
                if let Ok(key) = usize::try_from(sqe.user_data()) {
                    table.complete(key, -libc::EBUSY);
                }
            }
            return;
        }
        self.submit_now(state, &ring);
    }

    fn submit_now(&self, state: &UringState, ring: &Ring) {
        match ring.submit() {
            Ok(_) => {
                bump(&self.inner.counters.submit_calls, 1);
                state.unsubmitted.set(false);
            }
            Err(error) => {
                // EBUSY/EAGAIN/EINTR: the SQEs stay queued; the reaper retries after the next
                // completion frees room, or right away when woken.
                tracing::debug!(%error, "io_uring submit deferred");
                state.unsubmitted.set(true);
                state.submit_wanted.notify_one();
            }
        }
    }

    async fn reap_forever(&self) {
        let Backend::Uring(state) = &self.inner.backend else {
            return;
        };
        loop {
            tokio::select! {
                biased;
                ready = state.eventfd.readable() => {
                    match ready {
                        Ok(mut guard) => guard.clear_ready(),
                        Err(error) => {
                            tracing::error!(%error, "io_uring eventfd failed; I/O on this shard stops");
                            return;
                        }
                    }
                    if let Err(error) = ring::clear_eventfd(state.eventfd.get_ref())
                        && error.kind() != io::ErrorKind::WouldBlock
                    {
                        tracing::warn!(%error, "eventfd read failed");
                    }
                    self.reap(state);
                }
                () = state.submit_wanted.notified() => {
                    if state.unsubmitted.get() {
                        tokio::task::yield_now().await;
                        let ring = state.ring.borrow();
                        self.submit_now(state, &ring);
                    }
                }
            }
            if state.unsubmitted.get() {
                let ring = state.ring.borrow();
                self.submit_now(state, &ring);
            }
        }
    }

    fn reap(&self, state: &UringState) {
        let mut completions = Vec::new();
        state.ring.borrow_mut().drain_completions(&mut completions);
        if completions.is_empty() {
            return;
        }
        let mut wakers = Vec::with_capacity(completions.len());
        {
            let mut table = state.ops.borrow_mut();
            for (user_data, result) in completions {
                if let Ok(key) = usize::try_from(user_data)
                    && let Some(waker) = table.complete(key, result)
                {
                    wakers.push(waker);
                }
            }
        }
        for waker in wakers {
            waker.wake();
        }
        state.slots_freed.notify_waiters();
    }
}

/// Waits for the CQEs of `keys`; if dropped early, leaves the entries to the reaper so the
/// kernel's buffers stay alive.
struct Completions<'a> {
    driver: &'a IoDriver,
    keys: Vec<usize>,
    results: Vec<Option<i32>>,
}

impl Future for Completions<'_> {
    type Output = Vec<i32>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<i32>> {
        let this = self.get_mut();
        let Backend::Uring(state) = &this.driver.inner.backend else {
            return Poll::Ready(Vec::new());
        };
        if this.results.len() != this.keys.len() {
            this.results = vec![None; this.keys.len()];
        }
        let mut freed_any = false;
        {
            let mut table = state.ops.borrow_mut();
            for (key, slot) in this.keys.iter().zip(this.results.iter_mut()) {
                if slot.is_none() {
                    *slot = table.poll_result(*key, cx.waker());
                    freed_any |= slot.is_some();
                }
            }
        }
        if freed_any {
            state.slots_freed.notify_waiters();
        }
        if this.results.iter().all(Option::is_some) {
            Poll::Ready(
                this.results
                    .iter()
                    .map(|r| r.unwrap_or(-libc::EIO))
                    .collect(),
            )
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Completions<'_> {
    fn drop(&mut self) {
        let Backend::Uring(state) = &self.driver.inner.backend else {
            return;
        };
        let Ok(mut table) = state.ops.try_borrow_mut() else {
            return;
        };
        for (index, key) in self.keys.iter().enumerate() {
            if self.results.get(index).is_none_or(Option::is_none) {
                table.abandon(*key);
            }
        }
    }
}

impl Drop for UringState {
    /// The kernel may still be reading buffers the op table owns: wait for every completion
    /// before the table is freed. If the ring cannot be drained, leak the table rather than
    /// free memory the kernel might still read.
    fn drop(&mut self) {
        let mut completions = Vec::new();
        let mut round_count = 0usize;
        while self.ops.get_mut().kernel_owned_count() > 0 && round_count <= IN_FLIGHT_OPS_MAX {
            round_count += 1;
            let ring = self.ring.get_mut();
            if ring.submit_and_wait(1).is_err() {
                continue;
            }
            ring.drain_completions(&mut completions);
            let table = self.ops.get_mut();
            for (user_data, result) in completions.drain(..) {
                if let Ok(key) = usize::try_from(user_data) {
                    table.complete(key, result);
                    table.abandon(key);
                }
            }
        }
        if self.ops.get_mut().kernel_owned_count() > 0 {
            tracing::error!("io_uring ops still in flight at drop; leaking their buffers");
            std::mem::forget(std::mem::replace(
                self.ops.get_mut(),
                OpTable::with_capacity(0),
            ));
        }
    }
}

fn single(mut results: Vec<io::Result<()>>) -> io::Result<()> {
    results
        .pop()
        .unwrap_or_else(|| Err(io::Error::other("no result for chain")))
}
