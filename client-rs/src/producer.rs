//! [`Producer`]: batching, partitioning, back-pressure and idempotence over
//! [`Client::produce`].
//!
//! - **Partitions.** A record with a partition goes there; a keyed record to
//!   `murmur2(key)`'s partition (Kafka's default partitioner, the same
//!   function as the gateway's and the Java client's); keyless records to
//!   one partition until its batch goes, then to the next (round robin).
//! - **Batches.** Each partition has one background task. Records accumulate
//!   until [`ProducerConfig::batch_bytes`] or [`ProducerConfig::linger`] after
//!   the first one, then go as one `POST /v1/topics/{t}/partitions/{p}/records`
//!   (bytes base64-encoded).
//! - **Back-pressure.** [`Producer::send`] waits while
//!   [`ProducerConfig::max_in_flight_bytes`] of records are sent and not yet
//!   answered.
//! - **Idempotence** (on by default). The producer asks for a producer id once
//!   (`POST /v1/producers`) and numbers each partition's records. A partition
//!   has at most one request in flight, so its sequence numbers stay in order,
//!   and a failed request is retried with the same records and the same
//!   sequence: the leader stores them once, whichever agent the retry goes
//!   through. A batch that still fails after [`ProducerConfig::delivery_timeout`]
//!   may or may not have been stored; the partition then refuses further
//!   records (with [`Error::Closed`]) rather than risk a gap — make a new
//!   producer.
//!
//! The topic's partition count is looked up once, at the first send.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fjord_common::partition_for_key;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::produce::{ProducerId, Sequence};
use crate::records::{Record, RecordMetadata, WireProduce};

/// How a [`Producer`] batches, waits and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// A partition's batch goes once it holds this many bytes of records (a
    /// larger record goes alone).
    pub batch_bytes: usize,
    /// How long a partition's first unsent record waits for others.
    pub linger: Duration,
    /// Bytes of records sent and not yet answered before `send` waits.
    pub max_in_flight_bytes: usize,
    /// Whether records are produced idempotently (stored once however often
    /// a request is retried). Without it, a request retried after a lost
    /// answer may store its records twice.
    pub idempotent: bool,
    /// How long a batch is retried (transport failures, `503`s) before its
    /// records fail.
    pub delivery_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            batch_bytes: 1024 * 1024,
            linger: Duration::from_millis(5),
            max_in_flight_bytes: 64 * 1024 * 1024,
            idempotent: true,
            delivery_timeout: Duration::from_secs(120),
        }
    }
}

/// A record waiting for its batch.
#[derive(Debug)]
struct Pending {
    record: Record,
    size: usize,
    answer: oneshot::Sender<Result<RecordMetadata>>,
    /// Its share of the in-flight budget, given back when it is answered.
    _permit: OwnedSemaphorePermit,
}

/// What a partition's task receives.
#[derive(Debug)]
enum Message {
    Record(Pending),
    /// Answered once everything queued before it is answered.
    Flush(oneshot::Sender<()>),
}

/// What the producer and its partition tasks share.
#[derive(Debug)]
struct Shared {
    client: Client,
    topic: String,
    config: ProducerConfig,
    budget: Arc<Semaphore>,
    partition_count: OnceCell<i32>,
    producer_id: OnceCell<ProducerId>,
    /// The partition keyless records go to now.
    sticky: AtomicI32,
}

/// An idempotent, batching producer to one topic ([`Client::producer`]).
/// Cheap to clone; clones share batches and sequence numbers. Records still
/// queued when the last clone is dropped are sent all the same, but only
/// [`Producer::flush`] waits for them.
#[derive(Debug, Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    queues: Arc<Mutex<HashMap<i32, mpsc::UnboundedSender<Message>>>>,
}

/// A sent record's outcome: resolves to where it was stored once its batch
/// is answered.
#[derive(Debug)]
#[must_use = "a delivery resolves to the record's outcome"]
pub struct Delivery {
    answer: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for Delivery {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.answer).poll(cx).map(|answer| {
            answer.unwrap_or_else(|_| Err(Error::Closed("the producer's task ended".into())))
        })
    }
}

