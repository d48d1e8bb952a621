//! The broker's side of KIP-631's lifecycle: register with the active controller, heartbeat,
//! get unfenced once caught up with the metadata log, and on SIGTERM ask for a controlled
//! shutdown (leaderships move away) before exiting.
//!
//! A broker is registered with a random incarnation id per process start; the controller
//! gives it a new broker epoch. Heartbeats carry the metadata offset this node has applied
//! to its engine, so the controller unfences it only when its partitions exist locally.
//! A fenced broker heartbeats quickly, so it is unfenced within a few milliseconds of
//! catching up rather than a whole heartbeat interval later.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_cluster::NodeId;
use spate_cluster::records::Endpoint;
use tokio::sync::watch;

use super::control::ControlPlane;
use super::rpc::{ControllerError, ControllerReplyBody, ControllerRequest};
use crate::metadata::MetadataView;

/// Heartbeat interval while fenced or shutting down: short, so unfencing and controlled
/// shutdown take milliseconds, not a whole interval.
const FAST_HEARTBEAT_MS: u64 = 50;
/// Pause between registration attempts while no controller answers.
const REGISTER_RETRY_MS: u64 = 200;
/// How often "still waiting for the controller" is logged.
const WAITING_LOG_INTERVAL_MS: u64 = 10_000;
/// A stopping broker that has not heard from any controller for this long leaves without
/// its controlled shutdown: with no quorum (the last nodes of a cluster stopping together)
/// nobody can move its leaderships, and waiting the whole timeout would only delay the stop.
const CONTROLLER_SILENCE_MS_MAX: u64 = 5_000;

/// Who this broker is, as it registers.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    pub node_id: NodeId,
    pub incarnation_id: String,
    pub kafka: Endpoint,
    pub cluster_addr: String,
    pub rack: Option<String>,
    pub heartbeat_interval: Duration,
}

/// Where the broker stands with the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifecycleState {
    /// Set once registered.
    pub broker_epoch: Option<i64>,
    pub fenced: bool,
    /// The controller has moved every leadership away: the broker may exit.
    pub may_exit: bool,
    /// When a controller last answered a heartbeat.
    pub last_answer: Option<Instant>,
}

/// A handle on the lifecycle task. `Send + Sync + Clone`.
#[derive(Clone)]
pub struct Lifecycle {
    state: watch::Receiver<LifecycleState>,
    want_shutdown: Arc<watch::Sender<bool>>,
    incarnation_id: String,
}

impl Lifecycle {
    /// Starts registering and heartbeating on the current (control-plane) runtime.
    pub fn spawn(
        plane: Arc<ControlPlane>,
        view: Arc<MetadataView>,
        settings: LifecycleSettings,
    ) -> Lifecycle {
        let (state_tx, state) = watch::channel(LifecycleState {
            fenced: true,
            ..LifecycleState::default()
        });
        let (want_shutdown, want_shutdown_rx) = watch::channel(false);
        let incarnation_id = settings.incarnation_id.clone();
        tokio::spawn(run(plane, view, settings, state_tx, want_shutdown_rx));
        Lifecycle {
            state,
            want_shutdown: Arc::new(want_shutdown),
            incarnation_id,
        }
    }

    pub fn state(&self) -> LifecycleState {
        *self.state.borrow()
    }

    pub fn incarnation_id(&self) -> &str {
        &self.incarnation_id
    }

    /// Resolves once the controller has unfenced this broker (the first time).
    pub async fn unfenced(&self) {
        let mut state = self.state.clone();
        let _ = state
            .wait_for(|s| s.broker_epoch.is_some() && !s.fenced)
            .await;
    }

    /// Asks for a controlled shutdown and waits until the controller has moved this
    /// broker's leaderships away, `timeout` passes, or no controller has answered for
    /// [`CONTROLLER_SILENCE_MS_MAX`]. Returns whether it completed.
    pub async fn controlled_shutdown(&self, timeout: Duration) -> bool {
        if self.state().broker_epoch.is_none() {
            return true;
        }
        self.want_shutdown.send_replace(true);
        let asked = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let silence = Duration::from_millis(CONTROLLER_SILENCE_MS_MAX);
        let mut state = self.state.clone();
        loop {
            let current = *state.borrow_and_update();
            if current.may_exit {
                return true;
            }
            let heard = current.last_answer.filter(|t| *t >= asked).unwrap_or(asked);
            if heard.elapsed() >= silence {
                tracing::warn!(
                    silent_ms = heard.elapsed().as_millis() as u64,
                    "no controller answers (no quorum?); stopping without a controlled shutdown"
                );
                return false;
            }
            let poll = tokio::time::sleep(Duration::from_millis(FAST_HEARTBEAT_MS));
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return false,
                _ = state.changed() => {}
                _ = poll => {}
            }
        }
    }
}

