//! A fake server around the coordinator: a clock that only moves when told, the effects
//! carried out in order (appends kept as the log), and the answers to parked requests.

#![allow(dead_code)]

use std::collections::HashMap;

use bytes::Bytes;
use spate_coordinator::records::Record;
use spate_coordinator::*;

pub const GROUP: &str = "g";
pub const SESSION_MS: i32 = 10_000;
pub const REBALANCE_MS: i32 = 30_000;
pub const DELAY_MS: i32 = 3_000;
pub const START_MS: Millis = 1_700_000_000_000;

/// What the fake server saw, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Append(Vec<Record>),
    Join(Token),
    Sync(Token),
}

pub struct Harness {
    pub c: Coordinator,
    pub now: Millis,
    next_token: u64,
    pub joins: HashMap<Token, JoinResult>,
    pub syncs: HashMap<Token, SyncResult>,
    /// Every record appended, in order: the `__consumer_offsets` partition.
    pub log: Vec<Record>,
    pub events: Vec<Event>,
}

pub fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        initial_rebalance_delay_ms: DELAY_MS,
        ..CoordinatorConfig::default()
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new(config())
    }
}

impl Harness {
    pub fn new(config: CoordinatorConfig) -> Self {
        Self {
            c: Coordinator::new(config),
            now: START_MS,
            next_token: 1,
            joins: HashMap::new(),
            syncs: HashMap::new(),
            log: Vec::new(),
            events: Vec::new(),
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    /// Carries out the queued effects, as the server's effect task does.
    pub fn pump(&mut self) {
        for effect in self.c.take_effects() {
            match effect {
                Effect::Append(records) => {
                    self.log.extend(records.iter().cloned());
                    self.events.push(Event::Append(records));
                }
                Effect::JoinDone { token, result } => {
                    assert!(
                        self.joins.insert(token, result).is_none(),
                        "join {token:?} answered twice"
                    );
                    self.events.push(Event::Join(token));
                }
                Effect::SyncDone { token, result } => {
                    assert!(
                        self.syncs.insert(token, result).is_none(),
                        "sync {token:?} answered twice"
                    );
                    self.events.push(Event::Sync(token));
                }
            }
        }
    }

    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
        self.c.tick(self.now);
        self.pump();
    }

    /// Moves the clock to the coordinator's next deadline and fires it.
    pub fn advance_to_next_deadline(&mut self) -> Millis {
        let at = self.c.next_deadline().expect("a pending deadline");
        assert!(
            at >= self.now,
            "deadline {at} is in the past ({})",
            self.now
        );
        self.now = at;
        self.c.tick(at);
        self.pump();
        at
    }

    pub fn join(&mut self, req: JoinGroup) -> (Token, Reply<JoinResult>) {
        let token = self.token();
        let reply = self.c.join_group(self.now, token, req);
        self.pump();
        (token, reply)
    }

    /// A join answered now; panics if it was parked.
    pub fn join_now(&mut self, req: JoinGroup) -> JoinResult {
        match self.join(req) {
            (_, Reply::Now(result)) => result,
            (token, Reply::Later) => panic!("join {token:?} was parked"),
        }
    }

    /// A join that parks; returns its token.
    pub fn join_later(&mut self, req: JoinGroup) -> Token {
        match self.join(req) {
            (token, Reply::Later) => token,
            (_, Reply::Now(result)) => panic!("join answered at once: {result:?}"),
        }
    }

    pub fn joined(&self, token: Token) -> Option<&JoinResult> {
        self.joins.get(&token)
    }

    pub fn sync(&mut self, req: SyncGroup) -> (Token, Reply<SyncResult>) {
        let token = self.token();
        let reply = self.c.sync_group(self.now, token, req);
        self.pump();
        (token, reply)
    }

    pub fn sync_now(&mut self, req: SyncGroup) -> SyncResult {
        match self.sync(req) {
            (_, Reply::Now(result)) => result,
            (token, Reply::Later) => panic!("sync {token:?} was parked"),
        }
    }

    pub fn sync_later(&mut self, req: SyncGroup) -> Token {
        match self.sync(req) {
            (token, Reply::Later) => token,
            (_, Reply::Now(result)) => panic!("sync answered at once: {result:?}"),
        }
    }

    pub fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> ErrorCode {
        let error = self.c.heartbeat(
            self.now,
            Heartbeat {
                group_id: GROUP.into(),
                member_id: member_id.into(),
                group_instance_id: None,
                generation_id,
            },
        );
        self.pump();
        error
    }

    pub fn static_heartbeat(
        &mut self,
        member_id: &str,
        instance: &str,
        generation_id: i32,
    ) -> ErrorCode {
        let error = self.c.heartbeat(
            self.now,
            Heartbeat {
                group_id: GROUP.into(),
                member_id: member_id.into(),
                group_instance_id: Some(instance.into()),
                generation_id,
            },
        );
        self.pump();
        error
    }

    pub fn leave(&mut self, members: Vec<LeavingMember>) -> LeaveResult {
        let result = self.c.leave_group(self.now, GROUP, members);
        self.pump();
        result
    }

    /// Commits and, if accepted, writes: what the server's OffsetCommit handler does.
    pub fn commit(
        &mut self,
        req: OffsetCommit,
    ) -> Result<Vec<(PartitionKey, ErrorCode)>, ErrorCode> {
        let prepared = self.c.prepare_commit(self.now, req)?;
        self.log.extend(prepared.records.iter().cloned());
        self.c.commit_written(self.now, &prepared);
        self.pump();
        Ok(prepared.results)
    }

    pub fn state(&self) -> GroupState {
        self.c.describe_group(GROUP).state
    }

    pub fn member_ids(&self) -> Vec<String> {
        self.c
            .describe_group(GROUP)
            .members
            .into_iter()
            .map(|m| m.member_id)
            .collect()
    }

    /// Fires deadlines until every token has its JoinGroup answer.
    pub fn wait_for_joins(&mut self, tokens: &[Token]) {
        for _ in 0..100 {
            if tokens.iter().all(|t| self.joins.contains_key(t)) {
                return;
            }
            self.advance_to_next_deadline();
        }
        panic!("joins {tokens:?} never completed");
    }

    /// Brings `clients` (dynamic, no member-id round trip) into a Stable group: join, wait
    /// out the initial delay, leader syncs with `assignment_of(member_id)`.
    pub fn stable_group(&mut self, clients: &[&str]) -> Vec<Joined> {
        let tokens: Vec<Token> = clients
            .iter()
            .map(|c| self.join_later(join_req("", c)))
            .collect();
        self.wait_for_joins(&tokens);
        let joined: Vec<Joined> = tokens
            .iter()
            .map(|t| Joined::from(self.joined(*t).expect("joined")))
            .collect();
        self.sync_all(&joined);
        assert_eq!(self.state(), GroupState::Stable);
        joined
    }

    /// Everyone syncs, the leader last, with each member assigned `assignment_of(id)`.
    pub fn sync_all(&mut self, joined: &[Joined]) {
        let leader = joined.iter().find(|j| j.is_leader()).expect("a leader");
        for j in joined.iter().filter(|j| !j.is_leader()) {
            self.sync_later(sync_req(&j.member_id, j.generation, vec![]));
        }
        let assignments = joined
            .iter()
            .map(|j| (j.member_id.clone(), assignment_of(&j.member_id)))
            .collect();
        self.sync_later(sync_req(&leader.member_id, leader.generation, assignments));
    }
}

/// A member's view after its JoinGroup.
#[derive(Debug, Clone)]
pub struct Joined {
    pub member_id: String,
    pub generation: i32,
    pub leader: String,
    pub members: Vec<JoinedMember>,
}

impl Joined {
    pub fn is_leader(&self) -> bool {
        self.leader == self.member_id
    }
}

impl From<&JoinResult> for Joined {
    fn from(r: &JoinResult) -> Self {
        assert_eq!(r.error, ErrorCode::None, "join failed: {r:?}");
        Self {
            member_id: r.member_id.clone(),
            generation: r.generation_id,
            leader: r.leader.clone(),
            members: r.members.clone(),
        }
    }
}

pub fn assignment_of(member_id: &str) -> Bytes {
    Bytes::from(format!("assignment-of-{member_id}"))
}

pub fn metadata_of(client: &str) -> Bytes {
    Bytes::from(format!("subscription-of-{client}"))
}

pub fn protocol(name: &str, metadata: Bytes) -> Protocol {
    Protocol {
        name: name.into(),
        metadata,
    }
}

pub fn join_req(member_id: &str, client: &str) -> JoinGroup {
    JoinGroup {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![protocol("range", metadata_of(client))],
        client_id: client.into(),
        client_host: "/10.0.0.1".into(),
        require_known_member_id: false,
        reason: None,
    }
}

pub fn static_join_req(member_id: &str, client: &str, instance: &str) -> JoinGroup {
    JoinGroup {
        group_instance_id: Some(instance.into()),
        ..join_req(member_id, client)
    }
}

pub fn sync_req(
    member_id: &str,
    generation_id: i32,
    assignments: Vec<(String, Bytes)>,
) -> SyncGroup {
    SyncGroup {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    }
}

pub fn commit_req(
    member_id: &str,
    generation_id: i32,
    offsets: &[(&str, i32, i64)],
) -> OffsetCommit {
    OffsetCommit {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id,
        retention_time_ms: -1,
        partitions: offsets
            .iter()
            .map(|(topic, partition, offset)| CommitPartition {
                key: PartitionKey::new(*topic, *partition),
                offset: *offset,
                leader_epoch: 3,
                metadata: Some(format!("meta-{offset}")),
            })
            .collect(),
    }
}

pub fn leaving(member_id: &str, instance: Option<&str>) -> LeavingMember {
    LeavingMember {
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_owned),
        reason: None,
    }
}

/// The group records in the log for `group`, in order (`None` for tombstones).
pub fn group_records<'a>(log: &'a [Record], group: &str) -> Vec<Option<&'a records::GroupValue>> {
    log.iter()
        .filter_map(|r| match r {
            Record::Group { group: g, value } if g == group => Some(value.as_ref()),
            _ => None,
        })
        .collect()
}
