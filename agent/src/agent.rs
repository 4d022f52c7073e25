//! An agent, assembled: [`AgentBuilder`] takes the components (metadata store,
//! object store, clock, ids) and the settings, starts everything under one
//! [`TaskSupervisor`], and returns an [`Agent`] to run until a shutdown signal.
//! `main.rs` only turns settings into components; tests start agents
//! in-process the same way.
//!
//! # Tasks
//!
//! | task | critical | stops on |
//! |---|---|---|
//! | `kafka-listener` | yes | connections closing (shutdown stage 3) |
//! | `http-gateway` | yes | connections closing (shutdown stage 3) |
//! | `balancer` | yes | shutdown stage 1 (it then hands everything off) |
//! | `heartbeat` | yes | shutdown stage 2, or at once on a failure |
//! | `flusher` | yes | shutdown stage 4 |
//! | `group-expiry`, `producer-expiry` | yes | shutdown stage 1 |
//! | `stats` | no | shutdown stage 4 |
//! | `tls-reload` (with TLS) | no | shutdown stage 4 |
//!
//! # Stopping
//!
//! A graceful shutdown runs in stages (see `docs/operations.md`): stop
//! accepting connections and reading requests, and hand every partition and
//! coordinator shard off; stop the heartbeat and deregister; close the
//! connections once the others had a balance tick to take over; stop the
//! flusher.
//!
//! When a critical task fails (an error, a panic, or it ends early), the agent
//! is a zombie unless it stops at once: its heartbeat would keep its lease
//! while nothing commits. So the heartbeat stops first, every pending producer
//! is answered with a retriable error, the agent tries to deregister (so the
//! others take over without waiting for the lease), connections close, and
//! [`Agent::run_until`] returns the failure.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fjord_common::{Clock, IdGenerator, RandomIds, SystemClock, TaskSupervisor};
use fjord_metadata::MetadataStore;
use fjord_storage::object_store::ObjectStoreMetrics;
use object_store::ObjectStore;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::balancer::{HandOffReport, run_balancer};
use crate::cluster::{ClusterSettings, ClusterView, LiveAgent};
use crate::faults::FaultControls;
use crate::groups::{GroupCoordinator, GroupSettings};
use crate::log::{LogSettings, PartitionLogs};
use crate::topics::TopicCache;
use crate::{Broker, BrokerSettings};

/// The write-ahead log's place and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Its directory.
    pub dir: PathBuf,
    /// Bytes it may hold before produces wait.
    pub max_bytes: u64,
}

/// What an agent needs besides its components.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Local state: the node id file (and the default WAL and cache places).
    pub data_dir: PathBuf,
    /// The address the Kafka listener binds.
    pub kafka_listen: String,
    /// The `host:port` clients are told (default: the bound address).
    pub advertised_address: Option<String>,
    /// The address the HTTP gateway binds; `None`: no gateway.
    pub http_listen: Option<String>,
    /// The HTTP gateway's limits.
    pub gateway: fjord_gateway::GatewaySettings,
    /// The TLS certificate, key and client CAs; needed when the Kafka
    /// listener's protocol (`broker.security_protocol`) is TLS or
    /// `http_tls` is set. Reloaded while the agent runs when they change.
    pub tls: Option<crate::security::tls::TlsFiles>,
    /// Serve the HTTP gateway over TLS (with `tls`).
    pub http_tls: bool,
    /// The WAL; `None`: `acks=1` waits for the commit like `acks=all`.
    pub wal: Option<WalOptions>,
    /// The disk read cache: directory and byte limit.
    pub disk_cache: Option<(PathBuf, u64)>,
    /// The write and read path.
    pub log: LogSettings,
    /// Membership and balancing.
    pub cluster: ClusterSettings,
    /// The group coordinator.
    pub groups: GroupSettings,
    /// The Kafka protocol.
    pub broker: BrokerSettings,
    /// How often the agent renews its registration.
    pub heartbeat_interval: Duration,
    /// How often idle idempotent producers are looked for
    /// (`producer.id.expiration.check.interval.ms`).
    pub producer_expiry_interval: Duration,
    /// Retention and the bucket's garbage collection.
    pub retention: crate::maintenance::retention::RetentionSettings,
    /// Object compaction.
    pub compaction: crate::maintenance::compaction::CompactionSettings,
    /// Log compaction (`cleanup.policy=compact`).
    pub log_compaction: crate::maintenance::log_compaction::LogCompactionSettings,
    /// What this agent does (`--roles`).
    pub roles: fjord_metadata::AgentRoles,
    /// Object-store counters written as JSON to this file every interval.
    pub stats_file: Option<(PathBuf, Duration)>,
    /// Tests: a file whose content sets the injected faults while the agent
    /// runs ([`crate::faults`]).
    pub fault_control_file: Option<PathBuf>,
}

