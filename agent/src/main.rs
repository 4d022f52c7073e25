//! `fjord`: the Fjord command line. `fjord agent` runs a broker agent; the other
//! subcommands are tools.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fjord_agent::log::{LogSettings, PartitionLogs};
use fjord_agent::{Broker, BrokerSettings};
use fjord_common::{IdGenerator, RandomIds, SystemClock};
use fjord_storage::object_store::{
    LatencyInjectingObjectStore, LatencyProfile, MetricsSnapshot, ObjectStoreMetrics, StoreOptions,
};
use tokio_util::sync::CancellationToken;

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
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let metadata_url = args
        .metadata_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("metadata.db").display()));
    let store = fjord_metadata::open(&metadata_url)
        .await
        .with_context(|| format!("opening metadata at {metadata_url}"))?;
    let listener = tokio::net::TcpListener::bind(&args.kafka_listen)
        .await
        .with_context(|| format!("binding the kafka listener to {}", args.kafka_listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let advertised = args
        .advertised_address
        .clone()
        .unwrap_or_else(|| bound.to_string());
    let (advertised_host, advertised_port) = advertised
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
        .with_context(|| format!("advertised address {advertised:?} is not host:port"))?;
    let instance = RandomIds::new().uuid();
    // A data directory is one agent: a restart keeps its node id, so clients'
    // and other agents' views of it stay valid.
    let node_id_file = args.data_dir.join("node-id");
    let previous = std::fs::read_to_string(&node_id_file)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok());
    let reregistered = match previous {
        Some(node_id) => store
            .reregister_agent(node_id, instance, &advertised)
            .await
            .context("registering the agent again")?,
        None => None,
    };
    let agent = match reregistered {
        Some(agent) => agent,
        None => store
            .register_agent(instance, &advertised)
            .await
            .context("registering the agent")?,
    };
    std::fs::write(&node_id_file, format!("{}\n", agent.node_id))
        .with_context(|| format!("writing {}", node_id_file.display()))?;
    tracing::info!(
        node_id = agent.node_id,
        %instance,
        metadata = %metadata_url,
        backend = store.database().backend_name(),
        advertised = %agent.advertised_address,
        "agent registered"
    );

    // Every registered agent counts as live until its heartbeat says otherwise
    // (as the balancer judges them), so nothing this agent does before its
    // first balancing — WAL recovery, early requests — takes a partition from
    // a live agent.
    let registered = store.list_agents().await.context("listing the agents")?;
    let cluster_id = store.cluster_id().await.context("reading the cluster id")?;
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
    let opened = fjord_storage::object_store::decorate(backend, &store_options);
    tracing::info!(
        storage = %storage_url,
        latency_profile = ?args.storage_latency_profile,
        "object storage ready"
    );
    let metrics = opened.metrics;
    let objects = opened.store;
    let keys = fjord_storage::ObjectKeys::new(&cluster_id).context("object key prefix")?;
    let wal_dir = args
        .wal_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("wal"));
    let wal_options = fjord_storage::wal::WalOptions {
        max_bytes: args.wal_max_bytes,
        ..fjord_storage::wal::WalOptions::default()
    };
    let (wal, recovery) = tokio::task::spawn_blocking({
        let wal_dir = wal_dir.clone();
        move || fjord_storage::wal::Wal::open(&wal_dir, wal_options)
    })
    .await
    .context("opening the write-ahead log")?
    .with_context(|| format!("opening the write-ahead log in {}", wal_dir.display()))?;
    if recovery.cut_bytes > 0 {
        tracing::warn!(
            cut_bytes = recovery.cut_bytes,
            "cut a torn tail from the write-ahead log"
        );
    }
    let next_sequence = recovery.next_sequence;
    let cluster = Arc::new(fjord_agent::cluster::ClusterView::new(
        fjord_agent::cluster::LiveAgent {
            node_id: agent.node_id,
            host: advertised_host.clone(),
            port: advertised_port,
        },
    ));
    let mut logs = PartitionLogs::new(
        store.clone(),
        objects,
        keys,
        Arc::new(RandomIds::new()),
        Arc::new(SystemClock),
        agent.node_id,
        LogSettings {
            flush_interval: Duration::from_millis(args.flush_interval_ms.max(1)),
            flush_bytes: args.flush_bytes.max(1),
            compression_level: args.segment_zstd_level,
            whole_object_read_bytes: args.whole_object_read_bytes,
            max_pending_bytes: args.max_unflushed_bytes.max(1),
            ..LogSettings::default()
        },
        Some((wal, next_sequence)),
    );
    if args.disk_cache_bytes > 0 {
        let cache_dir = args
            .cache_dir
            .clone()
            .unwrap_or_else(|| args.data_dir.join("cache"));
        let disk = fjord_storage::cache::DiskRangeCache::open(&cache_dir, args.disk_cache_bytes)
            .await
            .with_context(|| format!("opening the read cache in {}", cache_dir.display()))?;
        logs = logs.with_disk_cache(Arc::new(disk));
    }
    cluster.set_live(
        registered
            .iter()
            .filter_map(fjord_agent::cluster::LiveAgent::from_record)
            .collect(),
    );
    let logs = Arc::new(logs.with_cluster(cluster.clone()));
    let replayed = logs
        .recover(recovery.records)
        .await
        .context("committing what the write-ahead log holds")?;
    if replayed > 0 {
        tracing::info!(
            batches = replayed,
            "committed batches recovered from the write-ahead log"
        );
    }
    let groups = Arc::new(
        fjord_agent::groups::GroupCoordinator::new(
            store.clone(),
            agent.node_id,
            Arc::new(RandomIds::new()),
            fjord_agent::groups::GroupSettings {
                initial_rebalance_delay: Duration::from_millis(
                    args.group_initial_rebalance_delay_ms,
                ),
                min_session_timeout: Duration::from_millis(args.group_min_session_timeout_ms),
                max_session_timeout: Duration::from_millis(args.group_max_session_timeout_ms),
                ..fjord_agent::groups::GroupSettings::default()
            },
        )
        .with_cluster(cluster.clone()),
    );
    let broker = Arc::new(Broker {
        store: store.clone(),
        groups,
        node_id: agent.node_id,
        advertised_host,
        advertised_port,
        cluster_id,
        logs: logs.clone(),
        cluster: cluster.clone(),
        settings: BrokerSettings {
            auto_create_topics: args.auto_create_topics,
            default_partitions: args.num_partitions,
            max_request_bytes: args.socket_request_max_bytes,
            ..BrokerSettings::default()
        },
    });
    // Shutdown runs in stages, each with its token (see `docs/operations.md`):
    // stop accepting connections and reading requests and hand everything off,
    // leave, close the connections, stop the flusher.
    let stop_accepting = CancellationToken::new();
    let close_connections = CancellationToken::new();
    let stop_flusher = CancellationToken::new();
    let flusher = tokio::spawn(logs.clone().run_flusher(stop_flusher.clone()));
    tracing::info!(listen = %bound, "kafka listener ready");
    let kafka = tokio::spawn(fjord_agent::kafka::serve(
        listener,
        broker.clone(),
        stop_accepting.clone(),
        close_connections.clone(),
    ));
    let balancer = tokio::spawn(fjord_agent::cluster::run_balancer(
        store.clone(),
        logs.clone(),
        broker.groups.clone(),
        cluster.clone(),
        fjord_agent::cluster::ClusterSettings {
            lease_timeout: Duration::from_millis(args.lease_timeout_ms.max(10)),
            balance_interval: Duration::from_millis(args.balance_interval_ms.max(10)),
            hand_off_timeout: Duration::from_millis(args.shutdown_timeout_ms),
        },
        stop_accepting.clone(),
    ));
    drop(broker);
    // The heartbeat outlives the hand-off, so no other agent takes a partition
    // over (by the lease) while this one is still committing it.
    let stop_heartbeat = CancellationToken::new();
    let registration_lost = CancellationToken::new();
    let stats = args.stats_file.clone().map(|path| {
        let metrics = metrics.clone();
        let stop = stop_flusher.clone();
        let interval = Duration::from_millis(args.stats_interval_ms.max(10));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => write_stats(&path, agent.node_id, &metrics).await,
                }
            }
        })
    });
    let heartbeat = tokio::spawn({
        let store = store.clone();
        let stop = stop_heartbeat.clone();
        let lost = registration_lost.clone();
        let interval = Duration::from_millis(args.heartbeat_interval_ms.max(10));
        async move {
            let mut ticker = tokio::time::interval(interval);
            // After a stall, one beat and then the usual pace, not a burst: the
            // balancer judges others only once its own beats have moved
            // (`cluster::OWN_BEATS_TO_JUDGE`), which then takes real time.
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => {
                        match store.heartbeat(agent.node_id).await {
                            Ok(_) => {}
                            Err(fjord_metadata::MetadataError::UnknownAgent { .. }) => {
                                tracing::error!(node_id = agent.node_id, "this agent's registration was removed (it was judged dead); stopping");
                                lost.cancel();
                                return;
                            }
                            Err(error) => {
                                tracing::warn!(node_id = agent.node_id, %error, "heartbeat failed");
                            }
                        }
                    }
                }
            }
        }
    });

    tokio::select! {
        _ = wait_for_signal() => {}
        _ = registration_lost.cancelled() => {}
    }
    // 1. No new connections, no new requests read on the open ones; every
    //    partition drained (what was accepted committed and answered) and
    //    released, every coordinator shard released.
    tracing::info!(
        node_id = agent.node_id,
        "shutting down: handing partitions off"
    );
    stop_accepting.cancel();
    let handed_off = balancer.await.context("balancer task")?;
    tracing::info!(
        node_id = agent.node_id,
        partitions = handed_off.partitions,
        partitions_left = handed_off.partitions_left,
        shards = handed_off.shards,
        took_ms = u64::try_from(handed_off.took.as_millis()).unwrap_or(u64::MAX),
        "handed off"
    );
    // 2. Leave: the others see the registration gone at their next balance
    //    tick and take the released partitions at once (no lease to wait).
    stop_heartbeat.cancel();
    heartbeat.await.context("heartbeat task")?;
    if !registration_lost.is_cancelled()
        && let Err(error) = store.deregister_agent(agent.node_id).await
    {
        tracing::warn!(%error, "deregistering the agent failed; the others take over after the lease");
    }
    // 3. Once the others have had a balance tick to take the partitions over,
    //    the connections close; clients retry their unanswered requests (none
    //    was accepted) at the new leaders.
    if !registration_lost.is_cancelled() {
        let others_notice = Duration::from_millis(args.balance_interval_ms.saturating_mul(2))
            .clamp(Duration::from_millis(100), Duration::from_secs(2));
        tokio::time::sleep(others_notice).await;
    }
    close_connections.cancel();
    kafka.await.context("kafka listener task")?;
    // 4. The flusher commits anything still accepted (nothing, after a
    //    complete hand-off) before it stops.
    stop_flusher.cancel();
    flusher.await.context("flusher task")?;
    if let Some(stats) = stats {
        stats.await.context("stats task")?;
    }
    if let Some(path) = &args.stats_file {
        write_stats(path, agent.node_id, &metrics).await;
    }
    if registration_lost.is_cancelled() {
        anyhow::bail!("this agent was judged dead by the others and must be restarted");
    }
    drop(store);
    // FoundationDB's network thread must stop before the process exits.
    #[cfg(feature = "fdb")]
    fjord_metadata::kv::fdb::stop_network().context("stopping the FoundationDB client")?;
    Ok(())
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

