"""Three confluent-kafka members share a 6-partition topic; one is SIGKILLed mid-stream.

Checks, from the members' own event logs (see groups_common.py):
  (a) a partition never has two owners at once, the killed member owning its partitions until
      the moment it died;
  (b) the killed member's partitions reach the survivors once its session times out: not
      before (it gave no sign of leaving), and not much after;
  (c) all 60,000 records are processed at least once, each partition without a gap;
  (d) every ownership starts at the offset last committed, so the records the killed member
      processed after its last commit are processed again by a survivor.

Usage: python groups_rebalance_on_kill.py BOOTSTRAP
"""

import os
import tempfile

from check import bootstrap_from_argv, expect, step
from groups_common import (
    HEARTBEAT_INTERVAL_MS,
    SESSION_TIMEOUT_MS,
    admin_for,
    commits,
    create_topic,
    current_assignment,
    expect_complete,
    expect_contiguous,
    expect_no_overlap,
    expect_resumes_at_commits,
    kill9,
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

TOPIC = "kill-rebalance"
GROUP = "kill-rebalance-group"
PARTITIONS = 6
PER_PARTITION = 10_000
COMMIT_EVERY = 500
VICTIM = "m0"

# A session can only expire a heartbeat interval before the kill at the earliest; a second
# more covers scheduling on a loaded machine.
EARLIEST_TAKEOVER_S = (SESSION_TIMEOUT_MS - HEARTBEAT_INTERVAL_MS) / 1000 - 1.0
# Expiry, then a heartbeat for the survivors to hear of the rebalance, a rejoin and a sync.
LATEST_TAKEOVER_S = SESSION_TIMEOUT_MS / 1000 + 6.0


def victim_ready(logs):
    """The group is settled (every member holds partitions, together all of them) and the
    victim is mid-stream: it committed in its current assignment and has processed at least a
    batch since, with its next commit still a few batches away."""
    assignments = [current_assignment(read_events(path)) for path in logs.values()]
    if any(not owned for owned in assignments):
        return False
    if sorted(p for owned in assignments for p in owned) != list(range(PARTITIONS)):
        return False
    events = read_events(logs[VICTIM])
    last_assign = max(i for i, e in enumerate(events) if e["ev"] == "assign")
    since_assign = events[last_assign:]
    commit_indexes = [i for i, e in enumerate(since_assign) if e["ev"] == "commit"]
    if len(commit_indexes) < 2:
        return False
    after_commit = since_assign[commit_indexes[-1] + 1 :]
    if any(e["ev"] != "rec" for e in after_commit):
        return False
    return 100 <= len(after_commit) <= COMMIT_EVERY - 200


def main():
    bootstrap = bootstrap_from_argv()
    admin = admin_for(bootstrap)
    create_topic(admin, TOPIC, PARTITIONS)
    step(f"produce {PARTITIONS * PER_PARTITION} records")
    produce_sequenced(bootstrap, TOPIC, PARTITIONS, PER_PARTITION)

    workdir = tempfile.mkdtemp(prefix="groups-kill-")
    logs = {f"m{i}": os.path.join(workdir, f"m{i}.log") for i in range(3)}
    members = {}

    def describe():
        outputs = "\n".join(f"--- {n} output ---\n{member_output_tail(p)}" for n, p in logs.items())
        return f"member events:\n{summarize(logs)}\n{outputs}"

    try:
        step("start three members")
        for name, path in logs.items():
            members[name] = spawn_member(
                bootstrap, GROUP, TOPIC, path,
                client_id=name, commit_every=COMMIT_EVERY, batch=100, batch_delay_ms=50,
            )
        poll_until(
            lambda: victim_ready(logs), "a settled group with the victim mid-stream", 30, describe
        )
        victim_parts = current_assignment(read_events(logs[VICTIM]))
        killed_at = kill9(members[VICTIM])
        step(f"SIGKILLed {VICTIM} holding {sorted(victim_parts)} at t={killed_at:.3f}")

        wait_for_commits(admin, GROUP, TOPIC, PARTITIONS, PER_PARTITION, 45, describe)
        step("everything committed; stop the survivors")
        stop_members([p for n, p in members.items() if n != VICTIM])
    finally:
        kill_all(members.values())

    events = {name: read_events(path) for name, path in logs.items()}
    intervals = []
    for name, member_events in events.items():
        intervals += ownership(name, member_events, killed_at if name == VICTIM else None)
    all_commits = [c for name, member_events in events.items() for c in commits(name, member_events)]

    step("(a) one owner per partition at a time")
    expect_no_overlap(intervals)
    for interval in intervals:
        expect_contiguous(interval)

    step("(b) the victim's partitions move to survivors after its session times out")
    for partition in sorted(victim_parts):
        takeovers = [
            i.start for i in intervals
            if i.partition == partition and i.member != VICTIM and i.start > killed_at
        ]
        expect(takeovers, f"p{partition} never reached a survivor\n{describe()}")
        delay = min(takeovers) - killed_at
        step(f"p{partition} reassigned {delay:.2f}s after the kill")
        expect(
            EARLIEST_TAKEOVER_S <= delay <= LATEST_TAKEOVER_S,
            f"p{partition} reassigned {delay:.2f}s after the kill, expected "
            f"{EARLIEST_TAKEOVER_S:.1f}..{LATEST_TAKEOVER_S:.1f}s\n{describe()}",
        )

    step("(c) every record processed, no gap")
    expect_complete(intervals, PARTITIONS, PER_PARTITION)

    step("(d) every ownership resumes at the committed offset")
    expect_resumes_at_commits(intervals, all_commits)
    reprocessed = 0
    for partition in victim_parts:
        victim_offsets = [
            o for i in intervals if i.member == VICTIM and i.partition == partition for o in i.offsets
        ]
        later = {
            o for i in intervals if i.partition == partition and i.start > killed_at for o in i.offsets
        }
        last_commit = max(
            (offs[partition] for _, offs, _ in commits(VICTIM, events[VICTIM]) if partition in offs),
            default=0,
        )
        redo = [o for o in victim_offsets if o >= last_commit]
        missing = [o for o in redo if o not in later]
        expect(
            not missing,
            f"p{partition}: {len(missing)} records past the victim's last commit not reprocessed",
        )
        reprocessed += len(redo)
    step(f"{reprocessed} records processed by the victim after its last commit were processed again")
    expect(reprocessed > 0, "the victim was killed with nothing uncommitted, so (d) proved nothing")
    print("OK")


if __name__ == "__main__":
    main()
