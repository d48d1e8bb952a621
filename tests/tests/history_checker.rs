//! The history checker (`spate_tests::history`) on hand-made histories: a clean one passes, and
//! each planted anomaly is flagged under its own name and nothing else is, including the edge
//! cases a real workload produces (acks without offsets, timeouts, plain-producer retries,
//! seeks). Then `spate-check` on files, for its exit codes. No broker: these are pure and fast.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a history that fails to build or check fails the test by panicking"
)]

use std::path::Path;
use std::process::Command;

use spate_tests::history::event::{
    CommitEvent, CommittedEvent, FinalReadEvent, Outcome, Producer, ReadEvent, SeekEvent, SendEvent,
};
use spate_tests::history::{
    AnomalyKind, Event, HistoryError, Report, check_events, check_reader, write_event,
};

const TOPIC: &str = "t";
const GROUP: &str = "g";

/// An idempotent send to partition 0.
fn send(
    process: &str,
    value: &str,
    result: Outcome,
    offset: Option<i64>,
    invoked_ms: f64,
    time_ms: f64,
) -> Event {
    Event::Send(SendEvent {
        time_ms,
        invoked_ms: Some(invoked_ms),
        process: process.to_owned(),
        producer: Producer::Idempotent,
        topic: TOPIC.to_owned(),
        partition: 0,
        value: value.to_owned(),
        result,
        offset,
    })
}

fn plain(event: Event) -> Event {
    match event {
        Event::Send(send) => Event::Send(SendEvent {
            producer: Producer::Plain,
            ..send
        }),
        other => other,
    }
}

fn read(process: &str, offset: i64, value: &str, time_ms: f64) -> Event {
    Event::Read(ReadEvent {
        time_ms,
        process: process.to_owned(),
        topic: TOPIC.to_owned(),
        partition: 0,
        offset,
        value: value.to_owned(),
    })
}

fn seek(process: &str, offset: Option<i64>, time_ms: f64) -> Event {
    Event::Seek(SeekEvent {
        time_ms,
        process: process.to_owned(),
        topic: TOPIC.to_owned(),
        partition: 0,
        offset,
    })
}

fn commit(process: &str, offset: i64, result: Outcome, invoked_ms: f64, time_ms: f64) -> Event {
    Event::Commit(CommitEvent {
        time_ms,
        invoked_ms: Some(invoked_ms),
        process: process.to_owned(),
        group: GROUP.to_owned(),
        topic: TOPIC.to_owned(),
        partition: 0,
        offset,
        result,
    })
}

fn committed(process: &str, offset: Option<i64>, invoked_ms: f64, time_ms: f64) -> Event {
    Event::Committed(CommittedEvent {
        time_ms,
        invoked_ms: Some(invoked_ms),
        process: process.to_owned(),
        group: GROUP.to_owned(),
        topic: TOPIC.to_owned(),
        partition: 0,
        offset,
    })
}

fn final_read(log_end: i64) -> Event {
    Event::FinalRead(FinalReadEvent {
        time_ms: None,
        topic: TOPIC.to_owned(),
        partition: 0,
        log_start: 0,
        log_end,
    })
}

fn check(events: Vec<Event>) -> Report {
    check_events(events).unwrap()
}

/// Asserts the report found exactly `kind`, `count` times, and returns its first example's
/// note for further checks.
fn assert_only(report: &Report, kind: AnomalyKind, count: u64) -> String {
    assert_eq!(report.kinds(), vec![kind], "{report}");
    assert_eq!(report.count(kind), count, "{report}");
    assert!(!report.valid);
    let summary = &report.anomalies[&kind];
    assert!(!summary.examples[0].witnesses.is_empty(), "{report}");
    summary.examples[0].note.clone()
}

/// Every event type, every outcome, one consumer session per consumer, commits that move
/// forward and a final read: what a healthy run looks like.
fn clean_history() -> Vec<Event> {
    vec![
        seek("c1", Some(0), 0.0),
        send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
        send("p1", "p1-1", Outcome::Ok, Some(1), 2.0, 3.0),
        plain(send("p2", "p2-0", Outcome::Ok, None, 2.5, 4.0)),
        send("p1", "p1-2", Outcome::Fail, None, 5.0, 6.0),
        send("p1", "p1-3", Outcome::Info, None, 7.0, 9.0),
        read("c1", 0, "p1-0", 10.0),
        read("c1", 1, "p1-1", 10.0),
        read("c1", 2, "p2-0", 10.5),
        commit("c1", 3, Outcome::Ok, 11.0, 12.0),
        committed("c2", Some(3), 13.0, 14.0),
        final_read(3),
    ]
}

