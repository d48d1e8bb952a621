//! [`Checker`]: takes a history one event at a time, keeps what the checks need in hash maps
//! keyed by small interned ids, and finds the anomalies that need no later event (divergence,
//! nonmonotonic polls) as they arrive. The rest run once in [`Checker::finish`], because a
//! workload logs a read before the ack of the send it read often enough.
//!
//! Every pass is linear in the history, or n log n where it sorts by time.

use std::collections::HashMap;

use super::HistoryError;
use super::event::{
    CommitEvent, CommittedEvent, Event, FinalReadEvent, Outcome, Producer, ReadEvent, SeekEvent,
    SendEvent,
};
use super::report::{Anomalies, AnomalyKind, Counts, Example, Report, Witness, WitnessEvent};

/// Strings (values, or processes, topics and groups) mapped to dense ids, so the maps key on
/// integers and each string is stored once.
#[derive(Debug, Default)]
pub(super) struct Interner {
    ids: HashMap<String, usize>,
    names: Vec<String>,
}

impl Interner {
    pub(super) fn intern(&mut self, name: String) -> usize {
        if let Some(&id) = self.ids.get(&name) {
            return id;
        }
        let id = self.names.len();
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    pub(super) fn name(&self, id: usize) -> &str {
        &self.names[id]
    }

    pub(super) fn len(&self) -> usize {
        self.names.len()
    }
}

/// A send, with its strings interned. `value` indexes [`Checker::values`].
#[derive(Debug, Clone)]
pub(super) struct SendRecord {
    pub(super) line: u64,
    pub(super) time_ms: f64,
    pub(super) invoked_ms: Option<f64>,
    pub(super) process: usize,
    pub(super) producer: Producer,
    pub(super) tp: usize,
    pub(super) value: usize,
    pub(super) result: Outcome,
    pub(super) offset: Option<i64>,
}

/// A read, with its strings interned.
#[derive(Debug, Clone)]
pub(super) struct ReadRecord {
    pub(super) line: u64,
    pub(super) time_ms: f64,
    pub(super) process: usize,
    pub(super) tp: usize,
    pub(super) offset: i64,
    pub(super) value: usize,
}

/// A commit or a committed-offset observation, with its strings interned.
#[derive(Debug, Clone)]
pub(super) struct CommitRecord {
    pub(super) line: u64,
    pub(super) time_ms: f64,
    pub(super) invoked_ms: Option<f64>,
    pub(super) process: usize,
    pub(super) group: usize,
    pub(super) tp: usize,
    /// None only for an observation that found no committed offset.
    pub(super) offset: Option<i64>,
    /// None for an observation (`committed`), the outcome for a `commit`.
    pub(super) result: Option<Outcome>,
}

/// A final read, as logged.
#[derive(Debug, Clone)]
pub(super) struct FinalReadRecord {
    pub(super) line: u64,
    pub(super) time_ms: Option<f64>,
    pub(super) log_start: i64,
    pub(super) log_end: i64,
}

/// Where a value was seen at an offset: read there, or acknowledged there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Read(usize),
    Ack(usize),
}

/// A value at a topic-partition and offset, and who said so.
#[derive(Debug, Clone, Copy)]
pub(super) struct Position {
    pub(super) tp: usize,
    pub(super) offset: i64,
    pub(super) source: Source,
}

/// What the history says about one value.
#[derive(Debug, Clone, Default)]
pub(super) struct ValueState {
    /// The send that carried it (at most one: values are unique).
    pub(super) send: Option<usize>,
    /// The first read of it.
    pub(super) first_read: Option<usize>,
    /// The read of it at the lowest offset: its offset in the log when the ack had none.
    pub(super) lowest_read: Option<usize>,
    /// The first place it was seen, and the first place after that at another position: two
    /// positions make it a duplicate.
    pub(super) first_position: Option<Position>,
    pub(super) other_position: Option<Position>,
}

/// What one offset of one partition was seen to hold.
#[derive(Debug, Clone, Copy)]
struct Slot {
    value: usize,
    source: Source,
    diverged: bool,
}

