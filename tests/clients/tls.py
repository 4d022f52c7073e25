"""Checks Fjord's TLS with clients nobody here wrote: confluent-kafka
(librdkafka over OpenSSL), kafka-python and aiokafka (Python's ssl module),
Python's ssl module on its own for handshakes, and grpcio for gRPC over TLS.

    python3 tls.py roundtrip <client> <bootstrap> <ca.pem> [<cert.pem> <key.pem>]
    python3 tls.py handshake <host:port> <ca.pem> [<cert.pem> <key.pem>]
    python3 tls.py grpc-health <host:port> <ca.pem>

`roundtrip` produces records with keys and headers through `<client>`
(`confluent-kafka`, `kafka-python` or `aiokafka`) over SSL, with the client
certificate when given, to a new topic, and consumes them back: every record
once, in order, byte for byte. Prints `OK roundtrip <client> <count>`.

`handshake` opens a TLS connection with Python's ssl module (the CA given,
the host name checked) and sends a Kafka ApiVersions request over it. Prints
`ACCEPTED <subject>` (the served certificate's subject) when the broker
answers, `REFUSED <why>` when the handshake or the answer fails.

`grpc-health` calls the gRPC health service over TLS (HTTP/2 negotiated by
ALPN). Prints `OK grpc-health SERVING`.

Any failed check raises (exit status 1) with what differed.
"""

import asyncio
import socket
import ssl
import struct
import sys
import uuid

RECORDS = 300


def expected_records():
    return [
        (f"key-{i}".encode(), f"value-{i}-{'x' * (i % 50)}".encode(), [("n", str(i).encode())])
        for i in range(RECORDS)
    ]


def check(consumed, client):
    expected = expected_records()
    if len(consumed) != len(expected):
        raise SystemExit(f"{client}: consumed {len(consumed)} records, expected {len(expected)}")
    for i, (got, want) in enumerate(zip(consumed, expected)):
        got_key, got_value, got_headers = got
        want_key, want_value, want_headers = want
        if (got_key, got_value) != (want_key, want_value):
            raise SystemExit(f"{client}: record {i} is {got!r}, expected {want!r}")
        if [(k, bytes(v)) for k, v in (got_headers or [])] != want_headers:
            raise SystemExit(f"{client}: record {i} headers {got_headers!r}, expected {want_headers!r}")
    print(f"OK roundtrip {client} {len(consumed)}")


def roundtrip_confluent(bootstrap, topic, ca, cert, key):
    from confluent_kafka import Consumer, Producer

    common = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": ca,
        # librdkafka checks the broker's host name (the default since 2.0);
        # said here so a change of default cannot weaken the test.
        "ssl.endpoint.identification.algorithm": "https",
    }
    if cert:
        common.update({"ssl.certificate.location": cert, "ssl.key.location": key})
    producer = Producer({**common, "enable.idempotence": True, "acks": "all"})
    failures = []
    for key_bytes, value, headers in expected_records():
        producer.produce(
            topic,
            key=key_bytes,
            value=value,
            headers=headers,
            on_delivery=lambda err, msg: err and failures.append(err),
        )
    if producer.flush(60) != 0 or failures:
        raise SystemExit(f"confluent-kafka: produce failed: {failures[:3]}")
    consumer = Consumer(
        {
            **common,
            "group.id": f"tls-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    consumed = []
    idle = 0
    while len(consumed) < RECORDS and idle < 60:
        message = consumer.poll(1.0)
        if message is None:
            idle += 1
            continue
        if message.error():
            raise SystemExit(f"confluent-kafka: consume failed: {message.error()}")
        consumed.append((message.key(), message.value(), message.headers()))
    consumer.close()
    check(consumed, "confluent-kafka")


def roundtrip_kafka_python(bootstrap, topic, ca, cert, key):
    from kafka import KafkaConsumer, KafkaProducer

    common = {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SSL",
        "ssl_cafile": ca,
        "ssl_check_hostname": True,
    }
    if cert:
        common.update({"ssl_certfile": cert, "ssl_keyfile": key})
    producer = KafkaProducer(**common, acks="all")
    futures = [
        producer.send(topic, key=key_bytes, value=value, headers=headers)
        for key_bytes, value, headers in expected_records()
    ]
    producer.flush(60)
    for future in futures:
        future.get(timeout=60)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        **common,
        group_id=f"tls-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=60000,
    )
    consumed = []
    for message in consumer:
        consumed.append((message.key, message.value, message.headers))
        if len(consumed) == RECORDS:
            break
    consumer.close()
    check(consumed, "kafka-python")


def roundtrip_aiokafka(bootstrap, topic, ca, cert, key):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context

    async def run():
        context = create_ssl_context(cafile=ca, certfile=cert, keyfile=key)
        common = {"bootstrap_servers": bootstrap, "security_protocol": "SSL", "ssl_context": context}
        producer = AIOKafkaProducer(**common, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            sends = [
                await producer.send(topic, key=key_bytes, value=value, headers=headers)
                for key_bytes, value, headers in expected_records()
            ]
            for sent in sends:
                await asyncio.wait_for(sent, 60)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            **common,
            group_id=f"tls-{uuid.uuid4()}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        consumed = []
        try:
            while len(consumed) < RECORDS:
                batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 60)
                for messages in batches.values():
                    consumed.extend((m.key, m.value, list(m.headers)) for m in messages)
        finally:
            await consumer.stop()
        check(consumed, "aiokafka")

    asyncio.run(run())


def roundtrip(client, bootstrap, ca, cert=None, key=None):
    topic = f"tls-{client}-{uuid.uuid4().hex[:8]}"
    {
        "confluent-kafka": roundtrip_confluent,
        "kafka-python": roundtrip_kafka_python,
        "aiokafka": roundtrip_aiokafka,
    }[client](bootstrap, topic, ca, cert, key)


def api_versions_request():
    """ApiVersions v0 from client `tls.py`, correlation id 7."""
    client_id = b"tls.py"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def handshake(address, ca, cert=None, key=None):
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    raw = socket.create_connection((host, int(port)), timeout=30)
    try:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            subject = ",".join(
                f"{name}={value}" for rdn in reversed(tls.getpeercert()["subject"]) for name, value in rdn
            )
            tls.sendall(api_versions_request())
            (length,) = struct.unpack(">i", read_exactly(tls, 4))
            (correlation_id,) = struct.unpack(">i", read_exactly(tls, length)[:4])
            if correlation_id != 7:
                raise SystemExit(f"answered correlation id {correlation_id}")
            print(f"ACCEPTED {subject}")
    except (ssl.SSLError, ConnectionError, OSError) as error:
        print(f"REFUSED {error}")
    finally:
        raw.close()


def grpc_health(address, ca):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with open(ca, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    host = address.rsplit(":", 1)[0]
    with grpc.secure_channel(address, credentials, options=[("grpc.ssl_target_name_override", host)]) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if status != "SERVING":
        raise SystemExit(f"health: {status}")
    print(f"OK grpc-health {status}")


def main():
    command, *args = sys.argv[1:]
    {"roundtrip": roundtrip, "handshake": handshake, "grpc-health": grpc_health}[command](*args)


if __name__ == "__main__":
    main()
