//! [`AgentSettings::validate`]: every rule a setting, or a pair of settings,
//! must follow. Nothing is clamped: a value out of range is refused, naming the
//! setting and the rule.
//!
//! The rules destructure [`AgentSettings`] without `..`, so a new setting does
//! not compile until it is given a rule here (or marked as having none, with
//! the reason).

use std::path::Path;

use super::settings::{CONFIG_VERSION, HTTP_OFF, resolved_metadata_url, resolved_storage_url};
use super::{AgentSettings, ConfigError, InvalidSetting};
use crate::security::SecurityProtocol;
use crate::security::tls::{ClientAuth, TlsFiles};

/// The smallest key map log compaction accepts (~43,000 keys): one batch's
/// keys must fit, or a clean makes no progress.
const MIN_LOG_COMPACTION_BUFFER_BYTES: u64 = 1 << 20;

impl AgentSettings {
    /// Checks every rule; on failure, every broken rule is listed (with no
    /// origins: [`AgentSettings::load`] adds them).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// The broken rules, in field order.
    pub(super) fn problems(&self) -> Vec<InvalidSetting> {
        let AgentSettings {
            version,
            data_dir,
            metadata_url,
            storage_url,
            wal_dir,
            cache_dir,
            kafka_listen,
            roles,
            advertised_address,
            http_listen,
            http_max_body_bytes,
            socket_request_max_bytes,
            queued_max_request_bytes,
            connections_max_idle_ms,
            // Kafka accepts 0: a fetch still returns its first batch.
            fetch_max_bytes: _,
            kafka_security_protocol,
            tls_cert_file,
            tls_key_file,
            tls_client_ca_file,
            tls_client_auth,
            http_tls,
            sasl_enabled_mechanisms,
            // Either value is a valid choice.
            auto_create_topics: _,
            num_partitions,
            // An enum: every value is valid.
            authorizer: _,
            super_users,
            // Either value is a valid choice.
            allow_everyone_if_no_acl_found: _,
            flush_interval_ms,
            flush_idle_us,
            flush_bytes,
            max_unflushed_bytes,
            max_inflight_uploads,
            segment_zstd_level,
            wal_max_bytes,
            // 0 turns whole-object reads off.
            whole_object_read_bytes: _,
            // 0 turns the tail cache off.
            tail_cache_bytes: _,
            // 0 turns the disk cache off.
            disk_cache_bytes: _,
            heartbeat_interval_ms,
            lease_timeout_ms,
            balance_interval_ms,
            // 0: give partitions up at once on SIGTERM.
            shutdown_timeout_ms: _,
            // 0: the first rebalance does not wait (as in Kafka).
            group_initial_rebalance_delay_ms: _,
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            group_consumer_session_timeout_ms,
            group_consumer_heartbeat_interval_ms,
            offsets_retention_minutes,
            offsets_retention_check_interval_ms,
            log_retention_ms,
            log_retention_hours,
            log_retention_bytes,
            log_retention_check_interval_ms,
            // 0: unreferenced objects go at the next pass.
            object_grace_ms: _,
            // 0 turns compaction off.
            object_compaction_interval_ms: _,
            // 0: objects are compacted at any age.
            object_compaction_min_age_ms: _,
            object_compaction_small_bytes,
            object_compaction_run_bytes,
            // 0 turns log compaction off.
            log_compaction_interval_ms: _,
            log_compaction_buffer_bytes,
            producer_id_expiration_ms,
            producer_id_expiration_check_interval_ms,
            // An enum: every value is valid.
            storage_latency_profile: _,
            // Any seed.
            storage_latency_seed: _,
            // 0 turns PUT hedging off.
            hedge_put_after_ms: _,
            // 0: no transfer allowance.
            hedge_put_per_mib_ms: _,
            // 0 turns GET hedging off.
            hedge_get_after_ms: _,
            // Any path; written only when given.
            stats_file: _,
            stats_interval_ms,
            fault_object_store,
            fault_metadata,
            // Any seed.
            fault_seed: _,
            // Read while the agent runs; a bad line is logged then.
            fault_control_file: _,
        } = self;

        let mut problems = Vec::new();
        let mut check = |ok: bool, setting: &'static str, reason: String| {
            if !ok {
                problems.push(InvalidSetting {
                    setting,
                    reason,
                    origin: None,
                });
            }
        };

        check(
            *version == CONFIG_VERSION,
            "version",
            format!("this build reads settings version {CONFIG_VERSION}, not {version}"),
        );

