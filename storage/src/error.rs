//! Errors, in two tiers.
//!
//! Inside the crate every failure is an [`ErrorRepr`] variant that says precisely
//! what went wrong, with the numbers needed to debug it (offsets, lengths, stored and
//! computed checksums). Callers outside the crate see a [`StorageError`]: its
//! [`Display`](std::fmt::Display) carries that full message, and its
//! [`kind`](StorageError::kind) is a small [`ErrorKind`] that tells them what to do
//! about it. [`ErrorRepr::kind`] maps one to the other with an exhaustive `match`,
//! so adding a variant forces a decision about its kind.

use std::fmt;

use uuid::Uuid;

use crate::segment::format::{CHUNK_MAGIC, SEGMENT_MAGIC};

/// What a caller should do about a [`StorageError`]. Not `non_exhaustive`: the
/// agent maps every kind to a Kafka error code in one exhaustive match, and a
/// new kind must be classified there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object does not exist. For an object that committed metadata references,
    /// this is data loss, not a reason to retry.
    NotFound,
    /// The bytes are damaged: a checksum, magic number, length or structural check
    /// failed. Retrying the same read returns the same bytes; alert, do not serve.
    Corrupt,
    /// The bytes are a segment format version (or feature) this build cannot read.
    /// Upgrade the reader; the data is probably fine.
    Unsupported,
    /// A temporary failure (network, throttling, timeout); retrying may succeed.
    Transient,
    /// The caller asked for something impossible (bad arguments or input). Retrying
    /// the same request fails the same way.
    Invalid,
    /// A bug or an environment failure inside this crate or a library it uses.
    Internal,
}

impl ErrorKind {
    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(self) -> bool {
        match self {
            ErrorKind::Transient => true,
            ErrorKind::NotFound
            | ErrorKind::Corrupt
            | ErrorKind::Unsupported
            | ErrorKind::Invalid
            | ErrorKind::Internal => false,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Transient => "transient",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Internal => "internal",
        };
        f.write_str(name)
    }
}

/// The error every public function of this crate returns.
///
/// Match on [`kind`](Self::kind); print it (`{}`) for the precise cause.
pub struct StorageError {
    repr: Box<ErrorRepr>,
}

impl StorageError {
    /// What the caller should do about this error.
    pub fn kind(&self) -> ErrorKind {
        self.repr.kind()
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// An object-store request about `key` failed (for callers that talk to
    /// an [`object_store::ObjectStore`] directly, as the agent's upload does).
    pub fn object_store(
        operation: &'static str,
        key: &crate::ObjectKey,
        source: object_store::Error,
    ) -> Self {
        ErrorRepr::ObjectStore {
            operation,
            key: key.as_str().to_owned(),
            source,
        }
        .into()
    }

    #[cfg(test)]
    pub(crate) fn repr(&self) -> &ErrorRepr {
        &self.repr
    }
}

impl fmt::Debug for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageError")
            .field("kind", &self.kind())
            .field("repr", &self.repr)
            .finish()
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.repr, self.kind())
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.repr)
    }
}

impl From<ErrorRepr> for StorageError {
    fn from(repr: ErrorRepr) -> Self {
        Self {
            repr: Box::new(repr),
        }
    }
}

/// The result type of this crate's public functions.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Which part of a segment object a format error was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The object as a whole (its length).
    Object,
    /// The fixed header at the start of the object.
    Header,
    /// A chunk's fixed header.
    ChunkHeader,
    /// A chunk's (compressed) batches.
    ChunkPayload,
    /// The footer index.
    Footer,
    /// The fixed trailer at the end of the object.
    Trailer,
}

