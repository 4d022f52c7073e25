//! Records: what is produced ([`Record`]), what a produce answers
//! ([`RecordMetadata`]), what is read ([`ConsumedRecord`]), and their JSON on
//! the wire (bytes always sent base64-encoded, so any bytes go through).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A record header: a text key and optional bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The key.
    pub key: String,
    /// The value; `None` for a null value.
    pub value: Option<Bytes>,
}

/// A record to produce.
///
/// ```
/// use fjord_client::Record;
/// let record = Record::new("hello")
///     .with_key("user-1")
///     .with_header("source", "docs")
///     .with_timestamp(1_765_000_000_000);
/// assert_eq!(record.value.as_deref(), Some(&b"hello"[..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The key; keyed records go to `murmur2(key)`'s partition unless a
    /// partition is given.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// The partition; `None`: by the key, or (no key) the producer's current
    /// partition for keyless records.
    pub partition: Option<i32>,
    /// The timestamp (ms since the epoch); `None`: the time the agent
    /// receives it.
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with `value` and nothing else.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// With `key`.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// With one more header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// To `partition`.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// With `timestamp` (ms since the epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Bytes this record counts for in batches and back-pressure (its bytes
    /// plus a fixed overhead).
    pub(crate) fn size(&self) -> usize {
        32 + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|h| 8 + h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
                .sum::<usize>()
    }
}

/// Where a produced record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Its partition.
    pub partition: i32,
    /// Its offset (`-1` with `acks=0`).
    pub offset: i64,
    /// Its timestamp (the one given, or the time the agent received it).
    pub timestamp: i64,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Whether the timestamp is the producer's (`create_time`) or the log's
    /// (`log_append_time`).
    pub timestamp_type: String,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value.
    pub value: Option<Bytes>,
    /// Its headers, in order.
    pub headers: Vec<Header>,
}

// ----- the wire -----

#[derive(Debug, Serialize)]
pub(crate) struct WireHeader {
    key: String,
    value: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    value: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<WireHeader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
}

/// A produce request's body.
#[derive(Debug, Serialize)]
pub(crate) struct WireProduce {
    pub(crate) records: Vec<WireRecord>,
    pub(crate) encoding: &'static str,
}

impl WireProduce {
    /// The body of `records`, base64-encoded.
    pub(crate) fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let b64 = |b: &Bytes| BASE64.encode(b);
        Self {
            records: records
                .into_iter()
                .map(|r| WireRecord {
                    key: r.key.as_ref().map(b64),
                    value: r.value.as_ref().map(b64),
                    headers: r
                        .headers
                        .iter()
                        .map(|h| WireHeader {
                            key: h.key.clone(),
                            value: h.value.as_ref().map(b64),
                        })
                        .collect(),
                    partition: r.partition,
                    timestamp: r.timestamp,
                })
                .collect(),
            encoding: "base64",
        }
    }
}

/// One record's outcome in a produce answer.
#[derive(Debug, Deserialize)]
pub(crate) struct WireOutcome {
    pub(crate) partition: i32,
    #[serde(default)]
    pub(crate) offset: Option<i64>,
    #[serde(default)]
    pub(crate) timestamp: Option<i64>,
}

/// A produce answer.
#[derive(Debug, Deserialize)]
pub(crate) struct WireProduceAnswer {
    pub(crate) offsets: Vec<WireOutcome>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireReadHeader {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

/// A record as the gateway reads it back.
#[derive(Debug, Deserialize)]
pub(crate) struct WireReadRecord {
    partition: i32,
    offset: i64,
    timestamp: i64,
    #[serde(default)]
    timestamp_type: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    headers: Vec<WireReadHeader>,
    #[serde(default)]
    encoding: Option<String>,
}

impl WireReadRecord {
    /// The record, its bytes decoded as its `encoding` says.
    pub(crate) fn decode(self) -> Result<ConsumedRecord> {
        let base64 = self.encoding.as_deref() == Some("base64");
        let field = |text: Option<String>| -> Result<Option<Bytes>> {
            match text {
                None => Ok(None),
                Some(text) if base64 => BASE64
                    .decode(text.as_bytes())
                    .map(|b| Some(Bytes::from(b)))
                    .map_err(|e| Error::Decode(format!("a record field is not base64: {e}"))),
                Some(text) => Ok(Some(Bytes::from(text.into_bytes()))),
            }
        };
        Ok(ConsumedRecord {
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key: field(self.key)?,
            value: field(self.value)?,
            headers: self
                .headers
                .into_iter()
                .map(|h| {
                    Ok(Header {
                        key: h.key,
                        value: field(h.value)?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_bodies_are_base64() {
        let record = Record::new(&b"\xff\x00"[..])
            .with_key("k")
            .with_header("h", "v");
        let body = serde_json::to_value(WireProduce::of([&record])).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "records": [{"key": "aw==", "value": "/wA=", "headers": [{"key": "h", "value": "dg=="}]}],
                "encoding": "base64"
            })
        );
    }

    #[test]
    fn read_records_decode_either_encoding() {
        let text: WireReadRecord = serde_json::from_str(
            r#"{"partition":1,"offset":2,"timestamp":3,"timestamp_type":"create_time",
                "key":"k","value":null,"headers":[{"key":"h","value":"x"}],"encoding":"utf8"}"#,
        )
        .unwrap();
        let record = text.decode().unwrap();
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.value, None);
        assert_eq!(record.headers[0].value.as_deref(), Some(&b"x"[..]));
        let b64: WireReadRecord = serde_json::from_str(
            r#"{"partition":1,"offset":2,"timestamp":3,"timestamp_type":"create_time",
                "key":"aw==","value":"/wA=","headers":[],"encoding":"base64"}"#,
        )
        .unwrap();
        assert_eq!(
            b64.decode().unwrap().value.as_deref(),
            Some(&b"\xff\x00"[..])
        );
    }
}
