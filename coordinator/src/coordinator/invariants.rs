//! Random operation sequences, with a clock that jumps back and forth, thrown at the
//! coordinator; after every step the invariants below must hold. Lives inside the crate so
//! that it can look at what the public API does not show (tokens held, timers filed).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use proptest::prelude::*;

use super::group::Group;
use super::{Coordinator, timers};
use crate::api::*;
use crate::records::Record;
use spate_protocol::ErrorCode;

/// Everything that must be true of a settled coordinator.
fn check(c: &Coordinator) -> Result<(), String> {
    for (id, group) in &c.groups {
        check_group(c, group).map_err(|e| format!("group {id}: {e}"))?;
    }
    for (id, at) in &c.filed {
        if !c.groups.contains_key(id) || !c.deadlines.contains(&(*at, id.clone())) {
            return Err(format!("stale deadline for {id}"));
        }
    }
    if c.deadlines.len() != c.filed.len() {
        return Err("deadline index out of step".into());
    }
    Ok(())
}

fn check_group(c: &Coordinator, g: &Group) -> Result<(), String> {
    let ensure = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
    ensure(
        g.members.len() <= c.config.max_group_size,
        "more members than group.max.size",
    )?;
    ensure(
        g.leader.is_some() != g.members.is_empty(),
        "a leader iff members",
    )?;
    if let Some(leader) = &g.leader {
        ensure(g.members.contains_key(leader), "the leader is a member")?;
    }
    for (instance, member_id) in &g.static_members {
        let member = g
            .members
            .get(member_id)
            .ok_or("static entry names no member")?;
        ensure(
            member.instance_id.as_ref() == Some(instance),
            "static entry mismatch",
        )?;
    }
    for member in g.members.values() {
        if let Some(instance) = &member.instance_id {
            ensure(
                g.static_members.get(instance) == Some(&member.id),
                "static member unmapped",
            )?;
        }
    }
    ensure(
        g.pending.keys().all(|id| !g.members.contains_key(id)),
        "pending and member",
    )?;
    ensure(
        g.pending_sync.iter().all(|id| g.members.contains_key(id)),
        "pending sync of a non-member",
    )?;
    ensure(!g.is_vacant(), "a vacant group is kept")?;
    ensure(
        c.filed.get(&g.id).copied() == timers::next_deadline(g),
        "deadline filed wrongly",
    )?;
    let joining = g.members.values().any(|m| m.join_token.is_some());
    let syncing = g.members.values().any(|m| m.sync_token.is_some());
    match g.state {
        GroupState::Empty => {
            ensure(g.members.is_empty(), "Empty with members")?;
            ensure(
                g.join_timer.is_none() && g.sync_deadline.is_none(),
                "Empty with timers",
            )?;
        }
        GroupState::PreparingRebalance => {
            ensure(
                g.join_timer.is_some(),
                "PreparingRebalance without a join timer",
            )?;
            ensure(
                !syncing && g.pending_sync.is_empty(),
                "PreparingRebalance with syncs",
            )?;
        }
        GroupState::CompletingRebalance => {
            ensure(
                !g.members.is_empty() && g.protocol_name.is_some(),
                "CompletingRebalance unset",
            )?;
            ensure(
                g.join_timer.is_none() && !joining,
                "CompletingRebalance with joins",
            )?;
            for m in g.members.values() {
                ensure(
                    m.sync_token.is_some() || g.pending_sync.contains(&m.id),
                    "member lost track of",
                )?;
            }
        }
        GroupState::Stable => {
            ensure(
                !g.members.is_empty() && g.protocol_name.is_some(),
                "Stable unset",
            )?;
            ensure(
                g.join_timer.is_none() && !joining && !syncing,
                "Stable with parked requests",
            )?;
            let stored = g.stored.as_ref().ok_or("Stable but never written")?;
            ensure(
                stored.generation == g.generation,
                "written generation differs",
            )?;
            ensure(stored.leader == g.leader, "written leader differs")?;
            let written: BTreeMap<&str, &Bytes> = stored
                .members
                .iter()
                .map(|m| (m.member_id.as_str(), &m.assignment))
                .collect();
            let live: BTreeMap<&str, &Bytes> = g
                .members
                .values()
                .map(|m| (m.id.as_str(), &m.assignment))
                .collect();
            ensure(
                written == live,
                "Stable members or assignments differ from the written group",
            )?;
        }
        GroupState::Dead => return Err("a Dead group is kept".into()),
    }
    Ok(())
}

