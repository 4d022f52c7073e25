//! Fjord's storage layer: everything about bytes in the bucket and on the agent's
//! local disk (segment objects, object keys, object-store decorators, the local
//! write-ahead cache and the read cache).
//!
//! What this crate must never do: consult or change metadata. It is joined with
//! `fjord-metadata` by the agent.