/// Where a consumer session stands: the offset its next read must exceed, and the event that
/// set it.
#[derive(Debug, Clone, Copy)]
struct Session {
    offset_last: i64,
    mark: SessionMark,
}

#[derive(Debug, Clone, Copy)]
enum SessionMark {
    Read(usize),
    Seek {
        line: u64,
        time_ms: f64,
        offset: i64,
    },
}

/// The history checker. Feed it events with [`Checker::observe`], then call
/// [`Checker::finish`].
#[derive(Debug, Default)]
pub struct Checker {
    pub(super) values: Interner,
    pub(super) names: Interner,
    /// Topic-partitions as (topic name id, partition), indexed by tp id.
    pub(super) tps: Vec<(usize, i32)>,
    tp_ids: HashMap<(usize, i32), usize>,
    /// Indexed by value id.
    pub(super) value_states: Vec<ValueState>,
    pub(super) sends: Vec<SendRecord>,
    pub(super) reads: Vec<ReadRecord>,
    pub(super) commits: Vec<CommitRecord>,
    pub(super) final_reads: HashMap<usize, FinalReadRecord>,
    /// The read at the highest offset of each tp.
    pub(super) read_highest: HashMap<usize, usize>,
    slots: HashMap<(usize, i64), Slot>,
    sessions: HashMap<(usize, usize), Session>,
    pub(super) counts: Counts,
    pub(super) anomalies: Anomalies,
}

impl Checker {
    /// An empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the event on 1-based `line` of the history. Fails only on a history that breaks
    /// the format's rules (a value sent twice, a negative offset), which is the workload's bug.
    pub fn observe(&mut self, line: u64, event: Event) -> Result<(), HistoryError> {
        self.counts.events += 1;
        match event {
            Event::Send(send) => self.observe_send(line, send),
            Event::Read(read) => self.observe_read(line, read),
            Event::Seek(seek) => self.observe_seek(line, seek),
            Event::Commit(commit) => self.observe_commit(line, commit),
            Event::Committed(committed) => self.observe_committed(line, committed),
            Event::FinalRead(final_read) => self.observe_final_read(line, final_read),
        }
    }

    /// Runs the checks that need the whole history and returns the verdict.
    pub fn finish(mut self) -> Report {
        let mut anomalies = std::mem::take(&mut self.anomalies);
        self.check_values(&mut anomalies);
        self.check_send_order(&mut anomalies);
        self.check_commits(&mut anomalies);
        anomalies.into_report(self.counts)
    }

    fn observe_send(&mut self, line: u64, send: SendEvent) -> Result<(), HistoryError> {
        if let Some(offset) = send.offset {
            check_offset(line, offset)?;
        }
        let value = self.value_id(send.value);
        if let Some(first) = self.value_states[value].send {
            return Err(HistoryError::ValueSentTwice {
                value: self.values.name(value).to_owned(),
                first_line: self.sends[first].line,
                line,
            });
        }
        let process = self.names.intern(send.process);
        let tp = self.tp_id(send.topic, send.partition);
        let index = self.sends.len();
        self.sends.push(SendRecord {
            line,
            time_ms: send.time_ms,
            invoked_ms: send.invoked_ms,
            process,
            producer: send.producer,
            tp,
            value,
            result: send.result,
            offset: send.offset,
        });
        self.value_states[value].send = Some(index);
        match send.result {
            Outcome::Ok => self.counts.sends_ok += 1,
            Outcome::Fail => self.counts.sends_fail += 1,
            Outcome::Info => self.counts.sends_info += 1,
        }
        if let (Outcome::Ok, Some(offset)) = (send.result, send.offset) {
            self.observe_position(value, tp, offset, Source::Ack(index));
        }
        Ok(())
    }

