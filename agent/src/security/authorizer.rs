//! The ACL authorizer: Kafka's `StandardAuthorizer` rules over the ACL
//! bindings in metadata ([`fjord_metadata::AclBinding`]), cached in each agent.
//!
//! # Parts
//!
//! - [`AuthorizerSettings`]: `authorizer.class.name` (none or ACLs),
//!   `super.users`, `allow.everyone.if.no.acl.found`.
//! - [`AclIndex`]: every binding of one ACL version, indexed by resource type
//!   and pattern, and the rules ([`AclIndex::authorize`]) — pure, so the rules
//!   are tested without a store.
//! - [`Authorizer`]: the agent's cache of the bindings. A request takes the
//!   current index ([`Authorizer::session`]); an index older than
//!   [`REFRESH_INTERVAL`] is checked against the ACL version in metadata (one
//!   key read) and re-read only when the version moved. The agent's own ACL
//!   changes refresh it at once ([`Authorizer::refresh`]), so a client sees
//!   its own `CreateAcls` in its next request; another agent's changes within
//!   about [`REFRESH_INTERVAL`].
//! - [`Session`]: one request's view: who asks, from where, against which
//!   index; one check per resource type ([`Session::topic`],
//!   [`Session::group`], [`Session::cluster`], [`Session::transactional_id`]),
//!   each failing with [`Denied`], which `kafka::errors` maps to Kafka's
//!   `*_AUTHORIZATION_FAILED` codes.
//!
//! # Rules (Kafka's)
//!
//! 1. A super user (`super.users`) may do everything.
//! 2. The bindings that apply to a resource are the literal ones of its name,
//!    the literal ones named `*`, and the prefixed ones whose prefix starts its
//!    name; of those, the ones for the principal or `User:*`, from the client's
//!    host or `*`.
//! 3. A `DENY` of the operation (or of `ALL`) wins over any `ALLOW`.
//! 4. An `ALLOW` of the operation or of `ALL` allows it; `DESCRIBE` is also
//!    allowed by `READ`, `WRITE`, `DELETE` and `ALTER`, and `DESCRIBE_CONFIGS`
//!    by `ALTER_CONFIGS`.
//! 5. Otherwise the request is denied — unless no binding at all (of any
//!    principal) applies to the resource and `allow.everyone.if.no.acl.found`
//!    is set.
//!
//! # Invariants
//!
//! - With the authorizer off (the default) every check passes and nothing is
//!   read from metadata per request.
//! - Until the bindings were read once, only super users pass (Kafka's
//!   authorizer is not ready either); a failed refresh keeps the bindings read
//!   before, and is retried at the next interval.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_metadata::{
    AclBinding, AclOperation, AclPermission, AclSet, MetadataError, MetadataStore, PatternType,
    ResourceType, WILDCARD, WILDCARD_PRINCIPAL,
};

use super::Principal;

pub use fjord_metadata::CLUSTER_RESOURCE_NAME;

/// How long cached bindings are used before the ACL version is checked again.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(500);

/// Which authorizer the agent runs (Kafka's `authorizer.class.name`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum AuthorizerKind {
    /// None: every request is allowed, and the ACL APIs answer
    /// `SECURITY_DISABLED`.
    #[default]
    None,
    /// ACLs in metadata (Kafka's `StandardAuthorizer`).
    Acl,
}

/// The authorizer's settings, named after Kafka's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerSettings {
    /// `authorizer.class.name`.
    pub kind: AuthorizerKind,
    /// `super.users`: principals (`User:admin`) allowed everything.
    pub super_users: BTreeSet<String>,
    /// `allow.everyone.if.no.acl.found`: a resource no binding applies to is
    /// open to everyone (default false: denied).
    pub allow_everyone_if_no_acl_found: bool,
}

/// Parses `super.users`: principals separated by semicolons
/// (`User:admin;User:ops`), blanks around them ignored.
pub fn parse_super_users(list: &str) -> Result<BTreeSet<String>, String> {
    let mut users = BTreeSet::new();
    for entry in list.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                users.insert(entry.to_owned());
            }
            _ => {
                return Err(format!(
                    "{entry:?} is not a principal: expected <type>:<name>, as User:admin"
                ));
            }
        }
    }
    Ok(users)
}

