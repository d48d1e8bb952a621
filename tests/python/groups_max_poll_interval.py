"""max.poll.interval.ms with two confluent-kafka members: one stops polling (stuck in its
"processing") for longer than its 10 s max.poll.interval.ms while librdkafka keeps
heartbeating for it. The coordinator must keep it in the group for as long as it heartbeats
(its 6 s session must not expire) and, once the client gives up on it and leaves, hand its
partitions to the other member, which resumes them at the committed offsets and consumes
everything.

Usage: python groups_max_poll_interval.py BOOTSTRAP
"""

import os
import signal
import tempfile

from check import bootstrap_from_argv, expect, step
from groups_common import (
    admin_for,
    commits,
    create_topic,
    current_assignment,
    expect_complete,
    expect_contiguous,
    expect_resumes_at_commits,
    kill_all,
    member_output_tail,
    ownership,
    poll_until,
    produce_sequenced,
    read_events,
    spawn_member,
    stop_members,
    summarize,
    wait_for_commits,
)

TOPIC = "max-poll-interval"
GROUP = "max-poll-interval-group"
PARTITIONS = 4
PER_PARTITION = 5_000
MAX_POLL_INTERVAL_MS = 10_000
# Longer than the latest takeover, so a hand-over caused by the stuck member's own close()
# after the stall cannot pass for one caused by max.poll.interval.ms.
STALL_S = 20
# The heartbeats keep the stuck member in until the client's own poll timer fires (it checks
# about once a second); then a LeaveGroup, a rejoin by the steady member and a sync.
EARLIEST_TAKEOVER_S = MAX_POLL_INTERVAL_MS / 1000 - 1.5
LATEST_TAKEOVER_S = MAX_POLL_INTERVAL_MS / 1000 + 5.0


def settled(logs):
    assignments = [current_assignment(read_events(path)) for path in logs.values()]
    if any(not owned for owned in assignments):
        return False
    if sorted(p for owned in assignments for p in owned) != list(range(PARTITIONS)):
        return False
    events = read_events(logs["stuck"])
    last_assign = max(i for i, e in enumerate(events) if e["ev"] == "assign")
    return any(e["ev"] == "commit" for e in events[last_assign:])


def main():
    bootstrap = bootstrap_from_argv()
    admin = admin_for(bootstrap)
    create_topic(admin, TOPIC, PARTITIONS)
    produce_sequenced(bootstrap, TOPIC, PARTITIONS, PER_PARTITION)

    workdir = tempfile.mkdtemp(prefix="groups-max-poll-")
    logs = {name: os.path.join(workdir, f"{name}.log") for name in ("stuck", "steady")}
    members = {}

    def describe():
        outputs = "\n".join(f"--- {n} output ---\n{member_output_tail(p)}" for n, p in logs.items())
        return f"member events:\n{summarize(logs)}\n{outputs}"

    try:
        members["stuck"] = spawn_member(
            bootstrap, GROUP, TOPIC, logs["stuck"], client_id="stuck", commit_every=300,
            batch_delay_ms=50, stall_s=STALL_S, max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        )
        members["steady"] = spawn_member(
            bootstrap, GROUP, TOPIC, logs["steady"],
            client_id="steady", commit_every=300, batch_delay_ms=50,
        )
        poll_until(lambda: settled(logs), "both members consuming", 30, describe)
        stuck_parts = current_assignment(read_events(logs["stuck"]))

        step(f"the member holding {sorted(stuck_parts)} stops polling")
        members["stuck"].send_signal(signal.SIGUSR1)
        stall = poll_until(
            lambda: next((e for e in read_events(logs["stuck"]) if e["ev"] == "stall"), None),
            "the stall", 10, describe,
        )

        def steady_took_all():
            events = read_events(logs["steady"])
            if current_assignment(events) != set(range(PARTITIONS)):
                return None
            return max(e["t"] for e in events if e["ev"] == "assign")

        taken_at = poll_until(steady_took_all, "the steady member holding every partition", 30, describe)
        delay = taken_at - stall["t"]
        step(f"the steady member took every partition {delay:.2f}s after the other stopped polling")
        expect(
            EARLIEST_TAKEOVER_S <= delay <= LATEST_TAKEOVER_S,
            f"takeover {delay:.2f}s after the stall, "
            f"expected {EARLIEST_TAKEOVER_S}..{LATEST_TAKEOVER_S}s "
            f"(too early: the coordinator expired a member that still heartbeated; "
            f"too late: it missed the client's LeaveGroup)\n{describe()}",
        )
        wait_for_commits(admin, GROUP, TOPIC, PARTITIONS, PER_PARTITION, 45, describe)
        stop_members([members["steady"]])
        members["stuck"].wait(timeout=STALL_S + 30)
        code = members["stuck"].returncode
        expect(code == 0, f"stuck member exited {code}\n{describe()}")
    finally:
        kill_all(members.values())

    events = {name: read_events(path) for name, path in logs.items()}
    stall_end = next((e["t"] for e in events["stuck"] if e["ev"] == "stall-end"), None)
    expect(
        stall_end is not None and taken_at < stall_end,
        f"the takeover at {taken_at:.3f} did not precede the stuck member's wake-up at {stall_end}",
    )
    stuck_records_after_stall = [
        e for e in events["stuck"][events["stuck"].index(stall):] if e["ev"] == "rec"
    ]
    expect(not stuck_records_after_stall, "the stuck member processed records after stalling")
    intervals = ownership("stuck", events["stuck"]) + ownership("steady", events["steady"])
    all_commits = commits("stuck", events["stuck"]) + commits("steady", events["steady"])
    for interval in intervals:
        expect_contiguous(interval)
    expect_resumes_at_commits([i for i in intervals if i.member == "steady"], all_commits)
    expect_complete(intervals, PARTITIONS, PER_PARTITION)
    print("OK")


if __name__ == "__main__":
    main()
