//! `fjord`: the Fjord command line. `fjord agent` runs a broker agent; the other
//! subcommands are tools.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fjord_common::{IdGenerator, RandomIds};
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
    /// The host:port clients are told to connect to.
    #[arg(
        long,
        env = "FJORD_ADVERTISED_ADDRESS",
        default_value = "127.0.0.1:9092"
    )]
    advertised_address: String,
    /// How often the agent renews its registration.
    #[arg(long, env = "FJORD_HEARTBEAT_INTERVAL_MS", default_value_t = 1000)]
    heartbeat_interval_ms: u64,
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
    let instance = RandomIds::new().uuid();
    let agent = store
        .register_agent(instance, &args.advertised_address)
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

    let shutdown = CancellationToken::new();
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
