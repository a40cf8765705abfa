//! Typed engine configuration, read from TOML and validated once at start.
//!
//! Every field has a doc comment and a named default function that says where
//! the value comes from (mostly `shared/DESIGN.md`). Unknown keys are errors,
//! and [`Config::validate`] reports every problem at once.

pub use crate::kafka_config::{KafkaConfig, MetricsConfig, SourceKind, StartFrom};
pub use crate::serving_config::{
    FirstStageConfig, GuardConfig, HeadWeights, RankingConfig, RerankConfig, ServingConfig,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The whole configuration of one engine run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Event time and parallelism.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Where events come from.
    #[serde(default)]
    pub input: InputConfig,
    /// Where the output streams go.
    #[serde(default)]
    pub output: OutputConfig,
    /// The vector index (usearch HNSW shards).
    #[serde(default)]
    pub index: IndexConfig,
    /// Duplicate suppression by `event_id`.
    #[serde(default)]
    pub dedupe: DedupeConfig,
    /// Velocity scores and the trending pool (DESIGN.md §3).
    #[serde(default)]
    pub trending: TrendingConfig,
    /// Long-term user vectors and session deltas (DESIGN.md §4).
    #[serde(default)]
    pub interest: InterestConfig,
    /// The fresh and popular candidate pools (DESIGN.md §6).
    #[serde(default)]
    pub pools: PoolsConfig,
    /// Candidate sources and filters of the request funnel (DESIGN.md §6).
    #[serde(default)]
    pub serving: ServingConfig,
    /// The ranking model and its head weights (DESIGN.md §6–7).
    #[serde(default)]
    pub ranking: RankingConfig,
    /// Diversity and slot rules of a page (DESIGN.md §6).
    #[serde(default)]
    pub rerank: RerankConfig,
    /// Live mode: Kafka topics, client settings and event-time rules (DESIGN.md §2).
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// The Prometheus endpoint (DESIGN.md §9).
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// Event time and parallelism.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Length of one tick in milliseconds of event time; a tick is `ts / tick_ms`.
    /// A request sees exactly the events of earlier ticks (DESIGN.md §1).
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// Number of timely worker threads in this process (`--workers` overrides).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Events whose tick is older than the input frontier by more than this are
    /// applied at the frontier and counted as late (DESIGN.md §2). The frontier is
    /// held back by this much, so events within it are applied at their own time.
    #[serde(default)]
    pub allowed_lateness_ms: u64,
    /// A process of a timely cluster (`-n` > 1) that has not reached all its peers within
    /// this long gives up with an error (60 s: peers started by hand or by a script; 0 waits
    /// for ever). SIGINT or SIGTERM stops the wait at once.
    #[serde(default = "default_peer_wait_ms")]
    pub peer_wait_ms: u64,
}

/// Where events come from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// `"file"` replays `log` (the embedded default); `"kafka"` consumes the
    /// topics of `[kafka]` live until stopped (`config/kafka.toml`).
    #[serde(default)]
    pub source: SourceKind,
    /// The recorded JSONL log replayed in file mode (`--log` overrides).
    /// Relative paths are resolved against the working directory.
    #[serde(default = "default_log")]
    pub log: PathBuf,
    /// When the log file does not exist, generate a sample world there first.
    #[serde(default)]
    pub generate_if_missing: Option<GenerateConfig>,
    /// Replay pace: 0 replays as fast as possible, N plays event time N times
    /// faster than real time (`--speed` overrides).
    #[serde(default)]
    pub speed: f64,
    /// Largest accepted message in bytes; larger ones go to the DLQ (DESIGN.md §8: 64 KiB).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Print a progress line to stderr this often during long runs (0 disables).
    #[serde(default = "default_progress_ms")]
    pub progress_interval_ms: u64,
}

/// Parameters of the sample world generated when the log is missing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfig {
    /// Random seed of the generator.
    pub seed: u64,
    /// Number of users.
    pub users: usize,
    /// Number of uploads.
    pub posts: usize,
    /// Span of event time, in hours.
    pub hours: f64,
}

/// Where the output streams go.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Folder receiving `trending.jsonl`, `dlq.jsonl` and the other streams (`--out` overrides).
    #[serde(default = "default_out_dir")]
    pub dir: PathBuf,
}

