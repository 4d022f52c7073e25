//! One coordinator shard as this agent holds it: the lease (the fence taken in
//! metadata and whether it is lost), the registry of the shard's group actors,
//! and the supervised set they run in.
//!
//! This module is a leaf: it knows nothing of what an actor does. An actor is a
//! future that ends with an [`ActorExit`]; its handle is anything that
//! implements [`ActorHandle`]. The coordinator starts actors here, and the
//! shard's supervisor (in the coordinator) reads their exits with
//! [`Shard::next_exit`] and decides what to do (reload a panicked actor from
//! metadata, forget a deleted group, give up a fenced shard).
//!
//! # Invariants
//!
//! - Every actor of the shard runs in the shard's [`JoinSet`]: none is detached,
//!   each exit (a panic included) is reported once by [`Shard::next_exit`], and
//!   dropping the shard aborts whatever still runs.
//! - The registry holds at most one handle per group id, and a handle is
//!   registered exactly when its actor is started (under one lock): an actor
//!   always has a registry entry until it is replaced or forgotten.
//! - An entry is replaced only if it is what the caller expects
//!   ([`Expect`]): absent, or a given dead actor. So two parties that notice
//!   the same dead actor (the supervisor and a request) start one successor.
//! - Once the lease is lost ([`ShardLease::mark_lost`]) nothing new starts, the
//!   registry is empty, and every actor sees [`ShardLease::lost`] fire; the
//!   lease never comes back (a shard taken again is a new [`Shard`]).
//! - Actors never touch the registry; they only read the lease (its fence) and
//!   mark it lost when a write of theirs is fenced.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use fjord_metadata::ShardFence;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// This agent's hold on a coordinator shard: the fence every group write
/// carries, and whether the hold is lost (another coordinator took the shard,
/// or this agent unloaded it).
#[derive(Debug)]
pub(crate) struct ShardLease {
    fence: ShardFence,
    lost: CancellationToken,
}

impl ShardLease {
    pub(crate) fn new(fence: ShardFence) -> Self {
        Self {
            fence,
            lost: CancellationToken::new(),
        }
    }

    /// The fence every group write of this shard carries.
    pub(crate) fn fence(&self) -> ShardFence {
        self.fence
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Gives the shard up: every actor of it stops at its next event.
    pub(crate) fn mark_lost(&self) {
        self.lost.cancel();
    }

    /// Completes once the shard is lost.
    pub(crate) async fn lost(&self) {
        self.lost.cancelled().await;
    }
}

/// How a group actor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ActorExit {
    /// Its shard was lost or unloaded, or every handle to it was dropped.
    Stopped,
    /// Its group was deleted in metadata (`DeleteGroups`, or expiry).
    Deleted,
    /// A write of its found the shard's epoch moved on: the shard is lost.
    Fenced,
    /// It panicked (a bug), with the panic's message; what it had persisted is
    /// in metadata.
    Panicked(String),
}

/// An actor's exit, with what it was.
#[derive(Debug)]
pub(crate) struct ActorReport {
    pub(crate) group_id: String,
    pub(crate) actor_id: u64,
    pub(crate) exit: ActorExit,
}

/// What the registry needs of an actor's handle.
pub(crate) trait ActorHandle: Clone {
    /// Tells the actor apart from an earlier or later one of the same group.
    fn actor_id(&self) -> u64;
    /// Whether the actor still takes commands.
    fn is_alive(&self) -> bool;
}

/// What the registry holds for a group.
#[derive(Debug)]
pub(crate) enum Lookup<H> {
    /// A running actor.
    Alive(H),
    /// An actor that ended; its successor (if the group still exists) must be
    /// loaded from metadata.
    Dead { actor_id: u64 },
    /// No actor: the group does not exist on this shard.
    Absent,
}

/// What [`Shard::start`] may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// No entry for the group.
    Absent,
    /// The entry of this dead actor.
    Dead(u64),
}

/// What [`Shard::start`] did.
#[derive(Debug)]
pub(crate) enum Start<H> {
    /// The new actor runs.
    New(H),
    /// Another actor of the group runs already; nothing was started.
    Running(H),
    /// The registry changed since it was looked at (look again).
    Changed,
    /// The shard is lost.
    Lost,
}

/// A coordinator shard this agent holds, with its group actors.
#[derive(Debug)]
pub(crate) struct Shard<H> {
    lease: Arc<ShardLease>,
    inner: Mutex<Inner<H>>,
}

#[derive(Debug)]
struct Inner<H> {
    groups: HashMap<String, H>,
    actors: JoinSet<ActorExit>,
    /// (group id, actor id) of every task in `actors`.
    tasks: HashMap<Id, (String, u64)>,
    /// Who waits in [`Shard::next_exit`] while no actor runs.
    idle_waiter: Option<Waker>,
}

