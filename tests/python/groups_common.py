"""Shared pieces of the consumer-group scripts (`groups_*.py`).

The group scripts prove what a consumer group promises its members: one owner per partition at
a time, hand-over at the committed offset, nothing lost. To see that from outside, each member
runs as its own OS process (`groups_member.py`, so it can be SIGKILLed without closing) and
writes one JSON line per event to its own log: assignments, revocations, every record it
processed and every commit, each stamped with `time.monotonic()`. That clock is CLOCK_MONOTONIC,
shared by all processes on the machine, so events from different members (and the moment the
orchestrating script killed one) can be ordered against each other.
"""

import json
import os
import signal
import subprocess
import sys
import time

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    OffsetSpec,
)

from check import expect, fail, step, wait_until

TIMEOUT_S = 30

# librdkafka's value for "no committed offset" in TopicPartition.offset.
OFFSET_INVALID = -1001

# Settings every group member in these scripts shares: fast heartbeats, so a member notices a
# rebalance within half a second and the timing bounds the scripts check can be tight.
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- topics and records ------------------------------------------------------------------


def admin_for(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(admin, topic, partitions):
    futures = admin.create_topics([NewTopic(topic, partitions, 1)])
    try:
        futures[topic].result(timeout=TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - any failure is the test's failure
        fail(f"create topic {topic}: {error!r}")

    def visible():
        found = admin.list_topics(timeout=TIMEOUT_S).topics.get(topic)
        return found is not None and found.error is None and len(found.partitions) == partitions

    wait_until(visible, f"{topic} with {partitions} partitions in metadata")


def value_for(partition, seq):
    return f"{partition}:{seq}".encode()


def parse_value(value):
    """(partition, seq) from a record value written by produce_sequenced."""
    partition, seq = value.decode().split(":")
    return int(partition), int(seq)


def produce_sequenced(bootstrap, topic, partitions, per_partition):
    """Writes `per_partition` records to each partition; the value of the n-th record of
    partition p is "p:n". The producer is idempotent, so a retry cannot duplicate a record and
    on a fresh topic record n sits at offset n, which the consumers' checks rely on."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.num.messages": 2000,
        }
    )
    errors = []

    def on_delivery(error, _message):
        if error is not None:
            errors.append(error)

    for seq in range(per_partition):
        for partition in range(partitions):
            while True:
                try:
                    producer.produce(
                        topic, value_for(partition, seq), partition=partition, on_delivery=on_delivery
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    expect(remaining == 0, f"{remaining} records still unsent after {TIMEOUT_S}s")
    expect(not errors, f"delivery errors: {errors[:5]}")
    ends = end_offsets(bootstrap, topic, partitions)
    expect(
        all(ends[p] == per_partition for p in range(partitions)),
        f"end offsets after producing {per_partition} per partition: {ends}",
    )


def end_offsets(bootstrap, topic, partitions):
    admin = admin_for(bootstrap)
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
    futures = admin.list_offsets(request, request_timeout=TIMEOUT_S)
    return {tp.partition: future.result(timeout=TIMEOUT_S).offset for tp, future in futures.items()}


# ---- group inspection through the AdminClient ---------------------------------------------


# Answers that mean "ask again shortly": the coordinator is still being created or loaded,
# as on a fresh Kafka cluster whose first FindCoordinator creates __consumer_offsets.
TRANSIENT_CODES = {
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.NOT_COORDINATOR,
}


def transient(error):
    return isinstance(error, KafkaError) and error.code() in TRANSIENT_CODES


def error_from(exception):
    """The KafkaError inside a KafkaException, else the exception itself."""
    inner = exception.args[0] if isinstance(exception, KafkaException) and exception.args else None
    if isinstance(inner, KafkaError):
        return inner
    return exception


def retrying(call, what):
    """call() until it stops failing with a transient coordinator error (for up to TIMEOUT_S);
    any other failure is raised to the caller."""
    deadline = time.monotonic() + TIMEOUT_S
    logged = False
    while True:
        try:
            return call()
        except KafkaException as exception:
            error = error_from(exception)
            if not transient(error) or time.monotonic() > deadline:
                raise
            if not logged:
                step(f"{what}: {error}; retrying")
                logged = True
        time.sleep(0.2)


def committed_offsets(admin, group, topic, partitions):
    """{partition: committed offset} as the coordinator reports it; OFFSET_INVALID for none."""
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p) for p in range(partitions)]
    )

    def fetch():
        futures = admin.list_consumer_group_offsets([request], request_timeout=TIMEOUT_S)
        return futures[group].result(timeout=TIMEOUT_S)

    result = retrying(fetch, f"offsets of {group}")
    offsets = {}
    for tp in result.topic_partitions:
        expect(tp.error is None, f"list_consumer_group_offsets {group} p{tp.partition}: {tp.error}")
        offsets[tp.partition] = tp.offset
    return offsets


def listed_groups(admin, states=None):
    """{group_id: ConsumerGroupListing} from list_consumer_groups, optionally state-filtered."""
    kwargs = {"request_timeout": TIMEOUT_S}
    if states is not None:
        kwargs["states"] = set(states)
    result = admin.list_consumer_groups(**kwargs).result(timeout=TIMEOUT_S)
    expect(not result.errors, f"list_consumer_groups errors: {result.errors}")
    return {listing.group_id: listing for listing in result.valid}


def describe_group(admin, group):
    """The ConsumerGroupDescription, or the KafkaError the coordinator answered with."""

    def describe():
        futures = admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)
        return futures[group].result(timeout=TIMEOUT_S)

    try:
        return retrying(describe, f"description of {group}")
    except KafkaException as exception:
        return error_from(exception)


# ---- member processes -----------------------------------------------------------------------


def spawn_member(bootstrap, group, topic, log_path, **options):
    """Starts `groups_member.py` as a child process; `options` become `--name value` flags
    (underscores as hyphens). Its stdout and stderr go to `<log_path>.out`."""
    script = os.path.join(HERE, "groups_member.py")
    command = [sys.executable, "-u", script, bootstrap, group, topic, log_path]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    output = open(f"{log_path}.out", "wb")  # noqa: SIM115 - lives as long as the child
    return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)


def kill9(process):
    """SIGKILLs a member and returns the monotonic time by which it was certainly dead."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=TIMEOUT_S)
    return time.monotonic()


def stop_members(processes, timeout_s=TIMEOUT_S):
    """SIGTERM (a member then commits, closes and leaves the group), waiting for each exit."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            fail(f"member pid {process.pid} did not exit within {timeout_s}s of SIGTERM")
        expect(process.returncode == 0, f"member pid {process.pid} exited with {process.returncode}")


def kill_all(processes):
    """Cleanup on the way out of a failing script: no member may outlive it."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def read_events(log_path):
    """The member's events in order. A SIGKILLed member may leave a torn last line; it is
    dropped, which is the same as the member never having written it."""
    events = []
    try:
        with open(log_path, encoding="utf-8") as log:
            for line in log:
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    except FileNotFoundError:
        pass
    return events


def member_output_tail(log_path, limit=3000):
    try:
        with open(f"{log_path}.out", "rb") as out:
            return out.read()[-limit:].decode(errors="replace")
    except FileNotFoundError:
        return "(no output)"


def current_assignment(events):
    """The partitions a member holds after its last assignment event, or None while it is in
    the middle of a rebalance (eager assignors revoke everything, then assign anew)."""
    owned = None
    for event in events:
        if event["ev"] == "assign":
            owned = set(event["parts"])
        elif event["ev"] in ("revoke", "lost"):
            owned = None
    return owned


# ---- analysis of member logs ----------------------------------------------------------------


class Interval:
    """One member's ownership of one partition, from its assign event to its revoke/lost event
    (or its kill, or forever if neither happened)."""

    def __init__(self, member, partition, start):
        self.member = member
        self.partition = partition
        self.start = start
        self.end = float("inf")
        self.offsets = []

    def __repr__(self):
        return (
            f"{self.member}:p{self.partition}[{self.start:.3f}..{self.end:.3f}] "
            f"offsets {self.offsets[:1]}..{self.offsets[-1:]} ({len(self.offsets)})"
        )


def ownership(member, events, killed_at=None):
    """Ownership intervals of one member, each with the offsets it processed while it owned
    the partition. Fails if the member processed a record of a partition it did not own."""
    open_intervals = {}
    intervals = []
    for event in events:
        kind = event["ev"]
        if kind == "assign":
            for partition in event["parts"]:
                expect(
                    partition not in open_intervals,
                    f"{member} assigned p{partition} at {event['t']:.3f} while already owning it",
                )
                interval = Interval(member, partition, event["t"])
                open_intervals[partition] = interval
                intervals.append(interval)
        elif kind in ("revoke", "lost"):
            for partition in event["parts"]:
                interval = open_intervals.pop(partition, None)
                if interval is not None:
                    interval.end = event["t"]
        elif kind == "rec":
            interval = open_intervals.get(event["p"])
            expect(
                interval is not None,
                f"{member} processed p{event['p']}@{event['o']} at {event['t']:.3f} without owning it",
            )
            expect(
                (event["vp"], event["s"]) == (event["p"], event["o"]),
                f"{member} p{event['p']}@{event['o']} carries the value of p{event['vp']}#{event['s']}",
            )
            interval.offsets.append(event["o"])
    if killed_at is not None:
        for interval in open_intervals.values():
            interval.end = killed_at
    return intervals


def expect_no_overlap(intervals):
    """Each partition has at most one owner at any instant."""
    by_partition = {}
    for interval in intervals:
        by_partition.setdefault(interval.partition, []).append(interval)
    for partition, owners in by_partition.items():
        owners.sort(key=lambda i: i.start)
        for earlier, later in zip(owners, owners[1:]):
            expect(
                earlier.end <= later.start,
                f"p{partition} had two owners at once: {earlier} and {later}",
            )


def commits(member, events):
    """[(time, {partition: offset}, completed)] in log order. An attempt whose outcome was
    never logged (the member died during the commit) is returned with completed=False."""
    result = []
    pending = None
    for event in events:
        if event["ev"] == "commit-begin":
            pending = (event["t"], {int(p): o for p, o in event["offs"].items()})
        elif event["ev"] == "commit" and pending is not None:
            result.append((event["t"], pending[1], True))
            pending = None
        elif event["ev"] == "commit-failed":
            pending = None
    if pending is not None:
        result.append((pending[0], pending[1], False))
    return result


def expect_resumes_at_commits(intervals, all_commits):
    """Every ownership interval that processed anything began at the offset last committed
    for that partition before it started (0 if none): no record skipped, none re-read that a
    completed commit covered. `all_commits` is [(time, {p: offset}, completed)] from every
    member; an attempt that never completed (its member was killed) may or may not have
    landed, so either value is accepted."""
    for interval in intervals:
        if not interval.offsets:
            continue
        candidates = {0}
        for when, offsets, completed in sorted(all_commits, key=lambda c: c[0]):
            if when >= interval.start or interval.partition not in offsets:
                continue
            if completed:
                candidates = {offsets[interval.partition]}
            else:
                candidates = candidates | {offsets[interval.partition]}
        expect(
            interval.offsets[0] in candidates,
            f"{interval} began at {interval.offsets[0]}, "
            f"but the committed offset was one of {sorted(candidates)}",
        )


def expect_contiguous(interval):
    """Within one ownership a member processes its partition in order, without gaps."""
    offsets = interval.offsets
    for before, after in zip(offsets, offsets[1:]):
        expect(after == before + 1, f"{interval}: offset {after} followed {before}")


def expect_complete(intervals, partitions, per_partition):
    """Every record of every partition was processed at least once."""
    seen = {p: set() for p in range(partitions)}
    for interval in intervals:
        seen.setdefault(interval.partition, set()).update(interval.offsets)
    for partition in range(partitions):
        missing = sorted(set(range(per_partition)) - seen[partition])
        expect(not missing, f"p{partition} never processed {len(missing)} records, first {missing[:10]}")


def wait_for_commits(admin, group, topic, partitions, target, timeout_s, describe):
    """Polls the coordinator until every partition's committed offset reaches `target`."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = committed_offsets(admin, group, topic, partitions)
        if all(last.get(p, OFFSET_INVALID) >= target for p in range(partitions)):
            return last
        time.sleep(0.2)
    fail(f"committed offsets never all reached {target} within {timeout_s}s: {last}\n{describe()}")


def summarize(logs):
    """One line per member: its assignment and commit events, for failure messages."""
    lines = []
    for name, path in logs.items():
        for event in read_events(path):
            if event["ev"] != "rec":
                lines.append(f"{event['t']:.3f} {name} {json.dumps(event)}")
    lines.sort()
    return "\n".join(lines[-80:])


def step_with_time(message):
    step(f"{message} (t={time.monotonic():.3f})")


def poll_until(predicate, what, timeout_s, describe):
    """Like check.wait_until, but a timeout's message carries `describe()` (the members'
    event logs), so a hung rebalance explains itself."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    fail(f"timed out after {timeout_s}s waiting for {what}\n{describe()}")
