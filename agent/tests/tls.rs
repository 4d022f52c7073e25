//! TLS on a real agent process, with clients nobody here wrote: kcat,
//! confluent-kafka, kafka-python, aiokafka and kafkajs produce and consume
//! over `SSL`; mutual TLS names the connection's principal after the client
//! certificate's subject and refuses certificates another CA signed; bytes
//! that are not TLS, and handshakes that stall, are refused while the agent
//! serves on; the gateway serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN, gRPC);
//! a replaced certificate is served to new connections while open ones keep
//! theirs. Certificates are made for each test by the `openssl` command.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use support::pki::Pki;
use support::wire::{decode_response, request_frame};
use support::{AgentProcess, free_port, run_python_client_with_args};

/// The agent's log: the connection's principal (debug, in the connection
/// span), refused connections (info), reloads (info).
const RUST_LOG: &str = "warn,fjord_agent::kafka::server=debug,fjord_agent::security::tls=info";

/// An agent with TLS, logging to a file the test reads.
struct TlsAgent {
    agent: AgentProcess,
    log: PathBuf,
    _data: tempfile::TempDir,
}

impl TlsAgent {
    /// An agent whose Kafka listener is `SSL` with the PKI's `server`
    /// certificate, plus `extra` flags.
    fn start(pki: &Pki, extra: &[&str]) -> Self {
        let mut args = vec!["--kafka-security-protocol", "SSL"];
        args.extend_from_slice(extra);
        Self::start_with(pki, &args)
    }

    /// An agent with the PKI's `server` certificate and `args`.
    fn start_with(pki: &Pki, args: &[&str]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let log = data.path().join("agent.log");
        let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
        let mut all = vec![
            "--flush-interval-ms",
            "20",
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
        ];
        all.extend_from_slice(args);
        let agent = AgentProcess::start_on_logging(
            data.path(),
            free_port(),
            &all,
            &[("RUST_LOG", RUST_LOG)],
            Some(&log),
        );
        TlsAgent {
            agent,
            log,
            _data: data,
        }
    }

    fn address(&self) -> String {
        self.agent.address()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to a minute) until the log has `text`.
    fn wait_for_log(&self, text: &str) {
        self.wait_for_log_count(text, 1);
    }

