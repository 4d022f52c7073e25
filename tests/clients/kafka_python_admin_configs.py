"""Topic configs, partitions, cluster and record deletion through kafka-python's
KafkaAdminClient against a Fjord agent.

Usage:
    kafka_python_admin_configs.py HOST:PORT setup    create, alter, describe, grow, trim
    kafka_python_admin_configs.py HOST:PORT verify   after an agent restart: what setup
                                                     changed is still there

Exits non-zero on the first mismatch, printing what it saw.
"""

import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import (
    InvalidConfigurationError,
    InvalidPartitionsError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
)

TOPIC = "kp-configs"
OTHER = "kp-replaced"
NO_ERROR = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REQUEST = 42
INVALID_CONFIG = 40
TOPIC_CONFIG = 1
DEFAULT_CONFIG = 5


def check(condition, what, seen):
    if not condition:
        raise AssertionError(f"{what}; saw {seen!r}")


def expect_error(error_type, action, what):
    try:
        result = action()
    except error_type:
        return
    except Exception as other:  # noqa: BLE001 - report what came instead
        raise AssertionError(f"{what}: expected {error_type.__name__}, got {other!r}") from other
    raise AssertionError(f"{what}: expected {error_type.__name__}, got success {result!r}")


def describe(admin, resource_type, name, keys=None):
    """(error code, {name: (value, read_only, source, synonyms)}) of one resource."""
    configs = dict.fromkeys(keys) if keys else None
    responses = admin.describe_configs([ConfigResource(resource_type, name, configs)], include_synonyms=True)
    check(len(responses) == 1 and len(responses[0].resources) == 1, "one described resource", responses)
    error_code, _message, _type, _name, entries = responses[0].resources[0]
    described = {
        entry[0]: (entry[1], entry[2], entry[3], [tuple(s) for s in entry[5]]) for entry in entries
    }
    return error_code, described


def expect_config(described, name, value, source):
    check(name in described, f"{name} described", sorted(described))
    seen_value, read_only, seen_source, _synonyms = described[name]
    check((seen_value, seen_source, read_only) == (value, source, False),
          f"{name} = {value!r} from source {source}", described[name])


def alter(admin, name, configs):
    """The error code of an AlterConfigs (whole-set replacement) of topic `name`."""
    response = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs)])
    check(len(response.resources) == 1, "one altered resource", response)
    return response.resources[0][0]


