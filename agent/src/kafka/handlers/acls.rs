//! `CreateAcls`, `DescribeAcls` and `DeleteAcls` (v1–3, as Kafka 4.0 serves
//! them): ACL bindings in metadata ([`fjord_metadata::AclBinding`]), which the
//! authorizer ([`crate::security::authorizer`]) enforces.
//!
//! As Kafka answers them:
//!
//! | case | error |
//! |---|---|
//! | no authorizer configured (`--authorizer none`) | `SECURITY_DISABLED`, for every creation, the describe, every filter |
//! | creating or deleting without `ALTER` on the cluster, describing without `DESCRIBE` on it | `CLUSTER_AUTHORIZATION_FAILED`, likewise |
//! | a creation of an unknown or `ANY` resource type, pattern type (or `MATCH`), operation or permission; an empty resource name; a cluster resource not named `kafka-cluster`; a principal without its type | `INVALID_REQUEST` for that creation |
//! | a filter with an unknown value (`UNKNOWN`, or a code Kafka does not have) | `INVALID_REQUEST` (the describe's, or that filter's) |
//!
//! Creations and the filters of one request apply in one metadata transaction
//! each (creating a binding twice stores it once); once they have, this agent
//! re-reads the bindings, so the client's next request is checked against
//! them. Other agents see them within about
//! [`REFRESH_INTERVAL`](crate::security::authorizer::REFRESH_INTERVAL).

use std::collections::BTreeMap;

use fjord_metadata::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, PatternFilter, PatternType,
    ResourceType,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::metadata_error;
use crate::security::authorizer::Session;

/// Kafka's `ANY` code of resource types, pattern types, operations and
/// permissions in filters.
const ANY: i8 = 1;
/// Kafka's `MATCH` pattern type (filters only).
const MATCH: i8 = 2;

/// What Kafka tells a client of a broker without an authorizer.
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// An error code with its message.
type Refusal = (ResponseError, String);

fn invalid(message: String) -> Refusal {
    (ResponseError::InvalidRequest, message)
}

/// Whether the ACL APIs may be used at all: an authorizer is configured and
/// the session may do `operation` on the cluster.
fn allowed(broker: &Broker, access: &Session<'_>, operation: AclOperation) -> Result<(), Refusal> {
    access.cluster(operation).map_err(|denied| {
        let message = denied.to_string();
        (ResponseError::from(denied), message)
    })?;
    if !broker.authorizer.is_enabled() {
        return Err((ResponseError::SecurityDisabled, NO_AUTHORIZER.to_owned()));
    }
    Ok(())
}

/// The binding a creation asks for.
fn binding_of(creation: &AclCreation) -> Result<AclBinding, Refusal> {
    let resource_type = ResourceType::from_code(creation.resource_type)
        .ok_or_else(|| invalid(format!("invalid resource type {}", creation.resource_type)))?;
    let pattern_type = PatternType::from_code(creation.resource_pattern_type).ok_or_else(|| {
        invalid(format!(
            "invalid pattern type {}",
            creation.resource_pattern_type
        ))
    })?;
    let operation = AclOperation::from_code(creation.operation)
        .ok_or_else(|| invalid(format!("invalid operation {}", creation.operation)))?;
    let permission = AclPermission::from_code(creation.permission_type).ok_or_else(|| {
        invalid(format!(
            "invalid permission type {}",
            creation.permission_type
        ))
    })?;
    let binding = AclBinding {
        resource_type,
        resource_name: creation.resource_name.to_string(),
        pattern_type,
        principal: creation.principal.to_string(),
        host: creation.host.to_string(),
        operation,
        permission,
    };
    binding.validate().map_err(invalid)?;
    Ok(binding)
}

/// A filter's fields, as the wire carries them in `DescribeAcls` and
/// `DeleteAcls`.
struct WireFilter<'a> {
    resource_type: i8,
    resource_name: Option<&'a StrBytes>,
    pattern_type: i8,
    principal: Option<&'a StrBytes>,
    host: Option<&'a StrBytes>,
    operation: i8,
    permission: i8,
}

/// The filter the wire fields stand for; an unknown value is `INVALID_REQUEST`.
fn filter_of(wire: WireFilter<'_>) -> Result<AclBindingFilter, Refusal> {
    let resource_type = match wire.resource_type {
        ANY => None,
        code => Some(
            ResourceType::from_code(code)
                .ok_or_else(|| invalid(format!("unknown resource type filter {code}")))?,
        ),
    };
    let pattern = match wire.pattern_type {
        ANY => PatternFilter::Any,
        MATCH => PatternFilter::Match,
        code => PatternFilter::Only(
            PatternType::from_code(code)
                .ok_or_else(|| invalid(format!("unknown pattern type filter {code}")))?,
        ),
    };
    let operation = match wire.operation {
        ANY => None,
        code => Some(
            AclOperation::from_code(code)
                .ok_or_else(|| invalid(format!("unknown operation filter {code}")))?,
        ),
    };
    let permission = match wire.permission {
        ANY => None,
        code => Some(
            AclPermission::from_code(code)
                .ok_or_else(|| invalid(format!("unknown permission type filter {code}")))?,
        ),
    };
    Ok(AclBindingFilter {
        resource_type,
        resource_name: wire.resource_name.map(ToString::to_string),
        pattern,
        principal: wire.principal.map(ToString::to_string),
        host: wire.host.map(ToString::to_string),
        operation,
        permission,
    })
}

