//! Fault injection for any [`KvBackend`], for tests, simulation and chaos runs.
//!
//! [`FaultInjectingBackend`] wraps a backend and, per operation (begin, read,
//! commit), injects what real metadata stores do: refuse a request before it
//! applies ([`Fault::Unavailable`]), commit and lose the reply
//! ([`Fault::MaybeCommittedApplied`]), lose the request yet report an unknown
//! outcome ([`Fault::MaybeCommittedNotApplied`]), answer slowly
//! ([`Fault::Delay`]) or not in time ([`Fault::Timeout`]). Rules fire on the next
//! `n` requests, always, or with a probability drawn from a [`SeededRng`], so a
//! failing run replays from its seed (when its transactions run in the same
//! order).
//!
//! The rules and counters live in a [`FaultInjector`], a cheap handle shared by
//! the backend and its owner: a test adds or clears rules while the store runs,
//! and reads [`FaultStats`] (faults injected; transactions open now and at the
//! peak, which shows transactions really overlapped). A [`FaultSpec`] is the same
//! rules as text, for a flag of a separate process:
//!
//! ```text
//! commit:unavailable:20000,commit:maybe-committed-applied:10000,commit:delay=200ms:5000,begin:unavailable:next=3
//! ```
//!
//! Each rule is `operation:fault[:trigger]`: operation `begin`, `read` or
//! `commit`; fault `unavailable`, `maybe-committed-applied`,
//! `maybe-committed-not-applied` (commit only), `delay=<duration>` or
//! `timeout=<duration>` (durations in `us`, `ms` or `s`); trigger a number of
//! requests per million, `next=<n>` or `always` (the default).
//!
//! How rules combine, per request: rules of its operation are tried in the order
//! added. Every delay that fires adds its pause and the search goes on; the first
//! other fault that fires decides the outcome and ends the search (a `next=<n>`
//! rule counts only the requests it fired on). So a delay and a
//! `maybe-committed-*` rule on the next commit model a commit that timed out.
//!
//! Invariant: a fault never breaks the backend's contract. An `Unavailable` commit
//! certainly wrote nothing; a `MaybeCommitted*` answer is given only for commits,
//! which the transaction layer already treats as an unknown outcome.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fjord_common::SeededRng;

use super::{KeyValue, KvBackend, KvError, KvTransaction, RangeOptions};

/// The requests faults can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Starting a transaction.
    Begin,
    /// A point or range read.
    Read,
    /// Committing a transaction.
    Commit,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Begin => "begin",
            Operation::Read => "read",
            Operation::Commit => "commit",
        }
    }
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request fails with [`KvError::Unavailable`] before it reaches the
    /// backend: nothing was written, retrying is safe.
    Unavailable,
    /// Commits only: the commit applies, then reports
    /// [`KvError::MaybeCommitted`] (the reply was lost).
    MaybeCommittedApplied,
    /// Commits only: the commit does not apply, yet reports
    /// [`KvError::MaybeCommitted`] (the request was lost, or the store gave up).
    MaybeCommittedNotApplied,
    /// The request waits this long, then proceeds (a slow store).
    Delay(Duration),
    /// The request waits this long, then fails as a timed-out request does: a
    /// commit reports [`KvError::MaybeCommitted`] and has applied or not (drawn
    /// from the seeded generator), a begin or read reports
    /// [`KvError::Unavailable`] (a read never commits anything).
    Timeout(Duration),
}

impl Fault {
    fn allowed_on(self, operation: Operation) -> bool {
        match self {
            Fault::Unavailable | Fault::Delay(_) | Fault::Timeout(_) => true,
            Fault::MaybeCommittedApplied | Fault::MaybeCommittedNotApplied => {
                operation == Operation::Commit
            }
        }
    }
}

/// When a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// On the next `n` matching requests, then never again.
    Next(u32),
    /// On every matching request.
    Always,
    /// On each matching request with probability `per_million / 1_000_000`,
    /// drawn from the injector's seeded generator.
    PerMillion(u32),
}

/// One rule: a fault, the operation it hits, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRule {
    /// The operation it hits.
    pub operation: Operation,
    /// What goes wrong.
    pub fault: Fault,
    /// When.
    pub trigger: Trigger,
}

