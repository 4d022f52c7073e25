//! The TLS settings: read from every layer, refused naming the setting (a
//! missing or bad file, client authentication without a CA, a setting
//! nothing uses), and handed to the agent as its TLS files.

use std::process::Command;

use super::*;
use crate::security::SecurityProtocol;
use crate::security::tls::{ClientAuth, TlsFiles};

/// A CA (`ca.pem`) and a certificate it signed (`server.pem`,
/// `server.key`), made by the `openssl` command.
fn certificates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-noenc",
    ];
    let ca = [
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "30",
        "-subj",
        "/CN=ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ];
    run(&[&["req", "-x509"][..], &ec[..], &ca[..]].concat());
    let csr = [
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ];
    run(&[&["req", "-new"][..], &ec[..], &csr[..]].concat());
    std::fs::write(dir.path().join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "1",
        "-days",
        "30",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    dir
}

fn path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_str().unwrap().to_owned()
}

#[test]
fn tls_is_off_by_default() {
    let settings = AgentSettings::default();
    assert_eq!(
        settings.kafka_security_protocol,
        SecurityProtocol::Plaintext
    );
    assert_eq!(settings.tls_cert_file, None);
    assert_eq!(settings.tls_key_file, None);
    assert_eq!(settings.tls_client_ca_file, None);
    assert_eq!(settings.tls_client_auth, ClientAuth::None);
    assert!(!settings.http_tls);
    assert_eq!(settings.tls_files(), None);
    assert_eq!(
        settings.broker_settings().security_protocol,
        SecurityProtocol::Plaintext
    );
}

