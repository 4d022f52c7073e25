//! Records as JSON, and their Kafka v2 record batches.
//!
//! Keys, values and header values are bytes; in JSON they are strings, either
//! UTF-8 text (`"encoding": "utf8"`, the default) or base64 (`"base64"`,
//! standard alphabet with padding). `null` is a null key or value (a value of
//! `null` is a tombstone, as in Kafka).
//!
//! Batches are encoded and decoded by `kafka-protocol`. One limit comes with
//! it: a record's headers are a map there, so two headers with the same key
//! in one record are read back as one (the last value, at the first's place).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};

/// How bytes are written as JSON strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 text.
    #[default]
    Utf8,
    /// Base64 (standard alphabet, padded).
    Base64,
}

/// A list of JSON objects as `T`s. A derived `Deserialize` also takes a
/// struct written as an array of its fields (`[null, "v"]`), which this API
/// does not document and refuses: each element must be an object.
fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Elements<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Elements<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of objects")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(element) = seq.next_element_seed(Object(std::marker::PhantomData))? {
                out.push(element);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(Elements(std::marker::PhantomData))
}

/// One JSON object as `T` (see [`objects`]).
struct Object<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> serde::de::DeserializeSeed<'de> for Object<T> {
    type Value = T;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
    }
}

/// `text` as one JSON object `T` (an array or another value is refused, as
/// in [`objects`]).
pub fn object_from_str<'de, T: Deserialize<'de>>(text: &'de str) -> serde_json::Result<T> {
    use serde::de::DeserializeSeed as _;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Object(std::marker::PhantomData).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// `bytes` as one JSON object `T` (see [`object_from_str`]).
pub fn object_from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> serde_json::Result<T> {
    use serde::de::DeserializeSeed as _;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Object(std::marker::PhantomData).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A record header in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonHeader {
    /// Its key (always text, as in Kafka).
    pub key: String,
    /// Its value; `null` for none.
    #[serde(default)]
    pub value: Option<String>,
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRecord {
    /// The key; `null` or absent for none.
    #[serde(default)]
    pub key: Option<String>,
    /// The value; `null` or absent for none (a tombstone).
    #[serde(default)]
    pub value: Option<String>,
    /// Headers, in order.
    #[serde(default, deserialize_with = "objects")]
    pub headers: Vec<JsonHeader>,
    /// The partition; absent: by the key (murmur2), or one partition for all
    /// of a request's records without a key.
    #[serde(default)]
    pub partition: Option<i32>,
    /// The record's timestamp (ms since the epoch); absent: when received.
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// How this record's key, value and header values are written; absent:
    /// the request's `encoding`.
    #[serde(default)]
    pub encoding: Option<Encoding>,
}

/// A produce request's JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceBody {
    /// The records, in order.
    #[serde(deserialize_with = "objects")]
    pub records: Vec<JsonRecord>,
    /// How the records' bytes are written, unless a record says otherwise.
    #[serde(default)]
    pub encoding: Encoding,
}

/// A record read, in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (ms since the epoch).
    pub timestamp: i64,
    /// `create_time` or `log_append_time`.
    pub timestamp_type: &'static str,
    /// Its key.
    pub key: Option<String>,
    /// Its value.
    pub value: Option<String>,
    /// Its headers, in order.
    pub headers: Vec<JsonHeader>,
    /// How its bytes are written (base64 when asked, or when they are not
    /// UTF-8 although text was asked).
    pub encoding: Encoding,
}

/// A record's bytes, decoded from JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBytes {
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Decodes one JSON string of bytes.
fn decode_field(text: &str, encoding: Encoding, what: &str) -> Result<Bytes, String> {
    match encoding {
        Encoding::Utf8 => Ok(Bytes::copy_from_slice(text.as_bytes())),
        Encoding::Base64 => BASE64
            .decode(text)
            .map(Bytes::from)
            .map_err(|error| format!("{what} is not valid base64: {error}")),
    }
}

impl JsonRecord {
    /// Its bytes, decoded as its encoding (or `default`) says.
    pub fn bytes(&self, default: Encoding) -> Result<RecordBytes, String> {
        let encoding = self.encoding.unwrap_or(default);
        let key = self
            .key
            .as_deref()
            .map(|k| decode_field(k, encoding, "key"))
            .transpose()?;
        let value = self
            .value
            .as_deref()
            .map(|v| decode_field(v, encoding, "value"))
            .transpose()?;
        let headers = self
            .headers
            .iter()
            .map(|h| {
                let value = h
                    .value
                    .as_deref()
                    .map(|v| decode_field(v, encoding, "header value"))
                    .transpose()?;
                Ok((h.key.clone(), value))
            })
            .collect::<Result<_, String>>()?;
        Ok(RecordBytes {
            key,
            value,
            headers,
        })
    }
}

/// An idempotent producer's part of a batch: its id, epoch, and the sequence
/// number of the batch's first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSequence {
    /// The producer id.
    pub id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// The first record's sequence number in this partition.
    pub base_sequence: i32,
}

