//! Real agents in-process for the client's tests: the embedded stack (SQLite
//! metadata, a local-directory bucket) with both listeners on `127.0.0.1:0`.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use fjord_agent::config::AgentSettings;
use tokio::sync::oneshot;

/// Where a group of agents keeps what they share.
pub struct Cluster {
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn metadata_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("metadata.db").display())
    }

    fn storage_url(&self) -> String {
        format!("file://{}", self.dir.path().join("bucket").display())
    }

    /// Starts agent `name` over the shared metadata file and bucket.
    pub async fn start(&self, name: &str) -> TestAgent {
        TestAgent::start(
            &self.dir.path().join(name),
            self.metadata_url(),
            self.storage_url(),
        )
        .await
    }
}

/// A running agent; stopped (gracefully) with [`TestAgent::stop`], or
/// abandoned with the test's runtime.
pub struct TestAgent {
    /// `http://127.0.0.1:<port>` of its gateway.
    pub url: String,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    run: Option<tokio::task::JoinHandle<()>>,
}

impl TestAgent {
    async fn start(data_dir: &Path, metadata_url: String, storage_url: String) -> Self {
        let settings = AgentSettings {
            data_dir: data_dir.to_path_buf(),
            metadata_url: Some(metadata_url),
            storage_url: Some(storage_url),
            kafka_listen: "127.0.0.1:0".to_owned(),
            http_listen: "127.0.0.1:0".to_owned(),
            flush_interval_ms: 20,
            ..AgentSettings::default()
        };
        let agent = fjord_agent::launch::open(&settings)
            .await
            .unwrap()
            .start()
            .await
            .unwrap();
        let url = format!("http://{}", agent.http_address().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let run = tokio::spawn(async move {
            let _ = agent
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url,
            data_dir: data_dir.to_path_buf(),
            stop: Some(stop),
            run: Some(run),
        }
    }

    /// Shuts the agent down gracefully and waits until it has.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(run) = self.run.take() {
            within(Duration::from_secs(120), "the agent stops", run)
                .await
                .unwrap();
        }
    }
}

/// `future`, or a failed test naming `what` if it takes longer than `bound`
/// (a bound against hangs, not a timing assertion).
pub async fn within<F: std::future::Future>(bound: Duration, what: &str, future: F) -> F::Output {
    tokio::time::timeout(bound, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {bound:?}"))
}

/// A loopback URL nothing listens on.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

/// A TCP proxy to an agent's gateway that loses the answer of every produce
/// (`POST …/records`): the request reaches the agent, which stores the
/// records and answers, but the proxy closes the client's connection instead
/// of passing the answer on — a lost answer, as when a connection breaks.
pub struct LossyProxy {
    /// `http://127.0.0.1:<port>` of the proxy.
    pub url: String,
    /// Answers lost so far.
    pub lost: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl LossyProxy {
    /// A proxy to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let lost = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&lost);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let lost = Arc::clone(&counter);
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let produce = AtomicBool::new(false);
                    let up = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match client_read.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            let chunk = &buf[..n];
                            if chunk.starts_with(b"POST ")
                                && chunk.windows(8).any(|w| w == b"/records")
                            {
                                produce.store(true, Ordering::SeqCst);
                            }
                            if server_write.write_all(chunk).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match server_read.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if produce.swap(false, Ordering::SeqCst) {
                                lost.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            if client_write.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        () = up => {}
                        () = down => {}
                    }
                });
            }
        });
        Self { url, lost }
    }
}
