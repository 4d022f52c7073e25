//! The REST Proxy API v3 (`application/json`), under `/v3` and, as Confluent
//! Server serves it, `/kafka/v3`: the cluster, topics (list, create, describe,
//! delete, their configs), partitions and consumer groups. Every resource has
//! Confluent's `kind`, `metadata.self` (a link on the agent that answered) and
//! `related` links.
//!
//! | route | what |
//! |---|---|
//! | `GET /v3/clusters`, `GET /v3/clusters/{c}` | the one cluster: the id Kafka clients see |
//! | `GET/POST /v3/clusters/{c}/topics`, `GET/DELETE …/topics/{t}` | topics |
//! | `GET …/topics/{t}/configs` | the configs set on a topic |
//! | `GET …/topics/{t}/partitions[/{p}]` | partitions and their leaders |
//! | `GET …/consumer-groups[/{g}[/consumers]]` | consumer groups, from metadata |

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{any, get};
use serde_json::{Value, json};

use super::{Api, Confluent, JSON, RestError, answer, base_url, check_accept, no_content};
use crate::core::{GroupSummary, NewTopicRequest, PartitionInfo, TopicInfo};

/// The prefixes the v3 API is served under.
const PREFIXES: [&str; 2] = ["/v3", "/kafka/v3"];

pub(super) fn routes() -> Router<Confluent> {
    let mut router = Router::new();
    for prefix in PREFIXES {
        router = router
            .route(&format!("{prefix}/clusters"), get(list_clusters))
            .route(
                &format!("{prefix}/clusters/{{cluster_id}}"),
                get(get_cluster),
            )
            .route(
                &format!("{prefix}/clusters/{{cluster_id}}/topics"),
                get(list_topics).post(create_topic),
            )
            .route(
                &format!("{prefix}/clusters/{{cluster_id}}/topics/{{topic}}"),
                get(get_topic).delete(delete_topic),
            )
            .route(
                &format!("{prefix}/clusters/{{cluster_id}}/topics/{{topic}}/configs"),
                get(topic_configs),
            )
            .route(
                &format!("{prefix}/clusters/{{cluster_id}}/topics/{{topic}}/partitions"),
                get(list_partitions),
            )
            .route(
                &format!(
                    "{prefix}/clusters/{{cluster_id}}/topics/{{topic}}/partitions/{{partition}}"
                ),
                get(get_partition),
            )
            .route(
                &format!("{prefix}/clusters/{{cluster_id}}/consumer-groups"),
                get(list_groups),
            )
            .route(
                &format!("{prefix}/clusters/{{cluster_id}}/consumer-groups/{{group}}"),
                get(get_group),
            )
            .route(
                &format!("{prefix}/clusters/{{cluster_id}}/consumer-groups/{{group}}/consumers"),
                get(group_consumers),
            )
            .route(&format!("{prefix}/{{*rest}}"), any(no_route));
    }
    router
}

/// Any other path under `/v3`: Confluent's 404.
async fn no_route() -> RestError {
    RestError::plain(Api::V3, StatusCode::NOT_FOUND, "HTTP 404 Not Found")
}

/// Where links in answers point: `http://<host>/v3` (or `/kafka/v3`), and the
/// cluster id.
struct Links {
    base: String,
    cluster: String,
}

impl Links {
    fn cluster(&self) -> String {
        format!("{}/clusters/{}", self.base, self.cluster)
    }

    fn topic(&self, topic: &str) -> String {
        format!("{}/topics/{topic}", self.cluster())
    }

    fn group(&self, group: &str) -> String {
        format!(
            "{}/consumer-groups/{}",
            self.cluster(),
            super::path_segment(group)
        )
    }

    fn crn(&self, rest: &str) -> String {
        if rest.is_empty() {
            format!("crn:///kafka={}", self.cluster)
        } else {
            format!("crn:///kafka={}/{rest}", self.cluster)
        }
    }
}

fn related(url: String) -> Value {
    json!({ "related": url })
}

fn resource(self_url: String, resource_name: String) -> Value {
    json!({ "self": self_url, "resource_name": resource_name })
}

fn collection(kind: &str, self_url: String, data: Vec<Value>) -> Value {
    json!({ "kind": kind, "metadata": { "self": self_url, "next": null }, "data": data })
}

