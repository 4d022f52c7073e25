#!/usr/bin/env bash
# The whole Fjord test suite, runnable on a fresh Debian machine: installs what it
# needs (idempotently), then runs formatting, lints, every test and the doctests,
# and type-checks the FoundationDB backend.
#
# FoundationDB conformance tests run too when FJORD_FDB_CLUSTER_FILE names a
# cluster file (they need libfdb_c and a running cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing dependencies"
scripts/install-deps.sh

step "deployment checks (compose schema; terraform structural tests, checkov; fmt, validate and test where terraform exists)"
scripts/test-deploy.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (default features)"
cargo clippy --locked --workspace --all-targets --features fjord-client/grpc -- -D warnings

step "cargo clippy (FoundationDB backend and the agent built with it, type-checked only)"
cargo clippy --locked -p fjord-metadata -p fjord-agent --features fdb --all-targets -- -D warnings

if [[ -n "${FJORD_FDB_CLUSTER_FILE:-}" ]]; then
    step "FoundationDB conformance against ${FJORD_FDB_CLUSTER_FILE}"
    cargo nextest run --locked -p fjord-metadata --features fdb --no-fail-fast -E 'test(/^fdb::/)'
fi

step "doctests"
cargo test --locked --workspace --features fjord-client/grpc --doc

step "tests (cargo nextest)"
cargo nextest run --locked --workspace --features fjord-client/grpc --no-fail-fast
