//! The gRPC services (`proto/fjord/v1/gateway.proto`), served on the HTTP
//! port beside the HTTP routes, over the same operations ([`crate::ops`]):
//!
//! | service | module |
//! |---|---|
//! | `fjord.v1.Records`: produce (unary and streaming), read, tail | [`records`] |
//! | `fjord.v1.Topics`: list, create, describe, delete | [`topics`] |
//! | `fjord.v1.Groups`: group consumption (join, poll, commit, leave, subscribe) | [`groups`] |
//! | `grpc.health.v1.Health` | `tonic-health`: serving until the agent shuts down |
//! | `grpc.reflection.v1` / `v1alpha` | `tonic-reflection`, from the compiled descriptors |
//!
//! Every service also answers gRPC-web (`tonic-web`), on HTTP/1.1 too.
//! Errors: [`status`].

use axum::Router;
use tonic::server::NamedService;

use crate::routes::State;

mod groups;
mod records;
mod status;
mod topics;

/// The code `tonic-prost-build` generated from the `.proto` files.
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]
pub(crate) mod proto {
    tonic::include_proto!("fjord.v1");
}

/// The compiled descriptors of `fjord.v1`, for reflection.
const DESCRIPTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fjord_v1_descriptor.bin"));

/// Routes `/{service}/*` to `service`, answering gRPC and gRPC-web.
fn route<S>(router: Router, service: S) -> Router
where
    S: tower::Service<
            axum::http::Request<tonic::body::Body>,
            Response = axum::http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let web = tonic_web::GrpcWebLayer::new();
    let service = tower::Layer::layer(&web, service);
    router.route_service(&format!("/{}/{{*rest}}", S::NAME), service)
}

/// The gRPC services over `state`, as routes to merge with the HTTP ones.
pub(crate) fn routes(state: &State) -> Router {
    let (reporter, health) = tonic_health::server::health_reporter();
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        for name in [records::NAME, topics::NAME, groups::NAME] {
            reporter
                .set_service_status(name, tonic_health::ServingStatus::Serving)
                .await;
        }
        shutdown.cancelled().await;
        // Load balancers and clients stop sending here during the hand-off.
        for name in ["", records::NAME, topics::NAME, groups::NAME] {
            reporter
                .set_service_status(name, tonic_health::ServingStatus::NotServing)
                .await;
        }
    });
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(DESCRIPTOR)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut router = Router::new();
    router = route(router, records::service(state.clone()));
    router = route(router, topics::service(state.clone()));
    router = route(router, groups::service(state.clone()));
    router = route(router, health);
    match reflection().build_v1() {
        Ok(service) => router = route(router, service),
        Err(error) => tracing::warn!(%error, "gRPC reflection (v1) is not served"),
    }
    match reflection().build_v1alpha() {
        Ok(service) => router = route(router, service),
        Err(error) => tracing::warn!(%error, "gRPC reflection (v1alpha) is not served"),
    }
    router
}
