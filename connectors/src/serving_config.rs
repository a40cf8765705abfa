//! Configuration of the request funnel: candidate sources, filters, ranking and re-ranking (DESIGN.md §6–7).
//!
//! Every field has a named default that says where the value comes from;
//! unknown keys are errors. Validation lives in [`crate::config::Config::validate`].

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How many candidates each source contributes, and the filters' memory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    /// ANN candidates: nearest posts to the query vector over all shards (each shard returns this many).
    #[serde(default = "default_ann_k")]
    pub ann_k: usize,
    /// Related candidates: posts co-engaged with the user's recent positives, the best
    /// `related_k` by co-engagement score and the best `related_k` by its recency-weighted twin
    /// (their union, so at most twice as many).
    #[serde(default = "default_related_k")]
    pub related_k: usize,
    /// The user's most recent positive engagements used as anchors for `related` (20: the
    /// usual item-kNN neighbourhood; 5 anchors lost most of a MovieLens user's taste).
    #[serde(default = "default_related_anchors")]
    pub related_anchors: usize,
    /// Longest horizon of the co-engagement counts, in event time (365 days: tastes that
    /// co-occur stay informative for months, and on a busy log `related_max_pairs` is the
    /// binding limit anyway). Pairs leave earlier when a shard holds more than `related_max_pairs`.
    #[serde(default = "default_related_window_ms")]
    pub related_window_ms: u64,
    /// Co-engagement pairs kept per logical index shard; beyond it the oldest ticks leave first.
    /// The horizon so follows the log's rate: a log of a few hundred events a day keeps its whole
    /// window, a busy one its latest pairs, and memory stays bounded (~32 bytes a pair:
    /// 2M pairs × 4 shards ≈ 256 MB at most).
    #[serde(default = "default_related_max_pairs")]
    pub related_max_pairs: usize,
    /// Bound per user: a new positive pairs with at most this many of the user's earlier positives (20).
    #[serde(default = "default_related_pairs_per_user")]
    pub related_pairs_per_user: usize,
    /// Trending candidates (the pool weighted by the user's category affinity).
    #[serde(default = "default_trending_k")]
    pub trending_k: usize,
    /// Fresh candidates (newest uploads younger than `pools.fresh_max_age_ms`).
    #[serde(default = "default_fresh_k")]
    pub fresh_k: usize,
    /// Followed candidates: recent posts of creators the user follows.
    #[serde(default = "default_followed_k")]
    pub followed_k: usize,
    /// A followed creator's posts count as recent for this long (3 days).
    #[serde(default = "default_followed_max_age_ms")]
    pub followed_max_age_ms: u64,
    /// Popular candidates (top decayed weighted engagement, `pools.popular_half_life_ms`).
    #[serde(default = "default_popular_k")]
    pub popular_k: usize,
    /// Exploration candidates: a deterministic random sample of recent uploads.
    #[serde(default = "default_explore_k")]
    pub explore_k: usize,
    /// Exploration samples from each shard's this many newest uploads.
    #[serde(default = "default_explore_scan")]
    pub explore_scan: usize,
    /// Served posts the user did not engage with are not shown again for this long (DESIGN.md §6: 24 h).
    #[serde(default = "default_seen_window_ms")]
    pub seen_window_ms: u64,
    /// Posts the user engaged with are never recommended to them again; this many are remembered
    /// per user (10,000, the newest; older ones are forgotten first), bounding memory per user.
    #[serde(default = "default_engaged_memory")]
    pub engaged_memory: usize,
    /// A `hide` or `report` also hides the post's creator for this long (30 days).
    #[serde(default = "default_hide_creator_ms")]
    pub hide_creator_ms: u64,
}

