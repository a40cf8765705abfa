//! The live-mode part of the configuration: Kafka topics, client settings, event-time rules, metrics.
//!
//! Defaults come from DESIGN.md (§1–2 for event time, §9 for metrics) or, where
//! it is silent, from what a Kafka Streams or Flink user would expect.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where the engine reads its events from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A recorded JSONL log (`input.log`): the embedded default.
    #[default]
    File,
    /// The Kafka topics of `[kafka]`, consumed live.
    Kafka,
}

/// Where a live run starts reading its input topics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// From the oldest retained message: the state is rebuilt from the topics' history.
    #[default]
    Earliest,
    /// From the end: only new events count (state starts empty).
    Latest,
}

/// Kafka topics, client settings and live event-time rules.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// librdkafka `bootstrap.servers` (`--brokers` overrides).
    #[serde(default = "default_bootstrap")]
    pub bootstrap_servers: String,
    /// librdkafka `client.id`, seen in the broker's logs.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Prepended to every topic name (separate environments or tests on one broker).
    #[serde(default)]
    pub topic_prefix: String,
    /// Topic names (DESIGN.md: uploads and moderation share `uploads`).
    #[serde(default)]
    pub topics: TopicNames,
    /// Partition counts used by `feedflow topics create`.
    #[serde(default)]
    pub partitions: TopicPartitions,
    /// Replication factor used by `feedflow topics create` (1 for a single local broker).
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// Where a run starts reading the input topics.
    #[serde(default)]
    pub start_from: StartFrom,
    /// A partition that has reached its end and received nothing for this long
    /// stops holding event time back (DESIGN.md §2 `idle_ms`), up to the newest tick read
    /// this long before: answers are exact while partitions trail one another by less.
    #[serde(default = "default_idle_ms")]
    pub idle_ms: u64,
    /// A request waits at most this long (wall clock, from its arrival at the
    /// consumer) for slower partitions; then it is answered on the current state
    /// with `degraded:"partial_prefix"` (DESIGN.md §2).
    #[serde(default = "default_max_request_wait_ms")]
    pub max_request_wait_ms: u64,
    /// For producers that stamp `ts` with the current time: while the newest event read is that
    /// current (its tick ends within `idle_ms` of this machine's clock), a partition at its end
    /// holds event time back to now minus this at most, instead of waiting `idle_ms`. Exact for
    /// events that reach the consumer within this long of their `ts`; a later one is late
    /// (counted, and the requests it missed say `degraded:"late_input"`). Logs replayed with
    /// their own older timestamps are never that current, so it does not apply to them. 0: off.
    #[serde(default = "default_wall_clock_lateness_ms")]
    pub wall_clock_lateness_ms: u64,
    /// Longest wait of one consumer poll; bounds how late a stop or an idle check is noticed.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Use the idempotent producer for the output topics (no duplicates on retries).
    #[serde(default = "default_true")]
    pub idempotent: bool,
    /// Exactly-once outputs across restarts (README, Live mode): every output record carries its
    /// position in the engine's deterministic output order, and on start the engine reads what
    /// each output partition already holds and does not send it again. Turn it off to answer a
    /// log a second time into topics that already hold answers to it.
    #[serde(default = "default_true")]
    pub skip_delivered_outputs: bool,
    /// On shutdown, wait at most this long for in-flight output messages; what is
    /// still undelivered then is reported, never dropped silently.
    #[serde(default = "default_flush_timeout_ms")]
    pub flush_timeout_ms: u64,
    /// Extra librdkafka settings passed through unchanged to every client
    /// (for example `"security.protocol" = "SASL_SSL"`, `"sasl.mechanisms" = "PLAIN"`).
    #[serde(default)]
    pub client: BTreeMap<String, String>,
    /// librdkafka settings whose values are secrets, read at start from
    /// `"env:NAME"` (an environment variable) or `"file:PATH"` (a file's first
    /// line); never written to logs (for example `"sasl.password" = "env:KAFKA_PASSWORD"`).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// Topic names, before `topic_prefix`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicNames {
    /// Uploads and moderation decisions (keyed by post_id).
    #[serde(default = "t_uploads")]
    pub uploads: String,
    /// Engagements (keyed by user_id).
    #[serde(default = "t_engagements")]
    pub engagements: String,
    /// Requests (keyed by user_id).
    #[serde(default = "t_requests")]
    pub requests: String,
    /// Responses (keyed by user_id).
    #[serde(default = "t_responses")]
    pub responses: String,
    /// Changes to the trending pool.
    #[serde(default = "t_trending")]
    pub trending: String,
    /// Features and scores as served (the training log).
    #[serde(default = "t_impressions")]
    pub impressions: String,
    /// Rejected input.
    #[serde(default = "t_dlq")]
    pub dlq: String,
}

