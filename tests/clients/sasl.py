"""SASL authentication with real clients, for agent/tests/sasl.rs.

Usage: sasl.py BOOTSTRAP SCENARIO [ARGS...]; every scenario ends with
`OK SCENARIO` and prints `KEY value...` lines.

- roundtrip PROTOCOL MECHANISM USER PASSWORD TOPIC: confluent-kafka
  (librdkafka), kafka-python and aiokafka each produce 10 records to TOPIC
  and read them back; `ROUNDTRIP client n`.
- refused PROTOCOL MECHANISM USER PASSWORD: each client's connection is
  refused; `REFUSED client what-it-said`.
- admin PROTOCOL MECHANISM USER PASSWORD NEW_USER NEW_PASSWORD: confluent-kafka's
  AdminClient sets NEW_USER's SCRAM-SHA-256 and SCRAM-SHA-512 credentials
  (AlterUserScramCredentials) and describes them; `DESCRIBED user mechanism
  iterations`; then deletes the SHA-512 one and describes again.
- unauthenticated: on a raw socket, ApiVersions is answered (`APIVERSIONS
  code`) and a Metadata request before authenticating closes the connection
  (`METADATA closed`).
- brute N THREADS USER: N logins with wrong passwords (SaslHandshake then
  SaslAuthenticate with PLAIN, on raw sockets, THREADS at a time);
  `BRUTE refused n` counts those answered SASL_AUTHENTICATION_FAILED (58).
- steady PROTOCOL MECHANISM USER PASSWORD TOPIC SECONDS: a confluent-kafka
  producer produces for SECONDS; `STEADY acked n errors m`.
"""

import asyncio
import os
import socket
import struct
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)


# Under SASL_SSL the clients trust the CA named by this variable.
CA = os.environ.get("FJORD_TEST_CA")


def confluent_config(bootstrap, protocol, mechanism, user, password):
    config = {
        "bootstrap.servers": bootstrap,
        "security.protocol": protocol,
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }
    if protocol == "SASL_SSL":
        config["ssl.ca.location"] = CA
    return config


def python_config(bootstrap, protocol, mechanism, user, password):
    config = dict(bootstrap_servers=bootstrap, security_protocol=protocol, sasl_mechanism=mechanism,
                  sasl_plain_username=user, sasl_plain_password=password)
    if protocol == "SASL_SSL":
        config["ssl_cafile"] = CA
    return config


def aiokafka_config(bootstrap, protocol, mechanism, user, password):
    config = python_config(bootstrap, protocol, mechanism, user, password)
    if protocol == "SASL_SSL":
        from aiokafka.helpers import create_ssl_context
        del config["ssl_cafile"]
        config["ssl_context"] = create_ssl_context(cafile=CA)
    return config