/// The operations Kafka reports as authorized operations of a resource type
/// (its `AclEntry.supportedOperations`).
pub fn supported_operations(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
    }
}

/// The bit field of `operations` (bit `code` set for each), as Kafka's
/// `*_authorized_operations` fields carry them.
pub fn operations_bits(operations: impl IntoIterator<Item = AclOperation>) -> i32 {
    operations
        .into_iter()
        .fold(0, |bits, op| bits | (1 << op.code()))
}

/// A check that failed: `principal` may not do `operation` to the resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{principal} is not authorized to {operation:?} {resource_type:?} {name:?}")]
pub struct Denied {
    /// The kind of resource (it decides the Kafka error code).
    pub resource_type: ResourceType,
    /// The resource's name.
    pub name: String,
    /// The operation refused.
    pub operation: AclOperation,
    /// Who asked.
    pub principal: String,
}

/// One binding as the rules read it: who, from where, what, allowed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    principal: String,
    host: String,
    operation: AclOperation,
    permission: AclPermission,
}

impl Entry {
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
    }

    /// Whether this entry denies `wanted` (a `DENY` of it or of `ALL`).
    fn denies(&self, wanted: AclOperation) -> bool {
        self.permission == AclPermission::Deny
            && (self.operation == wanted || self.operation == AclOperation::All)
    }

    /// Whether this entry allows `wanted`, implications included.
    fn allows(&self, wanted: AclOperation) -> bool {
        self.permission == AclPermission::Allow && implies(self.operation, wanted)
    }
}

/// Whether an `ALLOW` of `granted` allows `wanted` (Kafka's implied operations).
fn implies(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    granted == All
        || granted == wanted
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

/// The bindings of one resource type, by pattern and name.
#[derive(Debug, Default)]
struct TypeAcls {
    /// Literal bindings by name (`*` included).
    literal: HashMap<String, Vec<Entry>>,
    /// Prefixed bindings by prefix.
    prefixed: HashMap<String, Vec<Entry>>,
}

impl TypeAcls {
    /// Every entry that applies to a resource named `name` (rule 2, before
    /// principals and hosts are looked at).
    fn applying<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        let literal = self.literal.get(name).into_iter().flatten();
        let wildcard = (name != WILDCARD)
            .then(|| self.literal.get(WILDCARD))
            .flatten()
            .into_iter()
            .flatten();
        let prefixed = name
            .char_indices()
            .map(|(at, c)| at + c.len_utf8())
            .filter_map(|end| self.prefixed.get(&name[..end]))
            .flatten();
        literal.chain(wildcard).chain(prefixed)
    }
}

/// Every binding of one ACL version, indexed for the rules.
#[derive(Debug, Default)]
pub struct AclIndex {
    /// The ACL version the bindings are at (`None`: never read).
    version: Option<i64>,
    by_type: HashMap<ResourceType, TypeAcls>,
}

impl AclIndex {
    /// The index of `set`.
    pub fn new(set: &AclSet) -> Self {
        let mut index = Self::from_bindings(&set.bindings);
        index.version = Some(set.version);
        index
    }

    /// The index of `bindings` (at no version).
    pub fn from_bindings(bindings: &[AclBinding]) -> Self {
        let mut by_type: HashMap<ResourceType, TypeAcls> = HashMap::new();
        for binding in bindings {
            let acls = by_type.entry(binding.resource_type).or_default();
            let by_name = match binding.pattern_type {
                PatternType::Literal => &mut acls.literal,
                PatternType::Prefixed => &mut acls.prefixed,
            };
            by_name
                .entry(binding.resource_name.clone())
                .or_default()
                .push(Entry {
                    principal: binding.principal.clone(),
                    host: binding.host.clone(),
                    operation: binding.operation,
                    permission: binding.permission,
                });
        }
        Self {
            version: Some(0),
            by_type,
        }
    }

    /// An index of nothing that was never read: only super users pass.
    fn unloaded() -> Self {
        Self::default()
    }

    /// The ACL version the bindings are at, if they were read.
    pub fn version(&self) -> Option<i64> {
        self.version
    }

