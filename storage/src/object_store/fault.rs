//! Fault injection for any [`ObjectStore`], for tests and simulation.
//!
//! Faults are scripted per operation: "fail the next 2 PUTs", "cut every GET body
//! after 10 bytes", "fail 1% of GETs" (drawn from a seeded generator, so a failing
//! run replays exactly). The faults model what S3 really does: requests that fail
//! before they apply, requests that apply but whose response is lost (the caller
//! cannot tell: "maybe committed"), bodies that break off mid-stream, bodies
//! that end early without an error, and requests that never answer.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use fjord_common::SeededRng;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

const STORE_NAME: &str = "fault injection";

/// The operations faults can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `put_opts`.
    Put,
    /// Creating a multipart upload.
    PutMultipart,
    /// `get_opts` for data (whole or ranged GETs).
    Get,
    /// `get_opts` with `head` set.
    Head,
    /// Deleting one object.
    Delete,
    /// Any listing.
    List,
    /// `copy_opts`.
    Copy,
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request fails with a generic (retryable) error and does not apply.
    Transient,
    /// The request fails with "not found" and does not apply.
    NotFound,
    /// The request applies to the store, then fails with a generic error: the
    /// caller cannot tell it applied. Only PUT, delete and copy apply anything;
    /// for other operations this is [`Fault::Transient`] after a harmless call.
    TransientAfterApply,
    /// GETs only: the body delivers its first `keep` bytes, then an error.
    BodyError {
        /// Bytes delivered before the error.
        keep: u64,
    },
    /// GETs only: the body delivers its first `keep` bytes, then ends as if
    /// complete (a short read that only a length check catches).
    ShortBody {
        /// Bytes delivered.
        keep: u64,
    },
    /// The request never answers (and does not apply): only a caller's timeout
    /// ends it, as with a stalled connection.
    Timeout,
    /// The request waits this many milliseconds, then proceeds normally (a slow
    /// request).
    Delay {
        /// How long it waits.
        millis: u64,
    },
    /// The request panics (a bug in the storage path), for supervision tests.
    Panic,
}

/// When a fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// On the next `n` matching requests, then never again.
    Next(u32),
    /// On every matching request.
    Always,
    /// On each matching request with probability `per_million / 1_000_000`,
    /// drawn from the store's seeded generator.
    PerMillion(u32),
}

#[derive(Debug)]
struct Rule {
    operation: Operation,
    fault: Fault,
    trigger: Trigger,
}

#[derive(Debug)]
struct Script {
    rules: Vec<Rule>,
    injected: u64,
}

#[derive(Debug)]
struct Faults {
    script: Mutex<Script>,
    rng: SeededRng,
}

impl Faults {
    /// The fault for the next `operation` request, if one fires.
    fn draw(&self, operation: Operation) -> Option<Fault> {
        let mut script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        let mut fired = None;
        for (index, rule) in script.rules.iter_mut().enumerate() {
            if rule.operation != operation {
                continue;
            }
            let fires = match &mut rule.trigger {
                Trigger::Next(0) => false,
                Trigger::Next(n) => {
                    *n -= 1;
                    true
                }
                Trigger::Always => true,
                Trigger::PerMillion(per_million) => {
                    self.rng.below(1_000_000) < u64::from(*per_million)
                }
            };
            if fires {
                fired = Some((index, rule.fault));
                break;
            }
        }
        script.rules.retain(|rule| rule.trigger != Trigger::Next(0));
        let (_, fault) = fired?;
        script.injected += 1;
        Some(fault)
    }
}

/// Wraps an [`ObjectStore`] and injects the faults it is told to.
#[derive(Debug)]
pub struct FaultInjectingObjectStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Faults>,
}

impl FaultInjectingObjectStore {
    /// Wraps `inner`, with no faults yet; `seed` drives [`Trigger::PerMillion`].
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> Self {
        Self {
            inner,
            faults: Arc::new(Faults {
                script: Mutex::new(Script {
                    rules: Vec::new(),
                    injected: 0,
                }),
                rng: SeededRng::new(seed),
            }),
        }
    }

    /// Adds a fault. Rules are tried in the order added; the first that fires wins.
    pub fn inject(&self, operation: Operation, fault: Fault, trigger: Trigger) {
        let mut script = self.faults.script.lock().unwrap_or_else(|e| e.into_inner());
        script.rules.push(Rule {
            operation,
            fault,
            trigger,
        });
    }

