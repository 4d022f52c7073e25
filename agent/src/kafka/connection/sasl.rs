//! SASL on a connection (KIP-43, KIP-152), as Kafka's
//! `SaslServerAuthenticator` runs it on a `SASL_PLAINTEXT` or `SASL_SSL`
//! listener:
//!
//! 1. before the handshake, only `ApiVersions` and `SaslHandshake` (v1) are
//!    served; anything else closes the connection;
//! 2. `SaslHandshake` picks an enabled mechanism (`UNSUPPORTED_SASL_MECHANISM`
//!    with the enabled ones, then closing, for any other);
//! 3. `SaslAuthenticate` requests carry the mechanism's tokens
//!    ([`SaslSession`]) until it succeeds: the connection then acts as the
//!    authenticated principal. A failure is answered
//!    `SASL_AUTHENTICATION_FAILED` after [`FAILED_AUTHENTICATION_DELAY`]
//!    (Kafka's `connection.failed.authentication.delay.ms`), and the
//!    connection closes, so guessing passwords costs a connection and a
//!    delay each time. After a v0 handshake the tokens are bare
//!    length-prefixed frames both ways ([`raw_token`]), and a failure closes
//!    the connection after the same delay without an answer, as Kafka does.
//!
//! Sessions do not expire (`session_lifetime_ms` 0: no re-authentication,
//! KIP-368). On a listener without SASL, or once authenticated, the SASL
//! requests are answered `ILLEGAL_SASL_STATE`.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::security::Principal;
use crate::security::sasl::{Mechanism, SaslSession, Step};

/// How long a failed authentication waits before its answer (Kafka's default
/// `connection.failed.authentication.delay.ms`).
pub(super) const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// Where a connection's authentication is.
#[derive(Debug)]
pub(super) enum Auth {
    /// The listener has no SASL: the principal is the TLS certificate's, or
    /// anonymous.
    Off,
    /// Waiting for `SaslHandshake`.
    Handshake,
    /// A mechanism was chosen: `SaslAuthenticate` requests carry its tokens,
    /// or bare frames (`raw`, after a v0 handshake).
    Authenticating {
        session: Box<SaslSession>,
        raw: bool,
    },
    /// Authenticated.
    Done,
}

impl Auth {
    /// Where a new connection of `broker`'s listener starts.
    pub(super) fn start(broker: &Broker) -> Self {
        if broker.settings.sasl_mechanisms.is_empty() {
            Auth::Off
        } else {
            Auth::Handshake
        }
    }
}

/// What becomes of a request.
// Passed by value once per request, as dispatch takes it: boxing the request
// would cost every request an allocation to save a few hundred bytes of stack.
#[allow(clippy::large_enum_variant)]
pub(super) enum Gate {
    /// Served as usual.
    Pass(RequestKind),
    /// Answered here; the connection closes after the answer if `close`.
    Answer {
        response: Box<ResponseKind>,
        close: bool,
    },
    /// The connection closes without an answer (`reason` is logged).
    Refuse(String),
}

