//! `fjord`: the Fjord command line. `fjord agent` runs a broker agent; the other
//! subcommands are tools.

use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fjord_agent::log::{LogSettings, PartitionLogs};
use fjord_agent::{Broker, BrokerSettings};
use fjord_common::{IdGenerator, RandomIds, SystemClock};
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
    Agent(AgentArgs),
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
    /// Partitions of auto-created topics (num.partitions).
    #[arg(long, env = "FJORD_NUM_PARTITIONS", default_value_t = 1)]
    num_partitions: i32,
    /// How often the agent renews its registration.
    #[arg(long, env = "FJORD_HEARTBEAT_INTERVAL_MS", default_value_t = 1000)]
    heartbeat_interval_ms: u64,
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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
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
            .block_on(run_agent(args)),
    }
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
    let agent = store
        .register_agent(instance, &advertised)
        .await
        .context("registering the agent")?;
    tracing::info!(
        node_id = agent.node_id,
        %instance,
        metadata = %metadata_url,
        backend = store.database().backend_name(),
        advertised = %agent.advertised_address,
        "agent registered"
    );

    let cluster_id = store.cluster_id().await.context("reading the cluster id")?;
    let storage_url = args
        .storage_url
        .clone()
        .unwrap_or_else(|| format!("file://{}", args.data_dir.join("bucket").display()));
    let opened = fjord_storage::object_store::open_store(
        &storage_url,
        &fjord_storage::object_store::StoreOptions::default(),
    )
    .with_context(|| format!("opening object storage at {storage_url}"))?;
    tracing::info!(storage = %storage_url, "object storage ready");
    let objects = opened.store;
    let keys = fjord_storage::ObjectKeys::new(&cluster_id).context("object key prefix")?;
    let logs = Arc::new(PartitionLogs::new(
        store.clone(),
        objects,
        keys,
        Arc::new(RandomIds::new()),
        Arc::new(SystemClock),
        agent.node_id,
        LogSettings {
            flush_interval: Duration::from_millis(args.flush_interval_ms.max(1)),
            ..LogSettings::default()
        },
    ));
    let groups = Arc::new(fjord_agent::groups::GroupCoordinator::new(
        store.clone(),
        agent.node_id,
        Arc::new(RandomIds::new()),
        fjord_agent::groups::GroupSettings {
            initial_rebalance_delay: Duration::from_millis(args.group_initial_rebalance_delay_ms),
            min_session_timeout: Duration::from_millis(args.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(args.group_max_session_timeout_ms),
            ..fjord_agent::groups::GroupSettings::default()
        },
    ));
    let broker = Arc::new(Broker {
        store: store.clone(),
        groups,
        node_id: agent.node_id,
        advertised_host,
        advertised_port,
        cluster_id,
        logs: logs.clone(),
        settings: BrokerSettings {
            auto_create_topics: args.auto_create_topics,
            default_partitions: args.num_partitions,
            ..BrokerSettings::default()
        },
    });
    let shutdown = CancellationToken::new();
    let flusher = tokio::spawn(logs.clone().run_flusher(shutdown.clone()));
    tracing::info!(listen = %bound, "kafka listener ready");
    let kafka = tokio::spawn(fjord_agent::kafka::serve(
        listener,
        broker,
        shutdown.clone(),
    ));
    let heartbeat = tokio::spawn({
        let store = store.clone();
        let shutdown = shutdown.clone();
        let interval = Duration::from_millis(args.heartbeat_interval_ms.max(10));
        async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticker.tick() => {
                        if let Err(error) = store.heartbeat(agent.node_id).await {
                            tracing::warn!(node_id = agent.node_id, %error, "heartbeat failed");
                        }
                    }
                }
            }
        }
    });

    wait_for_signal().await;
    tracing::info!(node_id = agent.node_id, "shutting down");
    shutdown.cancel();
    heartbeat.await.context("heartbeat task")?;
    kafka.await.context("kafka listener task")?;
    // The flusher commits what was accepted before it stops.
    flusher.await.context("flusher task")?;
    store
        .deregister_agent(agent.node_id)
        .await
        .context("deregistering the agent")?;
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
