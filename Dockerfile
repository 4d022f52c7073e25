# syntax=docker/dockerfile:1
# The Fjord agent's container image.
#
#   docker build -t fjord .                       # SQLite and FoundationDB metadata
#   docker build --build-arg FDB=0 -t fjord .     # without FoundationDB (SQLite only)
#
# Two stages: the release binary is built in the Rust image (with the
# FoundationDB client library and libclang for the `fdb` feature), and runs
# as a non-root user in a slim Debian image that carries only the FoundationDB
# client library (libfdb_c) and curl for the health check.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm
# The FoundationDB release whose client library the agent loads (API 7.3).
ARG FDB_VERSION=7.3.59

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
ARG FDB
ARG FDB_VERSION
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN if [ "${FDB:-1}" = 1 ]; then \
      arch="$([ "$TARGETARCH" = arm64 ] && echo aarch64 || echo amd64)"; \
      curl -fsSL --retry 5 -o /tmp/fdb-clients.deb \
        "https://github.com/apple/foundationdb/releases/download/${FDB_VERSION}/foundationdb-clients_${FDB_VERSION}-1_${arch}.deb" \
      && dpkg -i /tmp/fdb-clients.deb && rm /tmp/fdb-clients.deb; \
    fi
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    features="$([ "${FDB:-1}" = 1 ] && echo '--features fdb' || true)" \
 && cargo build --release --locked -p fjord-agent --bin fjord $features \
 && install -m 0755 target/release/fjord /usr/local/bin/fjord

FROM debian:${DEBIAN_RELEASE}-slim
ARG FDB
ARG FDB_VERSION
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && if [ "${FDB:-1}" = 1 ]; then \
      arch="$([ "$TARGETARCH" = arm64 ] && echo aarch64 || echo amd64)"; \
      curl -fsSL --retry 5 -o /tmp/fdb-clients.deb \
        "https://github.com/apple/foundationdb/releases/download/${FDB_VERSION}/foundationdb-clients_${FDB_VERSION}-1_${arch}.deb" \
      && dpkg -i /tmp/fdb-clients.deb && rm /tmp/fdb-clients.deb; \
    fi \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/fjord --create-home --shell /usr/sbin/nologin fjord
COPY --from=build /usr/local/bin/fjord /usr/local/bin/fjord
USER fjord
WORKDIR /var/lib/fjord
# Kafka, and the HTTP/gRPC gateway.
EXPOSE 9092 8080
ENV FJORD_KAFKA_LISTEN=0.0.0.0:9092 \
    FJORD_HTTP_LISTEN=0.0.0.0:8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
# SIGTERM hands the agent's partitions off; give it its shutdown timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/fjord", "agent"]
CMD ["--data-dir", "/var/lib/fjord"]
