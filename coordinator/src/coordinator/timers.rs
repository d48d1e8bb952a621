//! A group's deadlines, and firing those that are due.
//!
//! Kafka keeps one timer per key (member heartbeat, join phase, pending sync, ...). Here a
//! deadline is a field of the group or member it belongs to, so it cannot outlive what it
//! refers to; `next_deadline` takes their minimum and `fire_due` fires them oldest first.

use super::group::{Group, JoinTimer, after};
use super::offsets;
use super::{Coordinator, Cx};
use crate::api::*;
use crate::records::Record;

/// How long an empty group with no offsets is kept before it is deleted. Kafka deletes
/// such groups in its periodic offset cleanup (`offsets.retention.check.interval.ms`,
/// 10 minutes by default); a fixed delay after the group became empty is the
/// deterministic equivalent.
pub(super) const EMPTY_GROUP_RETENTION_MS: i64 = 600_000;

/// Bounds the work one `tick` does on one group, so timeouts configured to zero cannot
/// make it spin; whatever is still due fires on the next tick.
const FIRINGS_PER_TICK_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Due {
    Pending(String),
    Join,
    Sync,
    Session(String),
    Retention,
}

pub(super) fn next_deadline(group: &Group) -> Option<Millis> {
    earliest(group).map(|(at, _)| at)
}

/// Recomputes the cached retention deadline after a change to offsets or membership.
pub(super) fn refresh_retention(group: &mut Group, config: &CoordinatorConfig) {
    group.retention_at = retention_deadline(group, config);
}

fn earliest(group: &Group) -> Option<(Millis, Due)> {
    let mut best: Option<(Millis, Due)> = None;
    let mut consider = |at: Millis, due: Due| {
        if best.as_ref().is_none_or(|(earliest, _)| at < *earliest) {
            best = Some((at, due));
        }
    };
    for (id, expiry) in &group.pending {
        consider(*expiry, Due::Pending(id.clone()));
    }
    if let Some((at, _)) = group.join_timer {
        consider(at, Due::Join);
    }
    if let Some(at) = group.sync_deadline {
        consider(at, Due::Sync);
    }
    for member in group.members.values() {
        if let Some(at) = member.expiry() {
            consider(at, Due::Session(member.id.clone()));
        }
    }
    if let Some(at) = group.retention_at {
        consider(at, Due::Retention);
    }
    best
}

/// When offsets expire, or when the group itself should go because nothing is left.
fn retention_deadline(group: &Group, config: &CoordinatorConfig) -> Option<Millis> {
    let expiry = offsets::next_expiry(group, config.offsets_retention_ms);
    let cleanup = deletable(group).then(|| {
        group
            .state_timestamp
            .unwrap_or(Millis::MIN)
            .saturating_add(EMPTY_GROUP_RETENTION_MS)
    });
    match (expiry, cleanup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Nothing left to keep the group for.
fn deletable(group: &Group) -> bool {
    group.state == GroupState::Empty
        && group.members.is_empty()
        && group.pending.is_empty()
        && group.offsets.is_empty()
}

impl Coordinator {
    /// Fires the group's due deadlines, oldest first; deletes the group if that leaves
    /// nothing to keep.
    pub(super) fn fire_due(&mut self, now: Millis, group_id: &str) {
        let mut delete = false;
        let mut records = Vec::new();
        {
            let Some((group, mut cx)) = self.group_cx(group_id, now) else {
                return;
            };
            for _ in 0..FIRINGS_PER_TICK_MAX {
                refresh_retention(group, cx.config);
                let Some((at, due)) = earliest(group) else {
                    break;
                };
                if at > now {
                    break;
                }
                if due == Due::Retention {
                    records.extend(offsets::expire(group, now, cx.config.offsets_retention_ms));
                    // Kafka deletes an empty group in the same pass that expires its
                    // last offset.
                    if deletable(group) {
                        delete = true;
                        break;
                    }
                    continue;
                }
                fire(group, &mut cx, due);
            }
        }
        if delete
            && let Some(group) = self.remove_group(group_id)
            && group.stored.is_some()
        {
            records.push(Record::Group {
                group: group.id,
                value: None,
            });
        }
        if !records.is_empty() {
            self.effects.push_back(Effect::Append(records));
        }
    }
}

fn fire(group: &mut Group, cx: &mut Cx<'_>, due: Due) {
    match due {
        Due::Pending(id) => {
            // A member id handed out with MEMBER_ID_REQUIRED was never used.
            group.pending.remove(&id);
            if group.state == GroupState::PreparingRebalance && group.all_members_joined() {
                group.complete_join(cx);
            }
        }
        Due::Join => join_timeout(group, cx),
        Due::Sync => sync_timeout(group, cx),
        Due::Session(id) => {
            group.remove_member(cx, &id);
            group.after_member_removed(cx);
        }
        Due::Retention => {}
    }
}

fn join_timeout(group: &mut Group, cx: &mut Cx<'_>) {
    let Some((_, timer)) = group.join_timer.take() else {
        return;
    };
    if group.state != GroupState::PreparingRebalance {
        return;
    }
    match timer {
        JoinTimer::InitialDelay {
            delay_ms,
            remaining_ms,
        } if group.new_member_added && remaining_ms > 0 => {
            // Members are still arriving: wait one more delay, within what is left of
            // the rebalance timeout.
            group.new_member_added = false;
            let next_delay_ms =
                i64::from(cx.config.initial_rebalance_delay_ms).clamp(0, remaining_ms);
            let timer = JoinTimer::InitialDelay {
                delay_ms: next_delay_ms,
                remaining_ms: (remaining_ms - delay_ms).max(0),
            };
            group.join_timer = Some((after(cx.now, next_delay_ms), timer));
        }
        _ => group.complete_join(cx),
    }
}

/// Kafka's pending-sync expiry: members that got their JoinGroup answer but never sent
/// SyncGroup within the rebalance timeout are removed, and the group rebalances.
fn sync_timeout(group: &mut Group, cx: &mut Cx<'_>) {
    group.sync_deadline = None;
    if !matches!(
        group.state,
        GroupState::CompletingRebalance | GroupState::Stable
    ) || group.pending_sync.is_empty()
    {
        return;
    }
    let missing: Vec<String> = group.pending_sync.iter().cloned().collect();
    for id in missing {
        group.remove_member(cx, &id);
    }
    group.prepare_rebalance(cx);
}