/// Checks the request (its `Accept` header, the cluster id) and where links go.
fn links(
    state: &Confluent,
    cluster_id: Option<&str>,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Links, RestError> {
    check_accept(Api::V3, headers, &[JSON])?;
    let cluster = state.inner.core.cluster_id();
    if let Some(asked) = cluster_id
        && asked != cluster
    {
        return Err(RestError::plain(
            Api::V3,
            StatusCode::NOT_FOUND,
            format!("Cluster {asked} cannot be found."),
        ));
    }
    let prefix = PREFIXES
        .iter()
        .rev()
        .find(|p| uri.path().starts_with(&format!("{p}/")))
        .copied()
        .unwrap_or("/v3");
    Ok(Links {
        base: format!("{}{prefix}", base_url(headers, uri)),
        cluster,
    })
}

fn ok(body: &Value) -> Response {
    answer(StatusCode::OK, JSON, body)
}

fn kafka(error: crate::core::KafkaError) -> RestError {
    RestError::kafka(Api::V3, &error)
}

fn cluster_json(links: &Links) -> Value {
    let cluster = links.cluster();
    json!({
        "kind": "KafkaCluster",
        "metadata": resource(cluster.clone(), links.crn("")),
        "cluster_id": links.cluster,
        "acls": related(format!("{cluster}/acls")),
        "brokers": related(format!("{cluster}/brokers")),
        "broker_configs": related(format!("{cluster}/broker-configs")),
        "consumer_groups": related(format!("{cluster}/consumer-groups")),
        "topics": related(format!("{cluster}/topics")),
        "partition_reassignments": related(format!("{cluster}/topics/-/partitions/-/reassignment")),
    })
}

async fn list_clusters(
    State(state): State<Confluent>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let links = links(&state, None, &headers, &uri)?;
    Ok(ok(&collection(
        "KafkaClusterList",
        format!("{}/clusters", links.base),
        vec![cluster_json(&links)],
    )))
}

async fn get_cluster(
    State(state): State<Confluent>,
    Path(cluster_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let links = links(&state, Some(&cluster_id), &headers, &uri)?;
    Ok(ok(&cluster_json(&links)))
}

fn topic_json(links: &Links, topic: &TopicInfo) -> Value {
    let url = links.topic(&topic.name);
    json!({
        "kind": "KafkaTopic",
        "metadata": resource(url.clone(), links.crn(&format!("topic={}", topic.name))),
        "cluster_id": links.cluster,
        "topic_name": topic.name,
        "is_internal": false,
        "replication_factor": 1,
        "partitions_count": topic.partition_count,
        "partitions": related(format!("{url}/partitions")),
        "configs": related(format!("{url}/configs")),
        "partition_reassignments": related(format!("{url}/partitions/-/reassignment")),
        "authorized_operations": [],
    })
}

async fn list_topics(
    State(state): State<Confluent>,
    Path(cluster_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let links = links(&state, Some(&cluster_id), &headers, &uri)?;
    let mut topics = state.inner.core.list_topics().await.map_err(kafka)?;
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let data = topics.iter().map(|t| topic_json(&links, t)).collect();
    Ok(ok(&collection(
        "KafkaTopicList",
        format!("{}/topics", links.cluster()),
        data,
    )))
}

/// A v3 create-topic body's field as `T`, or a 400 naming it.
fn field<T: serde::de::DeserializeOwned>(body: &Value, name: &str) -> Result<Option<T>, RestError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|error| RestError::bad_request(Api::V3, format!("{name}: {error}"))),
    }
}