/// The ranking model and how its heads combine (DESIGN.md §6).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RankingConfig {
    /// The ONNX model; when it is missing or fails, the linear fallback answers (DESIGN.md §7).
    /// An empty path means: always use the fallback.
    #[serde(default = "default_model")]
    pub model: PathBuf,
    /// The model's metadata (feature and head names, sha256), written by scripts/train_ranker.py.
    #[serde(default = "default_metadata")]
    pub metadata: PathBuf,
    /// The ONNX Runtime library `ort` loads; scripts/setup links it here. `ORT_DYLIB_PATH` overrides.
    #[serde(default = "default_onnxruntime_lib")]
    pub onnxruntime_lib: PathBuf,
    /// Intra-op threads of each worker's session (one session per worker; workers are the parallelism).
    #[serde(default = "default_intra_threads")]
    pub intra_threads: usize,
    /// Weights of the heads in the final score: like, comment, save, share, follow, hide, dwell.
    #[serde(default)]
    pub heads: HeadWeights,
    /// Score subtracted per unit of the post's highest safety score (soft safety demotion).
    #[serde(default = "default_safety_penalty")]
    pub safety_penalty: f64,
    /// Score subtracted from posts demoted by moderation.
    #[serde(default = "default_demote_penalty")]
    pub demote_penalty: f64,
    /// Live runs: how often the model and metadata files are checked for a new model (2 s); a
    /// new one is validated in the background and swapped in at a tick boundary. 0 turns it off.
    /// File replays never reload (their answers are a function of the log and the model).
    #[serde(default = "default_reload_check_ms")]
    pub reload_check_ms: u64,
    /// The model guard: whether the linear fallback takes over from a model that this log's
    /// own engagements show to be worse (on by default; README "The model guard").
    #[serde(default)]
    pub guard: GuardConfig,
    /// A cheaper model that scores every candidate first, so that the model scores only its best
    /// few (a cascade; off by default, on in `config/kafka.toml`).
    #[serde(default)]
    pub first_stage: FirstStageConfig,
}

/// The first stage of a ranking cascade: a smaller model of the same features and heads (e.g.
/// `models/ranker-first.onnx`, 15 trees per head against the ranker's 75) ranks every candidate
/// with the same head weights, and only its best `keep` go on to the model, with every
/// exploration and trending candidate (they have slots of their own on the page). Loaded at
/// start; model hot reload swaps the main model only.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FirstStageConfig {
    /// The first-stage ONNX model; empty (the default): no cascade, the model scores every candidate.
    #[serde(default)]
    pub model: PathBuf,
    /// Its metadata; empty: the model's path with `.json`.
    #[serde(default)]
    pub metadata: PathBuf,
    /// Candidates the model scores after the first stage (150: three pages of 50).
    #[serde(default = "default_first_stage_keep")]
    pub keep: usize,
}

impl Default for FirstStageConfig {
    fn default() -> Self {
        Self { model: PathBuf::new(), metadata: PathBuf::new(), keep: default_first_stage_keep() }
    }
}

fn default_first_stage_keep() -> usize {
    150
}

/// The model guard compares, online, the model's and the fallback's top 10 of every answer
/// with the user's next like-or-stronger engagement, and serves the fallback while the
/// fallback's wins beat the model's by more than chance (a sign test on the answers where
/// exactly one of the two held the engagement).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// Whether the guard may hand the answers to the fallback (false: the model always answers).
    #[serde(default = "default_guard_enabled")]
    pub enabled: bool,
    /// How old the evidence is when a decision uses it (1 h: decisions lag the log by an
    /// hour, and a replay's ranking stage runs up to an hour ahead of its own evidence).
    #[serde(default = "default_guard_delay_ms")]
    pub delay_ms: u64,
    /// A user's like-or-stronger engagement is probed (ranked as a request just before it
    /// would have been) at most once per this interval (1 h: the cost stays a small share
    /// of the request load; one probe per user session is evidence enough).
    #[serde(default = "default_guard_probe_interval_ms")]
    pub probe_interval_ms: u64,
    /// Half-life of the wins counted (30 days: which ranker suits a log changes slowly, and a
    /// log of a few hundred events a day needs weeks of probes to tell the two apart).
    #[serde(default = "default_guard_half_life_ms")]
    pub half_life_ms: u64,
    /// The fallback takes over when its wins exceed the model's by `z` standard deviations of
    /// a fair coin over the answers that differ (3: about one chance in a thousand).
    #[serde(default = "default_guard_z")]
    pub z: f64,
}

