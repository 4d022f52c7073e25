//! [`AgentSettings`]: every `fjord agent` setting, its default, and the
//! component settings built from it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::security::SecurityProtocol;
use crate::security::tls::{ClientAuth, TlsFiles};

/// The settings format this build reads (the file's `version`; absent means 1).
pub const CONFIG_VERSION: u32 = 1;

/// The `http-listen` value that turns the HTTP gateway off.
pub(super) const HTTP_OFF: &str = "off";

/// The disk read cache's size when none is set and the bucket is remote.
const DEFAULT_DISK_CACHE_BYTES: u64 = 1024 * 1024 * 1024;

/// Every setting of `fjord agent`, as one serializable value.
///
/// Names are the kebab-case flag names (`flush-interval-ms`); Kafka's own
/// settings keep Kafka's names with dots turned into dashes
/// (`connections.max.idle.ms` is `connections-max-idle-ms`), and durations stay
/// integers with their unit in the name, as Kafka's `.ms` settings do, so files,
/// environment variables and flags written for earlier builds keep working.
///
/// The fields are public so tests and embedders can build settings in code;
/// call [`AgentSettings::validate`] on settings built that way
/// ([`AgentSettings::load`] validates what it returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct AgentSettings {
    /// The settings format version ([`CONFIG_VERSION`]).
    pub version: u32,

    // -- where things are --
    /// Directory for the agent's local state (and the default metadata file,
    /// bucket, write-ahead log and read cache).
    pub data_dir: PathBuf,
    /// Metadata backend URL: `sqlite://<path>`, `fdb://[<cluster file>]` or
    /// `memory://`. `None`: `sqlite://<data-dir>/metadata.db`.
    pub metadata_url: Option<String>,
    /// Object storage URL: `file://<dir>`, `s3://<bucket>[/<prefix>]` or
    /// `memory://`. `None`: `file://<data-dir>/bucket`.
    pub storage_url: Option<String>,
    /// Directory of the write-ahead log. `None`: `<data-dir>/wal`.
    pub wal_dir: Option<PathBuf>,
    /// Directory of the disk read cache. `None`: `<data-dir>/cache`.
    pub cache_dir: Option<PathBuf>,

    // -- the Kafka listener --
    /// The address the Kafka listener binds (`host:port`).
    pub kafka_listen: String,
    /// `serve`, `jobs` or both, comma-separated.
    pub roles: String,
    /// The `host:port` clients are told to connect to. `None`: the address the
    /// listener bound.
    pub advertised_address: Option<String>,
    /// The address the HTTP gateway binds (`host:port`), or `off`.
    pub http_listen: String,
    /// The largest HTTP request body the gateway reads; a larger one is
    /// answered 413.
    pub http_max_body_bytes: usize,
    /// `socket.request.max.bytes`: the largest request frame accepted; a
    /// larger one closes the connection.
    pub socket_request_max_bytes: usize,
    /// `queued.max.request.bytes`: bytes of requests read and not yet answered,
    /// over all connections, before the agent stops reading more. Kafka's
    /// default (-1) is unbounded; Fjord bounds every queue.
    pub queued_max_request_bytes: usize,
    /// `connections.max.idle.ms`: a connection with no request for this long
    /// is closed.
    pub connections_max_idle_ms: u64,
    /// `fetch.max.bytes`: the most bytes one Fetch response carries (the first
    /// batch is returned even when larger, as in Kafka).
    pub fetch_max_bytes: usize,

    // -- security (docs/security.md) --
    /// The Kafka listener's security protocol: `PLAINTEXT`, `SSL`,
    /// `SASL_PLAINTEXT` or `SASL_SSL` (Kafka's names).
    pub kafka_security_protocol: SecurityProtocol,
    /// PEM: the TLS certificate, then its chain (for `SSL`, `SASL_SSL` and
    /// `http-tls`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM: the certificate's private key, unencrypted.
    pub tls_key_file: Option<PathBuf>,
    /// PEM: the CAs client certificates must be signed by.
    pub tls_client_ca_file: Option<PathBuf>,
    /// `ssl.client.auth`: whether clients are asked for a certificate
    /// (`none`, `requested`, `required`).
    pub tls_client_auth: ClientAuth,
    /// Serve the HTTP/gRPC gateway over TLS with the same certificate.
    pub http_tls: bool,
    /// `sasl.enabled.mechanisms`: the mechanisms a `SASL_*` listener accepts,
    /// comma-separated.
    pub sasl_enabled_mechanisms: String,

    // -- topics --
    /// `auto.create.topics.enable`: create unknown topics named in Metadata requests.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of auto-created topics.
    pub num_partitions: i32,

    // -- authorization (docs/security.md) --
    /// `authorizer.class.name`: `none` (every request is allowed) or `acl`
    /// (Kafka's ACLs, stored in metadata).
    pub authorizer: crate::security::authorizer::AuthorizerKind,
    /// `super.users`: principals allowed everything, separated by
    /// semicolons (`User:admin;User:ops`).
    pub super_users: String,
    /// `allow.everyone.if.no.acl.found`: a resource no ACL applies to is open
    /// to everyone (false: denied).
    pub allow_everyone_if_no_acl_found: bool,

    // -- the write path --
    /// How often accepted batches are flushed into a segment object.
    pub flush_interval_ms: u64,
    /// Flush early once requests wait for a commit and nothing arrived for
    /// this long (microseconds; 0: off).
    pub flush_idle_us: u64,
    /// Flush as soon as this many bytes of records are pending.
    pub flush_bytes: usize,
    /// Bytes accepted and not yet taken by a flush before appends wait
    /// (backpressure).
    pub max_unflushed_bytes: usize,
    /// Segments built and uploaded at once (a partition's commits stay in offset order).
    pub max_inflight_uploads: usize,
    /// The zstd level of segment chunks.
    pub segment_zstd_level: i32,
    /// Bytes the write-ahead log may hold before produces wait (backpressure).
    pub wal_max_bytes: u64,

    // -- the read path --
    /// A read that misses the caches fetches the whole segment object with one
    /// GET when it is at most this large (0: only the chunk asked for).
    pub whole_object_read_bytes: u64,
    /// Bytes of just-committed batches a leader keeps in memory (0: none).
    pub tail_cache_bytes: u64,
    /// Bytes the disk read cache may hold (0 disables it); unset: 1 GiB, or
    /// none over a local-directory bucket (see [`AgentSettings::disk_cache_bytes`]).
    pub disk_cache_bytes: Option<u64>,

    // -- membership and balancing --
    /// How often the agent renews its registration.
    pub heartbeat_interval_ms: u64,
    /// An agent whose heartbeat has not moved for this long is dead.
    pub lease_timeout_ms: u64,
    /// How often each agent checks partition placement.
    pub balance_interval_ms: u64,
    /// On SIGTERM, how long the agent waits for what its partitions accepted to
    /// commit before it gives them up.
    pub shutdown_timeout_ms: u64,

    // -- consumer groups --
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: u64,
    /// `group.consumer.session.timeout.ms`.
    pub group_consumer_session_timeout_ms: u64,
    /// `group.consumer.heartbeat.interval.ms`.
    pub group_consumer_heartbeat_interval_ms: u64,
    /// `offsets.retention.minutes`: committed offsets of a group that has been
    /// empty this long are deleted.
    pub offsets_retention_minutes: u64,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are looked for.
    pub offsets_retention_check_interval_ms: u64,

    // -- retention --
    /// `log.retention.ms`: wins over `log_retention_hours` when set.
    pub log_retention_ms: Option<i64>,
    /// `log.retention.hours`.
    pub log_retention_hours: i64,
    /// `log.retention.bytes`.
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
    /// How long an unreferenced object stays in the bucket.
    pub object_grace_ms: u64,
    /// How often object compaction runs (0: never).
    pub object_compaction_interval_ms: u64,
    /// Objects younger than this are not compacted yet.
    pub object_compaction_min_age_ms: u64,
    /// Objects smaller than this are compacted.
    pub object_compaction_small_bytes: u64,
    /// The most bytes of small objects one compaction run reads.
    pub object_compaction_run_bytes: u64,
    /// How often log compaction runs (0: never); `log.cleaner.backoff.ms`.
    pub log_compaction_interval_ms: u64,
    /// The memory of log compaction's key map; `log.cleaner.dedupe.buffer.size`.
    pub log_compaction_buffer_bytes: u64,

    // -- idempotent producers --
    /// `producer.id.expiration.ms`: a producer id with no write for this long is forgotten.
    pub producer_id_expiration_ms: u64,
    /// `producer.id.expiration.check.interval.ms`: how often expired producer ids are looked for.
    pub producer_id_expiration_check_interval_ms: u64,

    // -- object-store latency (benchmarks) --
    /// Delay every object-store request as a modelled S3 class would.
    pub storage_latency_profile: LatencyModel,
    /// Seed of the latency model's draws.
    pub storage_latency_seed: u64,
    /// Send a PUT again when it has not answered after this long (plus
    /// `hedge-put-per-mib-ms` per MiB); 0: never.
    pub hedge_put_after_ms: u64,
    /// Transfer allowance per MiB of a PUT before it is hedged.
    pub hedge_put_per_mib_ms: u64,
    /// Send a GET again when it has not answered after this long; 0: never.
    pub hedge_get_after_ms: u64,

    // -- statistics --
    /// Write the object-store request counters as JSON to this file.
    pub stats_file: Option<PathBuf>,
    /// How often `stats-file` is rewritten.
    pub stats_interval_ms: u64,

    // -- fault injection (tests only) --
    /// Faults injected into object-store requests, as a spec the agent's
    /// wiring parses (empty: none).
    pub fault_object_store: String,
    /// Faults injected into metadata transactions, as a spec the agent's
    /// wiring parses (empty: none).
    pub fault_metadata: String,
    /// Seed of the fault injectors' draws.
    pub fault_seed: u64,
    /// A file that sets the injected faults while the agent runs.
    pub fault_control_file: Option<PathBuf>,
}

