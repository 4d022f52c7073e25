//! `fjord`: the Fjord command line. `fjord agent` runs a broker agent; the other
//! subcommands are tools. Everything an agent is made of is in the library: this
//! file parses the command line, sets up logging, and starts a runtime.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fjord_agent::config::{AgentArgs, AgentSettings, unrecognized_env_vars};

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
    /// Run an agent. With no flags: SQLite metadata and a local-directory bucket
    /// under ./fjord-data. Settings come from defaults, a `--config` file,
    /// `FJORD_*` environment variables and flags, each overriding the one before.
    Agent(Box<AgentArgs>),
    /// Print the version.
    Version,
    /// Consumer groups, read from metadata: list, describe, lag.
    Groups(GroupsArgs),
    /// SASL/SCRAM users in metadata: set a password, delete, list (what
    /// `AlterUserScramCredentials` does, for the first users of a cluster
    /// whose listeners all need one).
    Users(UsersArgs),
    /// Delete segment objects written but never committed, old enough that no
    /// commit can take them (the agents also do it hourly). Takes the agent's
    /// settings to find the bucket and metadata.
    SweepOrphans(Box<SweepArgs>),
    /// What the bucket holds per partition and what retention, compaction and
    /// garbage collection still owe, read from metadata. Takes the agent's
    /// settings.
    StorageReport(Box<StorageReportArgs>),
}

#[derive(Debug, clap::Args)]
struct StorageReportArgs {
    /// Also list the bucket for orphans (objects written, never committed).
    #[arg(long)]
    orphans: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    agent: AgentArgs,
}

