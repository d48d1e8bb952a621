//! FindCoordinator: which broker coordinates a group, at every version and key type.

use crate::support::*;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Kafka 4.0 defines 0 (group), 1 (transaction) and 2 (share); 7 is no type at all.
const KEY_TYPE_UNDEFINED: i8 = 7;

#[test]
fn find_coordinator_names_this_broker_for_groups_at_every_version() {
    let broker = start_broker();
    let mut raw = KafkaConnection::connect(broker.kafka_addr()).unwrap();
    let metadata = metadata_v4(&mut raw, Some(&[]), false).unwrap();
    ensure!(
        &broker,
        metadata.brokers.len() == 1,
        "Metadata brokers {:?}",
        metadata.brokers
    );
    let me = metadata.brokers[0].clone();
    let mut client = Client::coordinator(&broker, "fc-group");

    // v0–v3: one key per request; v0 has no key type (it is always a group).
    for version in 0..=3 {
        let request = FindCoordinatorRequest {
            key: format!("fc-group-{version}"),
            key_type: KEY_TYPE_GROUP,
            ..Default::default()
        };
        let answer = client.call(&request, version);
        expect_code(
            &broker,
            answer.error_code,
            ErrorCode::None,
            &format!("v{version} group key"),
        );
        ensure!(
            &broker,
            (answer.node_id, answer.host.as_str(), answer.port)
                == (me.node_id, me.host.as_str(), me.port),
            "v{version}: coordinator {}@{}:{} is not the broker Metadata describes ({me:?}); a \
             single broker coordinates every group",
            answer.node_id,
            answer.host,
            answer.port
        );
    }

    // v4+: batched keys, each answered in its own entry, in order.
    for version in 4..=6 {
        let keys = vec!["fc-a".to_owned(), "fc-b".to_owned(), "fc-c".to_owned()];
        let request = FindCoordinatorRequest {
            key_type: KEY_TYPE_GROUP,
            coordinator_keys: keys.clone(),
            ..Default::default()
        };
        let answer = client.call(&request, version);
        let answered: Vec<&str> = answer.coordinators.iter().map(|c| c.key.as_str()).collect();
        ensure!(
            &broker,
            answered == keys,
            "v{version}: Kafka answers each coordinator key once, echoing it; got {answered:?}"
        );
        for coordinator in &answer.coordinators {
            expect_code(
                &broker,
                coordinator.error_code,
                ErrorCode::None,
                &format!("v{version} key {}", coordinator.key),
            );
            ensure!(
                &broker,
                (
                    coordinator.node_id,
                    coordinator.host.as_str(),
                    coordinator.port
                ) == (me.node_id, me.host.as_str(), me.port),
                "v{version}: {coordinator:?} is not {me:?}"
            );
        }
    }
}

#[test]
fn find_coordinator_refuses_transaction_and_undefined_key_types() {
    let broker = start_broker();
    let mut client = Client::coordinator(&broker, "fc-group");
    for version in 1..=6 {
        // Spate has no transaction coordinator yet. Kafka answers COORDINATOR_NOT_AVAILABLE while
        // its transaction coordinator cannot serve (e.g. `__transaction_state` not yet created),
        // so clients already handle it; Spate says the same, with node -1.
        // An undefined key type makes Kafka's `CoordinatorType.forId` throw
        // InvalidRequestException: INVALID_REQUEST, per key from v4.
        for (key_type, expected) in [
            (KEY_TYPE_TRANSACTION, ErrorCode::CoordinatorNotAvailable),
            (KEY_TYPE_UNDEFINED, ErrorCode::InvalidRequest),
        ] {
            let what = format!("FindCoordinator v{version} key type {key_type}");
            if version <= 3 {
                let request = FindCoordinatorRequest {
                    key: "txn-or-junk".into(),
                    key_type,
                    ..Default::default()
                };
                let answer = client.call(&request, version);
                expect_code(&broker, answer.error_code, expected, &what);
                ensure!(
                    &broker,
                    answer.node_id == -1,
                    "{what}: an error names node -1, got {}",
                    answer.node_id
                );
            } else {
                let request = FindCoordinatorRequest {
                    key_type,
                    coordinator_keys: vec!["k1".into(), "k2".into()],
                    ..Default::default()
                };
                let answer = client.call(&request, version);
                ensure!(
                    &broker,
                    answer.coordinators.len() == 2,
                    "{what}: {answer:?}"
                );
                for coordinator in &answer.coordinators {
                    expect_code(&broker, coordinator.error_code, expected, &what);
                    ensure!(
                        &broker,
                        coordinator.node_id == -1,
                        "{what}: {coordinator:?}"
                    );
                }
            }
        }
    }
}
