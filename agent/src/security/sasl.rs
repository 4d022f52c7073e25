//! SASL mechanisms on the Kafka listener: `PLAIN` (RFC 4616) and
//! `SCRAM-SHA-256` / `SCRAM-SHA-512` (RFC 5802, RFC 7677), checked against
//! the SCRAM credentials in metadata (`fjord_metadata::ScramCredential`).
//!
//! A [`SaslSession`] is one authentication's server side: it takes the
//! client's tokens one at a time ([`SaslSession::step`]) and answers with a
//! challenge, or with the authenticated [`Principal`] and the last token to
//! send. It knows nothing of Kafka's framing; the connection
//! (`kafka::connection`) carries the tokens in `SaslAuthenticate` requests.
//!
//! `PLAIN` has no users of its own (Kafka's come from a static JAAS file):
//! its password is checked against the user's SCRAM credential (SHA-512's,
//! else SHA-256's), by salting it as the credential was salted, so one set
//! of users, managed through `AlterUserScramCredentials`, serves every
//! mechanism. The password crosses the wire in clear: use it over TLS
//! (`SASL_SSL`).
//!
//! The SCRAM exchange is written here on the crypto of `aws-lc-rs` (HMAC,
//! SHA-2, PBKDF2, random nonces: the library this binary's TLS already
//! builds): the `scram` crate would build a second crypto library (`ring`),
//! and RFC 5802's messages are a few comma-separated attributes. Channel
//! binding and SCRAM extensions (Kafka's delegation tokens) are refused.
//!
//! Every failure is the same [`AuthFailure`], whatever failed (unknown user,
//! wrong password, malformed token), so a client learns nothing about which
//! users exist.

use std::fmt;
use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2, rand as lc_rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use fjord_metadata::{MetadataStore, ScramCredential};

use super::Principal;

/// The fewest PBKDF2 iterations a SCRAM credential may have (Kafka's bound).
pub const MIN_ITERATIONS: i32 = 4096;
/// The most PBKDF2 iterations a SCRAM credential may have (Kafka's bound).
pub const MAX_ITERATIONS: i32 = 16384;

/// A SASL mechanism this broker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    /// `PLAIN`.
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl Mechanism {
    /// Every mechanism served.
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    /// The mechanism's SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (SASL names are case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The SCRAM mechanism of Kafka's `ScramMechanism` code
    /// (`AlterUserScramCredentials`): 1 is SHA-256, 2 is SHA-512.
    pub fn from_scram_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(Mechanism::ScramSha256),
            2 => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    /// Kafka's `ScramMechanism` code of a SCRAM mechanism (0 for `PLAIN`).
    pub fn scram_code(self) -> i8 {
        match self {
            Mechanism::Plain => 0,
            Mechanism::ScramSha256 => 1,
            Mechanism::ScramSha512 => 2,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The hash behind a SCRAM mechanism.
#[derive(Clone, Copy)]
struct Hash {
    hmac: hmac::Algorithm,
    digest: &'static digest::Algorithm,
    pbkdf2: pbkdf2::Algorithm,
    len: usize,
}

impl Hash {
    fn of(mechanism: Mechanism) -> Option<Self> {
        match mechanism {
            Mechanism::Plain => None,
            Mechanism::ScramSha256 => Some(Hash {
                hmac: hmac::HMAC_SHA256,
                digest: &digest::SHA256,
                pbkdf2: pbkdf2::PBKDF2_HMAC_SHA256,
                len: 32,
            }),
            Mechanism::ScramSha512 => Some(Hash {
                hmac: hmac::HMAC_SHA512,
                digest: &digest::SHA512,
                pbkdf2: pbkdf2::PBKDF2_HMAC_SHA512,
                len: 64,
            }),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac, key), data)
            .as_ref()
            .to_vec()
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest, data).as_ref().to_vec()
    }

    /// RFC 5802's `Hi(password, salt, i)`.
    fn salt(self, password: &[u8], salt: &[u8], iterations: NonZeroU32) -> Vec<u8> {
        let mut out = vec![0; self.len];
        pbkdf2::derive(self.pbkdf2, iterations, salt, password, &mut out);
        out
    }

    /// The stored credential of a salted password.
    fn credential(self, salt: Vec<u8>, iterations: i32, salted: &[u8]) -> ScramCredential {
        let client_key = self.hmac(salted, b"Client Key");
        ScramCredential {
            salt,
            iterations,
            stored_key: self.digest(&client_key),
            server_key: self.hmac(salted, b"Server Key"),
        }
    }
}

/// The credential `AlterUserScramCredentials` stores for a password the
/// client salted (`salted_password`, with `salt` and `iterations`). `None`
/// for `PLAIN`, which has no credential of its own.
pub fn credential_from_salted(
    mechanism: Mechanism,
    salt: Vec<u8>,
    iterations: i32,
    salted_password: &[u8],
) -> Option<ScramCredential> {
    Some(Hash::of(mechanism)?.credential(salt, iterations, salted_password))
}

/// A new credential for `password` (a fresh random salt), as an operator's
/// tool makes one. `None` for `PLAIN`, or an iteration count that is not
/// positive.
pub fn credential_from_password(
    mechanism: Mechanism,
    password: &str,
    iterations: i32,
) -> Option<ScramCredential> {
    let hash = Hash::of(mechanism)?;
    let rounds = NonZeroU32::new(u32::try_from(iterations).ok()?)?;
    let mut salt = vec![0; 32];
    lc_rand::fill(&mut salt).ok()?;
    let salted = hash.salt(password.as_bytes(), &salt, rounds);
    Some(hash.credential(salt, iterations, &salted))
}

/// Why an authentication failed, as the client is told (always the same,
/// see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// The mechanism that failed.
    pub mechanism: Mechanism,
    /// What the server log says (the client is told only [`AuthFailure`]'s
    /// `Display`).
    pub detail: String,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
            self.mechanism
        )
    }
}

