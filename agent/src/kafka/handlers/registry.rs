//! The brokers of the cluster as admin APIs report them: the agents in the
//! registry, by node id, at their advertised addresses. This agent is always
//! among them, at the address it advertises itself.
//!
//! The registry has no liveness yet: an agent that died without deregistering
//! stays listed until liveness tracking removes it. `Metadata` therefore still
//! advertises this agent alone, the one that leads every partition it reports.

use fjord_metadata::MetadataError;

use crate::Broker;

/// A broker as clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AdvertisedBroker {
    pub(super) node_id: i32,
    pub(super) host: String,
    pub(super) port: i32,
}

/// Every registered agent, by node id, this one included.
pub(super) async fn registered_brokers(
    broker: &Broker,
) -> Result<Vec<AdvertisedBroker>, MetadataError> {
    let agents = broker.store.list_agents().await?;
    let mut brokers: Vec<AdvertisedBroker> = agents
        .into_iter()
        .filter(|agent| agent.node_id != broker.node_id)
        .filter_map(|agent| {
            let parsed = agent
                .advertised_address
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)));
            if parsed.is_none() {
                tracing::warn!(
                    node_id = agent.node_id,
                    address = %agent.advertised_address,
                    "registered agent has no host:port address"
                );
            }
            parsed.map(|(host, port)| AdvertisedBroker {
                node_id: agent.node_id,
                host,
                port: i32::from(port),
            })
        })
        .collect();
    brokers.push(AdvertisedBroker {
        node_id: broker.node_id,
        host: broker.advertised_host.clone(),
        port: i32::from(broker.advertised_port),
    });
    brokers.sort_by_key(|b| b.node_id);
    Ok(brokers)
}