fn held_tokens(c: &Coordinator) -> Result<BTreeSet<Token>, String> {
    let mut held = BTreeSet::new();
    for g in c.groups.values() {
        for m in g.members.values() {
            for token in [m.join_token, m.sync_token].into_iter().flatten() {
                if !held.insert(token) {
                    return Err(format!("token {token:?} held twice"));
                }
            }
        }
    }
    Ok(held)
}

// ---- the random driver ----

const GROUPS: [&str; 2] = ["g0", "g1"];
const CLIENTS: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    Join {
        client: usize,
        group: usize,
        variant: u8,
        fresh: bool,
        require_known: bool,
        bad_session: bool,
        rebalance_timeout_ms: i32,
    },
    Sync {
        client: usize,
        group: usize,
        generation_delta: i32,
    },
    Heartbeat {
        client: usize,
        group: usize,
        generation_delta: i32,
    },
    Leave {
        client: usize,
        group: usize,
        by_instance: bool,
    },
    Commit {
        client: usize,
        group: usize,
        outside: bool,
        big: bool,
        retention: bool,
    },
    Written,
    DeleteOffsets {
        group: usize,
    },
    DeleteGroup {
        group: usize,
    },
    Advance {
        ms: i64,
    },
    ClockBack {
        ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0..CLIENTS;
    let group = 0..GROUPS.len();
    prop_oneof![
        4 => (client.clone(), group.clone(), 0u8..4, prop::bool::weighted(0.25), any::<bool>(), prop::bool::weighted(0.05), prop_oneof![4 => Just(4_000), 2 => Just(20_000), 1 => Just(0), 1 => Just(-5)])
            .prop_map(|(client, group, variant, fresh, require_known, bad_session, rebalance_timeout_ms)| Op::Join {
                client, group, variant, fresh, require_known, bad_session, rebalance_timeout_ms
            }),
        6 => (client.clone(), group.clone(), prop_oneof![4 => Just(0), 1 => -1..=1])
            .prop_map(|(client, group, generation_delta)| Op::Sync { client, group, generation_delta }),
        3 => (client.clone(), group.clone(), prop_oneof![4 => Just(0), 1 => -1..=1])
            .prop_map(|(client, group, generation_delta)| Op::Heartbeat { client, group, generation_delta }),
        1 => (client.clone(), group.clone(), any::<bool>())
            .prop_map(|(client, group, by_instance)| Op::Leave { client, group, by_instance }),
        2 => (client, group.clone(), any::<bool>(), prop::bool::weighted(0.1), any::<bool>())
            .prop_map(|(client, group, outside, big, retention)| Op::Commit { client, group, outside, big, retention }),
        1 => Just(Op::Written),
        1 => group.clone().prop_map(|group| Op::DeleteOffsets { group }),
        1 => group.prop_map(|group| Op::DeleteGroup { group }),
        4 => prop_oneof![0i64..2_000, 0i64..40_000, Just(600_000)].prop_map(|ms| Op::Advance { ms }),
        1 => (0i64..20_000).prop_map(|ms| Op::ClockBack { ms }),
    ]
}

#[derive(Debug, Default, Clone)]
struct Client {
    member_id: String,
    generation: i32,
    members: Vec<String>,
}

struct Driver {
    c: Coordinator,
    now: Millis,
    next_token: u64,
    /// Parked requests: token → (client, group, member id when sent).
    outstanding: HashMap<Token, (usize, usize, String)>,
    clients: HashMap<(usize, usize), Client>,
    prepared: Vec<PreparedCommit>,
    generations: BTreeMap<String, i32>,
}

fn instance(client: usize) -> Option<String> {
    (client >= 3).then(|| format!("i{client}"))
}

impl Driver {
    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    fn learn_join(&mut self, key: (usize, usize), result: &JoinResult) {
        let client = self.clients.entry(key).or_default();
        match result.error {
            ErrorCode::None => {
                client.member_id = result.member_id.clone();
                client.generation = result.generation_id;
                if result.leader == result.member_id {
                    client.members = result.members.iter().map(|m| m.member_id.clone()).collect();
                }
            }
            ErrorCode::MemberIdRequired => client.member_id = result.member_id.clone(),
            ErrorCode::UnknownMemberId | ErrorCode::FencedInstanceId => client.member_id.clear(),
            _ => {}
        }
    }

