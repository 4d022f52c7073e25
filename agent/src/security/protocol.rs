//! The Kafka listener's security protocol (Kafka's
//! `listener.security.protocol.map` values): whether connections are
//! encrypted with TLS, and whether clients authenticate with SASL.

use serde::{Deserialize, Serialize};

/// How the Kafka listener secures its connections, named as Kafka names it.
///
/// | protocol | TLS | SASL |
/// |---|---|---|
/// | `PLAINTEXT` | no | no |
/// | `SSL` | yes (a client certificate, when asked for, names the principal) | no |
/// | `SASL_PLAINTEXT` | no | yes |
/// | `SASL_SSL` | yes | yes |
///
/// The TLS half is [`crate::security::tls`]'s (the handshake, before a
/// connection's first request); the SASL half is the connection's
/// (`SaslHandshake`, `SaslAuthenticate`, [`crate::security::sasl`]). The
/// listener's protocol is [`BrokerSettings::security_protocol`](crate::BrokerSettings),
/// where the Kafka connection code can see it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
pub enum SecurityProtocol {
    /// Neither TLS nor SASL.
    #[default]
    #[serde(rename = "PLAINTEXT")]
    #[value(name = "PLAINTEXT")]
    Plaintext,
    /// TLS; optionally client certificates (`tls-client-auth`).
    #[serde(rename = "SSL")]
    #[value(name = "SSL")]
    Ssl,
    /// SASL authentication over plain TCP.
    #[serde(rename = "SASL_PLAINTEXT")]
    #[value(name = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// SASL authentication over TLS.
    #[serde(rename = "SASL_SSL")]
    #[value(name = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections are TLS (`SSL`, `SASL_SSL`).
    pub fn uses_tls(self) -> bool {
        match self {
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => true,
            SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => false,
        }
    }

    /// Whether clients authenticate with SASL (`SASL_PLAINTEXT`, `SASL_SSL`).
    pub fn uses_sasl(self) -> bool {
        match self {
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => true,
            SecurityProtocol::Plaintext | SecurityProtocol::Ssl => false,
        }
    }

    /// Kafka's name (`SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn protocols_are_named_as_kafka_names_them() {
        for (protocol, name, tls, sasl) in [
            (SecurityProtocol::Plaintext, "PLAINTEXT", false, false),
            (SecurityProtocol::Ssl, "SSL", true, false),
            (
                SecurityProtocol::SaslPlaintext,
                "SASL_PLAINTEXT",
                false,
                true,
            ),
            (SecurityProtocol::SaslSsl, "SASL_SSL", true, true),
        ] {
            assert_eq!(protocol.to_string(), name);
            assert_eq!(
                serde_json::to_string(&protocol).unwrap(),
                format!("\"{name}\"")
            );
            assert_eq!(
                <SecurityProtocol as clap::ValueEnum>::from_str(name, false).unwrap(),
                protocol
            );
            assert_eq!((protocol.uses_tls(), protocol.uses_sasl()), (tls, sasl));
        }
        assert_eq!(SecurityProtocol::default(), SecurityProtocol::Plaintext);
    }
}
