//! SASL on the Kafka listener (`SASL_PLAINTEXT`) with real clients
//! (`tests/clients/sasl.py`, `tests/clients/node/sasl.js`, kcat), users set
//! with `fjord users set` before the agent starts and through
//! `AlterUserScramCredentials` while it runs:
//!
//! - `PLAIN`, `SCRAM-SHA-256` and `SCRAM-SHA-512` each authenticate
//!   confluent-kafka (librdkafka), kafka-python, aiokafka, kafkajs and kcat,
//!   which produce and read back records;
//! - a wrong password is refused with an authentication error by every
//!   client, an unknown user too, and a request before authenticating closes
//!   the connection (`ApiVersions` alone is answered);
//! - confluent-kafka's AdminClient sets, describes and deletes another user's
//!   credentials, who can then log in with the mechanisms left only;
//! - 1,000 logins with wrong passwords, 20 at a time, are all refused while
//!   an authenticated producer goes on with no error;
//! - over TLS (`SASL_SSL`) with the ACL authorizer, the SASL user is the
//!   principal ACLs name: a prefixed allow lets alice produce and consume
//!   with every Python client, a literal deny beats it, and bob, without
//!   ACLs, is refused (`TOPIC_AUTHORIZATION_FAILED`).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::pki::Pki;
use support::{AgentProcess, lines, run_python_client_with_args};