impl FaultRule {
    /// A rule, refused when the fault cannot happen to the operation
    /// (`maybe-committed-*` on a begin or read).
    pub fn new(
        operation: Operation,
        fault: Fault,
        trigger: Trigger,
    ) -> Result<Self, FaultSpecError> {
        let rule = Self {
            operation,
            fault,
            trigger,
        };
        if !fault.allowed_on(operation) {
            return Err(FaultSpecError {
                rule: rule.to_string(),
                reason: format!(
                    "{} happens only to commits (a {} never commits anything)",
                    FaultText(fault),
                    operation.name()
                ),
            });
        }
        if let Trigger::PerMillion(per_million) = trigger
            && per_million > 1_000_000
        {
            return Err(FaultSpecError {
                rule: rule.to_string(),
                reason: format!("{per_million} per million is more than always"),
            });
        }
        Ok(rule)
    }
}

/// A fault as spec text.
struct FaultText(Fault);

impl fmt::Display for FaultText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Fault::Unavailable => f.write_str("unavailable"),
            Fault::MaybeCommittedApplied => f.write_str("maybe-committed-applied"),
            Fault::MaybeCommittedNotApplied => f.write_str("maybe-committed-not-applied"),
            Fault::Delay(pause) => write!(f, "delay={}", DurationText(pause)),
            Fault::Timeout(pause) => write!(f, "timeout={}", DurationText(pause)),
        }
    }
}

/// A duration as spec text, in the largest unit that keeps it whole.
struct DurationText(Duration);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_micros();
        if micros.is_multiple_of(1_000_000) {
            write!(f, "{}s", micros / 1_000_000)
        } else if micros.is_multiple_of(1_000) {
            write!(f, "{}ms", micros / 1_000)
        } else {
            write!(f, "{micros}us")
        }
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.operation.name(), FaultText(self.fault))?;
        match self.trigger {
            Trigger::Next(n) => write!(f, "next={n}"),
            Trigger::Always => f.write_str("always"),
            Trigger::PerMillion(per_million) => write!(f, "{per_million}"),
        }
    }
}

/// A fault spec that could not be parsed, or a rule that cannot be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fault rule {rule:?}: {reason}")]
pub struct FaultSpecError {
    /// The rule, as written.
    pub rule: String,
    /// What is wrong with it.
    pub reason: String,
}

impl From<FaultSpecError> for crate::MetadataError {
    fn from(error: FaultSpecError) -> Self {
        crate::MetadataError::invalid(error.to_string())
    }
}

/// Fault rules as text (see the [module docs](self) for the syntax). An empty
/// spec has no rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultSpec {
    /// The rules, in the order they are tried.
    pub rules: Vec<FaultRule>,
}

impl FaultSpec {
    /// Whether the spec injects nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, rule) in self.rules.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let rules = spec
            .split(',')
            .map(str::trim)
            .filter(|rule| !rule.is_empty())
            .map(parse_rule)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules })
    }
}

fn parse_rule(text: &str) -> Result<FaultRule, FaultSpecError> {
    let bad = |reason: String| FaultSpecError {
        rule: text.to_owned(),
        reason,
    };
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    let (operation, fault, trigger) = match parts.as_slice() {
        [operation, fault] => (*operation, *fault, "always"),
        [operation, fault, trigger] => (*operation, *fault, *trigger),
        _ => {
            return Err(bad(
                "expected operation:fault[:trigger], e.g. commit:unavailable:20000".into(),
            ));
        }
    };
    let operation = match operation {
        "begin" => Operation::Begin,
        "read" => Operation::Read,
        "commit" => Operation::Commit,
        other => {
            return Err(bad(format!(
                "unknown operation {other:?}; expected begin, read or commit"
            )));
        }
    };
    let fault = match fault.split_once('=') {
        None if fault == "unavailable" => Fault::Unavailable,
        None if fault == "maybe-committed-applied" => Fault::MaybeCommittedApplied,
        None if fault == "maybe-committed-not-applied" => Fault::MaybeCommittedNotApplied,
        Some(("delay", pause)) => Fault::Delay(parse_duration(pause).map_err(&bad)?),
        Some(("timeout", pause)) => Fault::Timeout(parse_duration(pause).map_err(&bad)?),
        _ => {
            return Err(bad(format!(
                "unknown fault {fault:?}; expected unavailable, maybe-committed-applied, \
                 maybe-committed-not-applied, delay=<duration> or timeout=<duration>"
            )));
        }
    };
    let trigger = match trigger.split_once('=') {
        None if trigger == "always" => Trigger::Always,
        Some(("next", n)) => match n.parse::<u32>() {
            Ok(n) if n > 0 => Trigger::Next(n),
            _ => return Err(bad(format!("next={n}: expected a count of 1 or more"))),
        },
        None => match trigger.parse::<u32>() {
            Ok(per_million) => Trigger::PerMillion(per_million),
            Err(_) => {
                return Err(bad(format!(
                    "unknown trigger {trigger:?}; expected a number per million (0 to \
                     1000000), next=<n> or always"
                )));
            }
        },
        Some(_) => {
            return Err(bad(format!(
                "unknown trigger {trigger:?}; expected a number per million, next=<n> or always"
            )));
        }
    };
    FaultRule::new(operation, fault, trigger).map_err(|error| bad(error.reason))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!("duration {text:?}: expected a whole number and a unit (us, ms, s)")
    })?;
    match unit {
        "us" => Ok(Duration::from_micros(number)),
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        _ => Err(format!(
            "duration {text:?}: unknown unit {unit:?}; expected us, ms or s"
        )),
    }
}

