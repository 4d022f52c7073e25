//! A certificate's subject as Kafka names it: the distinguished name in RFC
//! 2253 form (`CN=alice,O=Example`), exactly as Java's
//! `X500Principal.getName()` writes it, since that string is the principal
//! of a client authenticated by its TLS certificate (Kafka's default
//! `ssl.principal.mapping.rules`) and ACLs written for Kafka name it.
//!
//! Only the subject is read, with a small DER reader: a certificate reaches
//! this code only after rustls has verified it against the client CAs, so
//! the bytes are a well-formed certificate, yet nothing here trusts that (a
//! malformed one is an error, never a panic). A general X.509 crate
//! (`x509-parser`: nom, asn1-rs, der-parser, time…) would bring ten crates
//! for one field, and its name formatting is not RFC 2253's anyway (RDNs in
//! encoded order, `", "` between them), so the formatting below would be
//! needed regardless.
//!
//! # What Java writes (and so this)
//!
//! - RDNs in reverse order of their encoding, joined by `,`; the values of a
//!   multi-valued RDN in encoded order, joined by `+`.
//! - Keywords for the attribute types RFC 2253 names (`CN`, `C`, `L`, `ST`,
//!   `O`, `OU`, `STREET`, `DC`, `UID`); any other type as its dotted OID
//!   (`1.2.840.113549.1.9.1` for an e-mail address).
//! - A value of a keyword type that is a string (`UTF8String`,
//!   `PrintableString`, `IA5String`, `TeletexString`, `BMPString`,
//!   `GeneralString`) as its bytes read as UTF-8 (Java's reading, for every
//!   one of them), with each of `, = + < > # ; " \` escaped by a backslash, a
//!   NUL written `\00`, and leading and trailing spaces (and carriage
//!   returns) escaped by a backslash.
//! - Any other value (and every value of an OID-named type) as `#` and the
//!   lowercase hex of its whole DER encoding.

use std::fmt::Write as _;

/// Why a certificate's subject could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct MalformedCertificate(&'static str);

const TAG_INTEGER: u8 = 0x02;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
/// `[0] EXPLICIT`: the certificate's version.
const TAG_VERSION: u8 = 0xa0;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_PRINTABLE_STRING: u8 = 0x13;
const TAG_T61_STRING: u8 = 0x14;
const TAG_IA5_STRING: u8 = 0x16;
const TAG_GENERAL_STRING: u8 = 0x1b;
const TAG_BMP_STRING: u8 = 0x1e;

/// The attribute types RFC 2253 gives keywords to, as Java names them.
const KEYWORDS: [(&str, &str); 9] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// The subject of the DER certificate `certificate`, in RFC 2253 form.
pub fn subject_rfc2253(certificate: &[u8]) -> Result<String, MalformedCertificate> {
    let mut input = certificate;
    let cert = expect(
        &mut input,
        TAG_SEQUENCE,
        "the certificate is not a sequence",
    )?;
    let mut cert = cert.content;
    let tbs = expect(&mut cert, TAG_SEQUENCE, "the signed part is not a sequence")?;
    let mut tbs = tbs.content;
    let mut first = read(&mut tbs)?;
    if first.tag == TAG_VERSION {
        first = read(&mut tbs)?;
    }
    if first.tag != TAG_INTEGER {
        return Err(MalformedCertificate("no serial number"));
    }
    expect(&mut tbs, TAG_SEQUENCE, "no signature algorithm")?;
    expect(&mut tbs, TAG_SEQUENCE, "no issuer")?;
    expect(&mut tbs, TAG_SEQUENCE, "no validity")?;
    let subject = expect(&mut tbs, TAG_SEQUENCE, "no subject")?;
    name_rfc2253(subject.content)
}