/// Re-reads the bindings after this agent changed them, so its next requests
/// are checked against the change.
async fn changed(broker: &Broker) {
    if let Err(error) = broker.authorizer.refresh().await {
        tracing::warn!(%error, "re-reading the acls after a change failed");
    }
}

/// `CreateAcls`.
pub(crate) async fn create(
    broker: &Broker,
    access: &Session<'_>,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let mut response = CreateAclsResponse::default();
    let refuse_all = |response: &mut CreateAclsResponse, (error, message): Refusal| {
        response.results = request
            .creations
            .iter()
            .map(|_| {
                let mut result = AclCreationResult::default();
                result.error_code = error.code();
                result.error_message = Some(StrBytes::from_string(message.clone()));
                result
            })
            .collect();
    };
    if let Err(refusal) = allowed(broker, access, AclOperation::Alter) {
        refuse_all(&mut response, refusal);
        return response;
    }
    let outcomes: Vec<Result<AclBinding, Refusal>> =
        request.creations.iter().map(binding_of).collect();
    let valid: Vec<AclBinding> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok().cloned())
        .collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        let stored = broker.store.create_acls(&valid).await.map(|_| ());
        if stored.is_ok() {
            changed(broker).await;
        }
        stored
    };
    response.results = outcomes
        .into_iter()
        .map(|outcome| {
            let mut result = AclCreationResult::default();
            let refusal = match (outcome, &stored) {
                (Err(refusal), _) => Some(refusal),
                (Ok(_), Err(error)) => Some((metadata_error(error), error.to_string())),
                (Ok(_), Ok(())) => None,
            };
            if let Some((error, message)) = refusal {
                result.error_code = error.code();
                result.error_message = Some(StrBytes::from_string(message));
            }
            result
        })
        .collect();
    response
}

/// `DescribeAcls`: the bindings the filter matches, by resource pattern.
pub(crate) async fn describe(
    broker: &Broker,
    access: &Session<'_>,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let mut response = DescribeAclsResponse::default();
    let described = async {
        allowed(broker, access, AclOperation::Describe)?;
        let filter = filter_of(WireFilter {
            resource_type: request.resource_type_filter,
            resource_name: request.resource_name_filter.as_ref(),
            pattern_type: request.pattern_type_filter,
            principal: request.principal_filter.as_ref(),
            host: request.host_filter.as_ref(),
            operation: request.operation,
            permission: request.permission_type,
        })?;
        broker
            .store
            .describe_acls(&filter)
            .await
            .map_err(|error| (metadata_error(&error), error.to_string()))
    };
    match described.await {
        Ok(bindings) => response.resources = by_resource(bindings),
        Err((error, message)) => {
            response.error_code = error.code();
            response.error_message = Some(StrBytes::from_string(message));
        }
    }
    response
}

/// Bindings grouped by resource pattern, as `DescribeAcls` answers them.
fn by_resource(bindings: Vec<AclBinding>) -> Vec<DescribeAclsResource> {
    let mut grouped: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for binding in bindings {
        let mut description = AclDescription::default();
        description.principal = StrBytes::from_string(binding.principal);
        description.host = StrBytes::from_string(binding.host);
        description.operation = binding.operation.code();
        description.permission_type = binding.permission.code();
        grouped
            .entry((
                binding.resource_type,
                binding.resource_name,
                binding.pattern_type,
            ))
            .or_default()
            .push(description);
    }
    grouped
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            let mut resource = DescribeAclsResource::default();
            resource.resource_type = resource_type.code();
            resource.resource_name = StrBytes::from_string(name);
            resource.pattern_type = pattern_type.code();
            resource.acls = acls;
            resource
        })
        .collect()
}

