//! ACLs through clients nobody here wrote, against `fjord agent --authorizer
//! acl` processes. Clients connect without TLS or SASL, so they act as
//! `User:ANONYMOUS`:
//!
//! 1. with `--super-users User:ANONYMOUS`, kafka-python's KafkaAdminClient and
//!    confluent-kafka's AdminClient create, describe (by filter, MATCH
//!    included) and delete ACLs, and leave ACLs for the second part;
//! 2. the agent restarted on the same data without the super user: a
//!    confluent-kafka producer and consumer are refused with
//!    `TOPIC_AUTHORIZATION_FAILED` on a topic without ACLs, served on topics
//!    with literal and prefixed ALLOWs, and refused again after DENYs, which
//!    the client creates itself through its `ALTER` on the cluster.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use support::{AgentProcess, run_python_client_with_args};

#[test]
fn real_clients_manage_acls_and_are_held_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &[
            "--flush-interval-ms",
            "10",
            "--authorizer",
            "acl",
            "--super-users",
            "User:ANONYMOUS",
        ],
    );
    let out = run_python_client_with_args("acls.py", &["manage", &agent.address()]);
    assert!(out.contains("acls manage: ok"), "{out}");
    drop(agent);

    // The ACLs are in metadata: a new agent process enforces them.
    let agent = AgentProcess::start(
        dir.path(),
        &["--flush-interval-ms", "10", "--authorizer", "acl"],
    );
    let out = run_python_client_with_args("acls.py", &["enforce", &agent.address()]);
    assert!(out.contains("acls enforce: ok"), "{out}");
}
