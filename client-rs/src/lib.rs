//! The Rust client for Fjord's HTTP and gRPC API, for producers and consumers that
//! do not speak Kafka.
//!
//! Not built yet: this crate reserves the workspace slot.
