//! The feedflow graph: how events become state.
//!
//! - [`model`]: records exchanged between stages (enriched engagements, velocity ratios, …).
//! - [`posts`]: the post registry at each post's owner shard: usearch insertions, moderation, the engagement join.
//! - [`trending`]: velocity scores and the trending pool, incremental in differential dataflow.
//! - [`interest`]: long-term user vectors and session deltas per user.
//! - [`pools`]: the fresh pool and the popular list.
//! - [`users`]: the user's worker: the engagement join, interest state, profile, requests turned into contexts.
//! - [`waiting`]: engagements waiting for their upload.
//! - [`serving`]: records of the request funnel.
//! - [`candidates`]: each worker's candidates for a request, from its shards.
//! - [`features`]: the ranker's feature vector and the fallback scorer.
//! - [`rank`]: merge, filter, score (ONNX or fallback) and build the page.
//! - [`model_guard`]: the fallback takes over from a model this log's own engagements show to be worse.
//! - [`model_reload`]: live runs validate a new model in the background and swap it in at a tick boundary.
//! - [`snapshot`]: reading a collection's current contents.
//! - [`runner`]: run the graph on N workers over a log (file mode) or Kafka topics (live mode).
//! - [`live`]: live event time: the frontier from the partitions' progress.
//! - [`live_input`]: live mode's Kafka input, one worker per partition set.
//! - [`delivered`]: exactly-once outputs: each output record's position, and what a restart skips.
//! - [`metrics`]: Prometheus metrics and their HTTP endpoint.
//! - [`stats`]: counters and the run summary.

pub mod candidates;
pub mod delivered;
pub mod features;
pub mod interest;
pub mod live;
pub mod live_input;
pub mod metrics;
pub mod model;
pub mod model_guard;
pub mod model_reload;
pub mod pools;
pub mod posts;
pub mod rank;
pub mod runner;
pub mod serving;
pub mod snapshot;
pub mod stats;
pub mod trending;
pub mod users;
pub mod waiting;

pub use live_input::LiveControl;
pub use runner::{run_file, run_live, RunError, RunOptions, RunReport, Snapshot};