impl Default for AgentSettings {
    /// The defaults of `fjord agent` with no flags, environment or file.
    fn default() -> Self {
        const MIB: usize = 1024 * 1024;
        Self {
            version: CONFIG_VERSION,
            data_dir: PathBuf::from("fjord-data"),
            metadata_url: None,
            storage_url: None,
            wal_dir: None,
            cache_dir: None,
            kafka_listen: "127.0.0.1:9092".to_owned(),
            roles: "serve,jobs".to_owned(),
            advertised_address: None,
            http_listen: "127.0.0.1:8080".to_owned(),
            http_max_body_bytes: 32 * MIB,
            socket_request_max_bytes: 100 * MIB,
            queued_max_request_bytes: 500 * MIB,
            connections_max_idle_ms: 600_000,
            fetch_max_bytes: 55 * MIB,
            kafka_security_protocol: SecurityProtocol::Plaintext,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_client_auth: ClientAuth::None,
            http_tls: false,
            sasl_enabled_mechanisms: "SCRAM-SHA-256,SCRAM-SHA-512".to_owned(),
            auto_create_topics: true,
            num_partitions: 1,
            authorizer: crate::security::authorizer::AuthorizerKind::None,
            super_users: String::new(),
            allow_everyone_if_no_acl_found: false,
            flush_interval_ms: 100,
            flush_idle_us: 1_000,
            flush_bytes: 8 * MIB,
            max_unflushed_bytes: 64 * MIB,
            max_inflight_uploads: 4,
            segment_zstd_level: fjord_storage::DEFAULT_ZSTD_LEVEL,
            wal_max_bytes: 512 * 1024 * 1024,
            whole_object_read_bytes: 32 * 1024 * 1024,
            tail_cache_bytes: 64 * 1024 * 1024,
            disk_cache_bytes: None,
            heartbeat_interval_ms: 500,
            lease_timeout_ms: 2_000,
            balance_interval_ms: 250,
            shutdown_timeout_ms: 20_000,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            log_retention_ms: None,
            log_retention_hours: 168,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            object_grace_ms: 600_000,
            object_compaction_interval_ms: 60_000,
            object_compaction_min_age_ms: 300_000,
            object_compaction_small_bytes: 32 << 20,
            object_compaction_run_bytes: 128 << 20,
            log_compaction_interval_ms: 15_000,
            log_compaction_buffer_bytes: 128 << 20,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            storage_latency_profile: LatencyModel::None,
            storage_latency_seed: 0,
            hedge_put_after_ms: 0,
            hedge_put_per_mib_ms: 12,
            hedge_get_after_ms: 0,
            stats_file: None,
            stats_interval_ms: 1_000,
            fault_object_store: String::new(),
            fault_metadata: String::new(),
            fault_seed: 0,
            fault_control_file: None,
        }
    }
}

