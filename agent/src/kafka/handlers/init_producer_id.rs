//! `InitProducerId`: a producer id for an idempotent or transactional producer.
//!
//! As in Apache Kafka, a request without a transactional id always gets a fresh
//! producer id with epoch 0, whatever id and epoch it carries (a producer bumping
//! its epoch after an error simply starts over under a new id). A request with
//! one goes to the transaction coordinator ([`crate::transactions`]): the
//! id's producer id under a bumped epoch, fencing older producers of the id.
//!
//! With an authorizer, as Kafka's: a transactional id needs `WRITE` on it
//! (else `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`); an idempotent producer
//! needs `IDEMPOTENT_WRITE` on the cluster or `WRITE` on some topic (else
//! `CLUSTER_AUTHORIZATION_FAILED`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::Broker;
use crate::kafka::errors::{authorization_error, metadata_error, txn_error};
use crate::security::authorizer::Session;
use crate::transactions::ProducerIdAndEpoch;
use fjord_metadata::{AclOperation, ResourceType};

pub(crate) async fn handle(
    broker: &Broker,
    request: InitProducerIdRequest,
    version: i16,
    access: &Session<'_>,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    let allowed = match &request.transactional_id {
        Some(id) => access.transactional_id(AclOperation::Write, id.0.as_str()),
        None if access.authorize_any(AclOperation::Write, ResourceType::Topic) => Ok(()),
        None => access.cluster(AclOperation::IdempotentWrite),
    };
    if let Err(denied) = allowed {
        response.error_code = authorization_error(&denied).code();
        return response;
    }
    if let Some(transactional_id) = &request.transactional_id {
        // v3+ (KIP-360): a producer recovering from an error names itself.
        let expected = (request.producer_id.0 >= 0).then_some(ProducerIdAndEpoch {
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
        });
        match broker
            .transactions
            .init_producer_id(
                transactional_id.0.as_str(),
                request.transaction_timeout_ms,
                expected,
            )
            .await
        {
            Ok(assigned) => {
                response.producer_id = ProducerId(assigned.producer_id);
                response.producer_epoch = assigned.producer_epoch;
            }
            // `PRODUCER_FENCED` came with v4 (KIP-588).
            Err(error) => response.error_code = txn_error(&error, version < 4).code(),
        }
        return response;
    }
    match broker.store.allocate_producer_id().await {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(error) => {
            tracing::warn!(%error, "allocating a producer id failed");
            response.error_code = match metadata_error(&error) {
                ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
                _ => ResponseError::UnknownServerError,
            }
            .code();
        }
    }
    response
}