    /// Whether `principal` (as Kafka writes it, `User:alice`) connecting from
    /// `host` (an address, without Kafka's leading `/`) may do `operation` to
    /// the resource `resource_type` named `name`, by the rules in the module
    /// docs.
    pub fn authorize(
        &self,
        settings: &AuthorizerSettings,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if settings.super_users.contains(principal) {
            return true;
        }
        if self.version.is_none() {
            return false;
        }
        let Some(acls) = self.by_type.get(&resource_type) else {
            return settings.allow_everyone_if_no_acl_found;
        };
        let mut any_binding = false;
        let mut allowed = false;
        for entry in acls.applying(name) {
            any_binding = true;
            if !entry.applies_to(principal, host) {
                continue;
            }
            if entry.denies(operation) {
                return false;
            }
            allowed |= entry.allows(operation);
        }
        allowed || (!any_binding && settings.allow_everyone_if_no_acl_found)
    }

    /// Whether `principal` may do `operation` to some resource of
    /// `resource_type` (Kafka's `authorizeByResourceType`, which
    /// `InitProducerId` asks for "any topic WRITE"): a super user may; a
    /// literal `*` `DENY` refuses; otherwise an `ALLOW` of the operation (or
    /// `ALL`, without implications) for a name that no `DENY` of the same
    /// literal name or of a prefix of it covers.
    pub fn authorize_any(
        &self,
        settings: &AuthorizerSettings,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        // As Kafka does: a check of one made-up name lets super users (and
        // everyone, where no binding applies and that is allowed) through.
        if self.authorize(
            settings,
            principal,
            host,
            operation,
            resource_type,
            "hardcode",
        ) {
            return true;
        }
        let Some(acls) = self.by_type.get(&resource_type) else {
            return false;
        };
        let relevant = |entry: &Entry| {
            entry.applies_to(principal, host)
                && (entry.operation == operation || entry.operation == AclOperation::All)
        };
        let has = |map: &HashMap<String, Vec<Entry>>, name: &str, permission: AclPermission| {
            map.get(name).is_some_and(|entries| {
                entries
                    .iter()
                    .any(|e| e.permission == permission && relevant(e))
            })
        };
        if has(&acls.literal, WILDCARD, AclPermission::Deny) {
            return false;
        }
        if has(&acls.literal, WILDCARD, AclPermission::Allow) {
            return true;
        }
        let denied_by_prefix = |name: &str| {
            name.char_indices()
                .map(|(at, c)| at + c.len_utf8())
                .any(|end| has(&acls.prefixed, &name[..end], AclPermission::Deny))
        };
        let literal_allowed = acls.literal.keys().any(|name| {
            name != WILDCARD
                && has(&acls.literal, name, AclPermission::Allow)
                && !has(&acls.literal, name, AclPermission::Deny)
                && !denied_by_prefix(name)
        });
        literal_allowed
            || acls.prefixed.keys().any(|prefix| {
                has(&acls.prefixed, prefix, AclPermission::Allow) && !denied_by_prefix(prefix)
            })
    }
}

/// The agent's authorizer: its settings, and the bindings of the latest ACL
/// version it read.
#[derive(Debug)]
pub struct Authorizer {
    settings: AuthorizerSettings,
    store: MetadataStore,
    cache: Mutex<Cached>,
    /// Held while the bindings are re-read, so one request re-reads them.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Cached {
    index: Arc<AclIndex>,
    /// When the version was last checked (`None`: never).
    checked_at: Option<tokio::time::Instant>,
}

