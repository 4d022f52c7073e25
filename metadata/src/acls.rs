//! ACL bindings, as Kafka's authorizers store them: who ([`AclBinding::principal`],
//! from which [`AclBinding::host`]) may or may not ([`AclPermission`]) do what
//! ([`AclOperation`]) to which resources ([`ResourceType`], a name and a
//! [`PatternType`]).
//!
//! Each binding is one key, `("acl", resource type, pattern type, resource
//! name, principal, host, operation, permission)`, whose value is the binding
//! itself (a versioned record, so its format can evolve). The key is the whole
//! binding, so creating a binding twice stores it once.
//!
//! | the agent... | operation |
//! |---|---|
//! | creates bindings (`CreateAcls`), in one transaction | [`MetadataStore::create_acls`] |
//! | lists the bindings a filter matches (`DescribeAcls`) | [`MetadataStore::describe_acls`] |
//! | deletes the bindings each filter matches (`DeleteAcls`), in one transaction | [`MetadataStore::delete_acls`] |
//! | caches every binding and re-reads them when they changed | [`MetadataStore::acls_version`], [`MetadataStore::all_acls`] |
//!
//! # Invariants
//!
//! - Every transaction that adds or removes a binding also bumps the ACL
//!   version counter (`("counter", "acl_version")`), so an agent holding the
//!   bindings of one version knows it holds every binding until the version
//!   moves; one read of the counter tells it whether to re-read them.
//! - A stored binding is valid ([`AclBinding::validate`]): the store refuses
//!   a batch with an invalid binding as a whole.
//! - The enums' codes are Kafka's (`ResourceType.code()` etc.) and are part of
//!   the key; the record's enums are serialized by variant index, so new
//!   variants go at the end.
//!
//! Filters ([`AclBindingFilter`]) follow Kafka's `AclBindingFilter`: a field
//! left out matches anything; a resource name is compared exactly, except
//! under [`PatternFilter::Match`], which matches the bindings that would apply
//! to a resource of that name (literal ones of the name or `*`, prefixed ones
//! whose prefix starts the name).

use serde::{Deserialize, Serialize};

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::kv::{RangeOptions, decode_counter};
use crate::store::{MetadataStore, write};

/// The one name of the cluster resource (Kafka's `kafka-cluster`).
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

/// The resource name, and the host, that stand for every one.
pub const WILDCARD: &str = "*";

/// The principal that stands for every user (`User:*`).
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// What kind of resource a binding is about (Kafka's `ResourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster (one resource, [`CLUSTER_RESOURCE_NAME`]).
    Cluster,
    /// A transactional id.
    TransactionalId,
    /// A delegation token.
    DelegationToken,
    /// A user (for tokens created on behalf of others).
    User,
}

impl ResourceType {
    /// Every resource type.
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
        ResourceType::DelegationToken,
        ResourceType::User,
    ];

    /// Kafka's code (`UNKNOWN` is 0, `ANY` 1).
    pub const fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }

    /// The type of a Kafka code, if it is one of a concrete type.
    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// How a binding's resource name matches names (Kafka's `PatternType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternType {
    /// The name itself, or every name when it is `*`.
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

impl PatternType {
    /// Kafka's code (`UNKNOWN` 0, `ANY` 1, `MATCH` 2).
    pub const fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    /// The pattern type of a Kafka code, if it is a concrete one.
    pub fn from_code(code: i8) -> Option<Self> {
        [PatternType::Literal, PatternType::Prefixed]
            .into_iter()
            .find(|p| p.code() == code)
    }
}

/// What a binding allows or denies (Kafka's `AclOperation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclOperation {
    /// Every operation.
    All,
    /// `READ`.
    Read,
    /// `WRITE`.
    Write,
    /// `CREATE`.
    Create,
    /// `DELETE`.
    Delete,
    /// `ALTER`.
    Alter,
    /// `DESCRIBE`.
    Describe,
    /// `CLUSTER_ACTION` (what brokers do to one another).
    ClusterAction,
    /// `DESCRIBE_CONFIGS`.
    DescribeConfigs,
    /// `ALTER_CONFIGS`.
    AlterConfigs,
    /// `IDEMPOTENT_WRITE`.
    IdempotentWrite,
    /// `CREATE_TOKENS`.
    CreateTokens,
    /// `DESCRIBE_TOKENS`.
    DescribeTokens,
}