/// `DeleteAcls`: every filter's matches, deleted in one transaction.
pub(crate) async fn delete(
    broker: &Broker,
    access: &Session<'_>,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let mut response = DeleteAclsResponse::default();
    let refused = |(error, message): Refusal| {
        let mut result = DeleteAclsFilterResult::default();
        result.error_code = error.code();
        result.error_message = Some(StrBytes::from_string(message));
        result
    };
    if let Err(refusal) = allowed(broker, access, AclOperation::Alter) {
        response.filter_results = request
            .filters
            .iter()
            .map(|_| refused(refusal.clone()))
            .collect();
        return response;
    }
    let filters: Vec<Result<AclBindingFilter, Refusal>> = request
        .filters
        .iter()
        .map(|filter: &DeleteAclsFilter| {
            filter_of(WireFilter {
                resource_type: filter.resource_type_filter,
                resource_name: filter.resource_name_filter.as_ref(),
                pattern_type: filter.pattern_type_filter,
                principal: filter.principal_filter.as_ref(),
                host: filter.host_filter.as_ref(),
                operation: filter.operation,
                permission: filter.permission_type,
            })
        })
        .collect();
    let valid: Vec<AclBindingFilter> = filters
        .iter()
        .filter_map(|filter| filter.as_ref().ok().cloned())
        .collect();
    let deleted = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        let deleted = broker.store.delete_acls(&valid).await;
        if deleted
            .as_ref()
            .is_ok_and(|d| d.iter().any(|m| !m.is_empty()))
        {
            changed(broker).await;
        }
        deleted
    };
    let mut matches = match &deleted {
        Ok(matches) => matches.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    response.filter_results = filters
        .into_iter()
        .map(|filter| match (filter, &deleted) {
            (Err(refusal), _) => refused(refusal),
            (Ok(_), Err(error)) => refused((metadata_error(error), error.to_string())),
            (Ok(_), Ok(_)) => {
                let mut result = DeleteAclsFilterResult::default();
                result.matching_acls = matches
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|binding| {
                        let mut acl = DeleteAclsMatchingAcl::default();
                        acl.resource_type = binding.resource_type.code();
                        acl.resource_name = StrBytes::from_string(binding.resource_name);
                        acl.pattern_type = binding.pattern_type.code();
                        acl.principal = StrBytes::from_string(binding.principal);
                        acl.host = StrBytes::from_string(binding.host);
                        acl.operation = binding.operation.code();
                        acl.permission_type = binding.permission.code();
                        acl
                    })
                    .collect();
                result
            }
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn creation(resource_type: i8, name: &str, pattern: i8, principal: &str) -> AclCreation {
        let mut creation = AclCreation::default();
        creation.resource_type = resource_type;
        creation.resource_name = StrBytes::from_string(name.into());
        creation.resource_pattern_type = pattern;
        creation.principal = StrBytes::from_string(principal.into());
        creation.host = StrBytes::from_static_str("*");
        creation.operation = AclOperation::Read.code();
        creation.permission_type = AclPermission::Allow.code();
        creation
    }

    #[test]
    fn creations_with_unknown_or_any_values_are_invalid_requests() {
        let good = creation(2, "t", 3, "User:alice");
        assert!(binding_of(&good).is_ok());
        let mut cases = vec![
            creation(0, "t", 3, "User:alice"),
            creation(1, "t", 3, "User:alice"),
            creation(99, "t", 3, "User:alice"),
            creation(2, "t", 1, "User:alice"),
            creation(2, "t", 2, "User:alice"),
            creation(2, "", 3, "User:alice"),
            creation(2, "t", 3, "alice"),
            creation(4, "other", 3, "User:alice"),
        ];
        let mut any_op = good.clone();
        any_op.operation = ANY;
        cases.push(any_op);
        let mut any_permission = good.clone();
        any_permission.permission_type = ANY;
        cases.push(any_permission);
        for case in cases {
            let (error, _) = binding_of(&case).unwrap_err();
            assert_eq!(error, ResponseError::InvalidRequest, "{case:?}");
        }
    }

    #[test]
    fn filters_read_any_and_match_and_refuse_unknown_values() {
        let wire = |resource_type, pattern_type, operation, permission| WireFilter {
            resource_type,
            resource_name: None,
            pattern_type,
            principal: None,
            host: None,
            operation,
            permission,
        };
        assert_eq!(
            filter_of(wire(ANY, ANY, ANY, ANY)).unwrap(),
            AclBindingFilter::any()
        );
        let matching = filter_of(wire(2, MATCH, 8, 2)).unwrap();
        assert_eq!(matching.resource_type, Some(ResourceType::Topic));
        assert_eq!(matching.pattern, PatternFilter::Match);
        assert_eq!(matching.operation, Some(AclOperation::Describe));
        assert_eq!(matching.permission, Some(AclPermission::Deny));
        for bad in [
            wire(0, ANY, ANY, ANY),
            wire(ANY, 0, ANY, ANY),
            wire(ANY, ANY, 0, ANY),
            wire(ANY, ANY, ANY, 0),
            wire(42, ANY, ANY, ANY),
        ] {
            assert_eq!(filter_of(bad).unwrap_err().0, ResponseError::InvalidRequest);
        }
    }

    #[test]
    fn descriptions_group_by_resource_pattern() {
        let binding = |name: &str, pattern, principal: &str| AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        };
        let resources = by_resource(vec![
            binding("a", PatternType::Literal, "User:x"),
            binding("a", PatternType::Prefixed, "User:x"),
            binding("a", PatternType::Literal, "User:y"),
        ]);
        assert_eq!(resources.len(), 2);
        assert_eq!(resources[0].pattern_type, PatternType::Literal.code());
        assert_eq!(resources[0].acls.len(), 2);
        assert_eq!(resources[1].acls.len(), 1);
    }
}
