//! [`Client`]: the agents' base URLs, one pooled HTTP/1.1 connection pool,
//! and the retry rule every call shares.
//!
//! Requests go to the agents in turn. A request that fails with a transport
//! error (refused, reset, timed out) or a `503` is sent again to the next
//! agent after a short backoff (or the `Retry-After` the gateway sent), at
//! most [`ClientOptions::max_attempts`] times in all. The gateway is
//! stateless, so any agent answers any request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::producer::{Producer, ProducerConfig};
use crate::reader::Reader;

/// How the client retries and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Attempts of one request in all (over the agents in turn) before its
    /// last error is returned. At least 1.
    pub max_attempts: usize,
    /// The wait before the first retry; doubled for each further retry, up to
    /// `max_backoff`.
    pub backoff: Duration,
    /// The longest wait between two attempts (also caps `Retry-After`).
    pub max_backoff: Duration,
    /// The longest one request may take (connect, send, answer read); a
    /// request that takes longer fails as a transport error. Tails are not
    /// bounded by it.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A client of Fjord's HTTP gateway over one or more agents. Cheap to clone
/// (clones share the connection pool).
///
/// Plain `http://` only: TLS is not supported yet.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    /// Base URLs, without a trailing `/`.
    bases: Vec<String>,
    /// The agent the next request goes to first.
    next: AtomicUsize,
    options: ClientOptions,
}

/// An answer read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Client {
    /// A client of the agents at `base_urls` (`http://host:port`, optionally
    /// with a path prefix), with default [`ClientOptions`].
    ///
    /// Fails when the list is empty or a URL is not a plain `http://` URL.
    pub fn new(base_urls: Vec<String>) -> Result<Self> {
        Self::with_options(base_urls, ClientOptions::default())
    }

    /// As [`Client::new`], with `options`.
    pub fn with_options(base_urls: Vec<String>, options: ClientOptions) -> Result<Self> {
        if base_urls.is_empty() {
            return Err(Error::InvalidArgument("no agent URL given".into()));
        }
        let mut bases = Vec::with_capacity(base_urls.len());
        for url in base_urls {
            let trimmed = url.trim().trim_end_matches('/');
            if trimmed.starts_with("https://") {
                return Err(Error::InvalidArgument(format!(
                    "{url}: TLS is not supported yet; use http://"
                )));
            }
            if !trimmed.starts_with("http://") {
                return Err(Error::InvalidArgument(format!(
                    "{url}: expected http://host:port"
                )));
            }
            trimmed
                .parse::<Uri>()
                .map_err(|e| Error::InvalidArgument(format!("{url}: {e}")))?;
            bases.push(trimmed.to_owned());
        }
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                bases,
                next: AtomicUsize::new(0),
                options: ClientOptions {
                    max_attempts: options.max_attempts.max(1),
                    ..options
                },
            }),
        })
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The agents' base URLs.
    pub fn base_urls(&self) -> &[String] {
        &self.inner.bases
    }

    /// Topic administration.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// Reads and tails.
    pub fn reader(&self) -> Reader {
        Reader::new(self.clone())
    }

    /// An idempotent, batching producer to `topic` with default settings.
    /// Must be called within a Tokio runtime (it runs background tasks).
    pub fn producer(&self, topic: impl Into<String>) -> Producer {
        Producer::new(self.clone(), topic, ProducerConfig::default())
    }

    /// The index of the agent a new request goes to first.
    pub(crate) fn next_agent(&self) -> usize {
        self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.bases.len()
    }

    /// The number of agents.
    pub(crate) fn agent_count(&self) -> usize {
        self.inner.bases.len()
    }

    /// The wait before retry number `retry` (1 for the first), or the
    /// `Retry-After` asked, capped.
    pub(crate) fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let options = &self.inner.options;
        let exponential = options
            .backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        retry_after
            .unwrap_or(exponential)
            .max(options.backoff)
            .min(options.max_backoff)
    }

    /// The URI of `path_and_query` on agent `agent`.
    fn uri(&self, agent: usize, path_and_query: &str) -> Result<Uri> {
        let base = &self.inner.bases[agent % self.inner.bases.len()];
        format!("{base}{path_and_query}")
            .parse::<Uri>()
            .map_err(|e| Error::InvalidArgument(format!("{path_and_query}: {e}")))
    }

    /// Sends one request to `agent` and returns the response head with its
    /// body unread; an answer that is not a success is read and returned as
    /// [`Error::Api`].
    pub(crate) async fn open(
        &self,
        agent: usize,
        method: Method,
        path_and_query: &str,
        headers: &[(header::HeaderName, HeaderValue)],
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Response<Incoming>> {
        let mut request = Request::builder()
            .method(method)
            .uri(self.uri(agent, path_and_query)?);
        for (name, value) in headers {
            request = request.header(name, value.clone());
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let response = self
            .inner
            .http
            .request(request)
            .await
            .map_err(|e| Error::Transport(transport_message(&e)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Err(Error::from_answer(status, &body, retry_after))
    }

    /// One request, sent to the agents in turn until it is answered, read
    /// whole; a transport error or a `503` moves it to the next agent.
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Answer> {
        let first = self.next_agent();
        let mut attempt = 0u32;
        loop {
            let agent = first + attempt as usize;
            let result = tokio::time::timeout(self.inner.options.request_timeout, async {
                let response = self
                    .open(agent, method.clone(), path_and_query, &[], body.clone())
                    .await?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| Error::Transport(format!("reading the answer: {e}")))?
                    .to_bytes();
                Ok(Answer { status, body })
            })
            .await
            .unwrap_or_else(|_| Err(Error::Transport("the request timed out".into())));
            attempt += 1;
            match result {
                Err(error)
                    if error.moves_on() && (attempt as usize) < self.inner.options.max_attempts =>
                {
                    let retry_after = match &error {
                        Error::Api { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    tokio::time::sleep(self.backoff(attempt, retry_after)).await;
                }
                other => return other,
            }
        }
    }

    /// A JSON call: `body` serialized, the answer parsed as `T`.
    pub(crate) async fn call_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let body = match body {
            Some(body) => Some((
                "application/json",
                Bytes::from(
                    serde_json::to_vec(body).map_err(|e| Error::InvalidArgument(e.to_string()))?,
                ),
            )),
            None => None,
        };
        let answer = self.call(method, path_and_query, body).await?;
        serde_json::from_slice(&answer.body).map_err(|e| {
            Error::Decode(format!(
                "{path_and_query} answered {}: {e}",
                answer.status.as_u16()
            ))
        })
    }
}

/// The `Retry-After` of an answer, in seconds (an HTTP date is not used by
/// the gateway and is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A transport error with its causes.
fn transport_message(error: &hyper_util::client::legacy::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// `text` percent-encoded for a path segment or query value: everything but
/// RFC 3986's unreserved characters.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(Client::new(vec![]).is_err());
        assert!(Client::new(vec!["https://a:1".into()]).is_err());
        assert!(Client::new(vec!["a:1".into()]).is_err());
        let client = Client::new(vec!["http://a:1/".into(), "http://b:2".into()]).unwrap();
        assert_eq!(client.base_urls(), ["http://a:1", "http://b:2"]);
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        let client = Client::new(vec!["http://a:1".into()]).unwrap();
        assert_eq!(client.backoff(1, None), Duration::from_millis(50));
        assert_eq!(client.backoff(2, None), Duration::from_millis(100));
        assert_eq!(client.backoff(30, None), Duration::from_secs(2));
        assert_eq!(
            client.backoff(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("a.b-c_d"), "a.b-c_d");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
