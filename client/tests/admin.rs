//! The admin client against the real broker: the topic lifecycle, configs and offsets.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use spate_client::admin::{AlterConfigOp, ConfigResource};
use spate_client::{
    Admin, ClientConfig, Error, NewTopic, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
};
use spate_protocol::ErrorCode;
use spate_tests::Broker;

fn config_value(entries: &[spate_client::admin::ConfigEntry], name: &str) -> Option<String> {
    entries
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_lifecycle_configs_and_offsets() {
    let broker = Broker::start().unwrap();
    let admin = Admin::new(ClientConfig::new(broker.bootstrap()))
        .await
        .unwrap();

    admin
        .create_topic(NewTopic::new("orders", 3).config("retention.ms", "3600000"))
        .await
        .unwrap();
    let again = admin
        .create_topic(NewTopic::new("orders", 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            Error::Broker {
                code: ErrorCode::TopicAlreadyExists,
                ..
            }
        ),
        "{again}"
    );
    assert!(again.to_string().contains("orders"));

    assert!(
        admin
            .list_topics(false)
            .await
            .unwrap()
            .contains(&"orders".to_string())
    );
    let described = admin.describe_topics(&["orders"]).await.unwrap();
    assert_eq!(described[0].partitions.len(), 3);
    let missing = admin.describe_topics(&["nope"]).await.unwrap_err();
    assert!(matches!(
        missing,
        Error::Topic {
            code: ErrorCode::UnknownTopicOrPartition,
            ..
        }
    ));

    admin.create_partitions("orders", 5).await.unwrap();
    let info = admin
        .wait_for_topic("orders", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        admin.describe_topics(&["orders"]).await.unwrap()[0]
            .partitions
            .len(),
        5,
        "{info:?}"
    );
    assert!(
        admin.create_partitions("orders", 2).await.is_err(),
        "partitions never shrink"
    );

    let topic = ConfigResource::Topic("orders".into());
    let configs = admin.describe_configs(&topic).await.unwrap();
    assert_eq!(
        config_value(&configs, "retention.ms").as_deref(),
        Some("3600000")
    );
    admin
        .incremental_alter_configs(
            &topic,
            &[AlterConfigOp::Set("retention.ms".into(), "7200000".into())],
        )
        .await
        .unwrap();
    let configs = admin.describe_configs(&topic).await.unwrap();
    assert_eq!(
        config_value(&configs, "retention.ms").as_deref(),
        Some("7200000")
    );
    admin
        .incremental_alter_configs(&topic, &[AlterConfigOp::Delete("retention.ms".into())])
        .await
        .unwrap();
    let configs = admin.describe_configs(&topic).await.unwrap();
    let entry = configs.iter().find(|e| e.name == "retention.ms").unwrap();
    assert!(!entry.is_explicit(), "back to the default: {entry:?}");

    let producer = Producer::new(ProducerConfig::new(broker.bootstrap()))
        .await
        .unwrap();
    for index in 0..4i64 {
        let record = ProducerRecord::new("orders", "v")
            .partition(0)
            .timestamp_ms(5_000 + index * 1_000);
        producer.send(record).await.unwrap().await.unwrap();
    }
    let tp = ("orders".to_string(), 0);
    let offsets = admin
        .list_offsets(&[(tp.clone(), OffsetSpec::Latest)])
        .await
        .unwrap();
    assert_eq!(offsets[&tp].as_ref().unwrap().offset, 4);
    let offsets = admin
        .list_offsets(&[(tp.clone(), OffsetSpec::Earliest)])
        .await
        .unwrap();
    assert_eq!(offsets[&tp].as_ref().unwrap().offset, 0);
    let offsets = admin
        .list_offsets(&[(tp.clone(), OffsetSpec::Timestamp(6_500))])
        .await
        .unwrap();
    assert_eq!(offsets[&tp].as_ref().unwrap().offset, 2);

    admin.delete_topic("orders").await.unwrap();
    assert!(
        !admin
            .list_topics(false)
            .await
            .unwrap()
            .contains(&"orders".to_string())
    );
    let gone = admin.delete_topic("orders").await.unwrap_err();
    assert!(
        matches!(
            gone,
            Error::Topic {
                code: ErrorCode::UnknownTopicOrPartition,
                ..
            }
        ),
        "{gone}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_bootstrap_says_which_brokers_and_what_to_do() {
    let mut config = ClientConfig::new("127.0.0.1:1");
    config.reconnect_backoff_max = Duration::from_millis(100);
    let error = match Admin::new(config).await {
        Err(error) => error,
        Ok(_) => panic!("nothing listens on port 1"),
    };
    let text = error.to_string();
    assert!(
        text.contains("127.0.0.1:1") && text.contains("check that the broker is running"),
        "{text}"
    );
}