impl Producer {
    /// A producer to `topic` with `config`. Must be called within a Tokio
    /// runtime: each partition's batches are sent by a background task.
    pub fn new(client: Client, topic: impl Into<String>, config: ProducerConfig) -> Self {
        let budget = config
            .max_in_flight_bytes
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            shared: Arc::new(Shared {
                client,
                topic: topic.into(),
                config,
                budget: Arc::new(Semaphore::new(budget)),
                partition_count: OnceCell::new(),
                producer_id: OnceCell::new(),
                sticky: AtomicI32::new(0),
            }),
            queues: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The topic this producer writes.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// Queues `record` for its partition's next batch, waiting first while
    /// the in-flight budget is spent (back-pressure). The returned
    /// [`Delivery`] resolves to the record's partition, offset and timestamp
    /// once its batch is answered:
    ///
    /// ```no_run
    /// # async fn f(producer: fjord_client::Producer) -> fjord_client::Result<()> {
    /// let delivery = producer.send(fjord_client::Record::new("v")).await?;
    /// let stored = delivery.await?;
    /// println!("partition {} offset {}", stored.partition, stored.offset);
    /// # Ok(()) }
    /// ```
    ///
    /// Fails at once when the topic cannot be described or the record names a
    /// partition the topic does not have.
    pub async fn send(&self, record: Record) -> Result<Delivery> {
        let count = self.partition_count().await?;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => {
                if p < 0 || p >= count {
                    return Err(Error::InvalidArgument(format!(
                        "topic {} has no partition {p} (it has {count})",
                        self.shared.topic
                    )));
                }
                p
            }
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => self.shared.sticky.load(Ordering::Relaxed).rem_euclid(count),
        };
        let size = record.size();
        let permits = u32::try_from(size.min(self.shared.budget_size())).unwrap_or(u32::MAX);
        let permit = Arc::clone(&self.shared.budget)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Error::Closed("the producer is closed".into()))?;
        let (answer, delivery) = oneshot::channel();
        let message = Message::Record(Pending {
            record,
            size,
            answer,
            _permit: permit,
        });
        self.queue(partition, count)?
            .send(message)
            .map_err(|_| Error::Closed("the partition's task ended".into()))?;
        Ok(Delivery { answer: delivery })
    }

    /// Sends everything queued now, without waiting for the linger time, and
    /// waits until every record sent before this call is answered (stored or
    /// failed: each [`Delivery`] says which).
    pub async fn flush(&self) -> Result<()> {
        let queues: Vec<_> = self.lock_queues()?.values().cloned().collect();
        let mut waits = Vec::with_capacity(queues.len());
        for queue in queues {
            let (done, wait) = oneshot::channel();
            if queue.send(Message::Flush(done)).is_ok() {
                waits.push(wait);
            }
        }
        for wait in waits {
            wait.await
                .map_err(|_| Error::Closed("a partition's task ended".into()))?;
        }
        Ok(())
    }

    /// The topic's partition count, looked up once.
    async fn partition_count(&self) -> Result<i32> {
        let shared = &self.shared;
        shared
            .partition_count
            .get_or_try_init(|| async {
                let topic = shared.client.admin().describe_topic(&shared.topic).await?;
                let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
                if count == 0 {
                    return Err(Error::Decode(format!(
                        "topic {} has no partitions",
                        shared.topic
                    )));
                }
                Ok(count)
            })
            .await
            .copied()
    }

    fn lock_queues(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<i32, mpsc::UnboundedSender<Message>>>> {
        self.queues
            .lock()
            .map_err(|_| Error::Closed("the producer's state is poisoned".into()))
    }

    /// The queue of `partition`'s task, started on first use.
    fn queue(&self, partition: i32, count: i32) -> Result<mpsc::UnboundedSender<Message>> {
        let mut queues = self.lock_queues()?;
        if let Some(queue) = queues.get(&partition)
            && !queue.is_closed()
        {
            return Ok(queue.clone());
        }
        let (queue, messages) = mpsc::unbounded_channel();
        tokio::spawn(run_partition(
            Arc::clone(&self.shared),
            partition,
            count,
            messages,
        ));
        queues.insert(partition, queue.clone());
        Ok(queue)
    }
}

