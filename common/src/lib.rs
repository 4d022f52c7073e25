//! Fjord's shared primitives: time, identifiers and randomness, injected rather than
//! called directly.
//!
//! Logic never calls `SystemTime::now`, `Instant::now`, `rand::rng` or
//! `Uuid::new_v4` itself (`clippy.toml` forbids it outside this crate and tests); it
//! takes a [`Clock`], an [`IdGenerator`] or a [`SeededRng`]. That keeps behaviour
//! reproducible in tests and leaves room for deterministic simulation.
//!
//! Background work runs under a [`TaskSupervisor`] ([`tasks`]): named tasks,
//! panics captured, the first failure of a critical task recorded.
//!
//! Kafka's murmur2 partitioner ([`partitioner`]) lives here too, so the gateway
//! and the Rust client place keys with one function.
//!
//! What this crate must never do: depend on another Fjord crate, or do I/O.
//!
//! ```
//! use fjord_common::{Clock, ManualClock};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new(1_000);
//! clock.advance(Duration::from_millis(250));
//! assert_eq!(clock.now_millis(), 1_250);
//! ```

mod clock;
mod ids;
pub mod partitioner;
pub mod tasks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use ids::{IdGenerator, RandomIds, SeededRng, SequentialIds};
pub use partitioner::{murmur2, partition_for_key};
pub use tasks::{TaskFailure, TaskSupervisor};
