//! TLS on the Kafka listener and the HTTP/gRPC gateway (rustls, with the
//! aws-lc-rs provider): the certificate and key, optional client
//! certificates whose subject becomes the connection's principal, reloading
//! without a restart, and bounded handshakes.
//!
//! # Parts
//!
//! - [`TlsFiles`]: where the PEM files are and whether client certificates
//!   are asked for (`tls-cert-file`, `tls-key-file`, `tls-client-ca-file`,
//!   `tls-client-auth`). [`TlsFiles::check`] reads them as a start would and
//!   says which setting is wrong.
//! - [`TlsServer`]: the current rustls configuration built from the files,
//!   [`TlsServer::accept`] (one handshake, at most [`HANDSHAKE_TIMEOUT`]) and
//!   [`TlsServer::watch`] (the reload loop).
//! - [`TlsListener`]: the gateway's listener over TLS, which hands a
//!   connection to the HTTP server only once its handshake is done, so a
//!   stalled handshake never holds up the others.
//!
//! # Principal
//!
//! A client that presents a certificate (`tls-client-auth` `requested` or
//! `required`; the certificate verified against `tls-client-ca-file`) is
//! `User:` + its subject in RFC 2253 form (`User:CN=alice,O=Example`), as
//! Kafka's default principal builder names it ([`super::x509`]); any other
//! client is `User:ANONYMOUS`. Under `required`, a client without a
//! certificate signed by one of the CAs fails the handshake.
//!
//! # Reloading
//!
//! [`TlsServer::watch`] looks at the three files every
//! [`RELOAD_CHECK_INTERVAL`] (modification time, size and inode, following
//! symbolic links, so a Kubernetes secret's symlink swap counts) and, when
//! any changed, builds a new configuration from all three. New connections
//! get it; connections already open keep the certificate they were served.
//! A file that does not load (half written, a key that does not fit the
//! certificate) is logged at `warn` and the old configuration stays until
//! the files change again. There is no SIGHUP: its default action ends the
//! process, and a poll catches every way of replacing files.
//!
//! # Bad input
//!
//! Bytes that are not TLS (a Kafka request sent in the clear), a client
//! certificate no CA signed, or a handshake that does not finish within
//! [`HANDSHAKE_TIMEOUT`]: the handshake fails, the connection closes and the
//! failure is logged at `info` with the peer (a client that only connects
//! and closes, as a TCP health check does, at `debug`). Nothing else is
//! affected.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::Principal;
use super::x509::{self, MalformedCertificate};

/// The longest a TLS handshake may take; then the connection closes (and
/// gives back its connection permit).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`TlsServer::watch`] looks at the certificate files.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Gateway handshakes in progress at once; further connections wait in the
/// accept queue.
const MAX_HTTP_HANDSHAKES: usize = 1024;

/// Gateway connections handshaken and not yet taken by the HTTP server.
const HTTP_ACCEPTED_QUEUE: usize = 64;

/// ALPN of the gateway: HTTP/2 first (gRPC needs it), then HTTP/1.1.
const HTTP_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Whether clients are asked for a certificate (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAuth {
    /// No client certificate is asked for: every client is `User:ANONYMOUS`.
    #[default]
    None,
    /// A certificate is asked for; a client without one is `User:ANONYMOUS`,
    /// one with a certificate no CA signed is refused.
    Requested,
    /// Every client must present a certificate signed by one of the CAs.
    Required,
}

impl ClientAuth {
    /// The setting's value (`required`).
    pub fn name(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Requested => "requested",
            ClientAuth::Required => "required",
        }
    }
}

/// Where the TLS material is, and whether client certificates are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server's certificate, then its chain (`tls-cert-file`).
    pub cert_file: PathBuf,
    /// PEM: the certificate's private key, PKCS#8, PKCS#1 or SEC1,
    /// unencrypted (`tls-key-file`).
    pub key_file: PathBuf,
    /// PEM: the CAs client certificates must be signed by
    /// (`tls-client-ca-file`); needed unless `client_auth` is `None`.
    pub client_ca_file: Option<PathBuf>,
    /// Whether client certificates are asked for (`tls-client-auth`).
    pub client_auth: ClientAuth,
}

