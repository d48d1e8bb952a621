//! Several batches of one partition in flight at once (`max.in.flight.requests.per.connection`
//! = 5), and the retry rules that keep them in order and unduplicated.
//!
//! The fake broker here keeps a tiny idempotent log, as a Kafka leader does: it appends a
//! batch only when its base sequence is the producer's next one, answers a repeat as a
//! duplicate, and refuses a gap with OUT_OF_ORDER_SEQUENCE_NUMBER. It reads a connection's
//! requests one at a time, so batches the producer pipelined arrive behind a refused one
//! and are refused for the gap, exactly what a real leader does to them.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::fake_broker::{FakeBroker, single_partition_metadata};
use spate_client::{Error, Producer, ProducerConfig, ProducerRecord};
use spate_protocol::messages::ProduceResponse;
use spate_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use spate_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use spate_protocol::records::read_all_records;
use spate_protocol::records::validate::check_batch;
use spate_protocol::{ErrorCode, RequestBody, ResponseBody};

const TOPIC: &str = "inflight";

/// What the fake does to the Produce request with this arrival number (0-based).
#[derive(Clone, Copy)]
enum Fault {
    None,
    Refuse(ErrorCode),
}

/// One Produce as the fake saw it.
#[derive(Debug, Clone)]
struct Arrival {
    producer_id: i64,
    base_sequence: i32,
    answer: ErrorCode,
}

#[derive(Default)]
struct Log {
    /// Values appended, in log order.
    values: Vec<String>,
    next_sequence: HashMap<i64, i32>,
    arrivals: Vec<Arrival>,
    producer_ids_issued: i64,
}