/// One uncompressed v2 batch of `records` (timestamp, bytes): offsets are
/// relative (the leader assigns them); idempotent when `producer` is given.
pub fn encode_batch(
    records: &[(i64, RecordBytes)],
    producer: Option<ProducerSequence>,
) -> Result<Bytes, String> {
    let (producer_id, producer_epoch, base_sequence) =
        producer.map_or((-1, -1, -1), |p| (p.id, p.epoch, p.base_sequence));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (timestamp, bytes))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::try_from(i).unwrap_or(i64::MAX),
            sequence: if base_sequence < 0 {
                -1
            } else {
                // Sequence numbers wrap around, as Kafka's do.
                base_sequence.wrapping_add(i32::try_from(i).unwrap_or(i32::MAX)) & i32::MAX
            },
            timestamp: *timestamp,
            key: bytes.key.clone(),
            value: bytes.value.clone(),
            headers: bytes
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|error| format!("cannot encode the records: {error}"))?;
    Ok(out.freeze())
}

/// Writes bytes as `encoding`; `None` when text was asked and they are not UTF-8.
fn encode_field(bytes: &Bytes, encoding: Encoding) -> Option<String> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_owned),
        Encoding::Base64 => Some(BASE64.encode(bytes)),
    }
}

/// A decoded record as JSON, in `encoding` (falling back to base64 for bytes
/// that are not UTF-8).
pub fn to_json(partition: i32, record: &Record, encoding: Encoding) -> ReadRecord {
    let write = |encoding| -> Option<ReadRecord> {
        let field = |b: &Option<Bytes>| -> Option<Option<String>> {
            match b {
                None => Some(None),
                Some(bytes) => encode_field(bytes, encoding).map(Some),
            }
        };
        Some(ReadRecord {
            partition,
            offset: record.offset,
            timestamp: record.timestamp,
            timestamp_type: match record.timestamp_type {
                TimestampType::Creation => "create_time",
                TimestampType::LogAppend => "log_append_time",
            },
            key: field(&record.key)?,
            value: field(&record.value)?,
            headers: record
                .headers
                .iter()
                .map(|(k, v)| {
                    Some(JsonHeader {
                        key: k.to_string(),
                        value: field(v)?,
                    })
                })
                .collect::<Option<_>>()?,
            encoding,
        })
    };
    write(encoding)
        .or_else(|| write(Encoding::Base64))
        .unwrap_or_else(|| ReadRecord {
            partition,
            offset: record.offset,
            timestamp: record.timestamp,
            timestamp_type: "create_time",
            key: None,
            value: None,
            headers: Vec::new(),
            encoding: Encoding::Base64,
        })
}

/// What [`decode_records`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRecords {
    /// The records at or after the asked offset (control records skipped), at
    /// most the asked count.
    pub records: Vec<Record>,
    /// Where the next read should start: after the last record returned, or
    /// after the last batch read when no record was cut off.
    pub next_offset: i64,
}

/// The records of stored `batches` from `offset` on (control records
/// skipped), at most `max_records`.
pub fn decode_records(
    batches: Bytes,
    offset: i64,
    max_records: usize,
) -> Result<DecodedRecords, String> {
    let mut buf = batches;
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .map_err(|error| format!("a stored batch does not decode: {error}"))?;
    let mut records = Vec::new();
    let mut next_offset = offset;
    for set in sets {
        for record in set.records {
            if record.offset < offset {
                continue;
            }
            if records.len() >= max_records {
                return Ok(DecodedRecords {
                    records,
                    next_offset,
                });
            }
            next_offset = record.offset + 1;
            if !record.control {
                records.push(record);
            }
        }
    }
    Ok(DecodedRecords {
        records,
        next_offset,
    })
}