/// Why the TLS files do not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The certificate file holds no certificate, or not as PEM.
    #[error("{} holds no PEM certificate{}", path.display(), detail(reason))]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said, if anything.
        reason: Option<String>,
    },
    /// The key file holds no usable private key.
    #[error("{} holds no unencrypted PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY){}", path.display(), detail(reason))]
    NoKey {
        /// The file.
        path: PathBuf,
        /// Why, if known.
        reason: Option<String>,
    },
    /// The key is not one rustls can sign with, or not the certificate's.
    #[error("the key in {} does not go with the certificate in {}: {reason}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
    /// The client CA file holds no usable CA certificate.
    #[error("{} holds no usable CA certificate{}", path.display(), detail(reason))]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why, if known.
        reason: Option<String>,
    },
    /// Client certificates are asked for, but no CA file says who signs them.
    #[error("tls-client-auth {} needs tls-client-ca-file: the CAs client certificates are checked against", auth.name())]
    ClientAuthWithoutCa {
        /// The setting's value.
        auth: ClientAuth,
    },
    /// rustls refused the configuration.
    #[error("building the TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

fn detail(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|reason| format!(": {reason}"))
        .unwrap_or_default()
}

impl TlsError {
    /// The setting whose file (or value) is wrong, to name it in errors.
    pub fn setting(&self, files: &TlsFiles) -> &'static str {
        match self {
            TlsError::Read { path, .. } => {
                if *path == files.key_file {
                    "tls-key-file"
                } else if files.client_ca_file.as_deref() == Some(path.as_path()) {
                    "tls-client-ca-file"
                } else {
                    "tls-cert-file"
                }
            }
            TlsError::NoCertificate { .. } | TlsError::Config(_) => "tls-cert-file",
            TlsError::NoKey { .. } | TlsError::KeyMismatch { .. } => "tls-key-file",
            TlsError::ClientCa { .. } => "tls-client-ca-file",
            TlsError::ClientAuthWithoutCa { .. } => "tls-client-auth",
        }
    }
}

impl TlsFiles {
    /// Reads and checks the files as [`TlsServer::load`] does.
    pub fn check(&self) -> Result<(), TlsError> {
        Configs::load(self).map(|_| ())
    }
}

/// What a connection is for: the gateway's offers ALPN `h2` and `http/1.1`;
/// the Kafka listener's offers none (Kafka clients send none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The Kafka listener.
    Kafka,
    /// The HTTP/gRPC gateway.
    Http,
}

/// The configurations built from one reading of the files.
#[derive(Debug)]
struct Configs {
    kafka: Arc<rustls::ServerConfig>,
    http: Arc<rustls::ServerConfig>,
    /// The certificate's subject, for the log.
    subject: String,
}

impl Configs {
    fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = read_certificates(&files.cert_file)?;
        let key = read_key(&files.key_file)?;
        let verifier: Option<Arc<dyn ClientCertVerifier>> = match files.client_auth {
            ClientAuth::None => None,
            auth @ (ClientAuth::Requested | ClientAuth::Required) => {
                let Some(ca_file) = &files.client_ca_file else {
                    return Err(TlsError::ClientAuthWithoutCa { auth });
                };
                Some(client_verifier(ca_file, auth, provider.clone())?)
            }
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        let builder = match verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let subject = chain
            .first()
            .map(|cert| x509::subject_rfc2253(cert).unwrap_or_else(|error| format!("({error})")))
            .unwrap_or_default();
        let kafka =
            builder
                .with_single_cert(chain, key)
                .map_err(|error| TlsError::KeyMismatch {
                    cert: files.cert_file.clone(),
                    key: files.key_file.clone(),
                    reason: error.to_string(),
                })?;
        let mut http = kafka.clone();
        http.alpn_protocols = HTTP_ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            kafka: Arc::new(kafka),
            http: Arc::new(http),
            subject,
        })
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::NoCertificate {
            path: path.to_owned(),
            reason: Some(error.to_string()),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            reason: None,
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| {
        let encrypted = pem
            .windows(b"ENCRYPTED".len())
            .any(|window| window == b"ENCRYPTED");
        TlsError::NoKey {
            path: path.to_owned(),
            reason: Some(if encrypted {
                "the key is encrypted".to_owned()
            } else {
                error.to_string()
            }),
        }
    })
}