/// Partition counts of the topics created by `feedflow topics create`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicPartitions {
    /// Partitions of the input topics: each is read by one worker (partition p by worker p mod workers).
    #[serde(default = "default_input_partitions")]
    pub inputs: i32,
    /// Partitions of the output topics.
    #[serde(default = "default_output_partitions")]
    pub outputs: i32,
}

/// The Prometheus endpoint (DESIGN.md §9).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` over HTTP during a run (on in `config/kafka.toml`; off in file mode, which has no network).
    #[serde(default)]
    pub enabled: bool,
    /// Listen address; loopback by default (DESIGN.md §9). Port 0 picks a free port, printed at start.
    #[serde(default = "default_metrics_address")]
    pub address: String,
}

fn default_bootstrap() -> String {
    "127.0.0.1:9092".into()
}
fn default_client_id() -> String {
    "feedflow".into()
}
fn default_replication() -> i32 {
    1
}
fn default_idle_ms() -> u64 {
    200
}
fn default_max_request_wait_ms() -> u64 {
    1_000
}
/// Produce (linger) and one fetch through a broker on the same network, with room for a hiccup.
fn default_wall_clock_lateness_ms() -> u64 {
    100
}
fn default_poll_ms() -> u64 {
    5
}
fn default_true() -> bool {
    true
}
fn default_flush_timeout_ms() -> u64 {
    30_000
}
fn t_uploads() -> String {
    "uploads".into()
}
fn t_engagements() -> String {
    "engagements".into()
}
fn t_requests() -> String {
    "requests".into()
}
fn t_responses() -> String {
    "responses".into()
}
fn t_trending() -> String {
    "trending".into()
}
fn t_impressions() -> String {
    "impressions".into()
}
fn t_dlq() -> String {
    "dlq".into()
}
fn default_input_partitions() -> i32 {
    2
}
fn default_output_partitions() -> i32 {
    2
}
fn default_metrics_address() -> String {
    "127.0.0.1:9464".into()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: default_bootstrap(),
            client_id: default_client_id(),
            topic_prefix: String::new(),
            topics: TopicNames::default(),
            partitions: TopicPartitions::default(),
            replication_factor: default_replication(),
            start_from: StartFrom::default(),
            idle_ms: default_idle_ms(),
            wall_clock_lateness_ms: default_wall_clock_lateness_ms(),
            max_request_wait_ms: default_max_request_wait_ms(),
            poll_ms: default_poll_ms(),
            idempotent: true,
            skip_delivered_outputs: true,
            flush_timeout_ms: default_flush_timeout_ms(),
            client: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }
}
impl Default for TopicNames {
    fn default() -> Self {
        Self {
            uploads: t_uploads(),
            engagements: t_engagements(),
            requests: t_requests(),
            responses: t_responses(),
            trending: t_trending(),
            impressions: t_impressions(),
            dlq: t_dlq(),
        }
    }
}
impl Default for TopicPartitions {
    fn default() -> Self {
        Self { inputs: default_input_partitions(), outputs: default_output_partitions() }
    }
}
impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: false, address: default_metrics_address() }
    }
}

/// The input topics in source-index order: the index is `Position::source` of their events.
pub const INPUT_TOPICS: [&str; 3] = ["uploads", "engagements", "requests"];

impl KafkaConfig {
    /// A topic's full name (prefix included) by its role ("uploads", "responses", …).
    pub fn topic(&self, role: &str) -> String {
        let t = &self.topics;
        let name = match role {
            "uploads" => &t.uploads,
            "engagements" => &t.engagements,
            "requests" => &t.requests,
            "responses" => &t.responses,
            "trending" => &t.trending,
            "impressions" => &t.impressions,
            "dlq" => &t.dlq,
            other => other,
        };
        format!("{}{}", self.topic_prefix, name)
    }

    /// Every topic with its partition count: the inputs, then the outputs.
    pub fn all_topics(&self) -> Vec<(String, i32)> {
        let inputs = INPUT_TOPICS.iter().map(|r| (self.topic(r), self.partitions.inputs));
        let outputs =
            ["responses", "trending", "impressions", "dlq"].iter().map(|r| (self.topic(r), self.partitions.outputs));
        inputs.chain(outputs).collect()
    }

