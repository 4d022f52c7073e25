//! Single-flight: concurrent identical requests share one underlying fetch.
//!
//! The first caller for a key starts the fetch in its own spawned task; callers
//! that arrive while it runs wait for the same result. Because the fetch is a
//! separate task, a waiter that is cancelled (its future dropped, say because the
//! client disconnected) cancels nothing but its own wait: the fetch runs to the end
//! and every other waiter gets the result (Neon's cancel-safety rule). Once the
//! fetch finishes its key is forgotten, so nothing is cached here: a failed fetch
//! is delivered to the callers that waited for it, and the next call tries again.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// The fetch task ended without a result: it panicked, or the runtime shut down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchAborted {
    reason: Arc<str>,
}

impl fmt::Display for FetchAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shared fetch task ended without a result: {}",
            self.reason
        )
    }
}

impl std::error::Error for FetchAborted {}

type Flight<T> = Shared<BoxFuture<'static, Result<T, FetchAborted>>>;

/// Deduplicates concurrent fetches of the same key. `T` is what a fetch returns,
/// usually a `Result` whose error is cheap to clone (an `Arc`).
pub struct SingleFlight<K, T: Clone> {
    flights: Arc<Mutex<Flights<K, T>>>,
}

struct Flights<K, T: Clone> {
    by_key: HashMap<K, (u64, Flight<T>)>,
    next_id: u64,
}

impl<K, T: Clone> fmt::Debug for SingleFlight<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &lock(&self.flights).by_key.len())
            .finish()
    }
}

impl<K, T: Clone> Default for SingleFlight<K, T> {
    fn default() -> Self {
        Self {
            flights: Arc::new(Mutex::new(Flights {
                by_key: HashMap::new(),
                next_id: 0,
            })),
        }
    }
}

fn lock<K, T: Clone>(flights: &Mutex<Flights<K, T>>) -> MutexGuard<'_, Flights<K, T>> {
    // The map is consistent after every statement that changes it.
    flights.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes a flight from the map when its task ends, however it ends.
struct Forget<K: Hash + Eq, T: Clone> {
    flights: Arc<Mutex<Flights<K, T>>>,
    key: Option<K>,
    id: u64,
}

impl<K: Hash + Eq, T: Clone> Drop for Forget<K, T> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut flights = lock(&self.flights);
        if flights
            .by_key
            .get(&key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            flights.by_key.remove(&key);
        }
    }
}

impl<K, T> SingleFlight<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// An empty single-flight group.
    pub fn new() -> Self {
        Self::default()
    }

    /// The result of `fetch()` for `key`, shared with every concurrent caller for
    /// the same key. `fetch` is called (and its future spawned on the current Tokio
    /// runtime) only if no fetch for `key` is running.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn run<F, Fut>(&self, key: K, fetch: F) -> Result<T, FetchAborted>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let flight = {
            let mut flights = lock(&self.flights);
            if let Some((_, flight)) = flights.by_key.get(&key) {
                flight.clone()
            } else {
                let id = flights.next_id;
                flights.next_id += 1;
                let forget = Forget {
                    flights: Arc::clone(&self.flights),
                    key: Some(key.clone()),
                    id,
                };
                let fetch = fetch();
                // The task forgets its key when done (or if it panics), so later
                // calls fetch anew. It cannot do that before the insert below: it
                // needs the lock we hold.
                let handle = tokio::spawn(async move {
                    let result = fetch.await;
                    drop(forget);
                    result
                });
                // Dropping the JoinHandle (when every waiter is gone) detaches the
                // task; it does not abort it.
                let flight = async move {
                    handle.await.map_err(|error| FetchAborted {
                        reason: error.to_string().into(),
                    })
                }
                .boxed()
                .shared();
                flights.by_key.insert(key, (id, flight.clone()));
                flight
            }
        };
        flight.await
    }

    /// How many keys have a fetch running.
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_fetch() {
        let group = Arc::new(SingleFlight::<u32, u64>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let mut waiters = Vec::new();
        for _ in 0..16 {
            let (group, calls, release) = (group.clone(), calls.clone(), release.clone());
            waiters.push(tokio::spawn(async move {
                group
                    .run(7, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        42
                    })
                    .await
            }));
        }
        while group.in_flight() == 0 || calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Let every waiter reach the shared future before the fetch finishes.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.notify_one();
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Ok(42));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(group.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_finished_fetch_is_not_reused() {
        let group = SingleFlight::<u32, Result<u64, String>>::new();
        let first = group.run(1, || async { Err("boom".to_owned()) }).await;
        assert_eq!(first, Ok(Err("boom".to_owned())));
        let second = group.run(1, || async { Ok(5) }).await;
        assert_eq!(second, Ok(Ok(5)));
    }

    #[tokio::test]
    async fn a_panicking_fetch_is_reported_to_waiters() {
        let group = SingleFlight::<u32, u64>::new();
        let result = group.run(1, || async { panic!("fetch failed hard") }).await;
        assert!(result.is_err());
        assert_eq!(group.in_flight(), 0);
        assert_eq!(group.run(1, || async { 3 }).await, Ok(3));
    }
}
