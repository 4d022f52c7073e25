//! What the HTTP routes and the gRPC services share: the gateway's operations
//! over [`Core`](crate::Core), with no transport in them. Each adapter turns
//! its requests into these calls and a [`Failure`] into its own error shape
//! (an HTTP status and JSON body, or a gRPC status with details).
//!
//! | module | owns |
//! |---|---|
//! | [`produce`] | placing records on partitions (murmur2), one batch per partition |
//! | [`topic_read`] | reads of every partition of a topic, and its opaque cursor |
//! | [`partition_read`] | where a partition read starts, and records decoded from it |
//! | [`group`] | group consumption for HTTP and gRPC members: join, poll (the heartbeat), commit, leave, and the member's cursor |

use std::sync::Arc;

use crate::core::{Core, KafkaError, PartitionInfo, TopicInfo};

pub(crate) mod group;
pub(crate) mod partition_read;
pub(crate) mod produce;
pub(crate) mod topic_read;

/// An opaque token (a cursor): base64url (no padding) of `prefix` and `body`.
pub(crate) fn opaque(prefix: &str, body: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{prefix}{body}"))
}

/// The body of a token [`opaque`] made with `prefix`; `None` for anything
/// else.
pub(crate) fn opaque_body(prefix: &str, token: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(prefix).map(str::to_owned)
}

/// Why an operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The request is malformed: it would fail the same way anywhere.
    BadRequest(String),
    /// The broker's answer, with its Kafka error code.
    Kafka(KafkaError),
    /// An `expected_offset` precondition did not hold: nothing was written.
    OffsetMismatch {
        /// What the request expected.
        expected: i64,
        /// The partition's next offset.
        actual: i64,
    },
}

impl From<KafkaError> for Failure {
    fn from(error: KafkaError) -> Self {
        Self::Kafka(error)
    }
}

/// Every partition of `topic`, with its offsets and leader.
pub(crate) async fn partitions_of(
    core: &Arc<dyn Core>,
    topic: &TopicInfo,
) -> Result<Vec<PartitionInfo>, KafkaError> {
    futures::future::try_join_all(
        (0..topic.partition_count).map(|p| core.partition(&topic.name, p)),
    )
    .await
}
