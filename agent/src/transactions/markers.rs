//! Writing a decided transaction's markers into its partitions: through this
//! agent's log for the partitions it leads, and as `WriteTxnMarkers` to the
//! Kafka listener of the agent that leads each other one, retried while
//! leadership moves, until every partition has its marker committed or the
//! wait runs out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use fjord_metadata::{MetadataError, TopicPartition};
use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::ClusterView;
use crate::http::forward::Forwarder;
use crate::idempotence::SequenceError;
use crate::log::{LogError, PartitionLogs};

/// The `WriteTxnMarkers` version sent (flexible).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// The pause between two rounds of markers that could not all be written.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Whether every marker is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// Every partition has its marker committed (or no longer exists).
    Done,
    /// Some are not written yet; why the last attempt failed.
    Pending(String),
}

/// One marker's target.
type Target = (String, i32);

pub(super) struct MarkerWriter {
    logs: Arc<PartitionLogs>,
    cluster: Arc<ClusterView>,
    forwarder: Forwarder,
}

impl MarkerWriter {
    pub(super) fn new(logs: Arc<PartitionLogs>, cluster: Arc<ClusterView>) -> Self {
        Self {
            logs,
            cluster,
            forwarder: Forwarder::default(),
        }
    }

    /// Writes a marker of `producer_id` at `producer_epoch` into every
    /// partition of `partitions`, retrying for up to `wait`.
    pub(super) async fn write(
        &self,
        partitions: &BTreeSet<Target>,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        wait: Duration,
    ) -> MarkerOutcome {
        let deadline = tokio::time::Instant::now() + wait;
        let mut remaining: BTreeSet<Target> = partitions.clone();
        let mut last_error = String::new();
        loop {
            let marker = Marker {
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
            };
            let failed = self.round(&remaining, marker).await;
            remaining = failed.keys().cloned().collect();
            if remaining.is_empty() {
                return MarkerOutcome::Done;
            }
            if let Some(error) = failed.values().next() {
                last_error = error.clone();
            }
            if tokio::time::Instant::now() + RETRY_BACKOFF >= deadline {
                return MarkerOutcome::Pending(format!(
                    "{} partition(s) left: {last_error}",
                    remaining.len()
                ));
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// One attempt at every target; returns the ones that failed, with why.
    async fn round(&self, targets: &BTreeSet<Target>, marker: Marker) -> BTreeMap<Target, String> {
        let mut failed = BTreeMap::new();
        let mut local = Vec::new();
        let mut remote: BTreeMap<i32, Vec<Target>> = BTreeMap::new();
        let me = self.cluster.me().node_id;
        for target in targets {
            let meta = match self.logs.topics().describe(&target.0).await {
                Ok(meta) => meta,
                // A deleted topic needs no marker.
                Err(MetadataError::UnknownTopic { .. }) => continue,
                Err(error) => {
                    failed.insert(target.clone(), error.to_string());
                    continue;
                }
            };
            if target.1 < 0 || target.1 >= meta.partition_count {
                continue;
            }
            let tp = TopicPartition::new(meta.id, target.1);
            let owner = self.cluster.owner(tp, meta.partition_count);
            if owner == me {
                local.push((target.clone(), tp));
            } else {
                remote.entry(owner).or_default().push(target.clone());
            }
        }
        let local_writes = local.into_iter().map(|(target, tp)| async move {
            let outcome = match self
                .logs
                .append_marker(
                    tp,
                    marker.producer_id,
                    marker.producer_epoch,
                    marker.commit,
                    marker.coordinator_epoch,
                )
                .await
            {
                Ok(durable) => durable.await.map(|_| ()),
                Err(error) => Err(error),
            };
            (target, outcome.map_err(|e| marker_failure(&e)))
        });
        let remote_writes = remote
            .into_iter()
            .map(|(owner, targets)| self.forward(owner, targets, marker));
        let (local, remote) = tokio::join!(join_all(local_writes), join_all(remote_writes));
        for (target, outcome) in local {
            if let Err(Some(error)) = outcome {
                failed.insert(target, error);
            }
        }
        for results in remote {
            for (target, error) in results {
                failed.insert(target, error);
            }
        }
        failed
    }

    /// Sends the markers of `targets` to agent `owner`; returns the ones that
    /// failed.
    async fn forward(
        &self,
        owner: i32,
        targets: Vec<Target>,
        marker: Marker,
    ) -> Vec<(Target, String)> {
        let Some(address) = self.cluster.kafka_address(owner) else {
            let why = format!("the leader (node {owner}) is not live");
            return targets.into_iter().map(|t| (t, why.clone())).collect();
        };
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in &targets {
            by_topic.entry(topic.clone()).or_default().push(*partition);
        }
        let mut entry = WritableTxnMarker::default();
        entry.producer_id = ProducerId(marker.producer_id);
        entry.producer_epoch = marker.producer_epoch;
        entry.transaction_result = marker.commit;
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.topics = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                let mut t = WritableTxnMarkerTopic::default();
                t.name = TopicName(StrBytes::from_string(topic));
                t.partition_indexes = partitions;
                t
            })
            .collect();
        let mut request = WriteTxnMarkersRequest::default();
        request.markers = vec![entry];
        let response: Result<WriteTxnMarkersResponse, _> = self
            .forwarder
            .request(
                &address,
                ApiKey::WriteTxnMarkers,
                WRITE_TXN_MARKERS_VERSION,
                &request,
                Duration::from_secs(10),
            )
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                let why = error.to_string();
                return targets.into_iter().map(|t| (t, why.clone())).collect();
            }
        };
        let mut answered: BTreeMap<Target, i16> = BTreeMap::new();
        for result in response.markers {
            for topic in result.topics {
                for partition in topic.partitions {
                    answered.insert(
                        (topic.name.0.to_string(), partition.partition_index),
                        partition.error_code,
                    );
                }
            }
        }
        targets
            .into_iter()
            .filter_map(|target| match answered.get(&target) {
                Some(0) => None,
                // The partition saw a newer producer epoch: this marker is moot.
                Some(code) if *code == ResponseError::InvalidProducerEpoch.code() => None,
                Some(code) if *code == ResponseError::UnknownTopicOrPartition.code() => None,
                Some(code) => Some((target, format!("error code {code}"))),
                None => Some((target, "no answer for the partition".into())),
            })
            .collect()
    }
}

/// A marker to write.
#[derive(Debug, Clone, Copy)]
struct Marker {
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
}

/// Why a local marker failed, or `None` when the failure means the marker is
/// not needed (the partition saw a newer epoch of the producer, or is gone).
fn marker_failure(error: &LogError) -> Option<String> {
    match error {
        LogError::Sequence(SequenceError::StaleEpoch { .. }) => None,
        LogError::UnknownPartition(_) => None,
        other => Some(other.to_string()),
    }
}
