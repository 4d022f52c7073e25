//! Forwarding a produce to the gateway of the agent that leads its
//! partition, for what a Kafka `Produce` cannot carry: an `expected_offset`
//! precondition, which the leader checks where it assigns offsets.
//!
//! The request is the gateway's own record-batch produce, marked with
//! [`FORWARDED_HEADER`] so the agent it reaches does not forward it again.

use std::time::Duration;

use bytes::Bytes;
use fjord_gateway::{Append, FORWARDED_HEADER, KafkaError, ProduceError};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kafka_protocol::error::ResponseError;

/// The largest answer read from a leader's gateway (a produce answer is small).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A pooled HTTP/1.1 client of other agents' gateways.
#[derive(Debug, Clone)]
pub(crate) struct GatewayForwarder {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for GatewayForwarder {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

/// A leader's gateway that cannot be reached or answered nonsense:
/// retriable, as Kafka's network errors are.
fn unreachable(address: &str, error: impl std::fmt::Display) -> ProduceError {
    ProduceError::Kafka(KafkaError::new(
        ResponseError::NetworkException,
        format!("cannot reach the partition leader's gateway at {address}: {error}"),
    ))
}

impl GatewayForwarder {
    /// Produces `batch` through the gateway at `address` (the leader's).
    pub(crate) async fn produce(
        &self,
        address: &str,
        topic: &str,
        partition: i32,
        batch: Bytes,
        append: Append,
    ) -> Result<i64, ProduceError> {
        let acks = match append.acks {
            fjord_gateway::Acks::All => "all",
            fjord_gateway::Acks::Leader => "1",
            fjord_gateway::Acks::None => "0",
        };
        let mut uri = format!(
            "http://{address}/v1/topics/{topic}/partitions/{partition}/records?acks={acks}&timeout_ms={}",
            append.timeout.as_millis()
        );
        if let Some(expected) = append.expected_offset {
            uri.push_str(&format!("&expected_offset={expected}"));
        }
        let request = hyper::Request::post(uri)
            .header(
                hyper::header::CONTENT_TYPE,
                "application/vnd.kafka.record-batch",
            )
            .header(FORWARDED_HEADER, "1")
            .body(Full::new(batch))
            .map_err(|e| unreachable(address, e))?;
        let answer = tokio::time::timeout(
            append.timeout + Duration::from_secs(5),
            self.client.request(request),
        )
        .await
        .map_err(|_| unreachable(address, "no answer in time"))?
        .map_err(|e| unreachable(address, e))?;
        let status = answer.status();
        let body = http_body_util::Limited::new(answer.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| unreachable(address, e))?
            .to_bytes();
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| unreachable(address, e))?;
        if status.is_success() {
            return json["base_offset"]
                .as_i64()
                .ok_or_else(|| unreachable(address, "an answer without base_offset"));
        }
        Err(error_of(&json["error"], append.expected_offset)
            .unwrap_or_else(|| unreachable(address, format!("{status} without an error object"))))
    }
}

/// The error a gateway's error object stands for.
fn error_of(error: &serde_json::Value, expected: Option<i64>) -> Option<ProduceError> {
    let message = error["message"].as_str().unwrap_or_default();
    if error["code"].as_str() == Some("OFFSET_MISMATCH") {
        return Some(ProduceError::OffsetMismatch {
            expected: expected?,
            actual: error["next_offset"].as_i64()?,
        });
    }
    let code = error["kafka_error_code"]
        .as_i64()
        .and_then(|c| i16::try_from(c).ok())
        .and_then(ResponseError::try_from_code)
        .unwrap_or(ResponseError::UnknownServerError);
    Some(ProduceError::Kafka(KafkaError::new(code, message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_errors_map_back_to_what_the_leader_said() {
        let mismatch =
            serde_json::json!({"code": "OFFSET_MISMATCH", "next_offset": 12, "message": "m"});
        assert_eq!(
            error_of(&mismatch, Some(10)),
            Some(ProduceError::OffsetMismatch {
                expected: 10,
                actual: 12
            })
        );
        let kafka = serde_json::json!({"code": "NOT_LEADER_OR_FOLLOWER", "kafka_error_code": 6, "message": "moved"});
        assert_eq!(
            error_of(&kafka, Some(1)),
            Some(ProduceError::Kafka(KafkaError::new(
                ResponseError::NotLeaderOrFollower,
                "moved"
            )))
        );
        let own = serde_json::json!({"code": "BAD_REQUEST", "message": "no"});
        assert!(matches!(
            error_of(&own, None),
            Some(ProduceError::Kafka(KafkaError {
                error: ResponseError::UnknownServerError,
                ..
            }))
        ));
    }
}
