//! Supervised background tasks: every long-running loop of a process runs
//! under one [`TaskSupervisor`], by name.
//!
//! - A **critical** task must run until its own cancellation token is
//!   cancelled. If it returns an error, panics, or returns early, the
//!   supervisor records the first such failure ([`TaskSupervisor::first_failure`])
//!   and [`TaskSupervisor::failed`] resolves: the process must then stop doing
//!   what depends on the task (an agent whose flusher died stops heartbeating and
//!   leaves, so its partitions move to live agents).
//! - A **background** task's failure is logged and otherwise ignored.
//! - Panics are captured (each task runs in a task of its own, awaited by a
//!   small watcher), so a panic never goes unnoticed in a detached handle.
//! - [`TaskSupervisor::shutdown`] waits, for a bounded time, for every task to
//!   end, then aborts the rest.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Why a critical task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// The task's name.
    pub task: &'static str,
    /// What happened: its error, its panic message, or that it returned early.
    pub reason: String,
}

impl std::fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "task {} failed: {}", self.task, self.reason)
    }
}

/// Runs named tasks and notices when a critical one fails.
#[derive(Debug, Default)]
pub struct TaskSupervisor {
    watchers: Mutex<JoinSet<()>>,
    first_failure: OnceLock<TaskFailure>,
    failed: CancellationToken,
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

impl TaskSupervisor {
    /// A supervisor with no tasks.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Runs `task` as a critical task named `name`: it must run until `until`
    /// is cancelled (see the module docs).
    pub fn spawn_critical<F>(
        self: &Arc<Self>,
        name: &'static str,
        until: CancellationToken,
        task: F,
    ) where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.spawn_watched(name, Some(until), task);
    }

    /// Runs `task` as a background task named `name`: a failure is logged.
    pub fn spawn_background<F>(self: &Arc<Self>, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.spawn_watched(name, None, task);
    }

    fn spawn_watched<F>(
        self: &Arc<Self>,
        name: &'static str,
        critical_until: Option<CancellationToken>,
        task: F,
    ) where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let inner = tokio::spawn(task);
        let supervisor = Arc::clone(self);
        let watcher = async move {
            let reason = match inner.await {
                Ok(Ok(())) => match &critical_until {
                    Some(until) if !until.is_cancelled() => Some("returned early".to_owned()),
                    _ => None,
                },
                Ok(Err(error)) => Some(format!("{error:#}")),
                Err(join) if join.is_panic() => {
                    Some(format!("panicked: {}", panic_message(&*join.into_panic())))
                }
                Err(_) => None, // aborted by shutdown
            };
            let Some(reason) = reason else {
                tracing::debug!(task = name, "task ended");
                return;
            };
            if critical_until.is_some() {
                tracing::error!(task = name, %reason, "critical task failed");
                supervisor.fail(TaskFailure { task: name, reason });
            } else {
                tracing::warn!(task = name, %reason, "background task failed");
            }
        };
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(watcher);
    }

    /// Records `failure` (if it is the first) and wakes [`TaskSupervisor::failed`].
    pub fn fail(&self, failure: TaskFailure) {
        let _ = self.first_failure.set(failure);
        self.failed.cancel();
    }

    /// The first critical failure, if any.
    pub fn first_failure(&self) -> Option<&TaskFailure> {
        self.first_failure.get()
    }

    /// Resolves once a critical task failed.
    pub async fn failed(&self) {
        self.failed.cancelled().await;
    }

    /// Whether a critical task failed.
    pub fn has_failed(&self) -> bool {
        self.failed.is_cancelled()
    }

    /// Waits up to `patience` for every task to end (their tokens should be
    /// cancelled first), then aborts what is left. Returns how many were aborted.
    pub async fn shutdown(&self, patience: Duration) -> usize {
        let mut watchers =
            std::mem::take(&mut *self.watchers.lock().unwrap_or_else(|e| e.into_inner()));
        let drained = tokio::time::timeout(patience, async {
            while watchers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_ok() {
            return 0;
        }
        let left = watchers.len();
        watchers.abort_all();
        left
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_panicking_critical_task_is_the_first_failure() {
        let supervisor = TaskSupervisor::new();
        let stop = CancellationToken::new();
        supervisor.spawn_critical("steady", stop.clone(), {
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                Ok(())
            }
        });
        supervisor.spawn_critical("flusher", stop.clone(), async {
            panic!("boom");
        });
        supervisor.failed().await;
        let failure = supervisor.first_failure().unwrap();
        assert_eq!(failure.task, "flusher");
        assert!(failure.reason.contains("boom"), "{failure}");
        stop.cancel();
        assert_eq!(supervisor.shutdown(Duration::from_secs(5)).await, 0);
    }

    #[tokio::test]
    async fn a_critical_task_that_returns_early_or_errs_fails() {
        let supervisor = TaskSupervisor::new();
        supervisor.spawn_critical("early", CancellationToken::new(), async { Ok(()) });
        supervisor.failed().await;
        assert_eq!(supervisor.first_failure().unwrap().reason, "returned early");

        let supervisor = TaskSupervisor::new();
        supervisor.spawn_critical("erring", CancellationToken::new(), async {
            Err(anyhow::anyhow!("disk gone"))
        });
        supervisor.failed().await;
        assert_eq!(supervisor.first_failure().unwrap().reason, "disk gone");
    }

    #[tokio::test]
    async fn background_failures_and_cancelled_critical_tasks_are_not_fatal() {
        let supervisor = TaskSupervisor::new();
        let stop = CancellationToken::new();
        stop.cancel();
        supervisor.spawn_critical("done", stop, async { Ok(()) });
        supervisor.spawn_background("flaky", async { Err(anyhow::anyhow!("meh")) });
        supervisor.spawn_background("panicky", async { panic!("also meh") });
        assert_eq!(supervisor.shutdown(Duration::from_secs(5)).await, 0);
        assert!(!supervisor.has_failed());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_aborts_what_does_not_end() {
        let supervisor = TaskSupervisor::new();
        supervisor.spawn_background("stuck", std::future::pending());
        assert_eq!(supervisor.shutdown(Duration::from_secs(1)).await, 1);
    }
}