def confluent_roundtrip(bootstrap, protocol, mechanism, user, password, topic):
    config = confluent_config(bootstrap, protocol, mechanism, user, password)
    producer = Producer(config)
    values = [f"confluent-{i}" for i in range(10)]
    for value in values:
        producer.produce(topic, value.encode())
    assert producer.flush(30) == 0, "confluent-kafka: records left unsent"
    consumer = Consumer({**config, "group.id": "sasl-" + uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = set()
    deadline = time.time() + 60
    while time.time() < deadline and not set(values) <= seen:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen.add(message.value().decode())
    consumer.close()
    return len(set(values) & seen)


def kafka_python_roundtrip(bootstrap, protocol, mechanism, user, password, topic):
    from kafka import KafkaConsumer, KafkaProducer
    config = python_config(bootstrap, protocol, mechanism, user, password)
    producer = KafkaProducer(acks="all", **config)
    values = [f"kafka-python-{i}" for i in range(10)]
    for value in values:
        producer.send(topic, value.encode()).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=5000, **config)
    seen = {m.value.decode() for m in consumer}
    consumer.close()
    return len(set(values) & seen)


def aiokafka_roundtrip(bootstrap, protocol, mechanism, user, password, topic):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run():
        config = aiokafka_config(bootstrap, protocol, mechanism, user, password)
        producer = AIOKafkaProducer(acks="all", **config)
        await producer.start()
        values = [f"aiokafka-{i}" for i in range(10)]
        try:
            for value in values:
                await producer.send_and_wait(topic, value.encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **config)
        await consumer.start()
        seen = set()
        try:
            deadline = time.time() + 30
            while time.time() < deadline and not set(values) <= seen:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    seen.update(m.value.decode() for m in messages)
        finally:
            await consumer.stop()
        return len(set(values) & seen)

    return asyncio.run(run())


def roundtrip(bootstrap, protocol, mechanism, user, password, topic):
    for name, run in [("confluent-kafka", confluent_roundtrip), ("kafka-python", kafka_python_roundtrip),
                      ("aiokafka", aiokafka_roundtrip)]:
        print("ROUNDTRIP", name, run(bootstrap, protocol, mechanism, user, password, topic), flush=True)


def refused(bootstrap, protocol, mechanism, user, password):
    # confluent-kafka: the producer's error callback reports the failure.
    errors = []
    config = confluent_config(bootstrap, protocol, mechanism, user, password)
    producer = Producer({**config, "error_cb": lambda e: errors.append(e), "message.timeout.ms": 5000})
    producer.produce("refused-topic", b"x")
    producer.flush(10)
    said = [e for e in errors if e.code() == -169 or "uthentication" in e.str()]  # _AUTHENTICATION
    print("REFUSED", "confluent-kafka", said[0].str().replace(" ", "_")[:80] if said else "NOTHING", flush=True)

    import logging

    class Said(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    said_python = Said()
    logging.getLogger("kafka").addHandler(said_python)
    logging.getLogger("kafka").setLevel(logging.INFO)

    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    try:
        producer = KafkaProducer(request_timeout_ms=5000, max_block_ms=5000,
                                 **python_config(bootstrap, protocol, mechanism, user, password))
        producer.send("refused-topic", b"x").get(timeout=10)
        producer.close()
        print("REFUSED", "kafka-python", "NOTHING", flush=True)
    except KafkaError as error:
        # kafka-python retries until its timeout; its log names the cause.
        auth = any("Authentication failed" in line or "SaslAuthenticationFailed" in line
                   for line in said_python.lines)
        print("REFUSED", "kafka-python", type(error).__name__, "auth_failure_logged=" + str(auth),
              flush=True)

    from aiokafka import AIOKafkaProducer

    async def aio():
        producer = AIOKafkaProducer(request_timeout_ms=5000,
                                    **aiokafka_config(bootstrap, protocol, mechanism, user, password))
        try:
            await producer.start()
        except Exception as error:  # aiokafka raises its own error types
            return type(error).__name__
        await producer.stop()
        return "NOTHING"

    print("REFUSED", "aiokafka", asyncio.run(aio()), flush=True)


def admin(bootstrap, protocol, mechanism, user, password, new_user, new_password):
    client = AdminClient(confluent_config(bootstrap, protocol, mechanism, user, password))
    upserts = [
        UserScramCredentialUpsertion(new_user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                     new_password.encode()),
        UserScramCredentialUpsertion(new_user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                     new_password.encode()),
    ]
    for future in client.alter_user_scram_credentials(upserts).values():
        future.result(30)

    def describe():
        described = client.describe_user_scram_credentials([new_user])
        for name, future in described.items():
            for info in future.result(30).scram_credential_infos:
                print("DESCRIBED", name, info.mechanism.name, info.iterations, flush=True)

    describe()
    deletion = [UserScramCredentialDeletion(new_user, ScramMechanism.SCRAM_SHA_512)]
    for future in client.alter_user_scram_credentials(deletion).values():
        future.result(30)
    print("DELETED", new_user, "SCRAM_SHA_512", flush=True)
    describe()
    # Deleting it again is refused: it does not exist.
    try:
        for future in client.alter_user_scram_credentials(deletion).values():
            future.result(30)
        print("DELETE_AGAIN", "accepted", flush=True)
    except KafkaException as error:
        print("DELETE_AGAIN", error.args[0].name(), flush=True)


def frame(api_key, version, correlation_id, body):
    client_id = b"brute"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(sock):
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data
    (length,) = struct.unpack(">i", exactly(4))
    return exactly(length)


def one_wrong_login(host, port, user, attempt):
    with socket.create_connection((host, port), timeout=30) as sock:
        mechanism = b"PLAIN"
        sock.sendall(frame(17, 1, 1, struct.pack(">h", len(mechanism)) + mechanism))
        response = read_frame(sock)
        (error,) = struct.unpack(">h", response[4:6])
        if error != 0:
            return f"handshake-{error}"
        token = b"\0" + user.encode() + b"\0" + f"guess-{attempt}".encode()
        sock.sendall(frame(36, 0, 2, struct.pack(">i", len(token)) + token))
        response = read_frame(sock)
        (error,) = struct.unpack(">h", response[4:6])
        return error


def unauthenticated(bootstrap):
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        # ApiVersions v0 is answered before authentication.
        sock.sendall(frame(18, 0, 1, b""))
        response = read_frame(sock)
        (error,) = struct.unpack(">h", response[4:6])
        print("APIVERSIONS", error, flush=True)
        # Metadata v1 (all topics) before authenticating closes the connection.
        sock.sendall(frame(3, 1, 2, struct.pack(">i", -1)))
        try:
            read_frame(sock)
            print("METADATA", "answered", flush=True)
        except (ConnectionError, OSError):
            print("METADATA", "closed", flush=True)


def brute(bootstrap, n, threads, user):
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    n, threads = int(n), int(threads)
    results = []
    lock = threading.Lock()
    counter = iter(range(n))

    def work():
        while True:
            with lock:
                attempt = next(counter, None)
            if attempt is None:
                return
            try:
                result = one_wrong_login(host, int(port), user, attempt)
            except OSError as error:
                result = f"io-{type(error).__name__}"
            with lock:
                results.append(result)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print("BRUTE", "refused", sum(1 for r in results if r == 58), flush=True)
    others = sorted({str(r) for r in results if r != 58})
    print("BRUTE", "other", ",".join(others) or "none", flush=True)


def steady(bootstrap, protocol, mechanism, user, password, topic, seconds):
    acked, errors = [0], [0]

    def delivered(error, _message):
        if error is None:
            acked[0] += 1
        else:
            errors[0] += 1

    producer = Producer({**confluent_config(bootstrap, protocol, mechanism, user, password), "acks": "all",
                         "linger.ms": 5})
    deadline = time.time() + float(seconds)
    i = 0
    while time.time() < deadline:
        producer.produce(topic, f"steady-{i}".encode(), on_delivery=delivered)
        producer.poll(0.01)
        i += 1
    producer.flush(60)
    print("STEADY", "acked", acked[0], "errors", errors[0], "sent", i, flush=True)


def acl_setup(bootstrap, protocol, mechanism, user, password):
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)
    client = AdminClient(confluent_config(bootstrap, protocol, mechanism, user, password))
    allow, deny = AclPermissionType.ALLOW, AclPermissionType.DENY
    bindings = [
        # alice may write and read topics named alice-*, and create them...
        AclBinding(ResourceType.TOPIC, "alice-", ResourcePatternType.PREFIXED, "User:alice", "*",
                   AclOperation.ALL, allow),
        # ...but not alice-secret: a literal deny beats the prefixed allow.
        AclBinding(ResourceType.TOPIC, "alice-secret", ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.WRITE, deny),
        AclBinding(ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, "User:alice", "*",
                   AclOperation.CREATE, allow),
        # The round trips' consumer groups.
        AclBinding(ResourceType.GROUP, "sasl-", ResourcePatternType.PREFIXED, "User:alice", "*",
                   AclOperation.READ, allow),
    ]
    for future in client.create_acls(bindings).values():
        future.result(30)
    print("ACLS", len(bindings), flush=True)


def try_produce(bootstrap, protocol, mechanism, user, password, topic):
    """Produces one record with librdkafka; prints PRODUCE topic ok|<error name>."""
    outcome = []
    producer = Producer({**confluent_config(bootstrap, protocol, mechanism, user, password),
                         "message.timeout.ms": 10000})
    producer.produce(topic, b"x", on_delivery=lambda error, _m: outcome.append(error))
    producer.flush(20)
    error = outcome[0] if outcome else None
    print("PRODUCE", topic, "ok" if outcome and error is None else (error.name() if error else "none"),
          flush=True)


SCENARIOS = {"roundtrip": roundtrip, "refused": refused, "admin": admin, "brute": brute, "steady": steady,
             "unauthenticated": unauthenticated, "acl_setup": acl_setup, "try_produce": try_produce}


def main():
    bootstrap, scenario, *args = sys.argv[1:]
    SCENARIOS[scenario](bootstrap, *args)
    print("OK", scenario, flush=True)


if __name__ == "__main__":
    main()
