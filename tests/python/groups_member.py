"""One consumer-group member (confluent-kafka, eager assignor) as its own process, for the
group scripts to start, kill and inspect.

It subscribes, processes records (logging each), commits synchronously after every
--commit-every records and when idle, commits what it processed of a partition before giving
it up on revocation, and logs every assignment, revocation and commit to LOG_PATH as JSON lines
(see groups_common.py). SIGTERM makes it commit, close (leave the group) and exit 0.
SIGUSR1 makes it stop polling for --stall-s seconds, as an application stuck in processing
would; afterwards it closes without committing (its generation is stale by then) and exits.

Usage: python groups_member.py BOOTSTRAP GROUP TOPIC LOG_PATH [--option value ...]
"""

import argparse
import json
import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from groups_common import HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS, parse_value


class EventLog:
    """JSON lines with a monotonic timestamp. Record lines are buffered and written per batch;
    everything else is flushed at once, so a SIGKILL loses at most unflushed records, which
    then count as never processed."""

    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the process
        self.buffered = []

    def record(self, **fields):
        self.buffered.append(json.dumps({"t": time.monotonic(), "ev": "rec", **fields}))

    def event(self, kind, **fields):
        self.flush_records()
        self.file.write(json.dumps({"t": time.monotonic(), "ev": kind, **fields}) + "\n")
        self.file.flush()

    def flush_records(self):
        if self.buffered:
            self.file.write("\n".join(self.buffered) + "\n")
            self.buffered = []
            self.file.flush()


class Member:
    def __init__(self, args):
        self.args = args
        self.log = EventLog(args.log_path)
        self.parent = os.getppid()
        self.pending = {}  # partition -> offset after the last processed record, not committed
        self.owned = set()
        self.processed = 0
        self.since_commit = 0
        self.commits_allowed = True
        self.stop = False
        self.stall_requested = False
        self.consumer = Consumer(
            {
                "bootstrap.servers": args.bootstrap,
                "group.id": args.group,
                "client.id": args.client_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
                "max.poll.interval.ms": args.max_poll_interval_ms,
            }
        )

    def exit_if_orphaned(self):
        """A member whose script died (say, killed by the test's timeout) must not run on."""
        if os.getppid() != self.parent:
            os._exit(3)

    def commit(self, partitions=None):
        offsets = {
            p: o for p, o in self.pending.items() if partitions is None or p in partitions
        }
        if not offsets or not self.commits_allowed:
            return
        self.log.event("commit-begin", offs=offsets)
        request = [TopicPartition(self.args.topic, p, o) for p, o in sorted(offsets.items())]
        try:
            answered = self.consumer.commit(offsets=request, asynchronous=False)
        except KafkaException as error:
            self.log.event("commit-failed", err=str(error))
            return
        errors = [str(tp.error) for tp in answered or [] if tp.error is not None]
        if errors:
            self.log.event("commit-failed", err=errors)
            return
        self.log.event("commit", offs=offsets)
        for partition, offset in offsets.items():
            if self.pending.get(partition) == offset:
                del self.pending[partition]
        self.since_commit = 0

    def on_assign(self, _consumer, partitions):
        self.owned = {tp.partition for tp in partitions}
        self.log.event("assign", parts=sorted(self.owned))

    def on_revoke(self, _consumer, partitions):
        revoked = {tp.partition for tp in partitions}
        self.commit(revoked)
        for partition in revoked:
            self.pending.pop(partition, None)
        self.owned -= revoked
        self.log.event("revoke", parts=sorted(revoked))

    def on_lost(self, _consumer, partitions):
        lost = {tp.partition for tp in partitions}
        for partition in lost:
            self.pending.pop(partition, None)
        self.owned -= lost
        self.log.event("lost", parts=sorted(lost))

    def process(self, message):
        partition = message.partition()
        if partition not in self.owned:
            # Fetched before a revocation; the application must not process it.
            self.log.event("skip", p=partition, o=message.offset())
            return
        value_partition, seq = parse_value(message.value())
        self.log.record(p=partition, o=message.offset(), vp=value_partition, s=seq)
        self.pending[partition] = message.offset() + 1
        self.processed += 1
        self.since_commit += 1
        if self.args.hang_after and self.processed == self.args.hang_after:
            self.hang()

    def hang(self):
        """Blocks mid-batch, after processing but before committing, until SIGKILLed."""
        self.log.event("hang", pending=self.pending)
        while True:
            self.exit_if_orphaned()
            time.sleep(0.1)

    def stall(self):
        self.log.event("stall", pending=self.pending)
        deadline = time.monotonic() + self.args.stall_s
        while time.monotonic() < deadline:
            self.exit_if_orphaned()
            time.sleep(0.1)
        self.log.event("stall-end")
        self.commits_allowed = False
        self.consumer.close()
        self.log.event("closed")
        sys.exit(0)

    def run(self):
        self.log.event("start", pid=os.getpid())
        self.consumer.subscribe(
            [self.args.topic], on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost
        )
        while not self.stop:
            self.exit_if_orphaned()
            if self.stall_requested:
                self.stall()
            messages = self.consumer.consume(num_messages=self.args.batch, timeout=0.2)
            for message in messages:
                if message.error() is not None:
                    self.log.event("error", err=str(message.error()))
                    continue
                self.process(message)
            self.log.flush_records()
            if self.since_commit >= self.args.commit_every or (not messages and self.pending):
                self.commit()
            if messages and self.args.batch_delay_ms:
                time.sleep(self.args.batch_delay_ms / 1000)
        self.commit()
        self.consumer.close()
        self.log.event("closed")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("group")
    parser.add_argument("topic")
    parser.add_argument("log_path")
    parser.add_argument("--client-id", default="groups-member")
    parser.add_argument("--commit-every", type=int, default=500)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batch-delay-ms", type=int, default=0)
    parser.add_argument("--hang-after", type=int, default=0)
    parser.add_argument("--stall-s", type=float, default=0)
    parser.add_argument("--max-poll-interval-ms", type=int, default=300000)
    member = Member(parser.parse_args())

    def request_stop(_signum, _frame):
        member.stop = True

    def request_stall(_signum, _frame):
        member.stall_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGUSR1, request_stall)
    member.run()


if __name__ == "__main__":
    main()
