//! Identifier generation and seeded randomness.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ulid::Ulid;
use uuid::Uuid;

/// Generates the identifiers Fjord persists: topic ids (UUID, as Kafka's) and
/// segment ids (ULID, time-ordered so object keys sort by creation).
pub trait IdGenerator: Send + Sync + std::fmt::Debug + 'static {
    /// A fresh random UUID (version 4).
    fn uuid(&self) -> Uuid;
    /// A fresh ULID whose time part is `now_millis`.
    fn ulid(&self, now_millis: i64) -> Ulid;
}

/// Identifiers from a random generator seeded once from the operating system.
#[derive(Debug)]
pub struct RandomIds {
    rng: Mutex<SmallRng>,
}

impl RandomIds {
    /// A generator seeded from the operating system's entropy.
    #[allow(clippy::disallowed_methods)] // the one sanctioned entropy source
    pub fn new() -> Self {
        Self {
            rng: Mutex::new(SmallRng::from_os_rng()),
        }
    }
}

impl Default for RandomIds {
    fn default() -> Self {
        Self::new()
    }
}

impl IdGenerator for RandomIds {
    fn uuid(&self) -> Uuid {
        let bytes: [u8; 16] = self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn ulid(&self, now_millis: i64) -> Ulid {
        let random: u128 = self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
        Ulid::from_parts(u64::try_from(now_millis).unwrap_or(0), random)
    }
}

/// Deterministic identifiers (a counter); for tests that compare outputs.
#[derive(Debug, Default)]
pub struct SequentialIds {
    next: AtomicU64,
}

impl IdGenerator for SequentialIds {
    fn uuid(&self) -> Uuid {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        uuid::Builder::from_random_bytes(u128::from(n + 1).to_be_bytes()).into_uuid()
    }

    fn ulid(&self, now_millis: i64) -> Ulid {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        Ulid::from_parts(u64::try_from(now_millis).unwrap_or(0), u128::from(n))
    }
}

/// A seeded random generator for jitter and simulation: the seed is logged so a
/// failing run can be replayed.
#[derive(Debug)]
pub struct SeededRng {
    seed: u64,
    rng: Mutex<SmallRng>,
}

impl SeededRng {
    /// A generator with an explicit seed.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
        }
    }

    /// The seed this generator started from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A uniformly random value in `0..upper` (`0` when `upper` is `0`).
    pub fn below(&self, upper: u64) -> u64 {
        if upper == 0 {
            return 0;
        }
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random_range(0..upper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_rng_is_reproducible() {
        let a = SeededRng::new(7);
        let b = SeededRng::new(7);
        let xs: Vec<u64> = (0..16).map(|_| a.below(1000)).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.below(1000)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| *x < 1000));
    }

    #[test]
    fn ulids_carry_the_given_time_and_differ() {
        let ids = RandomIds::new();
        let first = ids.ulid(1_700_000_000_000);
        let second = ids.ulid(1_700_000_000_000);
        assert_eq!(first.timestamp_ms(), 1_700_000_000_000);
        assert_ne!(first, second);
        assert_eq!(ids.uuid().get_version_num(), 4);
    }
}