impl Part {
    /// The magic number this part starts or ends with, if it has one.
    fn magic(self) -> Option<[u8; 4]> {
        match self {
            Part::Header | Part::Trailer => Some(SEGMENT_MAGIC),
            Part::ChunkHeader => Some(CHUNK_MAGIC),
            Part::Object | Part::ChunkPayload | Part::Footer => None,
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Part::Object => "segment object",
            Part::Header => "segment header",
            Part::ChunkHeader => "chunk header",
            Part::ChunkPayload => "chunk payload",
            Part::Footer => "segment footer",
            Part::Trailer => "segment trailer",
        };
        f.write_str(name)
    }
}

/// Shows a magic number as text when it is printable, as bytes otherwise.
struct MagicDisplay(Option<[u8; 4]>);

impl fmt::Display for MagicDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(bytes) if bytes.iter().all(u8::is_ascii_graphic) => {
                write!(f, "{:?}", String::from_utf8_lossy(&bytes))
            }
            Some(bytes) => write!(f, "{bytes:02x?}"),
            None => f.write_str("none"),
        }
    }
}

/// Every way this crate can fail, precisely. Never leaves the crate: callers get a
/// [`StorageError`] wrapping it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ErrorRepr {
    #[error("{part} truncated: {len} bytes available, {needed} needed")]
    TooShort { part: Part, len: u64, needed: u64 },

    #[error(
        "bad magic number in {part}: found {}, expected {}",
        MagicDisplay(Some(*found)),
        MagicDisplay(part.magic())
    )]
    BadMagic { part: Part, found: [u8; 4] },

    #[error(
        "{part} has segment format version {found}; this build reads versions {}..={}",
        crate::segment::format::OLDEST_READABLE_VERSION,
        crate::segment::format::FORMAT_VERSION
    )]
    UnsupportedVersion { part: Part, found: u16 },

    #[error("segment header has format version {header} but the trailer has {trailer}")]
    VersionMismatch { header: u16, trailer: u16 },

    #[error("{part}: reserved field `{field}` is {value:#x}, must be zero in this format version")]
    ReservedNonZero {
        part: Part,
        field: &'static str,
        value: u64,
    },

    #[error("{part} checksum mismatch: stored crc32c {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        part: Part,
        stored: u32,
        computed: u32,
    },

    #[error("{part} malformed: {reason}")]
    Malformed { part: Part, reason: String },

    #[error(
        "chunk does not match its index entry: {field} is {in_chunk} in the chunk but {in_entry} in the index"
    )]
    ChunkEntryMismatch {
        field: &'static str,
        in_entry: String,
        in_chunk: String,
    },

    #[error("zstd decompression of the chunk of {topic_id}/{partition} failed: {source}")]
    Decompress {
        topic_id: Uuid,
        partition: i32,
        source: std::io::Error,
    },

    #[error(
        "chunk of {topic_id}/{partition} decompressed to {actual} bytes, its header says {expected}"
    )]
    DecompressedLength {
        topic_id: Uuid,
        partition: i32,
        expected: u64,
        actual: u64,
    },

    #[error(
        "tail of {tail_len} bytes is longer than the {object_len}-byte object it claims to end"
    )]
    TailLongerThanObject { tail_len: u64, object_len: u64 },

    #[error("invalid chunk for {topic_id}/{partition}: {reason}")]
    InvalidChunk {
        topic_id: Uuid,
        partition: i32,
        reason: String,
    },

    #[error("a segment needs at least one chunk")]
    NoChunks,

    #[error("too many chunks for one segment: {count}, at most {max}")]
    TooManyChunks { count: usize, max: usize },

    #[error("zstd compression level {level} is outside {min}..={max}")]
    InvalidCompressionLevel { level: i32, min: i32, max: i32 },

    #[error("zstd compression failed: {source}")]
    Compress { source: std::io::Error },

    #[error("invalid object key prefix {prefix:?}: {reason}")]
    InvalidKeyPrefix {
        prefix: String,
        reason: &'static str,
    },

    #[error("object store {operation} of {key} failed: {source}")]
    ObjectStore {
        operation: &'static str,
        key: String,
        source: object_store::Error,
    },

    #[error("invalid object store URL {url:?}: {reason}")]
    InvalidStoreUrl { url: String, reason: String },

    #[error("short read of {key}: asked for bytes {range:?}, got {received} bytes")]
    ShortRead {
        key: String,
        range: std::ops::Range<u64>,
        received: u64,
    },
}