    /// Removes every fault (the store behaves like the inner one again).
    pub fn clear(&self) {
        let mut script = self.faults.script.lock().unwrap_or_else(|e| e.into_inner());
        script.rules.clear();
    }

    /// Replaces every fault with those of `spec` (see [`parse_fault_spec`]).
    pub fn apply_spec(&self, spec: &str) -> Result<(), String> {
        let rules = parse_fault_spec(spec)?;
        let mut script = self.faults.script.lock().unwrap_or_else(|e| e.into_inner());
        script.rules = rules
            .into_iter()
            .map(|(operation, fault, trigger)| Rule {
                operation,
                fault,
                trigger,
            })
            .collect();
        Ok(())
    }

    /// How many faults have fired so far.
    pub fn injected(&self) -> u64 {
        let script = self.faults.script.lock().unwrap_or_else(|e| e.into_inner());
        script.injected
    }
}

/// Parses a fault script written as text, so a separate process (an agent
/// under test) can be given one: comma-separated rules
/// `operation:fault[:trigger]`, tried in order.
///
/// - operations: `put`, `put-multipart`, `get`, `head`, `delete`, `list`, `copy`;
/// - faults: `transient`, `not-found`, `transient-after-apply`, `timeout`,
///   `delay=<n>ms`, `body-error=<bytes>`, `short-body=<bytes>`, `panic`;
/// - triggers: a number (per million requests), `always` (the default) or
///   `next=<n>`.
///
/// `put:transient:50000,get:delay=200ms:100000` fails 5 % of PUTs and slows 10 %
/// of GETs by 200 ms. An empty spec has no rules.
pub fn parse_fault_spec(spec: &str) -> Result<Vec<(Operation, Fault, Trigger)>, String> {
    let mut rules = Vec::new();
    for rule in spec.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let mut fields = rule.split(':');
        let operation = match fields.next().unwrap_or_default() {
            "put" => Operation::Put,
            "put-multipart" => Operation::PutMultipart,
            "get" => Operation::Get,
            "head" => Operation::Head,
            "delete" => Operation::Delete,
            "list" => Operation::List,
            "copy" => Operation::Copy,
            other => return Err(format!("{rule:?}: unknown operation {other:?}")),
        };
        let fault_text = fields.next().ok_or_else(|| format!("{rule:?}: no fault"))?;
        let number = |text: &str, suffix: &str| -> Result<u64, String> {
            text.strip_suffix(suffix)
                .unwrap_or(text)
                .parse()
                .map_err(|_| format!("{rule:?}: {text:?} is not a number"))
        };
        let fault = match fault_text.split_once('=') {
            None => match fault_text {
                "transient" => Fault::Transient,
                "not-found" => Fault::NotFound,
                "transient-after-apply" => Fault::TransientAfterApply,
                "timeout" => Fault::Timeout,
                "panic" => Fault::Panic,
                other => return Err(format!("{rule:?}: unknown fault {other:?}")),
            },
            Some(("delay", value)) => Fault::Delay {
                millis: number(value, "ms")?,
            },
            Some(("body-error", value)) => Fault::BodyError {
                keep: number(value, "")?,
            },
            Some(("short-body", value)) => Fault::ShortBody {
                keep: number(value, "")?,
            },
            Some((other, _)) => return Err(format!("{rule:?}: unknown fault {other:?}")),
        };
        let trigger = match fields.next() {
            None | Some("always") => Trigger::Always,
            Some(text) => match text.split_once('=') {
                Some(("next", n)) => Trigger::Next(
                    n.parse()
                        .map_err(|_| format!("{rule:?}: {n:?} is not a count"))?,
                ),
                _ => {
                    let per_million: u32 = text
                        .parse()
                        .map_err(|_| format!("{rule:?}: unknown trigger {text:?}"))?;
                    if per_million > 1_000_000 {
                        return Err(format!("{rule:?}: {per_million} is more than a million"));
                    }
                    Trigger::PerMillion(per_million)
                }
            },
        };
        if fields.next().is_some() {
            return Err(format!("{rule:?}: too many fields"));
        }
        rules.push((operation, fault, trigger));
    }
    Ok(rules)
}

impl fmt::Display for FaultInjectingObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultInjecting({})", self.inner)
    }
}