#[test]
fn clean_history_is_valid_and_counted() {
    let report = check(clean_history());
    assert!(report.valid, "{report}");
    assert!(report.kinds().is_empty());
    let counts = &report.counts;
    assert_eq!(counts.events, 12);
    assert_eq!(
        (counts.sends_ok, counts.sends_fail, counts.sends_info),
        (3, 1, 1)
    );
    assert_eq!((counts.records_read, counts.values_read), (3, 3));
    assert_eq!((counts.info_sends_read, counts.plain_duplicates), (0, 0));
    assert_eq!((counts.commits, counts.committed_observations), (1, 1));
    assert_eq!((counts.seeks, counts.final_reads), (1, 1));
    assert!(report.to_string().contains("valid: no anomalies"));
}

#[test]
fn lost_write_is_an_acked_record_skipped_by_a_higher_read() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
        send("p1", "p1-1", Outcome::Ok, Some(1), 2.0, 3.0),
        read("c1", 1, "p1-1", 4.0),
    ]);
    let note = assert_only(&report, AnomalyKind::LostWrite, 1);
    assert!(note.contains("reads reached offset 1"), "{note}");
    let example = &report.anomalies[&AnomalyKind::LostWrite].examples[0];
    assert_eq!(example.value.as_deref(), Some("p1-0"));
    assert_eq!(example.offset, Some(0));
    assert_eq!(example.witnesses[0].line, 1);
    assert_eq!(example.witnesses[1].line, 3);
}

#[test]
fn lost_write_is_an_acked_record_missing_from_the_final_read() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
        send("p1", "p1-1", Outcome::Ok, Some(1), 2.0, 3.0),
        read("c1", 0, "p1-0", 4.0),
        final_read(2),
    ]);
    let note = assert_only(&report, AnomalyKind::LostWrite, 1);
    assert!(note.contains("final read"), "{note}");
}

#[test]
fn lost_write_without_an_ack_offset_is_found_through_a_later_send_that_was_read() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, None, 0.0, 1.0),
        send("p2", "p2-0", Outcome::Ok, None, 2.0, 3.0),
        read("c1", 0, "p2-0", 4.0),
    ]);
    let note = assert_only(&report, AnomalyKind::LostWrite, 1);
    assert!(note.contains("p2-0 was sent after this ack"), "{note}");
}

#[test]
fn unread_acked_record_above_every_read_is_not_called_lost() {
    // Nothing shows the readers got that far: the consumer may just have been slow.
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
        send("p1", "p1-1", Outcome::Ok, Some(1), 2.0, 3.0),
        send("p2", "p2-0", Outcome::Ok, None, 2.0, 3.5),
        read("c1", 0, "p1-0", 4.0),
    ]);
    assert!(report.valid, "{report}");
}

#[test]
fn unread_info_send_is_not_lost_and_a_read_info_send_counts_as_acknowledged() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Info, None, 0.0, 1.0),
        send("p1", "p1-1", Outcome::Info, None, 2.0, 3.0),
        send("p1", "p1-2", Outcome::Ok, Some(1), 4.0, 5.0),
        read("c1", 0, "p1-1", 6.0),
        read("c1", 1, "p1-2", 6.0),
        final_read(2),
    ]);
    assert!(report.valid, "{report}");
    assert_eq!(report.counts.sends_info, 2);
    assert_eq!(report.counts.info_sends_read, 1);
}

#[test]
fn divergence_is_two_values_read_at_one_offset() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, None, 0.0, 1.0),
        send("p2", "p2-0", Outcome::Ok, None, 0.0, 1.0),
        read("c1", 0, "p1-0", 2.0),
        read("c2", 0, "p2-0", 3.0),
        read("c3", 0, "p1-0", 4.0),
    ]);
    let note = assert_only(&report, AnomalyKind::Divergence, 1);
    assert!(note.contains("p1-0 and p2-0"), "{note}");
}

