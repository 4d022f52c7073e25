//! [`AgentArgs`]: the flags of `fjord agent`, the top layer of the settings.
//!
//! Every flag is an `Option` without a clap default, so only flags actually
//! given override the layers below (defaults, file, environment); clap reads no
//! environment variable itself. Each help text names the environment variable
//! and the default, and a test holds them to [`AgentSettings`](super::AgentSettings).

use std::path::PathBuf;

use serde::Serialize;

use super::LatencyModel;
use crate::security::SecurityProtocol;
use crate::security::tls::ClientAuth;

/// The flags of `fjord agent`. Serializes (kebab-case, flags not given left
/// out) into the flag layer of [`AgentSettings::load`](super::AgentSettings::load).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AgentArgs {
    /// A TOML file of settings named like the flags without their dashes
    /// (`flush-interval-ms = 50`), with an optional `version = 1`. Flags override
    /// environment variables, which override the file, which overrides the
    /// defaults. [env: FJORD_CONFIG]
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Directory for the agent's local state (and the default metadata file,
    /// bucket, write-ahead log and read cache). [env: FJORD_DATA_DIR] [default: fjord-data]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Metadata backend URL: `sqlite://<path>`, `fdb://[<cluster file>]` or `memory://`.
    /// [env: FJORD_METADATA_URL] [default: sqlite://{data-dir}/metadata.db]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// Object storage URL: `file://<dir>`, `s3://<bucket>[/<prefix>]` (endpoint and
    /// credentials from the AWS_* environment) or `memory://`.
    /// [env: FJORD_STORAGE_URL] [default: file://{data-dir}/bucket]
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
    /// Directory of the write-ahead log. [env: FJORD_WAL_DIR] [default: {data-dir}/wal]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_dir: Option<PathBuf>,
    /// Directory of the read cache of object ranges.
    /// [env: FJORD_CACHE_DIR] [default: {data-dir}/cache]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,

    /// What this agent does, comma-separated: `serve` (lead partitions and
    /// coordinator shards, be advertised to clients) and `jobs` (retention,
    /// garbage collection). [env: FJORD_ROLES] [default: serve,jobs]
    #[arg(long, value_name = "ROLES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,

    /// The address the Kafka listener binds (host:port).
    /// [env: FJORD_KAFKA_LISTEN] [default: 127.0.0.1:9092]
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_listen: Option<String>,
    /// The host:port clients are told to connect to.
    /// [env: FJORD_ADVERTISED_ADDRESS] [default: the address the listener bound]
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertised_address: Option<String>,
    /// The address the HTTP gateway binds (host:port), or `off`.
    /// [env: FJORD_HTTP_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// The largest HTTP request body the gateway reads; a larger one is
    /// answered 413. [env: FJORD_HTTP_MAX_BODY_BYTES] [default: 33554432]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_max_body_bytes: Option<usize>,
    /// The largest request frame accepted (socket.request.max.bytes); a larger
    /// one closes the connection. [env: FJORD_SOCKET_REQUEST_MAX_BYTES] [default: 104857600]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_request_max_bytes: Option<usize>,
    /// Bytes of requests read and not yet answered, over all connections,
    /// before the agent stops reading more (queued.max.request.bytes; at least
    /// socket-request-max-bytes). [env: FJORD_QUEUED_MAX_REQUEST_BYTES] [default: 524288000]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_max_request_bytes: Option<usize>,
    /// Close a connection with no request for this long (connections.max.idle.ms).
    /// [env: FJORD_CONNECTIONS_MAX_IDLE_MS] [default: 600000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_max_idle_ms: Option<u64>,
    /// The most bytes one Fetch response carries (fetch.max.bytes).
    /// [env: FJORD_FETCH_MAX_BYTES] [default: 57671680]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_max_bytes: Option<usize>,

    /// The Kafka listener's security protocol: PLAINTEXT, SSL (TLS, with
    /// --tls-cert-file and --tls-key-file), SASL_PLAINTEXT or SASL_SSL (SASL
    /// with --sasl-enabled-mechanisms, over TCP or TLS).
    /// [env: FJORD_KAFKA_SECURITY_PROTOCOL] [default: PLAINTEXT]
    #[arg(long, value_name = "PROTOCOL", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_security_protocol: Option<SecurityProtocol>,
    /// PEM file of the TLS certificate, then its chain (the Kafka listener's
    /// under SSL, the gateway's under --http-tls); reloaded when it changes.
    /// [env: FJORD_TLS_CERT_FILE] [default: none]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file of the certificate's private key (unencrypted); reloaded
    /// when it changes. [env: FJORD_TLS_KEY_FILE] [default: none]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM file of the CAs that sign client certificates (needed by
    /// --tls-client-auth requested or required); reloaded when it changes.
    /// [env: FJORD_TLS_CLIENT_CA_FILE] [default: none]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Whether TLS clients are asked for a certificate (ssl.client.auth):
    /// none, requested (a client without one is User:ANONYMOUS) or required;
    /// a certificate makes its subject the principal (User:CN=...).
    /// [env: FJORD_TLS_CLIENT_AUTH] [default: none]
    #[arg(long, value_name = "AUTH", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth: Option<ClientAuth>,
    /// Serve the HTTP/gRPC gateway over TLS (HTTP/1.1 and HTTP/2 by ALPN)
    /// with --tls-cert-file and --tls-client-auth, as the Kafka listener.
    /// [env: FJORD_HTTP_TLS] [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_tls: Option<bool>,
    /// The SASL mechanisms a SASL_PLAINTEXT or SASL_SSL listener accepts,
    /// comma-separated: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (Kafka's
    /// sasl.enabled.mechanisms; users are SCRAM credentials in metadata).
    /// [env: FJORD_SASL_ENABLED_MECHANISMS] [default: SCRAM-SHA-256,SCRAM-SHA-512]
    #[arg(long, value_name = "MECHANISMS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_enabled_mechanisms: Option<String>,

    /// Create unknown topics named in Metadata requests (auto.create.topics.enable).
    /// [env: FJORD_AUTO_CREATE_TOPICS] [default: true]
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of auto-created topics (num.partitions).
    /// [env: FJORD_NUM_PARTITIONS] [default: 1]
    #[arg(long, value_name = "COUNT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_partitions: Option<i32>,

    /// The authorizer (authorizer.class.name): none (every request is
    /// allowed) or acl (Kafka's ACLs, kept in metadata and managed with
    /// CreateAcls, DescribeAcls and DeleteAcls; docs/security.md).
    /// [env: FJORD_AUTHORIZER] [default: none]
    #[arg(long, value_name = "AUTHORIZER", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<crate::security::authorizer::AuthorizerKind>,
    /// Principals allowed everything by the acl authorizer, separated by
    /// semicolons (super.users), as User:admin;User:ops.
    /// [env: FJORD_SUPER_USERS] [default: none]
    #[arg(long, value_name = "PRINCIPALS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub super_users: Option<String>,
    /// Let everyone at a resource no ACL applies to
    /// (allow.everyone.if.no.acl.found); otherwise the acl authorizer denies
    /// it. [env: FJORD_ALLOW_EVERYONE_IF_NO_ACL_FOUND] [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_everyone_if_no_acl_found: Option<bool>,

    /// How often accepted batches are flushed into a segment object.
    /// [env: FJORD_FLUSH_INTERVAL_MS] [default: 100]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_interval_ms: Option<u64>,
    /// Flush before the interval once produce requests wait for a commit and
    /// no batch arrived for this long (the producers are waiting for their
    /// answers), even while other flushes are in flight (up to
    /// max-inflight-uploads); 0 flushes on the interval and flush-bytes only
    /// (fewer PUTs, more latency). At most the interval.
    /// [env: FJORD_FLUSH_IDLE_US] [default: 1000]
    #[arg(long, value_name = "US")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_idle_us: Option<u64>,
    /// Flush as soon as this many bytes of records are pending, before the
    /// interval ends (larger: fewer PUTs per GiB at high load; at most
    /// max-unflushed-bytes). [env: FJORD_FLUSH_BYTES] [default: 8388608]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_bytes: Option<usize>,
    /// Bytes accepted and not yet taken by a flush before appends wait
    /// (backpressure; a flush starts at once when the limit is reached).
    /// [env: FJORD_MAX_UNFLUSHED_BYTES] [default: 67108864]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unflushed_bytes: Option<usize>,
    /// Segments built and uploaded at once (a partition's commits stay in
    /// offset order).
    /// [env: FJORD_MAX_INFLIGHT_UPLOADS] [default: 4]
    #[arg(long, value_name = "COUNT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inflight_uploads: Option<usize>,
    /// The zstd level of segment chunks (1 is fast; higher levels cost CPU on
    /// every flush for little gain on typical records).
    /// [env: FJORD_SEGMENT_ZSTD_LEVEL] [default: 1]
    #[arg(long, value_name = "LEVEL", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_zstd_level: Option<i32>,
    /// Bytes the write-ahead log may hold before produces wait (backpressure;
    /// at least socket-request-max-bytes). [env: FJORD_WAL_MAX_BYTES] [default: 536870912]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_max_bytes: Option<u64>,

    /// A read that misses the caches fetches the whole segment object with one
    /// GET when it is at most this large, and caches its other partitions'
    /// chunks on disk (0: read only the chunk asked for).
    /// [env: FJORD_WHOLE_OBJECT_READ_BYTES] [default: 33554432]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whole_object_read_bytes: Option<u64>,
    /// Bytes of just-committed batches a leader keeps in memory for readers
    /// at the tail (0: none; reads go through the index).
    /// [env: FJORD_TAIL_CACHE_BYTES] [default: 67108864]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_cache_bytes: Option<u64>,
    /// Bytes the disk read cache may hold (0 disables it).
    /// [env: FJORD_DISK_CACHE_BYTES] [default: 1073741824; 0 over a file:// bucket]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_cache_bytes: Option<u64>,

    /// How often the agent renews its registration.
    /// [env: FJORD_HEARTBEAT_INTERVAL_MS] [default: 500]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_ms: Option<u64>,
    /// An agent whose heartbeat has not moved for this long (by each observer's
    /// own clock) is dead, and its partitions move; more than twice
    /// heartbeat-interval-ms. Shorter: faster takeover; longer: fewer false
    /// takeovers during pauses. [env: FJORD_LEASE_TIMEOUT_MS] [default: 2000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_timeout_ms: Option<u64>,
    /// How often each agent checks partition placement and moves leadership
    /// (less than lease-timeout-ms). [env: FJORD_BALANCE_INTERVAL_MS] [default: 250]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_interval_ms: Option<u64>,
    /// On SIGTERM, how long the agent waits for what its partitions accepted to
    /// commit before it gives them up (they are handed off as each finishes).
    /// [env: FJORD_SHUTDOWN_TIMEOUT_MS] [default: 20000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_ms: Option<u64>,

    /// How long a new consumer group's first rebalance waits for more members
    /// (group.initial.rebalance.delay.ms).
    /// [env: FJORD_GROUP_INITIAL_REBALANCE_DELAY_MS] [default: 3000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// The shortest session timeout a group member may ask for
    /// (group.min.session.timeout.ms).
    /// [env: FJORD_GROUP_MIN_SESSION_TIMEOUT_MS] [default: 6000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_min_session_timeout_ms: Option<u64>,
    /// The longest session timeout a group member may ask for
    /// (group.max.session.timeout.ms).
    /// [env: FJORD_GROUP_MAX_SESSION_TIMEOUT_MS] [default: 1800000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_max_session_timeout_ms: Option<u64>,
    /// How long a member of a server-side consumer group (KIP-848) may go
    /// without a heartbeat (group.consumer.session.timeout.ms).
    /// [env: FJORD_GROUP_CONSUMER_SESSION_TIMEOUT_MS] [default: 45000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_session_timeout_ms: Option<u64>,
    /// How often members of a server-side consumer group heartbeat
    /// (group.consumer.heartbeat.interval.ms).
    /// [env: FJORD_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS] [default: 5000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_heartbeat_interval_ms: Option<u64>,
    /// Committed offsets of a group that has been empty this long are deleted
    /// (offsets.retention.minutes). [env: FJORD_OFFSETS_RETENTION_MINUTES] [default: 10080]
    #[arg(long, value_name = "MINUTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets_retention_minutes: Option<u64>,
    /// How often expired committed offsets are looked for
    /// (offsets.retention.check.interval.ms).
    /// [env: FJORD_OFFSETS_RETENTION_CHECK_INTERVAL_MS] [default: 600000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets_retention_check_interval_ms: Option<u64>,

    /// How long records are kept before retention deletes them, for topics
    /// that set no `retention.ms` (log.retention.ms; -1 keeps everything;
    /// wins over --log-retention-hours). [env: FJORD_LOG_RETENTION_MS]
    /// [default: none: --log-retention-hours applies]
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_retention_ms: Option<i64>,
    /// log.retention.hours, used when --log-retention-ms is not set.
    /// [env: FJORD_LOG_RETENTION_HOURS] [default: 168]
    #[arg(long, value_name = "HOURS", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_retention_hours: Option<i64>,
    /// The bytes a partition keeps at least before retention deletes its
    /// oldest records, for topics that set no `retention.bytes`
    /// (log.retention.bytes; -1 is no limit). [env: FJORD_LOG_RETENTION_BYTES] [default: -1]
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_retention_bytes: Option<i64>,
    /// How often retention and the bucket's garbage collection run
    /// (log.retention.check.interval.ms).
    /// [env: FJORD_LOG_RETENTION_CHECK_INTERVAL_MS] [default: 300000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_retention_check_interval_ms: Option<u64>,
    /// How long an object no index entry references stays in the bucket
    /// before it is deleted; longer than any read holds an index answer.
    /// [env: FJORD_OBJECT_GRACE_MS] [default: 600000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_grace_ms: Option<u64>,
    /// How often object compaction merges small segment objects into large
    /// ones (0 turns it off). [env: FJORD_OBJECT_COMPACTION_INTERVAL_MS] [default: 60000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_compaction_interval_ms: Option<u64>,
    /// Objects younger than this are left to be compacted later.
    /// [env: FJORD_OBJECT_COMPACTION_MIN_AGE_MS] [default: 300000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_compaction_min_age_ms: Option<u64>,
    /// Objects smaller than this are compacted.
    /// [env: FJORD_OBJECT_COMPACTION_SMALL_BYTES] [default: 33554432]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_compaction_small_bytes: Option<u64>,
    /// The most bytes of small objects one compaction run reads (and holds
    /// in memory). [env: FJORD_OBJECT_COMPACTION_RUN_BYTES] [default: 134217728]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_compaction_run_bytes: Option<u64>,
    /// How often log compaction cleans the partitions of topics with
    /// cleanup.policy=compact (log.cleaner.backoff.ms; 0 turns it off).
    /// [env: FJORD_LOG_COMPACTION_INTERVAL_MS] [default: 15000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_compaction_interval_ms: Option<u64>,
    /// Memory of log compaction's key map, 24 bytes per key
    /// (log.cleaner.dedupe.buffer.size); a partition with more keys to clean
    /// is cleaned over several passes.
    /// [env: FJORD_LOG_COMPACTION_BUFFER_BYTES] [default: 134217728]
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_compaction_buffer_bytes: Option<u64>,

    /// A producer id with no write for this long is forgotten
    /// (producer.id.expiration.ms). [env: FJORD_PRODUCER_ID_EXPIRATION_MS] [default: 86400000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer_id_expiration_ms: Option<u64>,
    /// How often expired producer ids are looked for
    /// (producer.id.expiration.check.interval.ms).
    /// [env: FJORD_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS] [default: 600000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer_id_expiration_check_interval_ms: Option<u64>,

    /// Delay every object-store request as a modelled S3 class would
    /// (docs/latency-profiles.md). For benchmarks only: the model adds latency,
    /// it does not make a local bucket behave like S3 in any other way.
    /// [env: FJORD_STORAGE_LATENCY_PROFILE] [default: none]
    #[arg(long, value_name = "MODEL", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_latency_profile: Option<LatencyModel>,
    /// Seed of the latency model's draws (a run replays with the same seed).
    /// [env: FJORD_STORAGE_LATENCY_SEED] [default: 0]
    #[arg(long, value_name = "SEED")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_latency_seed: Option<u64>,
    /// Send a PUT again when it has not answered after this long (plus
    /// hedge-put-per-mib-ms per MiB of payload), taking whichever answers
    /// first; 0 turns PUT hedging off (docs/operations.md).
    /// [env: FJORD_HEDGE_PUT_AFTER_MS] [default: 0]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedge_put_after_ms: Option<u64>,
    /// Transfer allowance per MiB of a PUT before it is hedged.
    /// [env: FJORD_HEDGE_PUT_PER_MIB_MS] [default: 12]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedge_put_per_mib_ms: Option<u64>,
    /// Send a GET again when it has not answered after this long; 0: never.
    /// [env: FJORD_HEDGE_GET_AFTER_MS] [default: 0]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedge_get_after_ms: Option<u64>,

    /// Write the object-store request counters as one JSON object to this file,
    /// every stats-interval-ms and once more after the final flush at shutdown
    /// (replaced atomically; benchmarks read it). [env: FJORD_STATS_FILE] [default: none]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_file: Option<PathBuf>,
    /// How often stats-file is rewritten. [env: FJORD_STATS_INTERVAL_MS] [default: 1000]
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_interval_ms: Option<u64>,

    /// Tests only: faults to inject into object-store requests (a spec; empty:
    /// none). [env: FJORD_FAULT_OBJECT_STORE] [default: none]
    #[arg(long, value_name = "SPEC", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_object_store: Option<String>,
    /// Tests only: faults to inject into metadata transactions (a spec; empty:
    /// none). [env: FJORD_FAULT_METADATA] [default: none]
    #[arg(long, value_name = "SPEC", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_metadata: Option<String>,
    /// Tests only: seed of the fault injectors' draws. [env: FJORD_FAULT_SEED] [default: 0]
    #[arg(long, value_name = "SEED", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_seed: Option<u64>,
    /// Tests only: a file that sets the injected faults while the agent runs
    /// (lines `object-store=<spec>`, `metadata=<spec>`; empty: none).
    /// [env: FJORD_FAULT_CONTROL_FILE] [default: none]
    #[arg(long, value_name = "PATH", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_control_file: Option<PathBuf>,
}