impl AgentOptions {
    /// Defaults for an agent on `data_dir` listening on `kafka_listen`, with a
    /// WAL under the data directory and no disk cache.
    pub fn new(data_dir: impl Into<PathBuf>, kafka_listen: impl Into<String>) -> Self {
        let data_dir = data_dir.into();
        Self {
            wal: Some(WalOptions {
                dir: data_dir.join("wal"),
                max_bytes: 512 * 1024 * 1024,
            }),
            data_dir,
            kafka_listen: kafka_listen.into(),
            advertised_address: None,
            http_listen: None,
            gateway: fjord_gateway::GatewaySettings::default(),
            tls: None,
            http_tls: false,
            disk_cache: None,
            log: LogSettings::default(),
            cluster: ClusterSettings::default(),
            groups: GroupSettings::default(),
            broker: BrokerSettings::default(),
            heartbeat_interval: Duration::from_millis(500),
            producer_expiry_interval: Duration::from_secs(600),
            retention: crate::maintenance::retention::RetentionSettings::default(),
            compaction: crate::maintenance::compaction::CompactionSettings::default(),
            log_compaction: crate::maintenance::log_compaction::LogCompactionSettings::default(),
            roles: fjord_metadata::AgentRoles::ALL,
            stats_file: None,
            fault_control_file: None,
        }
    }
}

/// Assembles an agent from its components.
#[derive(Debug)]
pub struct AgentBuilder {
    options: AgentOptions,
    store: MetadataStore,
    objects: Arc<dyn ObjectStore>,
    metrics: Option<Arc<ObjectStoreMetrics>>,
    faults: FaultControls,
    ids: Arc<dyn IdGenerator>,
    clock: Arc<dyn Clock>,
}

impl AgentBuilder {
    /// An agent over `store` and `objects`.
    pub fn new(options: AgentOptions, store: MetadataStore, objects: Arc<dyn ObjectStore>) -> Self {
        Self {
            options,
            store,
            objects,
            metrics: None,
            faults: FaultControls::default(),
            ids: Arc::new(RandomIds::new()),
            clock: Arc::new(SystemClock),
        }
    }

