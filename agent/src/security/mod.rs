//! Who a client is. Every Kafka connection and every HTTP request acts as a
//! [`Principal`]: `User:ANONYMOUS` until something proves otherwise (a TLS
//! client certificate, a SASL authentication, an HTTP credential), as in
//! Kafka, whose principals authorizers match ACLs against (`User:alice`).
//!
//! [`authorizer`] decides what a principal may do: Kafka's ACL rules over the
//! bindings in metadata, cached in each agent.

use std::fmt;

pub mod authorizer;
pub mod protocol;
pub mod sasl;
pub mod tls;
pub mod x509;

pub use protocol::SecurityProtocol;

/// The principal type of every principal here, as in Kafka's default
/// principal builder.
pub const USER: &str = "User";

/// The name Kafka gives a client that did not authenticate.
pub const ANONYMOUS: &str = "ANONYMOUS";

/// A client's identity, written `User:name` (Kafka's `KafkaPrincipal`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// The principal type (`User`).
    pub principal_type: String,
    /// The name: a SASL user name, a certificate's distinguished name, or
    /// `ANONYMOUS`.
    pub name: String,
}

impl Principal {
    /// `User:ANONYMOUS`: a client that did not authenticate.
    pub fn anonymous() -> Self {
        Self::user(ANONYMOUS)
    }

    /// `User:name`.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            principal_type: USER.to_owned(),
            name: name.into(),
        }
    }

    /// Whether this is `User:ANONYMOUS`.
    pub fn is_anonymous(&self) -> bool {
        self.principal_type == USER && self.name == ANONYMOUS
    }
}

impl Default for Principal {
    fn default() -> Self {
        Self::anonymous()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_print_as_kafka_writes_them() {
        assert_eq!(Principal::anonymous().to_string(), "User:ANONYMOUS");
        assert!(Principal::default().is_anonymous());
        assert_eq!(Principal::user("alice").to_string(), "User:alice");
        assert!(!Principal::user("alice").is_anonymous());
    }
}