const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Sets `user`'s SCRAM credentials with `fjord users set`.
fn set_user(data_dir: &Path, user: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["users", "--data-dir"])
        .arg(data_dir)
        .args(["set", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "fjord users set: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sasl(args: &[&str]) -> String {
    let output = run_python_client_with_args("sasl.py", args);
    assert!(output.contains(&format!("OK {}", args[1])), "{output}");
    println!("{args:?}:\n{output}");
    output
}

fn kafkajs(args: &[&str]) -> String {
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/node");
    let output = Command::new("node")
        .arg(node_dir.join("sasl.js"))
        .args(args)
        .current_dir(&node_dir)
        .output()
        .expect("node is installed by scripts/install-deps.sh");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "sasl.js {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// kcat produces `values` and reads them back; returns what it read.
fn kcat_roundtrip(bootstrap: &str, mechanism: &str, topic: &str, values: &[&str]) -> Vec<String> {
    let auth = [
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        &format!("sasl.mechanisms={mechanism}"),
        "-X",
        "sasl.username=alice",
        "-X",
        "sasl.password=alice-secret",
    ];
    let mut producer = Command::new("kcat")
        .args(["-b", bootstrap, "-P", "-t", topic, "-X", "acks=all"])
        .args(auth)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = producer.stdin.take().unwrap();
        for value in values {
            writeln!(stdin, "{value}").unwrap();
        }
    }
    let produced = producer.wait_with_output().unwrap();
    assert!(
        produced.status.success(),
        "kcat produce: {}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let consumed = Command::new("kcat")
        .args(["-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e"])
        .args(auth)
        .output()
        .unwrap();
    assert!(consumed.status.success());
    String::from_utf8_lossy(&consumed.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every client of a `refused` scenario was refused for its credentials:
/// librdkafka says so, kafka-python (which retries until its timeout) logged
/// the authentication failure, and aiokafka (which authenticates after a v0
/// handshake, where Kafka answers a failure by closing) lost its connection.
fn assert_refused(out: &str, user: &str) {
    let refused: std::collections::BTreeMap<&str, Vec<&str>> = lines(out, "REFUSED")
        .into_iter()
        .map(|fields| (fields[0], fields[1..].to_vec()))
        .collect();
    assert!(
        refused["confluent-kafka"][0].contains("SASL_authentication_error"),
        "{user}: {out}"
    );
    assert_eq!(
        refused["kafka-python"],
        ["KafkaTimeoutError", "auth_failure_logged=True"],
        "{user}: {out}"
    );
    assert_eq!(
        refused["aiokafka"],
        ["KafkaConnectionError"],
        "{user}: {out}"
    );
}

#[test]
fn sasl_clients_authenticate_and_wrong_passwords_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    set_user(dir.path(), "alice", "alice-secret");
    let agent = AgentProcess::start(
        dir.path(),
        &[
            "--kafka-security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-enabled-mechanisms",
            "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "--flush-interval-ms",
            "10",
        ],
    );
    let bootstrap = agent.address();

    for mechanism in MECHANISMS {
        let topic = format!("sasl-{}", mechanism.to_lowercase());
        let out = sasl(&[
            &bootstrap,
            "roundtrip",
            "SASL_PLAINTEXT",
            mechanism,
            "alice",
            "alice-secret",
            &topic,
        ]);
        let round: Vec<_> = lines(&out, "ROUNDTRIP");
        assert_eq!(round.len(), 3, "{out}");
        for fields in round {
            assert_eq!(fields[1], "10", "{} over {mechanism}", fields[0]);
        }
        let js = kafkajs(&[
            &bootstrap,
            "roundtrip",
            &mechanism.to_lowercase(),
            "alice",
            "alice-secret",
            &topic,
        ]);
        assert!(js.contains("ROUNDTRIP kafkajs 10"), "{js}");
        let read = kcat_roundtrip(
            &bootstrap,
            mechanism,
            &format!("{topic}-kcat"),
            &["k1", "k2"],
        );
        assert_eq!(read, ["k1", "k2"], "kcat over {mechanism}");
    }

    // Wrong passwords and unknown users are refused by every client.
    for (user, password) in [("alice", "guess"), ("mallory", "alice-secret")] {
        let out = sasl(&[
            &bootstrap,
            "refused",
            "SASL_PLAINTEXT",
            "SCRAM-SHA-256",
            user,
            password,
        ]);
        assert_refused(&out, user);
        let js = kafkajs(&[&bootstrap, "refused", "scram-sha-256", user, password]);
        assert!(
            js.contains("REFUSED kafkajs KafkaJSSASLAuthenticationError"),
            "{js}"
        );
    }
    let raw = sasl(&[&bootstrap, "unauthenticated"]);
    assert_eq!(lines(&raw, "APIVERSIONS")[0][0], "0", "{raw}");
    assert_eq!(lines(&raw, "METADATA")[0][0], "closed", "{raw}");

    // AlterUserScramCredentials / DescribeUserScramCredentials through
    // confluent-kafka's AdminClient, logged in as alice.
    let admin = sasl(&[
        &bootstrap,
        "admin",
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
        "alice",
        "alice-secret",
        "carol",
        "carol-secret",
    ]);
    let described = lines(&admin, "DESCRIBED");
    assert_eq!(
        described,
        vec![
            vec!["carol", "SCRAM_SHA_256", "4096"],
            vec!["carol", "SCRAM_SHA_512", "8192"],
            vec!["carol", "SCRAM_SHA_256", "4096"],
        ],
        "{admin}"
    );
    assert_eq!(
        lines(&admin, "DELETE_AGAIN"),
        vec![vec!["RESOURCE_NOT_FOUND"]]
    );
    let carol = sasl(&[
        &bootstrap,
        "roundtrip",
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        "carol",
        "carol-secret",
        "carol-topic",
    ]);
    assert_eq!(lines(&carol, "ROUNDTRIP").len(), 3);
    let gone = sasl(&[
        &bootstrap,
        "refused",
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
        "carol",
        "carol-secret",
    ]);
    assert_refused(&gone, "carol");

    // A brute force leaves an authenticated producer served.
    let steady = std::thread::spawn({
        let bootstrap = bootstrap.clone();
        move || {
            run_python_client_with_args(
                "sasl.py",
                &[
                    &bootstrap,
                    "steady",
                    "SASL_PLAINTEXT",
                    "SCRAM-SHA-256",
                    "alice",
                    "alice-secret",
                    "steady",
                    "15",
                ],
            )
        }
    });
    let brute = sasl(&[&bootstrap, "brute", "1000", "20", "alice"]);
    let steady = steady.join().unwrap();
    println!("{steady}");
    assert_eq!(lines(&brute, "BRUTE")[0], ["refused", "1000"], "{brute}");
    let fields = &lines(&steady, "STEADY")[0];
    assert_eq!(
        fields[3], "0",
        "producer errors during the brute force: {steady}"
    );
    assert_eq!(fields[1], fields[5], "every record sent was acknowledged");
}

/// As [`sasl`], with the clients trusting `ca` (for `SASL_SSL`).
fn sasl_over_tls(ca: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/sasl.py");
    let output = Command::new("python3")
        .arg(script)
        .args(args)
        .env("FJORD_TEST_CA", ca)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && stdout.contains(&format!("OK {}", args[1])),
        "sasl.py {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{args:?}:\n{stdout}");
    stdout
}

#[test]
fn sasl_ssl_users_are_the_principals_acls_name() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let dir = tempfile::tempdir().unwrap();
    for user in ["admin", "alice", "bob"] {
        set_user(dir.path(), user, &format!("{user}-secret"));
    }
    let agent = AgentProcess::start(
        dir.path(),
        &[
            "--kafka-security-protocol",
            "SASL_SSL",
            "--sasl-enabled-mechanisms",
            "PLAIN,SCRAM-SHA-512",
            "--tls-cert-file",
            &pki.path("server.pem"),
            "--tls-key-file",
            &pki.path("server.key"),
            "--authorizer",
            "acl",
            "--super-users",
            "User:admin",
            "--flush-interval-ms",
            "10",
        ],
    );
    let bootstrap = agent.address().replace("127.0.0.1", "localhost");
    let as_user = |user: &'static str, mechanism: &'static str| {
        [
            "SASL_SSL".to_owned(),
            mechanism.to_owned(),
            user.to_owned(),
            format!("{user}-secret"),
        ]
    };
    let args = |scenario: &str, user: [String; 4], extra: &[&str]| -> String {
        let mut all: Vec<&str> = vec![&bootstrap, scenario];
        all.extend(user.iter().map(String::as_str));
        all.extend_from_slice(extra);
        sasl_over_tls(&ca, &all)
    };

    let setup = args("acl_setup", as_user("admin", "SCRAM-SHA-512"), &[]);
    assert!(setup.contains("ACLS 4"), "{setup}");
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let round = args(
            "roundtrip",
            as_user("alice", mechanism),
            &[&format!("alice-{}", mechanism.to_lowercase())],
        );
        let counts = lines(&round, "ROUNDTRIP");
        assert_eq!(counts.len(), 3, "{round}");
        for fields in counts {
            assert_eq!(fields[1], "10", "{} as alice over {mechanism}", fields[0]);
        }
    }
    let outcome = |user, topic| {
        let out = args("try_produce", as_user(user, "SCRAM-SHA-512"), &[topic]);
        lines(&out, "PRODUCE")[0][1].to_owned()
    };
    assert_eq!(outcome("alice", "alice-data"), "ok");
    assert_eq!(
        outcome("alice", "alice-secret"),
        "TOPIC_AUTHORIZATION_FAILED"
    );
    assert_eq!(outcome("alice", "bob-data"), "TOPIC_AUTHORIZATION_FAILED");
    assert_eq!(outcome("bob", "alice-data"), "TOPIC_AUTHORIZATION_FAILED");
    assert_eq!(outcome("admin", "bob-data"), "ok");
}