#[test]
fn tls_settings_load_from_flags_environment_and_file_and_reach_the_agent() {
    let pki = certificates();
    let (cert, key, ca) = (
        path(&pki, "server.pem"),
        path(&pki, "server.key"),
        path(&pki, "ca.pem"),
    );
    let given = flags(&[
        "--kafka-security-protocol",
        "SSL",
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-client-ca-file",
        &ca,
        "--tls-client-auth",
        "required",
        "--http-tls",
    ]);
    let settings = AgentSettings::load_from(&given, NO_ENV).unwrap();
    let files = TlsFiles {
        cert_file: cert.clone().into(),
        key_file: key.clone().into(),
        client_ca_file: Some(ca.clone().into()),
        client_auth: ClientAuth::Required,
    };
    assert_eq!(settings.tls_files(), Some(files.clone()));
    assert_eq!(
        settings.broker_settings().security_protocol,
        SecurityProtocol::Ssl
    );
    let options = crate::launch::options(&settings);
    assert_eq!(options.tls, Some(files));
    assert!(options.http_tls);
    assert!(!flags(&["--http-tls", "false"]).http_tls.unwrap());

    let env = [
        ("FJORD_KAFKA_SECURITY_PROTOCOL", "SSL"),
        ("FJORD_TLS_CERT_FILE", cert.as_str()),
        ("FJORD_TLS_KEY_FILE", key.as_str()),
        ("FJORD_TLS_CLIENT_AUTH", "requested"),
        ("FJORD_TLS_CLIENT_CA_FILE", ca.as_str()),
        ("FJORD_HTTP_TLS", "true"),
    ];
    let settings = AgentSettings::load_from(&AgentArgs::default(), env).unwrap();
    assert_eq!(settings.tls_client_auth, ClientAuth::Requested);
    assert!(settings.http_tls);

    let (_dir, file) = file(&format!(
        "kafka-security-protocol = \"SSL\"\ntls-cert-file = {cert:?}\ntls-key-file = {key:?}\n"
    ));
    let settings = AgentSettings::load_from(&with_file(&file), NO_ENV).unwrap();
    assert_eq!(settings.kafka_security_protocol, SecurityProtocol::Ssl);
    assert_eq!(settings.tls_client_auth, ClientAuth::None);

    let refused = AgentSettings::load_from(
        &AgentArgs::default(),
        [("FJORD_KAFKA_SECURITY_PROTOCOL", "TLS")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("FJORD_KAFKA_SECURITY_PROTOCOL") && refused.contains("SSL"),
        "{refused}"
    );
}

#[test]
fn tls_rules_are_refused_naming_the_setting() {
    let pki = certificates();
    let (cert, key, ca) = (
        path(&pki, "server.pem"),
        path(&pki, "server.key"),
        path(&pki, "ca.pem"),
    );
    let ssl = move |s: &mut AgentSettings| {
        s.kafka_security_protocol = SecurityProtocol::Ssl;
        s.tls_cert_file = Some(cert.clone().into());
        s.tls_key_file = Some(key.clone().into());
    };
    assert_eq!(broken_by(ssl.clone()), Vec::<&str>::new());
    let cases: Vec<(Vec<&str>, Change)> = vec![
        // Served over TLS without a certificate or key.
        (
            vec!["tls-cert-file", "tls-key-file"],
            Box::new(|s| s.kafka_security_protocol = SecurityProtocol::Ssl),
        ),
        (
            vec!["tls-cert-file", "tls-key-file"],
            Box::new(|s| s.http_tls = true),
        ),
        (
            vec!["tls-key-file"],
            Box::new({
                let ssl = ssl.clone();
                move |s| {
                    ssl(s);
                    s.tls_key_file = None;
                }
            }),
        ),
        // A setting nothing served over TLS would use.
        (
            vec!["tls-cert-file"],
            Box::new(|s| s.tls_cert_file = Some("server.pem".into())),
        ),
        (
            vec!["tls-client-auth"],
            Box::new(|s| s.tls_client_auth = ClientAuth::Required),
        ),
        // Client certificates without the CAs that sign them, and CAs
        // without asking for client certificates.
        (
            vec!["tls-client-auth"],
            Box::new({
                let ssl = ssl.clone();
                move |s| {
                    ssl(s);
                    s.tls_client_auth = ClientAuth::Requested;
                }
            }),
        ),
        (
            vec!["tls-client-ca-file"],
            Box::new({
                let ssl = ssl.clone();
                let ca = ca.clone();
                move |s| {
                    ssl(s);
                    s.tls_client_ca_file = Some(ca.into());
                }
            }),
        ),
        // Files that do not load.
        (
            vec!["tls-cert-file"],
            Box::new({
                let ssl = ssl.clone();
                move |s| {
                    ssl(s);
                    s.tls_cert_file = Some("/nonexistent/server.pem".into());
                }
            }),
        ),
        (
            vec!["tls-key-file"],
            Box::new({
                let ssl = ssl.clone();
                let ca = ca.clone();
                move |s| {
                    ssl(s);
                    s.tls_key_file = Some(ca.into());
                }
            }),
        ),
        (
            vec!["tls-client-ca-file"],
            Box::new({
                let ssl = ssl.clone();
                let key = path(&pki, "server.key");
                move |s| {
                    ssl(s);
                    s.tls_client_auth = ClientAuth::Required;
                    s.tls_client_ca_file = Some(key.into());
                }
            }),
        ),
    ];
    for (expected, change) in cases {
        assert_eq!(broken_by(change), expected);
    }
}

#[test]
fn a_bad_tls_file_is_refused_with_its_flag_and_why() {
    let pki = certificates();
    let given = flags(&[
        "--kafka-security-protocol",
        "SSL",
        "--tls-cert-file",
        &path(&pki, "server.pem"),
        "--tls-key-file",
        &path(&pki, "missing.key"),
    ]);
    let refused = AgentSettings::load_from(&given, NO_ENV)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("flag --tls-key-file") && refused.contains("cannot read"),
        "{refused}"
    );
    let given = flags(&["--tls-client-auth", "required"]);
    let refused = AgentSettings::load_from(&given, NO_ENV)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("flag --tls-client-auth")
            && refused.contains("nothing is served over TLS"),
        "{refused}"
    );
}