        // Where things are.
        check(
            !data_dir.as_os_str().is_empty(),
            "data-dir",
            "must not be empty".to_owned(),
        );
        let metadata = resolved_metadata_url(data_dir, metadata_url.as_deref());
        if let Err(error) = fjord_metadata::BackendUrl::parse(&metadata) {
            check(false, "metadata-url", error.to_string());
        }
        let storage = resolved_storage_url(data_dir, storage_url.as_deref());
        if let Err(reason) = check_storage_url(&storage) {
            check(false, "storage-url", format!("{storage:?}: {reason}"));
        }
        check(
            wal_dir.as_deref().is_none_or(non_empty),
            "wal-dir",
            "must not be empty (leave it out for <data-dir>/wal)".to_owned(),
        );
        check(
            cache_dir.as_deref().is_none_or(non_empty),
            "cache-dir",
            "must not be empty (leave it out for <data-dir>/cache)".to_owned(),
        );

        // The Kafka listener.
        let words: Vec<&str> = roles.split(',').map(str::trim).collect();
        check(
            !words.is_empty()
                && words.iter().all(|w| matches!(*w, "serve" | "jobs"))
                && words.iter().any(|w| !w.is_empty()),
            "roles",
            format!("{roles:?}: a comma-separated list of serve and jobs"),
        );
        if let Err(reason) = check_host_port(kafka_listen, PortZero::Allowed) {
            check(false, "kafka-listen", format!("{kafka_listen:?}: {reason}"));
        }
        if http_listen != HTTP_OFF
            && let Err(reason) = check_host_port(http_listen, PortZero::Allowed)
        {
            check(
                false,
                "http-listen",
                format!("{http_listen:?}: {reason} (or {HTTP_OFF})"),
            );
        }
        check(
            *http_max_body_bytes > 0,
            "http-max-body-bytes",
            "must be more than 0".to_owned(),
        );
        if let Some(advertised) = advertised_address
            && let Err(reason) = check_host_port(advertised, PortZero::Refused)
        {
            check(
                false,
                "advertised-address",
                format!("{advertised:?}: {reason}"),
            );
        }
        check(
            *socket_request_max_bytes > 0,
            "socket-request-max-bytes",
            "must be more than 0".to_owned(),
        );
        check(
            queued_max_request_bytes >= socket_request_max_bytes,
            "queued-max-request-bytes",
            format!(
                "{queued_max_request_bytes} must be at least socket-request-max-bytes \
                 ({socket_request_max_bytes}), or the largest request could never be read"
            ),
        );
        check(
            *connections_max_idle_ms > 0,
            "connections-max-idle-ms",
            "must be more than 0".to_owned(),
        );

        // Security.
        for (setting, reason) in tls_problems(
            *kafka_security_protocol,
            tls_cert_file.as_deref(),
            tls_key_file.as_deref(),
            tls_client_ca_file.as_deref(),
            *tls_client_auth,
            *http_tls,
        ) {
            check(false, setting, reason);
        }

        let names: Vec<&str> = sasl_enabled_mechanisms.split(',').map(str::trim).collect();
        let unknown: Vec<&&str> = names
            .iter()
            .filter(|name| crate::security::sasl::Mechanism::from_name(name).is_none())
            .collect();
        check(
            unknown.is_empty(),
            "sasl-enabled-mechanisms",
            format!(
                "{sasl_enabled_mechanisms:?}: {unknown:?} not served; PLAIN, SCRAM-SHA-256 \
                 and SCRAM-SHA-512 are"
            ),
        );

        // Authorization: the super users are principals. (They, and
        // allow-everyone-if-no-acl-found, are ignored without an authorizer,
        // as Kafka ignores them.)
        if let Err(reason) = crate::security::authorizer::parse_super_users(super_users) {
            check(false, "super-users", reason);
        }

        // Topics.
        let partitions = 1..=fjord_metadata::MAX_PARTITIONS_PER_TOPIC;
        check(
            partitions.contains(num_partitions),
            "num-partitions",
            format!(
                "{num_partitions} is outside {}..={}",
                partitions.start(),
                partitions.end()
            ),
        );