fn transient(operation: Operation, path: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE_NAME,
        source: format!("injected transient fault on {operation:?} {path}").into(),
    }
}

/// The error a fault raises before the request reaches the inner store, if it does.
fn error_before(operation: Operation, path: &str, fault: Fault) -> Option<object_store::Error> {
    match fault {
        Fault::Transient => Some(transient(operation, path)),
        Fault::NotFound => Some(object_store::Error::NotFound {
            path: path.to_owned(),
            source: "injected not-found fault".into(),
        }),
        Fault::TransientAfterApply
        | Fault::BodyError { .. }
        | Fault::ShortBody { .. }
        | Fault::Timeout
        | Fault::Delay { .. }
        | Fault::Panic => None,
    }
}

/// Never returns if the fault is [`Fault::Timeout`], waits for a
/// [`Fault::Delay`], and panics for [`Fault::Panic`].
async fn hang_on_timeout(fault: Option<Fault>) {
    match fault {
        Some(Fault::Timeout) => std::future::pending::<()>().await,
        Some(Fault::Delay { millis }) => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        }
        Some(Fault::Panic) => panic!("injected panic in an object-store request"),
        _ => {}
    }
}

/// Applies a fault to a result that came back from the inner store.
fn error_after<T>(
    operation: Operation,
    path: &str,
    fault: Option<Fault>,
    result: object_store::Result<T>,
) -> object_store::Result<T> {
    match fault {
        Some(Fault::TransientAfterApply) => Err(transient(operation, path)),
        // Body faults on non-GETs, and the before-faults that already returned.
        Some(Fault::Transient | Fault::NotFound | Fault::BodyError { .. })
        | Some(Fault::ShortBody { .. } | Fault::Timeout | Fault::Delay { .. } | Fault::Panic)
        | None => result,
    }
}

/// Cuts `body` after `keep` bytes, then ends it with an error or cleanly.
fn cut_body(
    body: BoxStream<'static, object_store::Result<Bytes>>,
    keep: u64,
    then_error: bool,
    path: String,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    stream::unfold(Some((body, keep)), move |state| {
        let path = path.clone();
        async move {
            let (mut body, remaining) = state?;
            if remaining == 0 {
                return then_error.then(|| (Err(transient(Operation::Get, &path)), None));
            }
            match body.next().await {
                None => None,
                Some(Err(error)) => Some((Err(error), None)),
                Some(Ok(mut bytes)) => {
                    let take = usize::try_from(remaining).unwrap_or(usize::MAX);
                    if bytes.len() > take {
                        bytes.truncate(take);
                    }
                    let left = remaining - bytes.len() as u64;
                    Some((Ok(bytes), Some((body, left))))
                }
            }
        }
    })
    .boxed()
}

