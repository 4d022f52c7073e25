//! From settings to a running agent: open the metadata store and the object
//! store their URLs name (with the latency model of benchmarks and the fault
//! injectors of tests where the settings ask for them), build the agent, run it
//! until SIGTERM or SIGINT.

use std::sync::Arc;

use anyhow::Context;
use fjord_storage::object_store::{
    FaultInjectingObjectStore, LatencyInjectingObjectStore, StoreOptions,
};
use object_store::ObjectStore;

use crate::agent::WalOptions;
use crate::config::AgentSettings;
use crate::faults::FaultControls;
use crate::{AgentBuilder, AgentOptions};

/// Opens the components `settings` name and returns the agent's builder.
pub async fn open(settings: &AgentSettings) -> anyhow::Result<AgentBuilder> {
    tokio::fs::create_dir_all(settings.data_dir())
        .await
        .with_context(|| format!("creating {}", settings.data_dir().display()))?;
    let mut faults = FaultControls::default();
    let metadata_url = settings.metadata_url();
    let mut metadata_options = fjord_metadata::OpenOptions::default();
    if !settings.fault_metadata.is_empty() || settings.fault_control_file.is_some() {
        let spec = crate::faults::metadata_spec(&settings.fault_metadata)
            .map_err(|e| anyhow::anyhow!("fault-metadata: {e}"))?;
        tracing::warn!(faults = %spec, "injecting metadata faults");
        let injector =
            fjord_metadata::kv::fault::FaultInjector::with_spec(&spec, settings.fault_seed);
        faults.metadata = Some(injector.clone());
        metadata_options.faults = Some(injector);
    }
    let store = fjord_metadata::open_with_options(&metadata_url, metadata_options)
        .await
        .with_context(|| format!("opening metadata at {metadata_url}"))?;
    let storage_url = settings.storage_url();
    let store_options = StoreOptions {
        hedge: settings.hedge_options(),
        ..StoreOptions::default()
    };
    let backend = fjord_storage::object_store::open_backend(&storage_url, &store_options)
        .with_context(|| format!("opening object storage at {storage_url}"))?;
    // The latency model sits right above the backend, so the request metrics
    // (and retries) see the modelled latencies; injected faults sit there too,
    // below the retries, as a flaky bucket would.
    let backend: Arc<dyn ObjectStore> = match settings.latency_profile() {
        None => backend,
        Some(profile) => Arc::new(LatencyInjectingObjectStore::new(
            backend,
            profile,
            settings.storage_latency_seed,
        )),
    };
    let backend: Arc<dyn ObjectStore> =
        if settings.fault_object_store.is_empty() && settings.fault_control_file.is_none() {
            backend
        } else {
            let injector = Arc::new(FaultInjectingObjectStore::new(backend, settings.fault_seed));
            injector
                .apply_spec(&settings.fault_object_store)
                .map_err(|e| anyhow::anyhow!("fault-object-store: {e}"))?;
            tracing::warn!(faults = %settings.fault_object_store, "injecting object-store faults");
            faults.object_store = Some(injector.clone());
            injector
        };
    let opened = fjord_storage::object_store::decorate(backend, &store_options);
    tracing::info!(
        storage = %storage_url,
        latency_profile = ?settings.storage_latency_profile,
        "object storage ready"
    );
    Ok(AgentBuilder::new(options(settings), store, opened.store)
        .metrics(opened.metrics)
        .faults(faults))
}

/// The agent's options from `settings`.
pub fn options(settings: &AgentSettings) -> AgentOptions {
    let mut options = AgentOptions::new(settings.data_dir(), settings.kafka_listen.clone());
    options.advertised_address = settings.advertised_address.clone();
    options.http_listen = settings.http_listen();
    options.gateway = settings.gateway_settings();
    options.tls = settings.tls_files();
    options.http_tls = settings.http_tls;
    options.wal = Some(WalOptions {
        dir: settings.wal_dir(),
        max_bytes: settings.wal_max_bytes,
    });
    let disk_cache_bytes = settings.disk_cache_bytes();
    options.disk_cache = (disk_cache_bytes > 0).then(|| (settings.cache_dir(), disk_cache_bytes));
    options.log = settings.log_settings();
    options.cluster = settings.cluster_settings();
    options.groups = settings.group_settings();
    options.broker = settings.broker_settings();
    options.heartbeat_interval = settings.heartbeat_interval();
    options.producer_expiry_interval = settings.producer_id_expiration_check_interval();
    options.retention = settings.retention_settings();
    options.compaction = settings.compaction_settings();
    options.log_compaction = settings.log_compaction_settings();
    options.roles = settings.roles();
    options.stats_file = settings
        .stats_file
        .clone()
        .map(|path| (path, settings.stats_interval()));
    options.fault_control_file = settings.fault_control_file.clone();
    options
}

/// Runs an agent with `settings` until SIGTERM or SIGINT (a graceful
/// shutdown), or until a critical task fails.
pub async fn run(settings: AgentSettings) -> anyhow::Result<()> {
    let agent = open(&settings).await?.start().await?;
    agent.run_until(wait_for_signal()).await
}

/// Resolves at SIGTERM or SIGINT.
pub async fn wait_for_signal() {
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
