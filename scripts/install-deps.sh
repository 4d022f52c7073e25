#!/usr/bin/env bash
# Installs what building and testing Fjord needs on a fresh Debian machine.
# Idempotent: installs only what is missing.
set -euo pipefail

# Debian packages:
#   libclang-dev   bindgen, for the FoundationDB client bindings (`--features fdb`)
#   kcat           librdkafka's command-line client, for the Kafka compatibility tests
#   curl           an HTTP client, for the gateway tests (HTTP/1.1 and HTTP/2)
apt_packages=(libclang-dev kcat curl)

missing=()
for package in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python Kafka clients for the compatibility tests (pinned: tests assert on their
# behaviour).
# The compression libraries give kafka-python and aiokafka snappy, lz4 and zstd.
# `requests` is the HTTP client of the gateway tests; grpcio (with grpcio-tools,
# which generates the stubs from proto/, and the status, health and reflection
# clients) and `h2` (hand-made HTTP/2 frames) those of the gRPC gateway tests;
# pytest runs the Terraform structural tests; check-jsonschema checks the
# compose file against the Compose specification.
python_packages=("kafka-python==2.2.15" "confluent-kafka==2.12.1" "aiokafka==0.12.0"
    "cramjam==2.11.0" "lz4==4.4.4" "python-snappy==0.7.3" "zstandard==0.25.0"
    "requests==2.32.5" "grpcio==1.85.1" "grpcio-tools==1.85.1" "grpcio-status==1.85.1"
    "grpcio-health-checking==1.85.1" "grpcio-reflection==1.85.1" "h2==4.3.0" "pytest==8.4.2"
    "check-jsonschema==0.33.3")
python_modules=(kafka confluent_kafka aiokafka cramjam lz4 snappy zstandard requests
    grpc grpc_tools grpc_status grpc_health grpc_reflection h2 pytest
    check_jsonschema)
for i in "${!python_packages[@]}"; do
    if ! python3 -c "import ${python_modules[$i]}" >/dev/null 2>&1; then
        echo "installing ${python_packages[$i]}"
        python3 -m pip install --quiet --disable-pip-version-check "${python_packages[$i]}"
    fi
done

# The S3 server of moto, for fjord-storage's S3 conformance tests and ranged-read
# benchmark (MinIO is not installable from the package registries CI reaches).
# Pinned like the clients; reinstalled when another version is present.
moto_version="5.2.1"
installed_moto="$(python3 -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)"
if [[ "$installed_moto" != "$moto_version" ]] || ! python3 -c 'import moto.server' >/dev/null 2>&1; then
    echo "installing moto[server]==$moto_version (found: ${installed_moto:-none})"
    python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi

# Schemathesis, the property-based HTTP fuzzer of the gateway's OpenAPI
# document (pinned like the clients).
schemathesis_version="4.32.5"
installed_schemathesis="$(python3 -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)"
if [[ "$installed_schemathesis" != "$schemathesis_version" ]]; then
    echo "installing schemathesis==$schemathesis_version (found: ${installed_schemathesis:-none})"
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

# The Terraform checks (scripts/test-deploy.sh): python-hcl2 parses the HCL
# for the structural tests; checkov lints it. checkov pins its own fork of the
# HCL parser (bc-python-hcl2, also imported as `hcl2`) and many libraries, so it
# lives in its own virtual environment. Both pinned, reinstalled when another
# version is present.
hcl2_version="8.1.4"
installed_hcl2="$(python3 -c 'import importlib.metadata as m; print(m.version("python-hcl2"))' 2>/dev/null || true)"
if [[ "$installed_hcl2" != "$hcl2_version" ]]; then
    echo "installing python-hcl2==$hcl2_version (found: ${installed_hcl2:-none})"
    python3 -m pip install --quiet --disable-pip-version-check "python-hcl2==$hcl2_version"
fi
checkov_version="3.3.30"
checkov_venv="${XDG_CACHE_HOME:-$HOME/.cache}/fjord/checkov-$checkov_version"
if ! "$checkov_venv/bin/checkov" --version 2>/dev/null | grep -qx "$checkov_version"; then
    echo "installing checkov==$checkov_version into $checkov_venv"
    rm -rf "$checkov_venv"
    python3 -m venv "$checkov_venv"
    "$checkov_venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$checkov_version"
fi

# LocalStack's S3, run without Docker, for the storage conformance tests
# (storage/src/testing.rs starts it): localstack-core in its own virtual
# environment on Python 3.13 (this release imports `warnings.deprecated`).
# Pins on top of its resolution, which it needs to start: cbor2 before 6 (it
# imports `cbor2._decoder`), and cryptography / pyOpenSSL / service-identity
# at versions whose certificate APIs it uses.
localstack_version="2026.3.0"
localstack_venv="${XDG_CACHE_HOME:-$HOME/.cache}/fjord/localstack-$localstack_version"
if ! "$localstack_venv/bin/python" -c 'import localstack.aws.components, service_identity' >/dev/null 2>&1; then
    # A Python 3.13 that runs: on PATH, or one of pyenv's versions.
    python313=""
    for candidate in python3.13 "$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13; do
        if "$candidate" -c 'import venv' >/dev/null 2>&1; then
            python313="$candidate"
            break
        fi
    done
    if [[ -z "$python313" ]]; then
        echo "LocalStack's S3 needs Python 3.13 (no python3.13 on PATH or under pyenv)" >&2
        exit 1
    fi
    echo "installing localstack-core==$localstack_version into $localstack_venv"
    rm -rf "$localstack_venv"
    "$python313" -m venv "$localstack_venv"
    "$localstack_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "localstack-core[runtime]==$localstack_version" "service-identity==24.2.0"
    "$localstack_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        "cbor2==5.6.5" "cryptography==43.0.3" "pyopenssl==24.2.1"
    "$localstack_venv/bin/python" -c 'import localstack.aws.components, service_identity'
fi

# The stream-processing apps of agent/tests/stream_apps.rs (tests/apps/):
# Quix Streams (over confluent-kafka) and faust-streaming (over aiokafka), with
# rocksdict for their RocksDB state, in their own virtual environment: Faust
# needs aiokafka 0.13 or later against a broker without CreateTopics v0-v1
# (Kafka 4, Fjord), while the compatibility tests pin aiokafka 0.12.0. Pinned;
# reinstalled when another version of any of them is present.
stream_apps_packages=("quixstreams==3.28.1" "faust-streaming==0.15.3" "aiokafka==0.14.0"
    "confluent-kafka==2.12.1" "rocksdict==0.3.29")
stream_apps_venv="${XDG_CACHE_HOME:-$HOME/.cache}/fjord/stream-apps"
stream_apps_installed() {
    "$stream_apps_venv/bin/python" - "${stream_apps_packages[@]}" <<'EOF' >/dev/null 2>&1
import importlib.metadata as metadata
import sys

for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if metadata.version(name) != version:
        sys.exit(1)
import confluent_kafka, faust, quixstreams, rocksdict  # noqa: E401,F401
EOF
}
if ! stream_apps_installed; then
    echo "installing ${stream_apps_packages[*]} into $stream_apps_venv"
    rm -rf "$stream_apps_venv"
    python3 -m venv "$stream_apps_venv"
    "$stream_apps_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "${stream_apps_packages[@]}"
    stream_apps_installed
fi

# kafka-python 3 for the admin API tests (agent/tests/admin_apis.rs): its
# admin client sends DescribeTopicPartitions, DescribeLogDirs, ElectLeaders,
# the partition reassignment APIs and DescribeQuorum, which 2.2 does not; the
# other tests pin kafka-python 2.2.15, so it lives in its own virtual
# environment. Pinned; reinstalled when another version is present.
kafka_python3_version="3.0.12"
kafka_python3_venv="${XDG_CACHE_HOME:-$HOME/.cache}/fjord/kafka-python-$kafka_python3_version"
if ! "$kafka_python3_venv/bin/python" -c "import kafka, sys; sys.exit(kafka.__version__ != '$kafka_python3_version')" >/dev/null 2>&1; then
    echo "installing kafka-python==$kafka_python3_version into $kafka_python3_venv"
    rm -rf "$kafka_python3_venv"
    python3 -m venv "$kafka_python3_venv"
    "$kafka_python3_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kafka-python==$kafka_python3_version"
fi

node_dir="$(dirname "$0")/../tests/clients/node"
if ! command -v npm >/dev/null 2>&1; then
    echo "installing Debian packages: nodejs npm"
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends nodejs npm
fi
# kafkajs and the pure-JavaScript codecs it is given (snappy, lz4, zstd), pinned
# by the lock file; reinstalled whenever the lock file changes.
if ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.fjord-installed-lock"; then
    echo "installing kafkajs and its codecs"
    (cd "$node_dir" && npm ci --no-audit --no-fund --silent \
        && cp package-lock.json node_modules/.fjord-installed-lock)
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
    echo "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
