"""confluent-kafka's AdminClient.elect_leaders (KIP-460) against a Spate cluster: a preferred
leader election for every partition of a topic, as an operator's tool would run it.

Usage: python cluster_elect_leaders.py BOOTSTRAP TOPIC PARTITIONS
Prints one JSON line mapping each partition to null (elected) or to the error the client
reported for it: {"0": null, "1": {"name": "ELECTION_NOT_NEEDED", "message": "..."}}.
Exits non-zero with a FAILED line if the request as a whole fails or a partition is missing.
"""

import json
import sys

from confluent_kafka import ElectionType, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from check import expect, fail, step

TIMEOUT_S = 30


def main():
    if len(sys.argv) != 4:
        fail(f"usage: {sys.argv[0]} BOOTSTRAP TOPIC PARTITIONS")
    bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = [TopicPartition(topic, p) for p in range(partitions)]
    step(f"elect_leaders(PREFERRED) for {topic} partitions 0..{partitions - 1}")
    # No request_timeout/operation_timeout: confluent-kafka 2.16's C binding refuses either
    # keyword ("more argument specifiers than keyword list entries"); the defaults
    # (socket.timeout.ms, 60 s) are longer than the election takes.
    future = admin.elect_leaders(ElectionType.PREFERRED, wanted)
    try:
        results = future.result(timeout=TIMEOUT_S * 2)
    except KafkaException as error:
        fail(f"elect_leaders failed as a whole: {error!r}")
    answered = {}
    for tp, error in results.items():
        expect(tp.topic == topic, f"elect_leaders answered for another topic: {tp}")
        if error is None:
            answered[str(tp.partition)] = None
        else:
            # A KafkaError, or (in other confluent-kafka versions) a KafkaException wrapping one.
            kafka_error = error.args[0] if isinstance(error, KafkaException) else error
            answered[str(tp.partition)] = {
                "name": kafka_error.name(),
                "message": kafka_error.str(),
            }
    expect(
        sorted(answered) == sorted(str(p) for p in range(partitions)),
        f"elect_leaders answered partitions {sorted(answered)}, asked for 0..{partitions - 1}",
    )
    print(json.dumps(answered), flush=True)


if __name__ == "__main__":
    main()