fn client_verifier(
    ca_file: &Path,
    auth: ClientAuth,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let bad = |reason: Option<String>| TlsError::ClientCa {
        path: ca_file.to_owned(),
        reason,
    };
    let pem = read_file(ca_file)?;
    let cas = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(Some(error.to_string())))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(cas);
    if added == 0 {
        return Err(bad(None));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = match auth {
        ClientAuth::Requested => builder.allow_unauthenticated(),
        ClientAuth::None | ClientAuth::Required => builder,
    };
    builder
        .build()
        .map_err(|error| bad(Some(error.to_string())))
}

/// What identifies a version of a file: a change to any part means the file
/// was replaced or written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: (u64, u64),
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        #[cfg(unix)]
        inode: {
            use std::os::unix::fs::MetadataExt as _;
            (metadata.dev(), metadata.ino())
        },
    })
}

/// What a look at the files found.
#[derive(Debug)]
pub enum Reload {
    /// No file changed.
    Unchanged,
    /// The files changed and loaded; new connections get the certificate
    /// with this subject.
    Reloaded {
        /// The new certificate's subject.
        subject: String,
    },
    /// The files changed and did not load; the old configuration stays.
    Failed(TlsError),
}

/// The TLS side of the listeners: the current configuration, and the files
/// it is reloaded from.
#[derive(Debug)]
pub struct TlsServer {
    files: TlsFiles,
    configs: RwLock<Arc<Configs>>,
    /// The files' stamps at the last load or attempt.
    seen: Mutex<Vec<Option<FileStamp>>>,
}

/// A connection whose handshake is done.
#[derive(Debug)]
pub struct Accepted<S> {
    /// The encrypted stream.
    pub stream: tokio_rustls::server::TlsStream<S>,
    /// Who the client is: its certificate's subject, or `User:ANONYMOUS`.
    pub principal: Principal,
}

/// Why a handshake failed (the connection is then closed).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client did not finish the handshake in time.
    #[error("no TLS handshake within {0:?}")]
    TimedOut(Duration),
    /// The handshake failed: not TLS, a refused certificate, a closed
    /// connection.
    #[error("tls handshake failed: {0}")]
    Failed(#[source] io::Error),
    /// The client certificate passed verification but its subject cannot be
    /// read, so it names no principal.
    #[error("the client certificate's subject cannot be read: {0}")]
    Subject(#[from] MalformedCertificate),
}

impl HandshakeError {
    /// Whether the client closed the connection before the handshake was
    /// done, without a word of TLS wrong: a TCP health check, a port probe,
    /// a client giving up. Logged at debug, not with the refusals, so a load
    /// balancer's probes do not fill the log.
    pub fn is_hang_up(&self) -> bool {
        match self {
            HandshakeError::Failed(error) => error.kind() == io::ErrorKind::UnexpectedEof,
            HandshakeError::TimedOut(_) | HandshakeError::Subject(_) => false,
        }
    }
}

impl TlsServer {
    /// Loads the files (an error names what is wrong with which).
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        // Stamped before reading, so a change made while reading is seen
        // at the next look.
        let seen = Self::stamps(&files);
        let configs = Configs::load(&files)?;
        tracing::info!(subject = %configs.subject, "tls certificate loaded");
        Ok(Self {
            files,
            configs: RwLock::new(Arc::new(configs)),
            seen: Mutex::new(seen),
        })
    }

    /// The files this server loads from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    fn stamps(files: &TlsFiles) -> Vec<Option<FileStamp>> {
        [
            Some(files.cert_file.as_path()),
            Some(files.key_file.as_path()),
            files.client_ca_file.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(stamp)
        .collect()
    }

    fn current(&self) -> Arc<Configs> {
        self.configs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The subject of the certificate new connections get.
    pub fn subject(&self) -> String {
        self.current().subject.clone()
    }

    /// Loads the files again if any changed since the last look (blocking
    /// file IO: call it off the async threads).
    pub fn reload_if_changed(&self) -> Reload {
        let now = Self::stamps(&self.files);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        match Configs::load(&self.files) {
            Ok(configs) => {
                let subject = configs.subject.clone();
                *self.configs.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(configs);
                Reload::Reloaded { subject }
            }
            Err(error) => Reload::Failed(error),
        }
    }

    /// Looks at the files every [`RELOAD_CHECK_INTERVAL`] until `stop`,
    /// reloading them when they change (see the module docs).
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) -> anyhow::Result<()> {
        let mut ticks = tokio::time::interval(RELOAD_CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = ticks.tick() => {}
            }
            let server = self.clone();
            match tokio::task::spawn_blocking(move || server.reload_if_changed()).await? {
                Reload::Unchanged => {}
                Reload::Reloaded { subject } => {
                    tracing::info!(%subject, "tls certificate reloaded; new connections get it");
                }
                Reload::Failed(error) => {
                    tracing::warn!(
                        %error,
                        setting = error.setting(&self.files),
                        "tls files changed but do not load; keeping the certificate loaded before"
                    );
                }
            }
        }
    }

    /// Runs the server side of a TLS handshake on `stream`, within
    /// [`HANDSHAKE_TIMEOUT`], with the configuration current now.
    pub async fn accept<S>(
        &self,
        stream: S,
        purpose: Purpose,
    ) -> Result<Accepted<S>, HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let configs = self.current();
        let config = match purpose {
            Purpose::Kafka => configs.kafka.clone(),
            Purpose::Http => configs.http.clone(),
        };
        let handshake = TlsAcceptor::from(config).accept(stream);
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Err(_) => return Err(HandshakeError::TimedOut(HANDSHAKE_TIMEOUT)),
            Ok(Err(error)) => return Err(HandshakeError::Failed(error)),
            Ok(Ok(stream)) => stream,
        };
        let principal = principal_of(stream.get_ref().1)?;
        Ok(Accepted { stream, principal })
    }
}

