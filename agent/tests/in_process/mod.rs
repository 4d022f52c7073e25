//! In-process brokers for tests: a [`Broker`] assembled as `main.rs` assembles
//! one, over an in-memory metadata store and an in-memory bucket, served by
//! [`kafka::serve`] on a loopback listener or by [`kafka::serve_connection`] on
//! an in-memory duplex stream, and an async raw-wire client for either.
//!
//! The flusher is the test's to run: until [`TestBroker::start_flusher`] (or
//! a [`TestBroker::flush`]), every `acks=all` produce stays pending, which is
//! how a test holds a request in flight for as long as it likes. There is no
//! WAL, so `acks=1` waits for the commit as well.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

#[path = "../support/wire.rs"]
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_agent::cluster::{ClusterView, LiveAgent};
use fjord_agent::groups::{GroupCoordinator, GroupSettings};
use fjord_agent::kafka;
use fjord_agent::log::{LogSettings, PartitionLogs};
use fjord_agent::{Broker, BrokerSettings};
use fjord_common::{RandomIds, SystemClock};
use fjord_metadata::{NewTopic, TopicPartition};
use fjord_storage::ObjectKeys;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use object_store::memory::InMemory;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that must happen before it fails. In
/// paused-time tests this is virtual time.
pub const MUST_HAPPEN: Duration = Duration::from_secs(60);

/// Awaits `future`, failing the test if it takes longer than `bound`.
pub async fn within<F: std::future::Future>(bound: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(bound, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: did not happen within {bound:?}"),
    }
}

/// One broker in this process.
pub struct TestBroker {
    pub broker: Arc<Broker>,
    pub logs: Arc<PartitionLogs>,
    flusher: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
}

impl TestBroker {
    /// A broker with `settings`, no topics and no flusher running.
    pub async fn new(settings: BrokerSettings) -> Self {
        Self::with_log_settings(
            settings,
            LogSettings {
                flush_interval: Duration::from_millis(5),
                ..LogSettings::default()
            },
        )
        .await
    }

    /// As [`TestBroker::new`], its log flushing as `log_settings` say.
    pub async fn with_log_settings(settings: BrokerSettings, log_settings: LogSettings) -> Self {
        let store = fjord_metadata::open("memory://").await.unwrap();
        let node_id = 1;
        let cluster = Arc::new(ClusterView::new(LiveAgent {
            node_id,
            host: "127.0.0.1".into(),
            port: 9092,
        }));
        let logs = Arc::new(PartitionLogs::new(
            store.clone(),
            Arc::new(InMemory::new()),
            ObjectKeys::new("test").unwrap(),
            Arc::new(RandomIds::new()),
            Arc::new(SystemClock),
            node_id,
            log_settings,
            None,
        ));
        let groups = Arc::new(GroupCoordinator::new(
            store.clone(),
            node_id,
            Arc::new(RandomIds::new()),
            GroupSettings::default(),
        ));
        let cluster_id = store.cluster_id().await.unwrap();
        let transactions = Arc::new(fjord_agent::transactions::TransactionCoordinator::new(
            store.clone(),
            groups.clone(),
            logs.clone(),
            cluster.clone(),
            Arc::new(SystemClock),
        ));
        let broker = Arc::new(Broker {
            authorizer: Arc::new(fjord_agent::security::authorizer::Authorizer::new(
                settings.authorizer.clone(),
                store.clone(),
            )),
            transactions,
            store,
            node_id,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            cluster_id,
            settings,
            logs: logs.clone(),
            cluster,
            groups,
        });
        TestBroker {
            broker,
            logs,
            flusher: None,
        }
    }