impl<H: ActorHandle> Shard<H> {
    pub(crate) fn new(fence: ShardFence) -> Self {
        Self {
            lease: Arc::new(ShardLease::new(fence)),
            inner: Mutex::new(Inner {
                groups: HashMap::new(),
                actors: JoinSet::new(),
                tasks: HashMap::new(),
                idle_waiter: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<H>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lease(&self) -> &Arc<ShardLease> {
        &self.lease
    }

    pub(crate) fn fence(&self) -> ShardFence {
        self.lease.fence()
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lease.is_lost()
    }

    /// Gives the shard up and empties the registry (see [`ShardLease::mark_lost`]).
    pub(crate) fn mark_lost(&self) {
        let mut inner = self.lock();
        self.lease.mark_lost();
        inner.groups.clear();
    }

    /// The registry's entry for `group_id`; `None` once the shard is lost.
    pub(crate) fn lookup(&self, group_id: &str) -> Option<Lookup<H>> {
        let inner = self.lock();
        if self.lease.is_lost() {
            return None;
        }
        Some(match inner.groups.get(group_id) {
            Some(handle) if handle.is_alive() => Lookup::Alive(handle.clone()),
            Some(handle) => Lookup::Dead {
                actor_id: handle.actor_id(),
            },
            None => Lookup::Absent,
        })
    }

    /// Starts the actor `make` builds for `group_id` and registers its handle,
    /// if the registry holds what `expect` says; `make` runs only then.
    pub(crate) fn start<F>(
        &self,
        group_id: &str,
        expect: Expect,
        make: impl FnOnce() -> (H, F),
    ) -> Start<H>
    where
        F: Future<Output = ActorExit> + Send + 'static,
    {
        let mut inner = self.lock();
        if self.lease.is_lost() {
            return Start::Lost;
        }
        match (inner.groups.get(group_id), expect) {
            (Some(current), _) if current.is_alive() => return Start::Running(current.clone()),
            (Some(current), Expect::Dead(dead)) if current.actor_id() == dead => {}
            (None, Expect::Absent) => {}
            (Some(_) | None, Expect::Absent | Expect::Dead(_)) => return Start::Changed,
        }
        let (handle, actor) = make();
        let task = inner.actors.spawn(actor);
        inner
            .tasks
            .insert(task.id(), (group_id.to_owned(), handle.actor_id()));
        inner.groups.insert(group_id.to_owned(), handle.clone());
        if let Some(waiter) = inner.idle_waiter.take() {
            waiter.wake();
        }
        Start::New(handle)
    }

    /// Forgets `group_id`'s entry if it is still actor `actor_id`'s.
    pub(crate) fn forget(&self, group_id: &str, actor_id: u64) {
        let mut inner = self.lock();
        if inner
            .groups
            .get(group_id)
            .is_some_and(|h| h.actor_id() == actor_id)
        {
            inner.groups.remove(group_id);
        }
    }

    /// The handles of the running actors.
    pub(crate) fn running(&self) -> Vec<H> {
        self.lock()
            .groups
            .values()
            .filter(|h| h.is_alive())
            .cloned()
            .collect()
    }

    /// How many actors run (or ended without being reported yet).
    pub(crate) fn actor_count(&self) -> usize {
        self.lock().actors.len()
    }

    /// How many groups the registry holds (running or dead).
    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        self.lock().groups.len()
    }

    /// The next actor to end, and how it ended; waits while none runs. One
    /// caller at a time (the shard's supervisor).
    pub(crate) async fn next_exit(&self) -> ActorReport {
        poll_fn(|cx| {
            let mut inner = self.lock();
            loop {
                let (task, exit) = match inner.actors.poll_join_next_with_id(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => {
                        // Woken by the next start.
                        inner.idle_waiter = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                    Poll::Ready(Some(Ok((task, exit)))) => (task, exit),
                    Poll::Ready(Some(Err(error))) => {
                        let task = error.id();
                        let exit = if error.is_panic() {
                            ActorExit::Panicked(panic_message(error.into_panic()))
                        } else {
                            ActorExit::Stopped // aborted
                        };
                        (task, exit)
                    }
                };
                // Every task is registered when it is spawned, under this lock.
                let Some((group_id, actor_id)) = inner.tasks.remove(&task) else {
                    debug_assert!(false, "an actor task that was never registered");
                    continue;
                };
                return Poll::Ready(ActorReport {
                    group_id,
                    actor_id,
                    exit,
                });
            }
        })
        .await
    }

    /// Waits up to `within` for every actor to end (they stop at their next
    /// event once the lease is lost), then aborts the rest.
    pub(crate) async fn drain(&self, within: Duration) {
        let _ = tokio::time::timeout(within, async {
            while self.actor_count() > 0 {
                self.next_exit().await;
            }
        })
        .await;
        self.lock().actors.abort_all();
    }
}

/// A panic payload's message, when it is a string.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "a panic without a message".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A handle whose actor is alive until told otherwise.
    #[derive(Debug, Clone)]
    struct TestHandle {
        actor_id: u64,
        alive: Arc<AtomicBool>,
    }

    impl ActorHandle for TestHandle {
        fn actor_id(&self) -> u64 {
            self.actor_id
        }

        fn is_alive(&self) -> bool {
            self.alive.load(Ordering::SeqCst)
        }
    }

    fn actor(
        actor_id: u64,
        exit: Option<ActorExit>,
    ) -> impl FnOnce() -> (
        TestHandle,
        std::pin::Pin<Box<dyn Future<Output = ActorExit> + Send>>,
    ) {
        move || {
            let alive = Arc::new(AtomicBool::new(true));
            let handle = TestHandle {
                actor_id,
                alive: alive.clone(),
            };
            let task = Box::pin(async move {
                tokio::task::yield_now().await;
                alive.store(false, Ordering::SeqCst);
                match exit {
                    Some(exit) => exit,
                    None => panic!("actor {actor_id} panics"),
                }
            });
            (handle, task as std::pin::Pin<Box<_>>)
        }
    }

    fn fence() -> ShardFence {
        ShardFence { shard: 3, epoch: 7 }
    }

    #[tokio::test(start_paused = true)]
    async fn exits_are_reported_with_their_group_and_replacements_are_compare_and_set() {
        let shard: Shard<TestHandle> = Shard::new(fence());
        assert!(matches!(
            shard.start("a", Expect::Absent, actor(1, None)),
            Start::New(_)
        ));
        assert!(matches!(
            shard.start("b", Expect::Absent, actor(2, Some(ActorExit::Deleted))),
            Start::New(_)
        ));
        assert!(matches!(
            shard.start("a", Expect::Absent, actor(9, None)),
            Start::Running(h) if h.actor_id == 1
        ));
        let mut reports = [shard.next_exit().await, shard.next_exit().await];
        reports.sort_by_key(|r| r.actor_id);
        assert_eq!(
            (&reports[0].group_id, reports[0].actor_id, &reports[0].exit),
            (
                &"a".to_owned(),
                1,
                &ActorExit::Panicked("actor 1 panics".into())
            )
        );
        assert_eq!(
            (&reports[1].group_id, reports[1].actor_id, &reports[1].exit),
            (&"b".to_owned(), 2, &ActorExit::Deleted)
        );
        assert_eq!(shard.actor_count(), 0);

        // Only the dead actor's expected successor starts.
        assert!(matches!(
            shard.lookup("a"),
            Some(Lookup::Dead { actor_id: 1 })
        ));
        assert!(matches!(
            shard.start("a", Expect::Absent, actor(3, Some(ActorExit::Stopped))),
            Start::Changed
        ));
        assert!(matches!(
            shard.start("a", Expect::Dead(7), actor(3, Some(ActorExit::Stopped))),
            Start::Changed
        ));
        assert!(matches!(
            shard.start("a", Expect::Dead(1), actor(3, Some(ActorExit::Stopped))),
            Start::New(h) if h.actor_id == 3
        ));
        shard.forget("b", 99);
        assert_eq!(shard.registered(), 2, "forget needs the actor id");
        shard.forget("b", 2);
        assert!(matches!(shard.lookup("b"), Some(Lookup::Absent)));
        // The successor runs in the set too.
        assert_eq!(shard.next_exit().await.actor_id, 3);

        shard.mark_lost();
        assert!(shard.lease().is_lost());
        assert!(shard.lookup("a").is_none());
        assert!(matches!(
            shard.start("c", Expect::Absent, actor(4, None)),
            Start::Lost
        ));
        assert_eq!(shard.registered(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_supervisor_is_woken_by_the_next_start() {
        let shard: Arc<Shard<TestHandle>> = Arc::new(Shard::new(fence()));
        let waiting = {
            let shard = shard.clone();
            tokio::spawn(async move { shard.next_exit().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(matches!(
            shard.start("a", Expect::Absent, actor(5, Some(ActorExit::Fenced))),
            Start::New(_)
        ));
        let report = waiting.await.unwrap();
        assert_eq!((report.actor_id, report.exit), (5, ActorExit::Fenced));
    }
}