    /// The object store's request counters (for the stats file).
    pub fn metrics(mut self, metrics: Arc<ObjectStoreMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The fault injectors in the components (tests), for the control file.
    pub fn faults(mut self, faults: FaultControls) -> Self {
        self.faults = faults;
        self
    }

    /// Ids from `ids` instead of random ones.
    pub fn ids(mut self, ids: Arc<dyn IdGenerator>) -> Self {
        self.ids = ids;
        self
    }

    /// Time from `clock` instead of the system's.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Looks for orphaned objects in the bucket and deletes them unless
    /// `dry_run` (`fjord sweep-orphans`; see [`crate::maintenance::orphans`]).
    pub async fn sweep_orphans(
        &self,
        dry_run: bool,
    ) -> anyhow::Result<crate::maintenance::orphans::SweepReport> {
        let cluster_id = self
            .store
            .cluster_id()
            .await
            .context("reading the cluster id")?;
        let keys = fjord_storage::ObjectKeys::new(&cluster_id).context("object key prefix")?;
        crate::maintenance::orphans::sweep(
            &self.store,
            &*self.objects,
            &keys,
            self.clock.now_millis(),
            usize::MAX,
            dry_run,
        )
        .await
    }

    /// What the bucket holds and what the jobs owe (`fjord storage-report`;
    /// see [`crate::maintenance::report`]), with a dry-run orphan sweep when
    /// `orphans`.
    pub async fn storage_report(
        &self,
        orphans: bool,
    ) -> anyhow::Result<crate::maintenance::report::StorageReport> {
        let sweep = if orphans {
            Some(self.sweep_orphans(true).await?)
        } else {
            None
        };
        Ok(crate::maintenance::report::storage_report(
            &self.store,
            &self.options.compaction,
            self.clock.now_millis(),
            sweep.as_ref(),
        )
        .await?)
    }

    /// Registers the agent, recovers its WAL and starts every task.
    pub async fn start(self) -> anyhow::Result<Agent> {
        let AgentBuilder {
            options,
            store,
            objects,
            metrics,
            faults,
            ids,
            clock,
        } = self;
        tokio::fs::create_dir_all(&options.data_dir)
            .await
            .with_context(|| format!("creating {}", options.data_dir.display()))?;
        let tls = match &options.tls {
            Some(files) => Some(Arc::new(
                crate::security::tls::TlsServer::load(files.clone())
                    .context("loading the TLS certificate")?,
            )),
            None => None,
        };
        let security_protocol = options.broker.security_protocol;
        let kafka_tls = match (security_protocol.uses_tls(), &tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(tls.clone()),
            (true, None) => anyhow::bail!(
                "the Kafka listener's security protocol {security_protocol} needs a TLS \
                 certificate and key (tls-cert-file, tls-key-file)"
            ),
        };
        let http_tls = match (options.http_tls, &tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(tls.clone()),
            (true, None) => anyhow::bail!(
                "http-tls needs a TLS certificate and key (tls-cert-file, tls-key-file)"
            ),
        };
        let listener = tokio::net::TcpListener::bind(&options.kafka_listen)
            .await
            .with_context(|| format!("binding the kafka listener to {}", options.kafka_listen))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        let http_listener = match &options.http_listen {
            Some(address) => Some(
                tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding the HTTP gateway to {address}"))?,
            ),
            None => None,
        };
        let http_bound = http_listener
            .as_ref()
            .map(tokio::net::TcpListener::local_addr)
            .transpose()
            .context("reading the HTTP gateway's bound address")?;
        let advertised = options
            .advertised_address
            .clone()
            .unwrap_or_else(|| bound.to_string());
        let (advertised_host, advertised_port) = advertised
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
            .with_context(|| format!("advertised address {advertised:?} is not host:port"))?;
        // The gateway is advertised on the Kafka listener's advertised host.
        let gateway_advertised =
            http_bound.map(|bound| format!("{advertised_host}:{}", bound.port()));
        let node_id = crate::heartbeat::register(
            &store,
            &options.data_dir,
            &advertised,
            gateway_advertised.as_deref(),
            options.roles,
            &*ids,
        )
        .await?;

        // Every registered agent counts as live until its heartbeat says
        // otherwise (as the balancer judges them), so nothing this agent does
        // before its first balancing — WAL recovery, early requests — takes a
        // partition from a live agent.
        let registered = store.list_agents().await.context("listing the agents")?;
        let cluster_id = store.cluster_id().await.context("reading the cluster id")?;
        let keys = fjord_storage::ObjectKeys::new(&cluster_id).context("object key prefix")?;
        let (wal, recovered) = match &options.wal {
            Some(wal) => {
                let dir = wal.dir.clone();
                let wal_options = fjord_storage::wal::WalOptions {
                    max_bytes: wal.max_bytes,
                    ..fjord_storage::wal::WalOptions::default()
                };
                let (wal, recovery) = tokio::task::spawn_blocking(move || {
                    fjord_storage::wal::Wal::open(&dir, wal_options)
                })
                .await
                .context("opening the write-ahead log")?
                .with_context(|| format!("opening the write-ahead log in {}", wal.dir.display()))?;
                if recovery.cut_bytes > 0 {
                    tracing::warn!(
                        cut_bytes = recovery.cut_bytes,
                        "cut a torn tail from the write-ahead log"
                    );
                }
                (Some((wal, recovery.next_sequence)), recovery.records)
            }
            None => (None, Vec::new()),
        };
        let view = Arc::new(
            ClusterView::new(LiveAgent {
                node_id,
                host: advertised_host.clone(),
                port: advertised_port,
            })
            .with_roles(options.roles),
        );
        view.set_roles(
            registered
                .iter()
                .filter(|record| record.node_id != node_id)
                .map(|record| (record.node_id, record.roles)),
        );
        view.set_live(
            registered
                .iter()
                .filter_map(LiveAgent::from_record)
                .collect(),
        );
        let topics = Arc::new(TopicCache::new(store.clone()));
        let retention_parts = (objects.clone(), keys.clone(), clock.clone(), ids.clone());
        let gateway_clock = clock.clone();
        let transactions_clock = clock.clone();
        let mut logs = PartitionLogs::new(
            store.clone(),
            objects,
            keys,
            ids.clone(),
            clock,
            node_id,
            options.log,
            wal,
        )
        .with_placement(view.clone())
        .with_topics(topics);
        if let Some((dir, bytes)) = &options.disk_cache {
            let disk = fjord_storage::cache::DiskRangeCache::open(dir, *bytes)
                .await
                .with_context(|| format!("opening the read cache in {}", dir.display()))?;
            logs = logs.with_disk_cache(Arc::new(disk));
        }
        let logs = Arc::new(logs);
        let replayed = logs
            .recover(recovered)
            .await
            .context("committing what the write-ahead log holds")?;
        if replayed > 0 {
            tracing::info!(
                batches = replayed,
                "committed batches recovered from the write-ahead log"
            );
        }
        let groups = Arc::new(
            GroupCoordinator::new(store.clone(), node_id, ids, options.groups)
                .with_cluster(view.clone()),
        );
        let transactions = Arc::new(crate::transactions::TransactionCoordinator::new(
            store.clone(),
            groups.clone(),
            logs.clone(),
            view.clone(),
            transactions_clock,
        ));
        let authorizer = Arc::new(crate::security::authorizer::Authorizer::new(
            options.broker.authorizer.clone(),
            store.clone(),
        ));
        if authorizer.is_enabled() {
            // As Kafka's authorizer, serve no one but super users before the
            // ACLs are read.
            authorizer.refresh().await.context("reading the acls")?;
        }
        let broker = Arc::new(Broker {
            authorizer,
            store: store.clone(),
            groups: groups.clone(),
            transactions: transactions.clone(),
            node_id,
            advertised_host,
            advertised_port,
            cluster_id,
            logs: logs.clone(),
            cluster: view.clone(),
            settings: options.broker.clone(),
        });

        let supervisor = TaskSupervisor::new();
        let stages = Stages::default();
        supervisor.spawn_critical(
            "flusher",
            stages.stop_flusher.clone(),
            logs.clone().run_flusher(stages.stop_flusher.clone()),
        );
        tracing::info!(listen = %bound, node_id, protocol = %security_protocol, "kafka listener ready");
        supervisor.spawn_critical("kafka-listener", stages.close_connections.clone(), {
            let broker = broker.clone();
            let stop_accepting = stages.stop_accepting.clone();
            let close = stages.close_connections.clone();
            async move {
                match kafka_tls {
                    Some(tls) => {
                        crate::kafka::serve_tls(listener, broker, tls, stop_accepting, close).await
                    }
                    None => crate::kafka::serve(listener, broker, stop_accepting, close).await,
                }
                Ok(())
            }
        });
        if let Some(tls) = &tls {
            supervisor
                .spawn_background("tls-reload", tls.clone().watch(stages.stop_flusher.clone()));
        }
        if let Some(http_listener) = http_listener {
            let core = Arc::new(crate::http::GatewayCore::new(broker.clone(), gateway_clock));
            let router =
                fjord_gateway::router(core, options.gateway.clone(), stages.stop_accepting.clone());
            tracing::info!(listen = ?http_bound, node_id, tls = http_tls.is_some(), "HTTP gateway ready");
            supervisor.spawn_critical("http-gateway", stages.close_connections.clone(), {
                let stop = stages.close_connections.clone();
                async move {
                    match http_tls {
                        Some(tls) => {
                            let listener = crate::security::tls::TlsListener::new(
                                http_listener,
                                tls,
                                stop.clone(),
                            )
                            .context("the HTTP gateway's TLS listener")?;
                            fjord_gateway::serve_on(listener, router, stop).await
                        }
                        None => fjord_gateway::serve(http_listener, router, stop).await,
                    }
                    .context("serving the HTTP gateway")
                }
            });
        }
        supervisor.spawn_critical(
            "group-expiry",
            stages.stop_accepting.clone(),
            groups.clone().run_expiry(stages.stop_accepting.clone()),
        );
        supervisor.spawn_critical(
            "transaction-coordinator",
            stages.stop_accepting.clone(),
            transactions.run(stages.stop_accepting.clone()),
        );
        supervisor.spawn_critical(
            "producer-expiry",
            stages.stop_accepting.clone(),
            crate::maintenance::producer_expiry::run(
                logs.clone(),
                options.producer_expiry_interval,
                stages.stop_accepting.clone(),
            ),
        );
        if options.roles.jobs {
            let (objects, keys, clock, ids) = retention_parts;
            let leases = crate::maintenance::leases::JobLeases::new(store.clone(), view.clone());
            supervisor.spawn_critical(
                "log-compaction",
                stages.stop_accepting.clone(),
                crate::maintenance::log_compaction::LogCompaction::new(
                    store.clone(),
                    objects.clone(),
                    keys.clone(),
                    leases.clone(),
                    clock.clone(),
                    ids.clone(),
                    options.log_compaction,
                )
                .run(stages.stop_accepting.clone()),
            );
            supervisor.spawn_critical(
                "compaction",
                stages.stop_accepting.clone(),
                crate::maintenance::compaction::Compaction::new(
                    store.clone(),
                    objects.clone(),
                    keys.clone(),
                    leases.clone(),
                    clock.clone(),
                    ids,
                    options.compaction,
                    options.retention,
                )
                .run(stages.stop_accepting.clone()),
            );
            supervisor.spawn_critical(
                "retention",
                stages.stop_accepting.clone(),
                crate::maintenance::retention::Retention::new(
                    store.clone(),
                    logs.clone(),
                    objects,
                    keys,
                    leases,
                    clock,
                    options.retention,
                )
                .run(stages.stop_accepting.clone()),
            );
        }
        let (report_tx, hand_off) = oneshot::channel();
        supervisor.spawn_critical("balancer", stages.stop_accepting.clone(), {
            let balancer = run_balancer(
                store.clone(),
                logs.clone(),
                groups,
                view.clone(),
                options.cluster,
                stages.stop_accepting.clone(),
            );
            async move {
                let _ = report_tx.send(balancer.await);
                Ok(())
            }
        });
        supervisor.spawn_critical(
            "heartbeat",
            stages.stop_heartbeat.clone(),
            crate::heartbeat::run_heartbeat(
                store.clone(),
                node_id,
                options.heartbeat_interval,
                stages.stop_heartbeat.clone(),
            ),
        );
        if let Some((path, interval)) = options.stats_file.clone()
            && let Some(metrics) = &metrics
        {
            let metrics = Arc::clone(metrics);
            let stop = stages.stop_flusher.clone();
            supervisor.spawn_background("stats", async move {
                crate::stats::run(path, node_id, metrics, interval, stop).await;
                Ok(())
            });
        }
        if let Some(path) = options.fault_control_file.clone() {
            supervisor.spawn_background(
                "fault-control",
                faults.watch_file(path, stages.stop_flusher.clone()),
            );
        }
        Ok(Agent {
            node_id,
            bound,
            http_bound,
            store,
            logs,
            broker,
            view,
            supervisor,
            stages,
            hand_off: Some(hand_off),
            options,
            metrics,
        })
    }
}

/// The tokens of the shutdown stages, in order.
#[derive(Debug, Default)]
struct Stages {
    /// 1. No new connections or requests; the balancer hands everything off.
    stop_accepting: CancellationToken,
    /// 2. The heartbeat stops (then the agent deregisters).
    stop_heartbeat: CancellationToken,
    /// 3. Connections close.
    close_connections: CancellationToken,
    /// 4. The flusher commits what is left and stops.
    stop_flusher: CancellationToken,
}

impl Stages {
    fn cancel_all(&self) {
        self.stop_heartbeat.cancel();
        self.stop_accepting.cancel();
        self.close_connections.cancel();
        self.stop_flusher.cancel();
    }
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    node_id: i32,
    bound: SocketAddr,
    http_bound: Option<SocketAddr>,
    store: MetadataStore,
    logs: Arc<PartitionLogs>,
    broker: Arc<Broker>,
    view: Arc<ClusterView>,
    supervisor: Arc<TaskSupervisor>,
    stages: Stages,
    hand_off: Option<oneshot::Receiver<HandOffReport>>,
    options: AgentOptions,
    metrics: Option<Arc<ObjectStoreMetrics>>,
}

/// How long a failed agent waits for its deregistration before it gives up
/// (the others then take over when its lease lapses).
const DEREGISTER_ON_FAILURE: Duration = Duration::from_secs(2);

/// How long tasks get to end after their stage, before they are aborted.
const TASK_PATIENCE: Duration = Duration::from_secs(10);

impl Agent {
    /// This agent's node id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The address the Kafka listener is bound to.
    pub fn kafka_address(&self) -> SocketAddr {
        self.bound
    }