/// Lets `body` (a request of `api`) through, answers it, or refuses it, by
/// `auth`'s state; authenticating sets `principal`.
pub(super) async fn gate(
    auth: &mut Auth,
    principal: &mut Principal,
    broker: &Broker,
    api: ApiKey,
    version: i16,
    body: RequestKind,
) -> Gate {
    match body {
        RequestKind::ApiVersions(request) => Gate::Pass(RequestKind::ApiVersions(request)),
        RequestKind::SaslHandshake(request) => match auth {
            Auth::Handshake => {
                let enabled = &broker.settings.sasl_mechanisms;
                let mut response = SaslHandshakeResponse::default();
                response.mechanisms = enabled
                    .iter()
                    .map(|m| StrBytes::from_static_str(m.name()))
                    .collect();
                let chosen = Mechanism::from_name(request.mechanism.as_str())
                    .filter(|m| enabled.contains(m));
                match chosen {
                    Some(mechanism) => {
                        *auth = Auth::Authenticating {
                            session: Box::new(SaslSession::new(mechanism)),
                            raw: version == 0,
                        };
                        answer(ResponseKind::SaslHandshake(response), false)
                    }
                    None => {
                        tracing::info!(
                            mechanism = request.mechanism.as_str(),
                            "refusing an unsupported SASL mechanism"
                        );
                        response.error_code = ResponseError::UnsupportedSaslMechanism.code();
                        answer(ResponseKind::SaslHandshake(response), true)
                    }
                }
            }
            Auth::Off | Auth::Done => {
                let mut response = SaslHandshakeResponse::default();
                response.error_code = ResponseError::IllegalSaslState.code();
                response.mechanisms = broker
                    .settings
                    .sasl_mechanisms
                    .iter()
                    .map(|m| StrBytes::from_static_str(m.name()))
                    .collect();
                answer(ResponseKind::SaslHandshake(response), false)
            }
            Auth::Authenticating { .. } => Gate::Refuse("a second SASL handshake".to_owned()),
        },
        RequestKind::SaslAuthenticate(request) => match auth {
            Auth::Authenticating {
                session,
                raw: false,
            } => {
                let mechanism = session.mechanism();
                let mut response = SaslAuthenticateResponse::default();
                match session.step(&broker.store, &request.auth_bytes).await {
                    Ok(Step::Challenge(challenge)) => {
                        response.auth_bytes = challenge.into();
                        answer(ResponseKind::SaslAuthenticate(response), false)
                    }
                    Ok(Step::Done {
                        principal: who,
                        token,
                    }) => {
                        tracing::info!(principal = %who, %mechanism, "authenticated");
                        *principal = who;
                        *auth = Auth::Done;
                        response.auth_bytes = token.into();
                        answer(ResponseKind::SaslAuthenticate(response), false)
                    }
                    Err(failure) => {
                        tracing::info!(%mechanism, reason = %failure.detail, "authentication failed");
                        tokio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
                        response.error_code = ResponseError::SaslAuthenticationFailed.code();
                        response.error_message = Some(StrBytes::from_string(failure.to_string()));
                        answer(ResponseKind::SaslAuthenticate(response), true)
                    }
                }
            }
            Auth::Handshake | Auth::Authenticating { raw: true, .. } => {
                Gate::Refuse("SaslAuthenticate outside a v1 SASL handshake".to_owned())
            }
            Auth::Off | Auth::Done => {
                let mut response = SaslAuthenticateResponse::default();
                response.error_code = ResponseError::IllegalSaslState.code();
                response.error_message = Some(StrBytes::from_static_str(
                    "no SASL authentication is in progress on this connection",
                ));
                answer(ResponseKind::SaslAuthenticate(response), false)
            }
        },
        body => match auth {
            Auth::Off | Auth::Done => Gate::Pass(body),
            Auth::Handshake | Auth::Authenticating { .. } => {
                Gate::Refuse(format!("a {api:?} request before SASL authentication"))
            }
        },
    }
}

/// Whether the connection's next frame is a bare SASL token (after a v0
/// handshake) rather than a request.
pub(super) fn expects_raw_token(auth: &Auth) -> bool {
    matches!(auth, Auth::Authenticating { raw: true, .. })
}

/// Takes a bare SASL token (after a v0 handshake): the frame to send back (a
/// length-prefixed token), or `None` when authentication failed and the
/// connection closes, after [`FAILED_AUTHENTICATION_DELAY`].
pub(super) async fn raw_token(
    auth: &mut Auth,
    principal: &mut Principal,
    broker: &Broker,
    token: &[u8],
) -> Option<bytes::Bytes> {
    let Auth::Authenticating { session, raw: true } = auth else {
        return None;
    };
    let mechanism = session.mechanism();
    let reply = match session.step(&broker.store, token).await {
        Ok(Step::Challenge(challenge)) => challenge,
        Ok(Step::Done {
            principal: who,
            token,
        }) => {
            tracing::info!(principal = %who, %mechanism, "authenticated");
            *principal = who;
            *auth = Auth::Done;
            token
        }
        Err(failure) => {
            tracing::info!(%mechanism, reason = %failure.detail, "authentication failed");
            tokio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
            return None;
        }
    };
    let length = u32::try_from(reply.len()).ok()?;
    let mut frame = bytes::BytesMut::with_capacity(4 + reply.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&reply);
    Some(frame.freeze())
}

fn answer(response: ResponseKind, close: bool) -> Gate {
    Gate::Answer {
        response: Box::new(response),
        close,
    }
}
