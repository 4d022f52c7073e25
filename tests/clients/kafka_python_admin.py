"""Topic administration through kafka-python's admin client against a Fjord agent.

Usage: kafka_python_admin.py HOST:PORT. Exits non-zero on the first failed check.
"""

import sys

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import (
    InvalidPartitionsError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)


def expect_error(error_type, action):
    try:
        action()
    except error_type:
        return
    except Exception as other:  # noqa: BLE001 - report what came instead
        raise AssertionError(f"expected {error_type.__name__}, got {other!r}") from other
    raise AssertionError(f"expected {error_type.__name__}, got success")


def main():
    admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], client_id="fjord-admin-test")

    admin.create_topics(
        [
            NewTopic("orders", num_partitions=3, replication_factor=1),
            NewTopic(
                "events",
                num_partitions=1,
                replication_factor=3,
                topic_configs={"retention.ms": "-1"},
            ),
        ]
    )
    topics = set(admin.list_topics())
    assert {"orders", "events"} <= topics, topics

    described = {t["topic"]: t for t in admin.describe_topics(["orders", "events"])}
    assert len(described["orders"]["partitions"]) == 3, described["orders"]
    assert len(described["events"]["partitions"]) == 1, described["events"]
    assert described["orders"]["error_code"] == 0

    expect_error(
        TopicAlreadyExistsError,
        lambda: admin.create_topics([NewTopic("orders", num_partitions=1, replication_factor=1)]),
    )
    expect_error(
        InvalidTopicError,
        lambda: admin.create_topics([NewTopic("bad name!", num_partitions=1, replication_factor=1)]),
    )
    expect_error(
        InvalidPartitionsError,
        lambda: admin.create_topics([NewTopic("no-partitions", num_partitions=0, replication_factor=1)]),
    )

    admin.delete_topics(["orders"])
    topics = set(admin.list_topics())
    assert "orders" not in topics and "events" in topics, topics
    expect_error(UnknownTopicOrPartitionError, lambda: admin.delete_topics(["orders"]))

    admin.close()
    print("kafka-python admin: ok")


if __name__ == "__main__":
    main()