async fn run(
    plane: Arc<ControlPlane>,
    view: Arc<MetadataView>,
    settings: LifecycleSettings,
    state: watch::Sender<LifecycleState>,
    mut want_shutdown: watch::Receiver<bool>,
) {
    let call_timeout = settings.heartbeat_interval.max(Duration::from_secs(2));
    'register: loop {
        let epoch = register(&plane, &settings, call_timeout).await;
        state.send_modify(|s| {
            s.broker_epoch = Some(epoch);
            s.fenced = true;
        });
        tracing::info!(
            node = settings.node_id,
            broker_epoch = epoch,
            "registered with the controller"
        );
        // The controller unfences a broker once it has applied its own registration: wait for
        // that rather than heartbeating into a refusal.
        let registered_at = u64::try_from(epoch).unwrap_or(0);
        view.wait_for_offset(registered_at, settings.heartbeat_interval)
            .await;
        let mut last_error_log: Option<Instant> = None;
        loop {
            let shutting_down = *want_shutdown.borrow_and_update();
            let request = ControllerRequest::Heartbeat {
                node_id: settings.node_id,
                broker_epoch: epoch,
                metadata_offset: view.offset(),
                want_shutdown: shutting_down,
            };
            match plane.call(request, call_timeout).await {
                Ok(reply) => {
                    if let ControllerReplyBody::Heartbeat {
                        fenced,
                        should_shut_down,
                        ..
                    } = reply.body
                    {
                        let was_fenced = state.borrow().fenced;
                        if was_fenced && !fenced {
                            // Serve only once this node has applied its unfencing and the
                            // elections that came with it.
                            view.wait_for_offset(reply.offset, settings.heartbeat_interval)
                                .await;
                        }
                        state.send_modify(|s| {
                            s.fenced = fenced;
                            s.may_exit |= should_shut_down;
                            s.last_answer = Some(Instant::now());
                        });
                        if was_fenced && !fenced {
                            tracing::info!(
                                node = settings.node_id,
                                broker_epoch = epoch,
                                "unfenced: serving as a broker"
                            );
                        } else if !was_fenced && fenced && !shutting_down {
                            tracing::warn!(
                                node = settings.node_id,
                                "fenced by the controller (its session expired); catching up to be unfenced again"
                            );
                        }
                    }
                    last_error_log = None;
                }
                Err(ControllerError::Reregister(reason)) => {
                    tracing::warn!(node = settings.node_id, %reason, "the controller does not know this broker's epoch; registering again");
                    continue 'register;
                }
                Err(error) => {
                    let due = last_error_log.is_none_or(|t| {
                        t.elapsed() >= Duration::from_millis(WAITING_LOG_INTERVAL_MS)
                    });
                    if due {
                        tracing::warn!(node = settings.node_id, %error, "heartbeat to the controller failed; retrying");
                        last_error_log = Some(Instant::now());
                    }
                }
            }
            let current = *state.borrow();
            let interval = if current.fenced || shutting_down {
                Duration::from_millis(FAST_HEARTBEAT_MS)
            } else {
                settings.heartbeat_interval
            };
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = want_shutdown.changed() => {}
            }
        }
    }
}

/// Registers until a controller accepts; returns the broker epoch.
async fn register(plane: &ControlPlane, settings: &LifecycleSettings, timeout: Duration) -> i64 {
    let started = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let request = ControllerRequest::RegisterBroker {
            node_id: settings.node_id,
            incarnation_id: settings.incarnation_id.clone(),
            kafka: settings.kafka.clone(),
            cluster_addr: settings.cluster_addr.clone(),
            rack: settings.rack.clone(),
        };
        match plane.call(request, timeout).await {
            Ok(reply) => {
                if let ControllerReplyBody::Registered { broker_epoch } = reply.body {
                    return broker_epoch;
                }
                tracing::warn!(
                    "the controller answered a registration with the wrong message; retrying"
                );
            }
            Err(error) => {
                if last_log.elapsed() >= Duration::from_millis(WAITING_LOG_INTERVAL_MS) {
                    tracing::warn!(
                        node = settings.node_id,
                        waited_s = started.elapsed().as_secs(),
                        %error,
                        "still waiting to register with the controller quorum"
                    );
                    last_log = Instant::now();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(REGISTER_RETRY_MS)).await;
    }
}