fn fake_handler(
    log: Arc<Mutex<Log>>,
    port: Arc<Mutex<i32>>,
    faults: HashMap<usize, Fault>,
) -> common::fake_broker::Handler {
    Arc::new(move |_, request| {
        Some(match request {
            RequestBody::Metadata(_) => single_partition_metadata(TOPIC, *port.lock().unwrap()),
            RequestBody::InitProducerId(_) => {
                let mut log = log.lock().unwrap();
                log.producer_ids_issued += 1;
                ResponseBody::InitProducerId(InitProducerIdResponse {
                    producer_id: 1_000 + log.producer_ids_issued,
                    producer_epoch: 0,
                    ..Default::default()
                })
            }
            RequestBody::Produce(request) => {
                let mut log = log.lock().unwrap();
                let records = request.topic_data[0].partition_data[0]
                    .records
                    .clone()
                    .unwrap();
                let (code, base_offset) = append(&mut log, &faults, records);
                ResponseBody::Produce(ProduceResponse {
                    responses: vec![TopicProduceResponse {
                        name: TOPIC.into(),
                        partition_responses: vec![PartitionProduceResponse {
                            index: 0,
                            error_code: code.code(),
                            base_offset,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            }
            other => panic!("unexpected request {other:?}"),
        })
    })
}

/// The leader's sequence check, with the scripted faults first.
fn append(log: &mut Log, faults: &HashMap<usize, Fault>, records: Bytes) -> (ErrorCode, i64) {
    let summary = check_batch(&records).unwrap();
    assert_eq!(
        summary.size_bytes,
        records.len(),
        "one batch per partition per request"
    );
    let values: Vec<String> = read_all_records(&records, 1 << 20)
        .unwrap()
        .into_iter()
        .map(|record| String::from_utf8(record.value.unwrap().to_vec()).unwrap())
        .collect();
    let producer_id = summary.producer_id;
    let base_sequence = summary.base_sequence;
    let arrival = log.arrivals.len();
    let expected = log.next_sequence.get(&producer_id).copied().unwrap_or(0);
    let (code, base_offset) = match faults.get(&arrival).copied().unwrap_or(Fault::None) {
        Fault::Refuse(code) => (code, -1),
        Fault::None if base_sequence == expected => {
            let base_offset = log.values.len() as i64;
            log.next_sequence
                .insert(producer_id, expected + values.len() as i32);
            log.values.extend(values);
            (ErrorCode::None, base_offset)
        }
        Fault::None if base_sequence < expected => (ErrorCode::DuplicateSequenceNumber, -1),
        Fault::None => (ErrorCode::OutOfOrderSequenceNumber, -1),
    };
    log.arrivals.push(Arrival {
        producer_id,
        base_sequence,
        answer: code,
    });
    (code, base_offset)
}

struct Run {
    log: Arc<Mutex<Log>>,
    results: Vec<Result<i64, Error>>,
}

/// Sends `count` values in one go (20 records per batch, so several batches are ready at
/// once) and waits for every delivery.
async fn run(faults: HashMap<usize, Fault>, count: usize) -> Run {
    let log = Arc::new(Mutex::new(Log::default()));
    let port = Arc::new(Mutex::new(0));
    let fake = FakeBroker::start(fake_handler(log.clone(), port.clone(), faults)).await;
    *port.lock().unwrap() = fake.port;

    let mut config = ProducerConfig::new(fake.bootstrap());
    config.linger = Duration::from_millis(50);
    // 20 records of ~27 bytes each per batch.
    config.batch_size_bytes = 20 * 27;
    config.client.retry_backoff = Duration::from_millis(20);
    let producer = Producer::new(config).await.unwrap();
    let mut futures = Vec::new();
    for index in 0..count {
        let record = ProducerRecord::new(TOPIC, format!("{index:06}")).partition(0);
        futures.push(producer.send(record).await.unwrap());
    }
    let mut results = Vec::new();
    for future in futures {
        results.push(future.await.map(|metadata| metadata.offset));
    }
    producer.close().await;
    Run { log, results }
}

fn expected_values(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|index| format!("{index:06}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_retried_ahead_of_the_batches_pipelined_behind_it() {
    let faults = HashMap::from([(0, Fault::Refuse(ErrorCode::NotLeaderOrFollower))]);
    let Run { log, results } = run(faults, 100).await;
    let log = log.lock().unwrap();

    assert_eq!(
        log.values,
        expected_values(0..100),
        "every record appended once, in send order"
    );
    let offsets: Vec<i64> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(offsets, (0..100).collect::<Vec<i64>>());

    // Pipelining: batches behind the refused one reached the broker before its retry, and
    // were refused for the gap rather than appended ahead of it.
    let retry_at = log
        .arrivals
        .iter()
        .skip(1)
        .position(|arrival| arrival.base_sequence == 0)
        .unwrap()
        + 1;
    assert!(
        retry_at > 1,
        "the second batch was in flight before the first was retried: {:?}",
        log.arrivals
    );
    for arrival in &log.arrivals[1..retry_at] {
        assert_eq!(arrival.answer, ErrorCode::OutOfOrderSequenceNumber);
        assert!(arrival.base_sequence > 0);
    }
    assert_eq!(log.producer_ids_issued, 1, "a retry keeps the producer id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_for_good_takes_only_its_own_records_with_it() {
    // The second batch (records 20..40) is refused with a non-retriable error. The batches
    // pipelined behind it are refused for the gap; the producer numbers them afresh under
    // a new producer id instead of failing them too.
    let faults = HashMap::from([(1, Fault::Refuse(ErrorCode::InvalidRecord))]);
    let Run { log, results } = run(faults, 100).await;
    let log = log.lock().unwrap();

    for (index, result) in results.iter().enumerate() {
        if (20..40).contains(&index) {
            assert!(
                matches!(
                    result,
                    Err(Error::Partition {
                        code: ErrorCode::InvalidRecord,
                        ..
                    })
                ),
                "record {index}: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "record {index}: {result:?}");
        }
    }
    let mut expected = expected_values(0..20);
    expected.extend(expected_values(40..100));
    assert_eq!(log.values, expected, "no loss, no duplicate, no reordering");
    assert_eq!(log.producer_ids_issued, 2, "numbering restarted once");
    let last = log.arrivals.last().unwrap();
    assert_eq!(last.producer_id, 1_002);
}
