//! One connection over an in-memory stream: frames that never complete, frames
//! waiting for the request budget, and every share of the budget coming back.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use fjord_common::{RandomIds, SystemClock};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::BrokerSettings;
use crate::cluster::{ClusterView, LiveAgent};
use crate::groups::{GroupCoordinator, GroupSettings};
use crate::kafka::codec::LENGTH_PREFIX_BYTES;
use crate::log::{LogSettings, PartitionLogs};

async fn broker(settings: BrokerSettings) -> Arc<Broker> {
    let store = fjord_metadata::open("memory://")
        .await
        .expect("a memory store");
    let logs = PartitionLogs::new(
        store.clone(),
        Arc::new(object_store::memory::InMemory::new()),
        fjord_storage::ObjectKeys::new("test").expect("a key prefix"),
        Arc::new(RandomIds::new()),
        Arc::new(SystemClock),
        1,
        LogSettings::default(),
        None,
    );
    let logs = Arc::new(logs);
    let groups = Arc::new(GroupCoordinator::new(
        store.clone(),
        1,
        Arc::new(RandomIds::new()),
        GroupSettings::default(),
    ));
    let cluster = Arc::new(ClusterView::new(LiveAgent {
        node_id: 1,
        host: "127.0.0.1".into(),
        port: 9092,
    }));
    let transactions = Arc::new(crate::transactions::TransactionCoordinator::new(
        store.clone(),
        groups.clone(),
        logs.clone(),
        cluster.clone(),
        Arc::new(SystemClock),
    ));
    Arc::new(Broker {
        authorizer: Arc::new(crate::security::authorizer::Authorizer::new(
            settings.authorizer.clone(),
            store.clone(),
        )),
        groups,
        transactions,
        store,
        node_id: 1,
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9092,
        cluster_id: "test".into(),
        settings,
        logs,
        cluster,
    })
}

/// A connection over an in-memory stream, taking its frames' bytes from
/// `budget`.
fn connect(broker: &Arc<Broker>, budget: &RequestBudget) -> DuplexStream {
    let (client, server) = tokio::io::duplex(1 << 20);
    let never = CancellationToken::new();
    tokio::spawn(run(
        server,
        broker.clone(),
        budget.clone(),
        String::new(),
        crate::security::Principal::anonymous(),
        never.clone(),
        never,
    ));
    client
}

/// A frame of `request` (`api` at `version`).
fn request_frame(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &impl Encodable,
) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    let mut body = BytesMut::new();
    body.put_u32(0);
    header
        .encode(&mut body, api.request_header_version(version))
        .expect("a header");
    request.encode(&mut body, version).expect("a request");
    let length = u32::try_from(body.len() - LENGTH_PREFIX_BYTES).expect("a small frame");
    body[..LENGTH_PREFIX_BYTES].copy_from_slice(&length.to_be_bytes());
    body.to_vec()
}

/// An `ApiVersions` v3 frame of about `bytes` bytes (a long client name).
fn api_versions_frame(correlation_id: i32, bytes: usize) -> Vec<u8> {
    let mut request = ApiVersionsRequest::default();
    request.client_software_name = StrBytes::from_string("x".repeat(bytes));
    request.client_software_version = StrBytes::from_static_str("1");
    request_frame(ApiKey::ApiVersions, 3, correlation_id, &request)
}

/// The correlation id of the next response, or `None` once closed.
async fn next_answer(client: &mut DuplexStream) -> Option<i32> {
    let length = client.read_u32().await.ok()?;
    let mut body = vec![0; usize::try_from(length).ok()?];
    client.read_exact(&mut body).await.ok()?;
    Some(i32::from_be_bytes(body[..4].try_into().ok()?))
}

/// A frame that never completes is closed as idle, and gives its share
/// of the budget back.
#[tokio::test(start_paused = true)]
async fn a_stuck_frame_is_closed_as_idle_and_gives_its_share_back() {
    let broker = broker(BrokerSettings::default()).await;
    let idle = broker.settings.connections_max_idle;
    let budget = RequestBudget::new(1 << 20);
    let mut stuck = connect(&broker, &budget);
    let frame = api_versions_frame(1, 600 << 10);
    stuck
        .write_all(&frame[..frame.len() / 2])
        .await
        .expect("written");
    let closed = tokio::time::timeout(idle * 2, next_answer(&mut stuck)).await;
    assert_eq!(closed, Ok(None), "the stuck connection closed");
    assert_eq!(budget.bytes.available_permits(), 1 << 20, "its share back");
}

/// A frame waiting for its share of the budget, however long, is the
/// broker's wait, not an idle client: it is read and answered once the
/// request holding the budget (a long-polling fetch) is answered.
#[tokio::test(start_paused = true)]
async fn waiting_for_the_budget_is_not_idle() {
    let broker = broker(BrokerSettings::default()).await;
    broker
        .store
        .create_topic(fjord_metadata::NewTopic::new("quiet", 1))
        .await
        .expect("a topic");
    let idle = broker.settings.connections_max_idle;
    let budget = RequestBudget::new(1 << 20);

    // A fetch of 600 KiB (a long rack id) long-polls an empty partition
    // for three idle periods, holding its share.
    let mut holder = connect(&broker, &budget);
    let mut fetch = FetchRequest::default();
    fetch.max_wait_ms = i32::try_from((idle * 3).as_millis()).expect("fits");
    fetch.min_bytes = 1;
    fetch.rack_id = StrBytes::from_string("r".repeat(600 << 10));
    let mut partition = FetchPartition::default();
    partition.partition = 0;
    let mut topic = FetchTopic::default();
    topic.topic = TopicName(StrBytes::from_static_str("quiet"));
    topic.partitions = vec![partition];
    fetch.topics = vec![topic];
    holder
        .write_all(&request_frame(ApiKey::Fetch, 12, 1, &fetch))
        .await
        .expect("written");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Another 600 KiB frame waits for the budget all that time.
    let mut waiting = connect(&broker, &budget);
    waiting
        .write_all(&api_versions_frame(2, 600 << 10))
        .await
        .expect("written");

    let answered = tokio::time::timeout(idle * 4, next_answer(&mut holder)).await;
    assert_eq!(answered, Ok(Some(1)), "the fetch answered");
    let answered = tokio::time::timeout(idle * 4, next_answer(&mut waiting)).await;
    assert_eq!(
        answered,
        Ok(Some(2)),
        "the waiting frame answered, not closed"
    );
}

/// Shares of frames answered, and of frames of closed connections, all
/// come back.
#[tokio::test]
async fn every_share_comes_back() {
    let broker = broker(BrokerSettings::default()).await;
    let budget = RequestBudget::new(100_000);
    let mut client = connect(&broker, &budget);
    for correlation_id in 0..5 {
        client
            .write_all(&api_versions_frame(correlation_id, 30_000))
            .await
            .expect("written");
    }
    for correlation_id in 0..5 {
        assert_eq!(next_answer(&mut client).await, Some(correlation_id));
    }
    // A request whose answer is never read, then the client goes away.
    client
        .write_all(&api_versions_frame(9, 30_000))
        .await
        .expect("written");
    drop(client);
    tokio::time::timeout(Duration::from_secs(60), async {
        while budget.bytes.available_permits() < 100_000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every share back within a minute");
}