/// What a step of an authentication answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge; the client answers with another token.
    Challenge(Vec<u8>),
    /// Authenticated as `principal`; send `token` (possibly empty) as the last
    /// `SaslAuthenticate` response.
    Done {
        /// Who the client proved to be.
        principal: Principal,
        /// The server's last token.
        token: Vec<u8>,
    },
}

/// Where a SCRAM exchange is.
#[derive(Debug)]
enum State {
    /// Waiting for the client's first token.
    Start,
    /// The server's first message was sent.
    Challenged {
        user: String,
        credential: ScramCredential,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    /// Finished (successfully or not): any further token fails.
    Finished,
}

/// One authentication's server side.
#[derive(Debug)]
pub struct SaslSession {
    mechanism: Mechanism,
    state: State,
}

impl SaslSession {
    /// A session for `mechanism`.
    pub fn new(mechanism: Mechanism) -> Self {
        Self {
            mechanism,
            state: State::Start,
        }
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Takes the client's next token.
    pub async fn step(&mut self, store: &MetadataStore, token: &[u8]) -> Result<Step, AuthFailure> {
        let state = std::mem::replace(&mut self.state, State::Finished);
        match (self.mechanism, state) {
            (Mechanism::Plain, State::Start) => self.plain(store, token).await,
            (_, State::Start) => self.scram_first(store, token).await,
            (
                _,
                State::Challenged {
                    user,
                    credential,
                    gs2_header,
                    client_first_bare,
                    server_first,
                    nonce,
                },
            ) => self.scram_final(
                token,
                &user,
                &credential,
                &gs2_header,
                &client_first_bare,
                &server_first,
                &nonce,
            ),
            (_, State::Finished) => Err(self.failure("a token after the exchange ended")),
        }
    }

    fn failure(&self, detail: impl Into<String>) -> AuthFailure {
        AuthFailure {
            mechanism: self.mechanism,
            detail: detail.into(),
        }
    }

    /// `PLAIN`: `[authzid] NUL authcid NUL password`, checked against the
    /// user's SCRAM credential.
    async fn plain(&self, store: &MetadataStore, token: &[u8]) -> Result<Step, AuthFailure> {
        let text = std::str::from_utf8(token).map_err(|_| self.failure("not UTF-8"))?;
        let mut parts = text.split('\0');
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(self.failure("not authzid NUL user NUL password"));
        };
        if user.is_empty() || password.is_empty() {
            return Err(self.failure("an empty user or password"));
        }
        if !authzid.is_empty() && authzid != user {
            return Err(self.failure(format!(
                "authorization id {authzid:?} is not the user {user:?}"
            )));
        }
        for mechanism in [Mechanism::ScramSha512, Mechanism::ScramSha256] {
            let credential = store
                .scram_credential(user, mechanism.name())
                .await
                .map_err(|error| self.failure(format!("reading credentials: {error}")))?;
            let Some(credential) = credential else {
                continue;
            };
            let password = password.to_owned();
            // PBKDF2 takes milliseconds of CPU: off the async workers.
            let matches = tokio::task::spawn_blocking(move || {
                password_matches(mechanism, &credential, &password)
            })
            .await
            .unwrap_or(false);
            if matches {
                return Ok(Step::Done {
                    principal: Principal::user(user),
                    token: Vec::new(),
                });
            }
            return Err(self.failure(format!("wrong password for {user:?}")));
        }
        Err(self.failure(format!("no credential for {user:?}")))
    }

