"""One client of the nemesis workload (tests/src/nemesis/): it writes its part of the history.

Usage:
  python nemesis_client.py produce BOOTSTRAP TOPIC PARTITIONS EPOCH_MS PROCESS MODE RATE DIR
  python nemesis_client.py consume BOOTSTRAP TOPIC PARTITIONS EPOCH_MS PROCESS GROUP DIR
  python nemesis_client.py final   BOOTSTRAP TOPIC PARTITIONS EPOCH_MS PROCESS DIR

Every event goes to DIR/history.jsonl, one JSON object a line, in the format the checker
(spate_tests::history) reads. Times are milliseconds since EPOCH_MS (Unix milliseconds), so
the harness can merge the files of several clients and place its faults among them.

produce: MODE "idempotent" or "plain", acks=all. Record N of PROCESS has the value
"PROCESS-%06d" and goes to partition N % PARTITIONS. It sends RATE records a second until
DIR/stop exists, then flushes. A "send" event per record: "ok" with the offset of the
delivery report, or "info" (outcome unknown) for every error and for every record not
reported when the flush gives up. librdkafka does not say whether a failed record was
written, so no error is a definite "fail": the checker then cannot be misled into counting a
written record as never sent.

consume: a member of consumer group GROUP (subscribe, manual commits). On each assignment a
"committed" event (what OffsetFetch said) and a "seek" event per partition (where reading
restarts: the committed offset, or 0, as auto.offset.reset=earliest). A "read" event per
record. Every COMMIT_INTERVAL_S it commits its positions synchronously: a "commit" event per
partition, "ok", or "info" when the commit raised.

final: assigns every partition from offset 0, reads up to the high watermark it asked for
first, and writes the "read" events and one "final_read" event per partition (log_end = that
high watermark). Exits non-zero if it cannot get there within FINAL_TIMEOUT_S.
"""

import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

FLUSH_TIMEOUT_S = 30
IN_FLIGHT_MAX = 2000
COMMIT_INTERVAL_S = 1.0
FINAL_TIMEOUT_S = 90
OFFSET_NONE = -1001


class History:
    """Appends events to DIR/history.jsonl; flushed often so a killed client loses little."""

    def __init__(self, folder, epoch_ms, process):
        self.out = open(os.path.join(folder, "history.jsonl"), "a")
        self.epoch_ms = epoch_ms
        self.process = process

    def now_ms(self):
        return time.time() * 1000.0 - self.epoch_ms

    def event(self, kind, **fields):
        line = {"type": kind, "time_ms": round(self.now_ms(), 3), "process": self.process}
        line.update(fields)
        self.out.write(json.dumps(line) + "\n")

    def flush(self):
        self.out.flush()


def common_config(bootstrap):
    return {
        "bootstrap.servers": bootstrap,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "topic.metadata.refresh.interval.ms": 2000,
        "socket.timeout.ms": 10000,
    }


def produce(bootstrap, topic, partitions, history, mode, rate, folder):
    pending = {}

    def on_delivery(error, message):
        value = message.value().decode()
        invoked = pending.pop(value, None)
        fields = dict(
            invoked_ms=invoked,
            producer=mode,
            topic=topic,
            partition=message.partition(),
            value=value,
        )
        if error is None:
            history.event("send", result="ok", offset=message.offset(), **fields)
        else:
            history.event("send", result="info", offset=None, error=error.name(), **fields)

    config = common_config(bootstrap)
    config.update(
        {
            "acks": "all",
            "enable.idempotence": mode == "idempotent",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "request.timeout.ms": 10000,
            "retry.backoff.ms": 50,
            "retry.backoff.max.ms": 500,
            "max.in.flight.requests.per.connection": 5,
        }
    )
    producer = Producer(config)
    stop_file = os.path.join(folder, "stop")
    seq = 0
    next_send = time.monotonic()
    last_flush = 0.0
    while not os.path.exists(stop_file):
        now = time.monotonic()
        # After a stall, do not burst: a missed slot is skipped, not made up.
        next_send = max(next_send, now - 0.5)
        while next_send <= now and len(pending) < IN_FLIGHT_MAX:
            value = "%s-%06d" % (history.process, seq)
            try:
                producer.produce(topic, value=value.encode(), partition=seq % partitions, on_delivery=on_delivery)
            except BufferError:
                break
            pending[value] = round(history.now_ms(), 3)
            seq += 1
            next_send += 1.0 / rate
        producer.poll(0.01)
        if now - last_flush > 0.2:
            history.flush()
            last_flush = now
    producer.flush(FLUSH_TIMEOUT_S)
    for value, invoked in list(pending.items()):
        seq = int(value.rsplit("-", 1)[1])
        history.event(
            "send",
            invoked_ms=invoked,
            producer=mode,
            topic=topic,
            partition=seq % partitions,
            value=value,
            result="info",
            offset=None,
            error="unflushed",
        )
    history.flush()


