//! Versioned encoding of persisted values.
//!
//! Every value starts with one format-version byte, then the record's `postcard`
//! encoding. A record type that changes gets a new version: its decoder keeps
//! accepting every older version it has shipped (convert on read), and writers
//! always write the newest. Unknown versions are an error, never a guess.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::MetadataError;

/// A record stored in metadata.
pub trait Versioned: Serialize + DeserializeOwned {
    /// A name for error messages.
    const WHAT: &'static str;
    /// The version this build writes.
    const VERSION: u8;

    /// Decodes the body of an older version this build still reads (converting
    /// it to the current record), or `None` when `version` was never written.
    /// Records that never changed keep the default.
    fn decode_older(version: u8, body: &[u8]) -> Option<Result<Self, postcard::Error>> {
        let _ = (version, body);
        None
    }
}

/// Encodes `value` at its current version.
pub fn encode<T: Versioned>(value: &T) -> Vec<u8> {
    let out = vec![T::VERSION];
    // Serialising plain structs into a Vec cannot fail; an error here is a bug in
    // a record type (e.g. a map with non-string keys), so fail loudly in debug.
    match postcard::to_extend(value, out) {
        Ok(bytes) => bytes,
        Err(error) => {
            debug_assert!(false, "encoding {} failed: {error}", T::WHAT);
            vec![T::VERSION]
        }
    }
}

/// Decodes a value written by [`encode`].
pub fn decode<T: Versioned>(bytes: &[u8]) -> Result<T, MetadataError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(MetadataError::Corrupt {
            what: T::WHAT,
            detail: "empty value".into(),
        });
    };
    let decoded = if version == T::VERSION {
        postcard::from_bytes(body)
    } else {
        match T::decode_older(version, body) {
            Some(decoded) => decoded,
            None => {
                return Err(MetadataError::Corrupt {
                    what: T::WHAT,
                    detail: format!("format version {version}, this build reads {}", T::VERSION),
                });
            }
        }
    };
    decoded.map_err(|error| MetadataError::Corrupt {
        what: T::WHAT,
        detail: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PartitionState;

    #[test]
    fn values_round_trip_and_bad_bytes_are_corrupt_not_panics() {
        let state = PartitionState {
            leader: Some(3),
            leader_epoch: 7,
            log_start_offset: 10,
            high_watermark: 1_000,
            max_timestamp: Some(1_700_000_000_000),
            time_indexed_from: 0,
            open_transactions: vec![crate::OpenTransaction {
                producer_id: 4,
                first_offset: 990,
            }],
        };
        let bytes = encode(&state);
        assert_eq!(bytes[0], PartitionState::VERSION);
        assert_eq!(decode::<PartitionState>(&bytes).unwrap(), state);

        let mut wrong_version = bytes.clone();
        wrong_version[0] = 99;
        for bad in [&[][..], &wrong_version[..], &bytes[..2]] {
            let error = decode::<PartitionState>(bad).unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::Corrupt, "{error}");
        }
        // Every truncation and every flipped byte decodes or fails cleanly.
        for len in 0..bytes.len() {
            let _ = decode::<PartitionState>(&bytes[..len]);
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0xff;
            let _ = decode::<PartitionState>(&flipped);
        }
    }
}

#[cfg(test)]
mod older_versions {
    use super::*;
    use crate::{IndexEntry, SegmentId};

    /// Version 1 of an index entry, as that build wrote it (no object size).
    #[derive(Serialize)]
    struct IndexEntryV1 {
        base_offset: i64,
        last_offset: i64,
        record_count: u32,
        max_timestamp: i64,
        leader_epoch: i32,
        segment_id: SegmentId,
        object_key: String,
        byte_offset: u64,
        byte_length: u64,
    }

