"""confluent-kafka's AdminClient against one node of a Spate cluster: create a replicated topic
through that node alone, then describe the cluster and the topic the way an operator's tool
would (describe_cluster, list_topics, describe_topics).

Usage: python cluster_admin.py BOOTSTRAP TOPIC PARTITIONS REPLICATION_FACTOR NODES
Checks that describe_cluster lists NODES nodes and a controller among them, and that
list_topics and describe_topics both show PARTITIONS partitions of REPLICATION_FACTOR distinct
replicas, each led by a member of its ISR. Prints one JSON line for the Rust test to compare
with the nodes' Metadata answers:
{"controller": ID, "nodes": [IDS], "partitions": {"0": {"leader": ID, "replicas": [..], "isr": [..]}}}
Exits non-zero with a FAILED line on the first thing that is wrong.
"""

import json
import sys

from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from check import expect, fail, step, wait_until

TIMEOUT_S = 30


def main():
    if len(sys.argv) != 6:
        fail(f"usage: {sys.argv[0]} BOOTSTRAP TOPIC PARTITIONS REPLICATION_FACTOR NODES")
    bootstrap, topic = sys.argv[1], sys.argv[2]
    partitions, replication_factor, nodes = (int(arg) for arg in sys.argv[3:6])
    admin = AdminClient({"bootstrap.servers": bootstrap})

    step(f"create {topic}: {partitions} partitions, replication factor {replication_factor}")
    futures = admin.create_topics([NewTopic(topic, partitions, replication_factor)])
    try:
        futures[topic].result(timeout=TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - any failure is the test's failure
        fail(f"create {topic}: {error!r}")

    def listed():
        found = admin.list_topics(topic=topic, timeout=TIMEOUT_S).topics.get(topic)
        if found is None or found.error is not None or len(found.partitions) != partitions:
            return None
        return found

    step("list_topics: every partition has its replicas and a leader")
    found = wait_until(listed, f"{topic} with {partitions} partitions in list_topics")
    for index, partition in found.partitions.items():
        expect(
            len(partition.replicas) == replication_factor
            and len(set(partition.replicas)) == replication_factor,
            f"list_topics partition {index}: replicas {partition.replicas}",
        )
        expect(partition.leader in partition.isrs, f"list_topics partition {index}: {partition}")

    step("describe_cluster")
    cluster = admin.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    node_ids = sorted(node.id for node in cluster.nodes)
    expect(len(node_ids) == nodes, f"describe_cluster lists nodes {node_ids}, want {nodes}")
    expect(cluster.controller is not None, "describe_cluster names no controller")
    expect(
        cluster.controller.id in node_ids,
        f"controller {cluster.controller.id} is not one of the nodes {node_ids}",
    )
    expect(cluster.cluster_id, f"describe_cluster has no cluster id: {cluster}")

    step("describe_topics")
    described = admin.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT_S)
    try:
        description = described[topic].result(timeout=TIMEOUT_S)
    except Exception as error:  # noqa: BLE001
        fail(f"describe_topics {topic}: {error!r}")
    expect(
        len(description.partitions) == partitions,
        f"describe_topics shows {len(description.partitions)} partitions",
    )
    summary = {}
    for partition in description.partitions:
        replicas = [node.id for node in partition.replicas]
        isr = [node.id for node in partition.isr]
        expect(
            len(set(replicas)) == replication_factor,
            f"describe_topics partition {partition.id}: replicas {replicas}",
        )
        expect(partition.leader is not None, f"partition {partition.id} has no leader")
        expect(partition.leader.id in isr, f"partition {partition.id}: leader outside {isr}")
        summary[str(partition.id)] = {
            "leader": partition.leader.id,
            "replicas": replicas,
            "isr": isr,
        }

    print(
        json.dumps(
            {"controller": cluster.controller.id, "nodes": node_ids, "partitions": summary}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