/// What the injector has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Faults that fired (delays included).
    pub injected: u64,
    /// Transactions begun through the wrapped backend.
    pub transactions: u64,
    /// Transactions begun and not yet committed or dropped.
    pub open_transactions: u64,
    /// The most transactions that were open at once.
    pub peak_open_transactions: u64,
}

/// The outcome a request's faults decided, after its delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Unavailable,
    MaybeCommittedApplied,
    MaybeCommittedNotApplied,
    /// A timeout: a commit that applied or not, a begin or read that failed.
    TimedOut {
        applied: bool,
    },
}

#[derive(Debug, Default)]
struct Script {
    rules: Vec<FaultRule>,
    stats: FaultStats,
}

#[derive(Debug)]
struct Shared {
    script: Mutex<Script>,
    rng: SeededRng,
}

/// The rules and counters of fault injection: a cheap handle, shared by the
/// [`FaultInjectingBackend`]s it wraps and whoever steers them.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    shared: Arc<Shared>,
}

impl FaultInjector {
    /// An injector with no rules yet; `seed` drives [`Trigger::PerMillion`] and
    /// the outcome of [`Fault::Timeout`] commits.
    pub fn new(seed: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                script: Mutex::new(Script::default()),
                rng: SeededRng::new(seed),
            }),
        }
    }

    /// An injector with the rules of `spec`.
    pub fn with_spec(spec: &FaultSpec, seed: u64) -> Self {
        let injector = Self::new(seed);
        injector.lock().rules.extend(spec.rules.iter().copied());
        injector
    }

    /// The seed, to replay a run.
    pub fn seed(&self) -> u64 {
        self.shared.rng.seed()
    }

    /// Wraps `inner` so its requests go through this injector's rules.
    pub fn wrap(&self, inner: Arc<dyn KvBackend>) -> Arc<dyn KvBackend> {
        Arc::new(FaultInjectingBackend::new(inner, self.clone()))
    }

    /// Adds a rule, tried after the ones already there. Refused when the fault
    /// cannot happen to the operation (`maybe-committed-*` on a begin or read).
    pub fn inject(
        &self,
        operation: Operation,
        fault: Fault,
        trigger: Trigger,
    ) -> Result<(), FaultSpecError> {
        let rule = FaultRule::new(operation, fault, trigger)?;
        self.lock().rules.push(rule);
        Ok(())
    }

    /// Removes every rule (the backend behaves like the inner one again).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// How many faults have fired so far.
    pub fn injected(&self) -> u64 {
        self.lock().stats.injected
    }

    /// The counters.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.shared.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fires(&self, trigger: &mut Trigger) -> bool {
        match trigger {
            Trigger::Next(0) => false,
            Trigger::Next(n) => {
                *n -= 1;
                true
            }
            Trigger::Always => true,
            Trigger::PerMillion(per_million) => {
                self.shared.rng.below(1_000_000) < u64::from(*per_million)
            }
        }
    }

    /// Draws the faults of one `operation` request: waits out the delays that
    /// fire, and returns the outcome fault, if one fires.
    async fn draw(&self, operation: Operation) -> Option<Outcome> {
        let (pause, outcome) = {
            let mut script = self.lock();
            let mut pause = Duration::ZERO;
            let mut outcome = None;
            let mut fired = 0;
            let Script { rules, stats } = &mut *script;
            for rule in rules.iter_mut().filter(|rule| rule.operation == operation) {
                if !self.fires(&mut rule.trigger) {
                    continue;
                }
                fired += 1;
                match rule.fault {
                    Fault::Delay(delay) => pause += delay,
                    Fault::Timeout(delay) => {
                        pause += delay;
                        let applied = self.shared.rng.below(2) == 1;
                        outcome = Some(Outcome::TimedOut { applied });
                        break;
                    }
                    Fault::Unavailable => {
                        outcome = Some(Outcome::Unavailable);
                        break;
                    }
                    Fault::MaybeCommittedApplied => {
                        outcome = Some(Outcome::MaybeCommittedApplied);
                        break;
                    }
                    Fault::MaybeCommittedNotApplied => {
                        outcome = Some(Outcome::MaybeCommittedNotApplied);
                        break;
                    }
                }
            }
            stats.injected += fired;
            rules.retain(|rule| rule.trigger != Trigger::Next(0));
            (pause, outcome)
        };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        outcome
    }

    fn opened(&self) {
        let mut script = self.lock();
        let stats = &mut script.stats;
        stats.transactions += 1;
        stats.open_transactions += 1;
        stats.peak_open_transactions = stats.peak_open_transactions.max(stats.open_transactions);
    }

    fn closed(&self) {
        let mut script = self.lock();
        script.stats.open_transactions = script.stats.open_transactions.saturating_sub(1);
    }
}

