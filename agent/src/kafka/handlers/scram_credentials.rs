//! `AlterUserScramCredentials` (v0) and `DescribeUserScramCredentials` (v0):
//! the SASL/SCRAM users in metadata (`fjord_metadata::ScramCredential`), as
//! Kafka's controller manages them.
//!
//! Altering: the client sends each credential salted (salt, iterations and
//! the salted password); the agent stores what RFC 5802 derives from it,
//! never the salted password. Per user, Kafka's errors:
//! `UNSUPPORTED_SASL_MECHANISM` for a mechanism other than SCRAM-SHA-256/512,
//! `UNACCEPTABLE_CREDENTIAL` for an empty name or salt or iterations outside
//! 4096..=16384, `DUPLICATE_RESOURCE` for a user altered twice for one
//! mechanism in one request, `RESOURCE_NOT_FOUND` for deleting a credential
//! that does not exist. The accepted changes of a request are applied in one
//! metadata transaction; one result per user, in request order.
//!
//! Describing: every user with a credential (no users named), or the named
//! ones (`RESOURCE_NOT_FOUND` for one without any, `DUPLICATE_RESOURCE` for
//! one named twice), with each mechanism's iteration count — never a key.
//!
//! With an authorizer, as Kafka's: altering needs `ALTER` on the cluster
//! (else every user's result is `CLUSTER_AUTHORIZATION_FAILED`), describing
//! `DESCRIBE` on it (else the request's error is).

use std::collections::{BTreeMap, HashMap};

use fjord_metadata::ScramChange;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::{authorization_error, metadata_error};
use crate::security::authorizer::Session;
use crate::security::sasl::{self, Mechanism};

type Refusal = (ResponseError, String);

pub(crate) async fn alter(
    broker: &Broker,
    request: AlterUserScramCredentialsRequest,
    access: &Session<'_>,
) -> AlterUserScramCredentialsResponse {
    if let Err(denied) = access.cluster(fjord_metadata::AclOperation::Alter) {
        let mut users: Vec<&StrBytes> = Vec::new();
        let named = request.deletions.iter().map(|d| &d.name);
        for user in named.chain(request.upsertions.iter().map(|u| &u.name)) {
            if !users.contains(&user) {
                users.push(user);
            }
        }
        let mut response = AlterUserScramCredentialsResponse::default();
        response.results = users
            .into_iter()
            .map(|user| {
                let mut result = AlterUserScramCredentialsResult::default();
                result.user = user.clone();
                result.error_code = authorization_error(&denied).code();
                result.error_message = Some(StrBytes::from_string(denied.to_string()));
                result
            })
            .collect();
        return response;
    }
    // Users in request order, each with its first refusal, if any.
    let mut users: Vec<String> = Vec::new();
    let mut refused: HashMap<String, Refusal> = HashMap::new();
    let mut seen: HashMap<(String, i8), usize> = HashMap::new();
    let mut changes: Vec<(String, ScramChange)> = Vec::new();
    let note = |user: &str, users: &mut Vec<String>| {
        if !users.iter().any(|u| u == user) {
            users.push(user.to_owned());
        }
    };
    for deletion in &request.deletions {
        let user = deletion.name.to_string();
        note(&user, &mut users);
        *seen.entry((user.clone(), deletion.mechanism)).or_default() += 1;
        match Mechanism::from_scram_code(deletion.mechanism) {
            None => refuse(&mut refused, &user, unsupported(deletion.mechanism)),
            Some(mechanism) => changes.push((
                user.clone(),
                ScramChange::Delete {
                    user,
                    mechanism: mechanism.name().to_owned(),
                },
            )),
        }
    }
    for upsertion in &request.upsertions {
        let user = upsertion.name.to_string();
        note(&user, &mut users);
        *seen.entry((user.clone(), upsertion.mechanism)).or_default() += 1;
        let Some(mechanism) = Mechanism::from_scram_code(upsertion.mechanism) else {
            refuse(&mut refused, &user, unsupported(upsertion.mechanism));
            continue;
        };
        if let Err(refusal) = acceptable(&user, upsertion.iterations, &upsertion.salt) {
            refuse(&mut refused, &user, refusal);
            continue;
        }
        let credential = sasl::credential_from_salted(
            mechanism,
            upsertion.salt.to_vec(),
            upsertion.iterations,
            &upsertion.salted_password,
        );
        if let Some(credential) = credential {
            changes.push((
                user.clone(),
                ScramChange::Upsert {
                    user,
                    mechanism: mechanism.name().to_owned(),
                    credential,
                },
            ));
        }
    }
    for ((user, _), count) in &seen {
        if *count > 1 {
            refuse(
                &mut refused,
                user,
                (
                    ResponseError::DuplicateResource,
                    "a user's credential for one mechanism altered twice in one request".to_owned(),
                ),
            );
        }
    }
    let accepted: Vec<(String, ScramChange)> = changes
        .into_iter()
        .filter(|(user, _)| !refused.contains_key(user))
        .collect();
    let batch: Vec<ScramChange> = accepted.iter().map(|(_, c)| c.clone()).collect();
    match broker.store.alter_scram_credentials(&batch).await {
        Ok(applied) => {
            for ((user, change), applied) in accepted.iter().zip(applied) {
                if !applied && matches!(change, ScramChange::Delete { .. }) {
                    refuse(
                        &mut refused,
                        user,
                        (
                            ResponseError::ResourceNotFound,
                            "attempt to delete a user credential that does not exist".to_owned(),
                        ),
                    );
                }
            }
            if !batch.is_empty() {
                tracing::info!(changes = batch.len(), "SCRAM credentials altered");
            }
        }
        Err(error) => {
            let refusal = (metadata_error(&error), error.to_string());
            for (user, _) in &accepted {
                refuse(&mut refused, user, refusal.clone());
            }
        }
    }
    let mut response = AlterUserScramCredentialsResponse::default();
    response.results = users
        .into_iter()
        .map(|user| {
            let mut result = AlterUserScramCredentialsResult::default();
            if let Some((error, message)) = refused.get(&user) {
                result.error_code = error.code();
                result.error_message = Some(StrBytes::from_string(message.clone()));
            }
            result.user = StrBytes::from_string(user);
            result
        })
        .collect();
    response
}