impl AclOperation {
    /// Every operation.
    pub const ALL: [AclOperation; 13] = [
        AclOperation::All,
        AclOperation::Read,
        AclOperation::Write,
        AclOperation::Create,
        AclOperation::Delete,
        AclOperation::Alter,
        AclOperation::Describe,
        AclOperation::ClusterAction,
        AclOperation::DescribeConfigs,
        AclOperation::AlterConfigs,
        AclOperation::IdempotentWrite,
        AclOperation::CreateTokens,
        AclOperation::DescribeTokens,
    ];

    /// Kafka's code (`UNKNOWN` 0, `ANY` 1).
    pub const fn code(self) -> i8 {
        match self {
            AclOperation::All => 2,
            AclOperation::Read => 3,
            AclOperation::Write => 4,
            AclOperation::Create => 5,
            AclOperation::Delete => 6,
            AclOperation::Alter => 7,
            AclOperation::Describe => 8,
            AclOperation::ClusterAction => 9,
            AclOperation::DescribeConfigs => 10,
            AclOperation::AlterConfigs => 11,
            AclOperation::IdempotentWrite => 12,
            AclOperation::CreateTokens => 13,
            AclOperation::DescribeTokens => 14,
        }
    }

    /// The operation of a Kafka code, if it is a concrete one.
    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.code() == code)
    }
}

/// Whether a binding allows or denies (Kafka's `AclPermissionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclPermission {
    /// `DENY`: wins over any `ALLOW`.
    Deny,
    /// `ALLOW`.
    Allow,
}

impl AclPermission {
    /// Kafka's code (`UNKNOWN` 0, `ANY` 1).
    pub const fn code(self) -> i8 {
        match self {
            AclPermission::Deny => 2,
            AclPermission::Allow => 3,
        }
    }

    /// The permission of a Kafka code, if it is a concrete one.
    pub fn from_code(code: i8) -> Option<Self> {
        [AclPermission::Deny, AclPermission::Allow]
            .into_iter()
            .find(|p| p.code() == code)
    }
}

/// One ACL binding (Kafka's `AclBinding`: a resource pattern and an access
/// control entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The resource's name, a prefix of names, or `*`.
    pub resource_name: String,
    /// How the name matches.
    pub pattern_type: PatternType,
    /// Who: `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// From where: an address, or `*` for anywhere.
    pub host: String,
    /// What.
    pub operation: AclOperation,
    /// Allowed or denied.
    pub permission: AclPermission,
}

impl Versioned for AclBinding {
    const WHAT: &'static str = "acl binding";
    const VERSION: u8 = 1;
}

impl AclBinding {
    /// Whether the binding can be stored, with Kafka's reasons when it
    /// cannot: an empty resource name, a cluster resource not named
    /// [`CLUSTER_RESOURCE_NAME`], a principal without its type
    /// (`User:alice`), an empty host.
    pub fn validate(&self) -> Result<(), String> {
        if self.resource_name.is_empty() {
            return Err("resource name should not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster
            && self.resource_name != CLUSTER_RESOURCE_NAME
        {
            return Err(format!(
                "the only valid name for the CLUSTER resource is {CLUSTER_RESOURCE_NAME}"
            ));
        }
        match self.principal.split_once(':') {
            Some((principal_type, name)) if !principal_type.is_empty() && !name.is_empty() => {}
            _ => {
                return Err(format!(
                    "could not parse principal from `{}` (expected <type>:<name>, as User:alice)",
                    self.principal
                ));
            }
        }
        if self.host.is_empty() {
            return Err("host should not be empty (use * for any host)".into());
        }
        Ok(())
    }
}

/// Which pattern types a filter matches (Kafka's `PatternType` in a filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternFilter {
    /// `ANY`: bindings of either pattern type, the name compared exactly.
    Any,
    /// `MATCH`: the bindings that apply to a resource of the filter's name
    /// (literal ones of that name or `*`, prefixed ones whose prefix starts it).
    Match,
    /// `LITERAL` or `PREFIXED`: bindings of that pattern type, the name
    /// compared exactly.
    Only(PatternType),
}

/// A filter over bindings (Kafka's `AclBindingFilter`); `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclBindingFilter {
    /// `None`: `ANY`.
    pub resource_type: Option<ResourceType>,
    /// `None`: any name.
    pub resource_name: Option<String>,
    /// Which pattern types match, and how the name is compared.
    pub pattern: PatternFilter,
    /// `None`: any principal; otherwise compared exactly (`User:*` matches the
    /// bindings for `User:*` only).
    pub principal: Option<String>,
    /// `None`: any host; otherwise compared exactly.
    pub host: Option<String>,
    /// `None`: `ANY`.
    pub operation: Option<AclOperation>,
    /// `None`: `ANY`.
    pub permission: Option<AclPermission>,
}

