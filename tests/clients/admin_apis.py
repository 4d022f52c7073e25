"""Kafka's admin APIs through kafka-python 3's KafkaAdminClient, one scenario
per run, for agent/tests/admin_apis.rs (which starts the agents, kills them
and checks what the scenarios print against the metadata file).

Runs on the interpreter of the kafka-python 3 virtual environment that
scripts/install-deps.sh makes (kafka-python 2.2, which the other client
tests pin, has no DescribeTopicPartitions, reassignment or quorum calls).

Usage: admin_apis.py BOOTSTRAP SCENARIO [ARGS...]

Scenarios print `KEY value...` lines and end with `OK SCENARIO`:

- setup TOPIC PARTITIONS RECORDS: creates the topic and produces RECORDS
  records round-robin over its partitions (acks=all).
- describe TOPIC...: DescribeTopicPartitions, paged 4 partitions at a time;
  `PARTITION topic index leader epoch replicas isr` and `PAGES n`.
- log_dirs: DescribeLogDirs to every broker;
  `LOGDIR broker dir topic partition size`.
- reassign TOPIC PARTITION BROKER: AlterPartitionReassignments to [BROKER],
  then ListPartitionReassignments until it is no longer listed;
  `ALTER code`, `LISTED n` (times seen listed), `LEADER broker` (from
  DescribeTopicPartitions once done).
- reassign_errors TOPIC BROKER: the refusals (BROKER is a registered
  agent); `REFUSED case code`.
- cancel TOPIC PARTITION: `CANCEL code`.
- elect TYPE TOPIC PARTITION...: ElectLeaders; `ELECT topic partition code`.
- quorum: DescribeQuorum; `QUORUM error-name message`.
- version: `VERSION major.minor` as the client infers it from ApiVersions.
- group MEMBERS TOPIC GROUP: MEMBERS consumers in one group with
  session_timeout_ms=3000 and request_timeout_ms=4000; `STABLE seconds`
  once every member has an assignment, the assignments split the topic's
  partitions exactly and stayed unchanged for 3 s; then one member closes
  and `RESTABLE seconds` once the others split them again.
"""

import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaConnectionError


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60000)


def setup(bootstrap, topic, partitions, records):
    client = admin(bootstrap)
    client.create_topics([NewTopic(topic, int(partitions), 1)])
    client.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    partitions = int(partitions)
    for i in range(int(records)):
        producer.send(topic, value=b"x" * 100 + str(i).encode(), partition=i % partitions)
    producer.flush()
    producer.close()
    print("PRODUCED", records)


def describe(bootstrap, *topics):
    client = admin(bootstrap)
    cursor = None
    pages = 0
    while True:
        page = client.describe_topic_partitions(list(topics), response_partition_limit=4, cursor=cursor)
        pages += 1
        for topic in page["topics"]:
            if topic["error_code"] != 0:
                print("TOPIC_ERROR", topic["name"], topic["error_code"])
            for p in topic["partitions"]:
                print("PARTITION", topic["name"], p["partition_index"], p["leader_id"], p["leader_epoch"],
                      ",".join(map(str, p["replica_nodes"])), ",".join(map(str, p["isr_nodes"])))
        cursor = page["next_cursor"]
        if cursor is None:
            break
        if pages > 100:
            raise SystemExit("the cursor never ends")
    print("PAGES", pages)
    client.close()


def log_dirs(bootstrap):
    client = admin(bootstrap)
    for broker in client.describe_log_dirs():
        for result in broker["log_dirs"]:
            for topic in result["topics"]:
                for p in topic["partitions"]:
                    print("LOGDIR", broker["broker"], result["log_dir"], topic["name"],
                          p["partition_index"], p["partition_size"])
    client.close()


def leader_of(client, topic, partition):
    page = client.describe_topic_partitions([topic])
    for p in page["topics"][0]["partitions"]:
        if p["partition_index"] == partition:
            return p["leader_id"]
    raise SystemExit(f"no partition {partition} in {topic}")


def reassign(bootstrap, topic, partition, broker):
    partition, broker = int(partition), int(broker)
    client = admin(bootstrap)
    tp = TopicPartition(topic, partition)
    result = client.alter_partition_reassignments({tp: [broker]})
    print("ALTER", 0 if result[tp] is None else result[tp].errno)
    listed = 0
    deadline = time.time() + 60
    while time.time() < deadline:
        ongoing = client.list_partition_reassignments()
        if tp not in ongoing:
            break
        listed += 1
        entry = ongoing[tp]
        if entry["adding_replicas"] != [broker]:
            raise SystemExit(f"listed as adding {entry['adding_replicas']}, not [{broker}]")
        time.sleep(0.1)
    else:
        raise SystemExit("the reassignment stayed listed")
    print("LISTED", listed)
    print("LEADER", leader_of(client, topic, partition))
    client.close()