/// A `Name` (the content of its SEQUENCE) in RFC 2253 form.
fn name_rfc2253(mut name: &[u8]) -> Result<String, MalformedCertificate> {
    let mut rdns = Vec::new();
    while !name.is_empty() {
        let rdn = expect(&mut name, TAG_SET, "a name part is not a set")?;
        let mut attributes = rdn.content;
        let mut written = Vec::new();
        while !attributes.is_empty() {
            let attribute = expect(
                &mut attributes,
                TAG_SEQUENCE,
                "a name attribute is not a sequence",
            )?;
            let mut attribute = attribute.content;
            let oid = expect(&mut attribute, TAG_OID, "a name attribute has no type")?;
            let value = read(&mut attribute)?;
            written.push(attribute_rfc2253(&oid_text(oid.content)?, &value));
        }
        if written.is_empty() {
            return Err(MalformedCertificate("an empty name part"));
        }
        rdns.push(written.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// `TYPE=value` of one attribute.
fn attribute_rfc2253(oid: &str, value: &Tlv<'_>) -> String {
    let keyword = KEYWORDS
        .iter()
        .find(|(known, _)| *known == oid)
        .map(|(_, keyword)| *keyword);
    let is_string = matches!(
        value.tag,
        TAG_UTF8_STRING
            | TAG_PRINTABLE_STRING
            | TAG_T61_STRING
            | TAG_IA5_STRING
            | TAG_GENERAL_STRING
            | TAG_BMP_STRING
    );
    let mut out = String::new();
    match keyword {
        Some(keyword) if is_string => {
            out.push_str(keyword);
            out.push('=');
            out.push_str(&escape(&String::from_utf8_lossy(value.content)));
        }
        _ => {
            out.push_str(keyword.unwrap_or(oid));
            out.push_str("=#");
            for byte in value.whole {
                let _ = write!(out, "{byte:02x}");
            }
        }
    }
    out
}

/// A value escaped as Java's RFC 2253 writer escapes it.
fn escape(value: &str) -> String {
    const ESCAPED: &str = ",=+<>#;\"\\";
    let mut chars: Vec<char> = Vec::with_capacity(value.len());
    for c in value.chars() {
        if ESCAPED.contains(c) {
            chars.push('\\');
            chars.push(c);
        } else if c == '\0' {
            chars.extend(['\\', '0', '0']);
        } else {
            chars.push(c);
        }
    }
    let blank = |c: &char| *c == ' ' || *c == '\r';
    let lead = chars.iter().take_while(|c| blank(c)).count();
    let trail = chars.len() - chars.iter().rev().take_while(|c| blank(c)).count();
    let mut out = String::with_capacity(chars.len() + 2);
    for (i, c) in chars.into_iter().enumerate() {
        if i < lead || i >= trail {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An OID's dotted form.
fn oid_text(content: &[u8]) -> Result<String, MalformedCertificate> {
    if content.is_empty() {
        return Err(MalformedCertificate("an empty object identifier"));
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut current: u64 = 0;
    let mut pending = false;
    for byte in content {
        if !pending && *byte == 0x80 {
            return Err(MalformedCertificate("an object identifier arc is padded"));
        }
        current = current
            .checked_mul(128)
            .and_then(|c| c.checked_add(u64::from(byte & 0x7f)))
            .ok_or(MalformedCertificate(
                "an object identifier arc is too large",
            ))?;
        pending = byte & 0x80 != 0;
        if !pending {
            arcs.push(current);
            current = 0;
        }
    }
    if pending {
        return Err(MalformedCertificate("an object identifier is cut short"));
    }
    let mut text = String::new();
    for (i, arc) in arcs.iter().enumerate() {
        if i == 0 {
            let (first, second) = match arc {
                0..40 => (0, *arc),
                40..80 => (1, arc - 40),
                _ => (2, arc - 80),
            };
            let _ = write!(text, "{first}.{second}");
        } else {
            let _ = write!(text, ".{arc}");
        }
    }
    Ok(text)
}

/// One DER element: its tag (the first byte), its content, and its whole
/// encoding.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Reads one element off the front of `input`.
fn read<'a>(input: &mut &'a [u8]) -> Result<Tlv<'a>, MalformedCertificate> {
    let all: &'a [u8] = input;
    let (&tag, mut rest) = all
        .split_first()
        .ok_or(MalformedCertificate("an element is missing"))?;
    if tag & 0x1f == 0x1f {
        // A high tag number: its further bytes, the last without bit 8.
        loop {
            let (&byte, after) = rest
                .split_first()
                .ok_or(MalformedCertificate("a tag is cut short"))?;
            rest = after;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    let (&first, after) = rest
        .split_first()
        .ok_or(MalformedCertificate("a length is missing"))?;
    rest = after;
    let length = match first {
        0..0x80 => usize::from(first),
        0x80 => return Err(MalformedCertificate("an indefinite length")),
        _ => {
            let count = usize::from(first & 0x7f);
            if count > std::mem::size_of::<u32>() || rest.len() < count {
                return Err(MalformedCertificate("a length is too long"));
            }
            let (digits, after) = rest.split_at(count);
            rest = after;
            digits
                .iter()
                .fold(0usize, |length, digit| (length << 8) | usize::from(*digit))
        }
    };
    if rest.len() < length {
        return Err(MalformedCertificate("an element is cut short"));
    }
    let header = all.len() - rest.len();
    let (whole, remaining) = all.split_at(header + length);
    *input = remaining;
    Ok(Tlv {
        tag,
        content: &whole[header..],
        whole,
    })
}

/// Reads one element that must have `tag`.
fn expect<'a>(
    input: &mut &'a [u8],
    tag: u8,
    otherwise: &'static str,
) -> Result<Tlv<'a>, MalformedCertificate> {
    let element = read(input).map_err(|_| MalformedCertificate(otherwise))?;
    if element.tag == tag {
        Ok(element)
    } else {
        Err(MalformedCertificate(otherwise))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// DER of one element.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n @ 0..0x80 => out.push(n as u8),
            n @ 0x80..0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }

    fn oid(dotted: &str) -> Vec<u8> {
        let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap()).collect();
        let mut content = Vec::new();
        let mut push = |mut arc: u64| {
            let mut groups = vec![(arc & 0x7f) as u8];
            arc >>= 7;
            while arc > 0 {
                groups.push((arc & 0x7f) as u8 | 0x80);
                arc >>= 7;
            }
            content.extend(groups.into_iter().rev());
        };
        push(arcs[0] * 40 + arcs[1]);
        for arc in &arcs[2..] {
            push(*arc);
        }
        tlv(TAG_OID, &content)
    }

    fn attribute(oid_text: &str, value: Vec<u8>) -> Vec<u8> {
        tlv(TAG_SEQUENCE, &[oid(oid_text), value].concat())
    }

    /// A certificate-shaped DER value whose subject has `rdns` (each a list
    /// of attributes), in encoded order.
    fn certificate(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let subject: Vec<u8> = rdns
            .iter()
            .flat_map(|rdn| tlv(TAG_SET, &rdn.concat()))
            .collect();
        let tbs = [
            tlv(TAG_VERSION, &tlv(TAG_INTEGER, &[2])),
            tlv(TAG_INTEGER, &[0x01, 0x02]),
            tlv(TAG_SEQUENCE, &oid("1.2.840.10045.4.3.2")),
            tlv(TAG_SEQUENCE, &[]),
            tlv(TAG_SEQUENCE, &[]),
            tlv(TAG_SEQUENCE, &subject),
            tlv(TAG_SEQUENCE, &[]),
        ]
        .concat();
        tlv(
            TAG_SEQUENCE,
            &[
                tlv(TAG_SEQUENCE, &tbs),
                tlv(TAG_SEQUENCE, &[]),
                tlv(0x03, &[0]),
            ]
            .concat(),
        )
    }

    fn utf8(text: &str) -> Vec<u8> {
        tlv(TAG_UTF8_STRING, text.as_bytes())
    }

    #[test]
    fn rdns_are_written_last_first_with_keywords() {
        let cert = certificate(&[
            vec![attribute("2.5.4.6", tlv(TAG_PRINTABLE_STRING, b"NO"))],
            vec![attribute("2.5.4.10", utf8("Example"))],
            vec![attribute("2.5.4.11", utf8("Streams"))],
            vec![attribute("2.5.4.3", utf8("alice"))],
        ]);
        assert_eq!(
            subject_rfc2253(&cert).unwrap(),
            "CN=alice,OU=Streams,O=Example,C=NO"
        );
    }

    #[test]
    fn values_are_escaped_as_java_escapes_them() {
        let cert = certificate(&[vec![attribute(
            "2.5.4.3",
            utf8(" a,b=c+d<e>f#g;h\"i\\j\0 "),
        )]]);
        assert_eq!(
            subject_rfc2253(&cert).unwrap(),
            r#"CN=\ a\,b\=c\+d\<e\>f\#g\;h\"i\\j\00\ "#
        );
    }

    #[test]
    fn other_types_and_non_strings_are_hex() {
        let email = tlv(TAG_IA5_STRING, b"a@b");
        let cert = certificate(&[
            vec![attribute("1.2.840.113549.1.9.1", email)],
            vec![
                attribute("2.5.4.3", utf8("x")),
                attribute("2.5.4.5", tlv(TAG_PRINTABLE_STRING, b"7")),
            ],
            vec![attribute("2.5.4.10", tlv(TAG_INTEGER, &[5]))],
            vec![attribute(
                "0.9.2342.19200300.100.1.25",
                tlv(TAG_IA5_STRING, b"com"),
            )],
        ]);
        assert_eq!(
            subject_rfc2253(&cert).unwrap(),
            "DC=com,O=#020105,CN=x+2.5.4.5=#130137,1.2.840.113549.1.9.1=#1603614062"
        );
    }

    #[test]
    fn an_empty_subject_is_the_empty_name() {
        assert_eq!(subject_rfc2253(&certificate(&[])).unwrap(), "");
    }

    #[test]
    fn long_lengths_are_read() {
        let long = "x".repeat(300);
        let cert = certificate(&[vec![attribute("2.5.4.3", utf8(&long))]]);
        assert_eq!(subject_rfc2253(&cert).unwrap(), format!("CN={long}"));
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let cert = certificate(&[vec![attribute("2.5.4.3", utf8("alice"))]]);
        for cut in 0..cert.len() {
            assert!(subject_rfc2253(&cert[..cut]).is_err(), "cut at {cut}");
        }
        // Every byte flipped, one at a time: an answer or an error.
        for i in 0..cert.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = cert.clone();
                bad[i] ^= flip;
                let _ = subject_rfc2253(&bad);
            }
        }
        assert!(subject_rfc2253(&[0x30, 0x80]).is_err());
        assert!(
            subject_rfc2253(&[0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err()
        );
        assert!(subject_rfc2253(&[]).is_err());
    }

    #[test]
    fn object_identifiers_are_dotted() {
        let text = |d: &str| oid_text(&oid(d)[2..]).unwrap();
        assert_eq!(text("2.5.4.3"), "2.5.4.3");
        assert_eq!(text("1.2.840.113549.1.9.1"), "1.2.840.113549.1.9.1");
        assert_eq!(
            text("0.9.2342.19200300.100.1.25"),
            "0.9.2342.19200300.100.1.25"
        );
        assert_eq!(text("2.999.3"), "2.999.3");
        assert!(oid_text(&[0x80, 0x01]).is_err());
        assert!(oid_text(&[0x81]).is_err());
        assert!(oid_text(&[0xff; 12]).is_err());
    }
}