impl AclBindingFilter {
    /// The filter that matches every binding.
    pub fn any() -> Self {
        Self {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// Whether `binding` passes the filter.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_resource(binding)
            && self
                .principal
                .as_ref()
                .is_none_or(|p| *p == binding.principal)
            && self.host.as_ref().is_none_or(|h| *h == binding.host)
            && self.operation.is_none_or(|o| o == binding.operation)
            && self.permission.is_none_or(|p| p == binding.permission)
    }

    fn matches_resource(&self, binding: &AclBinding) -> bool {
        if self
            .resource_type
            .is_some_and(|t| t != binding.resource_type)
        {
            return false;
        }
        if let PatternFilter::Only(pattern) = self.pattern
            && pattern != binding.pattern_type
        {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        match (self.pattern, binding.pattern_type) {
            (PatternFilter::Any | PatternFilter::Only(_), _) => *name == binding.resource_name,
            (PatternFilter::Match, PatternType::Literal) => {
                *name == binding.resource_name || binding.resource_name == WILDCARD
            }
            (PatternFilter::Match, PatternType::Prefixed) => {
                name.starts_with(binding.resource_name.as_str())
            }
        }
    }
}

/// Every binding, with the version they are at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclSet {
    /// The ACL version counter when they were read: the set is complete until
    /// it moves.
    pub version: i64,
    /// The bindings, in key order.
    pub bindings: Vec<AclBinding>,
}

impl MetadataStore {
    /// Stores `bindings`, in one transaction, and returns for each whether it
    /// is new (a binding stored already is left as it is: creating it twice
    /// stores it once). Bumps the ACL version when one is new. An invalid
    /// binding ([`AclBinding::validate`]) fails the whole batch with
    /// `Invalid` and stores nothing.
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<Vec<bool>, MetadataError> {
        for binding in bindings {
            binding.validate().map_err(MetadataError::invalid)?;
        }
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let acl_keys: Vec<Vec<u8>> = bindings.iter().map(|b| keys.acl(b)).collect();
                let existing = txn.get_many(&acl_keys).await?;
                let mut created = Vec::with_capacity(bindings.len());
                // The same binding twice in one batch is new once.
                let mut written: Vec<&[u8]> = Vec::new();
                for ((binding, key), stored) in bindings.iter().zip(&acl_keys).zip(existing) {
                    let new = stored.is_none() && !written.contains(&key.as_slice());
                    if new {
                        write(&txn, key, binding);
                        written.push(key);
                    }
                    created.push(new);
                }
                if !written.is_empty() {
                    txn.atomic_add(&keys.acl_version_counter(), 1);
                }
                Ok(created)
            })
            .await
    }

    /// The bindings `filter` matches, in key order (by resource type, pattern
    /// type and name).
    pub async fn describe_acls(
        &self,
        filter: &AclBindingFilter,
    ) -> Result<Vec<AclBinding>, MetadataError> {
        let keys = self.keyspace();
        let prefix = match filter.resource_type {
            Some(resource_type) => keys.acls_of_type(resource_type),
            None => keys.acls(),
        };
        let prefix = &prefix;
        self.database()
            .run(|txn, _| async move {
                let pairs = txn.get_prefix(prefix, RangeOptions::default()).await?;
                let mut matched = Vec::new();
                for pair in pairs {
                    let binding: AclBinding = codec::decode(&pair.value)?;
                    if filter.matches(&binding) {
                        matched.push(binding);
                    }
                }
                Ok(matched)
            })
            .await
    }

    /// Deletes, in one transaction, the bindings each filter matches, and
    /// returns them by filter (each filter sees the bindings as they were
    /// before the request, so a binding two filters match is reported by
    /// both, as Kafka does). Bumps the ACL version when one was deleted.
    ///
    /// A retry after a lost commit reply finds the bindings gone and reports
    /// nothing deleted; the deletion itself is not repeated.
    pub async fn delete_acls(
        &self,
        filters: &[AclBindingFilter],
    ) -> Result<Vec<Vec<AclBinding>>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(&keys.acls(), RangeOptions::default())
                    .await?;
                let mut stored = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    let binding: AclBinding = codec::decode(&pair.value)?;
                    stored.push((pair.key, binding));
                }
                let mut deleted = Vec::with_capacity(filters.len());
                let mut cleared = false;
                for filter in filters {
                    let mut matched = Vec::new();
                    for (key, binding) in &stored {
                        if filter.matches(binding) {
                            txn.clear(key);
                            cleared = true;
                            matched.push(binding.clone());
                        }
                    }
                    deleted.push(matched);
                }
                if cleared {
                    txn.atomic_add(&keys.acl_version_counter(), 1);
                }
                Ok(deleted)
            })
            .await
    }

    /// The ACL version: it moves with every change to the bindings (one key
    /// read, for agents checking whether their cached bindings are current).
    pub async fn acls_version(&self) -> Result<i64, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let value = txn.get(&keys.acl_version_counter()).await?;
                Ok(decode_counter(value.as_deref()))
            })
            .await
    }

    /// Every binding and the version they are at, read in one transaction.
    pub async fn all_acls(&self) -> Result<AclSet, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let version =
                    decode_counter(txn.get(&keys.acl_version_counter()).await?.as_deref());
                let pairs = txn
                    .get_prefix(&keys.acls(), RangeOptions::default())
                    .await?;
                let mut bindings = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    bindings.push(codec::decode(&pair.value)?);
                }
                Ok(AclSet { version, bindings })
            })
            .await
    }

    /// Reads one stored binding (tests).
    #[cfg(test)]
    async fn stored_acl(&self, binding: &AclBinding) -> Result<Option<AclBinding>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move { crate::store::read(&txn, &keys.acl(binding)).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn binding(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        operation: AclOperation,
        permission: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation,
            permission,
        }
    }

    fn topic(name: &str, pattern: PatternType, principal: &str, op: AclOperation) -> AclBinding {
        binding(
            ResourceType::Topic,
            name,
            pattern,
            principal,
            op,
            AclPermission::Allow,
        )
    }

    /// The backends unit tests run on: memory and SQLite.
    async fn stores() -> (Vec<(String, MetadataStore)>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("meta.db").display());
        let mut stores = Vec::new();
        for url in ["memory://".to_owned(), sqlite] {
            let store = crate::open(&url).await.unwrap();
            stores.push((url, store));
        }
        (stores, dir)
    }

    #[test]
    fn codes_are_kafkas_and_round_trip() {
        assert_eq!(ResourceType::Topic.code(), 2);
        assert_eq!(ResourceType::User.code(), 7);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(AclOperation::IdempotentWrite.code(), 12);
        assert_eq!(AclPermission::Allow.code(), 3);
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_code(t.code()), Some(t));
        }
        for o in AclOperation::ALL {
            assert_eq!(AclOperation::from_code(o.code()), Some(o));
        }
        // UNKNOWN (0), ANY (1) and MATCH (2) are no concrete value.
        for code in [0, 1, 99, -1] {
            assert_eq!(ResourceType::from_code(code), None);
            assert_eq!(AclOperation::from_code(code), None);
            assert_eq!(AclPermission::from_code(code), None);
        }
        assert_eq!(PatternType::from_code(2), None);
    }

    #[test]
    fn invalid_bindings_say_why() {
        let good = topic("t", PatternType::Literal, "User:alice", AclOperation::Read);
        assert!(good.validate().is_ok());
        let cases = [
            (
                AclBinding {
                    resource_name: String::new(),
                    ..good.clone()
                },
                "empty",
            ),
            (
                AclBinding {
                    principal: "alice".into(),
                    ..good.clone()
                },
                "principal",
            ),
            (
                AclBinding {
                    principal: "User:".into(),
                    ..good.clone()
                },
                "principal",
            ),
            (
                AclBinding {
                    host: String::new(),
                    ..good.clone()
                },
                "host",
            ),
            (
                AclBinding {
                    resource_type: ResourceType::Cluster,
                    resource_name: "other".into(),
                    ..good.clone()
                },
                "kafka-cluster",
            ),
        ];
        for (bad, why) in cases {
            let reason = bad.validate().unwrap_err();
            assert!(reason.contains(why), "{reason}");
        }
    }

    #[test]
    fn filters_follow_kafkas_semantics() {
        use PatternType::{Literal, Prefixed};
        let literal = topic("orders", Literal, "User:alice", AclOperation::Read);
        let wildcard = topic("*", Literal, "User:*", AclOperation::Write);
        let prefixed = topic("ord", Prefixed, "User:bob", AclOperation::Describe);
        let group = binding(
            ResourceType::Group,
            "orders",
            Literal,
            "User:alice",
            AclOperation::Read,
            AclPermission::Deny,
        );
        let all = [&literal, &wildcard, &prefixed, &group];
        let named = |name: &str, pattern: PatternFilter| AclBindingFilter {
            resource_type: Some(ResourceType::Topic),
            resource_name: Some(name.into()),
            pattern,
            ..AclBindingFilter::any()
        };
        // (filter, which of `all` it matches)
        let cases: Vec<(AclBindingFilter, [bool; 4])> = vec![
            (AclBindingFilter::any(), [true, true, true, true]),
            (
                AclBindingFilter {
                    resource_type: Some(ResourceType::Topic),
                    ..AclBindingFilter::any()
                },
                [true, true, true, false],
            ),
            // ANY compares names exactly: `*` and the prefix are other names.
            (
                named("orders", PatternFilter::Any),
                [true, false, false, false],
            ),
            (named("*", PatternFilter::Any), [false, true, false, false]),
            (
                named("ord", PatternFilter::Any),
                [false, false, true, false],
            ),
            // MATCH: what applies to a topic named "orders".
            (
                named("orders", PatternFilter::Match),
                [true, true, true, false],
            ),
            (
                named("other", PatternFilter::Match),
                [false, true, false, false],
            ),
            (
                named("orders", PatternFilter::Only(Literal)),
                [true, false, false, false],
            ),
            (
                named("orders", PatternFilter::Only(Prefixed)),
                [false, false, false, false],
            ),
            (
                AclBindingFilter {
                    pattern: PatternFilter::Only(Prefixed),
                    ..AclBindingFilter::any()
                },
                [false, false, true, false],
            ),
            // Principals and hosts compare exactly: `User:*` is not a wildcard here.
            (
                AclBindingFilter {
                    principal: Some("User:alice".into()),
                    ..AclBindingFilter::any()
                },
                [true, false, false, true],
            ),
            (
                AclBindingFilter {
                    principal: Some("User:*".into()),
                    ..AclBindingFilter::any()
                },
                [false, true, false, false],
            ),
            (
                AclBindingFilter {
                    host: Some("10.0.0.1".into()),
                    ..AclBindingFilter::any()
                },
                [false, false, false, false],
            ),
            (
                AclBindingFilter {
                    operation: Some(AclOperation::Read),
                    permission: Some(AclPermission::Allow),
                    ..AclBindingFilter::any()
                },
                [true, false, false, false],
            ),
            (
                AclBindingFilter {
                    permission: Some(AclPermission::Deny),
                    ..AclBindingFilter::any()
                },
                [false, false, false, true],
            ),
        ];
        for (filter, expected) in cases {
            let got: Vec<bool> = all.iter().map(|b| filter.matches(b)).collect();
            assert_eq!(got, expected, "{filter:?}");
        }
    }

    #[tokio::test]
    async fn creating_twice_stores_once_and_bumps_the_version_only_for_news() {
        let (stores, _dir) = stores().await;
        for (url, store) in stores {
            assert_eq!(store.acls_version().await.unwrap(), 0, "{url}");
            let read = topic(
                "orders",
                PatternType::Literal,
                "User:alice",
                AclOperation::Read,
            );
            let write = topic(
                "orders",
                PatternType::Literal,
                "User:alice",
                AclOperation::Write,
            );
            let created = store
                .create_acls(&[read.clone(), write.clone(), read.clone()])
                .await
                .unwrap();
            assert_eq!(created, vec![true, true, false], "{url}");
            let version = store.acls_version().await.unwrap();
            assert!(version > 0, "{url}");
            assert_eq!(store.stored_acl(&read).await.unwrap(), Some(read.clone()));

            // The same bindings again: nothing new, the version stays.
            let again = store
                .create_acls(std::slice::from_ref(&write))
                .await
                .unwrap();
            assert_eq!(again, vec![false], "{url}");
            assert_eq!(store.acls_version().await.unwrap(), version, "{url}");
            let all = store.all_acls().await.unwrap();
            assert_eq!(all.version, version);
            assert_eq!(all.bindings.len(), 2, "{url}");

            // An invalid binding fails the batch and stores nothing.
            let bad = AclBinding {
                principal: "nobody".into(),
                ..read.clone()
            };
            let other = topic(
                "other",
                PatternType::Literal,
                "User:alice",
                AclOperation::Read,
            );
            assert!(matches!(
                store.create_acls(&[other.clone(), bad]).await,
                Err(MetadataError::Invalid { .. })
            ));
            assert_eq!(store.stored_acl(&other).await.unwrap(), None, "{url}");
            assert_eq!(store.acls_version().await.unwrap(), version, "{url}");
        }
    }

    #[tokio::test]
    async fn describe_and_delete_by_filter_in_one_transaction() {
        let (stores, _dir) = stores().await;
        for (url, store) in stores {
            use PatternType::{Literal, Prefixed};
            let alice_orders = topic("orders", Literal, "User:alice", AclOperation::Read);
            let alice_prefix = topic("ord", Prefixed, "User:alice", AclOperation::Write);
            let everyone_all = topic("*", Literal, "User:*", AclOperation::Describe);
            let bob_group = binding(
                ResourceType::Group,
                "g",
                Literal,
                "User:bob",
                AclOperation::Read,
                AclPermission::Deny,
            );
            let every = [
                alice_orders.clone(),
                alice_prefix.clone(),
                everyone_all.clone(),
                bob_group.clone(),
            ];
            store.create_acls(&every).await.unwrap();

            let mut listed = store.describe_acls(&AclBindingFilter::any()).await.unwrap();
            listed.sort();
            let mut expected = every.to_vec();
            expected.sort();
            assert_eq!(listed, expected, "{url}");
            let groups = store
                .describe_acls(&AclBindingFilter {
                    resource_type: Some(ResourceType::Group),
                    ..AclBindingFilter::any()
                })
                .await
                .unwrap();
            assert_eq!(groups, vec![bob_group.clone()], "{url}");
            let applying = store
                .describe_acls(&AclBindingFilter {
                    resource_type: Some(ResourceType::Topic),
                    resource_name: Some("orders".into()),
                    pattern: PatternFilter::Match,
                    ..AclBindingFilter::any()
                })
                .await
                .unwrap();
            assert_eq!(applying.len(), 3, "{url}: {applying:?}");

            // Two filters, one binding matched by both, one filter matching nothing.
            let version = store.acls_version().await.unwrap();
            let by_alice = AclBindingFilter {
                principal: Some("User:alice".into()),
                ..AclBindingFilter::any()
            };
            let prefixed = AclBindingFilter {
                pattern: PatternFilter::Only(Prefixed),
                ..AclBindingFilter::any()
            };
            let nothing = AclBindingFilter {
                host: Some("10.1.1.1".into()),
                ..AclBindingFilter::any()
            };
            let deleted = store
                .delete_acls(&[by_alice, prefixed, nothing.clone()])
                .await
                .unwrap();
            assert_eq!(deleted[0].len(), 2, "{url}");
            assert_eq!(deleted[1], vec![alice_prefix.clone()], "{url}");
            assert!(deleted[2].is_empty(), "{url}");
            let after = store.acls_version().await.unwrap();
            assert!(after > version, "{url}");
            let mut left = store.all_acls().await.unwrap().bindings;
            left.sort();
            let mut expected = vec![everyone_all.clone(), bob_group.clone()];
            expected.sort();
            assert_eq!(left, expected, "{url}");

            // Deleting nothing leaves the version.
            let none = store.delete_acls(&[nothing]).await.unwrap();
            assert!(none[0].is_empty());
            assert_eq!(store.acls_version().await.unwrap(), after, "{url}");
        }
    }
}
