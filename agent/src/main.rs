//! `fjord`: the Fjord command line. `fjord agent` runs a broker agent; the other
//! subcommands are tools.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fjord_agent::agent::WalOptions;
use fjord_agent::log::LogSettings;
use fjord_agent::{AgentBuilder, AgentOptions, BrokerSettings};
use fjord_storage::object_store::{LatencyInjectingObjectStore, LatencyProfile, StoreOptions};

#[derive(Debug, Parser)]
#[command(
    name = "fjord",
    version,
    about = "Kafka-compatible streaming on object storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent. With no flags: SQLite metadata under ./fjord-data.
    Agent(Box<AgentArgs>),
    /// Print the version.
    Version,
    /// Consumer groups, read from metadata: list, describe, lag.
    Groups(GroupsArgs),
}

#[derive(Debug, clap::Args)]
struct GroupsArgs {
    /// The agent's data directory (for the default metadata file).
    #[arg(long, env = "FJORD_DATA_DIR", default_value = "fjord-data")]
    data_dir: PathBuf,
    /// Metadata backend URL. Default: `sqlite://{data-dir}/metadata.db`.
    #[arg(long, env = "FJORD_METADATA_URL")]
    metadata_url: Option<String>,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, Subcommand)]
enum GroupsCommand {
    /// Every group with its state and generation.
    List,
    /// A group's members and their assigned partitions.
    Describe {
        /// The group id.
        group: String,
    },
    /// A group's lag per partition (committed offset against the log end).
    Lag {
        /// The group id.
        group: String,
    },
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// A TOML file of settings named like the flags without their dashes
    /// (`flush-interval-ms = 50`). Flags override environment variables, which
    /// override the file.
    #[arg(long, env = "FJORD_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the agent's local state (and the default metadata file).
    #[arg(long, env = "FJORD_DATA_DIR", default_value = "fjord-data")]
    data_dir: PathBuf,
    /// Metadata backend URL: sqlite://<path>, fdb://[<cluster file>] or memory://.
    /// Default: sqlite://<data-dir>/metadata.db.
    #[arg(long, env = "FJORD_METADATA_URL")]
    metadata_url: Option<String>,
    /// Object storage URL: file://<dir>, s3://<bucket>[/<prefix>] (endpoint and
    /// credentials from the AWS_* environment) or memory://.
    /// Default: file://<data-dir>/bucket.
    #[arg(long, env = "FJORD_STORAGE_URL")]
    storage_url: Option<String>,
    /// The address the Kafka listener binds.
    #[arg(long, env = "FJORD_KAFKA_LISTEN", default_value = "127.0.0.1:9092")]
    kafka_listen: String,
    /// The host:port clients are told to connect to (default: the listen address).
    #[arg(long, env = "FJORD_ADVERTISED_ADDRESS")]
    advertised_address: Option<String>,
    /// Create unknown topics named in Metadata requests (auto.create.topics.enable).
    #[arg(long, env = "FJORD_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    auto_create_topics: bool,
    /// How often accepted batches are flushed into a segment object.
    #[arg(long, env = "FJORD_FLUSH_INTERVAL_MS", default_value_t = 100)]
    flush_interval_ms: u64,
    /// Flush as soon as this many bytes of records are pending, before the
    /// interval ends (larger: fewer PUTs per GiB at high load).
    #[arg(long, env = "FJORD_FLUSH_BYTES", default_value_t = LogSettings::default().flush_bytes)]
    flush_bytes: usize,
    /// The zstd level of segment chunks (1 is fast; higher levels cost CPU on
    /// every flush for little gain on typical records).
    #[arg(long, env = "FJORD_SEGMENT_ZSTD_LEVEL", default_value_t = LogSettings::default().compression_level)]
    segment_zstd_level: i32,
    /// A read that misses the caches fetches the whole segment object with one
    /// GET when it is at most this large, and caches its other partitions' chunks
    /// on disk (0: read only the chunk asked for).
    #[arg(long, env = "FJORD_WHOLE_OBJECT_READ_BYTES", default_value_t = LogSettings::default().whole_object_read_bytes)]
    whole_object_read_bytes: u64,
    /// Partitions of auto-created topics (num.partitions).
    #[arg(long, env = "FJORD_NUM_PARTITIONS", default_value_t = 1)]
    num_partitions: i32,
    /// Directory of the write-ahead log (default: <data-dir>/wal).
    #[arg(long, env = "FJORD_WAL_DIR")]
    wal_dir: Option<PathBuf>,
    /// Bytes the write-ahead log may hold before produces wait (backpressure).
    #[arg(long, env = "FJORD_WAL_MAX_BYTES", default_value_t = 512 * 1024 * 1024)]
    wal_max_bytes: u64,
    /// Bytes accepted and not yet taken by a flush before appends wait
    /// (backpressure; a flush starts at once when the limit is reached).
    #[arg(long, env = "FJORD_MAX_UNFLUSHED_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_unflushed_bytes: usize,
    /// The largest request frame accepted (socket.request.max.bytes); a larger
    /// one closes the connection.
    #[arg(
        long,
        env = "FJORD_SOCKET_REQUEST_MAX_BYTES",
        default_value_t = 104_857_600
    )]
    socket_request_max_bytes: usize,
    /// Directory of the read cache of object ranges (default: <data-dir>/cache).
    #[arg(long, env = "FJORD_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Bytes the disk read cache may hold (0 disables it).
    #[arg(long, env = "FJORD_DISK_CACHE_BYTES", default_value_t = 1024 * 1024 * 1024)]
    disk_cache_bytes: u64,
    /// How often the agent renews its registration.
    #[arg(long, env = "FJORD_HEARTBEAT_INTERVAL_MS", default_value_t = 500)]
    heartbeat_interval_ms: u64,
    /// An agent whose heartbeat has not moved for this long (by each observer's
    /// own clock) is dead, and its partitions move. Shorter: faster takeover;
    /// longer: fewer false takeovers during pauses (GC-free here, but VMs stall).
    #[arg(long, env = "FJORD_LEASE_TIMEOUT_MS", default_value_t = 2000)]
    lease_timeout_ms: u64,
    /// How often each agent checks partition placement and moves leadership.
    #[arg(long, env = "FJORD_BALANCE_INTERVAL_MS", default_value_t = 250)]
    balance_interval_ms: u64,
    /// On SIGTERM, how long the agent waits for what its partitions accepted to
    /// commit before it gives them up (they are handed off as each finishes).
    #[arg(long, env = "FJORD_SHUTDOWN_TIMEOUT_MS", default_value_t = 20_000)]
    shutdown_timeout_ms: u64,
    /// How long a new consumer group's first rebalance waits for more members
    /// (group.initial.rebalance.delay.ms).
    #[arg(
        long,
        env = "FJORD_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    group_initial_rebalance_delay_ms: u64,
    /// The shortest session timeout a group member may ask for
    /// (group.min.session.timeout.ms).
    #[arg(
        long,
        env = "FJORD_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 6000
    )]
    group_min_session_timeout_ms: u64,
    /// The longest session timeout a group member may ask for
    /// (group.max.session.timeout.ms).
    #[arg(
        long,
        env = "FJORD_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000
    )]
    group_max_session_timeout_ms: u64,
    /// Delay every object-store request as a modelled S3 class would
    /// (docs/latency-profiles.md). For benchmarks only: the model adds latency, it
    /// does not make a local bucket behave like S3 in any other way.
    #[arg(long, env = "FJORD_STORAGE_LATENCY_PROFILE", value_enum, default_value_t = LatencyModel::None)]
    storage_latency_profile: LatencyModel,
    /// Send a PUT again when it has not answered after this long (plus
    /// `--hedge-put-per-mib-ms` per MiB of payload), taking whichever answers
    /// first; 0 turns PUT hedging off. Cuts object-store tail latency for a few
    /// percent more requests (docs/operations.md).
    #[arg(long, env = "FJORD_HEDGE_PUT_AFTER_MS", default_value_t = 0)]
    hedge_put_after_ms: u64,
    /// Transfer allowance per MiB of a PUT before it is hedged.
    #[arg(long, env = "FJORD_HEDGE_PUT_PER_MIB_MS", default_value_t = 12)]
    hedge_put_per_mib_ms: u64,
    /// Send a GET again when it has not answered after this long; 0: never.
    #[arg(long, env = "FJORD_HEDGE_GET_AFTER_MS", default_value_t = 0)]
    hedge_get_after_ms: u64,
    /// Seed of the latency model's draws (a run replays with the same seed).
    #[arg(long, env = "FJORD_STORAGE_LATENCY_SEED", default_value_t = 0)]
    storage_latency_seed: u64,
    /// Write the object-store request counters as one JSON object to this file,
    /// every `--stats-interval-ms` and once more after the final flush at
    /// shutdown (replaced atomically; benchmarks read it).
    #[arg(long, env = "FJORD_STATS_FILE")]
    stats_file: Option<PathBuf>,
    /// Tests only: faults injected into object-store requests, e.g.
    /// `put:transient:50000,get:delay=200ms:100000` (operation:fault[:trigger];
    /// see `fjord_storage::object_store::parse_fault_spec`).
    #[arg(long, env = "FJORD_FAULT_OBJECT_STORE")]
    fault_object_store: Option<String>,
    /// Tests only: a file that sets the injected faults while the agent runs
    /// (lines `object-store=<spec>`; empty: no faults).
    #[arg(long, env = "FJORD_FAULT_CONTROL_FILE")]
    fault_control_file: Option<PathBuf>,
    /// Tests only: the seed of the injected faults' draws.
    #[arg(long, env = "FJORD_FAULT_SEED", default_value_t = 0)]
    fault_seed: u64,
    /// How often `--stats-file` is rewritten.
    #[arg(long, env = "FJORD_STATS_INTERVAL_MS", default_value_t = 1000)]
    stats_interval_ms: u64,
}