#[derive(Debug, clap::Args)]
struct SweepArgs {
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    agent: AgentArgs,
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
struct UsersArgs {
    /// The agent's data directory (for the default metadata file).
    #[arg(long, env = "FJORD_DATA_DIR", default_value = "fjord-data")]
    data_dir: PathBuf,
    /// Metadata backend URL. Default: `sqlite://{data-dir}/metadata.db`.
    #[arg(long, env = "FJORD_METADATA_URL")]
    metadata_url: Option<String>,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Sets a user's password for SCRAM mechanisms (a fresh salt each), read
    /// from the first line of `--password-file`, or of standard input.
    Set {
        /// The user name.
        user: String,
        /// A file whose first line is the password. Default: standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The mechanisms, comma-separated.
        #[arg(long, default_value = "SCRAM-SHA-256,SCRAM-SHA-512")]
        mechanisms: String,
        /// PBKDF2 iterations (4096..=16384).
        #[arg(long, default_value_t = 8192)]
        iterations: i32,
    },
    /// Deletes a user's credentials.
    Delete {
        /// The user name.
        user: String,
    },
    /// Every user with their mechanisms and iteration counts.
    List,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colour only for a person at a terminal, never in files or pipes.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    // `Some`: the sweep, run below.
    let result: anyhow::Result<Option<Box<SweepArgs>>> = match Cli::parse().command {
        Command::Version => {
            println!("fjord {}", env!("CARGO_PKG_VERSION"));
            Ok(None)
        }
        Command::Groups(args) => runtime(false)
            .and_then(|rt| rt.block_on(run_groups(args)))
            .map(|()| None),
        Command::Users(args) => runtime(false)
            .and_then(|rt| rt.block_on(run_users(args)))
            .map(|()| None),
        Command::SweepOrphans(args) => Ok(Some(args)),
        Command::StorageReport(args) => runtime(false)
            .and_then(|rt| rt.block_on(storage_report(*args)))
            .map(|()| None),
        Command::Agent(args) => {
            let settings = match AgentSettings::load(&args) {
                Ok(settings) => settings,
                Err(error) => {
                    eprintln!("fjord: {error}");
                    return ExitCode::from(2);
                }
            };
            let ignored = unrecognized_env_vars(
                std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()),
            );
            if !ignored.is_empty() {
                tracing::warn!(
                    ?ignored,
                    "FJORD_* variables that name no setting are ignored"
                );
            }
            runtime(true)
                .and_then(|rt| rt.block_on(fjord_agent::launch::run(settings)))
                .map(|()| None)
        }
    };
    let result = match result {
        Ok(Some(args)) => runtime(false).and_then(|rt| rt.block_on(sweep_orphans(*args))),
        Ok(None) => Ok(()),
        Err(error) => Err(error),
    };
    // FoundationDB's network thread must stop before the process exits.
    #[cfg(feature = "fdb")]
    if let Err(error) = fjord_metadata::kv::fdb::stop_network() {
        eprintln!("fjord: stopping the FoundationDB client: {error}");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fjord: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(multi_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().context("starting the runtime")
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
    Ok(())
}

async fn run_users(args: UsersArgs) -> anyhow::Result<()> {
    use fjord_agent::security::sasl::{self, Mechanism};
    use fjord_metadata::ScramChange;
    let metadata_url = args
        .metadata_url
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("metadata.db").display()));
    let store = fjord_metadata::open(&metadata_url)
        .await
        .with_context(|| format!("opening metadata at {metadata_url}"))?;
    match args.command {
        UsersCommand::Set {
            user,
            password_file,
            mechanisms,
            iterations,
        } => {
            anyhow::ensure!(!user.is_empty(), "the user name must not be empty");
            anyhow::ensure!(
                (sasl::MIN_ITERATIONS..=sasl::MAX_ITERATIONS).contains(&iterations),
                "{iterations} iterations is outside {}..={}",
                sasl::MIN_ITERATIONS,
                sasl::MAX_ITERATIONS
            );
            let text = match &password_file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => std::io::read_to_string(std::io::stdin()).context("reading stdin")?,
            };
            let password = text.lines().next().unwrap_or_default().to_owned();
            anyhow::ensure!(!password.is_empty(), "the password must not be empty");
            let mut changes = Vec::new();
            for name in mechanisms.split(',').map(str::trim) {
                let mechanism = Mechanism::from_name(name)
                    .filter(|m| *m != Mechanism::Plain)
                    .with_context(|| format!("{name:?} is not a SCRAM mechanism"))?;
                let credential = sasl::credential_from_password(mechanism, &password, iterations)
                    .context("salting the password")?;
                changes.push(ScramChange::Upsert {
                    user: user.clone(),
                    mechanism: mechanism.name().to_owned(),
                    credential,
                });
            }
            store.alter_scram_credentials(&changes).await?;
            println!("set {} credential(s) of {user}", changes.len());
        }
        UsersCommand::Delete { user } => {
            let changes: Vec<ScramChange> = [Mechanism::ScramSha256, Mechanism::ScramSha512]
                .into_iter()
                .map(|m| ScramChange::Delete {
                    user: user.clone(),
                    mechanism: m.name().to_owned(),
                })
                .collect();
            let deleted = store.alter_scram_credentials(&changes).await?;
            let count = deleted.iter().filter(|d| **d).count();
            anyhow::ensure!(count > 0, "{user} has no credentials");
            println!("deleted {count} credential(s) of {user}");
        }
        UsersCommand::List => {
            for (user, mechanism, iterations) in store.scram_users().await? {
                println!("{user}\t{mechanism}\titerations={iterations}");
            }
        }
    }
    Ok(())
}

async fn sweep_orphans(args: SweepArgs) -> anyhow::Result<()> {
    let settings = AgentSettings::load(&args.agent).map_err(|e| anyhow::anyhow!("{e}"))?;
    let builder = fjord_agent::launch::open(&settings).await?;
    let report = builder.sweep_orphans(args.dry_run).await?;
    for key in &report.orphans {
        println!("{key}");
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let count = if args.dry_run {
        report.orphans.len()
    } else {
        report.deleted
    };
    println!(
        "{verb} {count} orphaned objects ({} bytes) of {} listed",
        report.orphan_bytes, report.listed
    );
    Ok(())
}

async fn storage_report(args: StorageReportArgs) -> anyhow::Result<()> {
    let settings = AgentSettings::load(&args.agent).map_err(|e| anyhow::anyhow!("{e}"))?;
    let builder = fjord_agent::launch::open(&settings).await?;
    let report = builder.storage_report(args.orphans).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}
