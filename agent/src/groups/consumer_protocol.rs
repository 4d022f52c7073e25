//! Reading the `consumer` protocol's embedded messages: a member's subscription
//! (in its join metadata) and its assignment (from the leader). The coordinator
//! treats both as opaque bytes except where Kafka reads them too (`OffsetDelete`
//! refuses offsets of subscribed topics) and for lag reports.
//!
//! Both start with an `i16` version; newer versions extend older ones, so a
//! version beyond what the codec knows is read as the newest it knows.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

/// The newest version of the embedded messages the codec reads.
const NEWEST_KNOWN_VERSION: i16 = 3;

fn version_and_body(bytes: &[u8]) -> Option<(i16, Bytes)> {
    let mut body = Bytes::copy_from_slice(bytes);
    if body.remaining() < 2 {
        return None;
    }
    let version = body.get_i16();
    if version < 0 {
        return None;
    }
    Some((version.min(NEWEST_KNOWN_VERSION), body))
}

/// The topics a subscription names; `None` if it does not decode.
pub(crate) fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let (version, mut body) = version_and_body(metadata)?;
    let subscription = ConsumerProtocolSubscription::decode(&mut body, version).ok()?;
    Some(
        subscription
            .topics
            .iter()
            .map(|topic| topic.to_string())
            .collect(),
    )
}

/// The `(topic, partition)` pairs an assignment names; `None` if it does not
/// decode (an empty assignment is an empty list).
pub(crate) fn assigned_partitions(assignment: &[u8]) -> Option<Vec<(String, i32)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let (version, mut body) = version_and_body(assignment)?;
    let decoded = ConsumerProtocolAssignment::decode(&mut body, version).ok()?;
    Some(
        decoded
            .assigned_partitions
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|partition| (topic.topic.0.to_string(), *partition))
            })
            .collect(),
    )
}

/// `partitions` (topic, partitions) as a consumer-protocol assignment
/// (version 0), as a classic leader would have sent it: how `DescribeGroups`
/// shows a member of a server-side group.
pub(crate) fn encode_assignment(partitions: &[(String, Vec<i32>)]) -> Bytes {
    use bytes::BufMut;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    let mut assignment = ConsumerProtocolAssignment::default();
    assignment.assigned_partitions = partitions
        .iter()
        .map(|(topic, partitions)| {
            let mut entry = TopicPartition::default();
            entry.topic = TopicName(StrBytes::from_string(topic.clone()));
            entry.partitions = partitions.clone();
            entry
        })
        .collect();
    let mut bytes = bytes::BytesMut::new();
    bytes.put_i16(0);
    // Encoding plain lists into a buffer does not fail.
    if assignment.encode(&mut bytes, 0).is_err() {
        return Bytes::new();
    }
    bytes.freeze()
}

/// `topics` as a consumer-protocol subscription (version 0).
pub(crate) fn encode_subscription(topics: &[String]) -> Bytes {
    use bytes::BufMut;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = topics
        .iter()
        .map(|t| StrBytes::from_string(t.clone()))
        .collect();
    let mut bytes = bytes::BytesMut::new();
    bytes.put_i16(0);
    if subscription.encode(&mut bytes, 0).is_err() {
        return Bytes::new();
    }
    bytes.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn subscriptions_and_assignments_decode_and_garbage_does_not_panic() {
        let mut subscription = ConsumerProtocolSubscription::default();
        subscription.topics = vec![StrBytes::from_static_str("orders")];
        let mut bytes = bytes::BytesMut::new();
        bytes.put_i16(1);
        subscription.encode(&mut bytes, 1).unwrap();
        assert_eq!(subscribed_topics(&bytes), Some(vec!["orders".to_owned()]));

        let mut assignment = ConsumerProtocolAssignment::default();
        let mut topic = TopicPartition::default();
        topic.topic = TopicName(StrBytes::from_static_str("orders"));
        topic.partitions = vec![0, 3];
        assignment.assigned_partitions = vec![topic];
        let mut bytes = bytes::BytesMut::new();
        // A version from the future reads as the newest known one.
        bytes.put_i16(7);
        assignment.encode(&mut bytes, 3).unwrap();
        assert_eq!(
            assigned_partitions(&bytes),
            Some(vec![("orders".to_owned(), 0), ("orders".to_owned(), 3)])
        );
        assert_eq!(assigned_partitions(&[]), Some(Vec::new()));

        for len in 0..bytes.len() {
            let _ = assigned_partitions(&bytes[..len]);
            let _ = subscribed_topics(&bytes[..len]);
        }
        assert_eq!(subscribed_topics(&[0xff, 0xff, 1, 2]), None);

        let encoded = encode_assignment(&[("a".into(), vec![1, 2]), ("b".into(), vec![0])]);
        assert_eq!(
            assigned_partitions(&encoded),
            Some(vec![("a".into(), 1), ("a".into(), 2), ("b".into(), 0)])
        );
        let encoded = encode_subscription(&["x".into(), "y".into()]);
        assert_eq!(
            subscribed_topics(&encoded),
            Some(vec!["x".into(), "y".into()])
        );
    }
}
