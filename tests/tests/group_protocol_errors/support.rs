//! Shared helpers: a broker whose groups form at once, a client whose failures print the
//! broker log, and forming a Stable group of several members deterministically.

pub use std::time::{Duration, Instant};

pub use spate_protocol::ErrorCode;
pub use spate_protocol::messages::leave_group_request::MemberIdentity;
pub use spate_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
pub use spate_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
pub use spate_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest, OffsetDeleteRequest,
    OffsetFetchRequest, SyncGroupRequest,
};
pub use spate_protocol::wire::Decode;
pub use spate_tests::group_requests::{
    CONSUMER_PROTOCOL_TYPE, CommitEntry, FetchedOffset, GroupConnection, GroupRequest, Pending,
    RANGE_ASSIGNOR, commit_errors, consumer_assignment, consumer_join, consumer_subscription,
    consumer_sync, describe_group, fetched_v0_to_v7, fetched_v8, find_group_coordinator, heartbeat,
    offset_commit, offset_fetch_v8,
};
pub use spate_tests::kafka_requests::{create_topic_v4, metadata_v4};
pub use spate_tests::wire::{CLIENT_ID, KafkaConnection};
pub use spate_tests::{Broker, BrokerOptions};

/// Enough of the broker's log to see what it did with the last few requests.
pub const LOG_TAIL_BYTES: usize = 8_000;

/// How long a state the test waits for (a rebalance starting, a group emptying) may take.
pub const STATE_WAIT_MS: u64 = 15_000;

/// Between polls of a state that changes asynchronously; not a synchronisation by itself.
pub const POLL_INTERVAL_MS: u64 = 20;

/// A broker whose groups form at once: no initial rebalance delay.
pub fn start_broker() -> Broker {
    Broker::start_with(BrokerOptions {
        extra_args: vec!["--group-initial-rebalance-delay-ms".into(), "0".into()],
        ..Default::default()
    })
    .unwrap()
}

#[track_caller]
pub fn fail(broker: &Broker, message: &str) -> ! {
    panic!(
        "{message}\n--- broker stderr (tail) ---\n{}",
        broker.log_tail(LOG_TAIL_BYTES)
    )
}

pub fn code_name(code: i16) -> String {
    ErrorCode::from_i16(code).map_or_else(|| format!("undefined code {code}"), |c| c.to_string())
}

#[track_caller]
pub fn expect_code(broker: &Broker, actual: i16, expected: ErrorCode, what: &str) {
    if actual != expected.code() {
        fail(
            broker,
            &format!(
                "{what}: got {}, Kafka answers {expected}",
                code_name(actual)
            ),
        );
    }
}

macro_rules! ensure {
    ($broker:expr, $condition:expr, $($message:tt)+) => {
        if !$condition {
            fail($broker, &format!($($message)+));
        }
    };
}

/// A group-API connection whose failures print the broker's log.
pub struct Client<'b> {
    pub connection: GroupConnection,
    pub broker: &'b Broker,
}

impl<'b> Client<'b> {
    pub fn connect(broker: &'b Broker) -> Self {
        let connection = GroupConnection::connect(broker.kafka_addr())
            .unwrap_or_else(|e| fail(broker, &format!("connect: {e}")));
        Client { connection, broker }
    }

