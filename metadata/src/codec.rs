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
