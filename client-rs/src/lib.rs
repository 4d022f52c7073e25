//! The Rust client of Fjord's HTTP gateway (`docs/gateway.md`), for producers
//! and consumers that do not speak Kafka.
//!
//! | module | owns |
//! |---|---|
//! | [`client`] | [`Client`]: the agents' URLs, the connection pool, retries on the next agent |
//! | [`error`] | [`Error`]: the gateway's error answer and status, [`Error::is_retriable`] |
//! | [`admin`] | [`Admin`]: create, describe, list, delete topics |
//! | [`records`] | [`Record`], [`RecordMetadata`], [`ConsumedRecord`] and their JSON |
//! | [`produce`] | [`Client::produce`]: one request to one partition, idempotent if asked |
//! | [`producer`] | [`Producer`]: batching per partition, murmur2 keys, back-pressure, idempotence, flush |
//! | [`reader`] | [`Reader`]: reads from a [`Position`], and [`Tail`]s that resume on another agent |
//! | [`group`] | [`GroupConsumer`]: a consumer-group member (server-side assignment), its assignment events and commit policies |
//! | `sse` | the Server-Sent Events parser tails use |
//! | `grpc` | (feature `grpc`) `GrpcClient`: the same over the agents' gRPC services |
//!
//! Every agent serves the whole API and keeps nothing between requests, so the
//! client sends requests to the agents in turn and moves a request that
//! fails with a transport error or a `503` to the next one.
//!
//! Plain `http://` only: TLS is not supported yet. Needs a Tokio runtime.
//!
//! ```no_run
//! use fjord_client::{Client, Position, Record};
//! use futures::StreamExt as _;
//!
//! # async fn example() -> fjord_client::Result<()> {
//! let client = Client::new(vec!["http://127.0.0.1:8080".into()])?;
//! client.admin().create_topic("demo", Some(3), [("retention.ms", "3600000")]).await?;
//!
//! let producer = client.producer("demo");
//! let delivery = producer.send(Record::new("hello").with_key("user-1")).await?;
//! producer.flush().await?;
//! let stored = delivery.await?;
//!
//! let read = client.reader().read("demo", stored.partition, Position::Earliest, 100).await?;
//! assert_eq!(read.records[0].value.as_deref(), Some(&b"hello"[..]));
//!
//! let mut tail = client.reader().tail("demo", stored.partition, Position::Latest).await?;
//! while let Some(record) = tail.next().await {
//!     println!("{:?}", record?);
//! }
//! # Ok(()) }
//! ```

pub mod admin;
pub mod client;
pub mod error;
pub mod group;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod produce;
pub mod producer;
pub mod reader;
pub mod records;
mod sse;

pub use admin::{Admin, PartitionInfo, TopicDescription, TopicSummary};
pub use client::{Client, ClientOptions};
pub use error::{Error, ErrorBody, Result};
pub use fjord_common::partitioner::{murmur2, partition_for_key};
pub use group::{
    AssignmentEvent, CommitPolicy, GroupConfig, GroupConsumer, GroupRecord, OffsetReset, Polled,
};
pub use produce::{ProducerId, Sequence};
pub use producer::{Delivery, Producer, ProducerConfig};
pub use reader::{Position, ReadResult, Reader, Tail};
pub use records::{ConsumedRecord, Header, Record, RecordMetadata};