    /// Problems with this section, for [`crate::Config::validate`].
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.bootstrap_servers.trim().is_empty() {
            p.push("kafka.bootstrap_servers must not be empty".into());
        }
        if self.partitions.inputs < 1 || self.partitions.outputs < 1 {
            p.push("kafka.partitions.inputs and kafka.partitions.outputs must be at least 1".into());
        }
        if self.replication_factor < 1 {
            p.push("kafka.replication_factor must be at least 1".into());
        }
        if self.poll_ms == 0 || self.poll_ms > 1_000 {
            p.push(format!("kafka.poll_ms must be in 1..=1000, got {}", self.poll_ms));
        }
        let names = self.all_topics();
        for (i, (name, _)) in names.iter().enumerate() {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                p.push(format!("kafka topic name {name:?} must be non-empty ASCII letters, digits, '.', '_' or '-'"));
            }
            if names[..i].iter().any(|(n, _)| n == name) {
                p.push(format!("kafka topic {name:?} is used for two roles"));
            }
        }
        for (key, value) in &self.secrets {
            if !(value.starts_with("env:") || value.starts_with("file:")) {
                p.push(format!("kafka.secrets.{key} must be \"env:NAME\" or \"file:PATH\" (the value itself never goes in a config)"));
            }
            if self.client.contains_key(key) {
                p.push(format!("kafka.secrets.{key} is also set in kafka.client; keep it in one place"));
            }
        }
        p
    }

    /// The librdkafka settings of every client: bootstrap, client id, the
    /// pass-through settings and the secrets, resolved. Errors name the secret, never its value.
    pub fn client_settings(&self) -> Result<BTreeMap<String, String>, String> {
        let mut s = BTreeMap::new();
        s.insert("bootstrap.servers".to_string(), self.bootstrap_servers.clone());
        s.insert("client.id".to_string(), self.client_id.clone());
        for (k, v) in &self.client {
            s.insert(k.clone(), v.clone());
        }
        for (key, source) in &self.secrets {
            let value = if let Some(var) = source.strip_prefix("env:") {
                std::env::var(var).map_err(|_| format!("kafka.secrets.{key}: environment variable {var} is not set"))?
            } else if let Some(path) = source.strip_prefix("file:") {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("kafka.secrets.{key}: cannot read {path}: {e}"))?;
                text.lines().next().unwrap_or("").trim_end().to_string()
            } else {
                return Err(format!("kafka.secrets.{key} must be \"env:NAME\" or \"file:PATH\""));
            };
            s.insert(key.clone(), value);
        }
        Ok(s)
    }

    /// The settings with secret values masked, for logs and `--help`-style printing.
    pub fn redacted_settings(&self) -> BTreeMap<String, String> {
        let mut s = BTreeMap::new();
        s.insert("bootstrap.servers".to_string(), self.bootstrap_servers.clone());
        s.insert("client.id".to_string(), self.client_id.clone());
        for (k, v) in &self.client {
            let sensitive = k.contains("password") || k.contains("secret") || k.contains("key");
            s.insert(k.clone(), if sensitive { "[redacted]".into() } else { v.clone() });
        }
        for k in self.secrets.keys() {
            s.insert(k.clone(), "[redacted]".into());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_get_the_prefix_and_partitions() {
        let k = KafkaConfig { topic_prefix: "t1-".into(), ..KafkaConfig::default() };
        assert_eq!(k.topic("uploads"), "t1-uploads");
        assert_eq!(k.topic("dlq"), "t1-dlq");
        let all = k.all_topics();
        assert_eq!(all.len(), 7);
        assert_eq!(all[0], ("t1-uploads".to_string(), 2));
        assert!(k.problems().is_empty());
    }

    #[test]
    fn secrets_come_from_env_or_file_and_are_never_shown() {
        let dir = std::env::temp_dir().join(format!("feedflow-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cr3t-from-file\nignored\n").unwrap();
        std::env::set_var("FEEDFLOW_TEST_SASL_USER", "alice");
        let mut k = KafkaConfig::default();
        k.secrets.insert("sasl.password".into(), format!("file:{}", dir.display()));
        k.secrets.insert("sasl.username".into(), "env:FEEDFLOW_TEST_SASL_USER".into());
        let s = k.client_settings().unwrap();
        assert_eq!(s["sasl.password"], "s3cr3t-from-file");
        assert_eq!(s["sasl.username"], "alice");
        let shown = format!("{:?}", k.redacted_settings());
        assert!(!shown.contains("s3cr3t") && !shown.contains("alice"), "{shown}");
        k.secrets.insert("ssl.key.password".into(), "env:FEEDFLOW_TEST_UNSET_VARIABLE".into());
        let err = k.client_settings().unwrap_err();
        assert!(err.contains("FEEDFLOW_TEST_UNSET_VARIABLE"), "{err}");
        let _ = std::fs::remove_file(dir);
    }

    #[test]
    fn bad_sections_are_reported() {
        let mut k = KafkaConfig::default();
        k.topics.trending = "responses".into();
        k.secrets.insert("sasl.password".into(), "hunter2".into());
        k.partitions.inputs = 0;
        let p = k.problems().join("\n");
        assert!(p.contains("two roles") && p.contains("env:NAME") && p.contains("partitions"), "{p}");
        assert!(!p.contains("hunter2"), "{p}");
    }
}