    /// The address the HTTP gateway is bound to, if it runs.
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.http_bound
    }

    /// The partition logs (tests look inside).
    pub fn logs(&self) -> &Arc<PartitionLogs> {
        &self.logs
    }

    /// What the request handlers share.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The supervisor of this agent's tasks.
    pub fn supervisor(&self) -> &Arc<TaskSupervisor> {
        &self.supervisor
    }

    /// Runs until `shutdown` resolves (then shuts down gracefully) or a
    /// critical task fails (then stops at once and returns the failure); see
    /// the module docs.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::select! {
            _ = shutdown => {}
            _ = self.supervisor.failed() => {}
        }
        if self.supervisor.has_failed() {
            return self.stop_after_failure().await;
        }
        self.shut_down().await
    }

    async fn shut_down(mut self) -> anyhow::Result<()> {
        // 1. No new connections, no new requests read on the open ones; every
        //    partition drained (what was accepted committed and answered) and
        //    released, every coordinator shard released.
        tracing::info!(
            node_id = self.node_id,
            "shutting down: handing partitions off"
        );
        self.stages.stop_accepting.cancel();
        let patience = self.options.cluster.hand_off_timeout + TASK_PATIENCE;
        let hand_off = async {
            match self.hand_off.take() {
                Some(report) => tokio::time::timeout(patience, report)
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => None,
            }
        };
        let report = tokio::select! {
            report = hand_off => report,
            _ = self.supervisor.failed() => None,
        };
        if let Some(report) = report {
            tracing::info!(
                node_id = self.node_id,
                partitions = report.partitions,
                partitions_left = report.partitions_left,
                shards = report.shards,
                took_ms = u64::try_from(report.took.as_millis()).unwrap_or(u64::MAX),
                "handed off"
            );
        }
        // 2. Leave: the others see the registration gone at their next balance
        //    tick and take the released partitions at once (no lease to wait).
        self.stages.stop_heartbeat.cancel();
        let failed = self.supervisor.has_failed();
        if !failed && let Err(error) = self.store.deregister_agent(self.node_id).await {
            tracing::warn!(%error, "deregistering the agent failed; the others take over after the lease");
        }
        // 3. Once the others have had a balance tick to take the partitions
        //    over, the connections close; clients retry their unanswered
        //    requests (none was accepted) at the new leaders.
        if !failed {
            let others_notice = self
                .options
                .cluster
                .balance_interval
                .saturating_mul(2)
                .clamp(Duration::from_millis(100), Duration::from_secs(2));
            tokio::time::sleep(others_notice).await;
        }
        self.stages.close_connections.cancel();
        // 4. The flusher commits anything still accepted (nothing, after a
        //    complete hand-off) before it stops.
        self.stages.stop_flusher.cancel();
        let aborted = self.supervisor.shutdown(TASK_PATIENCE).await;
        if aborted > 0 {
            tracing::warn!(tasks = aborted, "tasks aborted at shutdown");
        }
        self.write_final_stats().await;
        match self.supervisor.first_failure() {
            Some(failure) => Err(anyhow::anyhow!("{failure}")),
            None => Ok(()),
        }
    }

    async fn stop_after_failure(self) -> anyhow::Result<()> {
        let failure = self
            .supervisor
            .first_failure()
            .map_or_else(|| "a task failed".to_owned(), ToString::to_string);
        tracing::error!(node_id = self.node_id, %failure, "stopping: a critical task failed");
        self.stages.stop_heartbeat.cancel();
        self.view.leave();
        self.logs.stop();
        match tokio::time::timeout(
            DEREGISTER_ON_FAILURE,
            self.store.deregister_agent(self.node_id),
        )
        .await
        {
            Ok(Ok(())) => tracing::info!(node_id = self.node_id, "deregistered"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "deregistering failed; the others take over after the lease")
            }
            Err(_) => {
                tracing::warn!("deregistering timed out; the others take over after the lease")
            }
        }
        self.stages.cancel_all();
        let aborted = self.supervisor.shutdown(TASK_PATIENCE).await;
        if aborted > 0 {
            tracing::warn!(tasks = aborted, "tasks aborted while stopping");
        }
        self.write_final_stats().await;
        Err(anyhow::anyhow!(failure))
    }

    async fn write_final_stats(&self) {
        if let (Some((path, _)), Some(metrics)) = (&self.options.stats_file, &self.metrics) {
            crate::stats::write(path, self.node_id, metrics).await;
        }
    }
}