    /// Waits (up to a minute) until the log has `text` at least `count` times.
    fn wait_for_log_count(&self, text: &str, count: usize) {
        for _ in 0..600 {
            if self.log().matches(text).count() >= count {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the agent never logged {text:?} {count} times; its log:\n{}",
            self.log()
        );
    }

    fn assert_running(&mut self) {
        assert!(
            self.agent.child.try_wait().unwrap().is_none(),
            "the agent exited; its log:\n{}",
            self.log()
        );
    }
}

/// Runs kcat with `args` (and `stdin`); fails the test if it fails.
fn kcat(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// kcat's flags for SSL with `ca`, and a client certificate when given.
fn kcat_ssl(pki: &Pki, identity: Option<&str>) -> Vec<String> {
    let mut flags = vec![
        "-X".to_owned(),
        "security.protocol=SSL".to_owned(),
        "-X".to_owned(),
        format!("ssl.ca.location={}", pki.path("ca.pem")),
    ];
    if let Some(name) = identity {
        flags.extend([
            "-X".to_owned(),
            format!(
                "ssl.certificate.location={}",
                pki.path(&format!("{name}.pem"))
            ),
            "-X".to_owned(),
            format!("ssl.key.location={}", pki.path(&format!("{name}.key"))),
        ]);
    }
    flags
}

/// Produces `count` records with kcat to a new topic and consumes them back.
fn kcat_round_trip(agent: &TlsAgent, pki: &Pki, identity: Option<&str>, topic: &str) {
    let ssl = kcat_ssl(pki, identity);
    let ssl: Vec<&str> = ssl.iter().map(String::as_str).collect();
    let address = agent.address();
    let records: String = (0..200).map(|i| format!("key-{i}:value-{i}\n")).collect();
    let mut produce = vec!["-b", &address, "-P", "-t", topic, "-K:", "-X", "acks=all"];
    produce.extend_from_slice(&ssl);
    kcat(&produce, &records);
    let mut consume = vec![
        "-b",
        &address,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
    ];
    consume.extend(["-f", "%k:%s\n"]);
    consume.extend_from_slice(&ssl);
    assert_eq!(kcat(&consume, ""), records);
}

/// What `tls.py handshake` made of a handshake with `identity`'s certificate
/// (or none): `ACCEPTED <subject>` or `REFUSED <why>`.
fn python_handshake(agent: &TlsAgent, pki: &Pki, identity: Option<&str>) -> String {
    let ca = pki.path("ca.pem");
    let (cert, key) = identity
        .map(|name| {
            (
                pki.path(&format!("{name}.pem")),
                pki.path(&format!("{name}.key")),
            )
        })
        .unzip();
    let address = agent.address();
    let mut args = vec!["handshake", address.as_str(), ca.as_str()];
    if let (Some(cert), Some(key)) = (&cert, &key) {
        args.extend([cert.as_str(), key.as_str()]);
    }
    run_python_client_with_args("tls.py", &args)
        .trim()
        .to_owned()
}

#[test]
fn kcat_produces_and_consumes_over_ssl() {
    let pki = Pki::new();
    let agent = TlsAgent::start(&pki, &[]);
    kcat_round_trip(&agent, &pki, None, "kcat-tls");
    // No client certificate asked for: anonymous.
    agent.wait_for_log("principal=User:ANONYMOUS");
}

#[test]
fn python_clients_produce_and_consume_over_ssl() {
    let pki = Pki::new();
    let agent = TlsAgent::start(&pki, &[]);
    let ca = pki.path("ca.pem");
    for client in ["confluent-kafka", "kafka-python", "aiokafka"] {
        let output =
            run_python_client_with_args("tls.py", &["roundtrip", client, &agent.address(), &ca]);
        assert!(
            output.contains(&format!("OK roundtrip {client} 300")),
            "{output}"
        );
    }
}

#[test]
fn kafkajs_produces_and_consumes_over_ssl() {
    let pki = Pki::new();
    let agent = TlsAgent::start(&pki, &[]);
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/node");
    let output = Command::new("node")
        .arg(node_dir.join("tls.js"))
        .args([agent.address(), pki.path("ca.pem")])
        .current_dir(&node_dir)
        .output()
        .expect("node is installed by scripts/install-deps.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("OK roundtrip kafkajs 300"),
        "kafkajs: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn mutual_tls_names_the_principal_and_refuses_other_certificates() {
    let pki = Pki::new();
    pki.leaf("alice", "/O=Example/CN=alice", "ca", 2);
    pki.ca("rogue");
    pki.leaf("mallory", "/O=Example/CN=alice", "rogue", 3);
    let ca = pki.path("ca.pem");
    let mut agent = TlsAgent::start(
        &pki,
        &["--tls-client-auth", "required", "--tls-client-ca-file", &ca],
    );

    // A certificate the CA signed: served, as its subject.
    kcat_round_trip(&agent, &pki, Some("alice"), "mtls-kcat");
    let output = run_python_client_with_args(
        "tls.py",
        &[
            "roundtrip",
            "confluent-kafka",
            &agent.address(),
            &ca,
            &pki.path("alice.pem"),
            &pki.path("alice.key"),
        ],
    );
    assert!(
        output.contains("OK roundtrip confluent-kafka 300"),
        "{output}"
    );
    agent.wait_for_log("principal=User:CN=alice,O=Example");
    assert!(
        !agent.log().contains("principal=User:ANONYMOUS"),
        "no connection is anonymous under required client auth"
    );

    // The same subject signed by another CA, and no certificate: refused.
    let refused = python_handshake(&agent, &pki, Some("mallory"));
    assert!(refused.starts_with("REFUSED"), "{refused}");
    let refused = python_handshake(&agent, &pki, None);
    assert!(refused.starts_with("REFUSED"), "{refused}");
    agent.wait_for_log("kafka connection refused");
    assert!(
        !agent.log().contains("principal=User:ANONYMOUS"),
        "a refused client never gets a principal"
    );

    // And the agent serves on.
    let accepted = python_handshake(&agent, &pki, Some("alice"));
    assert!(
        accepted.starts_with("ACCEPTED") && accepted.contains("commonName=localhost"),
        "{accepted}"
    );
    agent.assert_running();
}

/// Everything the peer sends until it closes the connection (a read
/// timeout fails the test rather than hanging it).
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return received;
            }
            Err(e) => panic!("the agent did not close the connection: {e}"),
        }
    }
}

