//! The Kafka wire format, without I/O: frame lengths, request decoding,
//! response encoding, and [`ProtocolError`], why a connection is closed instead
//! of answered.
//!
//! A frame is a 4-byte big-endian length and that many bytes. The connection
//! reads the length prefix, asks [`frame_length`] whether a body of that length
//! may follow (before reading or buffering any of it), reads the body and hands
//! it to [`decode_request`]. A response leaves as one buffer from
//! [`encode_response`], length prefix included.
//!
//! Every function here takes bytes from the network: none of them panics, on
//! any input, and none allocates by what a length or count field claims
//! (the vendored `kafka-protocol` decoders reserve at most what the bytes hold).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::versions;

/// Bytes of a frame's length prefix.
pub(crate) const LENGTH_PREFIX_BYTES: usize = 4;

/// The shortest request: api key, api version and correlation id.
const MIN_REQUEST_BYTES: usize = 8;

/// Why a connection is closed instead of answered (Apache Kafka closes the
/// connection on each of these).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtocolError {
    #[error("frame length {0} is negative")]
    NegativeLength(i32),
    #[error("frame of {0} bytes is too short for a request header")]
    ShortFrame(usize),
    #[error("frame of {length} bytes is above socket.request.max.bytes ({limit})")]
    FrameTooLarge { length: usize, limit: usize },
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    #[error("{api:?} v{version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("cannot decode {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// The length of the body a length prefix announces, if a request of that
/// length may be read: not negative, long enough for a request header, and at
/// most `max_request_bytes` (`socket.request.max.bytes`).
pub(crate) fn frame_length(
    prefix: [u8; LENGTH_PREFIX_BYTES],
    max_request_bytes: usize,
) -> Result<usize, ProtocolError> {
    let announced = i32::from_be_bytes(prefix);
    let Ok(length) = usize::try_from(announced) else {
        return Err(ProtocolError::NegativeLength(announced));
    };
    if length < MIN_REQUEST_BYTES {
        return Err(ProtocolError::ShortFrame(length));
    }
    if length > max_request_bytes {
        return Err(ProtocolError::FrameTooLarge {
            length,
            limit: max_request_bytes,
        });
    }
    Ok(length)
}

/// A decoded request and what its header says.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) api: ApiKey,
    pub(crate) version: i16,
    pub(crate) correlation_id: i32,
    /// The header's client id (empty when null).
    pub(crate) client_id: String,
    pub(crate) body: RequestKind,
}

/// What a frame holds.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A request of a served API at a served version.
    Request(Box<Request>),
    /// The answer, ready to send, to an `ApiVersions` request of a version
    /// this broker does not know: v0 (whose layout every client reads) with
    /// `UNSUPPORTED_VERSION` and the supported ranges, so the client can retry
    /// with a version both know.
    Answer(Bytes),
}

/// Decodes one frame's body (without its length prefix). Unknown APIs,
/// unsupported versions (but `ApiVersions`'s, see [`Decoded::Answer`]) and
/// bytes that do not decode are errors.
pub(crate) fn decode_request(frame: Bytes) -> Result<Decoded, ProtocolError> {
    let mut peek = frame.clone();
    if peek.remaining() < MIN_REQUEST_BYTES {
        return Err(ProtocolError::ShortFrame(frame.len()));
    }
    let api_key = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
    let api = ApiKey::try_from(api_key).map_err(|()| ProtocolError::UnknownApi(api_key))?;
    let served = versions::range_of(api).is_some_and(|(min, max)| (min..=max).contains(&version));
    if !served {
        if api == ApiKey::ApiVersions {
            return unsupported_api_versions(correlation_id).map(Decoded::Answer);
        }
        return Err(ProtocolError::UnsupportedVersion { api, version });
    }
    let malformed = |reason: String| ProtocolError::Malformed {
        api,
        version,
        reason,
    };
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, api.request_header_version(version))
        .map_err(|e| malformed(format!("{e:#}")))?;
    let request =
        RequestKind::decode(api, &mut body, version).map_err(|e| malformed(format!("{e:#}")))?;
    Ok(Decoded::Request(Box::new(Request {
        api,
        version,
        correlation_id: header.correlation_id,
        client_id: header
            .client_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        body: request,
    })))
}

/// One response frame, length prefix included: the response header (in the
/// header version `api` uses at `version`) with `correlation_id`, then
/// `response`.
pub(crate) fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<Bytes, ProtocolError> {
    let encode_error = |e: anyhow::Error| ProtocolError::Encode {
        api,
        version,
        reason: format!("{e:#}"),
    };
    let mut out = BytesMut::new();
    out.put_u32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut out, api.response_header_version(version))
        .map_err(encode_error)?;
    response.encode(&mut out, version).map_err(encode_error)?;
    finish_frame(out, api, version)
}

/// Writes the length prefix `out` starts with.
fn finish_frame(mut out: BytesMut, api: ApiKey, version: i16) -> Result<Bytes, ProtocolError> {
    let body = out.len() - LENGTH_PREFIX_BYTES;
    let length = i32::try_from(body).map_err(|_| ProtocolError::Encode {
        api,
        version,
        reason: format!("a response of {body} bytes does not fit a frame"),
    })?;
    out[..LENGTH_PREFIX_BYTES].copy_from_slice(&length.to_be_bytes());
    Ok(out.freeze())
}