/// Weights of the model's heads (DESIGN.md §6: the heads combine with config weights).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeadWeights {
    /// P(like).
    #[serde(default = "hw_like")]
    pub like: f64,
    /// P(comment).
    #[serde(default = "hw_comment")]
    pub comment: f64,
    /// P(save).
    #[serde(default = "hw_save")]
    pub save: f64,
    /// P(share).
    #[serde(default = "hw_share")]
    pub share: f64,
    /// P(follow the creator).
    #[serde(default = "hw_follow")]
    pub follow: f64,
    /// P(hide or report); negative.
    #[serde(default = "hw_hide")]
    pub hide: f64,
    /// Expected dwell (fraction of a minute).
    #[serde(default = "hw_dwell")]
    pub dwell: f64,
}

/// Page rules applied after scoring (DESIGN.md §6).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RerankConfig {
    /// MMR trade-off: weight of relevance against similarity to what is already on the page (0.7).
    #[serde(default = "default_mmr_lambda")]
    pub mmr_lambda: f64,
    /// At most this many posts per creator on a page (2).
    #[serde(default = "default_max_per_creator")]
    pub max_per_creator: usize,
    /// At most this share of a page from one category (30 %).
    #[serde(default = "default_max_category_share")]
    pub max_category_share: f64,
    /// Share of a page reserved for exploration candidates (10 %).
    #[serde(default = "default_explore_share")]
    pub explore_share: f64,
    /// Up to this many trending posts at spread positions (3).
    #[serde(default = "default_trending_slots")]
    pub trending_slots: usize,
}

