//! Test and benchmark support: a real S3-compatible server run as a child
//! process on loopback: the S3 server of the PyPI package `moto[server]`, or
//! LocalStack's S3 (PyPI `localstack-core`, run without Docker from the
//! virtual environment `scripts/install-deps.sh` makes). Not part of the
//! crate's API.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::object_store::{S3Options, StoreOptions};

/// An S3-compatible server child process (moto or LocalStack), killed on drop.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    port: u16,
    log: PathBuf,
    name: &'static str,
}

/// The moto server: what most tests use.
pub type MotoServer = S3Server;

const MOTO_INSTALL_HINT: &str = "install it with scripts/install-deps.sh \
     (python3 -m pip install 'moto[server]')";
const LOCALSTACK_INSTALL_HINT: &str = "scripts/install-deps.sh installs LocalStack into \
     ~/.cache/fjord/localstack-<version> (Python 3.13; FJORD_LOCALSTACK_PYTHON names \
     another interpreter)";

/// The LocalStack release the tests run, and the interpreter of its virtual
/// environment (`scripts/install-deps.sh`).
const LOCALSTACK_VERSION: &str = "2026.3.0";

fn localstack_python() -> PathBuf {
    if let Ok(python) = std::env::var("FJORD_LOCALSTACK_PYTHON") {
        return PathBuf::from(python);
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache")
        });
    cache
        .join("fjord")
        .join(format!("localstack-{LOCALSTACK_VERSION}"))
        .join("bin")
        .join("python")
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| format!("no free loopback port: {e}"))
        .map(|address| address.port())
}

impl S3Server {
    /// Starts moto's S3 server on a free loopback port and waits until it
    /// answers HTTP (up to 30 s).
    pub fn start() -> Result<Self, String> {
        let port = free_port()?;
        let mut command = Command::new("python3");
        command.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]);
        Self::spawn(command, port, "moto", MOTO_INSTALL_HINT, 300)
    }

    /// Starts LocalStack's S3 (no Docker: `python -m localstack.runtime.main`
    /// with `SERVICES=s3`) on a free loopback port and waits until it answers
    /// (up to 120 s).
    pub fn start_localstack() -> Result<Self, String> {
        let port = free_port()?;
        let volume = std::env::temp_dir().join(format!("fjord-localstack-{port}"));
        let mut command = Command::new(localstack_python());
        command
            .args(["-m", "localstack.runtime.main"])
            .env("SERVICES", "s3")
            .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("OVERRIDE_IN_DOCKER", "0")
            .env("LOCALSTACK_VOLUME_DIR", &volume)
            .env("SKIP_SSL_CERT_DOWNLOAD", "1")
            .env("DISABLE_EVENTS", "1");
        Self::spawn(command, port, "LocalStack", LOCALSTACK_INSTALL_HINT, 1200)
    }

    fn spawn(
        mut command: Command,
        port: u16,
        name: &'static str,
        hint: &str,
        tries: u32,
    ) -> Result<Self, String> {
        let log = std::env::temp_dir().join(format!("fjord-s3-{name}-{port}.log"));
        let stderr = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let stdout = stderr
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start the {name} S3 server: {e}; {hint}"))?;
        let mut server = S3Server {
            child,
            port,
            log,
            name,
        };
        for _ in 0..tries {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "the {name} S3 server exited at startup ({status}): {}\n{hint}",
                    server.log_text()
                ));
            }
            if server.request("GET", "/").is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the {name} S3 server did not answer on port {port} within {} s: {}",
            tries / 10,
            server.log_text()
        ))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's HTTP endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends a bodiless request and returns the status code.
    fn request(&self, method: &str, path: &str) -> Result<u16, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| format!("connect to {}: {e}", self.name))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("write to {}: {e}", self.name))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|e| format!("read from {}: {e}", self.name))?;
        let text = String::from_utf8_lossy(&response);
        text.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP response from {}: {text:.200}", self.name))
    }

    /// Creates a bucket (S3's CreateBucket is a PUT of the bucket path; moto and
    /// LocalStack do not check signatures).
    pub fn create_bucket(&self, bucket: &str) -> Result<(), String> {
        match self.request("PUT", &format!("/{bucket}"))? {
            200 => Ok(()),
            status => Err(format!("creating bucket {bucket} answered HTTP {status}")),
        }
    }

    /// Store options that reach this server (path-style, plain HTTP, dummy
    /// credentials), with quick retries.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            s3: S3Options {
                endpoint: Some(self.endpoint()),
                region: Some("us-east-1".into()),
                allow_http: Some(true),
                virtual_hosted_style: Some(false),
                access_key_id: Some("testing".into()),
                secret_access_key: Some("testing".into()),
                session_token: None,
                ..S3Options::default()
            },
            ..StoreOptions::default()
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Best effort: the process may already be gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("fjord-localstack-{}", self.port)),
        );
    }
}
