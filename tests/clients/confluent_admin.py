"""Topic and cluster administration through confluent-kafka's AdminClient
(librdkafka) against a Fjord agent.

Usage:
    confluent_admin.py HOST:PORT setup    create, alter, describe, grow, trim
    confluent_admin.py HOST:PORT verify   after an agent restart: what setup
                                          changed is still there
    confluent_admin.py HOST:PORT broker-defaults
                                          against an agent started with
                                          --log-retention-ms 60000
                                          --log-retention-bytes 1048576

Exits non-zero on the first mismatch, printing what it saw.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

ORDERS = "admin-orders"
RESHAPED = "admin-reshaped"
COMPACTED = "admin-compacted"
TIMEOUT = 30


def check(condition, what, seen):
    if not condition:
        raise AssertionError(f"{what}; saw {seen!r}")


def expect_error(code, future, what):
    try:
        result = future.result(timeout=TIMEOUT)
    except KafkaException as exc:
        error = exc.args[0]
        check(error.code() == code, f"{what}: expected {KafkaError(code).name()}", error)
        return
    raise AssertionError(f"{what}: expected {KafkaError(code).name()}, got success {result!r}")


def one(futures):
    """The result of the single future in a dict of futures."""
    check(len(futures) == 1, "one future", futures)
    return next(iter(futures.values()))


def topic_configs(admin, topic):
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return one(admin.describe_configs([resource])).result(timeout=TIMEOUT)


def expect_config(configs, name, value, source):
    entry = configs.get(name)
    check(entry is not None, f"{name} is described", sorted(configs))
    check(entry.value == value, f"{name} = {value!r}", entry.value)
    check(entry.source == source.value, f"{name} source {source.name}", entry.source)
    check(entry.is_default == (source == ConfigSource.DEFAULT_CONFIG), f"{name} is_default", entry.is_default)
    check(not entry.is_read_only, f"topic config {name} is writable", entry.is_read_only)


def partition_count(admin, topic):
    metadata = admin.list_topics(topic=topic, timeout=TIMEOUT)
    return len(metadata.topics[topic].partitions)


def offsets(admin, topic, partition, spec):
    tp = TopicPartition(topic, partition)
    info = admin.list_offsets({tp: spec}).get(tp).result(timeout=TIMEOUT)
    return info.offset, info.timestamp


def setup(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})

    # --- CreateTopics with configs; invalid ones refused with INVALID_CONFIG ---
    created = admin.create_topics(
        [
            NewTopic(ORDERS, num_partitions=2, replication_factor=1,
                     config={"retention.ms": "3600000", "cleanup.policy": "delete"}),
            NewTopic(RESHAPED, num_partitions=1, replication_factor=1,
                     config={"cleanup.policy": "compact", "segment.ms": "60000"}),
            NewTopic(COMPACTED, num_partitions=1, replication_factor=1,
                     config={"cleanup.policy": "compact"}),
        ],
        operation_timeout=TIMEOUT,
    )
    for topic, future in created.items():
        future.result(timeout=TIMEOUT)
    bad = admin.create_topics(
        [
            NewTopic("admin-bad-value", num_partitions=1, replication_factor=1,
                     config={"retention.ms": "soon"}),
            NewTopic("admin-bad-name", num_partitions=1, replication_factor=1,
                     config={"no.such.config": "1"}),
        ]
    )
    for topic, future in bad.items():
        expect_error(KafkaError.INVALID_CONFIG, future, f"create {topic}")
    one(admin.create_topics(
        [NewTopic("admin-validated", num_partitions=1, replication_factor=1,
                  config={"compression.type": "zstd"})],
        validate_only=True,
    )).result(timeout=TIMEOUT)
    listed = admin.list_topics(timeout=TIMEOUT).topics
    check("admin-validated" not in listed and "admin-bad-value" not in listed,
          "validate-only and refused topics do not exist", sorted(listed))

    # --- DescribeConfigs: overrides and defaults, with their sources ---
    configs = topic_configs(admin, ORDERS)
    expect_config(configs, "retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    expect_config(configs, "cleanup.policy", "delete", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    expect_config(configs, "segment.bytes", "1073741824", ConfigSource.DEFAULT_CONFIG)
    expect_config(configs, "compression.type", "producer", ConfigSource.DEFAULT_CONFIG)
    expect_config(configs, "max.message.bytes", "1048588", ConfigSource.DEFAULT_CONFIG)
    expect_config(configs, "min.insync.replicas", "1", ConfigSource.DEFAULT_CONFIG)
    expect_config(configs, "message.timestamp.type", "CreateTime", ConfigSource.DEFAULT_CONFIG)
    # librdkafka asks for synonyms: the override, then the broker default behind it.
    synonyms = [(s.name, s.value, s.source) for s in configs["retention.ms"].synonyms.values()]
    check(synonyms == [("retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value),
                       ("log.retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG.value)],
          "retention.ms synonyms", synonyms)
    expect_error(KafkaError.UNKNOWN_TOPIC_OR_PART,
                 one(admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "admin-nope")])),
                 "describe an unknown topic")

    # --- DescribeCluster ---
    cluster = admin.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    check(cluster.cluster_id, "a cluster id", cluster.cluster_id)
    node_ids = [node.id for node in cluster.nodes]
    check(cluster.controller is not None and cluster.controller.id in node_ids,
          "the controller is a listed broker", (cluster.controller, node_ids))
    host, port = bootstrap.rsplit(":", 1)
    me = [n for n in cluster.nodes if n.host == host and n.port == int(port)]
    check(len(me) == 1 and me[0].id == cluster.controller.id,
          "the agent is listed at its address as the controller", cluster.nodes)
    check(cluster.authorized_operations is None, "operations not requested", cluster.authorized_operations)

    # --- Broker configs: this agent's settings, read-only ---
    broker = ConfigResource(ConfigResource.Type.BROKER, str(cluster.controller.id))
    broker_configs = one(admin.describe_configs([broker])).result(timeout=TIMEOUT)
    for name, value in [("num.partitions", "1"), ("auto.create.topics.enable", "true"),
                        ("socket.request.max.bytes", "104857600"),
                        ("log.retention.ms", "604800000"),
                        ("broker.id", str(cluster.controller.id))]:
        entry = broker_configs.get(name)
        check(entry is not None and entry.value == value and entry.is_read_only,
              f"broker config {name} = {value}, read-only", entry and (entry.value, entry.is_read_only))
    broker_change = ConfigResource(
        ConfigResource.Type.BROKER, str(cluster.controller.id),
        incremental_configs=[ConfigEntry("num.partitions", "3",
                                         incremental_operation=AlterConfigOpType.SET)])
    expect_error(KafkaError.INVALID_REQUEST, one(admin.incremental_alter_configs([broker_change])),
                 "altering a broker config")

    # --- CreatePartitions ---
    one(admin.create_partitions([NewPartitions(ORDERS, 4)], validate_only=True)).result(timeout=TIMEOUT)
    check(partition_count(admin, ORDERS) == 2, "validate_only grows nothing", partition_count(admin, ORDERS))
    one(admin.create_partitions([NewPartitions(ORDERS, 4)])).result(timeout=TIMEOUT)
    check(partition_count(admin, ORDERS) == 4, "metadata shows 4 partitions", partition_count(admin, ORDERS))
    expect_error(KafkaError.INVALID_PARTITIONS, one(admin.create_partitions([NewPartitions(ORDERS, 4)])),
                 "growing to the same count")
    expect_error(KafkaError.INVALID_PARTITIONS, one(admin.create_partitions([NewPartitions(ORDERS, 3)])),
                 "shrinking")
    expect_error(KafkaError.UNKNOWN_TOPIC_OR_PART,
                 one(admin.create_partitions([NewPartitions("admin-nope", 3)])), "growing an unknown topic")
    expect_error(KafkaError.INVALID_REPLICA_ASSIGNMENT,
                 one(admin.create_partitions([NewPartitions(ORDERS, 5, replica_assignment=[[9999]])])),
                 "assigning to a broker that does not exist")
    one(admin.create_partitions(
        [NewPartitions(RESHAPED, 2, replica_assignment=[[cluster.controller.id]])]
    )).result(timeout=TIMEOUT)
    check(partition_count(admin, RESHAPED) == 2, "a valid assignment is accepted", partition_count(admin, RESHAPED))

    # --- IncrementalAlterConfigs: SET, APPEND, SUBTRACT, DELETE ---
    def incremental(topic, *ops):
        entries = [ConfigEntry(name, value, incremental_operation=op) for name, value, op in ops]
        return one(admin.incremental_alter_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)]))

    validated = ConfigResource(ConfigResource.Type.TOPIC, ORDERS, incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    one(admin.incremental_alter_configs([validated], validate_only=True)).result(timeout=TIMEOUT)
    validated = ConfigResource(ConfigResource.Type.TOPIC, ORDERS, set_config={"retention.ms": "1"})
    one(admin.alter_configs([validated], validate_only=True)).result(timeout=TIMEOUT)
    expect_config(topic_configs(admin, ORDERS), "retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    incremental(ORDERS,
                ("retention.ms", "7200000", AlterConfigOpType.SET),
                ("cleanup.policy", "compact", AlterConfigOpType.APPEND),
                ("max.message.bytes", "2097152", AlterConfigOpType.SET)).result(timeout=TIMEOUT)
    configs = topic_configs(admin, ORDERS)
    expect_config(configs, "retention.ms", "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    expect_config(configs, "cleanup.policy", "delete,compact", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    incremental(ORDERS,
                ("cleanup.policy", "compact", AlterConfigOpType.SUBTRACT),
                ("max.message.bytes", None, AlterConfigOpType.DELETE)).result(timeout=TIMEOUT)
    configs = topic_configs(admin, ORDERS)
    expect_config(configs, "cleanup.policy", "delete", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    expect_config(configs, "max.message.bytes", "1048588", ConfigSource.DEFAULT_CONFIG)
    expect_error(KafkaError.INVALID_CONFIG,
                 incremental(ORDERS, ("retention.ms", "later", AlterConfigOpType.SET)), "a bad value")
    expect_error(KafkaError.INVALID_CONFIG,
                 incremental(ORDERS, ("retention.ms", "5", AlterConfigOpType.APPEND)), "APPEND to a non-list")
    expect_error(KafkaError.INVALID_CONFIG,
                 incremental(ORDERS, ("retention.hours", "5", AlterConfigOpType.SET)), "an unknown name")
    expect_error(KafkaError.UNKNOWN_TOPIC_OR_PART,
                 incremental("admin-nope", ("retention.ms", "5", AlterConfigOpType.SET)), "an unknown topic")
    expect_config(topic_configs(admin, ORDERS), "retention.ms", "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG)

    # --- AlterConfigs: the whole set is replaced ---
    replace = ConfigResource(ConfigResource.Type.TOPIC, RESHAPED,
                             set_config={"retention.ms": "86400000", "compression.type": "lz4"})
    one(admin.alter_configs([replace])).result(timeout=TIMEOUT)
    configs = topic_configs(admin, RESHAPED)
    expect_config(configs, "retention.ms", "86400000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    expect_config(configs, "compression.type", "lz4", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    expect_config(configs, "cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG)
    expect_config(configs, "segment.ms", "604800000", ConfigSource.DEFAULT_CONFIG)
    bad_replace = ConfigResource(ConfigResource.Type.TOPIC, RESHAPED, set_config={"segment.bytes": "12"})
    expect_error(KafkaError.INVALID_CONFIG, one(admin.alter_configs([bad_replace])), "replacing with a bad value")

    # --- DeleteRecords, then ListOffsets and a consumer agree on the new start ---
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(10):
        producer.produce(ORDERS, value=f"record-{i}".encode(), partition=0, timestamp=1_700_000_000_000 + i)
    # The largest timestamp sits in the middle: ListOffsets max-timestamp finds it.
    producer.produce(ORDERS, value=b"late", partition=1, timestamp=1_700_000_000_500)
    producer.produce(ORDERS, value=b"latest", partition=1, timestamp=1_700_000_009_000)
    producer.produce(ORDERS, value=b"early", partition=1, timestamp=1_700_000_000_100)
    check(producer.flush(TIMEOUT) == 0, "every record delivered", "undelivered records")
    check(offsets(admin, ORDERS, 1, OffsetSpec.max_timestamp()) == (1, 1_700_000_009_000),
          "max timestamp: offset 1", offsets(admin, ORDERS, 1, OffsetSpec.max_timestamp()))
    check(offsets(admin, ORDERS, 1, OffsetSpec.for_timestamp(1_700_000_000_200))[0] == 0,
          "by timestamp: the first record at or after it", offsets(admin, ORDERS, 1, OffsetSpec.for_timestamp(1_700_000_000_200)))

    deleted = admin.delete_records([TopicPartition(ORDERS, 0, 4)])
    low = one(deleted).result(timeout=TIMEOUT)
    check(low.low_watermark == 4, "low watermark after delete_records", low.low_watermark)
    check(offsets(admin, ORDERS, 0, OffsetSpec.earliest())[0] == 4, "earliest is the new start",
          offsets(admin, ORDERS, 0, OffsetSpec.earliest()))
    check(offsets(admin, ORDERS, 0, OffsetSpec.latest())[0] == 10, "latest is the high watermark",
          offsets(admin, ORDERS, 0, OffsetSpec.latest()))
    expect_error(KafkaError.OFFSET_OUT_OF_RANGE, one(admin.delete_records([TopicPartition(ORDERS, 0, 11)])),
                 "deleting beyond the high watermark")
    expect_error(KafkaError.POLICY_VIOLATION, one(admin.delete_records([TopicPartition(COMPACTED, 0, 0)])),
                 "deleting from a compact-only topic")
    first = consume_first_offset(bootstrap, ORDERS, 0)
    check(first == 4, "a consumer from the beginning starts at the low watermark", first)
    print("confluent admin setup: ok")


def consume_first_offset(bootstrap, topic, partition):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "fjord-admin-test",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    try:
        consumer.assign([TopicPartition(topic, partition, -2)])  # OFFSET_BEGINNING
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise AssertionError(f"consume error {message.error()}")
            return message.offset()
        raise AssertionError("no record consumed")
    finally:
        consumer.close()


def verify(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = topic_configs(admin, ORDERS)
    expect_config(configs, "retention.ms", "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    expect_config(configs, "cleanup.policy", "delete", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    expect_config(configs, "max.message.bytes", "1048588", ConfigSource.DEFAULT_CONFIG)
    configs = topic_configs(admin, RESHAPED)
    expect_config(configs, "retention.ms", "86400000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    expect_config(configs, "compression.type", "lz4", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    expect_config(configs, "cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG)
    check(partition_count(admin, ORDERS) == 4, "partitions after restart", partition_count(admin, ORDERS))
    check(offsets(admin, ORDERS, 0, OffsetSpec.earliest())[0] == 4, "low watermark after restart",
          offsets(admin, ORDERS, 0, OffsetSpec.earliest()))
    print("confluent admin verify: ok")


def broker_defaults(bootstrap):
    """A topic without overrides takes the agent's log.retention.* values,
    reported as static broker configs (as Kafka reports a broker's
    server.properties), and the broker resource shows them too."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = "admin-broker-defaults"
    one(admin.create_topics([NewTopic(topic, num_partitions=1)])).result(timeout=TIMEOUT)
    configs = topic_configs(admin, topic)
    expect_config(configs, "retention.ms", "60000", ConfigSource.STATIC_BROKER_CONFIG)
    expect_config(configs, "retention.bytes", "1048576", ConfigSource.STATIC_BROKER_CONFIG)
    expect_config(configs, "cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG)
    cluster = admin.describe_cluster().result(timeout=TIMEOUT)
    broker = ConfigResource(ConfigResource.Type.BROKER, str(cluster.controller.id))
    broker_configs = one(admin.describe_configs([broker])).result(timeout=TIMEOUT)
    entry = broker_configs.get("log.retention.ms")
    check(entry is not None and entry.value == "60000", "broker log.retention.ms", entry)
    check(entry.source == ConfigSource.STATIC_BROKER_CONFIG.value, "broker log.retention.ms source", entry.source)
    check(entry.is_read_only, "broker configs are read-only", entry.is_read_only)
    print("confluent admin broker-defaults: ok")


if __name__ == "__main__":
    {"setup": setup, "verify": verify, "broker-defaults": broker_defaults}[sys.argv[2]](sys.argv[1])
