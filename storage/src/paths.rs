//! The one place object keys are built. Nothing else in Fjord formats a key: code
//! that needs one asks [`ObjectKeys`], and keys that are stored (in the metadata
//! index) were produced here.
//!
//! Layout, under a cluster's configured prefix:
//!
//! ```text
//! <prefix>/segments/<segment ULID>.seg     a segment object (agent flush or compaction)
//! ```
//!
//! Segment ids are ULIDs, passed in by the caller (who takes them from
//! `fjord_common::IdGenerator`): their text form is 26 characters of Crockford
//! base32 that sort by creation time, so a listing for operators or for an orphan
//! sweep reads oldest first. No key is ever *discovered* by listing to learn what is
//! committed: the metadata index is the truth, and holds each key it references.
//!
//! The prefix is validated so that every key is a valid path for every
//! `object_store` backend and a plain file name on local disks: segments of
//! `[A-Za-z0-9._=-]`, separated by single `/`, none empty, `.` or `..`.

use std::fmt;

use ulid::Ulid;

use crate::error::{ErrorRepr, Result};

const SEGMENTS_DIR: &str = "segments";
const SEGMENT_SUFFIX: &str = ".seg";

/// An object's key in the bucket. Only [`ObjectKeys`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The key as text (what the metadata index stores).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ObjectKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Builds every object key of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKeys {
    /// Empty, or the validated prefix followed by `/`.
    root: String,
}

impl ObjectKeys {
    /// Keys under `prefix` (for example `"fjord/cluster-1"`; empty for the bucket's
    /// root).
    pub fn new(prefix: &str) -> Result<Self> {
        let invalid = |reason| ErrorRepr::InvalidKeyPrefix {
            prefix: prefix.to_owned(),
            reason,
        };
        if prefix.is_empty() {
            return Ok(Self {
                root: String::new(),
            });
        }
        for part in prefix.split('/') {
            if part.is_empty() {
                return Err(invalid("empty path segment (leading, trailing or double `/`)").into());
            }
            if part == "." || part == ".." {
                return Err(invalid("`.` and `..` are not allowed").into());
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'=' | b'-'))
            {
                return Err(invalid("only [A-Za-z0-9._=-] and `/` are allowed").into());
            }
        }
        Ok(Self {
            root: format!("{prefix}/"),
        })
    }

    /// The prefix these keys live under (empty for the bucket's root).
    pub fn prefix(&self) -> &str {
        self.root.strip_suffix('/').unwrap_or_default()
    }

    /// The key of segment `segment_id`: `<prefix>/segments/<ULID>.seg`.
    pub fn segment(&self, segment_id: Ulid) -> ObjectKey {
        ObjectKey(format!(
            "{}{SEGMENTS_DIR}/{segment_id}{SEGMENT_SUFFIX}",
            self.root
        ))
    }

    /// The prefix every segment key of this cluster starts with
    /// (`<prefix>/segments/`), for listing the segments in the bucket.
    pub fn segments_prefix(&self) -> String {
        format!("{}{SEGMENTS_DIR}/", self.root)
    }

    /// The segment id in `key`, if `key` is one of this cluster's segment keys
    /// exactly as [`segment`](Self::segment) builds them.
    pub fn segment_id_of(&self, key: &str) -> Option<Ulid> {
        let text = key
            .strip_prefix(self.root.as_str())?
            .strip_prefix(SEGMENTS_DIR)?
            .strip_prefix('/')?
            .strip_suffix(SEGMENT_SUFFIX)?;
        let id = Ulid::from_string(text).ok()?;
        // Ulid parsing accepts lower case and aliases; only the canonical form is a key.
        (id.to_string() == text).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ErrorKind;

    #[test]
    fn segment_keys_have_the_documented_layout() {
        let id = Ulid::from_parts(1_700_000_000_000, 42);
        let keys = ObjectKeys::new("fjord/cluster-1").unwrap();
        assert_eq!(keys.prefix(), "fjord/cluster-1");
        assert_eq!(
            keys.segment(id).as_str(),
            format!("fjord/cluster-1/segments/{id}.seg")
        );
        let root = ObjectKeys::new("").unwrap();
        assert_eq!(root.prefix(), "");
        assert_eq!(root.segment(id).to_string(), format!("segments/{id}.seg"));
    }

    #[test]
    fn bad_prefixes_are_rejected() {
        for prefix in [
            "/a", "a/", "a//b", "a/../b", ".", "a b", "a\\b", "ü", "a/\n",
        ] {
            let error = ObjectKeys::new(prefix).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Invalid, "{prefix:?}");
        }
    }

    #[test]
    fn keys_sort_by_creation_time() {
        let keys = ObjectKeys::new("p").unwrap();
        let older = keys.segment(Ulid::from_parts(1_000, u128::MAX >> 48));
        let newer = keys.segment(Ulid::from_parts(1_001, 0));
        assert!(older < newer);
    }

    #[test]
    fn foreign_keys_have_no_segment_id() {
        let keys = ObjectKeys::new("p").unwrap();
        let id = Ulid::from_parts(1_700_000_000_000, u128::MAX >> 48);
        assert_ne!(id.to_string(), id.to_string().to_lowercase());
        let other = ObjectKeys::new("q").unwrap();
        assert_eq!(keys.segment_id_of(other.segment(id).as_str()), None);
        assert_eq!(keys.segment_id_of("p/segments/nope.seg"), None);
        assert_eq!(
            keys.segment_id_of(&format!("p/segments/{id}.seg").to_lowercase()),
            None
        );
        assert_eq!(keys.segment_id_of(&format!("p/segments/{id}")), None);
    }

    proptest! {
        #[test]
        fn segment_id_round_trips(time in 0u64..(1 << 48), random: u128, prefix in "([a-z0-9=_-]{1,8}/){0,3}[a-z0-9]{1,8}|") {
            let keys = ObjectKeys::new(&prefix).unwrap();
            let id = Ulid::from_parts(time, random);
            let key = keys.segment(id);
            prop_assert_eq!(keys.segment_id_of(key.as_str()), Some(id));
        }
    }
}