/// The vector index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Embedding length every upload must have (DESIGN.md: defaults to 64).
    #[serde(default = "default_dimensions")]
    pub dimensions: usize,
    /// Number of logical HNSW shards (owner = hash of post_id). Fixed apart
    /// from the worker count, so every worker count builds the same shards.
    /// Default 4 (BENCHMARKS.md, index): enough up to ~100k posts; near 1M posts
    /// 8 shards with `expansion_search = 800` keep recall@100 ≥ 0.95.
    #[serde(default = "default_shards")]
    pub shards: u32,
    /// HNSW graph degree (usearch "connectivity"); lower inserts faster, recalls less.
    /// The defaults (16, 32, 400, f16) come from `scripts/bench index`
    /// (`dataflows/examples/index_bench.rs`, BENCHMARKS.md): on 100k clustered 64-d vectors in
    /// 4 shards built by 2 threads they insert 30k–55k vectors/s with recall@100 ≈ 0.99; i8
    /// storage (12, 24, 400) inserted faster but recalled 0.92, and usearch's own defaults
    /// (16, 64, 128, f32) insert at about half the rate.
    #[serde(default = "default_connectivity")]
    pub connectivity: usize,
    /// HNSW candidate list size while inserting (usearch "expansion_add").
    #[serde(default = "default_expansion_add")]
    pub expansion_add: usize,
    /// HNSW candidate list size while searching (usearch "expansion_search").
    #[serde(default = "default_expansion_search")]
    pub expansion_search: usize,
    /// Scalar type stored in the index: "f32", "f16" or "i8".
    #[serde(default = "default_quantization")]
    pub quantization: String,
}

/// Duplicate suppression by `event_id` (at-least-once producers).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// An `event_id` is remembered this long in event time (bounds memory by time).
    #[serde(default = "default_dedupe_horizon_ms")]
    pub horizon_ms: u64,
    /// At most this many ids are remembered per worker (bounds memory by count);
    /// the oldest are forgotten first.
    #[serde(default = "default_dedupe_max_ids")]
    pub max_ids_per_worker: usize,
}

/// Velocity and the trending pool (DESIGN.md §3).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrendingConfig {
    /// Sliding window of a post's recent engagements (DESIGN.md: 5 min).
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// Window of a creator's baseline (DESIGN.md: 7 days).
    #[serde(default = "default_baseline_window_ms")]
    pub baseline_window_ms: u64,
    /// Smallest baseline, in weighted engagements per window, so new creators
    /// do not divide by zero.
    #[serde(default = "default_baseline_floor")]
    pub baseline_floor: f64,
    /// A post trends when `recent / max(baseline, floor)` reaches this (DESIGN.md: 5).
    #[serde(default = "default_ratio_threshold")]
    pub ratio_threshold: f64,
    /// ... and it has at least this many positive engagements in the window.
    #[serde(default = "default_min_count")]
    pub min_count: i64,
    /// ... and it is younger than this (DESIGN.md: 2 h).
    #[serde(default = "default_max_age_ms")]
    pub max_age_ms: u64,
    /// Size of the pool per category.
    #[serde(default = "default_top_n")]
    pub top_n: usize,
}

/// Interest vectors (DESIGN.md §4).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InterestConfig {
    /// Half-life of the long-term user vector (DESIGN.md: 14 days).
    #[serde(default = "default_half_life_ms")]
    pub half_life_ms: u64,
    /// A gap longer than this between two actions ends a session (DESIGN.md: 30 min).
    #[serde(default = "default_session_gap_ms")]
    pub session_gap_ms: u64,
    /// The session delta sums the last this many actions (DESIGN.md: 20).
    #[serde(default = "default_session_actions")]
    pub session_actions: usize,
    /// Weight of the session delta in the query vector (DESIGN.md: 0.3).
    #[serde(default = "default_session_weight")]
    pub session_weight: f64,
    /// A view counts only with at least this dwell (DESIGN.md: 3 s).
    #[serde(default = "default_view_min_dwell_ms")]
    pub view_min_dwell_ms: u64,
    /// An engagement whose post has not been uploaded waits this long, then is dropped and counted.
    #[serde(default = "default_pending_ttl_ms")]
    pub pending_ttl_ms: u64,
    /// Weight of each engagement kind.
    #[serde(default)]
    pub weights: EngagementWeights,
}