/// The object-store latency models an agent can run under (benchmarks only:
/// the model adds latency, it does not make a local bucket behave like S3 in
/// any other way; see docs/latency-profiles.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyModel {
    /// No added latency.
    #[default]
    None,
    /// `LatencyProfile::S3_STANDARD`.
    S3Standard,
    /// `LatencyProfile::S3_EXPRESS_ONE_ZONE`.
    S3Express,
}

impl LatencyModel {
    /// The storage crate's profile, or `None` for no added latency.
    pub fn profile(self) -> Option<fjord_storage::object_store::LatencyProfile> {
        use fjord_storage::object_store::LatencyProfile;
        match self {
            LatencyModel::None => None,
            LatencyModel::S3Standard => Some(LatencyProfile::S3_STANDARD),
            LatencyModel::S3Express => Some(LatencyProfile::S3_EXPRESS_ONE_ZONE),
        }
    }
}

/// Component settings and resolved paths, for the agent's wiring.
impl AgentSettings {
    /// The write and read path's settings.
    pub fn log_settings(&self) -> crate::log::LogSettings {
        crate::log::LogSettings {
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            flush_idle: Duration::from_micros(self.flush_idle_us),
            flush_bytes: self.flush_bytes,
            max_pending_bytes: self.max_unflushed_bytes,
            max_inflight_uploads: self.max_inflight_uploads,
            compression_level: self.segment_zstd_level,
            whole_object_read_bytes: self.whole_object_read_bytes,
            tail_cache_bytes: self.tail_cache_bytes,
            producer_id_expiration: self.producer_id_expiration(),
            ..crate::log::LogSettings::default()
        }
    }