#[test]
fn plaintext_and_stalled_handshakes_are_refused_and_the_agent_serves_on() {
    let pki = Pki::new();
    let mut agent = TlsAgent::start(&pki, &[]);

    // A Kafka ApiVersions request in the clear: at most a TLS alert comes
    // back, never a Kafka answer, and the connection closes.
    let mut plain = TcpStream::connect(agent.address()).unwrap();
    plain
        .write_all(&request_frame(
            ApiKey::ApiVersions,
            0,
            7,
            &ApiVersionsRequest::default(),
        ))
        .unwrap();
    let answer = read_until_closed(&mut plain);
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "not a TLS alert: {answer:?}"
    );

    // An HTTP request, and a TLS record header that never gets its body.
    let mut http = TcpStream::connect(agent.address()).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut http);
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");
    let mut stalled = TcpStream::connect(agent.address()).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let mut silent = TcpStream::connect(agent.address()).unwrap();
    // Both are closed once the handshake times out.
    assert!(read_until_closed(&mut stalled).is_empty());
    assert!(read_until_closed(&mut silent).is_empty());

    agent.wait_for_log("kafka connection refused");
    agent.wait_for_log("no TLS handshake within");
    agent.assert_running();
    kcat_round_trip(&agent, &pki, None, "after-garbage");
    let accepted = python_handshake(&agent, &pki, None);
    assert!(accepted.starts_with("ACCEPTED"), "{accepted}");
}

