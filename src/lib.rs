//! feedflow: a real-time recommendation engine on timely/differential dataflow.
//!
//! A short tour:
//! - `feedflow_connectors`: the event contract (typed events, JSON codec,
//!   validation, DLQ records), the typed configuration, the JSONL transport.
//! - `feedflow_operators`: domain-agnostic dataflow building blocks (per-tick
//!   batches, sliding windows, expiry, top-k, dedupe, decayed vectors, session
//!   windows, usearch shards).
//! - `feedflow_dataflows`: the graph (post registry and index, trending,
//!   interest, pools), the serving funnel (candidates, ONNX ranking, page
//!   rules), and the runner: file mode over a log, live mode over Kafka, with Prometheus metrics.
//! - [`gen`]: the synthetic world generator behind `feedflow gen`.
//! - [`eval`]: prequential evaluation against a popularity baseline and the generator's oracle.
//! - [`kafka_tools`]: `replay`, `record`, `tail` and `topics create` against a broker.
//! - [`cli`]: the command line.

pub mod cli;
pub mod eval;
pub mod gen;
pub mod kafka_tools;
pub mod train;

pub use feedflow_connectors as connectors;
pub use feedflow_dataflows as dataflows;
pub use feedflow_operators as operators;