/// Records `refusal` for `user` unless one is recorded already.
fn refuse(refused: &mut HashMap<String, Refusal>, user: &str, refusal: Refusal) {
    refused.entry(user.to_owned()).or_insert(refusal);
}

fn unsupported(code: i8) -> Refusal {
    (
        ResponseError::UnsupportedSaslMechanism,
        format!("unknown SCRAM mechanism {code}; 1 (SCRAM-SHA-256) and 2 (SCRAM-SHA-512) exist"),
    )
}

/// Kafka's rules for a new credential.
fn acceptable(user: &str, iterations: i32, salt: &[u8]) -> Result<(), Refusal> {
    let refusal = |message: String| (ResponseError::UnacceptableCredential, message);
    if user.is_empty() {
        return Err(refusal("the user name must not be empty".to_owned()));
    }
    if !(sasl::MIN_ITERATIONS..=sasl::MAX_ITERATIONS).contains(&iterations) {
        return Err(refusal(format!(
            "{iterations} iterations is outside {}..={}",
            sasl::MIN_ITERATIONS,
            sasl::MAX_ITERATIONS
        )));
    }
    if salt.is_empty() {
        return Err(refusal("the salt must not be empty".to_owned()));
    }
    Ok(())
}

pub(crate) async fn describe(
    broker: &Broker,
    request: DescribeUserScramCredentialsRequest,
    access: &Session<'_>,
) -> DescribeUserScramCredentialsResponse {
    let mut response = DescribeUserScramCredentialsResponse::default();
    if let Err(denied) = access.cluster(fjord_metadata::AclOperation::Describe) {
        response.error_code = authorization_error(&denied).code();
        response.error_message = Some(StrBytes::from_string(denied.to_string()));
        return response;
    }
    let all = match broker.store.scram_users().await {
        Ok(all) => all,
        Err(error) => {
            response.error_code = metadata_error(&error).code();
            response.error_message = Some(StrBytes::from_string(error.to_string()));
            return response;
        }
    };
    let mut by_user: BTreeMap<String, Vec<CredentialInfo>> = BTreeMap::new();
    for (user, mechanism, iterations) in all {
        let Some(mechanism) = Mechanism::from_name(&mechanism) else {
            continue;
        };
        let mut info = CredentialInfo::default();
        info.mechanism = mechanism.scram_code();
        info.iterations = iterations;
        by_user.entry(user).or_default().push(info);
    }
    let named: Vec<String> = request
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    let result = |user: &str, infos: Vec<CredentialInfo>| {
        let mut result = DescribeUserScramCredentialsResult::default();
        result.user = StrBytes::from_string(user.to_owned());
        result.credential_infos = infos;
        result
    };
    if named.is_empty() {
        response.results = by_user
            .into_iter()
            .map(|(user, infos)| result(&user, infos))
            .collect();
        return response;
    }
    let mut emitted: Vec<String> = Vec::new();
    for user in &named {
        if emitted.contains(user) {
            continue;
        }
        emitted.push(user.clone());
        let mut entry = result(user, Vec::new());
        if named.iter().filter(|n| *n == user).count() > 1 {
            entry.error_code = ResponseError::DuplicateResource.code();
            entry.error_message = Some(StrBytes::from_static_str(
                "cannot describe the same user twice in one request",
            ));
        } else if let Some(infos) = by_user.get(user) {
            entry.credential_infos = infos.clone();
        } else {
            entry.error_code = ResponseError::ResourceNotFound.code();
            entry.error_message = Some(StrBytes::from_static_str(
                "attempt to describe a user credential that does not exist",
            ));
        }
        response.results.push(entry);
    }
    response
}
