//! `InitProducerId`: a producer id for an idempotent producer.
//!
//! As in Apache Kafka, a request without a transactional id always gets a fresh
//! producer id with epoch 0, whatever id and epoch it carries (a producer bumping
//! its epoch after an error simply starts over under a new id). Transactional ids
//! are refused: transactions are not supported yet.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::Broker;
use crate::kafka::errors::metadata_error;

pub(crate) async fn handle(
    broker: &Broker,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if request.transactional_id.is_some() {
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
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