/// What [`decode_batches`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The records at or after the asked offset, at most the asked count.
    pub records: Vec<ReadRecord>,
    /// Where the next read should start.
    pub next_offset: i64,
}

/// [`decode_records`], as JSON records of `partition` in `encoding`.
pub fn decode_batches(
    partition: i32,
    batches: Bytes,
    offset: i64,
    max_records: usize,
    encoding: Encoding,
) -> Result<Decoded, String> {
    let decoded = decode_records(batches, offset, max_records)?;
    Ok(Decoded {
        records: decoded
            .records
            .iter()
            .map(|record| to_json(partition, record, encoding))
            .collect(),
        next_offset: decoded.next_offset,
    })
}

/// A map of topic configs from JSON (values as strings, numbers or booleans,
/// as a user would write them).
pub fn configs_from_json(
    configs: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, String> {
    configs
        .iter()
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "config {name}: a string, number or boolean, not {other}"
                    ));
                }
            };
            Ok((name.clone(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&str>, value: Option<&[u8]>, headers: &[(&str, &[u8])]) -> RecordBytes {
        RecordBytes {
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(Bytes::copy_from_slice),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some(Bytes::copy_from_slice(v))))
                .collect(),
        }
    }

    #[test]
    fn records_and_headers_are_objects_never_arrays_of_their_fields() {
        let body: ProduceBody = object_from_str(
            r#"{"records": [{"value": "v", "headers": [{"key": "h", "value": null}]}]}"#,
        )
        .unwrap();
        assert_eq!(body.records[0].headers[0].key, "h");
        for bad in [
            r#"{"records": [[null, null]]}"#,
            r#"{"records": [{"value": "v", "headers": [["h", "x"]]}]}"#,
            r#"[[{"value": "v"}], "utf8"]"#,
            r#"{"records": [{"value": "v"}]} trailing"#,
        ] {
            assert!(object_from_str::<ProduceBody>(bad).is_err(), "{bad}");
        }
        assert!(object_from_str::<JsonRecord>("[null, \"v\"]").is_err());
        assert!(object_from_slice::<JsonRecord>(br#"{"key": "k"}"#).is_ok());
    }

    #[test]
    fn a_batch_decodes_to_what_was_encoded() {
        let batch = encode_batch(
            &[
                (1_000, record(Some("k1"), Some(b"v1"), &[("h", b"x")])),
                (1_001, record(None, None, &[])),
                (1_002, record(Some("k3"), Some(b"\xff\x00"), &[])),
            ],
            None,
        )
        .unwrap();
        let decoded = decode_batches(3, batch, 0, 100, Encoding::Utf8).unwrap();
        assert_eq!(decoded.next_offset, 3);
        let [first, second, third] = decoded.records.as_slice() else {
            panic!("{decoded:?}");
        };
        assert_eq!(
            (first.offset, first.timestamp, first.key.as_deref()),
            (0, 1_000, Some("k1"))
        );
        assert_eq!(first.value.as_deref(), Some("v1"));
        assert_eq!(first.headers[0].value.as_deref(), Some("x"));
        assert_eq!((second.key.clone(), second.value.clone()), (None, None));
        // Not UTF-8: the whole record falls back to base64.
        assert_eq!(third.encoding, Encoding::Base64);
        assert_eq!(third.value.as_deref(), Some("/wA="));
        assert_eq!(third.key.as_deref(), Some("azM="));
    }

    #[test]
    fn reads_start_at_the_offset_and_stop_at_the_count() {
        let batch = encode_batch(
            &(0..5)
                .map(|i| (i, record(None, Some(b"v"), &[])))
                .collect::<Vec<_>>(),
            None,
        )
        .unwrap();
        let decoded = decode_batches(0, batch, 2, 2, Encoding::Base64).unwrap();
        let offsets: Vec<i64> = decoded.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [2, 3]);
        assert_eq!(decoded.next_offset, 4);
    }

    #[test]
    fn bad_base64_is_refused_with_a_message() {
        let record = JsonRecord {
            key: None,
            value: Some("not base64!".into()),
            headers: Vec::new(),
            partition: None,
            timestamp: None,
            encoding: Some(Encoding::Base64),
        };
        let error = record.bytes(Encoding::Utf8).unwrap_err();
        assert!(error.contains("value is not valid base64"), "{error}");
    }
}