#[async_trait]
impl ObjectStore for FaultInjectingObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let fault = self.faults.draw(Operation::Put);
        hang_on_timeout(fault).await;
        if let Some(error) = fault.and_then(|f| error_before(Operation::Put, location.as_ref(), f))
        {
            return Err(error);
        }
        let result = self.inner.put_opts(location, payload, opts).await;
        error_after(Operation::Put, location.as_ref(), fault, result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let operation = Operation::PutMultipart;
        let fault = self.faults.draw(operation);
        hang_on_timeout(fault).await;
        if let Some(error) = fault.and_then(|f| error_before(operation, location.as_ref(), f)) {
            return Err(error);
        }
        let result = self.inner.put_multipart_opts(location, opts).await;
        error_after(operation, location.as_ref(), fault, result)
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let operation = if options.head {
            Operation::Head
        } else {
            Operation::Get
        };
        let path = location.as_ref();
        let fault = self.faults.draw(operation);
        hang_on_timeout(fault).await;
        if let Some(error) = fault.and_then(|f| error_before(operation, path, f)) {
            return Err(error);
        }
        let result = self.inner.get_opts(location, options).await;
        let (keep, then_error) = match fault {
            Some(Fault::BodyError { keep }) if operation == Operation::Get => (keep, true),
            Some(Fault::ShortBody { keep }) if operation == Operation::Get => (keep, false),
            other => return error_after(operation, path, other, result),
        };
        let GetResult {
            payload,
            meta,
            range,
            attributes,
            extensions,
        } = result?;
        // Turn a local file into a stream, then cut it.
        let body = GetResult {
            payload,
            meta: meta.clone(),
            range: range.clone(),
            attributes: attributes.clone(),
            extensions: Default::default(),
        }
        .into_stream();
        Ok(GetResult {
            payload: GetResultPayload::Stream(cut_body(body, keep, then_error, path.to_owned())),
            meta,
            range,
            attributes,
            extensions,
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        // One object at a time, so a fault hits exactly the object it was drawn for.
        let inner = Arc::clone(&self.inner);
        let faults = Arc::clone(&self.faults);
        locations
            .then(move |location| {
                let inner = Arc::clone(&inner);
                let faults = Arc::clone(&faults);
                async move {
                    let location = location?;
                    let operation = Operation::Delete;
                    let fault = faults.draw(operation);
                    hang_on_timeout(fault).await;
                    if let Some(error) =
                        fault.and_then(|f| error_before(operation, location.as_ref(), f))
                    {
                        return Err(error);
                    }
                    let path = location.to_string();
                    let result = inner
                        .delete_stream(stream::once(async move { Ok(location) }).boxed())
                        .next()
                        .await
                        .unwrap_or_else(|| Err(transient(operation, &path)));
                    error_after(operation, &path, fault, result)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let path = prefix.map(|p| p.to_string()).unwrap_or_default();
        let fault = self.faults.draw(Operation::List);
        if fault == Some(Fault::Timeout) {
            return stream::once(std::future::pending()).boxed();
        }
        match fault.and_then(|f| error_before(Operation::List, &path, f)) {
            Some(error) => stream::once(async move { Err(error) }).boxed(),
            None => self.inner.list(prefix),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let path = prefix.map(|p| p.to_string()).unwrap_or_default();
        let fault = self.faults.draw(Operation::List);
        hang_on_timeout(fault).await;
        if let Some(error) = fault.and_then(|f| error_before(Operation::List, &path, f)) {
            return Err(error);
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let fault = self.faults.draw(Operation::Copy);
        hang_on_timeout(fault).await;
        if let Some(error) = fault.and_then(|f| error_before(Operation::Copy, to.as_ref(), f)) {
            return Err(error);
        }
        let result = self.inner.copy_opts(from, to, options).await;
        error_after(Operation::Copy, to.as_ref(), fault, result)
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    fn store() -> (Arc<InMemory>, FaultInjectingObjectStore) {
        let inner = Arc::new(InMemory::new());
        let faulty = FaultInjectingObjectStore::new(Arc::clone(&inner) as _, 42);
        (inner, faulty)
    }

    #[tokio::test]
    async fn next_n_faults_then_success() {
        let (inner, store) = store();
        let path = Path::from("k");
        store.inject(Operation::Put, Fault::Transient, Trigger::Next(2));
        for _ in 0..2 {
            let error = store
                .put(&path, PutPayload::from_static(b"v"))
                .await
                .unwrap_err();
            assert!(
                matches!(error, object_store::Error::Generic { .. }),
                "{error}"
            );
        }
        assert!(
            inner.head(&path).await.is_err(),
            "a failed PUT must not apply"
        );
        store
            .put(&path, PutPayload::from_static(b"v"))
            .await
            .unwrap();
        assert_eq!(store.injected(), 2);
    }

    #[tokio::test]
    async fn maybe_committed_put_applies_but_reports_failure() {
        let (inner, store) = store();
        let path = Path::from("k");
        store.inject(Operation::Put, Fault::TransientAfterApply, Trigger::Next(1));
        assert!(
            store
                .put(&path, PutPayload::from_static(b"v"))
                .await
                .is_err()
        );
        assert_eq!(inner.get(&path).await.unwrap().bytes().await.unwrap(), "v");
    }

    #[tokio::test]
    async fn partial_reads() {
        let (_, store) = store();
        let path = Path::from("k");
        store
            .put(&path, PutPayload::from(vec![9u8; 100]))
            .await
            .unwrap();

        store.inject(
            Operation::Get,
            Fault::ShortBody { keep: 10 },
            Trigger::Next(1),
        );
        let result = store.get_range(&path, 0..50).await.unwrap();
        assert_eq!(result.len(), 10, "the short body ends cleanly");

        store.inject(
            Operation::Get,
            Fault::BodyError { keep: 10 },
            Trigger::Next(1),
        );
        let error = store.get(&path).await.unwrap().bytes().await.unwrap_err();
        assert!(
            matches!(error, object_store::Error::Generic { .. }),
            "{error}"
        );

        assert_eq!(store.get_range(&path, 0..50).await.unwrap().len(), 50);
        // HEAD is not a body read: body faults do not touch it.
        store.inject(
            Operation::Get,
            Fault::ShortBody { keep: 1 },
            Trigger::Always,
        );
        assert_eq!(store.head(&path).await.unwrap().size, 100);
    }

    #[tokio::test]
    async fn faults_on_delete_list_and_copy() {
        let (inner, store) = store();
        let a = Path::from("a");
        store.put(&a, PutPayload::from_static(b"v")).await.unwrap();

        store.inject(Operation::Copy, Fault::NotFound, Trigger::Next(1));
        let error = store.copy(&a, &Path::from("b")).await.unwrap_err();
        assert!(
            matches!(error, object_store::Error::NotFound { .. }),
            "{error}"
        );

        store.inject(Operation::List, Fault::Transient, Trigger::Next(2));
        let listed: Vec<_> = store.list(None).collect().await;
        assert!(listed[0].is_err());
        assert!(store.list_with_delimiter(None).await.is_err());
        assert_eq!(store.list(None).collect::<Vec<_>>().await.len(), 1);

        store.inject(Operation::Delete, Fault::Transient, Trigger::Next(1));
        assert!(store.delete(&a).await.is_err());
        assert!(
            inner.head(&a).await.is_ok(),
            "a failed delete must not apply"
        );
        store.delete(&a).await.unwrap();
        assert!(inner.head(&a).await.is_err());
    }

    #[tokio::test]
    async fn random_faults_replay_with_the_same_seed() {
        async fn outcomes(seed: u64) -> Vec<bool> {
            let store = FaultInjectingObjectStore::new(Arc::new(InMemory::new()), seed);
            store.inject(
                Operation::Put,
                Fault::Transient,
                Trigger::PerMillion(300_000),
            );
            let mut outcomes = Vec::new();
            for i in 0..64 {
                let path = Path::from(format!("k{i}"));
                outcomes.push(
                    store
                        .put(&path, PutPayload::from_static(b"v"))
                        .await
                        .is_ok(),
                );
            }
            outcomes
        }
        let first = outcomes(7).await;
        assert_eq!(first, outcomes(7).await);
        let failures = first.iter().filter(|ok| !**ok).count();
        assert!((5..40).contains(&failures), "{failures} of 64 failed");
    }

    #[tokio::test]
    async fn clear_removes_every_fault() {
        let (_, store) = store();
        store.inject(Operation::Put, Fault::Transient, Trigger::Always);
        assert!(
            store
                .put(&Path::from("k"), PutPayload::from_static(b"v"))
                .await
                .is_err()
        );
        store.clear();
        store
            .put(&Path::from("k"), PutPayload::from_static(b"v"))
            .await
            .unwrap();
    }

    #[test]
    fn fault_specs_parse_and_refuse_what_they_do_not_know() {
        assert_eq!(parse_fault_spec("").unwrap(), vec![]);
        assert_eq!(
            parse_fault_spec("put:transient:50000, get:delay=200ms:next=3,head:timeout").unwrap(),
            vec![
                (
                    Operation::Put,
                    Fault::Transient,
                    Trigger::PerMillion(50_000)
                ),
                (
                    Operation::Get,
                    Fault::Delay { millis: 200 },
                    Trigger::Next(3)
                ),
                (Operation::Head, Fault::Timeout, Trigger::Always),
            ]
        );
        for bad in [
            "push:transient",
            "put",
            "put:flaky",
            "put:transient:often",
            "put:transient:2000000",
            "put:delay=soon",
            "put:transient:1:2",
        ] {
            assert!(parse_fault_spec(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_slows_the_request_and_then_applies_it() {
        let store = FaultInjectingObjectStore::new(Arc::new(InMemory::new()), 1);
        store.apply_spec("put:delay=500ms:next=1").unwrap();
        let started = tokio::time::Instant::now();
        store
            .put(&Path::from("k"), PutPayload::from_static(b"v"))
            .await
            .unwrap();
        assert!(started.elapsed() >= std::time::Duration::from_millis(500));
        assert_eq!(store.injected(), 1);
        let got = store
            .get(&Path::from("k"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], b"v");
    }
}
