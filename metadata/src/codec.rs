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
    if version != T::VERSION {
        return Err(MetadataError::Corrupt {
            what: T::WHAT,
            detail: format!("format version {version}, this build reads {}", T::VERSION),
        });
    }
    postcard::from_bytes(body).map_err(|error| MetadataError::Corrupt {
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