#[test]
fn divergence_is_an_ack_offset_read_back_holding_another_value() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
        send("p2", "p2-0", Outcome::Info, None, 0.0, 5.0),
        read("c1", 0, "p2-0", 2.0),
    ]);
    let example = &report.anomalies[&AnomalyKind::Divergence].examples[0];
    assert_only(&report, AnomalyKind::Divergence, 1);
    assert_eq!(example.offset, Some(0));
    assert_eq!(
        example.witnesses[0].line, 1,
        "the ack came first in the file"
    );
    assert_eq!(example.witnesses[1].line, 3);
}

#[test]
fn duplicate_is_an_idempotent_value_at_two_offsets() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
        read("c1", 0, "p1-0", 2.0),
        read("c1", 1, "p1-0", 2.0),
        read("c2", 1, "p1-0", 3.0),
    ]);
    let note = assert_only(&report, AnomalyKind::Duplicate, 1);
    assert!(
        note.contains("at offset 0") && note.contains("at offset 1"),
        "{note}"
    );
}

#[test]
fn plain_producer_duplicates_are_counted_but_allowed() {
    let report = check(vec![
        plain(send("p1", "p1-0", Outcome::Ok, Some(1), 0.0, 1.0)),
        plain(send("p1", "p1-1", Outcome::Ok, Some(2), 2.0, 3.0)),
        read("c1", 0, "p1-0", 4.0),
        read("c1", 1, "p1-0", 4.0),
        read("c1", 2, "p1-1", 4.0),
        final_read(3),
    ]);
    assert!(report.valid, "{report}");
    assert_eq!(report.counts.plain_duplicates, 1);
}

#[test]
fn order_violation_is_a_later_send_landing_below_an_acked_one() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, Some(5), 0.0, 1.0),
        send("p1", "p1-1", Outcome::Ok, Some(4), 2.0, 3.0),
        read("c1", 4, "p1-1", 4.0),
        read("c1", 5, "p1-0", 4.0),
    ]);
    let note = assert_only(&report, AnomalyKind::OrderViolation, 1);
    assert!(note.contains("p1 sent p1-1 after p1-0"), "{note}");
}

#[test]
fn order_violation_uses_read_offsets_when_acks_have_none() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, None, 0.0, 1.0),
        send("p1", "p1-1", Outcome::Ok, None, 2.0, 3.0),
        read("c1", 0, "p1-1", 4.0),
        read("c1", 1, "p1-0", 4.0),
    ]);
    assert_only(&report, AnomalyKind::OrderViolation, 1);
}

#[test]
fn pipelined_or_other_processes_sends_may_land_in_any_order() {
    let report = check(vec![
        // p1-1 started before p1-0 was acknowledged: both in flight, either order is fine.
        send("p1", "p1-0", Outcome::Ok, Some(1), 0.0, 3.0),
        send("p1", "p1-1", Outcome::Ok, Some(0), 1.0, 2.0),
        // p2 is another producer: real-time order across producers is not promised.
        send("p2", "p2-0", Outcome::Ok, Some(2), 4.0, 5.0),
        send("p3", "p3-0", Outcome::Ok, Some(3), 6.0, 7.0),
        read("c1", 0, "p1-1", 8.0),
        read("c1", 1, "p1-0", 8.0),
        read("c1", 2, "p2-0", 8.0),
        read("c1", 3, "p3-0", 8.0),
    ]);
    assert!(report.valid, "{report}");
}

#[test]
fn nonmonotonic_poll_is_a_session_reading_backwards() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
        send("p1", "p1-1", Outcome::Ok, Some(1), 2.0, 3.0),
        read("c1", 0, "p1-0", 4.0),
        read("c1", 1, "p1-1", 4.0),
        read("c1", 0, "p1-0", 5.0),
        read("c1", 1, "p1-1", 5.0),
    ]);
    let note = assert_only(&report, AnomalyKind::NonmonotonicPoll, 1);
    assert!(note.contains("offset 0 after offset 1"), "{note}");
}