/// The v0 `ApiVersions` answer to a version this broker does not know.
fn unsupported_api_versions(correlation_id: i32) -> Result<Bytes, ProtocolError> {
    let mut response = ApiVersionsResponse::default();
    response.error_code = ResponseError::UnsupportedVersion.code();
    response.api_keys = versions::served();
    let mut out = BytesMut::new();
    out.put_u32(0);
    out.put_i32(correlation_id);
    response
        .encode(&mut out, 0)
        .map_err(|e| ProtocolError::Encode {
            api: ApiKey::ApiVersions,
            version: 0,
            reason: format!("{e:#}"),
        })?;
    finish_frame(out, ApiKey::ApiVersions, 0)
}

#[cfg(test)]
mod tests {
    use fjord_common::SeededRng;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn request_body(api: ApiKey, version: i16, request: &impl Encodable) -> Bytes {
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = 42;
        header.client_id = Some(StrBytes::from_static_str("codec-test"));
        let mut out = BytesMut::new();
        header
            .encode(&mut out, api.request_header_version(version))
            .expect("a header encodes");
        request
            .encode(&mut out, version)
            .expect("a request encodes");
        out.freeze()
    }

    #[test]
    fn frame_lengths_are_checked_before_the_body() {
        let prefix = |n: i32| n.to_be_bytes();
        assert!(matches!(
            frame_length(prefix(-1), 100),
            Err(ProtocolError::NegativeLength(-1))
        ));
        assert!(matches!(
            frame_length(prefix(i32::MIN), 100),
            Err(ProtocolError::NegativeLength(_))
        ));
        assert!(matches!(
            frame_length(prefix(7), 100),
            Err(ProtocolError::ShortFrame(7))
        ));
        assert!(matches!(
            frame_length(prefix(101), 100),
            Err(ProtocolError::FrameTooLarge {
                length: 101,
                limit: 100
            })
        ));
        assert_eq!(frame_length(prefix(8), 100).ok(), Some(8));
        assert_eq!(frame_length(prefix(100), 100).ok(), Some(100));
    }

    #[test]
    fn a_request_decodes_with_its_header() {
        let mut request = MetadataRequest::default();
        request.topics = None;
        let Ok(Decoded::Request(decoded)) =
            decode_request(request_body(ApiKey::Metadata, 12, &request))
        else {
            panic!("a metadata request decodes");
        };
        assert_eq!(decoded.api, ApiKey::Metadata);
        assert_eq!(decoded.version, 12);
        assert_eq!(decoded.correlation_id, 42);
        assert_eq!(decoded.client_id, "codec-test");
        assert_eq!(decoded.body, RequestKind::Metadata(request));
    }

    #[test]
    fn an_unknown_api_versions_version_gets_the_v0_answer() {
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::ApiVersions as i16);
        frame.put_i16(i16::MAX);
        frame.put_i32(7);
        let Ok(Decoded::Answer(answer)) = decode_request(frame.freeze()) else {
            panic!("an answer");
        };
        let mut answer = answer;
        let length = answer.get_i32();
        assert_eq!(usize::try_from(length).ok(), Some(answer.len()));
        assert_eq!(answer.get_i32(), 7);
        let response = ApiVersionsResponse::decode(&mut answer, 0).expect("a v0 response");
        assert_eq!(
            response.error_code,
            ResponseError::UnsupportedVersion.code()
        );
        assert_eq!(
            response.api_keys.len(),
            versions::supported_versions().len()
        );
    }

    #[test]
    fn a_response_frame_carries_its_length_and_correlation_id() {
        let response = ResponseKind::Metadata(MetadataResponse::default());
        let mut frame =
            encode_response(ApiKey::Metadata, 12, 99, &response).expect("a response encodes");
        let length = frame.get_i32();
        assert_eq!(usize::try_from(length).ok(), Some(frame.len()));
        let header =
            ResponseHeader::decode(&mut frame, ApiKey::Metadata.response_header_version(12))
                .expect("a header");
        assert_eq!(header.correlation_id, 99);
        assert_eq!(
            MetadataResponse::decode(&mut frame, 12).ok(),
            Some(MetadataResponse::default())
        );
    }

    /// Random bytes, and valid requests with bytes flipped or cut, decode or
    /// fail: never a panic.
    #[test]
    fn no_input_panics_the_decoder() {
        let rng = SeededRng::new(0x006b_6166_6b61);
        let mut metadata = MetadataRequest::default();
        metadata.topics = None;
        let valid = [
            request_body(ApiKey::Metadata, 12, &metadata),
            request_body(ApiKey::Metadata, 1, &metadata),
        ];
        for round in 0..20_000u32 {
            let frame: Bytes = if round % 2 == 0 {
                let len = rng.below(64) as usize;
                let mut bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
                if bytes.len() >= 4 && round % 4 == 0 {
                    // A served API and version, so the body decoder runs.
                    bytes[..4].copy_from_slice(&[0, 3, 0, 12]);
                }
                Bytes::from(bytes)
            } else {
                let source = &valid[(round as usize / 2) % valid.len()];
                let mut bytes = source.to_vec();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] = rng.below(256) as u8;
                }
                bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize);
                Bytes::from(bytes)
            };
            let _ = decode_request(frame);
        }
    }
}
