//! The edge of feedflow: the event contract and the transports.
//!
//! - [`config`]: the typed TOML configuration shared by every crate.
//! - [`serving_config`]: the funnel's part of it (sources, ranking, page rules).
//! - [`kafka_config`]: the live-mode part of it (topics, client settings, event-time rules, metrics).
//! - [`event`]: the typed events of the wire format.
//! - [`codec`]: bytes to validated events, or a typed rejection.
//! - [`dlq`]: dead-letter records for rejected input.
//! - [`jsonl`]: the recorded-log source and the JSONL output sinks.
//! - [`kafka`]: Kafka clients: topic admin, partition assignment, the output producer.

pub mod codec;
pub mod config;
pub mod dlq;
pub mod event;
pub mod jsonl;
pub mod kafka;
pub mod kafka_config;
pub mod serving_config;

pub use codec::{decode, encode, peek_ts, DecodeLimits, RejectReason, Rejection};
pub use config::Config;
pub use dlq::DlqRecord;
pub use event::*;
