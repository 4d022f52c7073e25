//! The brokers of the cluster as admin APIs report them: the live agents (this
//! agent's view, kept by the balancer), by node id, at their advertised
//! addresses. This agent is always among them.

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
    let brokers = broker
        .cluster
        .live()
        .into_iter()
        .map(|agent| AdvertisedBroker {
            node_id: agent.node_id,
            host: agent.host,
            port: i32::from(agent.port),
        })
        .collect();
    Ok(brokers)
}