/// Runs curl with `args`: (success, stdout).
fn curl(args: &[&str]) -> (bool, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn the_gateway_serves_https_http2_and_grpc_with_the_same_certificate() {
    let pki = Pki::new();
    // The Kafka listener stays PLAINTEXT; only the gateway is TLS.
    let mut agent = TlsAgent::start_with(&pki, &["--http-tls"]);
    let ca = pki.path("ca.pem");
    let base = format!("https://localhost:{}", agent.agent.http_port);

    let (ok, out) = curl(&[
        "--cacert",
        &ca,
        "--http1.1",
        "-X",
        "POST",
        &format!("{base}/v1/topics"),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"web","partitions":1}"#,
    ]);
    assert!(ok, "{out}");
    let (ok, out) = curl(&[
        "--cacert",
        &ca,
        "--http2",
        "-w",
        "\nhttp=%{http_version}",
        &format!("{base}/v1/topics/web/partitions/0/records"),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"records":[{"key":"k","value":"over https"}]}"#,
    ]);
    assert!(ok && out.contains(r#""offset":0"#), "{out}");
    assert!(out.ends_with("http=2"), "HTTP/2 by ALPN: {out}");
    let (ok, out) = curl(&[
        "--cacert",
        &ca,
        "-w",
        "\nhttp=%{http_version}",
        &format!("{base}/v1/topics/web/partitions/0/records?offset=0"),
    ]);
    assert!(ok && out.contains("over https"), "{out}");

    // gRPC over TLS (HTTP/2 by ALPN).
    let grpc = format!("localhost:{}", agent.agent.http_port);
    let output = run_python_client_with_args("tls.py", &["grpc-health", &grpc, &ca]);
    assert!(output.contains("OK grpc-health SERVING"), "{output}");

    // Plain HTTP to the HTTPS port, and a client that does not trust the
    // CA: refused; the gateway serves on.
    let (ok, out) = curl(&[&format!(
        "http://localhost:{}/v1/topics",
        agent.agent.http_port
    )]);
    assert!(!ok, "plain HTTP was answered: {out}");
    let (ok, out) = curl(&[&format!("{base}/v1/topics")]);
    assert!(
        !ok,
        "a client without the CA trusted the certificate: {out}"
    );
    agent.wait_for_log("gateway connection refused");
    let (ok, out) = curl(&["--cacert", &ca, &format!("{base}/v1/topics")]);
    assert!(ok && out.contains("web"), "{out}");
    // The Kafka listener, PLAINTEXT, still answers in the clear.
    let mut wire = support::wire::Wire::connect(&agent.address());
    let versions: ApiVersionsResponse =
        wire.call(ApiKey::ApiVersions, 0, 1, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    agent.assert_running();
}

/// The subject and serial of the certificate `openssl s_client` is served
/// at `address` (`subject=CN=localhost,O=...` and `serial=..`, RFC 2253).
fn served_certificate(address: &str, ca: &str) -> String {
    let s_client = Command::new("openssl")
        .args(["s_client", "-connect", address, "-servername", "localhost"])
        .args(["-CAfile", ca, "-verify_return_error"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let mut x509 = Command::new("openssl")
        .args([
            "x509", "-noout", "-subject", "-serial", "-nameopt", "RFC2253",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    x509.stdin
        .take()
        .unwrap()
        .write_all(&s_client.stdout)
        .unwrap();
    let output = x509.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A TLS connection (rustls, trusting `ca`) with an ApiVersions request
/// answered on it.
struct HeldConnection {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    subject: String,
    correlation_id: i32,
}

impl HeldConnection {
    fn open(address: &str, ca: &str) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca).unwrap();
        for cert in <rustls::pki_types::CertificateDer<'_> as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(address).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut held = HeldConnection {
            stream: rustls::StreamOwned::new(connection, tcp),
            subject: String::new(),
            correlation_id: 0,
        };
        held.api_versions();
        let certificate = held.stream.conn.peer_certificates().unwrap()[0].clone();
        held.subject = fjord_agent::security::x509::subject_rfc2253(&certificate).unwrap();
        held
    }

    /// Sends ApiVersions and reads its answer.
    fn api_versions(&mut self) {
        self.correlation_id += 1;
        let frame = request_frame(
            ApiKey::ApiVersions,
            0,
            self.correlation_id,
            &ApiVersionsRequest::default(),
        );
        self.stream.write_all(&frame).unwrap();
        self.stream.flush().unwrap();
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let (correlation_id, response): (i32, ApiVersionsResponse) =
            decode_response(ApiKey::ApiVersions, 0, body.into());
        assert_eq!(correlation_id, self.correlation_id);
        assert_eq!(response.error_code, 0);
    }
}

/// Replaces `to` with `from` at once (a rename), as a careful deployment does.
fn replace(from: &str, to: &str) {
    let staged = format!("{to}.new");
    std::fs::copy(from, &staged).unwrap();
    std::fs::rename(&staged, to).unwrap();
}

#[test]
fn a_replaced_certificate_serves_new_connections_and_open_ones_keep_theirs() {
    let pki = Pki::new();
    let mut agent = TlsAgent::start(&pki, &[]);
    let ca = pki.path("ca.pem");
    let address = agent.address();
    assert_eq!(
        served_certificate(&address, &ca),
        "subject=CN=localhost,O=Fjord\nserial=01"
    );
    let mut held = HeldConnection::open(&address, &ca);
    assert_eq!(held.subject, "CN=localhost,O=Fjord");

    // A new certificate and key (another subject, another serial).
    pki.leaf("next", "/O=Fjord Renewed/CN=localhost", "ca", 2);
    replace(&pki.path("next.key"), &pki.path("server.key"));
    replace(&pki.path("next.pem"), &pki.path("server.pem"));
    agent.wait_for_log("tls certificate reloaded");
    let renewed = "subject=CN=localhost,O=Fjord Renewed\nserial=02";
    assert_eq!(served_certificate(&address, &ca), renewed);
    assert_eq!(
        HeldConnection::open(&address, &ca).subject,
        "CN=localhost,O=Fjord Renewed"
    );
    // The connection opened before is served on, with the certificate it
    // was given.
    held.api_versions();
    assert_eq!(held.subject, "CN=localhost,O=Fjord");

    // A bad file: logged, and the renewed certificate stays. (The key,
    // replaced before its certificate, may have been refused once already.)
    let refusals = agent.log().matches("do not load").count();
    std::fs::write(
        pki.path("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    replace(&pki.path("broken.pem"), &pki.path("server.pem"));
    agent.wait_for_log_count("do not load", refusals + 1);
    assert_eq!(served_certificate(&address, &ca), renewed);
    kcat_round_trip(&agent, &pki, None, "after-reload");
    agent.assert_running();
}
