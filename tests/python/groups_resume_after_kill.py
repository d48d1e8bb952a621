"""At-least-once across a crash: a confluent-kafka member that commits after processing is
SIGKILLed in the middle of a batch (records processed, not yet committed); a new member of the
same group must start every partition exactly at the committed offset, so the uncommitted
records are processed again and nothing is lost.

The dead member's session (6 s) must expire before the new member gets its partitions; its
max.poll.interval.ms (the rebalance timeout it joined with) is far longer, so the time the
hand-over takes shows which of the two the coordinator waited for.

Usage: python groups_resume_after_kill.py BOOTSTRAP
"""

import os
import tempfile
import time

from confluent_kafka import Consumer

from check import bootstrap_from_argv, expect, fail, step
from groups_common import (
    HEARTBEAT_INTERVAL_MS,
    OFFSET_INVALID,
    SESSION_TIMEOUT_MS,
    admin_for,
    commits,
    committed_offsets,
    create_topic,
    kill9,
    kill_all,
    member_output_tail,
    ownership,
    parse_value,
    poll_until,
    produce_sequenced,
    read_events,
    spawn_member,
    summarize,
)

TOPIC = "resume-after-kill"
GROUP = "resume-after-kill-group"
PARTITIONS = 3
PER_PARTITION = 2_000
COMMIT_EVERY = 300
HANG_AFTER = 1_050
DEAD_MEMBER_REBALANCE_TIMEOUT_MS = 25_000
LATEST_HANDOVER_S = SESSION_TIMEOUT_MS / 1000 + 8.0


def main():
    bootstrap = bootstrap_from_argv()
    admin = admin_for(bootstrap)
    create_topic(admin, TOPIC, PARTITIONS)
    produce_sequenced(bootstrap, TOPIC, PARTITIONS, PER_PARTITION)

    log = os.path.join(tempfile.mkdtemp(prefix="groups-resume-"), "first.log")

    def describe():
        return f"{summarize({'first': log})}\n--- output ---\n{member_output_tail(log)}"

    step("first member processes, commits every 300, and hangs mid-batch")
    first = spawn_member(
        bootstrap, GROUP, TOPIC, log,
        client_id="first", commit_every=COMMIT_EVERY, batch=100, hang_after=HANG_AFTER,
        max_poll_interval_ms=DEAD_MEMBER_REBALANCE_TIMEOUT_MS,
    )
    try:
        poll_until(lambda: any(e["ev"] == "hang" for e in read_events(log)), "the hang", 30, describe)
        killed_at = kill9(first)
    finally:
        kill_all([first])
    events = read_events(log)
    processed = {p: set() for p in range(PARTITIONS)}
    for interval in ownership("first", events, killed_at):
        processed[interval.partition].update(interval.offsets)
    logged = {}
    for _, offsets, completed in commits("first", events):
        expect(completed, f"the first member died inside a commit: {offsets}")
        logged.update(offsets)

    step("the coordinator holds what the dead member last committed")
    committed = committed_offsets(admin, GROUP, TOPIC, PARTITIONS)
    for partition in range(PARTITIONS):
        expected = logged.get(partition, OFFSET_INVALID)
        expect(committed[partition] == expected, f"p{partition}: committed {committed}, logged {logged}")
    uncommitted = {
        p: sorted(o for o in processed[p] if o >= max(committed[p], 0)) for p in range(PARTITIONS)
    }
    expect(
        any(uncommitted.values()),
        f"the member hung with nothing uncommitted; processed up to "
        f"{[max(s, default=-1) for s in processed.values()]}",
    )
    step(f"processed but uncommitted at the kill: { {p: len(o) for p, o in uncommitted.items()} }")

    step("a new member resumes at the committed offsets")
    second = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "client.id": "second",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        }
    )
    assigned_at = []
    second.subscribe([TOPIC], on_assign=lambda _c, parts: assigned_at.append(time.monotonic()))
    first_offsets = {}
    seen = {p: set() for p in range(PARTITIONS)}
    deadline = time.monotonic() + 45
    while any(len(seen[p]) < PER_PARTITION - max(committed[p], 0) for p in range(PARTITIONS)):
        if time.monotonic() > deadline:
            counts = {p: len(s) for p, s in seen.items()}
            fail(f"second member stalled: first offsets {first_offsets}, counts {counts}")
        for message in second.consume(num_messages=500, timeout=0.5):
            expect(message.error() is None, f"consume error: {message.error()}")
            partition, offset = message.partition(), message.offset()
            expect(
                parse_value(message.value()) == (partition, offset),
                f"p{partition}@{offset} value {message.value()}",
            )
            first_offsets.setdefault(partition, offset)
            seen[partition].add(offset)
    second.commit(asynchronous=False)
    second.close()

    handover = assigned_at[0] - killed_at if assigned_at else None
    step(f"second member assigned {handover:.2f}s after the kill")
    expect(
        handover <= LATEST_HANDOVER_S,
        f"hand-over took {handover:.2f}s: the coordinator waited for more than the dead member's "
        f"{SESSION_TIMEOUT_MS} ms session "
        f"(its rebalance timeout is {DEAD_MEMBER_REBALANCE_TIMEOUT_MS} ms)",
    )
    for partition in range(PARTITIONS):
        start = max(committed[partition], 0)
        expect(
            first_offsets.get(partition) == start,
            f"p{partition}: the new member began at {first_offsets.get(partition)}, "
            f"committed was {start}",
        )
        lost = sorted(set(range(PER_PARTITION)) - processed[partition] - seen[partition])
        expect(not lost, f"p{partition}: {len(lost)} records never processed, first {lost[:10]}")
        expect(
            set(uncommitted[partition]) <= seen[partition],
            f"p{partition}: uncommitted records were not processed again",
        )
    final = committed_offsets(admin, GROUP, TOPIC, PARTITIONS)
    expect(all(final[p] == PER_PARTITION for p in range(PARTITIONS)), f"final commit: {final}")
    print("OK")


if __name__ == "__main__":
    main()