        // The write path.
        check(
            *flush_interval_ms > 0,
            "flush-interval-ms",
            "must be more than 0".to_owned(),
        );
        check(
            *flush_interval_ms == 0 || *flush_idle_us <= flush_interval_ms.saturating_mul(1_000),
            "flush-idle-us",
            format!(
                "{flush_idle_us} must be at most the flush interval \
                 ({flush_interval_ms} ms), which bounds every flush's wait"
            ),
        );
        check(
            *flush_bytes > 0,
            "flush-bytes",
            "must be more than 0".to_owned(),
        );
        check(
            *max_unflushed_bytes > 0,
            "max-unflushed-bytes",
            "must be more than 0".to_owned(),
        );
        check(
            flush_bytes <= max_unflushed_bytes,
            "flush-bytes",
            format!(
                "{flush_bytes} must be at most max-unflushed-bytes ({max_unflushed_bytes}), \
                 or appends would wait before a flush is due"
            ),
        );
        check(
            *max_inflight_uploads > 0,
            "max-inflight-uploads",
            "must be more than 0".to_owned(),
        );
        let levels = zstd::compression_level_range();
        check(
            levels.contains(segment_zstd_level),
            "segment-zstd-level",
            format!(
                "{segment_zstd_level} is outside zstd's levels {}..={}",
                levels.start(),
                levels.end()
            ),
        );
        check(
            u64::try_from(*socket_request_max_bytes).is_ok_and(|largest| *wal_max_bytes >= largest),
            "wal-max-bytes",
            format!(
                "{wal_max_bytes} must be at least socket-request-max-bytes \
                 ({socket_request_max_bytes}), or the largest batch could never be logged"
            ),
        );

        // Membership and balancing.
        check(
            *heartbeat_interval_ms > 0,
            "heartbeat-interval-ms",
            "must be more than 0".to_owned(),
        );
        check(
            *balance_interval_ms > 0,
            "balance-interval-ms",
            "must be more than 0".to_owned(),
        );
        check(
            *lease_timeout_ms > heartbeat_interval_ms.saturating_mul(2),
            "lease-timeout-ms",
            format!(
                "{lease_timeout_ms} must be more than twice heartbeat-interval-ms \
                 ({heartbeat_interval_ms}), or one late heartbeat makes a live agent dead"
            ),
        );
        check(
            balance_interval_ms < lease_timeout_ms,
            "balance-interval-ms",
            format!(
                "{balance_interval_ms} must be less than lease-timeout-ms ({lease_timeout_ms}), \
                 or a dead agent's partitions wait more than a lease to move"
            ),
        );

        // Consumer groups.
        check(
            *group_min_session_timeout_ms > 0,
            "group-min-session-timeout-ms",
            "must be more than 0".to_owned(),
        );
        check(
            *group_consumer_heartbeat_interval_ms > 0
                && group_consumer_heartbeat_interval_ms < group_consumer_session_timeout_ms,
            "group-consumer-heartbeat-interval-ms",
            format!(
                "{group_consumer_heartbeat_interval_ms} must be above 0 and below \
                 group-consumer-session-timeout-ms ({group_consumer_session_timeout_ms})"
            ),
        );
        check(
            group_min_session_timeout_ms <= group_max_session_timeout_ms,
            "group-min-session-timeout-ms",
            format!(
                "{group_min_session_timeout_ms} must be at most group-max-session-timeout-ms \
                 ({group_max_session_timeout_ms})"
            ),
        );
        check(
            *offsets_retention_minutes > 0,
            "offsets-retention-minutes",
            "must be more than 0".to_owned(),
        );
        check(
            *offsets_retention_check_interval_ms > 0,
            "offsets-retention-check-interval-ms",
            "must be more than 0".to_owned(),
        );

        // Retention.
        check(
            log_retention_ms.is_none_or(|ms| ms >= -1),
            "log-retention-ms",
            "must be -1 (keep everything) or more".to_owned(),
        );
        check(
            *log_retention_hours >= -1,
            "log-retention-hours",
            "must be -1 (keep everything) or more".to_owned(),
        );
        check(
            *log_retention_bytes >= -1,
            "log-retention-bytes",
            "must be -1 (no limit) or more".to_owned(),
        );
        check(
            *log_retention_check_interval_ms > 0,
            "log-retention-check-interval-ms",
            "must be more than 0".to_owned(),
        );

        // Object compaction.
        check(
            *object_compaction_small_bytes > 0,
            "object-compaction-small-bytes",
            "must be more than 0".to_owned(),
        );
        check(
            *object_compaction_run_bytes >= *object_compaction_small_bytes,
            "object-compaction-run-bytes",
            "must be at least object-compaction-small-bytes".to_owned(),
        );

        // Log compaction: the key map must hold the keys of a batch or so.
        check(
            *log_compaction_buffer_bytes >= MIN_LOG_COMPACTION_BUFFER_BYTES,
            "log-compaction-buffer-bytes",
            format!("must be at least {MIN_LOG_COMPACTION_BUFFER_BYTES} (1 MiB)"),
        );

        // Idempotent producers.
        check(
            *producer_id_expiration_ms > 0,
            "producer-id-expiration-ms",
            "must be more than 0".to_owned(),
        );
        check(
            *producer_id_expiration_check_interval_ms > 0,
            "producer-id-expiration-check-interval-ms",
            "must be more than 0".to_owned(),
        );

