//! SCRAM credentials (`SCRAM-SHA-256`, `SCRAM-SHA-512`): what Kafka keeps in
//! its metadata for each user and mechanism, and what
//! `AlterUserScramCredentials` and `DescribeUserScramCredentials` manage.
//!
//! Per user and mechanism, `("scram", user, mechanism)` → [`ScramCredential`]:
//! the salt, the iteration count and the two keys RFC 5802 derives from the
//! salted password (the stored key, `H(HMAC(salted, "Client Key"))`, and the
//! server key, `HMAC(salted, "Server Key")`). The password, salted or not, is
//! never stored: a server that holds these can check a client's proof and
//! prove itself, but cannot log in as the user.
//!
//! # Invariants
//!
//! - One `AlterUserScramCredentials` request is applied in one metadata
//!   transaction: every upsertion and deletion it accepted, or none.
//! - A credential is keyed by the user name as given (case-sensitive, as in
//!   Kafka).

use serde::{Deserialize, Serialize};

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::kv::RangeOptions;
use crate::store::{MetadataStore, read, write};

/// One user's credential for one SCRAM mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The salt the password was salted with.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: i32,
    /// `H(ClientKey)`, against which a client's proof is checked.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`, with which the server proves
    /// itself.
    pub server_key: Vec<u8>,
}

impl Versioned for ScramCredential {
    const WHAT: &'static str = "SCRAM credential";
    const VERSION: u8 = 1;
}

/// One change of an `AlterUserScramCredentials` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramChange {
    /// Sets the credential of `user` for `mechanism`.
    Upsert {
        /// The user.
        user: String,
        /// The mechanism's name (`SCRAM-SHA-256`).
        mechanism: String,
        /// The credential.
        credential: ScramCredential,
    },
    /// Removes the credential of `user` for `mechanism`.
    Delete {
        /// The user.
        user: String,
        /// The mechanism's name.
        mechanism: String,
    },
}

impl MetadataStore {
    /// The credential of `user` for `mechanism`, if there is one.
    pub async fn scram_credential(
        &self,
        user: &str,
        mechanism: &str,
    ) -> Result<Option<ScramCredential>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move { read(&txn, &keys.scram_credential(user, mechanism)).await })
            .await
    }

    /// Every credential of `user`, by mechanism name.
    pub async fn scram_credentials_of(
        &self,
        user: &str,
    ) -> Result<Vec<(String, ScramCredential)>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(&keys.scram_credentials_of(user), RangeOptions::default())
                    .await?;
                let mut credentials = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    let (_, mechanism) = keys.scram_credential_of(&pair.key).ok_or_else(|| {
                        MetadataError::Corrupt {
                            what: ScramCredential::WHAT,
                            detail: "malformed SCRAM credential key".into(),
                        }
                    })?;
                    credentials.push((mechanism, codec::decode(&pair.value)?));
                }
                Ok(credentials)
            })
            .await
    }

    /// Every user with a credential, and their mechanisms and iteration
    /// counts, in user order.
    pub async fn scram_users(&self) -> Result<Vec<(String, String, i32)>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(&keys.scram_credentials(), RangeOptions::default())
                    .await?;
                let mut users = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    let (user, mechanism) =
                        keys.scram_credential_of(&pair.key).ok_or_else(|| {
                            MetadataError::Corrupt {
                                what: ScramCredential::WHAT,
                                detail: "malformed SCRAM credential key".into(),
                            }
                        })?;
                    let credential: ScramCredential = codec::decode(&pair.value)?;
                    users.push((user, mechanism, credential.iterations));
                }
                Ok(users)
            })
            .await
    }

    /// Applies `changes` in one transaction. Returns, for each change in
    /// order, whether it applied: a deletion of a credential that does not
    /// exist does not (`false`), and changes nothing.
    pub async fn alter_scram_credentials(
        &self,
        changes: &[ScramChange],
    ) -> Result<Vec<bool>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let mut applied = Vec::with_capacity(changes.len());
                for change in changes {
                    match change {
                        ScramChange::Upsert {
                            user,
                            mechanism,
                            credential,
                        } => {
                            write(&txn, &keys.scram_credential(user, mechanism), credential);
                            applied.push(true);
                        }
                        ScramChange::Delete { user, mechanism } => {
                            let key = keys.scram_credential(user, mechanism);
                            let existing: Option<ScramCredential> = read(&txn, &key).await?;
                            if existing.is_some() {
                                txn.clear(&key);
                            }
                            applied.push(existing.is_some());
                        }
                    }
                }
                Ok(applied)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn credential(byte: u8) -> ScramCredential {
        ScramCredential {
            salt: vec![byte; 16],
            iterations: 4096,
            stored_key: vec![byte; 32],
            server_key: vec![byte ^ 0xff; 32],
        }
    }

    fn upsert(user: &str, mechanism: &str, byte: u8) -> ScramChange {
        ScramChange::Upsert {
            user: user.to_owned(),
            mechanism: mechanism.to_owned(),
            credential: credential(byte),
        }
    }

    #[tokio::test]
    async fn credentials_are_set_read_listed_and_deleted() {
        let store = crate::open("memory://").await.unwrap();
        let applied = store
            .alter_scram_credentials(&[
                upsert("alice", "SCRAM-SHA-256", 1),
                upsert("alice", "SCRAM-SHA-512", 2),
                upsert("bob", "SCRAM-SHA-256", 3),
            ])
            .await
            .unwrap();
        assert_eq!(applied, vec![true, true, true]);
        assert_eq!(
            store
                .scram_credential("alice", "SCRAM-SHA-512")
                .await
                .unwrap(),
            Some(credential(2))
        );
        assert_eq!(
            store
                .scram_credential("Alice", "SCRAM-SHA-512")
                .await
                .unwrap(),
            None,
            "names are case-sensitive"
        );
        let alice: Vec<String> = store
            .scram_credentials_of("alice")
            .await
            .unwrap()
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        assert_eq!(alice, ["SCRAM-SHA-256", "SCRAM-SHA-512"]);
        // A user whose name extends another's is not among its credentials.
        store
            .alter_scram_credentials(&[upsert("alice2", "SCRAM-SHA-256", 4)])
            .await
            .unwrap();
        assert_eq!(store.scram_credentials_of("alice").await.unwrap().len(), 2);

        let applied = store
            .alter_scram_credentials(&[
                ScramChange::Delete {
                    user: "alice".into(),
                    mechanism: "SCRAM-SHA-256".into(),
                },
                ScramChange::Delete {
                    user: "carol".into(),
                    mechanism: "SCRAM-SHA-256".into(),
                },
            ])
            .await
            .unwrap();
        assert_eq!(applied, vec![true, false]);
        let users = store.scram_users().await.unwrap();
        assert_eq!(
            users,
            vec![
                ("alice".to_owned(), "SCRAM-SHA-512".to_owned(), 4096),
                ("alice2".to_owned(), "SCRAM-SHA-256".to_owned(), 4096),
                ("bob".to_owned(), "SCRAM-SHA-256".to_owned(), 4096),
            ]
        );
    }
}