fn injected_unavailable(operation: Operation) -> KvError {
    KvError::Unavailable(format!("injected fault on {}", operation.name()))
}

fn injected_timeout(operation: Operation) -> KvError {
    KvError::Unavailable(format!("injected timeout on {}", operation.name()))
}

/// A [`KvBackend`] that injects its [`FaultInjector`]'s faults into `inner`'s
/// requests.
#[derive(Debug)]
pub struct FaultInjectingBackend {
    inner: Arc<dyn KvBackend>,
    injector: FaultInjector,
}

impl FaultInjectingBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn KvBackend>, injector: FaultInjector) -> Self {
        Self { inner, injector }
    }

    /// The injector steering it.
    pub fn injector(&self) -> &FaultInjector {
        &self.injector
    }
}

#[async_trait]
impl KvBackend for FaultInjectingBackend {
    async fn begin(&self) -> Result<Box<dyn KvTransaction>, KvError> {
        match self.injector.draw(Operation::Begin).await {
            None => {}
            Some(Outcome::Unavailable) => return Err(injected_unavailable(Operation::Begin)),
            Some(Outcome::TimedOut { .. }) => return Err(injected_timeout(Operation::Begin)),
            // Refused at injection: `maybe-committed-*` never applies to a begin.
            Some(Outcome::MaybeCommittedApplied | Outcome::MaybeCommittedNotApplied) => {
                return Err(injected_unavailable(Operation::Begin));
            }
        }
        let inner = self.inner.begin().await?;
        self.injector.opened();
        Ok(Box::new(FaultInjectingTransaction {
            inner,
            injector: self.injector.clone(),
            open: AtomicBool::new(true),
        }))
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

#[derive(Debug)]
struct FaultInjectingTransaction {
    inner: Box<dyn KvTransaction>,
    injector: FaultInjector,
    /// Counted in [`FaultStats::open_transactions`] until committed or dropped.
    open: AtomicBool,
}

impl FaultInjectingTransaction {
    async fn before_read(&self) -> Result<(), KvError> {
        match self.injector.draw(Operation::Read).await {
            None => Ok(()),
            Some(Outcome::TimedOut { .. }) => Err(injected_timeout(Operation::Read)),
            Some(
                Outcome::Unavailable
                | Outcome::MaybeCommittedApplied
                | Outcome::MaybeCommittedNotApplied,
            ) => Err(injected_unavailable(Operation::Read)),
        }
    }

    fn close(&self) {
        if self.open.swap(false, Ordering::SeqCst) {
            self.injector.closed();
        }
    }
}

#[async_trait]
impl KvTransaction for FaultInjectingTransaction {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.before_read().await?;
        self.inner.get(key).await
    }

    async fn get_range(
        &self,
        begin: &[u8],
        end: &[u8],
        options: RangeOptions,
    ) -> Result<Vec<KeyValue>, KvError> {
        self.before_read().await?;
        self.inner.get_range(begin, end, options).await
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        self.inner.set(key, value);
    }

    fn clear(&self, key: &[u8]) {
        self.inner.clear(key);
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.inner.clear_range(begin, end);
    }

    fn atomic_add(&self, key: &[u8], delta: i64) {
        self.inner.atomic_add(key, delta);
    }

    async fn commit(&self) -> Result<(), KvError> {
        let lost_reply = || KvError::MaybeCommitted("injected fault: committed, reply lost".into());
        let lost_request =
            || KvError::MaybeCommitted("injected fault: outcome unknown (not applied)".into());
        let result = match self.injector.draw(Operation::Commit).await {
            None => self.inner.commit().await,
            Some(Outcome::Unavailable) => Err(injected_unavailable(Operation::Commit)),
            // A commit that really failed (a conflict) reports its true outcome.
            Some(Outcome::MaybeCommittedApplied | Outcome::TimedOut { applied: true }) => {
                self.inner.commit().await.and_then(|()| Err(lost_reply()))
            }
            Some(Outcome::MaybeCommittedNotApplied | Outcome::TimedOut { applied: false }) => {
                Err(lost_request())
            }
        };
        self.close();
        result
    }
}

impl Drop for FaultInjectingTransaction {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::memory::MemoryBackend;

