//! Fjord's HTTP (REST + JSON) and gRPC gateway. It will be mounted by the agent over
//! the broker core, so the write path keeps exactly one implementation; it holds
//! adapters only, never write-path logic.
//!
//! Not built yet: this crate reserves the workspace slot.