impl ErrorRepr {
    /// The public kind of this error. Exhaustive on purpose: no `_ =>`.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            ErrorRepr::TooShort { .. }
            | ErrorRepr::BadMagic { .. }
            | ErrorRepr::VersionMismatch { .. }
            | ErrorRepr::ReservedNonZero { .. }
            | ErrorRepr::ChecksumMismatch { .. }
            | ErrorRepr::Malformed { .. }
            | ErrorRepr::ChunkEntryMismatch { .. }
            | ErrorRepr::Decompress { .. }
            | ErrorRepr::DecompressedLength { .. } => ErrorKind::Corrupt,
            ErrorRepr::UnsupportedVersion { .. } => ErrorKind::Unsupported,
            ErrorRepr::TailLongerThanObject { .. }
            | ErrorRepr::InvalidChunk { .. }
            | ErrorRepr::NoChunks
            | ErrorRepr::TooManyChunks { .. }
            | ErrorRepr::InvalidCompressionLevel { .. }
            | ErrorRepr::InvalidKeyPrefix { .. }
            | ErrorRepr::InvalidStoreUrl { .. } => ErrorKind::Invalid,
            ErrorRepr::Compress { .. } => ErrorKind::Internal,
            // A body that ends early is a broken connection, not damaged data.
            ErrorRepr::ShortRead { .. } => ErrorKind::Transient,
            ErrorRepr::ObjectStore { source, .. } => object_store_error_kind(source),
        }
    }

    /// A [`ErrorRepr::Malformed`] for `part`.
    pub(crate) fn malformed(part: Part, reason: impl Into<String>) -> Self {
        ErrorRepr::Malformed {
            part,
            reason: reason.into(),
        }
    }
}

/// The kind of an `object_store` error. That enum is `#[non_exhaustive]`, so unlike
/// our own mapping this one needs a catch-all arm: variants added upstream count as
/// internal until they are mapped here.
pub(crate) fn object_store_error_kind(error: &object_store::Error) -> ErrorKind {
    match error {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        // HTTP stores report network errors, throttling and 5xx answers (after their
        // own retries) as `Generic`.
        object_store::Error::Generic { .. } => ErrorKind::Transient,
        object_store::Error::InvalidPath { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::AlreadyExists { .. }
        | object_store::Error::Precondition { .. }
        | object_store::Error::NotModified { .. }
        | object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::UnknownConfigurationKey { .. } => ErrorKind::Invalid,
        object_store::Error::JoinError { .. } | object_store::Error::NotImplemented { .. } => {
            ErrorKind::Internal
        }
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_part_and_the_kind() {
        let error = StorageError::from(ErrorRepr::BadMagic {
            part: Part::Trailer,
            found: *b"PAR1",
        });
        assert_eq!(error.kind(), ErrorKind::Corrupt);
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            "bad magic number in segment trailer: found \"PAR1\", expected \"FJSG\" (corrupt)"
        );
    }

    #[test]
    fn unprintable_magic_is_shown_as_bytes() {
        let error = StorageError::from(ErrorRepr::BadMagic {
            part: Part::ChunkHeader,
            found: [0, 1, 2, 0xff],
        });
        assert!(error.to_string().contains("[00, 01, 02, ff]"), "{error}");
    }

    #[test]
    fn only_transient_is_retryable() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::Corrupt,
            ErrorKind::Unsupported,
            ErrorKind::Invalid,
            ErrorKind::Internal,
        ] {
            assert!(!kind.is_retryable(), "{kind}");
        }
        assert!(ErrorKind::Transient.is_retryable());
    }
}