async fn create_topic(
    State(state): State<Confluent>,
    Path(cluster_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response, RestError> {
    let links = links(&state, Some(&cluster_id), &headers, &uri)?;
    let media = super::content_type(&headers);
    if media.as_deref() != Some(JSON) {
        return Err(RestError::unsupported_media_type(Api::V3, media.as_deref()));
    }
    let bytes = super::body_bytes(Api::V3, &state, &headers, body).await?;
    let request: Value = serde_json::from_slice(&bytes)
        .map_err(|error| RestError::bad_request(Api::V3, format!("bad JSON body: {error}")))?;
    if !request.is_object() {
        return Err(RestError::bad_request(Api::V3, "the body is a JSON object"));
    }
    let Some(name) = field::<String>(&request, "topic_name")? else {
        return Err(RestError::bad_request(Api::V3, "topic_name is required"));
    };
    let partitions = field::<i32>(&request, "partitions_count")?;
    if let Some(factor) = field::<i32>(&request, "replication_factor")?
        && (factor == 0 || factor < -1)
    {
        return Err(RestError::new(
            Api::V3,
            StatusCode::BAD_REQUEST,
            40002,
            format!("replication factor must be -1 or at least 1, got {factor}"),
        ));
    }
    let mut configs = std::collections::BTreeMap::new();
    for config in field::<Vec<Value>>(&request, "configs")?.unwrap_or_default() {
        let name = config
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RestError::bad_request(Api::V3, "every config has a name"))?;
        match config.get("value") {
            Some(Value::String(value)) => {
                configs.insert(name.to_owned(), value.clone());
            }
            None | Some(Value::Null) => {}
            Some(other) => {
                return Err(RestError::bad_request(
                    Api::V3,
                    format!("config {name}: the value is a string, not {other}"),
                ));
            }
        }
    }
    let validate_only = field::<bool>(&request, "validate_only")?.unwrap_or(false);
    let core = &state.inner.core;
    let created = if validate_only {
        match core.topic(&name).await {
            Ok(_) => {
                return Err(RestError::new(
                    Api::V3,
                    StatusCode::BAD_REQUEST,
                    40002,
                    format!("Topic '{name}' already exists."),
                ));
            }
            Err(_) => TopicInfo {
                name,
                id: String::new(),
                partition_count: partitions.unwrap_or(1),
                configs,
            },
        }
    } else {
        core.create_topic(NewTopicRequest {
            name,
            partitions,
            configs,
        })
        .await
        .map_err(kafka)?
    };
    Ok(answer(
        StatusCode::CREATED,
        JSON,
        &topic_json(&links, &created),
    ))
}

async fn get_topic(
    State(state): State<Confluent>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let links = links(&state, Some(&cluster_id), &headers, &uri)?;
    let info = state.inner.core.topic(&topic).await.map_err(kafka)?;
    // The topic cache may not know of a deletion yet; the partitions' offsets
    // mostly do (as `/v1/topics/{topic}` reads them).
    crate::ops::partitions_of(&state.inner.core, &info)
        .await
        .map_err(kafka)?;
    Ok(ok(&topic_json(&links, &info)))
}

async fn delete_topic(
    State(state): State<Confluent>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    links(&state, Some(&cluster_id), &headers, &uri)?;
    state.inner.core.delete_topic(&topic).await.map_err(kafka)?;
    Ok(no_content())
}

async fn topic_configs(
    State(state): State<Confluent>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let links = links(&state, Some(&cluster_id), &headers, &uri)?;
    let info = state.inner.core.topic(&topic).await.map_err(kafka)?;
    let url = links.topic(&info.name);
    let data = info
        .configs
        .iter()
        .map(|(name, value)| {
            json!({
                "kind": "KafkaTopicConfig",
                "metadata": resource(
                    format!("{url}/configs/{name}"),
                    links.crn(&format!("topic={}/config={name}", info.name)),
                ),
                "cluster_id": links.cluster,
                "topic_name": info.name,
                "name": name,
                "value": value,
                "is_default": false,
                "is_read_only": false,
                "is_sensitive": false,
                "source": "DYNAMIC_TOPIC_CONFIG",
                "synonyms": [{"name": name, "value": value, "source": "DYNAMIC_TOPIC_CONFIG"}],
            })
        })
        .collect();
    Ok(ok(&collection(
        "KafkaTopicConfigList",
        format!("{url}/configs"),
        data,
    )))
}

fn partition_json(links: &Links, topic: &str, partition: &PartitionInfo) -> Value {
    let url = format!("{}/partitions/{}", links.topic(topic), partition.partition);
    let mut value = json!({
        "kind": "KafkaPartition",
        "metadata": resource(
            url.clone(),
            links.crn(&format!("topic={topic}/partition={}", partition.partition)),
        ),
        "cluster_id": links.cluster,
        "topic_name": topic,
        "partition_id": partition.partition,
        "replicas": related(format!("{url}/replicas")),
        "reassignment": related(format!("{url}/reassignment")),
    });
    if partition.leader >= 0
        && let Some(object) = value.as_object_mut()
    {
        object.insert(
            "leader".to_owned(),
            related(format!("{url}/replicas/{}", partition.leader)),
        );
    }
    value
}

async fn list_partitions(
    State(state): State<Confluent>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let links = links(&state, Some(&cluster_id), &headers, &uri)?;
    let info = state.inner.core.topic(&topic).await.map_err(kafka)?;
    let partitions = crate::ops::partitions_of(&state.inner.core, &info)
        .await
        .map_err(kafka)?;
    let data = partitions
        .iter()
        .map(|p| partition_json(&links, &info.name, p))
        .collect();
    Ok(ok(&collection(
        "KafkaPartitionList",
        format!("{}/partitions", links.topic(&info.name)),
        data,
    )))
}

async fn get_partition(
    State(state): State<Confluent>,
    Path((cluster_id, topic, partition)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let links = links(&state, Some(&cluster_id), &headers, &uri)?;
    let Ok(index) = partition.parse::<i32>() else {
        return Err(RestError::bad_request(
            Api::V3,
            format!("partition {partition:?} is not a partition id"),
        ));
    };
    let info = state.inner.core.topic(&topic).await.map_err(kafka)?;
    if index < 0 || index >= info.partition_count {
        return Err(RestError::partition_not_found(Api::V3));
    }
    let partition = state
        .inner
        .core
        .partition(&topic, index)
        .await
        .map_err(kafka)?;
    Ok(ok(&partition_json(&links, &info.name, &partition)))
}

/// Kafka's group state names as the v3 API writes them (`STABLE`, …).
fn state_name(state: &str) -> String {
    let mut out = String::with_capacity(state.len() + 4);
    for (i, c) in state.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn group_json(links: &Links, group: &GroupSummary) -> Value {
    let url = links.group(&group.group_id);
    json!({
        "kind": "KafkaConsumerGroup",
        "metadata": resource(url.clone(), links.crn(&format!("consumer-group={}", group.group_id))),
        "cluster_id": links.cluster,
        "consumer_group_id": group.group_id,
        "is_simple": group.is_simple,
        "partition_assignor": group.assignor,
        "state": state_name(group.state),
        "type": group.group_type.to_ascii_uppercase(),
        "coordinator": related(format!("{}/brokers/{}", links.cluster(), group.coordinator)),
        "consumers": related(format!("{url}/consumers")),
        "lag_summary": related(format!("{url}/lag-summary")),
    })
}

async fn list_groups(
    State(state): State<Confluent>,
    Path(cluster_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let links = links(&state, Some(&cluster_id), &headers, &uri)?;
    let groups = state.inner.core.list_groups().await.map_err(kafka)?;
    let data = groups.iter().map(|g| group_json(&links, g)).collect();
    Ok(ok(&collection(
        "KafkaConsumerGroupList",
        format!("{}/consumer-groups", links.cluster()),
        data,
    )))
}

async fn described(state: &Confluent, group: &str) -> Result<GroupSummary, RestError> {
    state
        .inner
        .core
        .describe_group(group)
        .await
        .map_err(kafka)?
        .ok_or_else(|| {
            RestError::plain(
                Api::V3,
                StatusCode::NOT_FOUND,
                format!("Consumer group {group} not found."),
            )
        })
}

async fn get_group(
    State(state): State<Confluent>,
    Path((cluster_id, group)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let links = links(&state, Some(&cluster_id), &headers, &uri)?;
    let summary = described(&state, &group).await?;
    Ok(ok(&group_json(&links, &summary)))
}

async fn group_consumers(
    State(state): State<Confluent>,
    Path((cluster_id, group)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let links = links(&state, Some(&cluster_id), &headers, &uri)?;
    let summary = described(&state, &group).await?;
    let url = links.group(&summary.group_id);
    let data = summary
        .members
        .iter()
        .map(|m| {
            let member_url = format!("{url}/consumers/{}", super::path_segment(&m.member_id));
            json!({
                "kind": "KafkaConsumer",
                "metadata": resource(
                    member_url.clone(),
                    links.crn(&format!(
                        "consumer-group={}/consumer={}",
                        summary.group_id, m.member_id
                    )),
                ),
                "cluster_id": links.cluster,
                "consumer_group_id": summary.group_id,
                "consumer_id": m.member_id,
                "instance_id": m.instance_id,
                "client_id": m.client_id,
                "assignments": related(format!("{member_url}/assignments")),
            })
        })
        .collect();
    Ok(ok(&collection(
        "KafkaConsumerList",
        format!("{url}/consumers"),
        data,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_states_are_written_as_confluent_names_them() {
        assert_eq!(state_name("Stable"), "STABLE");
        assert_eq!(state_name("CompletingRebalance"), "COMPLETING_REBALANCE");
        assert_eq!(state_name("Empty"), "EMPTY");
    }
}