impl Shared {
    fn budget_size(&self) -> usize {
        self.config
            .max_in_flight_bytes
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize))
    }
}

/// One partition's task: collects batches and sends them one at a time, in
/// order, until the producer is dropped and the queue is empty.
async fn run_partition(
    shared: Arc<Shared>,
    partition: i32,
    count: i32,
    mut messages: mpsc::UnboundedReceiver<Message>,
) {
    let mut next_sequence: i32 = 0;
    // Why the partition refuses records, after a batch whose fate is unknown.
    let mut poisoned: Option<String> = None;
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => match messages.recv().await {
                None => return,
                Some(Message::Flush(done)) => {
                    let _ = done.send(());
                    continue;
                }
                Some(Message::Record(pending)) => pending,
            },
        };
        let deadline = Instant::now() + shared.config.linger;
        let mut bytes = first.size;
        let mut batch = vec![first];
        let mut flushes = Vec::new();
        // Once a flush is asked or the producer is gone: take what is queued, no waiting.
        let mut urgent = false;
        while bytes < shared.config.batch_bytes {
            let message = if urgent {
                match messages.try_recv() {
                    Ok(message) => message,
                    Err(_) => break,
                }
            } else {
                match tokio::time::timeout_at(deadline, messages.recv()).await {
                    Err(_) => break,
                    Ok(None) => {
                        urgent = true;
                        continue;
                    }
                    Ok(Some(message)) => message,
                }
            };
            match message {
                Message::Record(pending) => {
                    if bytes + pending.size > shared.config.batch_bytes {
                        carried = Some(pending);
                        break;
                    }
                    bytes += pending.size;
                    batch.push(pending);
                }
                Message::Flush(done) => {
                    flushes.push(done);
                    urgent = true;
                }
            }
        }
        // Keyless records move on to the next partition once this batch goes.
        let _ = shared.sticky.compare_exchange(
            partition,
            (partition + 1).rem_euclid(count.max(1)),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let outcome = match &poisoned {
            Some(why) => Err(Error::Closed(why.clone())),
            None => send_batch(&shared, partition, &batch, next_sequence).await,
        };
        match outcome {
            Ok(stored) => {
                let sent = i32::try_from(batch.len()).unwrap_or(i32::MAX);
                next_sequence = next_sequence.wrapping_add(sent) & i32::MAX;
                for (pending, metadata) in batch.into_iter().zip(stored) {
                    let _ = pending.answer.send(Ok(metadata));
                }
            }
            Err(error) => {
                if shared.config.idempotent && poisoned.is_none() && error.moves_on() {
                    poisoned = Some(format!(
                        "partition {partition}: a batch may or may not have been stored \
                         ({error}); records after it are refused to keep sequences whole"
                    ));
                }
                for pending in batch {
                    let _ = pending.answer.send(Err(error.clone()));
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Sends one batch, retrying transport failures and `503`s (the same body,
/// the same sequence) until the delivery timeout.
async fn send_batch(
    shared: &Shared,
    partition: i32,
    batch: &[Pending],
    first_sequence: i32,
) -> Result<Vec<RecordMetadata>> {
    let client = &shared.client;
    let sequence = if shared.config.idempotent {
        let producer = *shared
            .producer_id
            .get_or_try_init(|| client.new_producer_id())
            .await?;
        Some(Sequence {
            producer,
            first: first_sequence,
        })
    } else {
        None
    };
    let body = serde_json::to_vec(&WireProduce::of(batch.iter().map(|p| &p.record)))
        .map(Bytes::from)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let started = Instant::now();
    let mut retry = 0u32;
    loop {
        let result = client
            .produce_body(
                &shared.topic,
                partition,
                body.clone(),
                batch.len(),
                sequence,
            )
            .await;
        match result {
            Err(error)
                if error.moves_on() && started.elapsed() < shared.config.delivery_timeout =>
            {
                retry += 1;
                let retry_after = match &error {
                    Error::Api { retry_after, .. } => *retry_after,
                    _ => None,
                };
                tokio::time::sleep(client.backoff(retry, retry_after)).await;
            }
            other => return other,
        }
    }
}