    /// Creates `name` with `partitions` partitions.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> fjord_metadata::TopicMeta {
        self.broker
            .store
            .create_topic(NewTopic::new(name, partitions))
            .await
            .unwrap()
    }

    /// Runs the flusher from now on: produces are committed and answered.
    pub fn start_flusher(&mut self) {
        if self.flusher.is_none() {
            let stop = CancellationToken::new();
            let task = tokio::spawn(self.logs.clone().run_flusher(stop.clone()));
            self.flusher = Some((stop, task));
        }
    }

    /// Commits everything pending now (one flush).
    pub async fn flush(&self) {
        self.logs.flush_once().await;
    }

    /// The log start offset and high watermark of `topic`/`partition`.
    pub async fn offsets(&self, topic: &str, partition: i32) -> (i64, i64) {
        let meta = self.broker.store.describe_topic(topic).await.unwrap();
        self.logs
            .offsets(TopicPartition::new(meta.id, partition))
            .await
            .unwrap()
    }

    /// A connection served by [`kafka::serve_connection`] over an in-memory
    /// stream with `buffer` bytes of room each way.
    pub fn connect_in_memory(&self, buffer: usize) -> Client<tokio::io::DuplexStream> {
        let (client, server) = tokio::io::duplex(buffer);
        let broker = self.broker.clone();
        tokio::spawn(async move {
            let _ = kafka::serve_connection(server, broker).await;
        });
        Client { stream: client }
    }

    /// As [`TestBroker::connect_in_memory`], for a client already known to be
    /// `principal` ([`kafka::serve_connection_as`]).
    pub fn connect_in_memory_as(
        &self,
        buffer: usize,
        principal: fjord_agent::security::Principal,
    ) -> Client<tokio::io::DuplexStream> {
        let (client, server) = tokio::io::duplex(buffer);
        let broker = self.broker.clone();
        tokio::spawn(async move {
            let _ = kafka::serve_connection_as(server, broker, principal).await;
        });
        Client { stream: client }
    }

    /// Serves [`kafka::serve`] on a loopback port.
    pub async fn serve_tcp(&self) -> TcpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop_accepting = CancellationToken::new();
        let close = CancellationToken::new();
        let task = tokio::spawn(kafka::serve(
            listener,
            self.broker.clone(),
            stop_accepting.clone(),
            close.clone(),
        ));
        TcpServer {
            address,
            stop_accepting,
            close,
            task,
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.flusher {
            stop.cancel();
        }
    }
}

/// A running [`kafka::serve`].
pub struct TcpServer {
    pub address: SocketAddr,
    pub stop_accepting: CancellationToken,
    pub close: CancellationToken,
    pub task: JoinHandle<()>,
}

impl TcpServer {
    pub async fn connect(&self) -> Client<tokio::net::TcpStream> {
        let stream = tokio::net::TcpStream::connect(self.address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream }
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop_accepting.cancel();
        self.close.cancel();
    }
}

/// A raw Kafka wire client: frames are built with [`wire`] and written as is.
pub struct Client<S> {
    pub stream: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Sends one framed request.
    pub async fn send_request(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        request: &impl Encodable,
    ) {
        let frame = wire::request_frame(api, version, correlation_id, request);
        self.send(&frame).await;
    }

    /// One response frame, or `None` once the broker closed the connection.
    /// Waits as long as it takes: bound it with [`within`].
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                return None;
            }
            Err(e) => panic!("reading a response failed: {e}"),
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).await.unwrap();
        Some(Bytes::from(body))
    }

    /// Reads the next response, which must answer `correlation_id`, within
    /// [`MUST_HAPPEN`].
    pub async fn response<R: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> R {
        self.response_within(MUST_HAPPEN, api, version, correlation_id)
            .await
    }

    /// As [`Client::response`], within `bound`.
    pub async fn response_within<R: Decodable>(
        &mut self,
        bound: Duration,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> R {
        let frame = within(bound, "an answer", self.read_frame())
            .await
            .unwrap_or_else(|| panic!("the connection closed instead of answering {api:?}"));
        let (answered, response) = wire::decode_response(api, version, frame);
        assert_eq!(answered, correlation_id, "{api:?} correlation id");
        response
    }

    /// Sends one request and reads its answer.
    pub async fn call<R: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        request: &impl Encodable,
    ) -> R {
        self.send_request(api, version, correlation_id, request)
            .await;
        self.response(api, version, correlation_id).await
    }

    /// Waits (up to `bound`) for the broker to close the connection; fails if
    /// it answers something instead.
    pub async fn expect_closed(&mut self, bound: Duration, what: &str) {
        if let Some(frame) = within(bound, what, self.read_frame()).await {
            panic!(
                "{what}: an answer (correlation id {}) instead of a close",
                wire::correlation_id(&frame)
            );
        }
    }
}
