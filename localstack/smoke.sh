#!/usr/bin/env bash
# Smoke test of the compose cluster (compose.yaml): produce through Kafka (kcat)
# to one agent and over HTTP to another, consume everything through a third,
# read it over HTTP, and check that segment objects are in the bucket.
# Needs Docker; the clients run in the compose network.
set -euo pipefail
cd "$(dirname "$0")"
compose() { docker compose -f compose.yaml "$@"; }
run() { compose --profile smoke run --rm -T "$@"; }

topic="smoke-$(date +%s)"
echo "== waiting for the agents"
for port in 18080 18081 18082; do
    for _ in $(seq 1 60); do
        curl -fsS "http://localhost:$port/readyz" >/dev/null 2>&1 && break
        sleep 2
    done
    curl -fsS "http://localhost:$port/readyz" >/dev/null
done

echo "== creating $topic (3 partitions) over HTTP"
curl -fsS -X POST localhost:18080/v1/topics -H 'Content-Type: application/json' \
    -d "{\"name\": \"$topic\", \"partitions\": 3}" >/dev/null

echo "== producing 100 records through Kafka (agent-1) and 100 over HTTP (agent-2)"
seq 1 100 | sed 's/^/kafka-/' | run kcat -b agent-1:19092 -P -t "$topic" -X acks=all
body=$(seq 1 100 | sed 's/.*/{"value": "http-&"}/' | paste -sd, -)
curl -fsS "localhost:18081/v1/topics/$topic/records" -H 'Content-Type: application/json' \
    -d "{\"records\": [$body]}" >/dev/null

echo "== consuming through Kafka (agent-3)"
got=$(run kcat -b agent-3:19094 -C -t "$topic" -o beginning -e -q | wc -l)
[ "$got" -eq 200 ] || { echo "consumed $got records, expected 200" >&2; exit 1; }

echo "== reading over HTTP (agent-3)"
count=0
for p in 0 1 2; do
    n=$(curl -fsS "localhost:18082/v1/topics/$topic/partitions/$p/records?max_records=1000" \
        | grep -o '"offset":' | wc -l)
    count=$((count + n))
done
[ "$count" -eq 200 ] || { echo "read $count records over HTTP, expected 200" >&2; exit 1; }

echo "== segment objects in the bucket"
endpoint="${FJORD_S3_ENDPOINT:-http://localstack:4566}"
objects=$(run aws --endpoint-url "$endpoint" s3 ls --recursive s3://fjord/cluster/ | wc -l)
[ "$objects" -gt 0 ] || { echo "no object under s3://fjord/cluster/" >&2; exit 1; }
echo "OK smoke: 200 records produced (Kafka and HTTP) and consumed (Kafka and HTTP), $objects objects in the bucket"