    fn observe_read(&mut self, line: u64, read: ReadEvent) -> Result<(), HistoryError> {
        check_offset(line, read.offset)?;
        let value = self.value_id(read.value);
        let process = self.names.intern(read.process);
        let tp = self.tp_id(read.topic, read.partition);
        let index = self.reads.len();
        self.reads.push(ReadRecord {
            line,
            time_ms: read.time_ms,
            process,
            tp,
            offset: read.offset,
            value,
        });
        self.counts.records_read += 1;

        let state = &mut self.value_states[value];
        state.first_read.get_or_insert(index);
        match state.lowest_read {
            Some(lowest) if self.reads[lowest].offset <= read.offset => {}
            _ => state.lowest_read = Some(index),
        }
        match self.read_highest.get(&tp) {
            Some(&highest) if self.reads[highest].offset >= read.offset => {}
            _ => {
                self.read_highest.insert(tp, index);
            }
        }
        self.observe_position(value, tp, read.offset, Source::Read(index));
        self.observe_session(process, tp, index);
        Ok(())
    }

    fn observe_seek(&mut self, line: u64, seek: SeekEvent) -> Result<(), HistoryError> {
        self.counts.seeks += 1;
        let process = self.names.intern(seek.process);
        let tp = self.tp_id(seek.topic, seek.partition);
        match seek.offset {
            Some(offset) => {
                check_offset(line, offset)?;
                let mark = SessionMark::Seek {
                    line,
                    time_ms: seek.time_ms,
                    offset,
                };
                let session = Session {
                    offset_last: offset - 1,
                    mark,
                };
                self.sessions.insert((process, tp), session);
            }
            None => {
                self.sessions.remove(&(process, tp));
            }
        }
        Ok(())
    }

    fn observe_commit(&mut self, line: u64, commit: CommitEvent) -> Result<(), HistoryError> {
        check_offset(line, commit.offset)?;
        self.counts.commits += 1;
        let record = CommitRecord {
            line,
            time_ms: commit.time_ms,
            invoked_ms: commit.invoked_ms,
            process: self.names.intern(commit.process),
            group: self.names.intern(commit.group),
            tp: self.tp_id(commit.topic, commit.partition),
            offset: Some(commit.offset),
            result: Some(commit.result),
        };
        self.commits.push(record);
        Ok(())
    }

    fn observe_committed(&mut self, line: u64, seen: CommittedEvent) -> Result<(), HistoryError> {
        if let Some(offset) = seen.offset {
            check_offset(line, offset)?;
        }
        self.counts.committed_observations += 1;
        let record = CommitRecord {
            line,
            time_ms: seen.time_ms,
            invoked_ms: seen.invoked_ms,
            process: self.names.intern(seen.process),
            group: self.names.intern(seen.group),
            tp: self.tp_id(seen.topic, seen.partition),
            offset: seen.offset,
            result: None,
        };
        self.commits.push(record);
        Ok(())
    }

    fn observe_final_read(&mut self, line: u64, read: FinalReadEvent) -> Result<(), HistoryError> {
        check_offset(line, read.log_start)?;
        check_offset(line, read.log_end)?;
        if read.log_start > read.log_end {
            return Err(HistoryError::FinalReadBackwards {
                line,
                log_start: read.log_start,
                log_end: read.log_end,
            });
        }
        let tp = self.tp_id(read.topic, read.partition);
        let record = FinalReadRecord {
            line,
            time_ms: read.time_ms,
            log_start: read.log_start,
            log_end: read.log_end,
        };
        if self.final_reads.insert(tp, record).is_none() {
            self.counts.final_reads += 1;
        }
        Ok(())
    }

    /// Records that `value` sits at `offset` of `tp`: a second value at the same place is a
    /// divergence, and a second place for the same value may be a duplicate (judged at the end,
    /// once the value's send is known).
    fn observe_position(&mut self, value: usize, tp: usize, offset: i64, source: Source) {
        let position = Position { tp, offset, source };
        let state = &mut self.value_states[value];
        match state.first_position {
            None => state.first_position = Some(position),
            Some(first) if (first.tp, first.offset) != (tp, offset) => {
                state.other_position.get_or_insert(position);
            }
            Some(_) => {}
        }

        let slot = self.slots.entry((tp, offset)).or_insert(Slot {
            value,
            source,
            diverged: false,
        });
        if slot.value == value || slot.diverged {
            return;
        }
        slot.diverged = true;
        let earlier = *slot;
        let mut anomalies = std::mem::take(&mut self.anomalies);
        anomalies.record(AnomalyKind::Divergence, || {
            let (topic, partition) = self.tp_name(tp);
            Example {
                group: None,
                topic,
                partition,
                offset: Some(offset),
                value: None,
                note: format!(
                    "values {} and {} both at this offset",
                    self.values.name(earlier.value),
                    self.values.name(value)
                ),
                witnesses: vec![
                    self.source_witness(earlier.source),
                    self.source_witness(source),
                ],
            }
        });
        self.anomalies = anomalies;
    }

