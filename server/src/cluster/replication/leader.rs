//! The leader's side, on the shard that owns each partition it leads: a slot per partition
//! (its `LeaderReplica`, a copy of its epoch cache, its HW as last applied to the engine),
//! and the task that keeps the HW and the ISR moving. Answering follower fetches is in
//! [`super::serve`].

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_cluster::TopicId;
use spate_cluster::replication::{
    EpochCache, IsrChangeRequest, IsrRefusal, LeaderReplica, LocalOffsets,
};
use spate_engine::{PartitionOffsets, TopicPartition};
use tokio::sync::{Notify, watch};

use super::ReplicationContext;
use crate::cluster::rpc::{AlterPartitionRequest, ControllerReplyBody, ControllerRequest};
use crate::handlers::error_code;

/// How long an AlterPartition may take before the leader sends it again.
const ISR_CHANGE_TIMEOUT_MS: u64 = 10_000;

/// One partition this node leads, on its shard.
pub(super) struct LeaderSlot {
    pub tp: TopicPartition,
    pub topic_id: TopicId,
    pub state: RefCell<LeaderReplica>,
    /// The log's epoch cache as of the tenure's start (a leader's cache does not change
    /// within its tenure: it only appends in its own epoch).
    pub epochs: EpochCache,
    pub offsets: watch::Receiver<PartitionOffsets>,
    /// The HW last given to the engine.
    applied_high_watermark: Cell<i64>,
    pub stopped: Cell<bool>,
    /// Wakes the slot's task: a fetch moved positions, or the slot stopped.
    pub wake: Notify,
    /// Wakes every `acks=all` waiter when the slot stops (leadership moved).
    pub stopping: Notify,
    context: Arc<ReplicationContext>,
}

pub(super) fn local_of(offsets: &PartitionOffsets) -> LocalOffsets {
    LocalOffsets {
        log_start: offsets.log_start_offset,
        log_end: offsets.written_end,
        stable_end: offsets.stable_end,
    }
}

impl LeaderSlot {
    pub fn new(
        tp: TopicPartition,
        topic_id: TopicId,
        state: LeaderReplica,
        epochs: EpochCache,
        offsets: watch::Receiver<PartitionOffsets>,
        context: Arc<ReplicationContext>,
    ) -> Rc<Self> {
        let applied = offsets.borrow().high_watermark;
        Rc::new(Self {
            tp,
            topic_id,
            state: RefCell::new(state),
            epochs,
            offsets,
            applied_high_watermark: Cell::new(applied),
            stopped: Cell::new(false),
            wake: Notify::new(),
            stopping: Notify::new(),
            context,
        })
    }

    pub fn stop(&self) {
        self.stopped.set(true);
        self.wake.notify_one();
        self.stopping.notify_waiters();
    }

    /// Gives the engine the state machine's HW if it moved (readers and `acks=all` waiters
    /// follow the engine's).
    pub async fn apply_high_watermark(&self) {
        let high_watermark = self.state.borrow().high_watermark();
        if high_watermark == self.applied_high_watermark.get() {
            return;
        }
        match self
            .context
            .engine
            .set_high_watermark(&self.tp, high_watermark)
            .await
        {
            Ok(applied) => self.applied_high_watermark.set(applied),
            Err(e) => {
                tracing::warn!(partition = %self.tp, error = %e, "cannot move the high watermark")
            }
        }
    }
}

/// The slot's task: follows the local log (the leader's own appends move the HW when the
/// ISR is just the leader, and the stable end caps it), and sends ISR changes when due.
pub(super) async fn run(slot: Rc<LeaderSlot>) {
    let mut offsets = slot.offsets.clone();
    loop {
        if slot.stopped.get() {
            return;
        }
        {
            let local = local_of(&offsets.borrow_and_update());
            slot.state.borrow_mut().on_local(Instant::now(), local);
        }
        slot.apply_high_watermark().await;
        maybe_change_isr(&slot);
        let deadline = slot
            .state
            .borrow()
            .next_deadline()
            .map(tokio::time::Instant::from_std);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = offsets.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = slot.wake.notified() => {}
            _ = sleep => {}
        }
    }
}

/// Sends the ISR change the state machine wants, if any (one at a time; its answer feeds
/// back into the state machine).
fn maybe_change_isr(slot: &Rc<LeaderSlot>) {
    let image = slot.context.view.image();
    let Some(request) = slot
        .state
        .borrow_mut()
        .poll_isr_change(Instant::now(), &*image)
    else {
        return;
    };
    let broker_epoch = image
        .broker(slot.context.node_id)
        .map_or(-1, |b| b.broker_epoch);
    let slot = slot.clone();
    tokio::task::spawn_local(async move {
        let call = ControllerRequest::AlterPartition(AlterPartitionRequest {
            broker: slot.context.node_id,
            broker_epoch,
            topic_id: slot.topic_id,
            partition: slot.tp.partition,
            leader_epoch: request.leader_epoch,
            partition_epoch: request.partition_epoch,
            new_isr: request
                .new_isr
                .iter()
                .map(|m| (m.node, m.broker_epoch))
                .collect(),
            leader_recovery_state: request.leader_recovery_state,
        });
        let outcome = slot
            .context
            .control
            .call(call, Duration::from_millis(ISR_CHANGE_TIMEOUT_MS))
            .await;
        apply_isr_outcome(&slot, &request, outcome);
        slot.wake.notify_one();
    });
}

fn apply_isr_outcome(
    slot: &LeaderSlot,
    request: &IsrChangeRequest,
    outcome: Result<crate::cluster::rpc::ControllerReply, crate::cluster::rpc::ControllerError>,
) {
    let now = Instant::now();
    let mut state = slot.state.borrow_mut();
    match outcome {
        Ok(reply) => match reply.body {
            ControllerReplyBody::Partition(Ok(updated)) => {
                tracing::info!(partition = %slot.tp, isr = ?updated.isr, partition_epoch = updated.partition_epoch, "ISR changed");
                state.on_isr_change_accepted(now, request, &updated);
            }
            ControllerReplyBody::Partition(Err((code, message))) => {
                tracing::info!(partition = %slot.tp, code, %message, "the controller refused an ISR change");
                state.on_isr_change_refused(now, request, isr_refusal(code));
            }
            _ => state.on_isr_change_refused(now, request, IsrRefusal::Retry),
        },
        Err(e) => {
            tracing::debug!(partition = %slot.tp, error = %e, "ISR change not answered; retrying");
            state.on_isr_change_refused(now, request, IsrRefusal::Retry);
        }
    }
}

/// How the leader acts on an AlterPartition refusal (`Partition.handleAlterPartitionError`).
fn isr_refusal(code: i16) -> IsrRefusal {
    match code {
        error_code::INELIGIBLE_REPLICA | error_code::OPERATION_NOT_ATTEMPTED => {
            IsrRefusal::Ineligible
        }
        error_code::NOT_CONTROLLER | error_code::REQUEST_TIMED_OUT => IsrRefusal::Retry,
        _ => IsrRefusal::AwaitMetadata,
    }
}