#[test]
fn seek_restarts_the_session() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
        send("p1", "p1-1", Outcome::Ok, Some(1), 2.0, 3.0),
        seek("c1", Some(0), 3.5),
        read("c1", 0, "p1-0", 4.0),
        read("c1", 1, "p1-1", 4.0),
        seek("c1", Some(0), 5.0),
        read("c1", 0, "p1-0", 6.0),
        seek("c1", None, 7.0),
        read("c1", 0, "p1-0", 8.0),
        read("c1", 1, "p1-1", 8.0),
        // Another consumer's session is its own.
        read("c2", 1, "p1-1", 8.5),
    ]);
    assert!(report.valid, "{report}");
    assert_eq!(report.counts.seeks, 3);
}

#[test]
fn read_before_the_seek_position_is_nonmonotonic() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
        seek("c1", Some(1), 2.0),
        read("c1", 0, "p1-0", 3.0),
    ]);
    let note = assert_only(&report, AnomalyKind::NonmonotonicPoll, 1);
    assert!(note.contains("seek to 1"), "{note}");
}

#[test]
fn phantom_read_is_a_value_no_send_carried() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
        read("c1", 0, "p1-0", 2.0),
        read("c1", 1, "ghost", 2.0),
    ]);
    assert_only(&report, AnomalyKind::PhantomRead, 1);
}

#[test]
fn failed_write_read_is_a_value_whose_send_failed() {
    let report = check(vec![
        send("p1", "p1-0", Outcome::Fail, None, 0.0, 1.0),
        read("c1", 0, "p1-0", 2.0),
    ]);
    let example = &report.anomalies[&AnomalyKind::FailedWriteRead].examples[0];
    assert_only(&report, AnomalyKind::FailedWriteRead, 1);
    assert_eq!(example.witnesses[0].result, Some(Outcome::Fail));
}

#[test]
fn committed_offset_below_an_acked_commit_goes_backwards() {
    let report = check(vec![
        commit("c1", 10, Outcome::Ok, 0.0, 1.0),
        committed("c2", Some(5), 2.0, 3.0),
    ]);
    let example = &report.anomalies[&AnomalyKind::CommittedOffsetBackwards].examples[0];
    assert_only(&report, AnomalyKind::CommittedOffsetBackwards, 1);
    assert_eq!(example.group.as_deref(), Some(GROUP));
}

#[test]
fn committed_offset_below_an_earlier_observation_or_gone_goes_backwards() {
    let report = check(vec![
        committed("c1", Some(10), 0.0, 1.0),
        committed("c2", Some(5), 2.0, 3.0),
        committed("c2", None, 4.0, 5.0),
        committed("c2", Some(12), 6.0, 7.0),
    ]);
    assert_only(&report, AnomalyKind::CommittedOffsetBackwards, 2);
}

#[test]
fn committed_offset_is_judged_only_against_commits_acked_before_it_was_asked() {
    let report = check(vec![
        // The observation started before the commit was acknowledged: it may precede it.
        commit("c1", 10, Outcome::Ok, 0.0, 5.0),
        committed("c2", Some(5), 1.0, 6.0),
        // Failed and indeterminate commits set no bar.
        commit("c1", 20, Outcome::Fail, 7.0, 8.0),
        commit("c1", 30, Outcome::Info, 7.0, 8.0),
        committed("c2", Some(10), 9.0, 10.0),
    ]);
    assert!(report.valid, "{report}");
}

#[test]
fn anomalies_of_several_kinds_are_all_reported_with_examples_capped() {
    let mut events = vec![send("p1", "p1-0", Outcome::Fail, None, 0.0, 1.0)];
    for offset in 0..20 {
        events.push(read("c1", offset, &format!("ghost-{offset}"), 2.0));
    }
    events.push(read("c1", 20, "p1-0", 3.0));
    let report = check(events);
    assert_eq!(
        report.kinds(),
        vec![AnomalyKind::PhantomRead, AnomalyKind::FailedWriteRead]
    );
    assert_eq!(report.count(AnomalyKind::PhantomRead), 20);
    let examples = &report.anomalies[&AnomalyKind::PhantomRead].examples;
    assert_eq!(
        examples.len(),
        spate_tests::history::report::EXAMPLES_PER_KIND_MAX
    );
    assert_eq!(examples[0].value.as_deref(), Some("ghost-0"));
    let text = report.to_string();
    assert!(
        text.contains("INVALID: phantom_read 20, failed_write_read 1"),
        "{text}"
    );
    assert!(
        text.contains("line 2: read by c1 value ghost-0 offset 0"),
        "{text}"
    );
}