    /// Connects and asks FindCoordinator first, as every client does; the first group request
    /// may have to wait for `__consumer_offsets` to be created, which Kafka reports with
    /// retriable coordinator errors.
    pub fn coordinator(broker: &'b Broker, group: &str) -> Self {
        let mut client = Client::connect(broker);
        let deadline = Instant::now() + Duration::from_millis(STATE_WAIT_MS);
        loop {
            let answer = find_group_coordinator(&mut client.connection, group)
                .unwrap_or_else(|e| fail(broker, &format!("FindCoordinator: {e}")));
            if answer.error_code == ErrorCode::None.code() {
                return client;
            }
            let retriable =
                ErrorCode::from_i16(answer.error_code).is_some_and(|c| c.is_retriable());
            if !retriable || Instant::now() > deadline {
                expect_code(
                    broker,
                    answer.error_code,
                    ErrorCode::None,
                    "FindCoordinator",
                );
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    pub fn call<R: GroupRequest>(&mut self, request: &R, version: i16) -> R::Response {
        self.connection
            .call(request, version)
            .unwrap_or_else(|e| fail(self.broker, &format!("{} v{version}: {e}", R::API.name())))
    }

    pub fn send<R: GroupRequest>(&mut self, request: &R, version: i16) -> Pending {
        self.connection
            .send(request, version)
            .unwrap_or_else(|e| fail(self.broker, &format!("send {}: {e}", R::API.name())))
    }

    pub fn receive<T: Decode>(&mut self, pending: Pending) -> T {
        self.connection
            .receive(pending)
            .unwrap_or_else(|e| fail(self.broker, &format!("receive: {e}")))
    }
}

/// Polls DescribeGroups until `group` is in `state`.
pub fn wait_for_state(broker: &Broker, group: &str, state: &str) {
    let mut client = Client::connect(broker);
    let deadline = Instant::now() + Duration::from_millis(STATE_WAIT_MS);
    loop {
        let described = describe_group(&mut client.connection, group)
            .unwrap_or_else(|e| fail(broker, &format!("DescribeGroups: {e}")));
        if described.group_state == state {
            return;
        }
        if Instant::now() > deadline {
            fail(
                broker,
                &format!(
                    "group {group} never reached {state}; last {:?}",
                    described.group_state
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

pub fn create_topic(broker: &Broker, name: &str, partitions: i32) {
    let mut connection = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let code = create_topic_v4(&mut connection, name, partitions, &[]).unwrap();
    expect_code(
        broker,
        code,
        ErrorCode::None,
        &format!("CreateTopics {name}"),
    );
}

/// A member of a formed group, on its own connection.
pub struct Member<'b> {
    pub client: Client<'b>,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub topics: Vec<String>,
    pub generation: i32,
    pub assignment: Vec<u8>,
}

impl Member<'_> {
    pub fn join_request(&self, group: &str) -> JoinGroupRequest {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer_join(group, &self.member_id, self.instance_id.as_deref(), &topics)
    }
}

/// Who joins: a static member's instance id (dynamic if `None`) and its subscription.
pub struct Joiner<'a> {
    pub instance: Option<&'a str>,
    pub topics: &'a [&'a str],
}

pub const DYNAMIC_ON_T: Joiner<'static> = Joiner {
    instance: None,
    topics: &["t"],
};

/// Forms `group` one member at a time, as Kafka clients do: each newcomer's join starts a
/// rebalance (the group is seen in PreparingRebalance before anyone rejoins, so the order
/// cannot race), every earlier member rejoins, all get the same new generation, then the leader
/// syncs an assignment for everyone and the followers sync. Returns the members, Stable.
pub fn form_group<'b>(broker: &'b Broker, group: &str, joiners: &[Joiner<'_>]) -> Vec<Member<'b>> {
    let mut members: Vec<Member<'b>> = Vec::new();
    for joiner in joiners {
        let mut client = Client::coordinator(broker, group);
        let join_id = match joiner.instance {
            None => {
                let first = client.call(&consumer_join(group, "", None, joiner.topics), 5);
                expect_code(
                    broker,
                    first.error_code,
                    ErrorCode::MemberIdRequired,
                    "JoinGroup v5 of a dynamic member without an id",
                );
                first.member_id
            }
            Some(_) => String::new(),
        };
        let own = client.send(
            &consumer_join(group, &join_id, joiner.instance, joiner.topics),
            5,
        );
        if !members.is_empty() {
            wait_for_state(broker, group, "PreparingRebalance");
        }
        let rejoins: Vec<Pending> = members
            .iter_mut()
            .map(|m| {
                let request = m.join_request(group);
                m.client.send(&request, 5)
            })
            .collect();
        let own: JoinGroupResponse = client.receive(own);
        expect_code(
            broker,
            own.error_code,
            ErrorCode::None,
            "JoinGroup of a newcomer",
        );
        for (member, pending) in members.iter_mut().zip(rejoins) {
            let answer: JoinGroupResponse = member.client.receive(pending);
            expect_code(broker, answer.error_code, ErrorCode::None, "rejoin");
            ensure!(
                broker,
                answer.generation_id == own.generation_id,
                "rejoin got generation {}, newcomer {}",
                answer.generation_id,
                own.generation_id
            );
            ensure!(
                broker,
                answer.leader == own.leader,
                "rejoin names leader {:?}, newcomer's answer {:?}",
                answer.leader,
                own.leader
            );
            member.generation = answer.generation_id;
        }
        let leader = own.leader.clone();
        members.push(Member {
            client,
            member_id: own.member_id,
            instance_id: joiner.instance.map(str::to_owned),
            topics: joiner.topics.iter().map(|t| (*t).to_owned()).collect(),
            generation: own.generation_id,
            assignment: Vec::new(),
        });
        sync_all(broker, group, &mut members, &leader);
    }
    members
}

/// The leader syncs everyone's assignment first, then the followers sync; each must get
/// exactly what the leader assigned it (Kafka holds a follower's SyncGroup until the leader's).
pub fn sync_all(broker: &Broker, group: &str, members: &mut [Member<'_>], leader_id: &str) {
    let assignments: Vec<Vec<u8>> = (0..members.len())
        .map(|index| consumer_assignment(&[("t", &[i32::try_from(index).unwrap()])]))
        .collect();
    let for_leader: Vec<(&str, Vec<u8>)> = members
        .iter()
        .zip(&assignments)
        .map(|(m, bytes)| (m.member_id.as_str(), bytes.clone()))
        .collect();
    ensure!(
        broker,
        members.iter().any(|m| m.member_id == leader_id),
        "JoinGroup named leader {leader_id:?}, not a member"
    );
    let leader_first: Vec<usize> = (0..members.len())
        .filter(|&i| members[i].member_id == leader_id)
        .chain((0..members.len()).filter(|&i| members[i].member_id != leader_id))
        .collect();
    let mut requests = Vec::new();
    for &index in &leader_first {
        let member = &members[index];
        let given: &[(&str, Vec<u8>)] = if member.member_id == leader_id {
            &for_leader
        } else {
            &[]
        };
        requests.push(consumer_sync(
            group,
            member.generation,
            &member.member_id,
            member.instance_id.as_deref(),
            given,
        ));
    }
    for (&index, request) in leader_first.iter().zip(&requests) {
        let member = &mut members[index];
        let answer = member.client.call(request, 5);
        expect_code(broker, answer.error_code, ErrorCode::None, "SyncGroup");
        ensure!(
            broker,
            answer.assignment[..] == assignments[index][..],
            "SyncGroup gave member {index} {:?}, the leader assigned it {:?}",
            &answer.assignment[..],
            assignments[index]
        );
        member.assignment = assignments[index].clone();
    }
    wait_for_state(broker, group, "Stable");
}

/// Fetches `partitions` of `group` with OffsetFetch v8 and returns them in request order.
pub fn fetch(
    client: &mut Client<'_>,
    group: &str,
    topics: &[(&str, &[i32])],
) -> Vec<FetchedOffset> {
    let answer = client.call(&offset_fetch_v8(group, Some(topics)), 8);
    ensure!(
        client.broker,
        answer.groups.len() == 1,
        "OffsetFetch v8 answers the one group: {answer:?}"
    );
    expect_code(
        client.broker,
        answer.groups[0].error_code,
        ErrorCode::None,
        "OffsetFetch v8 group error",
    );
    fetched_v8(&answer.groups[0])
}

pub fn offset_of(fetched: &[FetchedOffset], topic: &str, partition: i32) -> (i64, Option<String>) {
    fetched
        .iter()
        .find(|f| f.topic == topic && f.partition == partition)
        .map(|f| (f.offset, f.metadata.clone()))
        .unwrap_or_else(|| panic!("{topic}-{partition} missing from {fetched:?}"))
}