    /// SCRAM's client-first message; answers the server-first one.
    async fn scram_first(
        &mut self,
        store: &MetadataStore,
        token: &[u8],
    ) -> Result<Step, AuthFailure> {
        let text = std::str::from_utf8(token).map_err(|_| self.failure("not UTF-8"))?;
        // gs2-header: a channel-binding flag and an optional authzid.
        let mut header = text.splitn(3, ',');
        let (Some(flag), Some(authzid), Some(bare)) = (header.next(), header.next(), header.next())
        else {
            return Err(self.failure("no GS2 header"));
        };
        if flag != "n" && flag != "y" {
            return Err(self.failure("channel binding is not supported"));
        }
        let mut user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            match attribute.split_once('=') {
                Some(("n", name)) => {
                    user = Some(
                        unescape_name(name).ok_or_else(|| self.failure("a malformed user name"))?,
                    )
                }
                Some(("r", nonce)) => client_nonce = Some(nonce),
                Some(("m", _)) => return Err(self.failure("a mandatory extension")),
                // Kafka's delegation tokens ask with `tokenauth=true`.
                Some(("tokenauth", _)) => {
                    return Err(self.failure("delegation tokens are not supported"));
                }
                _ => {}
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
            return Err(self.failure("no user or nonce"));
        };
        if client_nonce.is_empty() || !printable(client_nonce) {
            return Err(self.failure("a malformed nonce"));
        }
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if unescape_name(authzid).as_deref() != Some(user.as_str()) {
                return Err(self.failure("an authorization id other than the user"));
            }
        } else if !authzid.is_empty() {
            return Err(self.failure("a malformed authorization id"));
        }
        let credential = store
            .scram_credential(&user, self.mechanism.name())
            .await
            .map_err(|error| self.failure(format!("reading credentials: {error}")))?
            .ok_or_else(|| self.failure(format!("no credential for {user:?}")))?;
        let mut random = [0u8; 24];
        lc_rand::fill(&mut random).map_err(|_| self.failure("no random nonce"))?;
        let nonce = format!("{client_nonce}{}", BASE64.encode(random));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let challenge = server_first.clone().into_bytes();
        self.state = State::Challenged {
            user,
            credential,
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
        };
        Ok(Step::Challenge(challenge))
    }