/// Weight of each engagement kind (DESIGN.md §4 defaults).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngagementWeights {
    /// A view with dwell at least `view_min_dwell_ms` (shorter views weigh 0).
    #[serde(default = "w_view")]
    pub view: f64,
    /// A like.
    #[serde(default = "w_like")]
    pub like: f64,
    /// A comment.
    #[serde(default = "w_comment")]
    pub comment: f64,
    /// A save.
    #[serde(default = "w_save")]
    pub save: f64,
    /// A share.
    #[serde(default = "w_share")]
    pub share: f64,
    /// Following the post's creator.
    #[serde(default = "w_follow")]
    pub follow: f64,
    /// A skip.
    #[serde(default = "w_skip")]
    pub skip: f64,
    /// Hiding the post.
    #[serde(default = "w_hide")]
    pub hide: f64,
    /// Reporting the post.
    #[serde(default = "w_report")]
    pub report: f64,
}

/// Candidate pools kept beside the index (DESIGN.md §6).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolsConfig {
    /// A post is fresh while younger than this (DESIGN.md: 30 min).
    #[serde(default = "default_fresh_max_age_ms")]
    pub fresh_max_age_ms: u64,
    /// Popularity is the weighted positive engagement decayed with this half-life (7 days):
    /// "popular in the last 24 h" (DESIGN.md §6) as a decay rather than a hard window, so it
    /// still ranks on a log with a few hundred events a day (MovieLens-100K has ~500) and
    /// follows the news on a busy one. The trending window, not this, catches bursts.
    #[serde(default = "default_popular_half_life_ms")]
    pub popular_half_life_ms: u64,
    /// Size of the popular list.
    #[serde(default = "default_popular_top_n")]
    pub popular_top_n: usize,
}

fn default_tick_ms() -> u64 {
    1_000
}
fn default_workers() -> usize {
    1
}
fn default_peer_wait_ms() -> u64 {
    60_000
}
fn default_log() -> PathBuf {
    PathBuf::from("data/sample.jsonl")
}
fn default_max_message_bytes() -> usize {
    64 * 1024
}
fn default_progress_ms() -> u64 {
    2_000
}
fn default_out_dir() -> PathBuf {
    PathBuf::from("out")
}
fn default_dimensions() -> usize {
    64
}
fn default_shards() -> u32 {
    4
}
fn default_connectivity() -> usize {
    16
}
fn default_expansion_add() -> usize {
    32
}
fn default_expansion_search() -> usize {
    400
}
fn default_quantization() -> String {
    "f16".into()
}
fn default_dedupe_horizon_ms() -> u64 {
    3_600_000
}
fn default_dedupe_max_ids() -> usize {
    5_000_000
}
fn default_window_ms() -> u64 {
    300_000
}
fn default_baseline_window_ms() -> u64 {
    7 * 24 * 3_600_000
}
fn default_baseline_floor() -> f64 {
    2.0
}
fn default_ratio_threshold() -> f64 {
    5.0
}
fn default_min_count() -> i64 {
    10
}
fn default_max_age_ms() -> u64 {
    2 * 3_600_000
}
fn default_top_n() -> usize {
    20
}
fn default_half_life_ms() -> u64 {
    14 * 24 * 3_600_000
}
fn default_session_gap_ms() -> u64 {
    30 * 60_000
}
fn default_session_actions() -> usize {
    20
}
fn default_session_weight() -> f64 {
    0.3
}
fn default_view_min_dwell_ms() -> u64 {
    3_000
}
fn default_pending_ttl_ms() -> u64 {
    3_600_000
}
fn w_view() -> f64 {
    0.5
}
fn w_like() -> f64 {
    1.0
}
fn w_comment() -> f64 {
    1.5
}
fn w_save() -> f64 {
    2.0
}
fn w_share() -> f64 {
    2.0
}
fn w_follow() -> f64 {
    2.5
}
fn w_skip() -> f64 {
    -0.2
}
fn w_hide() -> f64 {
    -2.0
}
fn w_report() -> f64 {
    -3.0
}
fn default_fresh_max_age_ms() -> u64 {
    30 * 60_000
}
fn default_popular_half_life_ms() -> u64 {
    7 * 24 * 3_600_000
}
fn default_popular_top_n() -> usize {
    500
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            tick_ms: default_tick_ms(),
            workers: default_workers(),
            allowed_lateness_ms: 0,
            peer_wait_ms: default_peer_wait_ms(),
        }
    }
}
impl Default for InputConfig {
    fn default() -> Self {
        Self {
            source: SourceKind::File,
            log: default_log(),
            generate_if_missing: None,
            speed: 0.0,
            max_message_bytes: default_max_message_bytes(),
            progress_interval_ms: default_progress_ms(),
        }
    }
}
impl Default for OutputConfig {
    fn default() -> Self {
        Self { dir: default_out_dir() }
    }
}
impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            dimensions: default_dimensions(),
            shards: default_shards(),
            connectivity: default_connectivity(),
            expansion_add: default_expansion_add(),
            expansion_search: default_expansion_search(),
            quantization: default_quantization(),
        }
    }
}
impl Default for DedupeConfig {
    fn default() -> Self {
        Self { horizon_ms: default_dedupe_horizon_ms(), max_ids_per_worker: default_dedupe_max_ids() }
    }
}
impl Default for TrendingConfig {
    fn default() -> Self {
        Self {
            window_ms: default_window_ms(),
            baseline_window_ms: default_baseline_window_ms(),
            baseline_floor: default_baseline_floor(),
            ratio_threshold: default_ratio_threshold(),
            min_count: default_min_count(),
            max_age_ms: default_max_age_ms(),
            top_n: default_top_n(),
        }
    }
}
impl Default for InterestConfig {
    fn default() -> Self {
        Self {
            half_life_ms: default_half_life_ms(),
            session_gap_ms: default_session_gap_ms(),
            session_actions: default_session_actions(),
            session_weight: default_session_weight(),
            view_min_dwell_ms: default_view_min_dwell_ms(),
            pending_ttl_ms: default_pending_ttl_ms(),
            weights: EngagementWeights::default(),
        }
    }
}
impl Default for EngagementWeights {
    fn default() -> Self {
        Self {
            view: w_view(),
            like: w_like(),
            comment: w_comment(),
            save: w_save(),
            share: w_share(),
            follow: w_follow(),
            skip: w_skip(),
            hide: w_hide(),
            report: w_report(),
        }
    }
}
impl Default for PoolsConfig {
    fn default() -> Self {
        Self {
            fresh_max_age_ms: default_fresh_max_age_ms(),
            popular_half_life_ms: default_popular_half_life_ms(),
            popular_top_n: default_popular_top_n(),
        }
    }
}

