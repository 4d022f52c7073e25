//! TLS in memory: the files refused with the setting to blame, handshakes
//! with and without client certificates (and the principal they name),
//! bytes that are not TLS, a stalled handshake, and reloading. Certificates
//! are made by the `openssl` command in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A directory of throwaway certificates.
struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Pki {
    fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.ca("ca");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A CA: `<name>.pem`, `<name>.key`.
    fn ca(&self, name: &str) {
        openssl(
            self.dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-noenc",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "3650",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    /// A certificate `<name>.pem` (and `<name>.key`) for `subject`, signed
    /// by the CA `ca`, for localhost and 127.0.0.1, for servers and clients.
    fn leaf(&self, name: &str, subject: &str, ca: &str, serial: u32) {
        std::fs::write(
            self.path("ext.cnf"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(
            self.dir.path(),
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-noenc",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                subject,
            ],
        );
        openssl(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-set_serial",
                &serial.to_string(),
                "-days",
                "365",
                "-extfile",
                "ext.cnf",
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    fn files(&self, server: &str, client_auth: ClientAuth) -> TlsFiles {
        TlsFiles {
            cert_file: self.path(&format!("{server}.pem")),
            key_file: self.path(&format!("{server}.key")),
            client_ca_file: (client_auth != ClientAuth::None).then(|| self.path("ca.pem")),
            client_auth,
        }
    }

    fn der(&self, name: &str) -> Vec<CertificateDer<'static>> {
        read_certificates(&self.path(&format!("{name}.pem"))).unwrap()
    }

    /// A client that trusts `ca` and presents `identity`'s certificate.
    fn client(&self, ca: &str, identity: Option<&str>) -> tokio_rustls::TlsConnector {
        let mut roots = RootCertStore::empty();
        for ca in self.der(ca) {
            roots.add(ca).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(name) => builder
                .with_client_auth_cert(
                    self.der(name),
                    read_key(&self.path(&format!("{name}.key"))).unwrap(),
                )
                .unwrap(),
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// What a client saw of a handshake with `server`, and what the server
/// made of it: the subject of the certificate the client was served, and
/// the principal (or the error) on the server's side.
async fn handshake(
    server: &Arc<TlsServer>,
    client: tokio_rustls::TlsConnector,
) -> (Option<String>, Result<Principal, HandshakeError>) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let accepting = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut accepted = server.accept(server_io, Purpose::Kafka).await?;
            // Proves the stream works: echo one byte.
            let mut byte = [0u8; 1];
            accepted
                .stream
                .read_exact(&mut byte)
                .await
                .map_err(HandshakeError::Failed)?;
            accepted
                .stream
                .write_all(&byte)
                .await
                .map_err(HandshakeError::Failed)?;
            accepted
                .stream
                .flush()
                .await
                .map_err(HandshakeError::Failed)?;
            Ok(accepted.principal)
        })
    };
    let name = ServerName::try_from("localhost").unwrap();
    let served = match client.connect(name, client_io).await {
        Ok(mut stream) => {
            let subject = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| x509::subject_rfc2253(cert).unwrap());
            // TLS 1.3: a refused client certificate shows up at the first read.
            let echoed = async {
                stream.write_all(b"x").await?;
                stream.flush().await?;
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await?;
                Ok::<_, std::io::Error>(byte)
            }
            .await;
            echoed.ok().and(subject)
        }
        Err(_) => None,
    };
    (served, accepting.await.unwrap())
}

#[tokio::test]
async fn a_client_without_a_certificate_is_anonymous_unless_one_is_required() {
    let pki = Pki::new();
    pki.leaf("server", "/O=Example/CN=localhost", "ca", 1);
    for auth in [ClientAuth::None, ClientAuth::Requested] {
        let server = Arc::new(TlsServer::load(pki.files("server", auth)).unwrap());
        let (served, principal) = handshake(&server, pki.client("ca", None)).await;
        assert_eq!(
            served.as_deref(),
            Some("CN=localhost,O=Example"),
            "{auth:?}"
        );
        assert_eq!(principal.unwrap(), Principal::anonymous(), "{auth:?}");
    }
    let server = Arc::new(TlsServer::load(pki.files("server", ClientAuth::Required)).unwrap());
    let (served, principal) = handshake(&server, pki.client("ca", None)).await;
    assert_eq!(served, None);
    assert!(
        matches!(principal, Err(HandshakeError::Failed(_))),
        "{principal:?}"
    );
}

#[tokio::test]
async fn a_client_certificate_names_the_principal_by_its_subject() {
    let pki = Pki::new();
    pki.leaf("server", "/CN=localhost", "ca", 1);
    pki.leaf("alice", "/C=NO/O=Example/OU=Streams/CN=alice", "ca", 2);
    for auth in [ClientAuth::Requested, ClientAuth::Required] {
        let server = Arc::new(TlsServer::load(pki.files("server", auth)).unwrap());
        let (served, principal) = handshake(&server, pki.client("ca", Some("alice"))).await;
        assert_eq!(served.as_deref(), Some("CN=localhost"));
        assert_eq!(
            principal.unwrap().to_string(),
            "User:CN=alice,OU=Streams,O=Example,C=NO",
            "{auth:?}"
        );
    }
}

#[tokio::test]
async fn a_client_certificate_another_ca_signed_is_refused() {
    let pki = Pki::new();
    pki.ca("rogue");
    pki.leaf("server", "/CN=localhost", "ca", 1);
    pki.leaf("mallory", "/CN=alice", "rogue", 2);
    for auth in [ClientAuth::Requested, ClientAuth::Required] {
        let server = Arc::new(TlsServer::load(pki.files("server", auth)).unwrap());
        let (served, principal) = handshake(&server, pki.client("ca", Some("mallory"))).await;
        assert_eq!(served, None, "{auth:?}");
        assert!(
            matches!(principal, Err(HandshakeError::Failed(_))),
            "{principal:?}"
        );
    }
}

#[tokio::test]
async fn bytes_that_are_not_tls_fail_the_handshake() {
    let pki = Pki::new();
    pki.leaf("server", "/CN=localhost", "ca", 1);
    let server = TlsServer::load(pki.files("server", ClientAuth::None)).unwrap();
    let (mut client, server_io) = tokio::io::duplex(4096);
    // A Kafka ApiVersions v0 request, in the clear.
    let request = [
        0, 0, 0, 14, 0, 18, 0, 0, 0, 0, 0, 1, 0, 4, b'k', b'c', b'a', b't',
    ];
    client.write_all(&request).await.unwrap();
    let refused = server.accept(server_io, Purpose::Kafka).await;
    assert!(
        matches!(refused, Err(HandshakeError::Failed(_))),
        "{refused:?}"
    );
    assert!(!refused.unwrap_err().is_hang_up());
}

#[tokio::test]
async fn a_client_that_hangs_up_is_told_apart_from_one_refused() {
    let pki = Pki::new();
    pki.leaf("server", "/CN=localhost", "ca", 1);
    let server = TlsServer::load(pki.files("server", ClientAuth::None)).unwrap();
    let (client, server_io) = tokio::io::duplex(4096);
    drop(client);
    let closed = server.accept(server_io, Purpose::Kafka).await;
    assert!(closed.unwrap_err().is_hang_up());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_handshake_times_out() {
    let pki = Pki::new();
    pki.leaf("server", "/CN=localhost", "ca", 1);
    let server = TlsServer::load(pki.files("server", ClientAuth::None)).unwrap();
    let (_client, server_io) = tokio::io::duplex(4096);
    let started = tokio::time::Instant::now();
    let stalled = server.accept(server_io, Purpose::Kafka).await;
    assert!(
        matches!(stalled, Err(HandshakeError::TimedOut(_))),
        "{stalled:?}"
    );
    assert_eq!(started.elapsed(), HANDSHAKE_TIMEOUT);
}

#[tokio::test]
async fn new_files_serve_new_connections_and_bad_ones_keep_the_old() {
    let pki = Pki::new();
    pki.leaf("server", "/CN=localhost/O=First", "ca", 1);
    let files = pki.files("server", ClientAuth::None);
    let server = Arc::new(TlsServer::load(files.clone()).unwrap());
    assert!(matches!(server.reload_if_changed(), Reload::Unchanged));
    let (served, _) = handshake(&server, pki.client("ca", None)).await;
    assert_eq!(served.as_deref(), Some("O=First,CN=localhost"));

    // A new certificate and key, written over the old files.
    pki.leaf("next", "/CN=localhost/O=Second", "ca", 2);
    std::fs::copy(pki.path("next.pem"), &files.cert_file).unwrap();
    std::fs::copy(pki.path("next.key"), &files.key_file).unwrap();
    match server.reload_if_changed() {
        Reload::Reloaded { subject } => assert_eq!(subject, "O=Second,CN=localhost"),
        other => panic!("{other:?}"),
    }
    let (served, _) = handshake(&server, pki.client("ca", None)).await;
    assert_eq!(served.as_deref(), Some("O=Second,CN=localhost"));

    // A certificate without its key (half an update): refused, the
    // second certificate stays, and the next change is tried again.
    pki.leaf("third", "/CN=localhost/O=Third", "ca", 3);
    std::fs::copy(pki.path("third.pem"), &files.cert_file).unwrap();
    match server.reload_if_changed() {
        Reload::Failed(error) => {
            assert_eq!(error.setting(&files), "tls-key-file", "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(server.reload_if_changed(), Reload::Unchanged));
    let (served, _) = handshake(&server, pki.client("ca", None)).await;
    assert_eq!(served.as_deref(), Some("O=Second,CN=localhost"));
    std::fs::copy(pki.path("third.key"), &files.key_file).unwrap();
    assert!(matches!(
        server.reload_if_changed(),
        Reload::Reloaded { .. }
    ));
    assert_eq!(server.subject(), "O=Third,CN=localhost");
}

#[test]
fn bad_files_are_refused_naming_the_setting() {
    let pki = Pki::new();
    pki.leaf("server", "/CN=localhost", "ca", 1);
    pki.leaf("other", "/CN=other", "ca", 2);
    std::fs::write(pki.path("garbage"), "not pem at all\n").unwrap();
    std::fs::write(
        pki.path("encrypted.key"),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let good = pki.files("server", ClientAuth::Required);
    good.check().unwrap();
    let cases: Vec<(&str, TlsFiles, &str)> = vec![
        (
            "tls-cert-file",
            TlsFiles {
                cert_file: pki.path("missing.pem"),
                ..good.clone()
            },
            "cannot read",
        ),
        (
            "tls-cert-file",
            TlsFiles {
                cert_file: pki.path("garbage"),
                ..good.clone()
            },
            "holds no PEM certificate",
        ),
        (
            "tls-key-file",
            TlsFiles {
                key_file: pki.path("missing.key"),
                ..good.clone()
            },
            "cannot read",
        ),
        (
            "tls-key-file",
            TlsFiles {
                key_file: pki.path("server.pem"),
                ..good.clone()
            },
            "holds no unencrypted PEM private key",
        ),
        (
            "tls-key-file",
            TlsFiles {
                key_file: pki.path("encrypted.key"),
                ..good.clone()
            },
            "the key is encrypted",
        ),
        (
            "tls-key-file",
            TlsFiles {
                key_file: pki.path("other.key"),
                ..good.clone()
            },
            "does not go with the certificate",
        ),
        (
            "tls-client-ca-file",
            TlsFiles {
                client_ca_file: Some(pki.path("garbage")),
                ..good.clone()
            },
            "holds no usable CA certificate",
        ),
        (
            "tls-client-ca-file",
            TlsFiles {
                client_ca_file: Some(pki.path("missing-ca.pem")),
                ..good.clone()
            },
            "cannot read",
        ),
        (
            "tls-client-auth",
            TlsFiles {
                client_ca_file: None,
                ..good.clone()
            },
            "needs tls-client-ca-file",
        ),
    ];
    for (setting, files, words) in cases {
        let error = files.check().unwrap_err();
        assert_eq!(error.setting(&files), setting, "{error}");
        assert!(error.to_string().contains(words), "{setting}: {error}");
    }
}
