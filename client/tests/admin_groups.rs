//! Group admin calls against the broker's group coordinator, with kcat as a live member.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::broker_with_partitions;
use spate_client::{Admin, ClientConfig, Error, Producer, ProducerConfig, ProducerRecord};
use spate_protocol::ErrorCode;
use spate_tests::clients::kcat_command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_listed_described_reset_and_deleted() {
    let broker = broker_with_partitions(2);
    let producer = Producer::new(ProducerConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    for index in 0..10 {
        let record = ProducerRecord::new("g", format!("{index}")).partition(index % 2);
        producer.send(record).await.unwrap();
    }
    producer.flush().await;
    let admin = Admin::new(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();

    // Offsets written the admin way (generation -1) create a group without members.
    let wanted: BTreeMap<(String, i32), i64> =
        [(("g".to_string(), 0), 1), (("g".to_string(), 1), 2)].into();
    if let Err(error) = admin.alter_committed_offsets("resettable", &wanted).await {
        panic!("{error}\nbroker log:\n{}", broker.log_tail(4000));
    }
    assert_eq!(
        admin
            .list_committed_offsets("resettable", None)
            .await
            .unwrap(),
        wanted
    );
    let only_zero = admin
        .list_committed_offsets("resettable", Some(&[("g".to_string(), 0)]))
        .await
        .unwrap();
    assert_eq!(only_zero.len(), 1);
    let lag = admin.group_lag("resettable").await.unwrap();
    assert_eq!(lag[&("g".to_string(), 0)].lag, 4);
    assert_eq!(lag[&("g".to_string(), 1)].lag, 3);
    assert_eq!(lag[&("g".to_string(), 1)].log_end, 5);
    let listed = admin.list_groups().await.unwrap();
    assert!(
        listed.iter().any(|g| g.group_id == "resettable"),
        "{listed:?}"
    );

    // A live member: kcat's balanced consumer.
    let mut kcat = kcat_command(&broker.bootstrap()).unwrap();
    kcat.args(["-G", "live", "-q", "g"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut member = kcat.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let described = loop {
        let described = admin.describe_group("live").await;
        if let Ok(d) = &described
            && d.state == "Stable"
            && d.members.len() == 1
            && !d.members[0].assignment.is_empty()
        {
            break described.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "kcat never became a stable member: {described:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(described.protocol_type, "consumer");
    assert_eq!(
        described.members[0].assignment,
        vec![("g".to_string(), 0), ("g".to_string(), 1)]
    );
    let busy = admin.delete_group("live").await.unwrap_err();
    assert!(
        matches!(
            busy,
            Error::Broker {
                code: ErrorCode::NonEmptyGroup,
                ..
            }
        ),
        "{busy}"
    );
    assert!(busy.to_string().contains("stop the group's consumers"));
    member.kill().unwrap();
    member.wait().unwrap();

    admin.delete_group("resettable").await.unwrap();
    assert!(
        admin
            .list_committed_offsets("resettable", None)
            .await
            .unwrap()
            .is_empty()
    );
    let gone = admin.delete_group("resettable").await.unwrap_err();
    assert!(
        matches!(
            gone,
            Error::Broker {
                code: ErrorCode::GroupIdNotFound,
                ..
            }
        ),
        "{gone}"
    );
}
