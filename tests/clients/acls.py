"""ACLs through real clients against a Fjord agent run with `--authorizer acl`.

Usage:
  acls.py manage HOST:PORT   # the client (User:ANONYMOUS) is a super user
  acls.py enforce HOST:PORT  # it is not; `manage` left it the ACLs below

`manage` creates, describes and deletes ACLs with kafka-python's
KafkaAdminClient and with confluent-kafka's AdminClient, then creates three
topics and leaves User:ANONYMOUS: WRITE and READ on topic `allowed` (literal)
and on topics `pre-*` (prefixed), READ on groups `acl-*`, and ALTER on the
cluster (to manage ACLs without being a super user). Topic `secret` has no ACL.

`enforce` checks with confluent-kafka (librdkafka) that a producer and a
consumer are refused with TOPIC_AUTHORIZATION_FAILED on `secret` and served on
`allowed` and `pre-events`; then adds DENY ACLs (as the non-super user its
ALTER ACL lets manage ACLs) and checks they win over the ALLOWs.

Exits non-zero on the first failed check.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
)
from kafka.admin import ResourceType as KResourceType

ANONYMOUS = "User:ANONYMOUS"
TIMEOUT = 30


def check(condition, message):
    if not condition:
        raise AssertionError(message)


# ----- manage: both admin clients, as a super user -----


def kafka_python_round_trip(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fjord-acl-test")
    read_orders = ACL(
        principal="User:alice",
        host="*",
        operation=ACLOperation.READ,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(KResourceType.TOPIC, "orders"),
    )
    deny_prefix = ACL(
        principal="User:alice",
        host="*",
        operation=ACLOperation.WRITE,
        permission_type=ACLPermissionType.DENY,
        resource_pattern=ResourcePattern(
            KResourceType.TOPIC, "orders-", ACLResourcePatternType.PREFIXED
        ),
    )
    result = admin.create_acls([read_orders, deny_prefix])
    check(not result["failed"], f"kafka-python create_acls failed: {result}")
    check(len(result["succeeded"]) == 2, f"kafka-python create_acls: {result}")

    alices = ACLFilter(
        principal="User:alice",
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(
            KResourceType.ANY, None, ACLResourcePatternType.ANY
        ),
    )
    acls, error = admin.describe_acls(alices)
    check(error.errno == 0, f"kafka-python describe_acls: {error}")
    described = sorted(
        (a.resource_pattern.resource_name, a.operation.name, a.permission_type.name)
        for a in acls
    )
    check(
        described == [("orders", "READ", "ALLOW"), ("orders-", "WRITE", "DENY")],
        f"kafka-python describe_acls: {described}",
    )

    # MATCH: what applies to topic "orders-eu": the prefixed DENY only.
    matching = ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(
            KResourceType.TOPIC, "orders-eu", ACLResourcePatternType.MATCH
        ),
    )
    acls, error = admin.describe_acls(matching)
    check(error.errno == 0, f"kafka-python describe_acls MATCH: {error}")
    check(
        [a.resource_pattern.resource_name for a in acls] == ["orders-"],
        f"kafka-python describe_acls MATCH: {acls}",
    )

    results = admin.delete_acls([alices])
    (_, deleted, error), = results
    check(error.errno == 0, f"kafka-python delete_acls: {error}")
    check(len(deleted) == 2, f"kafka-python delete_acls: {deleted}")
    acls, error = admin.describe_acls(alices)
    check(not acls, f"kafka-python: ACLs left after delete: {acls}")
    admin.close()
    print("kafka-python create/describe/delete acls: ok")


def confluent_round_trip(admin):
    write_payments = AclBinding(
        ResourceType.TOPIC,
        "payments-",
        ResourcePatternType.PREFIXED,
        "User:bob",
        "*",
        AclOperation.WRITE,
        AclPermissionType.ALLOW,
    )
    describe_cluster = AclBinding(
        ResourceType.BROKER,
        "kafka-cluster",
        ResourcePatternType.LITERAL,
        "User:bob",
        "*",
        AclOperation.DESCRIBE,
        AclPermissionType.ALLOW,
    )
    for future in admin.create_acls([write_payments, describe_cluster]).values():
        future.result(timeout=TIMEOUT)

    bobs = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        "User:bob",
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    described = admin.describe_acls(bobs).result(timeout=TIMEOUT)
    check(
        sorted(described, key=str) == sorted([write_payments, describe_cluster], key=str),
        f"confluent describe_acls: {described}",
    )
    # An invalid binding (a cluster resource not named kafka-cluster) is
    # refused alone.
    bad = AclBinding(
        ResourceType.BROKER,
        "my-cluster",
        ResourcePatternType.LITERAL,
        "User:bob",
        "*",
        AclOperation.ALTER,
        AclPermissionType.ALLOW,
    )
    try:
        admin.create_acls([bad])[bad].result(timeout=TIMEOUT)
        raise AssertionError("a cluster ACL not named kafka-cluster was accepted")
    except Exception as error:  # noqa: BLE001 - the error is the point
        check("INVALID_REQUEST" in str(error) or "kafka-cluster" in str(error), str(error))

    deleted = admin.delete_acls([bobs])[bobs].result(timeout=TIMEOUT)
    check(len(deleted) == 2, f"confluent delete_acls: {deleted}")
    left = admin.describe_acls(bobs).result(timeout=TIMEOUT)
    check(not left, f"confluent: ACLs left after delete: {left}")
    print("confluent-kafka create/describe/delete acls: ok")


def allow(resource_type, name, pattern, operation):
    return AclBinding(
        resource_type, name, pattern, ANONYMOUS, "*", operation, AclPermissionType.ALLOW
    )


def manage(bootstrap):
    kafka_python_round_trip(bootstrap)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    confluent_round_trip(admin)

    topics = [NewTopic(name, num_partitions=1) for name in ("allowed", "pre-events", "secret")]
    for future in admin.create_topics(topics).values():
        future.result(timeout=TIMEOUT)
    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    bindings = [
        allow(ResourceType.TOPIC, "allowed", literal, AclOperation.WRITE),
        allow(ResourceType.TOPIC, "allowed", literal, AclOperation.READ),
        allow(ResourceType.TOPIC, "pre-", prefixed, AclOperation.WRITE),
        allow(ResourceType.TOPIC, "pre-", prefixed, AclOperation.READ),
        allow(ResourceType.GROUP, "acl-", prefixed, AclOperation.READ),
        allow(ResourceType.BROKER, "kafka-cluster", literal, AclOperation.ALTER),
    ]
    for future in admin.create_acls(bindings).values():
        future.result(timeout=TIMEOUT)
    print("acls manage: ok")


# ----- enforce: User:ANONYMOUS is no super user -----


def produce(bootstrap, topic, value):
    """Produces one record; returns the delivery error code (None: delivered)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 20000})
    outcome = []
    producer.produce(topic, value=value, on_delivery=lambda err, msg: outcome.append(err))
    producer.flush(TIMEOUT)
    check(outcome, f"no delivery report for {topic}")
    error = outcome[0]
    return None if error is None else error.code()


