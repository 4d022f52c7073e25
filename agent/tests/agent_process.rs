//! The real `fjord` binary, run as separate processes over one SQLite metadata
//! file: agents register with distinct node ids, heartbeat, and deregister on
//! SIGTERM.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fjord_metadata::AgentRecord;

/// An agent with its own data directory under `dir` (named after its port) and
/// the metadata file shared by all of them.
fn spawn_agent(dir: &Path, address: &str) -> Child {
    let port = address.rsplit_once(':').unwrap().1;
    let metadata = format!("sqlite://{}", dir.join("metadata.db").display());
    Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args([
            "agent",
            "--metadata-url",
            &metadata,
            "--heartbeat-interval-ms",
            "50",
            "--kafka-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--advertised-address",
            address,
        ])
        .arg("--data-dir")
        .arg(dir.join(format!("agent-{port}")))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

async fn agents(url: &str) -> Vec<AgentRecord> {
    fjord_metadata::open(url)
        .await
        .unwrap()
        .list_agents()
        .await
        .unwrap()
}

/// Polls until `ready` holds, for at most 30 s.
async fn wait_until(url: &str, ready: impl Fn(&[AgentRecord]) -> bool) -> Vec<AgentRecord> {
    for _ in 0..300 {
        let now = agents(url).await;
        if ready(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "agents never reached the expected state: {:?}",
        agents(url).await
    );
}

fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "agent exited with {exit} after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_share_sqlite_metadata_heartbeat_and_leave_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("metadata.db").display());
    let mut first = spawn_agent(dir.path(), "127.0.0.1:19092");
    let mut second = spawn_agent(dir.path(), "127.0.0.1:19093");

    let both = wait_until(&url, |a| a.len() == 2 && a.iter().all(|r| r.heartbeat >= 3)).await;
    assert_ne!(both[0].node_id, both[1].node_id);
    let mut addresses: Vec<&str> = both.iter().map(|r| r.advertised_address.as_str()).collect();
    addresses.sort_unstable();
    assert_eq!(addresses, ["127.0.0.1:19092", "127.0.0.1:19093"]);

    terminate(&mut first);
    let left = wait_until(&url, |a| a.len() == 1).await;
    assert_eq!(left[0].advertised_address, "127.0.0.1:19093");
    // The survivor keeps heartbeating.
    let before = left[0].heartbeat;
    wait_until(&url, |a| a.len() == 1 && a[0].heartbeat > before + 2).await;

    terminate(&mut second);
    assert!(agents(&url).await.is_empty());
}

#[test]
fn version_prints_the_package_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .arg("version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.trim(), format!("fjord {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_bad_metadata_url_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["agent", "--metadata-url", "postgres://nowhere"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported metadata url"), "{stderr}");
}