/// The principal a verified client certificate names (`User:` + its subject
/// in RFC 2253 form), or `User:ANONYMOUS` without one.
pub fn principal_of(
    connection: &rustls::ServerConnection,
) -> Result<Principal, MalformedCertificate> {
    match connection.peer_certificates().and_then(<[_]>::first) {
        Some(certificate) => Ok(Principal::user(x509::subject_rfc2253(certificate)?)),
        None => Ok(Principal::anonymous()),
    }
}

/// The gateway's listener over TLS: accepts TCP connections, runs each
/// handshake in its own task (at most 1,024 at once, each
/// within [`HANDSHAKE_TIMEOUT`]), and hands the HTTP server only the
/// connections whose handshake succeeded. Accepting stops when `stop` is
/// cancelled or the listener is dropped.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    _stop_on_drop: DropGuard,
}

impl TlsListener {
    /// Accepts on `listener` with `tls`'s current configuration, until
    /// `stop` is cancelled (or the listener is dropped).
    pub fn new(
        listener: TcpListener,
        tls: Arc<TlsServer>,
        stop: CancellationToken,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(HTTP_ACCEPTED_QUEUE);
        let stop = stop.child_token();
        tokio::spawn(accept_http(listener, tls, sender, stop.clone()));
        Ok(Self {
            local_addr,
            accepted,
            _stop_on_drop: stop.drop_guard(),
        })
    }
}

async fn accept_http(
    listener: TcpListener,
    tls: Arc<TlsServer>,
    accepted: mpsc::Sender<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HTTP_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            permit = handshakes.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else { return };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: wait a little
                    // rather than spin.
                    tracing::warn!(%error, "gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a gateway connection");
        }
        let tls = tls.clone();
        let accepted = accepted.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = tokio::select! {
                _ = stop.cancelled() => return,
                handshake = tls.accept(stream, Purpose::Http) => handshake,
            };
            match handshake {
                Ok(done) => {
                    tracing::debug!(%peer, principal = %done.principal, "gateway tls handshake done");
                    let _ = accepted.send((done.stream, peer)).await;
                }
                Err(error) if error.is_hang_up() => {
                    tracing::debug!(%peer, %error, "gateway connection closed during its tls handshake");
                }
                Err(error) => tracing::info!(%peer, %error, "gateway connection refused"),
            }
        });
    }
}

impl fjord_gateway::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept task ended (stopping): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests;