    fn step(&mut self, op: Op) -> Result<(), String> {
        let now = self.now;
        match op {
            Op::Join {
                client,
                group,
                variant,
                fresh,
                require_known,
                bad_session,
                rebalance_timeout_ms,
            } => {
                let known = self
                    .clients
                    .get(&(client, group))
                    .map(|c| c.member_id.clone())
                    .unwrap_or_default();
                let metadata = Bytes::from(format!("c{client}"));
                let protocols = match variant {
                    0 => vec![Protocol {
                        name: "range".into(),
                        metadata,
                    }],
                    1 => vec![
                        Protocol {
                            name: "roundrobin".into(),
                            metadata: metadata.clone(),
                        },
                        Protocol {
                            name: "range".into(),
                            metadata,
                        },
                    ],
                    _ => vec![Protocol {
                        name: "roundrobin".into(),
                        metadata,
                    }],
                };
                let req = JoinGroup {
                    group_id: GROUPS[group].into(),
                    member_id: if fresh { String::new() } else { known },
                    group_instance_id: instance(client),
                    session_timeout_ms: if bad_session { 10 } else { 5_000 },
                    rebalance_timeout_ms,
                    protocol_type: if variant == 3 {
                        "connect".into()
                    } else {
                        "consumer".into()
                    },
                    protocols,
                    client_id: format!("c{client}"),
                    client_host: "/h".into(),
                    require_known_member_id: require_known,
                    reason: None,
                };
                let sent = req.member_id.clone();
                let token = self.token();
                match self.c.join_group(now, token, req) {
                    Reply::Now(result) => self.learn_join((client, group), &result),
                    Reply::Later => {
                        self.outstanding.insert(token, (client, group, sent));
                    }
                }
            }
            Op::Sync {
                client,
                group,
                generation_delta,
            } => {
                let view = self
                    .clients
                    .get(&(client, group))
                    .cloned()
                    .unwrap_or_default();
                let assignments = view
                    .members
                    .iter()
                    .map(|m| (m.clone(), Bytes::from(format!("a-{m}"))))
                    .collect();
                let req = SyncGroup {
                    group_id: GROUPS[group].into(),
                    member_id: view.member_id.clone(),
                    group_instance_id: instance(client),
                    generation_id: view.generation + generation_delta,
                    protocol_type: Some("consumer".into()),
                    protocol_name: None,
                    assignments,
                };
                let token = self.token();
                if let Reply::Later = self.c.sync_group(now, token, req) {
                    self.outstanding
                        .insert(token, (client, group, view.member_id));
                }
            }
            Op::Heartbeat {
                client,
                group,
                generation_delta,
            } => {
                let view = self
                    .clients
                    .get(&(client, group))
                    .cloned()
                    .unwrap_or_default();
                self.c.heartbeat(
                    now,
                    Heartbeat {
                        group_id: GROUPS[group].into(),
                        member_id: view.member_id,
                        group_instance_id: instance(client),
                        generation_id: view.generation + generation_delta,
                    },
                );
            }
            Op::Leave {
                client,
                group,
                by_instance,
            } => {
                let view = self
                    .clients
                    .get(&(client, group))
                    .cloned()
                    .unwrap_or_default();
                let member_id = if by_instance {
                    String::new()
                } else {
                    view.member_id
                };
                let leaving = LeavingMember {
                    member_id,
                    group_instance_id: instance(client),
                    reason: None,
                };
                self.c.leave_group(now, GROUPS[group], vec![leaving]);
            }
            Op::Commit {
                client,
                group,
                outside,
                big,
                retention,
            } => {
                let view = self
                    .clients
                    .get(&(client, group))
                    .cloned()
                    .unwrap_or_default();
                let req = OffsetCommit {
                    group_id: GROUPS[group].into(),
                    member_id: if outside {
                        String::new()
                    } else {
                        view.member_id
                    },
                    group_instance_id: if outside { None } else { instance(client) },
                    generation_id: if outside { -1 } else { view.generation },
                    retention_time_ms: if retention { 30_000 } else { -1 },
                    partitions: vec![CommitPartition {
                        key: PartitionKey::new(format!("t{client}"), 0),
                        offset: now,
                        leader_epoch: -1,
                        metadata: Some(if big { "x".repeat(100) } else { String::new() }),
                    }],
                };
                if let Ok(prepared) = self.c.prepare_commit(now, req) {
                    let before = self.c.fetch_offsets(&prepared.group_id, None);
                    self.prepared.push(prepared);
                    if let Some(p) = self.prepared.last()
                        && self.c.fetch_offsets(&p.group_id, None) != before
                    {
                        return Err("a prepared commit became visible".into());
                    }
                }
            }
            Op::Written => {
                if !self.prepared.is_empty() {
                    let prepared = self.prepared.remove(0);
                    self.c.commit_written(now, &prepared);
                }
            }
            Op::DeleteOffsets { group } => {
                let keys: Vec<PartitionKey> = (0..CLIENTS)
                    .map(|c| PartitionKey::new(format!("t{c}"), 0))
                    .collect();
                let _ = self.c.delete_offsets(now, GROUPS[group], &keys);
            }
            Op::DeleteGroup { group } => {
                self.c.delete_groups(now, &[GROUPS[group].to_owned()]);
            }
            Op::Advance { ms } => {
                self.now += ms;
                self.c.tick(self.now);
            }
            Op::ClockBack { ms } => self.now -= ms,
        }
        for group in GROUPS {
            let _ = self.c.describe_group(group);
            let _ = self.c.fetch_offsets(group, None);
        }
        let _ = self.c.list_groups();
        self.drain()?;
        self.check_progress()
    }

