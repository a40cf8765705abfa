//! Domain-agnostic building blocks for timely/differential dataflows.
//!
//! - [`ticked_input`]: an input that moves its frontier in steps of many ticks.
//! - [`tick_batch`]: per-tick, per-key delivery of complete batches (deterministic state updates).
//! - [`sliding_window`]: sliding windows as retractions in differential.
//! - [`schedule`]: hold future updates (window expiries) until they are due.
//! - [`pending`]: records waiting for later ticks behind one capability (cheap progress tracking).
//! - [`expire`]: drop records once older than a time-to-live.
//! - [`sum_by_key`]: per-key sums as a change stream (count_total for totally ordered ticks).
//! - [`top_k`]: incrementally maintained top-k per key.
//! - [`rerank`]: a page from scored candidates: MMR diversity, author/group caps, exploration and boosted slots.
//! - [`split`]: one stream into two or three of other types, in one operator.
//! - [`dedupe`]: drop repeated ids within a bounded horizon.
//! - [`decayed_vector`]: exponentially time-decayed vector sums.
//! - [`decayed_top`]: exponentially decayed sums per key, kept in order (popularity without a hard window).
//! - [`session_window`]: the last N actions of the current session.
//! - [`vector_shard`]: a validated usearch HNSW shard.
//! - [`onnx_scorer`]: a checked ONNX Runtime session scoring f32 batches (checksum, signature, typed errors).
//! - [`co_counts`]: windowed co-occurrence counts (item-to-item "related").
//! - [`exchange`]: an exchange pact with buffers that grow with the data.
//! - [`hash`]: stable hashing for routing.

pub mod co_counts;
pub mod decayed_top;
pub mod decayed_vector;
pub mod dedupe;
pub mod exchange;
pub mod expire;
pub mod hash;
pub mod onnx_scorer;
pub mod pending;
pub mod rerank;
pub mod schedule;
pub mod session_window;
pub mod sliding_window;
pub mod split;
pub mod sum_by_key;
pub mod tick_batch;
pub mod ticked_input;
pub mod top_k;
pub mod vector_shard;