/// Replaces `path` with the object-store counters as one JSON object. Failures
/// are logged, never fatal: the statistics are for benchmarks.
async fn write_stats(path: &Path, node_id: i32, metrics: &ObjectStoreMetrics) {
    let json = stats_json(node_id, &metrics.snapshot());
    let mut staging = path.as_os_str().to_owned();
    staging.push(".tmp");
    let staging = PathBuf::from(staging);
    let written = async {
        tokio::fs::write(&staging, json.as_bytes()).await?;
        tokio::fs::rename(&staging, path).await
    };
    if let Err(error) = written.await {
        tracing::warn!(path = %path.display(), %error, "writing the stats file failed");
    }
}

/// The counters of `snapshot` as one JSON object (latency quantiles are upper
/// bounds within a factor of two, in microseconds; `null` when nothing was
/// recorded).
fn stats_json(node_id: i32, snapshot: &MetricsSnapshot) -> String {
    let micros = |quantile: Option<Duration>| {
        quantile.map_or_else(|| "null".to_owned(), |d| d.as_micros().to_string())
    };
    format!(
        concat!(
            "{{\"node_id\":{},\"object_store\":{{",
            "\"put_requests\":{},\"put_bytes\":{},\"get_requests\":{},\"get_bytes\":{},",
            "\"head_requests\":{},\"delete_requests\":{},\"list_requests\":{},",
            "\"copy_requests\":{},\"errors\":{},",
            "\"put_latency_p50_us\":{},\"put_latency_p99_us\":{},",
            "\"get_latency_p50_us\":{},\"get_latency_p99_us\":{}}}}}\n"
        ),
        node_id,
        snapshot.put_requests,
        snapshot.put_bytes,
        snapshot.get_requests,
        snapshot.get_bytes,
        snapshot.head_requests,
        snapshot.delete_requests,
        snapshot.list_requests,
        snapshot.copy_requests,
        snapshot.errors,
        micros(snapshot.put_latency.quantile(0.5)),
        micros(snapshot.put_latency.quantile(0.99)),
        micros(snapshot.get_latency.quantile(0.5)),
        micros(snapshot.get_latency.quantile(0.99)),
    )
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
