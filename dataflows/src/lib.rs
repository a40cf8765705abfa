//! The feedflow graph: how events become state.
//!
//! - [`model`]: records exchanged between stages (enriched engagements, velocity ratios, …).
//! - [`posts`]: the post registry at each post's owner shard: usearch insertions, moderation, the engagement join.
//! - [`trending`]: velocity scores and the trending pool, incremental in differential dataflow.
//! - [`interest`]: long-term user vectors and session deltas per user.
//! - [`pools`]: the fresh pool and the popular list.
//! - [`snapshot`]: reading a collection's current contents.
//! - [`runner`]: file mode: replay a log on N workers and write the outputs.
//! - [`stats`]: counters and the run summary.

pub mod interest;
pub mod model;
pub mod pools;
pub mod posts;
pub mod runner;
pub mod snapshot;
pub mod stats;
pub mod trending;

pub use runner::{run_file, RunError, RunOptions, RunReport, Snapshot};