    fn spec(text: &str) -> FaultSpec {
        text.parse().unwrap()
    }

    #[test]
    fn specs_parse_and_print_back() {
        let text = "commit:unavailable:20000,commit:maybe-committed-applied:10000,\
                    commit:delay=200ms:5000,begin:unavailable:next=3";
        let parsed = spec(text);
        assert_eq!(
            parsed.rules,
            vec![
                FaultRule::new(
                    Operation::Commit,
                    Fault::Unavailable,
                    Trigger::PerMillion(20_000)
                )
                .unwrap(),
                FaultRule::new(
                    Operation::Commit,
                    Fault::MaybeCommittedApplied,
                    Trigger::PerMillion(10_000)
                )
                .unwrap(),
                FaultRule::new(
                    Operation::Commit,
                    Fault::Delay(Duration::from_millis(200)),
                    Trigger::PerMillion(5_000)
                )
                .unwrap(),
                FaultRule::new(Operation::Begin, Fault::Unavailable, Trigger::Next(3)).unwrap(),
            ]
        );
        assert_eq!(spec(&parsed.to_string()), parsed);

        let more = spec(
            " read:timeout=1s:always , commit:maybe-committed-not-applied, \
             read:delay=250us:1000000 ,",
        );
        assert_eq!(
            more.to_string(),
            "read:timeout=1s:always,commit:maybe-committed-not-applied:always,\
             read:delay=250us:1000000"
        );
        assert!(spec("").is_empty());
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        for (text, expected) in [
            ("commit", "expected operation:fault[:trigger]"),
            (
                "commit:unavailable:5:6",
                "expected operation:fault[:trigger]",
            ),
            ("write:unavailable", "unknown operation \"write\""),
            ("commit:boom", "unknown fault \"boom\""),
            ("commit:delay=5", "unknown unit \"\""),
            ("commit:delay=fast", "expected a whole number and a unit"),
            ("commit:timeout=3h", "unknown unit \"h\""),
            ("commit:unavailable:often", "unknown trigger \"often\""),
            (
                "commit:unavailable:next=0",
                "next=0: expected a count of 1 or more",
            ),
            ("commit:unavailable:last=3", "unknown trigger \"last=3\""),
            ("commit:unavailable:1000001", "more than always"),
            ("read:maybe-committed-applied", "happens only to commits"),
            (
                "begin:maybe-committed-not-applied:next=1",
                "happens only to commits",
            ),
        ] {
            let error = text.parse::<FaultSpec>().unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{text}: {error} (wanted {expected:?})"
            );
        }
        // Through the crate's error type: invalid, naming the rule.
        let error: crate::MetadataError = "commit:unavailable,commit:boom"
            .parse::<FaultSpec>()
            .unwrap_err()
            .into();
        assert_eq!(error.kind(), crate::ErrorKind::Invalid);
        assert!(error.to_string().contains("\"commit:boom\""), "{error}");
    }

    async fn value(backend: &dyn KvBackend, key: &[u8]) -> Option<Vec<u8>> {
        let txn = backend.begin().await.unwrap();
        let value = txn.get(key).await.unwrap();
        txn.commit().await.unwrap();
        value
    }