fn default_ann_k() -> usize {
    300
}
fn default_related_k() -> usize {
    100
}
fn default_related_anchors() -> usize {
    20
}
fn default_related_window_ms() -> u64 {
    365 * 86_400_000
}
fn default_related_max_pairs() -> usize {
    2_000_000
}
fn default_related_pairs_per_user() -> usize {
    20
}
fn default_engaged_memory() -> usize {
    10_000
}
fn default_trending_k() -> usize {
    30
}
fn default_fresh_k() -> usize {
    100
}
fn default_followed_k() -> usize {
    50
}
fn default_followed_max_age_ms() -> u64 {
    3 * 86_400_000
}
fn default_popular_k() -> usize {
    100
}
fn default_explore_k() -> usize {
    50
}
fn default_explore_scan() -> usize {
    2_000
}
fn default_seen_window_ms() -> u64 {
    86_400_000
}
fn default_hide_creator_ms() -> u64 {
    30 * 86_400_000
}
fn default_model() -> PathBuf {
    PathBuf::from("models/ranker.onnx")
}
fn default_metadata() -> PathBuf {
    PathBuf::from("models/ranker.json")
}
fn default_onnxruntime_lib() -> PathBuf {
    PathBuf::from(".venv/lib/libonnxruntime.so")
}
fn default_intra_threads() -> usize {
    1
}
fn default_safety_penalty() -> f64 {
    1.0
}
fn default_reload_check_ms() -> u64 {
    2_000
}
fn default_guard_enabled() -> bool {
    true
}
fn default_guard_delay_ms() -> u64 {
    3_600_000
}
fn default_guard_probe_interval_ms() -> u64 {
    3_600_000
}
fn default_guard_half_life_ms() -> u64 {
    30 * 24 * 3_600_000
}
fn default_guard_z() -> f64 {
    3.0
}
fn default_demote_penalty() -> f64 {
    0.5
}
fn hw_like() -> f64 {
    1.0
}
fn hw_comment() -> f64 {
    1.5
}
fn hw_save() -> f64 {
    2.0
}
fn hw_share() -> f64 {
    2.0
}
fn hw_follow() -> f64 {
    2.5
}
fn hw_hide() -> f64 {
    -3.0
}
fn hw_dwell() -> f64 {
    0.5
}
fn default_mmr_lambda() -> f64 {
    0.7
}
fn default_max_per_creator() -> usize {
    2
}
fn default_max_category_share() -> f64 {
    0.3
}
fn default_explore_share() -> f64 {
    0.1
}
fn default_trending_slots() -> usize {
    3
}

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            ann_k: default_ann_k(),
            related_k: default_related_k(),
            related_anchors: default_related_anchors(),
            related_window_ms: default_related_window_ms(),
            related_max_pairs: default_related_max_pairs(),
            related_pairs_per_user: default_related_pairs_per_user(),
            trending_k: default_trending_k(),
            fresh_k: default_fresh_k(),
            followed_k: default_followed_k(),
            followed_max_age_ms: default_followed_max_age_ms(),
            popular_k: default_popular_k(),
            explore_k: default_explore_k(),
            explore_scan: default_explore_scan(),
            seen_window_ms: default_seen_window_ms(),
            engaged_memory: default_engaged_memory(),
            hide_creator_ms: default_hide_creator_ms(),
        }
    }
}
impl Default for RankingConfig {
    fn default() -> Self {
        Self {
            model: default_model(),
            metadata: default_metadata(),
            onnxruntime_lib: default_onnxruntime_lib(),
            intra_threads: default_intra_threads(),
            heads: HeadWeights::default(),
            safety_penalty: default_safety_penalty(),
            demote_penalty: default_demote_penalty(),
            reload_check_ms: default_reload_check_ms(),
            guard: GuardConfig::default(),
            first_stage: FirstStageConfig::default(),
        }
    }
}
impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: default_guard_enabled(),
            delay_ms: default_guard_delay_ms(),
            probe_interval_ms: default_guard_probe_interval_ms(),
            half_life_ms: default_guard_half_life_ms(),
            z: default_guard_z(),
        }
    }
}
impl Default for HeadWeights {
    fn default() -> Self {
        Self {
            like: hw_like(),
            comment: hw_comment(),
            save: hw_save(),
            share: hw_share(),
            follow: hw_follow(),
            hide: hw_hide(),
            dwell: hw_dwell(),
        }
    }
}
impl HeadWeights {
    /// The weights in head order: like, comment, save, share, follow, hide, dwell.
    pub fn as_array(&self) -> [f64; 7] {
        [self.like, self.comment, self.save, self.share, self.follow, self.hide, self.dwell]
    }
}
impl Default for RerankConfig {
    fn default() -> Self {
        Self {
            mmr_lambda: default_mmr_lambda(),
            max_per_creator: default_max_per_creator(),
            max_category_share: default_max_category_share(),
            explore_share: default_explore_share(),
            trending_slots: default_trending_slots(),
        }
    }
}

impl ServingConfig {
    /// Problems with these settings.
    pub fn problems(&self, ranking: &RankingConfig, rerank: &RerankConfig) -> Vec<String> {
        let mut p = Vec::new();
        if self.ann_k > 10_000 || self.related_k > 10_000 || self.fresh_k > 10_000 || self.popular_k > 10_000 {
            p.push("serving: per-source candidate counts must be at most 10000".into());
        }
        if self.related_max_pairs == 0 || self.engaged_memory == 0 {
            p.push("serving.related_max_pairs and serving.engaged_memory must be at least 1".into());
        }
        if ranking.intra_threads == 0 {
            p.push("ranking.intra_threads must be at least 1".into());
        }
        let weights = ranking.heads.as_array();
        if weights.iter().chain([ranking.safety_penalty, ranking.demote_penalty].iter()).any(|w| !w.is_finite()) {
            p.push("ranking: head weights and penalties must be finite numbers".into());
        }
        if !(0.0..=1.0).contains(&rerank.mmr_lambda) {
            p.push(format!("rerank.mmr_lambda must be in [0, 1], got {}", rerank.mmr_lambda));
        }
        if rerank.max_per_creator == 0 {
            p.push("rerank.max_per_creator must be at least 1".into());
        }
        for (name, v) in
            [("rerank.max_category_share", rerank.max_category_share), ("rerank.explore_share", rerank.explore_share)]
        {
            if !(0.0..=1.0).contains(&v) {
                p.push(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        p
    }
}