/// The object-store latency models an agent can run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LatencyModel {
    /// No added latency.
    None,
    /// `LatencyProfile::S3_STANDARD`.
    S3Standard,
    /// `LatencyProfile::S3_EXPRESS_ONE_ZONE`.
    S3Express,
}

impl LatencyModel {
    fn profile(self) -> Option<LatencyProfile> {
        match self {
            LatencyModel::None => None,
            LatencyModel::S3Standard => Some(LatencyProfile::S3_STANDARD),
            LatencyModel::S3Express => Some(LatencyProfile::S3_EXPRESS_ONE_ZONE),
        }
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = match parse_with_config_file() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("fjord: {error:#}");
            std::process::exit(2);
        }
    };
    match cli.command {
        Command::Version => {
            println!("fjord {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Groups(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?
            .block_on(run_groups(args)),
        Command::Agent(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?
            .block_on(run_agent(*args)),
    }
}

/// Parses the command line; for `fjord agent --config <file>` (or `FJORD_CONFIG`),
/// the file's settings are added as flags wherever neither the command line nor
/// the environment gives that setting.
fn parse_with_config_file() -> anyhow::Result<Cli> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&args);
    let Command::Agent(agent) = &cli.command else {
        return Ok(cli);
    };
    let Some(path) = &agent.config else {
        return Ok(cli);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing the config file {}", path.display()))?;
    let known: Vec<String> = {
        use clap::CommandFactory;
        let command = Cli::command();
        command
            .find_subcommand("agent")
            .map(|agent| {
                agent
                    .get_arguments()
                    .filter_map(|a| a.get_long().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut extended = args.clone();
    for (key, value) in table {
        if key == "config" || !known.contains(&key) {
            anyhow::bail!("{}: unknown setting {key:?}", path.display());
        }
        let flag = format!("--{key}");
        let on_command_line = args.iter().any(|a| {
            a.to_str()
                .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
        });
        let env = format!("FJORD_{}", key.to_uppercase().replace('-', "_"));
        if on_command_line || std::env::var_os(&env).is_some() {
            continue;
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => anyhow::bail!(
                "{}: {key} must be a string, number or boolean, not a {}",
                path.display(),
                other.type_str()
            ),
        };
        extended.push(format!("{flag}={value}").into());
    }
    Ok(Cli::parse_from(extended))
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let metadata_url = args
        .metadata_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("metadata.db").display()));
    tokio::fs::create_dir_all(&args.data_dir)
        .await
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let store = fjord_metadata::open(&metadata_url)
        .await
        .with_context(|| format!("opening metadata at {metadata_url}"))?;
    let storage_url = args
        .storage_url
        .clone()
        .unwrap_or_else(|| format!("file://{}", args.data_dir.join("bucket").display()));
    let hedge = (args.hedge_put_after_ms > 0 || args.hedge_get_after_ms > 0).then(|| {
        fjord_storage::object_store::HedgeOptions {
            put_after: Duration::from_millis(args.hedge_put_after_ms),
            put_after_per_mib: Duration::from_millis(args.hedge_put_per_mib_ms),
            get_after: Duration::from_millis(args.hedge_get_after_ms),
        }
    });
    let store_options = StoreOptions {
        hedge,
        ..StoreOptions::default()
    };
    let backend = fjord_storage::object_store::open_backend(&storage_url, &store_options)
        .with_context(|| format!("opening object storage at {storage_url}"))?;
    // The latency model sits right above the backend, so the request metrics
    // (and retries) see the modelled latencies.
    let backend: Arc<dyn object_store::ObjectStore> = match args.storage_latency_profile.profile() {
        None => backend,
        Some(profile) => Arc::new(LatencyInjectingObjectStore::new(
            backend,
            profile,
            args.storage_latency_seed,
        )),
    };
    // Injected faults sit below the retries, as a flaky bucket would.
    let mut faults = fjord_agent::faults::FaultControls::default();
    let backend: Arc<dyn object_store::ObjectStore> =
        if args.fault_object_store.is_some() || args.fault_control_file.is_some() {
            let injector = Arc::new(fjord_storage::object_store::FaultInjectingObjectStore::new(
                backend,
                args.fault_seed,
            ));
            injector
                .apply_spec(args.fault_object_store.as_deref().unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("--fault-object-store: {e}"))?;
            faults.object_store = Some(injector.clone());
            injector
        } else {
            backend
        };
    let opened = fjord_storage::object_store::decorate(backend, &store_options);
    tracing::info!(
        storage = %storage_url,
        latency_profile = ?args.storage_latency_profile,
        "object storage ready"
    );
    let mut options = AgentOptions::new(&args.data_dir, &args.kafka_listen);
    options.advertised_address = args.advertised_address.clone();
    options.wal = Some(WalOptions {
        dir: args
            .wal_dir
            .clone()
            .unwrap_or_else(|| args.data_dir.join("wal")),
        max_bytes: args.wal_max_bytes,
    });
    options.disk_cache = (args.disk_cache_bytes > 0).then(|| {
        (
            args.cache_dir
                .clone()
                .unwrap_or_else(|| args.data_dir.join("cache")),
            args.disk_cache_bytes,
        )
    });
    options.log = LogSettings {
        flush_interval: Duration::from_millis(args.flush_interval_ms.max(1)),
        flush_bytes: args.flush_bytes.max(1),
        compression_level: args.segment_zstd_level,
        whole_object_read_bytes: args.whole_object_read_bytes,
        max_pending_bytes: args.max_unflushed_bytes.max(1),
        ..LogSettings::default()
    };
    options.cluster = fjord_agent::cluster::ClusterSettings {
        lease_timeout: Duration::from_millis(args.lease_timeout_ms.max(10)),
        balance_interval: Duration::from_millis(args.balance_interval_ms.max(10)),
        hand_off_timeout: Duration::from_millis(args.shutdown_timeout_ms),
    };
    options.groups = fjord_agent::groups::GroupSettings {
        initial_rebalance_delay: Duration::from_millis(args.group_initial_rebalance_delay_ms),
        min_session_timeout: Duration::from_millis(args.group_min_session_timeout_ms),
        max_session_timeout: Duration::from_millis(args.group_max_session_timeout_ms),
        ..fjord_agent::groups::GroupSettings::default()
    };
    options.broker = BrokerSettings {
        auto_create_topics: args.auto_create_topics,
        default_partitions: args.num_partitions,
        max_request_bytes: args.socket_request_max_bytes,
    };
    options.heartbeat_interval = Duration::from_millis(args.heartbeat_interval_ms.max(10));
    options.stats_file = args
        .stats_file
        .clone()
        .map(|path| (path, Duration::from_millis(args.stats_interval_ms.max(10))));
    options.fault_control_file = args.fault_control_file.clone();
    let agent = AgentBuilder::new(options, store.clone(), opened.store)
        .metrics(opened.metrics)
        .faults(faults)
        .start()
        .await?;
    let result = agent.run_until(wait_for_signal()).await;
    drop(store);
    // FoundationDB's network thread must stop before the process exits.
    #[cfg(feature = "fdb")]
    fjord_metadata::kv::fdb::stop_network().context("stopping the FoundationDB client")?;
    result
}

async fn run_groups(args: GroupsArgs) -> anyhow::Result<()> {
    use fjord_agent::groups::report;
    let metadata_url = args
        .metadata_url
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("metadata.db").display()));
    let store = fjord_metadata::open(&metadata_url)
        .await
        .with_context(|| format!("opening metadata at {metadata_url}"))?;
    let text = match &args.command {
        GroupsCommand::List => report::list_report(&store).await,
        GroupsCommand::Describe { group } => report::describe_report(&store, group).await,
        GroupsCommand::Lag { group } => report::lag_report(&store, group).await,
    }
    .context("reading consumer groups")?;
    print!("{text}");
    drop(store);
    #[cfg(feature = "fdb")]
    fjord_metadata::kv::fdb::stop_network().context("stopping the FoundationDB client")?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the agent");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