    /// The roles `roles` names (checked by validation; an unknown word is
    /// ignored here).
    pub fn roles(&self) -> fjord_metadata::AgentRoles {
        let words: Vec<&str> = self.roles.split(',').map(str::trim).collect();
        fjord_metadata::AgentRoles {
            serve: words.contains(&"serve"),
            jobs: words.contains(&"jobs"),
        }
    }

    /// Retention and garbage collection.
    pub fn retention_settings(&self) -> crate::maintenance::retention::RetentionSettings {
        crate::maintenance::retention::RetentionSettings {
            check_interval: Duration::from_millis(self.log_retention_check_interval_ms),
            default_retention_ms: self
                .log_retention_ms
                .unwrap_or(self.log_retention_hours.saturating_mul(3_600_000).max(-1)),
            default_retention_bytes: self.log_retention_bytes,
            object_grace: Duration::from_millis(self.object_grace_ms),
        }
    }

    /// Object compaction.
    pub fn compaction_settings(&self) -> crate::maintenance::compaction::CompactionSettings {
        crate::maintenance::compaction::CompactionSettings {
            interval: Duration::from_millis(self.object_compaction_interval_ms),
            min_age: Duration::from_millis(self.object_compaction_min_age_ms),
            small_object_bytes: self.object_compaction_small_bytes,
            run_bytes: self.object_compaction_run_bytes,
            ..crate::maintenance::compaction::CompactionSettings::default()
        }
    }

    /// Log compaction (`cleanup.policy=compact`).
    pub fn log_compaction_settings(
        &self,
    ) -> crate::maintenance::log_compaction::LogCompactionSettings {
        crate::maintenance::log_compaction::LogCompactionSettings {
            interval: Duration::from_millis(self.log_compaction_interval_ms),
            buffer_bytes: self.log_compaction_buffer_bytes,
            zstd_level: self.segment_zstd_level,
            ..crate::maintenance::log_compaction::LogCompactionSettings::default()
        }
    }

    /// Membership and balancing timings.
    pub fn cluster_settings(&self) -> crate::cluster::ClusterSettings {
        crate::cluster::ClusterSettings {
            lease_timeout: Duration::from_millis(self.lease_timeout_ms),
            balance_interval: Duration::from_millis(self.balance_interval_ms),
            hand_off_timeout: self.shutdown_timeout(),
        }
    }