def setup(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fjord-admin-configs")

    admin.create_topics([
        NewTopic(TOPIC, num_partitions=1, replication_factor=1,
                 topic_configs={"retention.ms": "3600000", "compression.type": "gzip"}),
        NewTopic(OTHER, num_partitions=1, replication_factor=1,
                 topic_configs={"cleanup.policy": "compact"}),
    ])
    expect_error(InvalidConfigurationError,
                 lambda: admin.create_topics([NewTopic("kp-bad", 1, 1, topic_configs={"segment.bytes": "10"})]),
                 "creating with segment.bytes below its minimum")
    expect_error(InvalidConfigurationError,
                 lambda: admin.create_topics([NewTopic("kp-bad", 1, 1, topic_configs={"retention.hours": "1"})]),
                 "creating with an unknown config")
    check("kp-bad" not in admin.list_topics(), "refused topics do not exist", admin.list_topics())

    # DescribeConfigs: every config, the overrides as topic configs, with synonyms.
    error_code, described = describe(admin, ConfigResourceType.TOPIC, TOPIC)
    check(error_code == NO_ERROR, "describe succeeded", error_code)
    expect_config(described, "retention.ms", "3600000", TOPIC_CONFIG)
    expect_config(described, "compression.type", "gzip", TOPIC_CONFIG)
    expect_config(described, "cleanup.policy", "delete", DEFAULT_CONFIG)
    expect_config(described, "segment.bytes", "1073741824", DEFAULT_CONFIG)
    check(described["retention.ms"][3] == [("retention.ms", "3600000", TOPIC_CONFIG),
                                           ("log.retention.ms", "604800000", DEFAULT_CONFIG)],
          "retention.ms synonyms", described["retention.ms"][3])
    check(len(described) > 20, "every known topic config", sorted(described))
    # Filtered by key.
    error_code, filtered = describe(admin, ConfigResourceType.TOPIC, TOPIC, ["retention.ms", "no.such.key"])
    check(error_code == NO_ERROR and sorted(filtered) == ["retention.ms"], "filtered describe", filtered)
    error_code, _ = describe(admin, ConfigResourceType.TOPIC, "kp-nope")
    check(error_code == UNKNOWN_TOPIC_OR_PARTITION, "describing an unknown topic", error_code)

    # The cluster (from Metadata) and this broker's configs.
    cluster = admin.describe_cluster()
    check(cluster["cluster_id"] and cluster["controller_id"] in [b["node_id"] for b in cluster["brokers"]],
          "cluster id and controller", cluster)
    broker_id = str(cluster["controller_id"])
    error_code, broker = describe(admin, ConfigResourceType.BROKER, broker_id)
    check(error_code == NO_ERROR, "describing the broker", error_code)
    check(broker.get("num.partitions", (None,))[0] == "1" and broker["num.partitions"][1],
          "num.partitions, read-only", broker.get("num.partitions"))
    check(broker.get("log.cleanup.policy", (None,))[0] == "delete", "log.cleanup.policy", broker.get("log.cleanup.policy"))

    # AlterConfigs replaces the whole set.
    check(alter(admin, TOPIC, {"retention.ms": "7200000", "segment.ms": "600000"}) == NO_ERROR,
          "altering configs", "an error")
    error_code, described = describe(admin, ConfigResourceType.TOPIC, TOPIC)
    expect_config(described, "retention.ms", "7200000", TOPIC_CONFIG)
    expect_config(described, "segment.ms", "600000", TOPIC_CONFIG)
    expect_config(described, "compression.type", "producer", DEFAULT_CONFIG)
    check(alter(admin, TOPIC, {"retention.ms": "never"}) == INVALID_CONFIG, "a bad value is INVALID_CONFIG", "")
    check(alter(admin, TOPIC, {"no.such.config": "1"}) == INVALID_CONFIG, "an unknown name is INVALID_CONFIG", "")
    check(alter(admin, "kp-nope", {"retention.ms": "1"}) == UNKNOWN_TOPIC_OR_PARTITION, "an unknown topic", "")
    expect_config(describe(admin, ConfigResourceType.TOPIC, TOPIC)[1], "retention.ms", "7200000", TOPIC_CONFIG)
    check(alter(admin, OTHER, {}) == NO_ERROR, "clearing every override", "")
    expect_config(describe(admin, ConfigResourceType.TOPIC, OTHER)[1], "cleanup.policy", "delete", DEFAULT_CONFIG)
    response = admin.alter_configs([ConfigResource(ConfigResourceType.BROKER, broker_id, {"num.partitions": "3"})])
    check(response.resources[0][0] == INVALID_REQUEST, "broker configs are read-only", response)

    # CreatePartitions.
    admin.create_partitions({TOPIC: NewPartitions(total_count=3)})
    partitions = admin.describe_topics([TOPIC])[0]["partitions"]
    check(len(partitions) == 3, "three partitions after create_partitions", partitions)
    expect_error(InvalidPartitionsError, lambda: admin.create_partitions({TOPIC: NewPartitions(total_count=2)}),
                 "shrinking")
    expect_error(UnknownTopicOrPartitionError,
                 lambda: admin.create_partitions({"kp-nope": NewPartitions(total_count=2)}), "an unknown topic")

    # DeleteRecords, then the earliest offset and a consumer agree.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(6):
        producer.send(TOPIC, value=f"record-{i}".encode(), partition=0)
    producer.flush()
    producer.close()
    tp = TopicPartition(TOPIC, 0)
    result = admin.delete_records({tp: 3})
    check(result[tp]["low_watermark"] == 3, "low watermark after delete_records", result)
    expect_error(OffsetOutOfRangeError, lambda: admin.delete_records({tp: 100}), "beyond the high watermark")
    check(first_offsets(bootstrap, tp) == (3, 6, 3), "earliest, latest and first consumed offset", first_offsets(bootstrap, tp))
    admin.close()
    print("kafka-python admin configs setup: ok")


def first_offsets(bootstrap, tp):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=10_000)
    try:
        earliest = consumer.beginning_offsets([tp])[tp]
        latest = consumer.end_offsets([tp])[tp]
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        first = next(iter(consumer)).offset
        return earliest, latest, first
    finally:
        consumer.close()


def verify(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fjord-admin-configs")
    error_code, described = describe(admin, ConfigResourceType.TOPIC, TOPIC)
    check(error_code == NO_ERROR, "describe after restart", error_code)
    expect_config(described, "retention.ms", "7200000", TOPIC_CONFIG)
    expect_config(described, "segment.ms", "600000", TOPIC_CONFIG)
    expect_config(described, "compression.type", "producer", DEFAULT_CONFIG)
    expect_config(describe(admin, ConfigResourceType.TOPIC, OTHER)[1], "cleanup.policy", "delete", DEFAULT_CONFIG)
    partitions = admin.describe_topics([TOPIC])[0]["partitions"]
    check(len(partitions) == 3, "partitions after restart", partitions)
    tp = TopicPartition(TOPIC, 0)
    check(first_offsets(bootstrap, tp) == (3, 6, 3), "offsets after restart", first_offsets(bootstrap, tp))
    admin.close()
    print("kafka-python admin configs verify: ok")


if __name__ == "__main__":
    {"setup": setup, "verify": verify}[sys.argv[2]](sys.argv[1])