    /// SCRAM's client-final message: checks the proof, answers the
    /// server-final one.
    #[allow(clippy::too_many_arguments)]
    fn scram_final(
        &self,
        token: &[u8],
        user: &str,
        credential: &ScramCredential,
        gs2_header: &str,
        client_first_bare: &str,
        server_first: &str,
        nonce: &str,
    ) -> Result<Step, AuthFailure> {
        let hash = Hash::of(self.mechanism).ok_or_else(|| self.failure("not SCRAM"))?;
        let text = std::str::from_utf8(token).map_err(|_| self.failure("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| self.failure("no proof"))?;
        let mut binding = None;
        let mut echoed_nonce = None;
        for attribute in without_proof.split(',') {
            match attribute.split_once('=') {
                Some(("c", value)) => binding = Some(value),
                Some(("r", value)) => echoed_nonce = Some(value),
                _ => {}
            }
        }
        if binding != Some(BASE64.encode(gs2_header).as_str()) {
            return Err(self.failure("channel binding data does not match the GS2 header"));
        }
        // Kafka checks that the echoed nonce ends with the server's (some
        // librdkafka releases send the client nonce before it once more).
        if !echoed_nonce.is_some_and(|echoed| echoed.ends_with(nonce)) {
            return Err(self.failure("the nonce does not match"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| self.failure("a malformed proof"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hash.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(self.failure("a proof of the wrong length"));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if constant_time::verify_slices_are_equal(&hash.digest(&client_key), &credential.stored_key)
            .is_err()
        {
            return Err(self.failure(format!("wrong password for {user:?}")));
        }
        let server_signature = hash.hmac(&credential.server_key, auth_message.as_bytes());
        Ok(Step::Done {
            principal: Principal::user(user),
            token: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        })
    }
}

/// Whether `password` salted as `credential` was gives its stored key.
fn password_matches(mechanism: Mechanism, credential: &ScramCredential, password: &str) -> bool {
    let Some(hash) = Hash::of(mechanism) else {
        return false;
    };
    let Some(rounds) = u32::try_from(credential.iterations)
        .ok()
        .and_then(NonZeroU32::new)
    else {
        return false;
    };
    let salted = hash.salt(password.as_bytes(), &credential.salt, rounds);
    let expected = hash.credential(credential.salt.clone(), credential.iterations, &salted);
    constant_time::verify_slices_are_equal(&expected.stored_key, &credential.stored_key).is_ok()
}

/// RFC 5802's `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is
/// malformed.
fn unescape_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

/// RFC 5802's `printable`: ASCII 0x21–0x7E except `,`.
fn printable(text: &str) -> bool {
    text.bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use fjord_metadata::ScramChange;

    /// RFC 7677's SCRAM-SHA-256 example: user `user`, password `pencil`.
    #[test]
    fn the_rfc_7677_example_verifies() {
        let hash = Hash::of(Mechanism::ScramSha256).unwrap();
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = hash.salt(b"pencil", &salt, NonZeroU32::new(4096).unwrap());
        let credential = hash.credential(salt, 4096, &salted);
        let session = SaslSession::new(Mechanism::ScramSha256);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let step = session
            .scram_final(
                client_final.as_bytes(),
                "user",
                &credential,
                "n,,",
                client_first_bare,
                server_first,
                "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            )
            .unwrap();
        assert_eq!(
            step,
            Step::Done {
                principal: Principal::user("user"),
                token: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            }
        );
        assert!(password_matches(
            Mechanism::ScramSha256,
            &credential,
            "pencil"
        ));
        assert!(!password_matches(
            Mechanism::ScramSha256,
            &credential,
            "pencil!"
        ));
    }

    /// A client's side of SCRAM, to drive the server through whole exchanges.
    fn client_final(
        mechanism: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> String {
        let hash = Hash::of(mechanism).unwrap();
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attribute in server_first.split(',') {
            match attribute.split_once('=').unwrap() {
                ("r", v) => nonce = Some(v.to_owned()),
                ("s", v) => salt = Some(BASE64.decode(v).unwrap()),
                ("i", v) => iterations = Some(v.parse::<u32>().unwrap()),
                _ => {}
            }
        }
        let salted = hash.salt(
            password.as_bytes(),
            &salt.unwrap(),
            NonZeroU32::new(iterations.unwrap()).unwrap(),
        );
        let client_key = hash.hmac(&salted, b"Client Key");
        let stored_key = hash.digest(&client_key);
        let without_proof = format!("c=biws,r={}", nonce.unwrap());
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        format!("{without_proof},p={}", BASE64.encode(proof))
    }

    async fn store_with(user: &str, password: &str, mechanisms: &[Mechanism]) -> MetadataStore {
        let store = fjord_metadata::open("memory://").await.unwrap();
        let changes: Vec<ScramChange> = mechanisms
            .iter()
            .map(|m| ScramChange::Upsert {
                user: user.to_owned(),
                mechanism: m.name().to_owned(),
                credential: credential_from_password(*m, password, 4096).unwrap(),
            })
            .collect();
        store.alter_scram_credentials(&changes).await.unwrap();
        store
    }

    async fn scram(
        store: &MetadataStore,
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<Step, AuthFailure> {
        let mut session = SaslSession::new(mechanism);
        let client_first_bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
        let Step::Challenge(server_first) = session
            .step(store, format!("n,,{client_first_bare}").as_bytes())
            .await?
        else {
            panic!("no challenge");
        };
        let server_first = String::from_utf8(server_first).unwrap();
        let last = client_final(mechanism, password, &client_first_bare, &server_first);
        session.step(store, last.as_bytes()).await
    }

    #[tokio::test]
    async fn scram_exchanges_authenticate_the_right_password_only() {
        for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let store = store_with("alice", "s3cret", &[mechanism]).await;
            let done = scram(&store, mechanism, "alice", "s3cret").await.unwrap();
            let Step::Done { principal, token } = done else {
                panic!("not done");
            };
            assert_eq!(principal, Principal::user("alice"));
            assert!(token.starts_with(b"v="));
            let wrong = scram(&store, mechanism, "alice", "guess")
                .await
                .unwrap_err();
            let unknown = scram(&store, mechanism, "mallory", "s3cret")
                .await
                .unwrap_err();
            // The client is told the same whatever failed.
            assert_eq!(wrong.to_string(), unknown.to_string());
            assert!(wrong.detail.contains("wrong password"), "{wrong:?}");
            assert!(unknown.detail.contains("no credential"), "{unknown:?}");
        }
        // A user with only a SHA-256 credential cannot use SHA-512.
        let store = store_with("bob", "pw", &[Mechanism::ScramSha256]).await;
        assert!(
            scram(&store, Mechanism::ScramSha512, "bob", "pw")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn plain_checks_the_password_against_the_scram_credential() {
        let store = store_with("alice", "s3cret", &[Mechanism::ScramSha256]).await;
        let mut session = SaslSession::new(Mechanism::Plain);
        let done = session.step(&store, b"\0alice\0s3cret").await.unwrap();
        assert_eq!(
            done,
            Step::Done {
                principal: Principal::user("alice"),
                token: Vec::new()
            }
        );
        // The same authzid is accepted; another is not.
        let mut session = SaslSession::new(Mechanism::Plain);
        assert!(session.step(&store, b"alice\0alice\0s3cret").await.is_ok());
        for bad in [
            &b"bob\0alice\0s3cret"[..],
            b"\0alice\0wrong",
            b"\0mallory\0s3cret",
            b"\0alice",
            b"\0alice\0s3cret\0more",
            b"\0\0s3cret",
            b"\xff\xfe",
        ] {
            let mut session = SaslSession::new(Mechanism::Plain);
            assert!(session.step(&store, bad).await.is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn malformed_scram_tokens_fail_without_panicking() {
        let store = store_with("alice", "s3cret", &[Mechanism::ScramSha256]).await;
        for first in [
            &b""[..],
            b"n,,",
            b"p=tls-unique,,n=alice,r=abc",
            b"n,,n=alice",
            b"n,,r=abc",
            b"n,,n=al=ZZice,r=abc",
            b"n,,n=alice,r=a,bc,m=ext",
            b"n,a=bob,n=alice,r=abc",
            b"n,,n=alice,r=abc,tokenauth=true",
            b"\xff",
        ] {
            let mut session = SaslSession::new(Mechanism::ScramSha256);
            assert!(session.step(&store, first).await.is_err(), "{first:?}");
        }
        let mut session = SaslSession::new(Mechanism::ScramSha256);
        assert!(matches!(
            session.step(&store, b"n,,n=alice,r=abc").await,
            Ok(Step::Challenge(_))
        ));
        for last in [&b""[..], b"c=biws,r=wrong,p=AAAA", b"c=biws,p=%%%", b"p="] {
            let mut retry = SaslSession::new(Mechanism::ScramSha256);
            retry.step(&store, b"n,,n=alice,r=abc").await.unwrap();
            assert!(retry.step(&store, last).await.is_err(), "{last:?}");
        }
        // Once failed or done, a session takes nothing more.
        assert!(session.step(&store, b"c=biws,r=x,p=AAAA").await.is_err());
        assert!(session.step(&store, b"n,,n=alice,r=abc").await.is_err());
    }

    #[test]
    fn names_unescape_as_rfc_5802_says() {
        assert_eq!(unescape_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(unescape_name("plain").as_deref(), Some("plain"));
        assert_eq!(unescape_name("bad=2"), None);
        assert_eq!(unescape_name("bad=41"), None);
        assert_eq!(unescape_name(""), None);
    }
}