    #[tokio::test]
    async fn commit_faults_apply_or_not_as_they_say() {
        let memory: Arc<dyn KvBackend> = Arc::new(MemoryBackend::new());
        let injector = FaultInjector::new(1);
        let backend = injector.wrap(memory.clone());
        let cases = [
            (Fault::Unavailable, false, "unavailable"),
            (Fault::MaybeCommittedApplied, true, "outcome unknown"),
            (Fault::MaybeCommittedNotApplied, false, "outcome unknown"),
        ];
        for (index, (fault, applies, error)) in cases.into_iter().enumerate() {
            let key = [index as u8];
            injector
                .inject(Operation::Commit, fault, Trigger::Next(1))
                .unwrap();
            let txn = backend.begin().await.unwrap();
            txn.set(&key, b"v");
            let result = txn.commit().await.unwrap_err();
            assert!(result.to_string().contains(error), "{fault:?}: {result}");
            assert_eq!(
                result.is_certainly_not_committed(),
                fault == Fault::Unavailable
            );
            assert_eq!(value(&*memory, &key).await.is_some(), applies, "{fault:?}");
        }
        // The rules were one-shot: the next commit goes through.
        let txn = backend.begin().await.unwrap();
        txn.set(b"after", b"v");
        txn.commit().await.unwrap();
        assert_eq!(injector.injected(), 3);
    }

    #[tokio::test]
    async fn begin_and_read_faults_fail_before_the_backend() {
        let injector = FaultInjector::with_spec(
            &spec("begin:unavailable:next=3,read:unavailable:next=1,read:timeout=1ms:next=1"),
            1,
        );
        let backend = injector.wrap(Arc::new(MemoryBackend::new()));
        for _ in 0..3 {
            let error = backend.begin().await.unwrap_err();
            assert!(matches!(error, KvError::Unavailable(_)), "{error}");
        }
        let txn = backend.begin().await.unwrap();
        for _ in 0..2 {
            let error = txn.get(b"k").await.unwrap_err();
            assert!(matches!(error, KvError::Unavailable(_)), "{error}");
        }
        assert_eq!(txn.get(b"k").await.unwrap(), None);
        assert_eq!(
            txn.get_range(b"a", b"z", RangeOptions::default())
                .await
                .unwrap(),
            vec![]
        );
        assert_eq!(injector.stats().injected, 5);
        // A maybe-committed fault cannot be attached to a begin or a read.
        assert!(
            injector
                .inject(
                    Operation::Read,
                    Fault::MaybeCommittedApplied,
                    Trigger::Always
                )
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delays_pause_the_request_and_compose_with_outcomes() {
        let memory: Arc<dyn KvBackend> = Arc::new(MemoryBackend::new());
        let injector = FaultInjector::with_spec(
            &spec("commit:delay=200ms:next=1,commit:maybe-committed-applied:next=1"),
            1,
        );
        let backend = injector.wrap(memory.clone());
        let txn = backend.begin().await.unwrap();
        txn.set(b"k", b"v");
        let started = tokio::time::Instant::now();
        // A delay then a lost reply: a commit that timed out after applying.
        let error = txn.commit().await.unwrap_err();
        assert!(matches!(error, KvError::MaybeCommitted(_)), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(
            value(&*memory, b"k").await.as_deref(),
            Some(b"v".as_slice())
        );
        assert_eq!(injector.injected(), 2);
    }

    #[tokio::test]
    async fn open_transactions_are_counted_until_commit_or_drop() {
        let injector = FaultInjector::new(1);
        let backend = injector.wrap(Arc::new(MemoryBackend::new()));
        let first = backend.begin().await.unwrap();
        let second = backend.begin().await.unwrap();
        let third = backend.begin().await.unwrap();
        assert_eq!(
            (
                injector.stats().open_transactions,
                injector.stats().peak_open_transactions
            ),
            (3, 3)
        );
        first.commit().await.unwrap();
        drop(first);
        drop(second);
        assert_eq!(injector.stats().open_transactions, 1);
        third.commit().await.unwrap();
        drop(third);
        let stats = injector.stats();
        assert_eq!(
            (
                stats.transactions,
                stats.open_transactions,
                stats.peak_open_transactions
            ),
            (3, 0, 3)
        );
    }

    #[tokio::test]
    async fn random_faults_replay_with_the_same_seed() {
        async fn outcomes(seed: u64) -> Vec<bool> {
            let injector = FaultInjector::with_spec(&spec("commit:unavailable:300000"), seed);
            let backend = injector.wrap(Arc::new(MemoryBackend::new()));
            let mut outcomes = Vec::new();
            for i in 0..64u8 {
                let txn = backend.begin().await.unwrap();
                txn.set(&[i], b"v");
                outcomes.push(txn.commit().await.is_ok());
            }
            outcomes
        }
        let first = outcomes(7).await;
        assert_eq!(first, outcomes(7).await);
        assert_ne!(first, outcomes(8).await);
        let failures = first.iter().filter(|ok| !**ok).count();
        assert!((5..40).contains(&failures), "{failures} of 64 failed");
    }
}