    /// Checks that a session's reads move forward, then moves the session to this read.
    fn observe_session(&mut self, process: usize, tp: usize, read: usize) {
        let offset = self.reads[read].offset;
        let session = Session {
            offset_last: offset,
            mark: SessionMark::Read(read),
        };
        let Some(previous) = self.sessions.insert((process, tp), session) else {
            return;
        };
        if offset > previous.offset_last {
            return;
        }
        let mut anomalies = std::mem::take(&mut self.anomalies);
        anomalies.record(AnomalyKind::NonmonotonicPoll, || {
            let (topic, partition) = self.tp_name(tp);
            let (earlier, note) = match previous.mark {
                SessionMark::Read(earlier) => (
                    self.read_witness(earlier),
                    format!(
                        "read offset {offset} after offset {} in the same session",
                        previous.offset_last
                    ),
                ),
                SessionMark::Seek {
                    line,
                    time_ms,
                    offset: seek_offset,
                } => (
                    Witness {
                        event: WitnessEvent::Seek,
                        line,
                        process: Some(self.names.name(process).to_owned()),
                        invoked_ms: None,
                        time_ms: Some(time_ms),
                        offset: Some(seek_offset),
                        value: None,
                        result: None,
                    },
                    format!("read offset {offset} right after a seek to {seek_offset}"),
                ),
            };
            Example {
                group: None,
                topic,
                partition,
                offset: Some(offset),
                value: Some(self.values.name(self.reads[read].value).to_owned()),
                note,
                witnesses: vec![earlier, self.read_witness(read)],
            }
        });
        self.anomalies = anomalies;
    }

    fn value_id(&mut self, value: String) -> usize {
        let id = self.values.intern(value);
        if id == self.value_states.len() {
            self.value_states.push(ValueState::default());
        }
        debug_assert_eq!(self.value_states.len(), self.values.len());
        id
    }

    fn tp_id(&mut self, topic: String, partition: i32) -> usize {
        let topic = self.names.intern(topic);
        let next = self.tps.len();
        let id = *self.tp_ids.entry((topic, partition)).or_insert(next);
        if id == next {
            self.tps.push((topic, partition));
        }
        id
    }

    /// The topic name and partition of a tp id.
    pub(super) fn tp_name(&self, tp: usize) -> (String, i32) {
        let (topic, partition) = self.tps[tp];
        (self.names.name(topic).to_owned(), partition)
    }

    pub(super) fn source_witness(&self, source: Source) -> Witness {
        match source {
            Source::Read(read) => self.read_witness(read),
            Source::Ack(send) => self.send_witness(send),
        }
    }

    pub(super) fn send_witness(&self, send: usize) -> Witness {
        let send = &self.sends[send];
        Witness {
            event: WitnessEvent::Send,
            line: send.line,
            process: Some(self.names.name(send.process).to_owned()),
            invoked_ms: send.invoked_ms,
            time_ms: Some(send.time_ms),
            offset: send.offset,
            value: Some(self.values.name(send.value).to_owned()),
            result: Some(send.result),
        }
    }

    pub(super) fn read_witness(&self, read: usize) -> Witness {
        let read = &self.reads[read];
        Witness {
            event: WitnessEvent::Read,
            line: read.line,
            process: Some(self.names.name(read.process).to_owned()),
            invoked_ms: None,
            time_ms: Some(read.time_ms),
            offset: Some(read.offset),
            value: Some(self.values.name(read.value).to_owned()),
            result: None,
        }
    }
}

/// Offsets in a history are log positions, never Kafka's negative sentinels: a workload must
/// write null for "unknown", or the checks would compare against -1.
fn check_offset(line: u64, offset: i64) -> Result<(), HistoryError> {
    if offset < 0 {
        return Err(HistoryError::NegativeOffset { line, offset });
    }
    Ok(())
}
