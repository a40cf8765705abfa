//! The feedflow graph: how events become state.
//!
//! - [`model`]: records exchanged between stages (enriched engagements, velocity ratios, …).
//! - [`posts`]: the post registry at each post's owner shard: usearch insertions, moderation, the engagement join.
//! - [`trending`]: velocity scores and the trending pool, incremental in differential dataflow.
//! - [`interest`]: long-term user vectors and session deltas per user.
//! - [`pools`]: the fresh pool and the popular list.
//! - [`users`]: the user's worker: interest state, profile, requests turned into contexts.
//! - [`serving`]: records of the request funnel.
//! - [`candidates`]: each worker's candidates for a request, from its shards.
//! - [`features`]: the ranker's feature vector and the fallback scorer.
//! - [`rank`]: merge, filter, score (ONNX or fallback) and build the page.
//! - [`snapshot`]: reading a collection's current contents.
//! - [`runner`]: file mode: replay a log on N workers and write the outputs.
//! - [`stats`]: counters and the run summary.

pub mod candidates;
pub mod features;
pub mod interest;
pub mod model;
pub mod pools;
pub mod posts;
pub mod rank;
pub mod runner;
pub mod serving;
pub mod snapshot;
pub mod stats;
pub mod trending;
pub mod users;

pub use runner::{run_file, RunError, RunOptions, RunReport, Snapshot};