def code_of(result, tp):
    return 0 if result[tp] is None else result[tp].errno


def reassign_errors(bootstrap, topic, broker):
    broker = int(broker)
    client = admin(bootstrap)
    tp = TopicPartition(topic, 0)
    cases = [
        ("unknown_broker", {tp: [broker, 999]}),
        ("twice", {tp: [broker, broker]}),
        ("cancel_none", {TopicPartition(topic, 1): None}),
        ("unknown_partition", {TopicPartition(topic, 9999): [broker]}),
        ("unknown_topic", {TopicPartition(topic + "-nope", 0): [broker]}),
    ]
    for name, reassignment in cases:
        result = client.alter_partition_reassignments(reassignment)
        [key] = reassignment.keys()
        print("REFUSED", name, code_of(result, key))
    client.close()


def cancel(bootstrap, topic, partition):
    client = admin(bootstrap)
    tp = TopicPartition(topic, int(partition))
    result = client.alter_partition_reassignments({tp: None})
    print("CANCEL", code_of(result, tp))
    client.close()


def elect(bootstrap, election_type, topic, *partitions):
    client = admin(bootstrap)
    # Right after an agent is killed the client may still pick it (the others
    # name it until its lease lapses): retry as an operator would.
    deadline = time.time() + 30
    while True:
        try:
            response = client.elect_leaders(int(election_type), {topic: [int(p) for p in partitions]},
                                            timeout_ms=30000, raise_errors=False)
            break
        except KafkaConnectionError as error:
            if time.time() > deadline:
                raise
            print("RETRY", error)
            time.sleep(0.5)
    for result in response.replica_election_results:
        for p in result.partition_result:
            print("ELECT", result.topic, p.partition_id, p.error_code)
    client.close()


def quorum(bootstrap):
    client = admin(bootstrap)
    try:
        answer = client.describe_metadata_quorum()
    except Exception as error:  # the refusal is what is expected
        print("QUORUM", type(error).__name__, str(error).replace("\n", " "))
    else:
        raise SystemExit(f"DescribeQuorum was answered: {answer}")
    client.close()


def version(bootstrap):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    inferred = consumer.config["api_version"]
    print("VERSION", ".".join(map(str, inferred)))
    consumer.close()


def group(bootstrap, members, topic, group_id):
    members = int(members)
    partitions = None
    assignments = {}
    stop = {}
    lock = threading.Lock()

    def run(i):
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group_id,
                                 session_timeout_ms=3000, request_timeout_ms=4000,
                                 heartbeat_interval_ms=1000, auto_offset_reset="earliest")
        while not stop.get(i) and not stop.get("all"):
            consumer.poll(timeout_ms=100)
            with lock:
                assignments[i] = frozenset(tp.partition for tp in consumer.assignment())
        consumer.close()
        with lock:
            assignments.pop(i, None)

    client = admin(bootstrap)
    partitions = frozenset(
        p["partition_index"] for p in client.describe_topic_partitions([topic])["topics"][0]["partitions"])
    client.close()

    def wait_stable(expected_members, label, started):
        seen, since = None, None
        deadline = started + 120
        while time.time() < deadline:
            with lock:
                current = {i: a for i, a in assignments.items()}
            split = (len(current) == expected_members
                     and all(current.values())
                     and sum(len(a) for a in current.values()) == len(partitions)
                     and frozenset().union(*current.values()) == partitions)
            if split and current == seen:
                if time.time() - since >= 3:
                    print(label, round(since - started, 2))
                    return
            elif split:
                seen, since = current, time.time()
            else:
                seen, since = None, None
            time.sleep(0.05)
        raise SystemExit(f"{label}: never stable; last assignments {assignments}")

    started = time.time()
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(members)]
    for t in threads:
        t.start()
    wait_stable(members, "STABLE", started)
    leaving = time.time()
    stop[0] = True
    threads[0].join(30)
    wait_stable(members - 1, "RESTABLE", leaving)
    stop["all"] = True
    for t in threads:
        t.join(30)


SCENARIOS = {
    "setup": setup, "describe": describe, "log_dirs": log_dirs, "reassign": reassign,
    "reassign_errors": reassign_errors, "cancel": cancel, "elect": elect, "quorum": quorum,
    "version": version, "group": group,
}


def main():
    bootstrap, scenario, *args = sys.argv[1:]
    SCENARIOS[scenario](bootstrap, *args)
    print("OK", scenario, flush=True)


if __name__ == "__main__":
    main()