def consume(bootstrap, topic, partitions, history, group, folder):
    config = common_config(bootstrap)
    config.update(
        {
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer = Consumer(config)
    positions = {}

    def on_assign(consumer, assigned):
        try:
            committed = consumer.committed(assigned, timeout=10)
        except KafkaException:
            committed = [TopicPartition(tp.topic, tp.partition, OFFSET_NONE) for tp in assigned]
        for tp in committed:
            if tp.offset >= 0:
                history.event("committed", group=group, topic=tp.topic, partition=tp.partition, offset=tp.offset)
            start = tp.offset if tp.offset >= 0 else 0
            history.event("seek", topic=tp.topic, partition=tp.partition, offset=start)
            positions.pop(tp.partition, None)
        history.flush()

    def on_revoke(consumer, revoked):
        for tp in revoked:
            positions.pop(tp.partition, None)

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    stop_file = os.path.join(folder, "stop")
    last_commit = time.monotonic()
    uncommitted = False
    while not os.path.exists(stop_file):
        for message in consumer.consume(num_messages=500, timeout=0.1):
            if message.error() is not None:
                continue
            history.event(
                "read",
                topic=message.topic(),
                partition=message.partition(),
                offset=message.offset(),
                value=message.value().decode(errors="replace"),
            )
            positions[message.partition()] = message.offset() + 1
            uncommitted = True
        now = time.monotonic()
        if uncommitted and now - last_commit >= COMMIT_INTERVAL_S:
            last_commit = now
            uncommitted = False
            offsets = [TopicPartition(topic, p, o) for p, o in sorted(positions.items())]
            result = "ok"
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException:
                result = "info"
            for tp in offsets:
                history.event("commit", group=group, topic=topic, partition=tp.partition, offset=tp.offset, result=result)
        history.flush()
    consumer.close()
    history.flush()


def final_read(bootstrap, topic, partitions, history):
    config = common_config(bootstrap)
    config.update({"group.id": "nemesis-final", "enable.auto.commit": False, "enable.partition.eof": False})
    consumer = Consumer(config)
    deadline = time.monotonic() + FINAL_TIMEOUT_S
    ends = {}
    for p in range(partitions):
        while True:
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                ends[p] = high
                break
            except KafkaException as error:
                if time.monotonic() > deadline:
                    sys.exit(f"final read: no high watermark of {topic}-{p}: {error}")
                time.sleep(0.5)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    next_offset = {p: 0 for p in range(partitions)}
    while any(next_offset[p] < ends[p] for p in range(partitions)):
        if time.monotonic() > deadline:
            sys.exit(f"final read: stuck at {next_offset}, ends {ends}")
        for message in consumer.consume(num_messages=1000, timeout=0.5):
            if message.error() is not None:
                continue
            p = message.partition()
            if message.offset() >= ends[p]:
                continue
            history.event(
                "read",
                topic=topic,
                partition=p,
                offset=message.offset(),
                value=message.value().decode(errors="replace"),
            )
            next_offset[p] = max(next_offset[p], message.offset() + 1)
    for p in range(partitions):
        history.event("final_read", topic=topic, partition=p, log_end=ends[p])
    history.flush()
    consumer.close()


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    args = sys.argv[2:]
    if command == "produce" and len(args) == 8:
        bootstrap, topic, partitions, epoch_ms, process, mode, rate, folder = args
        history = History(folder, float(epoch_ms), process)
        produce(bootstrap, topic, int(partitions), history, mode, float(rate), folder)
    elif command == "consume" and len(args) == 7:
        bootstrap, topic, partitions, epoch_ms, process, group, folder = args
        history = History(folder, float(epoch_ms), process)
        consume(bootstrap, topic, int(partitions), history, group, folder)
    elif command == "final" and len(args) == 6:
        bootstrap, topic, partitions, epoch_ms, process, folder = args
        history = History(folder, float(epoch_ms), process)
        final_read(bootstrap, topic, int(partitions), history)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