/// Every problem found in a configuration, reported together.
#[derive(Debug, thiserror::Error, PartialEq)]
pub struct ConfigError {
    /// Where the configuration came from (a path or "embedded").
    pub origin: String,
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration {} ({} problem(s)):", self.origin, self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Parses TOML text and validates it; `origin` names the source in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            origin: origin.to_string(),
            problems: vec![e.to_string().trim().replace('\n', " ")],
        })?;
        config.validate().map_err(|problems| ConfigError { origin: origin.to_string(), problems })?;
        Ok(config)
    }

    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: path.display().to_string(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Checks every constraint and returns all violations.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = Vec::new();
        let e = &self.engine;
        if e.tick_ms == 0 {
            p.push("engine.tick_ms must be at least 1".into());
        }
        if e.workers == 0 {
            p.push("engine.workers must be at least 1".into());
        }
        let i = &self.input;
        if !(i.speed >= 0.0 && i.speed.is_finite()) {
            p.push(format!("input.speed must be a finite number ≥ 0, got {}", i.speed));
        }
        if i.max_message_bytes < 256 {
            p.push("input.max_message_bytes must be at least 256".into());
        }
        if let Some(g) = &i.generate_if_missing {
            if g.users == 0 || g.posts == 0 || !(g.hours > 0.0 && g.hours.is_finite()) {
                p.push("input.generate_if_missing needs users ≥ 1, posts ≥ 1 and hours > 0".into());
            }
        }
        let x = &self.index;
        if x.dimensions == 0 || x.dimensions > 4096 {
            p.push(format!("index.dimensions must be in 1..=4096, got {}", x.dimensions));
        }
        if x.shards == 0 || x.shards > 4096 {
            p.push(format!("index.shards must be in 1..=4096, got {}", x.shards));
        }
        if x.connectivity < 2 {
            p.push("index.connectivity must be at least 2".into());
        }
        if x.expansion_add == 0 || x.expansion_search == 0 {
            p.push("index.expansion_add and index.expansion_search must be at least 1".into());
        }
        if !["f32", "f16", "i8"].contains(&x.quantization.as_str()) {
            p.push(format!("index.quantization must be \"f32\", \"f16\" or \"i8\", got {:?}", x.quantization));
        }
        if self.dedupe.max_ids_per_worker == 0 {
            p.push("dedupe.max_ids_per_worker must be at least 1".into());
        }
        let t = &self.trending;
        let tick = e.tick_ms.max(1);
        for (name, v) in [
            ("trending.window_ms", t.window_ms),
            ("trending.baseline_window_ms", t.baseline_window_ms),
            ("trending.max_age_ms", t.max_age_ms),
            ("interest.session_gap_ms", self.interest.session_gap_ms),
            ("pools.fresh_max_age_ms", self.pools.fresh_max_age_ms),
            ("pools.popular_half_life_ms", self.pools.popular_half_life_ms),
            ("dedupe.horizon_ms", self.dedupe.horizon_ms),
            ("serving.related_window_ms", self.serving.related_window_ms),
            ("serving.seen_window_ms", self.serving.seen_window_ms),
            ("ranking.guard.delay_ms", self.ranking.guard.delay_ms),
            ("ranking.guard.half_life_ms", self.ranking.guard.half_life_ms),
        ] {
            if v == 0 || v % tick != 0 {
                p.push(format!("{name} must be a positive multiple of engine.tick_ms ({tick}), got {v}"));
            }
        }
        if t.baseline_window_ms < t.window_ms {
            p.push("trending.baseline_window_ms must be at least trending.window_ms".into());
        }
        if !(t.baseline_floor > 0.0 && t.baseline_floor.is_finite()) {
            p.push("trending.baseline_floor must be a finite number > 0".into());
        }
        if !(t.ratio_threshold > 0.0 && t.ratio_threshold.is_finite()) {
            p.push("trending.ratio_threshold must be a finite number > 0".into());
        }
        if t.min_count < 1 {
            p.push("trending.min_count must be at least 1".into());
        }
        let first = &self.ranking.first_stage;
        if !first.model.as_os_str().is_empty() && first.keep == 0 {
            p.push("ranking.first_stage.keep must be at least 1 when ranking.first_stage.model is set".into());
        }
        if t.top_n == 0 {
            p.push("trending.top_n must be at least 1".into());
        }
        let n = &self.interest;
        if n.half_life_ms == 0 {
            p.push("interest.half_life_ms must be at least 1".into());
        }
        if n.session_actions == 0 {
            p.push("interest.session_actions must be at least 1".into());
        }
        if !n.session_weight.is_finite() {
            p.push("interest.session_weight must be finite".into());
        }
        let w = &n.weights;
        for (name, v) in [
            ("view", w.view),
            ("like", w.like),
            ("comment", w.comment),
            ("save", w.save),
            ("share", w.share),
            ("follow", w.follow),
            ("skip", w.skip),
            ("hide", w.hide),
            ("report", w.report),
        ] {
            if !v.is_finite() || v.abs() > 1e6 {
                p.push(format!("interest.weights.{name} must be finite and at most 1e6 in size, got {v}"));
            }
        }
        if !(self.ranking.guard.z >= 0.0 && self.ranking.guard.z.is_finite()) {
            p.push(format!("ranking.guard.z must be a finite number >= 0, got {}", self.ranking.guard.z));
        }
        if self.pools.popular_top_n == 0 {
            p.push("pools.popular_top_n must be at least 1".into());
        }
        p.extend(self.serving.problems(&self.ranking, &self.rerank));
        p.extend(self.kafka.problems());
        if self.metrics.enabled && self.metrics.address.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!("metrics.address must be IP:PORT, got {:?}", self.metrics.address));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }

    /// Converts a duration in ms to ticks (validated to divide evenly).
    pub fn ticks(&self, ms: u64) -> u64 {
        ms / self.engine.tick_ms.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_design() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.index.dimensions, 64);
        assert_eq!(c.trending.window_ms, 300_000);
        assert_eq!(c.interest.weights.follow, 2.5);
        assert_eq!(c.input.max_message_bytes, 65_536);
    }

    #[test]
    fn empty_toml_is_the_default() {
        assert_eq!(Config::from_toml_str("", "t").unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::from_toml_str("[engine]\ntick_msx = 3\n", "t").unwrap_err();
        assert!(err.problems[0].contains("tick_msx"), "{err}");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let text = "[engine]\ntick_ms = 0\n[index]\ndimensions = 0\nquantization = \"f64\"\n[trending]\ntop_n = 0\n";
        let err = Config::from_toml_str(text, "t").unwrap_err();
        assert!(err.problems.len() >= 4, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("tick_ms")
                && text.contains("dimensions")
                && text.contains("quantization")
                && text.contains("top_n")
        );
    }

    #[test]
    fn windows_must_be_whole_ticks() {
        let err = Config::from_toml_str("[engine]\ntick_ms = 7000\n", "t").unwrap_err();
        assert!(err.to_string().contains("trending.window_ms"), "{err}");
    }
}