    fn drain(&mut self) -> Result<(), String> {
        let mut written: BTreeMap<String, Vec<(String, Bytes)>> = BTreeMap::new();
        for effect in self.c.take_effects() {
            match effect {
                Effect::Append(records) => {
                    for record in records {
                        if let Record::Group {
                            group,
                            value: Some(v),
                        } = record
                        {
                            let members = v
                                .members
                                .into_iter()
                                .map(|m| (m.member_id, m.assignment))
                                .collect();
                            written.insert(group, members);
                        }
                    }
                }
                Effect::JoinDone { token, result } => {
                    let (client, group, _) = self
                        .outstanding
                        .remove(&token)
                        .ok_or("join answered twice")?;
                    self.learn_join((client, group), &result);
                }
                Effect::SyncDone { token, result } => {
                    let (_, group, member_id) = self
                        .outstanding
                        .remove(&token)
                        .ok_or("sync answered twice")?;
                    if result.error == ErrorCode::None {
                        // Written first: the assignment handed out is the one in the log.
                        let members = written
                            .get(GROUPS[group])
                            .ok_or("sync answered before the group was written")?;
                        let stored = members
                            .iter()
                            .find(|(id, _)| *id == member_id)
                            .map(|(_, a)| a);
                        if stored != Some(&result.assignment) {
                            return Err(format!(
                                "answered an assignment that was not written for {member_id}"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn check_progress(&mut self) -> Result<(), String> {
        check(&self.c)?;
        let held = held_tokens(&self.c)?;
        let outstanding: BTreeSet<Token> = self.outstanding.keys().copied().collect();
        if held != outstanding {
            return Err(format!("parked {outstanding:?} but held {held:?}"));
        }
        for (id, group) in &self.c.groups {
            if let Some(before) = self.generations.get(id)
                && group.generation < *before
            {
                return Err(format!("generation of {id} went back"));
            }
        }
        self.generations = self
            .c
            .groups
            .iter()
            .map(|(id, g)| (id.clone(), g.generation))
            .collect();
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_every_invariant(
        ops in prop::collection::vec(op(), 1..200),
        max_group_size in 1usize..5,
        initial_rebalance_delay_ms in prop_oneof![Just(0), 0i32..4_000],
        start in prop_oneof![Just(0i64), any::<i64>().prop_map(|t| t / 4), Just(i64::MAX - 1_000_000_000)],
    ) {
        let config = CoordinatorConfig {
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 60_000,
            initial_rebalance_delay_ms,
            max_group_size,
            offsets_retention_ms: 100_000,
            offset_metadata_max_bytes: 16,
        };
        let mut driver = Driver {
            c: Coordinator::new(config),
            now: start,
            next_token: 0,
            outstanding: HashMap::new(),
            clients: HashMap::new(),
            prepared: Vec::new(),
            generations: BTreeMap::new(),
        };
        for (i, op) in ops.into_iter().enumerate() {
            let described = format!("{op:?}");
            if let Err(e) = driver.step(op) {
                prop_assert!(false, "step {i} ({described}): {e}");
            }
        }
    }
}
