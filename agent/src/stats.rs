//! The object-store request counters as a JSON file, rewritten every interval
//! (benchmarks read it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use fjord_storage::object_store::{MetricsSnapshot, ObjectStoreMetrics};
use tokio_util::sync::CancellationToken;

/// Rewrites `path` every `interval` until `stop`.
pub async fn run(
    path: PathBuf,
    node_id: i32,
    metrics: std::sync::Arc<ObjectStoreMetrics>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => write(&path, node_id, &metrics).await,
        }
    }
}

/// Replaces `path` with the object-store counters as one JSON object. Failures
/// are logged, never fatal: the statistics are for benchmarks.
pub async fn write(path: &Path, node_id: i32, metrics: &ObjectStoreMetrics) {
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
