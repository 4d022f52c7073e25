//! Running a real `fjord agent` process for tests.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An agent process; killed (SIGKILL) when dropped.
pub struct AgentProcess {
    pub child: Child,
    pub port: u16,
}

impl AgentProcess {
    /// Starts `fjord agent` over `data_dir` on a free loopback port and waits
    /// until its Kafka listener accepts connections.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Self {
        Self::start_with_env(data_dir, extra_args, &[])
    }

    /// As [`AgentProcess::start`], with extra environment variables.
    pub fn start_with_env(data_dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(data_dir, port, extra_args, env)
    }

    /// As [`AgentProcess::start_with_env`], on `port` (to restart an agent where
    /// its clients expect it).
    pub fn start_on(data_dir: &Path, port: u16, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_fjord"))
            .arg("agent")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--kafka-listen", &format!("127.0.0.1:{port}")])
            .args(extra_args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let agent = AgentProcess { child, port };
        for _ in 0..300 {
            if TcpStream::connect(agent.address()).is_ok() {
                return agent;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the agent never listened on {}", agent.address());
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client script from `tests/clients/` with `python3`, passing the
/// bootstrap address; fails the test with the script's output if it fails.
pub fn run_python_client(script: &str, bootstrap: &str) -> String {
    run_python_client_with_args(script, &[bootstrap])
}

/// As [`run_python_client`], with the script's arguments given in full.
pub fn run_python_client_with_args(script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(script);
    let output = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}