#[test]
fn history_round_trips_through_json_lines() {
    let mut bytes = Vec::new();
    for event in clean_history() {
        write_event(&mut bytes, &event).unwrap();
    }
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"type":"seek","time_ms":0.0,"process":"c1""#),
        "{text}"
    );
    assert!(text.contains(r#""producer":"plain""#), "{text}");
    let from_text = check_reader(bytes.as_slice()).unwrap();
    assert_eq!(from_text, check(clean_history()));
}

#[test]
fn format_violations_are_errors_with_their_line() {
    let blank_then_garbage = "\n{\"type\":\"seek\",\"time_ms\":1,\"process\":\"c\",\"topic\":\"t\",\"partition\":0,\"offset\":null}\nnot json\n";
    match check_reader(blank_then_garbage.as_bytes()) {
        Err(HistoryError::Json { line: 3, .. }) => {}
        other => panic!("expected a JSON error on line 3, got {other:?}"),
    }
    let twice = vec![
        send("p1", "p1-0", Outcome::Fail, None, 0.0, 1.0),
        send("p1", "p1-0", Outcome::Ok, Some(0), 2.0, 3.0),
    ];
    match check_events(twice) {
        Err(HistoryError::ValueSentTwice {
            first_line: 1,
            line: 2,
            ..
        }) => {}
        other => panic!("expected a reused value, got {other:?}"),
    }
    match check_events(vec![read("c1", -1, "v", 0.0)]) {
        Err(HistoryError::NegativeOffset {
            line: 1,
            offset: -1,
        }) => {}
        other => panic!("expected a negative offset, got {other:?}"),
    }
}

#[test]
fn large_history_is_checked_in_one_linear_pass() {
    // 100,000 sends from 10 producers, each read once and once more after a seek, with commits:
    // a quadratic pass would not finish; the linear ones take about a second in a debug build.
    const SENDS: i64 = 100_000;
    let mut events = Vec::new();
    for offset in 0..SENDS {
        let time_ms = offset as f64;
        let process = format!("p{}", offset % 10);
        let value = format!("{process}-{offset:06}");
        events.push(send(
            &process,
            &value,
            Outcome::Ok,
            Some(offset),
            time_ms,
            time_ms + 0.5,
        ));
    }
    for pass in 0..2 {
        events.push(seek("c1", Some(0), SENDS as f64 + pass as f64));
        for offset in 0..SENDS {
            let value = format!("p{}-{offset:06}", offset % 10);
            events.push(read("c1", offset, &value, SENDS as f64 + 1.0));
            if offset % 1000 == 999 {
                events.push(commit("c1", offset + 1, Outcome::Ok, 0.0, offset as f64));
            }
        }
    }
    events.push(final_read(SENDS));
    let report = check(events);
    assert!(report.valid, "{report}");
    assert_eq!(report.counts.records_read, 2 * SENDS as u64);
}

fn run_check(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_spate-check"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn write_history(path: &Path, events: &[Event]) {
    let mut bytes = Vec::new();
    for event in events {
        write_event(&mut bytes, event).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn spate_check_exits_0_valid_1_anomalies_2_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let valid = dir.path().join("valid.jsonl");
    write_history(&valid, &clean_history());
    let (code, stdout, _) = run_check(&[valid.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("valid: no anomalies"), "{stdout}");

    let lost = dir.path().join("lost.jsonl");
    write_history(
        &lost,
        &[
            send("p1", "p1-0", Outcome::Ok, Some(0), 0.0, 1.0),
            send("p1", "p1-1", Outcome::Ok, Some(1), 2.0, 3.0),
            read("c1", 1, "p1-1", 4.0),
        ],
    );
    let (code, stdout, _) = run_check(&[lost.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("lost_write: 1"), "{stdout}");
    let (code, stdout, _) = run_check(&["--json", lost.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["anomalies"]["lost_write"]["count"], 1);
    assert_eq!(
        json["anomalies"]["lost_write"]["examples"][0]["value"],
        "p1-0"
    );

    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "{\"type\":\"send\"}\n").unwrap();
    let (code, _, stderr) = run_check(&[garbage.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("line 1"), "{stderr}");

    let missing = dir.path().join("missing.jsonl");
    let (code, _, _) = run_check(&[missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    let (code, _, _) = run_check(&[]);
    assert_eq!(code, 2);
}