        // Statistics.
        check(
            *stats_interval_ms > 0,
            "stats-interval-ms",
            "must be more than 0".to_owned(),
        );

        // Fault injection (tests).
        if let Err(reason) = fjord_storage::object_store::parse_fault_spec(fault_object_store) {
            check(false, "fault-object-store", reason);
        }
        if let Err(reason) = crate::faults::metadata_spec(fault_metadata) {
            check(false, "fault-metadata", reason);
        }

        problems
    }
}

/// The TLS settings' rules: the certificate and key whenever something is served over TLS (and files that load, checked by
/// reading them as the agent will); a CA file exactly when client
/// certificates are asked for; no TLS setting that nothing would use.
fn tls_problems(
    protocol: SecurityProtocol,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    client_ca_file: Option<&Path>,
    client_auth: ClientAuth,
    http_tls: bool,
) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let mut users = Vec::new();
    if protocol.uses_tls() {
        users.push(format!("kafka-security-protocol {protocol}"));
    }
    if http_tls {
        users.push("http-tls".to_owned());
    }
    if users.is_empty() {
        let unused = [
            ("tls-cert-file", cert_file.is_some()),
            ("tls-key-file", key_file.is_some()),
            ("tls-client-ca-file", client_ca_file.is_some()),
            ("tls-client-auth", client_auth != ClientAuth::None),
        ];
        for (setting, set) in unused {
            if set {
                problems.push((
                    setting,
                    format!(
                        "is set but nothing is served over TLS \
                         (kafka-security-protocol is {protocol} and http-tls is false)"
                    ),
                ));
            }
        }
        return problems;
    }
    let needed_by = users.join(" and ");
    let mut complete = true;
    for (setting, path) in [("tls-cert-file", cert_file), ("tls-key-file", key_file)] {
        match path {
            None => {
                complete = false;
                problems.push((setting, format!("is needed by {needed_by}")));
            }
            Some(path) if !non_empty(path) => {
                complete = false;
                problems.push((setting, "must not be empty".to_owned()));
            }
            Some(_) => {}
        }
    }
    match (client_auth, client_ca_file) {
        (ClientAuth::None, Some(_)) => {
            complete = false;
            problems.push((
                "tls-client-ca-file",
                "is set but tls-client-auth is none: no client certificate is asked for \
                 (set tls-client-auth to requested or required)"
                    .to_owned(),
            ));
        }
        (ClientAuth::Requested | ClientAuth::Required, None) => {
            complete = false;
            problems.push((
                "tls-client-auth",
                format!(
                    "{} needs tls-client-ca-file: the CAs client certificates are checked against",
                    client_auth.name()
                ),
            ));
        }
        (ClientAuth::None, None) | (ClientAuth::Requested | ClientAuth::Required, Some(_)) => {}
    }
    if complete && let (Some(cert_file), Some(key_file)) = (cert_file, key_file) {
        let files = TlsFiles {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            client_ca_file: client_ca_file.map(Path::to_owned),
            client_auth,
        };
        if let Err(error) = files.check() {
            problems.push((error.setting(&files), error.to_string()));
        }
    }
    problems
}

fn non_empty(path: &Path) -> bool {
    !path.as_os_str().is_empty()
}

/// Whether an address may have port 0 (a listener may: the system picks one;
/// an advertised address may not: clients cannot connect to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortZero {
    Allowed,
    Refused,
}

/// `host:port`, with an IPv6 host in brackets (`[::1]:9092`).
fn check_host_port(address: &str, port_zero: PortZero) -> Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err("expected host:port".to_owned());
    };
    if host.is_empty() || host == "[]" {
        return Err("the host is empty".to_owned());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("an IPv6 host goes in brackets, as in [::1]:9092".to_owned());
    }
    let Ok(port) = port.parse::<u16>() else {
        return Err(format!("the port {port:?} is not a number from 0 to 65535"));
    };
    if port == 0 && port_zero == PortZero::Refused {
        return Err("port 0 is not an address clients can connect to".to_owned());
    }
    Ok(())
}

/// The object-store URL forms `fjord_storage::object_store::open_backend`
/// accepts, checked without opening anything.
fn check_storage_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected <scheme>://..., e.g. file:///var/lib/fjord/bucket".to_owned());
    };
    match scheme {
        "file" if rest.is_empty() => Err("file:// needs a directory".to_owned()),
        "memory" if !rest.is_empty() => Err("memory:// takes no path".to_owned()),
        "s3" if rest.split('/').next().is_none_or(str::is_empty) => {
            Err("s3:// needs a bucket name".to_owned())
        }
        "file" | "memory" | "s3" => Ok(()),
        other => Err(format!(
            "unknown scheme {other:?}; known schemes are file, memory and s3"
        )),
    }
}