impl Authorizer {
    /// An authorizer with `settings` over the bindings in `store` (none read
    /// yet).
    pub fn new(settings: AuthorizerSettings, store: MetadataStore) -> Self {
        Self {
            settings,
            store,
            cache: Mutex::new(Cached {
                index: Arc::new(AclIndex::unloaded()),
                checked_at: None,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &AuthorizerSettings {
        &self.settings
    }

    /// Whether requests are authorized (`--authorizer acl`).
    pub fn is_enabled(&self) -> bool {
        self.settings.kind == AuthorizerKind::Acl
    }

    /// The metadata store the bindings are in.
    pub fn store(&self) -> &MetadataStore {
        &self.store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the ACL version now and re-reads the bindings if it moved (at
    /// start-up, and after this agent changed them).
    pub async fn refresh(&self) -> Result<(), MetadataError> {
        let _one = self.refreshing.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<(), MetadataError> {
        let cached_version = self.lock().index.version();
        let version = self.store.acls_version().await?;
        if cached_version != Some(version) {
            let set = self.store.all_acls().await?;
            tracing::debug!(
                version = set.version,
                bindings = set.bindings.len(),
                "acls read"
            );
            self.lock().index = Arc::new(AclIndex::new(&set));
        }
        self.lock().checked_at = Some(tokio::time::Instant::now());
        Ok(())
    }

    /// The bindings to check a request against: the cached ones, checked
    /// against the ACL version first when older than [`REFRESH_INTERVAL`]
    /// (while one request re-reads them, the others use the cached ones,
    /// unless none were ever read).
    async fn current(&self) -> Arc<AclIndex> {
        let (index, fresh, never) = {
            let cached = self.lock();
            let fresh = cached
                .checked_at
                .is_some_and(|at| at.elapsed() < REFRESH_INTERVAL);
            (cached.index.clone(), fresh, cached.checked_at.is_none())
        };
        if fresh {
            return index;
        }
        let guard = if never {
            Some(self.refreshing.lock().await)
        } else {
            self.refreshing.try_lock().ok()
        };
        let Some(_one) = guard else {
            return index;
        };
        // Another request may have refreshed while this one waited.
        let refreshed_meanwhile = self
            .lock()
            .checked_at
            .is_some_and(|at| at.elapsed() < REFRESH_INTERVAL);
        if !refreshed_meanwhile && let Err(error) = self.refresh_locked().await {
            tracing::warn!(%error, "re-reading the acls failed; the bindings read before stay in use");
            // Retried at the next interval, not at every request.
            self.lock().checked_at = Some(tokio::time::Instant::now());
        }
        self.lock().index.clone()
    }

    /// The view of one request by `principal` from `client_host` (as Kafka
    /// shows it, `/127.0.0.1`). With the authorizer off, a session that
    /// allows everything, read from nowhere.
    pub async fn session<'a>(&'a self, principal: &Principal, client_host: &'a str) -> Session<'a> {
        if !self.is_enabled() {
            return Session::unrestricted();
        }
        let index = self.current().await;
        Session {
            checker: Some(Checker {
                index,
                settings: &self.settings,
                principal: principal.to_string(),
                host: client_host.strip_prefix('/').unwrap_or(client_host),
            }),
        }
    }
}

/// One request's authorization: who asks, from where, against which bindings.
pub struct Session<'a> {
    /// `None`: no authorizer, everything is allowed.
    checker: Option<Checker<'a>>,
}

struct Checker<'a> {
    index: Arc<AclIndex>,
    settings: &'a AuthorizerSettings,
    principal: String,
    host: &'a str,
}

impl fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.checker {
            None => f.write_str("Session(unrestricted)"),
            Some(checker) => f
                .debug_struct("Session")
                .field("principal", &checker.principal)
                .field("host", &checker.host)
                .field("acl_version", &checker.index.version())
                .finish(),
        }
    }
}

impl Session<'static> {
    /// A session that allows everything (no authorizer).
    pub fn unrestricted() -> Self {
        Session { checker: None }
    }
}

impl Session<'_> {
    /// Whether checks are made at all (an authorizer is configured).
    pub fn is_enforced(&self) -> bool {
        self.checker.is_some()
    }

    /// Whether `operation` on the resource is allowed. A probe, not logged
    /// (Kafka's `logIfDenied = false`): a refusal the client is told of goes
    /// through [`Session::check`].
    pub fn authorize(
        &self,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.checker.as_ref().is_none_or(|c| {
            c.index.authorize(
                c.settings,
                &c.principal,
                c.host,
                operation,
                resource_type,
                name,
            )
        })
    }

    /// Whether `operation` on the cluster is allowed (a probe: not logged).
    pub fn authorize_cluster(&self, operation: AclOperation) -> bool {
        self.authorize(operation, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    }

    /// Whether `operation` is allowed on some resource of `resource_type`
    /// ([`AclIndex::authorize_any`]).
    pub fn authorize_any(&self, operation: AclOperation, resource_type: ResourceType) -> bool {
        self.checker.as_ref().is_none_or(|c| {
            c.index
                .authorize_any(c.settings, &c.principal, c.host, operation, resource_type)
        })
    }

    /// [`Session::authorize`], failing with [`Denied`].
    pub fn check(
        &self,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Result<(), Denied> {
        if self.authorize(operation, resource_type, name) {
            return Ok(());
        }
        let denied = Denied {
            resource_type,
            name: name.to_owned(),
            operation,
            principal: self
                .checker
                .as_ref()
                .map(|c| c.principal.clone())
                .unwrap_or_default(),
        };
        // As Kafka's authorizer logger, every refusal (here at debug).
        tracing::debug!(
            principal = %denied.principal,
            host = self.checker.as_ref().map_or("", |c| c.host),
            ?operation,
            ?resource_type,
            resource = name,
            "authorization denied"
        );
        Err(denied)
    }

    /// `operation` on topic `name`.
    pub fn topic(&self, operation: AclOperation, name: &str) -> Result<(), Denied> {
        self.check(operation, ResourceType::Topic, name)
    }

    /// `operation` on group `group_id`.
    pub fn group(&self, operation: AclOperation, group_id: &str) -> Result<(), Denied> {
        self.check(operation, ResourceType::Group, group_id)
    }

    /// `operation` on the cluster.
    pub fn cluster(&self, operation: AclOperation) -> Result<(), Denied> {
        self.check(operation, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    }

    /// `operation` on transactional id `id`.
    pub fn transactional_id(&self, operation: AclOperation, id: &str) -> Result<(), Denied> {
        self.check(operation, ResourceType::TransactionalId, id)
    }

    /// The operations of the resource's type this session may do, as Kafka's
    /// `*_authorized_operations` bit fields carry them (every supported one
    /// without an authorizer, as Kafka reports).
    pub fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        operations_bits(
            supported_operations(resource_type)
                .iter()
                .copied()
                .filter(|op| self.authorize(*op, resource_type, name)),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use AclOperation::*;
    use AclPermission::{Allow, Deny};
    use PatternType::{Literal, Prefixed};
    use ResourceType::{Cluster, Group, Topic, TransactionalId};

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        host: &str,
        operation: AclOperation,
        permission: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: host.into(),
            operation,
            permission,
        }
    }

    fn topic_acl(
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: AclOperation,
        permission: AclPermission,
    ) -> AclBinding {
        acl(Topic, name, pattern, principal, "*", op, permission)
    }

    fn settings() -> AuthorizerSettings {
        AuthorizerSettings {
            kind: AuthorizerKind::Acl,
            super_users: ["User:admin".to_owned()].into(),
            allow_everyone_if_no_acl_found: false,
        }
    }

    /// One check: (who, host, operation, resource type, name) and whether it
    /// passes.
    type Case<'a> = (&'a str, &'a str, AclOperation, ResourceType, &'a str, bool);

    fn run(bindings: &[AclBinding], settings: &AuthorizerSettings, cases: &[Case<'_>]) {
        let index = AclIndex::from_bindings(bindings);
        for (number, (principal, host, op, rt, name, expected)) in cases.iter().enumerate() {
            assert_eq!(
                index.authorize(settings, principal, host, *op, *rt, name),
                *expected,
                "case {number}: {principal} from {host} {op:?} {rt:?} {name:?}"
            );
        }
    }

    #[test]
    fn literal_prefixed_and_wildcard_resources() {
        let bindings = [
            topic_acl("orders", Literal, "User:alice", Read, Allow),
            topic_acl("logs-", Prefixed, "User:alice", Write, Allow),
            topic_acl("*", Literal, "User:carol", Describe, Allow),
            acl(Group, "app", Literal, "User:alice", "*", Read, Allow),
        ];
        let cases: &[Case<'_>] = &[
            ("User:alice", "1.2.3.4", Read, Topic, "orders", true),
            // Another name, another type, another operation.
            ("User:alice", "1.2.3.4", Read, Topic, "orders2", false),
            ("User:alice", "1.2.3.4", Read, Group, "orders", false),
            ("User:alice", "1.2.3.4", Write, Topic, "orders", false),
            // Prefixed: every name starting with the prefix, not the ones
            // that merely contain it or are shorter.
            ("User:alice", "1.2.3.4", Write, Topic, "logs-", true),
            ("User:alice", "1.2.3.4", Write, Topic, "logs-app", true),
            ("User:alice", "1.2.3.4", Write, Topic, "logs", false),
            ("User:alice", "1.2.3.4", Write, Topic, "app-logs-x", false),
            // A literal `*` applies to every name of its type.
            ("User:carol", "1.2.3.4", Describe, Topic, "anything", true),
            ("User:carol", "1.2.3.4", Describe, Group, "anything", false),
            // Others have nothing.
            ("User:bob", "1.2.3.4", Read, Topic, "orders", false),
            ("User:alice", "1.2.3.4", Read, Group, "app", true),
        ];
        run(&bindings, &settings(), cases);
    }

    #[test]
    fn deny_beats_allow_whatever_pattern_grants_or_denies() {
        let bindings = [
            // Allowed by prefix, denied literally.
            topic_acl("team-", Prefixed, "User:alice", Read, Allow),
            topic_acl("team-secret", Literal, "User:alice", Read, Deny),
            // Allowed literally, denied by prefix.
            topic_acl("pay-orders", Literal, "User:alice", Write, Allow),
            topic_acl("pay-", Prefixed, "User:alice", Write, Deny),
            // Allowed by wildcard, denied by a wildcard principal.
            topic_acl("*", Literal, "User:alice", Describe, Allow),
            topic_acl("hidden", Literal, "User:*", Describe, Deny),
            // A DENY of ALL denies every operation; a DENY of one denies only it.
            topic_acl("vault", Literal, "User:alice", All, Allow),
            topic_acl("vault", Literal, "User:alice", Delete, Deny),
            topic_acl("locked", Literal, "User:alice", Read, Allow),
            topic_acl("locked", Literal, "User:alice", All, Deny),
        ];
        let cases: &[Case<'_>] = &[
            ("User:alice", "h", Read, Topic, "team-a", true),
            ("User:alice", "h", Read, Topic, "team-secret", false),
            ("User:alice", "h", Write, Topic, "pay-orders", false),
            ("User:alice", "h", Describe, Topic, "visible", true),
            ("User:alice", "h", Describe, Topic, "hidden", false),
            ("User:alice", "h", Read, Topic, "vault", true),
            ("User:alice", "h", Delete, Topic, "vault", false),
            ("User:alice", "h", Read, Topic, "locked", false),
            // A DENY of READ does not deny DESCRIBE, which READ would imply.
            ("User:alice", "h", Describe, Topic, "team-secret", true),
        ];
        run(&bindings, &settings(), cases);
    }

    #[test]
    fn principals_and_hosts_match_exactly_or_by_wildcard() {
        let bindings = [
            acl(Topic, "t", Literal, "User:*", "10.0.0.1", Read, Allow),
            acl(Topic, "t", Literal, "User:alice", "*", Write, Allow),
            acl(Topic, "t", Literal, "User:bob", "10.0.0.2", Write, Allow),
        ];
        let cases: &[Case<'_>] = &[
            ("User:anyone", "10.0.0.1", Read, Topic, "t", true),
            ("User:anyone", "10.0.0.9", Read, Topic, "t", false),
            ("User:alice", "10.0.0.9", Write, Topic, "t", true),
            ("User:bob", "10.0.0.2", Write, Topic, "t", true),
            ("User:bob", "10.0.0.3", Write, Topic, "t", false),
            // Names are compared whole.
            ("User:alice2", "10.0.0.9", Write, Topic, "t", false),
        ];
        run(&bindings, &settings(), cases);
    }

    #[test]
    fn operations_imply_describe_and_describe_configs_and_all_covers_all() {
        let bindings = [
            topic_acl("r", Literal, "User:u", Read, Allow),
            topic_acl("w", Literal, "User:u", Write, Allow),
            topic_acl("d", Literal, "User:u", Delete, Allow),
            topic_acl("a", Literal, "User:u", Alter, Allow),
            topic_acl("c", Literal, "User:u", Create, Allow),
            topic_acl("ac", Literal, "User:u", AlterConfigs, Allow),
            topic_acl("all", Literal, "User:u", All, Allow),
        ];
        let cases: &[Case<'_>] = &[
            ("User:u", "h", Describe, Topic, "r", true),
            ("User:u", "h", Describe, Topic, "w", true),
            ("User:u", "h", Describe, Topic, "d", true),
            ("User:u", "h", Describe, Topic, "a", true),
            // CREATE implies nothing else.
            ("User:u", "h", Describe, Topic, "c", false),
            ("User:u", "h", DescribeConfigs, Topic, "ac", true),
            ("User:u", "h", Describe, Topic, "ac", false),
            // Implications go one way only.
            ("User:u", "h", Read, Topic, "w", false),
            ("User:u", "h", AlterConfigs, Topic, "r", false),
            ("User:u", "h", Read, Topic, "all", true),
            ("User:u", "h", AlterConfigs, Topic, "all", true),
            ("User:u", "h", ClusterAction, Topic, "all", true),
        ];
        run(&bindings, &settings(), cases);
    }

    #[test]
    fn super_users_pass_even_denies_and_before_anything_is_read() {
        let bindings = [topic_acl("t", Literal, "User:admin", All, Deny)];
        let cases: &[Case<'_>] = &[
            ("User:admin", "h", Write, Topic, "t", true),
            ("User:admin", "h", Alter, Cluster, "kafka-cluster", true),
            ("User:other", "h", Write, Topic, "t", false),
        ];
        run(&bindings, &settings(), cases);
        let unloaded = AclIndex::unloaded();
        let s = AuthorizerSettings {
            allow_everyone_if_no_acl_found: true,
            ..settings()
        };
        assert!(unloaded.authorize(&s, "User:admin", "h", Read, Topic, "t"));
        assert!(!unloaded.authorize(&s, "User:other", "h", Read, Topic, "t"));
    }

    #[test]
    fn no_acl_found_is_denied_unless_allowed_for_everyone() {
        let bindings = [
            topic_acl("guarded", Literal, "User:alice", Read, Allow),
            topic_acl("pre-", Prefixed, "User:alice", Read, Allow),
        ];
        let open = AuthorizerSettings {
            allow_everyone_if_no_acl_found: true,
            ..settings()
        };
        // Deny by default.
        run(
            &bindings,
            &settings(),
            &[
                ("User:bob", "h", Read, Topic, "free", false),
                ("User:bob", "h", Read, Group, "g", false),
            ],
        );
        // Open where no binding applies — of any principal — and only there.
        run(
            &bindings,
            &open,
            &[
                ("User:bob", "h", Read, Topic, "free", true),
                ("User:bob", "h", Write, Group, "g", true),
                ("User:bob", "h", Read, Topic, "guarded", false),
                ("User:bob", "h", Read, Topic, "pre-x", false),
                ("User:alice", "h", Read, Topic, "guarded", true),
                ("User:alice", "h", Write, Topic, "guarded", false),
            ],
        );
    }

    #[test]
    fn authorize_any_follows_kafkas_by_resource_type_rules() {
        let s = settings();
        let check = |bindings: &[AclBinding], principal: &str| {
            AclIndex::from_bindings(bindings).authorize_any(&s, principal, "h", Write, Topic)
        };
        // Nothing: denied; super users: allowed.
        assert!(!check(&[], "User:u"));
        assert!(check(&[], "User:admin"));
        // A literal or prefixed ALLOW anywhere: allowed.
        assert!(check(
            &[topic_acl("t", Literal, "User:u", Write, Allow)],
            "User:u"
        ));
        assert!(check(
            &[topic_acl("p-", Prefixed, "User:*", All, Allow)],
            "User:u"
        ));
        // ...unless a DENY covers it: the same literal, a prefix of it, or `*`.
        assert!(!check(
            &[
                topic_acl("t", Literal, "User:u", Write, Allow),
                topic_acl("t", Literal, "User:u", Write, Deny),
            ],
            "User:u"
        ));
        assert!(!check(
            &[
                topic_acl("p-x", Prefixed, "User:u", Write, Allow),
                topic_acl("p-", Prefixed, "User:u", Write, Deny),
            ],
            "User:u"
        ));
        assert!(!check(
            &[
                topic_acl("*", Literal, "User:u", Write, Allow),
                topic_acl("*", Literal, "User:u", All, Deny),
            ],
            "User:u"
        ));
        // A DENY of another name leaves the ALLOW.
        assert!(check(
            &[
                topic_acl("a", Literal, "User:u", Write, Allow),
                topic_acl("b", Literal, "User:u", Write, Deny),
            ],
            "User:u"
        ));
        // Implications do not count here: READ is not WRITE.
        assert!(!check(
            &[topic_acl("t", Literal, "User:u", Read, Allow)],
            "User:u"
        ));
    }

    #[test]
    fn authorized_operations_report_what_is_allowed() {
        let bindings = [
            acl(
                Cluster,
                CLUSTER_RESOURCE_NAME,
                Literal,
                "User:u",
                "*",
                Describe,
                Allow,
            ),
            acl(TransactionalId, "tx", Literal, "User:u", "*", Write, Allow),
        ];
        let s = settings();
        let index = Arc::new(AclIndex::from_bindings(&bindings));
        let session = Session {
            checker: Some(Checker {
                index,
                settings: &s,
                principal: "User:u".into(),
                host: "h",
            }),
        };
        assert_eq!(
            session.authorized_operations(Cluster, CLUSTER_RESOURCE_NAME),
            1 << Describe.code()
        );
        assert_eq!(
            session.authorized_operations(TransactionalId, "tx"),
            (1 << Describe.code()) | (1 << Write.code())
        );
        assert!(session.cluster(Describe).is_ok());
        let denied = session.cluster(Alter).unwrap_err();
        assert_eq!(denied.resource_type, Cluster);
        assert!(denied.to_string().contains("User:u"), "{denied}");
        // Without an authorizer every supported operation is reported.
        assert_eq!(
            Session::unrestricted().authorized_operations(Topic, "t"),
            operations_bits(supported_operations(Topic).iter().copied())
        );
    }

    #[test]
    fn super_users_parse_from_a_semicolon_list() {
        let users = parse_super_users(" User:admin ; User:ops;").unwrap();
        assert_eq!(
            users.into_iter().collect::<Vec<_>>(),
            vec!["User:admin".to_owned(), "User:ops".to_owned()]
        );
        assert!(parse_super_users("").unwrap().is_empty());
        assert!(parse_super_users("admin").is_err());
        assert!(parse_super_users("User:").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_rereads_when_the_version_moves_and_its_own_changes_at_once() {
        let store = fjord_metadata::open("memory://").await.unwrap();
        let authorizer = Authorizer::new(settings(), store.clone());
        let alice = Principal::user("alice");
        let read = topic_acl("t", Literal, "User:alice", Read, Allow);
        {
            let session = authorizer.session(&alice, "/127.0.0.1").await;
            assert!(session.is_enforced());
            assert!(session.topic(Read, "t").is_err());
        }
        // A change by someone else: seen once the interval has passed.
        store
            .create_acls(std::slice::from_ref(&read))
            .await
            .unwrap();
        assert!(
            authorizer
                .session(&alice, "/h")
                .await
                .topic(Read, "t")
                .is_err()
        );
        tokio::time::advance(REFRESH_INTERVAL).await;
        assert!(
            authorizer
                .session(&alice, "/h")
                .await
                .topic(Read, "t")
                .is_ok()
        );
        // A change this agent makes: seen at once after `refresh`.
        store
            .delete_acls(&[fjord_metadata::AclBindingFilter::any()])
            .await
            .unwrap();
        authorizer.refresh().await.unwrap();
        assert!(
            authorizer
                .session(&alice, "/h")
                .await
                .topic(Read, "t")
                .is_err()
        );
        // Hosts lose Kafka's leading slash.
        store
            .create_acls(&[acl(
                Topic,
                "t",
                Literal,
                "User:alice",
                "127.0.0.1",
                Read,
                Allow,
            )])
            .await
            .unwrap();
        authorizer.refresh().await.unwrap();
        assert!(
            authorizer
                .session(&alice, "/127.0.0.1")
                .await
                .topic(Read, "t")
                .is_ok()
        );
        assert!(
            authorizer
                .session(&alice, "/127.0.0.2")
                .await
                .topic(Read, "t")
                .is_err()
        );
    }

    #[tokio::test]
    async fn without_an_authorizer_everything_passes_and_nothing_is_read() {
        // A store that is never opened would fail any read: a faulty one.
        let spec: fjord_metadata::kv::fault::FaultSpec =
            "begin:unavailable:always".parse().unwrap();
        let (store, faults) = fjord_metadata::open_with_faults("memory://", &spec, 1)
            .await
            .unwrap();
        let authorizer = Authorizer::new(AuthorizerSettings::default(), store);
        let session = authorizer.session(&Principal::anonymous(), "").await;
        assert!(!session.is_enforced());
        assert!(session.cluster(Alter).is_ok());
        assert!(session.authorize_any(Write, Topic));
        assert_eq!(faults.injected(), 0);
    }
}
