//! Text reports for `fjord groups`: groups, one group's members and
//! assignment, and its lag, read from metadata (so they work against any
//! agent's metadata, running or not).

use std::fmt::Write as _;

use fjord_metadata::{GroupPhase, MetadataError, MetadataStore};

use super::consumer_protocol;
use super::lag::group_lag;

fn phase_name(phase: GroupPhase, members: usize) -> &'static str {
    match phase {
        _ if members == 0 => "Empty",
        GroupPhase::Empty => "Empty",
        GroupPhase::AwaitingSync => "CompletingRebalance",
        GroupPhase::Stable => "Stable",
    }
}

/// One line per stored group: id, state, generation, protocol, members.
pub async fn list_report(store: &MetadataStore) -> Result<String, MetadataError> {
    let mut out = String::new();
    let _ = writeln!(out, "GROUP\tSTATE\tGENERATION\tPROTOCOL\tMEMBERS");
    for group_id in store.list_group_ids().await? {
        let Some(group) = store.load_group(&group_id).await? else {
            continue;
        };
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            group.group_id,
            phase_name(group.phase, group.members.len()),
            group.generation,
            group.protocol_name.as_deref().unwrap_or("-"),
            group.members.len()
        );
    }
    Ok(out)
}

/// A group's stored state and members with their assigned partitions.
pub async fn describe_report(
    store: &MetadataStore,
    group_id: &str,
) -> Result<String, MetadataError> {
    let Some(group) = store.load_group(group_id).await? else {
        return Ok(format!("group {group_id} does not exist\n"));
    };
    let mut out = String::new();
    let _ = writeln!(out, "group:      {}", group.group_id);
    let _ = writeln!(
        out,
        "state:      {}",
        phase_name(group.phase, group.members.len())
    );
    let _ = writeln!(out, "generation: {}", group.generation);
    let _ = writeln!(
        out,
        "protocol:   {} / {}",
        group.protocol_type.as_deref().unwrap_or("-"),
        group.protocol_name.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        out,
        "leader:     {}",
        group.leader.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "MEMBER\tINSTANCE\tCLIENT\tHOST\tPARTITIONS");
    for member in &group.members {
        let partitions = consumer_protocol::assigned_partitions(&member.assignment)
            .map(|parts| {
                parts
                    .iter()
                    .map(|(topic, partition)| format!("{topic}/{partition}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_else(|| "?".to_owned());
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            member.member_id,
            member.group_instance_id.as_deref().unwrap_or("-"),
            member.client_id,
            member.client_host,
            if partitions.is_empty() {
                "-".to_owned()
            } else {
                partitions
            }
        );
    }
    Ok(out)
}

/// A group's lag per partition, and in total.
pub async fn lag_report(store: &MetadataStore, group_id: &str) -> Result<String, MetadataError> {
    let rows = group_lag(store, group_id).await?;
    let mut out = String::new();
    let _ = writeln!(out, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tOWNER");
    let mut total = 0;
    for row in &rows {
        total += row.lag;
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            row.topic,
            row.partition,
            row.committed
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            row.high_watermark,
            row.lag,
            row.owner.as_ref().map_or_else(
                || "-".to_owned(),
                |(member, client)| format!("{client} ({member})")
            )
        );
    }
    let _ = writeln!(out, "TOTAL LAG\t{total}");
    Ok(out)
}