    /// The consumer-group coordinator's settings.
    pub fn group_settings(&self) -> crate::groups::GroupSettings {
        crate::groups::GroupSettings {
            initial_rebalance_delay: Duration::from_millis(self.group_initial_rebalance_delay_ms),
            min_session_timeout: Duration::from_millis(self.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(self.group_max_session_timeout_ms),
            offsets_retention: self.offsets_retention(),
            offsets_retention_check_interval: self.offsets_retention_check_interval(),
            consumer: crate::groups::ConsumerGroupSettings {
                session_timeout: Duration::from_millis(self.group_consumer_session_timeout_ms),
                heartbeat_interval: Duration::from_millis(
                    self.group_consumer_heartbeat_interval_ms,
                ),
                ..crate::groups::ConsumerGroupSettings::default()
            },
            ..crate::groups::GroupSettings::default()
        }
    }

    /// The SASL mechanisms the Kafka listener accepts: none unless its
    /// protocol is `SASL_*` (names are checked by validation; an unknown one
    /// is skipped here).
    pub fn sasl_mechanisms(&self) -> Vec<crate::security::sasl::Mechanism> {
        if !self.kafka_security_protocol.uses_sasl() {
            return Vec::new();
        }
        let mut mechanisms: Vec<_> = self
            .sasl_enabled_mechanisms
            .split(',')
            .filter_map(|name| crate::security::sasl::Mechanism::from_name(name.trim()))
            .collect();
        mechanisms.sort();
        mechanisms.dedup();
        mechanisms
    }

    /// The settings every request handler shares.
    pub fn broker_settings(&self) -> crate::BrokerSettings {
        crate::BrokerSettings {
            auto_create_topics: self.auto_create_topics,
            default_partitions: self.num_partitions,
            max_request_bytes: self.socket_request_max_bytes,
            connections_max_idle: self.connections_max_idle(),
            queued_max_request_bytes: self.queued_max_request_bytes,
            fetch_max_bytes: self.fetch_max_bytes,
            static_log_configs: self.static_log_configs(),
            authorizer: self.authorizer_settings(),
            security_protocol: self.kafka_security_protocol,
            sasl_mechanisms: self.sasl_mechanisms(),
        }
    }

    /// The TLS files, when a certificate and its key are set (validation
    /// makes sure they are whenever something is served over TLS).
    pub fn tls_files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert_file: self.tls_cert_file.clone()?,
            key_file: self.tls_key_file.clone()?,
            client_ca_file: self.tls_client_ca_file.clone(),
            client_auth: self.tls_client_auth,
        })
    }

    /// The authorizer's settings (`super-users` is checked by validation; an
    /// invalid list is taken as empty here).
    pub fn authorizer_settings(&self) -> crate::security::authorizer::AuthorizerSettings {
        crate::security::authorizer::AuthorizerSettings {
            kind: self.authorizer,
            super_users: crate::security::authorizer::parse_super_users(&self.super_users)
                .unwrap_or_default(),
            allow_everyone_if_no_acl_found: self.allow_everyone_if_no_acl_found,
        }
    }

    /// The broker configs behind topic defaults that differ from Kafka's.
    fn static_log_configs(&self) -> std::collections::BTreeMap<&'static str, String> {
        crate::configs::broker::static_log_configs(&self.retention_settings())
    }

    /// The write-ahead log's options.
    pub fn wal_options(&self) -> fjord_storage::wal::WalOptions {
        fjord_storage::wal::WalOptions {
            max_bytes: self.wal_max_bytes,
            ..fjord_storage::wal::WalOptions::default()
        }
    }

    /// PUT/GET hedging, or `None` when both `hedge-put-after-ms` and
    /// `hedge-get-after-ms` are 0.
    pub fn hedge_options(&self) -> Option<fjord_storage::object_store::HedgeOptions> {
        (self.hedge_put_after_ms > 0 || self.hedge_get_after_ms > 0).then(|| {
            fjord_storage::object_store::HedgeOptions {
                put_after: Duration::from_millis(self.hedge_put_after_ms),
                put_after_per_mib: Duration::from_millis(self.hedge_put_per_mib_ms),
                get_after: Duration::from_millis(self.hedge_get_after_ms),
            }
        })
    }

    /// The object-store latency model, or `None` for none.
    pub fn latency_profile(&self) -> Option<fjord_storage::object_store::LatencyProfile> {
        self.storage_latency_profile.profile()
    }

    /// The address the HTTP gateway binds; `None` when it is off.
    pub fn http_listen(&self) -> Option<String> {
        (self.http_listen != HTTP_OFF).then(|| self.http_listen.clone())
    }

    /// The HTTP gateway's limits.
    pub fn gateway_settings(&self) -> fjord_gateway::GatewaySettings {
        fjord_gateway::GatewaySettings {
            max_body_bytes: self.http_max_body_bytes,
            ..fjord_gateway::GatewaySettings::default()
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The metadata backend URL (default `sqlite://<data-dir>/metadata.db`).
    pub fn metadata_url(&self) -> String {
        resolved_metadata_url(&self.data_dir, self.metadata_url.as_deref())
    }

    /// Bytes the disk read cache may hold: as set, else 1 GiB — or 0 over a
    /// `file://` bucket, whose objects are on local disk already: a cache
    /// there would write every object read a second time (measured: 12% of
    /// the agent's CPU during a catch-up read) to save nothing.
    pub fn disk_cache_bytes(&self) -> u64 {
        self.disk_cache_bytes.unwrap_or_else(|| {
            if self.storage_url().starts_with("file://") {
                0
            } else {
                DEFAULT_DISK_CACHE_BYTES
            }
        })
    }

    /// The object storage URL (default `file://<data-dir>/bucket`).
    pub fn storage_url(&self) -> String {
        resolved_storage_url(&self.data_dir, self.storage_url.as_deref())
    }

    /// The write-ahead log's directory (default `<data-dir>/wal`).
    pub fn wal_dir(&self) -> PathBuf {
        self.wal_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("wal"))
    }

    /// The disk read cache's directory (default `<data-dir>/cache`).
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }

    /// `heartbeat-interval-ms`.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// `shutdown-timeout-ms`.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// `stats-interval-ms`.
    pub fn stats_interval(&self) -> Duration {
        Duration::from_millis(self.stats_interval_ms)
    }

    /// `connections-max-idle-ms` (`connections.max.idle.ms`).
    pub fn connections_max_idle(&self) -> Duration {
        Duration::from_millis(self.connections_max_idle_ms)
    }

    /// `queued-max-request-bytes` (`queued.max.request.bytes`).
    pub fn queued_max_request_bytes(&self) -> usize {
        self.queued_max_request_bytes
    }

    /// `fetch-max-bytes` (`fetch.max.bytes`).
    pub fn fetch_max_bytes(&self) -> usize {
        self.fetch_max_bytes
    }

    /// `offsets-retention-minutes` (`offsets.retention.minutes`).
    pub fn offsets_retention(&self) -> Duration {
        Duration::from_secs(self.offsets_retention_minutes.saturating_mul(60))
    }

    /// `offsets-retention-check-interval-ms` (`offsets.retention.check.interval.ms`).
    pub fn offsets_retention_check_interval(&self) -> Duration {
        Duration::from_millis(self.offsets_retention_check_interval_ms)
    }

    /// `producer-id-expiration-ms` (`producer.id.expiration.ms`).
    pub fn producer_id_expiration(&self) -> Duration {
        Duration::from_millis(self.producer_id_expiration_ms)
    }

    /// `producer-id-expiration-check-interval-ms`
    /// (`producer.id.expiration.check.interval.ms`).
    pub fn producer_id_expiration_check_interval(&self) -> Duration {
        Duration::from_millis(self.producer_id_expiration_check_interval_ms)
    }
}

pub(super) fn resolved_metadata_url(data_dir: &Path, metadata_url: Option<&str>) -> String {
    match metadata_url {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", data_dir.join("metadata.db").display()),
    }
}

pub(super) fn resolved_storage_url(data_dir: &Path, storage_url: Option<&str>) -> String {
    match storage_url {
        Some(url) => url.to_owned(),
        None => format!("file://{}", data_dir.join("bucket").display()),
    }
}
