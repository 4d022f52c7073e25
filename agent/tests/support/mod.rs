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
    /// The port of its HTTP gateway (free when it started, unless the test
    /// passed its own `--http-listen`).
    pub http_port: u16,
}

impl AgentProcess {
    /// Starts `fjord agent` over `data_dir` on a free loopback port and waits
    /// until its Kafka listener accepts connections.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Self {
        Self::start_with_env(data_dir, extra_args, &[])
    }

    /// As [`AgentProcess::start`], with extra environment variables.
    pub fn start_with_env(data_dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(data_dir, free_port(), extra_args, env)
    }

    /// As [`AgentProcess::start_with_env`], on `port` (to restart an agent where
    /// its clients expect it).
    pub fn start_on(data_dir: &Path, port: u16, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on_logging(data_dir, port, extra_args, env, None)
    }

    /// As [`AgentProcess::start_on`], appending the agent's stderr (its log)
    /// to `stderr_file` when given, instead of the test's own stderr.
    pub fn start_on_logging(
        data_dir: &Path,
        port: u16,
        extra_args: &[&str],
        env: &[(&str, &str)],
        stderr_file: Option<&Path>,
    ) -> Self {
        let stderr = match stderr_file {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap(),
            ),
            None => Stdio::inherit(),
        };
        // Every agent gets its own gateway port (the default, 8080, is one per
        // host), unless the test chose one.
        let http_port = match extra_args.iter().position(|a| *a == "--http-listen") {
            Some(i) => extra_args
                .get(i + 1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(0),
            None => free_port(),
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_fjord"));
        command
            .arg("agent")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--kafka-listen", &format!("127.0.0.1:{port}")]);
        if !extra_args.contains(&"--http-listen") {
            command.args(["--http-listen", &format!("127.0.0.1:{http_port}")]);
        }
        let child = command
            .args(extra_args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let agent = AgentProcess {
            child,
            port,
            http_port,
        };
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

/// A loopback port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The whitespace-separated fields after `key` of each line of a client
/// script's `output` that starts with it (`KEY value...` lines).
pub fn lines<'a>(output: &'a str, key: &str) -> Vec<Vec<&'a str>> {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some(key)).then(|| fields.collect())
        })
        .collect()
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

/// What a consumer-group scenario of `tests/clients/group_harness.py` reported.
pub struct GroupScenario {
    /// Its whole standard output.
    pub output: String,
    /// `COUNT name value` lines.
    pub counts: std::collections::BTreeMap<String, i64>,
    /// `TIMING label: seconds` lines, in order.
    pub timings: Vec<(String, f64)>,
}

impl GroupScenario {
    /// A count the scenario reported; fails the test if it is missing.
    pub fn count(&self, name: &str) -> i64 {
        *self
            .counts
            .get(name)
            .unwrap_or_else(|| panic!("no count {name:?} in:\n{}", self.output))
    }
}

/// Runs a scenario of `tests/clients/group_harness.py` against `bootstrap`
/// (`args`: the scenario name, then options); fails the test with the
/// harness's output if a check failed. Prints the rebalance times measured.
pub fn run_group_scenario(bootstrap: &str, args: &[&str]) -> GroupScenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/group_harness.py");
    let (scenario, options) = args.split_first().expect("a scenario name");
    let output = Command::new("python3")
        .arg(&path)
        .arg(scenario)
        .arg(bootstrap)
        .args(options)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "group scenario {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let mut counts = std::collections::BTreeMap::new();
    let mut timings = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("COUNT ") {
            let (name, value) = rest.rsplit_once(' ').unwrap();
            counts.insert(name.to_owned(), value.parse().unwrap());
        } else if let Some(rest) = line.strip_prefix("TIMING ") {
            let (label, seconds) = rest.rsplit_once(": ").unwrap();
            timings.push((label.to_owned(), seconds.parse().unwrap()));
        }
    }
    for (label, seconds) in &timings {
        println!(
            "rebalance time [{}] {label}: {seconds:.3} s",
            args.join(" ")
        );
    }
    GroupScenario {
        output: stdout,
        counts,
        timings,
    }
}
pub mod pki;
pub mod wire;

/// Segment object keys (`*.seg`) in a local-directory bucket, as object keys
/// (paths relative to `bucket`).
pub fn bucket_objects(bucket: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut dirs = vec![bucket.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(key) = path.strip_prefix(bucket)
                && let Some(key) = key.to_str()
                && key.ends_with(".seg")
            {
                out.insert(key.to_owned());
            }
        }
    }
    out
}
