//! The HTTP routes, and what they share: the state, reading a bounded body,
//! parsing paths and queries into the one error shape.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz`, `GET /readyz` | liveness; readiness (registered, not leaving) |
//! | `GET /v1/openapi.json` | the OpenAPI document of all of this |
//! | `GET/POST /v1/topics`, `GET/DELETE /v1/topics/{topic}` | [`admin`] |
//! | `GET /v1/topics/{topic}/partitions[/{partition}]` | [`admin`]: offsets and leaders |
//! | `POST /v1/topics/{topic}/records`, `POST …/partitions/{p}/records` | [`produce`] |
//! | `POST /v1/producers` | [`produce`]: an idempotent producer's id and epoch |
//! | `GET /v1/topics/{topic}/partitions/{p}/records` | [`read`]: a partition, or its tail (SSE) |
//! | `GET /v1/topics/{topic}/records` | [`topic_read`]: every partition, by cursor, or its tail (SSE) |
//! | `POST /v1/groups/{group}/members[/{member}/poll|commit]`, `DELETE …/members/{member}`, `GET …/members/{member}/records` (SSE) | [`groups`]: group consumption |
//! | `/v3/…`, `/kafka/v3/…`, `/topics/…`, `/consumers/…` | [`confluent`]: Confluent REST Proxy API v3 and v2 (`docs/rest-proxy.md`) |

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;

use crate::core::Core;
use crate::error::ApiError;

mod admin;
mod confluent;
mod groups;
mod produce;
mod read;
mod topic_read;

/// The OpenAPI document, served as is.
const OPENAPI: &str = include_str!("../openapi.json");

/// Limits of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// The largest request body accepted; a larger one is answered 413
    /// before it is read.
    pub max_body_bytes: usize,
    /// The longest a read may wait for records (`wait_ms` is capped to it).
    pub max_wait: Duration,
    /// The most records one read returns (`max_records` is capped to it).
    pub max_records: usize,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            max_wait: Duration::from_secs(30),
            max_records: 10_000,
        }
    }
}

/// What every handler (HTTP and gRPC) shares.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub(crate) core: Arc<dyn Core>,
    pub(crate) settings: Arc<GatewaySettings>,
    /// Picks the partition of a request's records that have no key.
    pub(crate) sticky: Arc<AtomicU32>,
    /// Cancelled when the agent shuts down: event streams end.
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
}

/// The gateway's routes over `core`, HTTP and gRPC; event streams end when
/// `shutdown` is cancelled.
pub fn router(
    core: Arc<dyn Core>,
    settings: GatewaySettings,
    shutdown: tokio_util::sync::CancellationToken,
) -> Router {
    let state = State {
        core,
        settings: Arc::new(settings),
        sticky: Arc::new(AtomicU32::new(0)),
        shutdown,
    };
    let grpc = crate::grpc::routes(&state);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/openapi.json", get(openapi))
        .route(
            "/v1/topics",
            get(admin::list_topics).post(admin::create_topic),
        )
        .route(
            "/v1/topics/{topic}",
            get(admin::describe_topic).delete(admin::delete_topic),
        )
        .route("/v1/topics/{topic}/partitions", get(admin::list_partitions))
        .route(
            "/v1/topics/{topic}/partitions/{partition}",
            get(admin::describe_partition),
        )
        .route("/v1/producers", axum::routing::post(produce::new_producer))
        .route(
            "/v1/topics/{topic}/records",
            get(topic_read::records).post(produce::to_topic),
        )
        .route(
            "/v1/topics/{topic}/partitions/{partition}/records",
            get(read::records).post(produce::to_partition),
        )
        .route(
            "/v1/groups/{group}/members",
            axum::routing::post(groups::join),
        )
        .route(
            "/v1/groups/{group}/members/{member}",
            axum::routing::delete(groups::leave),
        )
        .route(
            "/v1/groups/{group}/members/{member}/poll",
            axum::routing::post(groups::poll),
        )
        .route(
            "/v1/groups/{group}/members/{member}/commit",
            axum::routing::post(groups::commit),
        )
        .route(
            "/v1/groups/{group}/members/{member}/records",
            get(groups::stream),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .merge(confluent::router(&state))
        .with_state(state)
        .merge(grpc)
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn readyz(axum::extract::State(state): axum::extract::State<State>) -> Response {
    match state.core.readiness() {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(why) => ApiError::unavailable(why).into_response(),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The query string as `T`; a 400 in the error shape when it does not parse.
fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|error| ApiError::bad_request(format!("bad query string: {}", error.body_text())))
}

/// A partition index from the path.
fn partition_index(text: &str) -> Result<i32, ApiError> {
    text.parse::<i32>().ok().filter(|p| *p >= 0).ok_or_else(|| {
        ApiError::bad_request(format!("partition {text:?} is not a partition index"))
    })
}

/// The body, at most `limit` bytes: a larger one is refused (413) without
/// reading it when its length is declared, or once the limit is passed.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(limit))
        }
        Err(error) => Err(ApiError::bad_request(format!(
            "cannot read the body: {error}"
        ))),
    }
}

/// The request's media type, lower-cased, without parameters; `None` if absent.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// A JSON body as `T`; a 400 naming what is wrong when it is not.
fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    crate::records::object_from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("bad JSON body: {error}")))
}