def consume(bootstrap, topic, subscribe=False):
    """Reads partition 0 of `topic` from the start: (values, first error code).

    Assigned, or subscribed to (in a group): librdkafka tells a subscriber
    about a topic its Metadata refuses, and keeps an assigned consumer
    waiting for it.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"acl-readers-{topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    if subscribe:
        consumer.subscribe([topic])
    else:
        consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    error = None
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            if values:
                break
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                break
            error = message.error().code()
            break
        values.append(message.value().decode())
    consumer.close()
    return values, error


def enforce(bootstrap):
    denied = KafkaError.TOPIC_AUTHORIZATION_FAILED

    # No ACL: refused (deny by default).
    code = produce(bootstrap, "secret", b"nope")
    check(code == denied, f"producing to secret: {code}, expected TOPIC_AUTHORIZATION_FAILED")
    values, code = consume(bootstrap, "secret", subscribe=True)
    check(
        code == denied and not values,
        f"consuming secret: {values} {code}, expected TOPIC_AUTHORIZATION_FAILED",
    )
    print("no acl: producer and consumer refused with TOPIC_AUTHORIZATION_FAILED")

    # Literal and prefixed ALLOWs: served.
    for topic in ("allowed", "pre-events"):
        code = produce(bootstrap, topic, f"hello-{topic}".encode())
        check(code is None, f"producing to {topic}: {code}")
        values, code = consume(bootstrap, topic)
        check(code is None and values == [f"hello-{topic}"], f"consuming {topic}: {values} {code}")
    print("literal and prefixed allow: produced and consumed")

    # DENYs win over the ALLOWs. The client manages ACLs through its ALTER
    # on the cluster (which implies DESCRIBE), not as a super user.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    denies = [
        AclBinding(
            ResourceType.TOPIC,
            "allowed",
            ResourcePatternType.LITERAL,
            ANONYMOUS,
            "*",
            AclOperation.WRITE,
            AclPermissionType.DENY,
        ),
        AclBinding(
            ResourceType.TOPIC,
            "pre-",
            ResourcePatternType.PREFIXED,
            ANONYMOUS,
            "*",
            AclOperation.READ,
            AclPermissionType.DENY,
        ),
    ]
    for future in admin.create_acls(denies).values():
        future.result(timeout=TIMEOUT)
    code = produce(bootstrap, "allowed", b"after-deny")
    check(code == denied, f"producing to allowed after a DENY: {code}")
    values, code = consume(bootstrap, "allowed")
    check(values == ["hello-allowed"], f"READ on allowed is not denied: {values} {code}")
    values, code = consume(bootstrap, "pre-events")
    check(code == denied and not values, f"consuming pre-events after a DENY: {values} {code}")
    code = produce(bootstrap, "pre-events", b"still")
    check(code is None, f"WRITE on pre-events is not denied: {code}")
    print("deny: refused again with TOPIC_AUTHORIZATION_FAILED")

    # kafka-python sees the DENYs too (DESCRIBE on the cluster, implied).
    kadmin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fjord-acl-test")
    acls, error = kadmin.describe_acls(
        ACLFilter(
            principal=ANONYMOUS,
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.DENY,
            resource_pattern=ResourcePatternFilter(
                KResourceType.ANY, None, ACLResourcePatternType.ANY
            ),
        )
    )
    check(error.errno == 0 and len(acls) == 2, f"describing the denies: {acls} {error}")
    kadmin.close()
    print("acls enforce: ok")


def main():
    mode, bootstrap = sys.argv[1], sys.argv[2]
    if mode == "manage":
        manage(bootstrap)
    elif mode == "enforce":
        enforce(bootstrap)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
