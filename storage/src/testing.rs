//! Test and benchmark support: a real S3-compatible server (the S3 server of the
//! PyPI package `moto[server]`, which `scripts/install-deps.sh` installs) run as a
//! child process on loopback. Not part of the crate's API.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::object_store::{S3Options, StoreOptions};

/// A `python3 -m moto.server` child process, killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

const INSTALL_HINT: &str = "install it with scripts/install-deps.sh \
     (python3 -m pip install 'moto[server]')";

impl MotoServer {
    /// Starts the server on a free loopback port and waits until it answers
    /// HTTP (up to 30 s).
    pub fn start() -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let log = std::env::temp_dir().join(format!("fjord-moto-{port}.log"));
        let stderr = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                format!("cannot run python3 for the moto S3 server: {e}; {INSTALL_HINT}")
            })?;
        let mut server = MotoServer { child, port, log };
        for _ in 0..300 {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "the moto S3 server exited at startup ({status}): {}\n{INSTALL_HINT}",
                    server.log_text()
                ));
            }
            if server.request("GET", "/").is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "the moto S3 server did not answer on port {port} within 30 s: {}",
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
            .map_err(|e| format!("connect to moto: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("write to moto: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|e| format!("read from moto: {e}"))?;
        let text = String::from_utf8_lossy(&response);
        text.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP response from moto: {text:.200}"))
    }

    /// Creates a bucket (S3's CreateBucket is a PUT of the bucket path; moto does
    /// not check signatures).
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

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Best effort: the process may already be gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