    #[test]
    fn an_index_entry_written_by_version_1_still_reads() {
        let segment_id = SegmentId(ulid::Ulid::from_parts(1_700_000_000_000, 9));
        let v1 = IndexEntryV1 {
            base_offset: 10,
            last_offset: 19,
            record_count: 10,
            max_timestamp: 1_700_000_000_123,
            leader_epoch: 3,
            segment_id,
            object_key: "c/segments/x".into(),
            byte_offset: 64,
            byte_length: 900,
        };
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_stdvec(&v1).unwrap());
        let entry: IndexEntry = decode(&bytes).unwrap();
        assert_eq!(entry.base_offset, 10);
        assert_eq!(entry.byte_length, 900);
        assert_eq!(entry.object_size, 0, "unknown in version 1");

        // The current version round-trips and keeps the size.
        let current = IndexEntry {
            object_size: 4_096,
            ..entry
        };
        let encoded = encode(&current);
        assert_eq!(encoded[0], IndexEntry::VERSION);
        assert_eq!(decode::<IndexEntry>(&encoded).unwrap(), current);

        // A version never written is refused, not guessed.
        let mut unknown = encoded.clone();
        unknown[0] = 0;
        assert!(decode::<IndexEntry>(&unknown).is_err());
    }
}

#[cfg(test)]
mod partition_state_versions {
    use super::*;
    use crate::PartitionState;

    /// Version 1 of a partition state, as that build wrote it (no time index).
    #[derive(Serialize)]
    struct PartitionStateV1 {
        leader: Option<i32>,
        leader_epoch: i32,
        log_start_offset: i64,
        high_watermark: i64,
    }

    #[test]
    fn a_partition_state_written_by_version_1_reads_as_time_indexed_from_its_high_watermark() {
        let v1 = PartitionStateV1 {
            leader: Some(4),
            leader_epoch: 9,
            log_start_offset: 100,
            high_watermark: 5_000,
        };
        let mut bytes = vec![1];
        bytes.extend(postcard::to_allocvec(&v1).unwrap());
        // Pinned: the bytes version 1 wrote (postcard zigzag varints).
        assert_eq!(bytes, [1, 1, 8, 18, 200, 1, 144, 78]);
        let state: PartitionState = decode(&bytes).unwrap();
        assert_eq!(
            state,
            PartitionState {
                leader: Some(4),
                leader_epoch: 9,
                log_start_offset: 100,
                high_watermark: 5_000,
                max_timestamp: None,
                time_indexed_from: 5_000,
                open_transactions: Vec::new(),
            }
        );
        // Written back, it is the current version and keeps where indexing began.
        let rewritten = encode(&state);
        assert_eq!(rewritten[0], PartitionState::VERSION);
        assert_eq!(decode::<PartitionState>(&rewritten).unwrap(), state);
    }
}

#[cfg(test)]
mod agent_record_versions {
    use super::*;
    use crate::{AgentRecord, AgentRoles};

    /// Version 2 of an agent record, as that build wrote it (no gateway).
    #[derive(Serialize)]
    struct AgentRecordV2 {
        node_id: i32,
        instance: uuid::Uuid,
        advertised_address: String,
        heartbeat: u64,
        registered_at_ms: i64,
        roles: AgentRoles,
    }

    #[test]
    fn an_agent_record_written_by_version_2_reads_without_a_gateway() {
        let v2 = AgentRecordV2 {
            node_id: 3,
            instance: uuid::Uuid::from_u128(7),
            advertised_address: "10.0.0.3:9092".into(),
            heartbeat: 41,
            registered_at_ms: 1_700_000_000_000,
            roles: AgentRoles::ALL,
        };
        let mut bytes = vec![2];
        bytes.extend(postcard::to_allocvec(&v2).unwrap());
        let record: AgentRecord = decode(&bytes).unwrap();
        assert_eq!(
            (record.node_id, record.heartbeat, record.roles),
            (3, 41, AgentRoles::ALL)
        );
        assert_eq!(record.advertised_address, "10.0.0.3:9092");
        assert_eq!(record.gateway_address, None);
        // Written back, it is the current version.
        let current = AgentRecord {
            gateway_address: Some("10.0.0.3:8080".into()),
            ..record
        };
        let encoded = encode(&current);
        assert_eq!(encoded[0], AgentRecord::VERSION);
        assert_eq!(decode::<AgentRecord>(&encoded).unwrap(), current);
    }
}
