//! Deterministic synthetic-world generator (`feedflow gen`).
//!
//! `generate` builds a small social network with a known ground truth and
//! writes two files:
//!
//! * the **event log** (`--out FILE`, JSONL): one JSON object per line in the
//!   wire format of `DESIGN.md` (`upload`, `engagement`, `moderation`,
//!   `request`), ordered by `ts` (ties keep generation order), every event
//!   carrying a unique `event_id` of the form `"<seed>-<sequence>"` where the
//!   sequence counts lines from 1;
//! * the **truth file** (`truth_path_for(FILE)`, one compact JSON object, see
//!   [`Truth`]): everything the generator knew — options, the affinity model,
//!   topics, creators, posts, users, the injected bursts and the moderation
//!   actions. [`load_truth`] reads it back and
//!   [`Truth::engagement_probability`] answers the "oracle" question *how
//!   likely was user u to engage with post p* with exactly the formula and
//!   numbers the generator used.
//!
//! # World model
//!
//! * **Topics**: 12–16 named categories (`food`, `travel`, `music`, …), each a
//!   random unit centroid in `dimensions` dimensions, each with a random
//!   audience share.
//! * **Creators**: about `posts / 8`, each with a main topic and a heavy-tailed
//!   (log-normal, σ = 1.1) popularity normalised to mean 1. About 30 % of the
//!   creators are also users (their creator id is a user id). Ids: users are
//!   `1..=users`; creators who are not users are `S + j`; posts are `10·S + i`,
//!   where `S` is the smallest power of ten ≥ 1,000,000 that exceeds both
//!   `users` and `posts` (so the ranges never overlap).
//! * **Posts**: 30 % are uploaded in the first 10 minutes (a starting
//!   catalogue), the rest uniformly over the span; post ids increase with
//!   upload time. The creator is drawn ∝ √popularity, the topic is the
//!   creator's main topic (85 %) or any topic. Embedding =
//!   normalize(centroid + noise), noise scaled so the cosine to the own
//!   centroid is ≈ 0.72–0.88. Each post has a hidden quality
//!   (Beta(2.5, 2.5)), a content type, `is_public` (≈ 95 %) and safety scores
//!   (mostly small, ≈ 2 % with one high score).
//! * **Users**: an interest mixture over 1–3 topics (weights sum to 1), latent
//!   vector = normalize(Σ weight · centroid), an activity level in sessions
//!   per hour (log-normal, mean ≈ 0.55, capped at 1.6), a main device and a
//!   region.
//! * **Sessions**: a session starts with a `request` (`k` = 50), then the user
//!   views 5–30 posts (mean ≈ 12) a few seconds apart; the next session starts
//!   at least 30 minutes after the previous one ended. Each viewed post is
//!   drawn from a topic of the user's mixture (75 %) or any topic (25 %);
//!   within the topic either a recent upload (45 %) or a post drawn ∝ creator
//!   popularity · (0.5 + quality). Only posts already uploaded, public, not
//!   blocked at that moment, not the user's own, not yet seen by the user and
//!   not reserved as a "quiet" fixture are eligible; demoted posts are mostly
//!   rejected. Each view yields a `view` engagement with `dwell_ms`; then with
//!   probability `p = p_engage(u, p)` a `like`, and given a like sometimes a
//!   `comment` (12 %), `save` (10 %), `share` (6 %) or `follow` of the
//!   creator (6 %, at most once per user and creator); without a like the
//!   user sometimes `skip`s (short dwell), rarely `hide`s or `report`s (more
//!   likely when `p` is low or the post is unsafe).
//! * **Affinity model** (the truth), with the coefficients of
//!   [`DEFAULT_MODEL`] (a = 5, b = 1.5, c = 0.3, d = −4.8; recorded in the
//!   truth file):
//!
//!   ```text
//!   p_engage(u, p) = sigmoid(a·cos(latent_u, embedding_p) + b·(quality_p − 0.5)
//!                            + c·ln(popularity_creator(p)) + d)
//!   ```
//!
//!   The like probability of a view *is* `p_engage`. Likes land on ≈ 20 % of
//!   views: ≈ 26 % for posts of the user's own topics and ≈ 1.5 % elsewhere.
//! * **Moderation**: ≈ 0.5 % of posts are blocked 2–30 min after upload (a
//!   third of those are unblocked 10–120 min later), ≈ 0.5 % are demoted.
//!   Actions that would fall after the end of the span are not generated.
//! * **Bursts** (fixtures for the trending detector): `max(4, round(hours))`
//!   public, never-moderated posts of below-median-popularity creators, in
//!   different categories, get 40–120 `like`s from distinct random users
//!   (never the creator, never a user who engaged with the post organically;
//!   these likes belong to no session) within 1–4 minutes, starting 5–60 minutes after upload (so well inside
//!   the post's first 2 h). As many "quiet" posts get *no organic
//!   engagement at all* and a 3–7-like burst within ≤ 5 minutes, which can
//!   never reach 10 engagements in any 5-minute window. All of them are
//!   listed in [`Truth::bursts`] with `above_threshold` true / false.
//!
//! # Volume
//!
//! Engagements are ≈ 90 % of the events, requests ≈ 5 %, uploads exactly
//! `--posts`, moderation ≈ 1 % of `--posts`. The volume grows linearly with
//! `users × hours`: about 11 events per user-hour (≈ 0.55 sessions per
//! user-hour, ≈ 20 events per session). The defaults (2,000 users, 6,000
//! posts, 6 h) give ≈ 140 k events; ≈ 1 M events needs `users × hours` ≈
//! 90,000, e.g. `--users 15000 --posts 30000 --hours 6`
//! (or `--users 20000 --posts 50000 --hours 12` for ≈ 2.6 M). Generation
//! keeps compact events in memory (≈ 25 bytes each) and sorts them once.
//!
//! # Determinism
//!
//! All randomness comes from a private xoshiro256** generator seeded through
//! SplitMix64 from `seed` and a per-purpose stream number; nothing depends on
//! hash-map iteration order, threads or the clock. The same [`GenOptions`]
//! therefore produce byte-identical log and truth files (on the same
//! platform: the generator uses `f64::ln`/`exp`/`cos`, whose last-bit
//! behaviour is the platform's libm). All floats that matter are rounded to
//! 4 decimals *before* they are used, so the truth file (JSON, shortest
//! round-trip formatting) reproduces the generator's probabilities exactly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use feedflow_connectors::event::{EngagementKind, ModerationAction};
use serde::{Deserialize, Serialize};

/// Names of the topics; a world uses the first 12–16 of them.
pub const TOPIC_NAMES: [&str; 16] = [
    "food", "travel", "music", "sports", "fashion", "gaming", "pets", "tech", "art", "fitness", "comedy", "science",
    "beauty", "diy", "nature", "cars",
];

/// The affinity-model coefficients used by [`generate`].
pub const DEFAULT_MODEL: AffinityModel = AffinityModel { a: 5.0, b: 1.5, c: 0.3, d: -4.8 };

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DEVICES: [&str; 3] = ["ios", "android", "web"];
const REGIONS: [&str; 4] = ["EU", "NA", "APAC", "LATAM"];
const CONTENT_TYPES: [&str; 3] = ["reel", "photo", "carousel"];

// Random-stream numbers, one per purpose, so that e.g. the user simulation
// does not shift when the catalogue changes size.
const STREAM_TOPICS: u64 = 1;
const STREAM_CREATORS: u64 = 2;
const STREAM_POSTS: u64 = 3;
const STREAM_BURSTS: u64 = 4;
const STREAM_MODERATION: u64 = 5;
const STREAM_USERS: u64 = 6;
const STREAM_PUBLISHED: u64 = 7;
const STREAM_SESSIONS: u64 = 1 << 32;

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Options of `feedflow gen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenOptions {
    pub seed: u64,
    pub users: usize,
    pub posts: usize,
    pub hours: f64,
    /// Embedding dimensions (must match the engine's `index.dimensions`).
    pub dimensions: usize,
    /// Start of the simulated span, ms since the Unix epoch.
    pub start_ts: i64,
    /// Noise in the *published* embeddings: an upload carries
    /// `normalize(e + σ·g/√d)` (`g` standard normal per dimension) while engagement follows the
    /// post's true embedding `e`. 0 (the default) publishes `e` itself; at 1 the published vector's
    /// cosine to `e` is ≈ 0.7, a world where content vectors are weak and behaviour (co-engagement,
    /// popularity) carries more of the taste, as on real logs with genre-only vectors.
    #[serde(default)]
    pub embedding_noise: f64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            seed: 1,
            users: 2_000,
            posts: 6_000,
            hours: 6.0,
            dimensions: 64,
            start_ts: 1_700_000_000_000,
            embedding_noise: 0.0,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenSummary {
    /// Lines in the log.
    pub events: u64,
    /// Lines per `type` (`upload`, `engagement`, `request`, `moderation`).
    pub by_type: BTreeMap<String, u64>,
    /// Engagements per `kind` (`view`, `like`, …).
    pub by_kind: BTreeMap<String, u64>,
    /// Entries in [`Truth::bursts`] (above- and below-threshold together).
    pub bursts: usize,
    /// Where the truth file was written.
    pub truth_path: PathBuf,
}

impl std::fmt::Display for GenSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} events (", self.events)?;
        for (i, (t, n)) in self.by_type.iter().enumerate() {
            write!(f, "{}{t} {n}", if i > 0 { ", " } else { "" })?;
        }
        write!(f, "), {} bursts, truth in {}", self.bursts, self.truth_path.display())
    }
}

/// `p_engage = sigmoid(a·cos(user, post) + b·(quality − 0.5) + c·ln(popularity) + d)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AffinityModel {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
}

impl AffinityModel {
    /// The logit of the engagement probability.
    pub fn logit(&self, user_latent: &[f64], embedding: &[f64], quality: f64, popularity: f64) -> f64 {
        self.a * cosine(user_latent, embedding) + self.b * (quality - 0.5) + self.c * popularity.max(1e-4).ln() + self.d
    }

    /// The engagement probability, in (0, 1).
    pub fn probability(&self, user_latent: &[f64], embedding: &[f64], quality: f64, popularity: f64) -> f64 {
        sigmoid(self.logit(user_latent, embedding, quality, popularity))
    }
}

/// Logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Cosine similarity (0 when either vector is zero).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na <= 0.0 || nb <= 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// A topic (category) and its centroid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicTruth {
    pub name: String,
    /// Share of user interest drawn to this topic (relative weight).
    pub audience: f64,
    pub centroid: Vec<f64>,
}

/// A creator (who may also be a user: then `id` is that user's id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatorTruth {
    pub id: u64,
    /// Main topic name.
    pub topic: String,
    /// Popularity, normalised to mean 1 over all creators.
    pub popularity: f64,
    /// Whether the creator id is also a user id.
    pub is_user: bool,
}

/// A post and its hidden quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostTruth {
    pub id: u64,
    pub creator_id: u64,
    pub topic: String,
    pub upload_ts: i64,
    pub quality: f64,
    pub is_public: bool,
    pub content_type: String,
    /// Exactly the values written in the upload event.
    pub embedding: Vec<f64>,
    /// The true embedding engagement follows, when it differs from the published one
    /// ([`GenOptions::embedding_noise`] > 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_embedding: Option<Vec<f64>>,
}

/// One component of a user's interest mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interest {
    pub topic: String,
    pub weight: f64,
}

/// A user: interest mixture, latent vector and activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserTruth {
    pub id: u64,
    pub interests: Vec<Interest>,
    pub latent: Vec<f64>,
    /// Sessions per hour (target rate).
    pub activity: f64,
    pub device: String,
    pub region: String,
}

/// An injected burst of likes on one post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurstTruth {
    pub post_id: u64,
    pub creator_id: u64,
    pub category: String,
    /// Timestamp of the first burst like.
    pub start_ts: i64,
    /// Timestamp of the last burst like.
    pub end_ts: i64,
    /// Number of burst likes (distinct users).
    pub engagements: u64,
    /// true: a viral burst the trending detector must catch; false: a "quiet"
    /// post that never gets any other engagement and must never trend.
    pub above_threshold: bool,
}

/// A moderation action that was emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationTruth {
    pub post_id: u64,
    pub ts: i64,
    pub action: String,
}

/// Content of the truth file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Truth {
    pub seed: u64,
    pub options: GenOptions,
    /// End of the simulated span (sessions may run a few minutes past it).
    pub end_ts: i64,
    pub model: AffinityModel,
    pub topics: Vec<TopicTruth>,
    pub creators: Vec<CreatorTruth>,
    pub posts: Vec<PostTruth>,
    pub users: Vec<UserTruth>,
    pub bursts: Vec<BurstTruth>,
    pub moderation: Vec<ModerationTruth>,
    #[serde(skip)]
    index: OnceLock<TruthIndex>,
}

#[derive(Debug, Clone, Default)]
struct TruthIndex {
    users: HashMap<u64, usize>,
    posts: HashMap<u64, usize>,
    creators: HashMap<u64, usize>,
}

impl Truth {
    fn index(&self) -> &TruthIndex {
        self.index.get_or_init(|| TruthIndex {
            users: self.users.iter().enumerate().map(|(i, u)| (u.id, i)).collect(),
            posts: self.posts.iter().enumerate().map(|(i, p)| (p.id, i)).collect(),
            creators: self.creators.iter().enumerate().map(|(i, c)| (c.id, i)).collect(),
        })
    }

    pub fn user(&self, user_id: u64) -> Option<&UserTruth> {
        self.index().users.get(&user_id).map(|&i| &self.users[i])
    }

    pub fn post(&self, post_id: u64) -> Option<&PostTruth> {
        self.index().posts.get(&post_id).map(|&i| &self.posts[i])
    }

    pub fn creator(&self, creator_id: u64) -> Option<&CreatorTruth> {
        self.index().creators.get(&creator_id).map(|&i| &self.creators[i])
    }

    /// The true engagement probability the generator used, `None` for an
    /// unknown user or post.
    pub fn try_engagement_probability(&self, user_id: u64, post_id: u64) -> Option<f64> {
        let user = self.user(user_id)?;
        let post = self.post(post_id)?;
        let popularity = self.creator(post.creator_id)?.popularity;
        let embedding = post.affinity_embedding.as_ref().unwrap_or(&post.embedding);
        Some(self.model.probability(&user.latent, embedding, post.quality, popularity))
    }

    /// The true engagement probability the generator used (0.0 for an unknown
    /// user or post).
    pub fn engagement_probability(&self, user_id: u64, post_id: u64) -> f64 {
        self.try_engagement_probability(user_id, post_id).unwrap_or(0.0)
    }
}

/// Where the truth file of a log lives: `x/world.jsonl` → `x/world.truth.json`;
/// a path without the `.jsonl` extension gets `.truth.json` appended.
pub fn truth_path_for(log: &Path) -> PathBuf {
    if log.extension().is_some_and(|e| e == "jsonl") {
        log.with_extension("truth.json")
    } else {
        let mut s = log.as_os_str().to_os_string();
        s.push(".truth.json");
        PathBuf::from(s)
    }
}

/// Reads a truth file written by [`generate`].
pub fn load_truth(path: impl AsRef<Path>) -> Result<Truth> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).with_context(|| format!("opening truth file {}", path.display()))?;
    let truth: Truth = serde_json::from_reader(std::io::BufReader::new(file))
        .with_context(|| format!("parsing truth file {}", path.display()))?;
    Ok(truth)
}

// ---------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// xoshiro256** seeded through SplitMix64 (also drives the benchmarks' load generator).
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator for `seed`; different `stream`s give independent sequences.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut sm = SplitMix64(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        // Mix the stream in twice so that nearby (seed, stream) pairs diverge.
        sm.0 = sm.next() ^ stream;
        let s = [sm.next(), sm.next(), sm.next(), sm.next()];
        Rng { s }
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); n > 0.
    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform integer in [lo, hi] (inclusive).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as usize) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal (Box–Muller, one value per call).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64(); // (0, 1]
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }

    fn lognormal(&mut self, mu: f64, sigma: f64) -> f64 {
        (mu + sigma * self.normal()).exp()
    }

    /// Gamma(shape, 1) by Marsaglia–Tsang.
    fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u = 1.0 - self.f64();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = 1.0 - self.f64();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        x / (x + y)
    }

    /// Index drawn ∝ weights (cumulative array, last element = total).
    fn weighted(&mut self, cumulative: &[f64]) -> usize {
        let total = *cumulative.last().expect("non-empty weights");
        let r = self.f64() * total;
        cumulative.partition_point(|&c| c <= r).min(cumulative.len() - 1)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .into_iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

/// Rounds to 4 decimals (and turns -0 into 0).
fn r4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4 + 0.0
}

fn r3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3 + 0.0
}

fn unit_vector(v: &mut [f64]) {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

fn gaussian_vector(rng: &mut Rng, dims: usize, scale: f64) -> Vec<f64> {
    (0..dims).map(|_| rng.normal() * scale).collect()
}

// ---------------------------------------------------------------------------
// The world (internal representation)
// ---------------------------------------------------------------------------

struct Topic {
    name: &'static str,
    audience: f64,
    centroid: Vec<f64>,
}

struct Creator {
    id: u64,
    topic: usize,
    popularity: f64,
    user: Option<u32>,
}

struct Post {
    id: u64,
    creator: u32,
    topic: usize,
    upload_ts: i64,
    quality: f64,
    is_public: bool,
    content_type: u8,
    safety: [f64; 4],
    /// The true embedding: engagement follows it.
    embedding: Vec<f64>,
    /// What the upload event carries when it differs from `embedding` (`GenOptions::embedding_noise`).
    published: Option<Vec<f64>>,
    /// Blocked during [block_from, block_until).
    block_from: i64,
    block_until: i64,
    demote_from: i64,
    /// Burst fixture (above or quiet): never moderated.
    fixture: bool,
    /// Quiet fixture: no organic engagement at all.
    no_organic: bool,
}

impl Post {
    fn blocked_at(&self, ts: i64) -> bool {
        ts >= self.block_from && ts < self.block_until
    }
}

struct User {
    id: u64,
    interests: Vec<(usize, f64)>,
    interest_cum: Vec<f64>,
    latent: Vec<f64>,
    activity: f64,
    device: u8,
    region: u8,
}

/// Posts of one topic, in upload order.
struct TopicCatalog {
    posts: Vec<u32>,
    ts: Vec<i64>,
    cum_weight: Vec<f64>,
}

#[derive(Clone, Copy)]
enum EvKind {
    Upload {
        post: u32,
    },
    Moderation {
        post: u32,
        action: ModerationAction,
    },
    Request {
        user: u32,
        device: u8,
    },
    /// `dwell` 0 = no dwell_ms field.
    Engagement {
        user: u32,
        post: u32,
        kind: EngagementKind,
        dwell: u32,
    },
}

#[derive(Clone, Copy)]
struct Ev {
    ts: i64,
    kind: EvKind,
}

struct World {
    start: i64,
    end: i64,
    topics: Vec<Topic>,
    creators: Vec<Creator>,
    posts: Vec<Post>,
    users: Vec<User>,
    bursts: Vec<BurstTruth>,
    moderation: Vec<ModerationTruth>,
}

fn id_scale(opts: &GenOptions) -> u64 {
    let mut s: u64 = 1_000_000;
    while s <= opts.users as u64 || s <= opts.posts as u64 {
        s *= 10;
    }
    s
}

fn validate(opts: &GenOptions) -> Result<()> {
    if !(opts.embedding_noise >= 0.0 && opts.embedding_noise.is_finite()) {
        bail!("embedding noise must be a finite number ≥ 0 (got {})", opts.embedding_noise);
    }
    if opts.dimensions < 2 {
        bail!("dimensions must be at least 2 (got {})", opts.dimensions);
    }
    if !opts.hours.is_finite() || opts.hours <= 0.0 || opts.hours > 24.0 * 365.0 {
        bail!("hours must be a positive number of at most a year (got {})", opts.hours);
    }
    if opts.users > u32::MAX as usize / 2 || opts.posts > u32::MAX as usize / 2 {
        bail!("too many users or posts");
    }
    Ok(())
}

fn build_world(opts: &GenOptions) -> World {
    let dims = opts.dimensions;
    let start = opts.start_ts;
    let span = ((opts.hours * HOUR as f64).round() as i64).max(1);
    let end = start + span;
    let scale = id_scale(opts);

    // Topics.
    let mut rng = Rng::new(opts.seed, STREAM_TOPICS);
    let n_topics = 12 + rng.below(5);
    let topics: Vec<Topic> = TOPIC_NAMES[..n_topics]
        .iter()
        .map(|&name| {
            let mut c = gaussian_vector(&mut rng, dims, 1.0);
            unit_vector(&mut c);
            let centroid = c.into_iter().map(r4).collect();
            let audience = r4(0.3 + rng.gamma(2.0));
            Topic { name, audience, centroid }
        })
        .collect();

    // Creators.
    let mut rng = Rng::new(opts.seed, STREAM_CREATORS);
    let n_creators = if opts.posts == 0 { 0 } else { (opts.posts / 8).max(1) };
    let n_user_creators = ((n_creators as f64 * 0.3).round() as usize).min(opts.users);
    let mut user_pool: Vec<u32> = (0..opts.users as u32).collect();
    // Partial Fisher–Yates: the first n_user_creators entries are a random sample.
    for i in 0..n_user_creators {
        let j = i + rng.below(user_pool.len() - i);
        user_pool.swap(i, j);
    }
    let raw_pop: Vec<f64> = (0..n_creators).map(|_| rng.lognormal(0.0, 1.1)).collect();
    let mean_pop = raw_pop.iter().sum::<f64>() / n_creators.max(1) as f64;
    let mut creators: Vec<Creator> = raw_pop
        .iter()
        .enumerate()
        .map(|(j, &p)| {
            let user = (j < n_user_creators).then(|| user_pool[j]);
            let id = match user {
                Some(u) => u as u64 + 1,
                None => scale + j as u64,
            };
            Creator { id, topic: 0, popularity: r4(p / mean_pop).max(1e-4), user }
        })
        .collect();
    for c in creators.iter_mut() {
        c.topic = rng.below(n_topics);
    }
    drop(user_pool);

    // Posts, in upload order.
    let mut rng = Rng::new(opts.seed, STREAM_POSTS);
    let mut upload_ts: Vec<i64> = (0..opts.posts)
        .map(|_| if rng.chance(0.3) { start + rng.range(0, 10 * MINUTE - 1) } else { start + rng.range(0, span - 1) })
        .collect();
    upload_ts.sort_unstable();
    let creator_cum = cumulative(creators.iter().map(|c| c.popularity.sqrt()));
    let mut posts: Vec<Post> = Vec::with_capacity(opts.posts);
    for (i, &ts) in upload_ts.iter().enumerate() {
        let creator = rng.weighted(&creator_cum);
        let topic = if rng.chance(0.85) { creators[creator].topic } else { rng.below(n_topics) };
        let noise = (0.6 + 0.25 * rng.f64()) / (dims as f64).sqrt();
        let mut e: Vec<f64> = topics[topic].centroid.iter().map(|c| c + rng.normal() * noise).collect();
        unit_vector(&mut e);
        let embedding = e.into_iter().map(r4).collect();
        let quality = r4(rng.beta(2.5, 2.5));
        let is_public = rng.chance(0.95);
        let ct = rng.f64();
        let content_type = if ct < 0.5 {
            0
        } else if ct < 0.8 {
            1
        } else {
            2
        };
        let mut safety = [0.0; 4];
        for s in safety.iter_mut() {
            *s = r3(0.15 * rng.f64().powi(3));
        }
        if rng.chance(0.02) {
            let k = rng.below(4);
            safety[k] = r3(0.6 + 0.4 * rng.f64());
        }
        posts.push(Post {
            id: 10 * scale + i as u64,
            creator: creator as u32,
            topic,
            upload_ts: ts,
            quality,
            is_public,
            content_type,
            safety,
            embedding,
            published: None,
            block_from: i64::MAX,
            block_until: i64::MAX,
            demote_from: i64::MAX,
            fixture: false,
            no_organic: false,
        });
    }
    // Published embeddings, from their own stream so the rest of the world is the same for any noise.
    if opts.embedding_noise > 0.0 {
        let mut rng = Rng::new(opts.seed, STREAM_PUBLISHED);
        let scale = opts.embedding_noise / (dims as f64).sqrt();
        for post in posts.iter_mut() {
            let mut e: Vec<f64> = post.embedding.iter().map(|x| x + rng.normal() * scale).collect();
            unit_vector(&mut e);
            post.published = Some(e.into_iter().map(r4).collect());
        }
    }

    // Users.
    let mut rng = Rng::new(opts.seed, STREAM_USERS);
    let audience_cum = cumulative(topics.iter().map(|t| t.audience));
    let users: Vec<User> = (0..opts.users)
        .map(|i| {
            let r = rng.f64();
            let k = if r < 0.4 {
                1
            } else if r < 0.8 {
                2
            } else {
                3
            }
            .min(n_topics);
            let mut chosen: Vec<usize> = Vec::with_capacity(k);
            while chosen.len() < k {
                let t = rng.weighted(&audience_cum);
                if !chosen.contains(&t) {
                    chosen.push(t);
                }
            }
            let raw: Vec<f64> = chosen.iter().map(|_| rng.gamma(2.0) + 0.2).collect();
            let total: f64 = raw.iter().sum();
            let mut weights: Vec<f64> = raw.iter().map(|w| r4(w / total)).collect();
            let head: f64 = weights[..k - 1].iter().sum();
            weights[k - 1] = r4(1.0 - head);
            let interests: Vec<(usize, f64)> = chosen.into_iter().zip(weights).collect();
            let mut latent = vec![0.0; dims];
            for &(t, w) in &interests {
                for (l, c) in latent.iter_mut().zip(&topics[t].centroid) {
                    *l += w * c;
                }
            }
            unit_vector(&mut latent);
            let latent = latent.into_iter().map(r4).collect();
            let activity = r4(rng.lognormal(-0.545 - 0.5 * 0.81, 0.9).min(1.6));
            let device = if rng.chance(0.45) {
                0
            } else if rng.chance(0.75) {
                1
            } else {
                2
            };
            let region = rng.below(REGIONS.len()) as u8;
            User {
                id: i as u64 + 1,
                interest_cum: cumulative(interests.iter().map(|x| x.1)),
                interests,
                latent,
                activity,
                device,
                region,
            }
        })
        .collect();

    let mut world = World { start, end, topics, creators, posts, users, bursts: Vec::new(), moderation: Vec::new() };
    choose_bursts(&mut world, opts);
    plan_moderation(&mut world, opts);
    world
}

/// Picks the above-threshold and quiet fixture posts and plans their likes
/// (the likes themselves are emitted by `burst_events`).
fn choose_bursts(world: &mut World, opts: &GenOptions) {
    let mut rng = Rng::new(opts.seed, STREAM_BURSTS);
    let n_each = (opts.hours.round() as usize).max(4);
    if world.posts.is_empty() || world.users.is_empty() {
        return;
    }
    let mut pops: Vec<f64> = world.creators.iter().map(|c| c.popularity).collect();
    pops.sort_by(f64::total_cmp);
    let median = pops[pops.len() / 2];
    let latest_upload = world.end - 65 * MINUTE;
    // Candidates per topic: public posts of low-popularity creators uploaded
    // early enough for the burst to fit into the span (relaxed when nothing fits).
    let n_topics = world.topics.len();
    let mut candidates: Vec<Vec<u32>> = vec![Vec::new(); n_topics];
    for (i, p) in world.posts.iter().enumerate() {
        if p.is_public && world.creators[p.creator as usize].popularity <= median && p.upload_ts <= latest_upload {
            candidates[p.topic].push(i as u32);
        }
    }
    if candidates.iter().all(Vec::is_empty) {
        for (i, p) in world.posts.iter().enumerate() {
            if p.is_public {
                candidates[p.topic].push(i as u32);
            }
        }
    }
    let mut order: Vec<usize> = (0..n_topics).collect();
    rng.shuffle(&mut order);
    let mut used_creators: HashSet<u32> = HashSet::new();
    let mut cursor = 0usize;
    for j in 0..2 * n_each {
        let above = j < n_each;
        // Next topic (round robin) that still has a usable candidate.
        let mut picked = None;
        for _ in 0..n_topics {
            let t = order[cursor % n_topics];
            cursor += 1;
            let cands = &candidates[t];
            if cands.is_empty() {
                continue;
            }
            for attempt in 0..40 {
                let i = cands[rng.below(cands.len())] as usize;
                let p = &world.posts[i];
                if p.fixture || (attempt < 30 && used_creators.contains(&p.creator)) {
                    continue;
                }
                picked = Some(i);
                break;
            }
            if picked.is_some() {
                break;
            }
        }
        let Some(i) = picked else { break };
        let post = &mut world.posts[i];
        post.fixture = true;
        post.no_organic = !above;
        used_creators.insert(post.creator);
        let (count, duration) = if above {
            (rng.range(40, 120) as usize, rng.range(MINUTE, 4 * MINUTE))
        } else {
            (rng.range(3, 7) as usize, rng.range(MINUTE, 5 * MINUTE))
        };
        let count = count.min(world.users.len());
        let mut begin = post.upload_ts + rng.range(5 * MINUTE, 60 * MINUTE);
        begin = begin.min(world.end - duration).max(post.upload_ts + MINUTE);
        // Times are drawn in `burst_events`; here only the window is fixed.
        world.bursts.push(BurstTruth {
            post_id: post.id,
            creator_id: world.creators[post.creator as usize].id,
            category: world.topics[post.topic].name.to_string(),
            start_ts: begin,
            end_ts: begin + duration,
            engagements: count as u64,
            above_threshold: above,
        });
    }
}

fn plan_moderation(world: &mut World, opts: &GenOptions) {
    let mut rng = Rng::new(opts.seed, STREAM_MODERATION);
    let end = world.end;
    for p in world.posts.iter_mut() {
        let r = rng.f64();
        if p.fixture {
            continue;
        }
        if r < 0.005 {
            let block = p.upload_ts + rng.range(2 * MINUTE, 30 * MINUTE);
            if block >= end {
                continue;
            }
            p.block_from = block;
            world.moderation.push(ModerationTruth { post_id: p.id, ts: block, action: "block".into() });
            if rng.chance(1.0 / 3.0) {
                let unblock = block + rng.range(10 * MINUTE, 120 * MINUTE);
                if unblock < end {
                    p.block_until = unblock;
                    world.moderation.push(ModerationTruth { post_id: p.id, ts: unblock, action: "unblock".into() });
                }
            }
        } else if r < 0.010 {
            let demote = p.upload_ts + rng.range(5 * MINUTE, 60 * MINUTE);
            if demote < end {
                p.demote_from = demote;
                world.moderation.push(ModerationTruth { post_id: p.id, ts: demote, action: "demote".into() });
            }
        }
    }
}

fn build_catalogs(world: &World) -> Vec<TopicCatalog> {
    let mut cats: Vec<TopicCatalog> = (0..world.topics.len())
        .map(|_| TopicCatalog { posts: Vec::new(), ts: Vec::new(), cum_weight: Vec::new() })
        .collect();
    for (i, p) in world.posts.iter().enumerate() {
        let c = &mut cats[p.topic];
        let w = world.creators[p.creator as usize].popularity * (0.5 + p.quality);
        let acc = c.cum_weight.last().copied().unwrap_or(0.0) + w;
        c.posts.push(i as u32);
        c.ts.push(p.upload_ts);
        c.cum_weight.push(acc);
    }
    cats
}

// ---------------------------------------------------------------------------
// Event simulation
// ---------------------------------------------------------------------------

/// Draws one candidate post of topic `t` visible at `ts` (before eligibility checks).
fn draw_from_topic(rng: &mut Rng, cat: &TopicCatalog, ts: i64) -> Option<u32> {
    let avail = cat.ts.partition_point(|&x| x <= ts);
    if avail == 0 {
        return None;
    }
    let idx = if rng.chance(0.45) {
        let target = ts - rng.exp(30.0 * MINUTE as f64) as i64;
        let lo = cat.ts[..avail].partition_point(|&x| x < target).min(avail - 1);
        lo + rng.below(avail - lo)
    } else {
        let total = cat.cum_weight[avail - 1];
        let r = rng.f64() * total;
        cat.cum_weight[..avail].partition_point(|&c| c <= r).min(avail - 1)
    };
    Some(cat.posts[idx])
}

fn simulate_users(world: &World, cats: &[TopicCatalog], seed: u64, events: &mut Vec<Ev>) {
    let n_topics = world.topics.len();
    let mut seen: HashSet<u32> = HashSet::new();
    let mut followed: HashSet<u32> = HashSet::new();
    for (ui, user) in world.users.iter().enumerate() {
        let mut rng = Rng::new(seed, STREAM_SESSIONS + ui as u64);
        seen.clear();
        followed.clear();
        let u = ui as u32;
        let mean_gap = HOUR as f64 / user.activity.max(0.01);
        let extra_gap = (mean_gap - 0.55 * HOUR as f64).max(0.05 * HOUR as f64);
        let mut t = world.start + (rng.f64() * mean_gap) as i64;
        while t < world.end {
            let device = if rng.chance(0.85) { user.device } else { rng.below(DEVICES.len()) as u8 };
            events.push(Ev { ts: t, kind: EvKind::Request { user: u, device } });
            let n_views = 5 + (rng.exp(7.5) as usize).min(25);
            let mut cur = t + rng.range(300, 1_500);
            for _ in 0..n_views {
                let Some(pi) = pick_post(&mut rng, world, cats, (user, u), &seen, cur, n_topics) else {
                    cur += rng.range(500, 2_000);
                    continue;
                };
                seen.insert(pi);
                cur = view_post(&mut rng, world, user, u, pi, cur, &mut followed, events);
                cur += rng.range(300, 2_500);
            }
            t = cur + 30 * MINUTE + rng.exp(extra_gap) as i64;
        }
    }
}

fn pick_post(
    rng: &mut Rng,
    world: &World,
    cats: &[TopicCatalog],
    (user, u): (&User, u32),
    seen: &HashSet<u32>,
    ts: i64,
    n_topics: usize,
) -> Option<u32> {
    for _ in 0..12 {
        let topic =
            if rng.chance(0.75) { user.interests[rng.weighted(&user.interest_cum)].0 } else { rng.below(n_topics) };
        let Some(pi) = draw_from_topic(rng, &cats[topic], ts) else {
            continue;
        };
        let p = &world.posts[pi as usize];
        if !p.is_public || p.no_organic || p.blocked_at(ts) || seen.contains(&pi) {
            continue;
        }
        if world.creators[p.creator as usize].user == Some(u) {
            continue;
        }
        if ts >= p.demote_from && rng.chance(0.7) {
            continue;
        }
        return Some(pi);
    }
    None
}

/// Emits the engagements of one view starting at `begin`; returns the
/// timestamp of its last event (dwell is capped at 30 s, so even a 30-view
/// session stays well under 30 minutes).
#[allow(clippy::too_many_arguments)]
fn view_post(
    rng: &mut Rng,
    world: &World,
    user: &User,
    u: u32,
    pi: u32,
    begin: i64,
    followed: &mut HashSet<u32>,
    events: &mut Vec<Ev>,
) -> i64 {
    let post = &world.posts[pi as usize];
    let creator = &world.creators[post.creator as usize];
    let p = DEFAULT_MODEL.probability(&user.latent, &post.embedding, post.quality, creator.popularity);
    let engage = |kind: EngagementKind, ts: i64, dwell: u32| Ev {
        ts,
        kind: EvKind::Engagement { user: u, post: pi, kind, dwell },
    };
    let liked = rng.chance(p);
    if liked {
        let dwell = (rng.lognormal((3_500.0f64).ln(), 0.6) * (1.0 + 1.5 * p)).clamp(1_000.0, 30_000.0) as i64;
        let end = begin + dwell;
        events.push(engage(EngagementKind::Like, begin + rng.range(dwell / 4, dwell - 1), 0));
        for (kind, prob) in
            [(EngagementKind::Comment, 0.12), (EngagementKind::Save, 0.10), (EngagementKind::Share, 0.06)]
        {
            if rng.chance(prob) {
                events.push(engage(kind, begin + rng.range(dwell / 2, dwell - 1), 0));
            }
        }
        if rng.chance(0.06) && followed.insert(post.creator) {
            events.push(engage(EngagementKind::Follow, end - 1, 0));
        }
        events.push(engage(EngagementKind::View, end, dwell as u32));
        return end;
    }
    let max_safety = post.safety.iter().copied().fold(0.0, f64::max);
    let q = 1.0 - p;
    let p_negative = 0.02 * q * q + 0.08 * max_safety * max_safety;
    let r = rng.f64();
    if r < p_negative {
        let dwell = rng.range(500, 3_000);
        let end = begin + dwell;
        events.push(engage(EngagementKind::View, end, dwell as u32));
        let report = rng.chance(0.2 + 0.5 * max_safety);
        let at = end + rng.range(200, 1_500);
        events.push(engage(if report { EngagementKind::Report } else { EngagementKind::Hide }, at, 0));
        at
    } else if r < p_negative + 0.35 * q {
        let dwell = rng.range(300, 1_500);
        let end = begin + dwell;
        events.push(engage(EngagementKind::View, end, dwell as u32));
        events.push(engage(EngagementKind::Skip, end + 1, 0));
        end + 1
    } else {
        let dwell = (rng.lognormal((2_500.0f64).ln(), 0.6) * (0.5 + 2.0 * p)).clamp(400.0, 30_000.0) as i64;
        let end = begin + dwell;
        events.push(engage(EngagementKind::View, end, dwell as u32));
        end
    }
}

fn burst_events(world: &World, seed: u64, events: &mut Vec<Ev>) -> Vec<BurstTruth> {
    let post_index: HashMap<u64, u32> =
        world.posts.iter().enumerate().filter(|(_, p)| p.fixture).map(|(i, p)| (p.id, i as u32)).collect();
    // Users who already engaged organically with a fixture post are not
    // drafted into its burst (so a burst like is never a duplicate).
    let mut organic: HashSet<(u32, u32)> = HashSet::new();
    for e in events.iter() {
        if let EvKind::Engagement { user, post, .. } = e.kind {
            if world.posts[post as usize].fixture {
                organic.insert((post, user));
            }
        }
    }
    let n_users = world.users.len();
    let mut bursts = Vec::with_capacity(world.bursts.len());
    for (bi, b) in world.bursts.iter().enumerate() {
        let mut rng = Rng::new(seed, STREAM_SESSIONS - 1 - bi as u64);
        let pi = post_index[&b.post_id];
        let creator_user = world.creators[world.posts[pi as usize].creator as usize].user;
        let eligible = (0..n_users as u32).filter(|&u| Some(u) != creator_user && !organic.contains(&(pi, u))).count();
        let n = (b.engagements as usize).min(eligible);
        let mut chosen: HashSet<u32> = HashSet::new();
        let mut who: Vec<u32> = Vec::with_capacity(n);
        while who.len() < n {
            let u = rng.below(n_users) as u32;
            if Some(u) != creator_user && !organic.contains(&(pi, u)) && chosen.insert(u) {
                who.push(u);
            }
        }
        let mut times: Vec<i64> = (0..n).map(|_| rng.range(b.start_ts, b.end_ts)).collect();
        times.sort_unstable();
        // Pin the first and last like to the planned window.
        if n >= 1 {
            times[0] = b.start_ts;
        }
        if n >= 2 {
            times[n - 1] = b.end_ts;
        }
        for (&u, &ts) in who.iter().zip(&times) {
            events
                .push(Ev { ts, kind: EvKind::Engagement { user: u, post: pi, kind: EngagementKind::Like, dwell: 0 } });
        }
        let mut truth = b.clone();
        truth.engagements = n as u64;
        if n > 0 {
            truth.start_ts = times[0];
            truth.end_ts = times[n - 1];
        }
        bursts.push(truth);
    }
    bursts
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/// Appends `x` with at most 4 decimals and no trailing zeros.
fn push_float(buf: &mut String, x: f64) {
    let start = buf.len();
    let _ = write!(buf, "{:.4}", x);
    if buf[start..].contains('.') {
        while buf.ends_with('0') {
            buf.pop();
        }
        if buf.ends_with('.') {
            buf.pop();
        }
    }
    if &buf[start..] == "-0" {
        buf.truncate(start);
        buf.push('0');
    }
}

fn write_event(buf: &mut String, world: &World, seed: u64, seq: u64, request_no: &mut u64, ev: &Ev) {
    buf.clear();
    match ev.kind {
        EvKind::Upload { post } => {
            let p = &world.posts[post as usize];
            let _ = write!(
                buf,
                "{{\"type\":\"upload\",\"ts\":{},\"event_id\":\"{}-{}\",\"post_id\":{},\"creator_id\":{},\"embedding\":[",
                ev.ts, seed, seq, p.id, world.creators[p.creator as usize].id
            );
            for (k, &x) in p.published.as_ref().unwrap_or(&p.embedding).iter().enumerate() {
                if k > 0 {
                    buf.push(',');
                }
                push_float(buf, x);
            }
            let _ = write!(
                buf,
                "],\"category\":\"{}\",\"content_type\":\"{}\",\"is_public\":{},\"safety\":{{\"nudity\":",
                world.topics[p.topic].name, CONTENT_TYPES[p.content_type as usize], p.is_public
            );
            push_float(buf, p.safety[0]);
            buf.push_str(",\"violence\":");
            push_float(buf, p.safety[1]);
            buf.push_str(",\"hate\":");
            push_float(buf, p.safety[2]);
            buf.push_str(",\"borderline\":");
            push_float(buf, p.safety[3]);
            buf.push_str("}}\n");
        }
        EvKind::Moderation { post, action } => {
            let _ = writeln!(
                buf,
                "{{\"type\":\"moderation\",\"ts\":{},\"event_id\":\"{}-{}\",\"post_id\":{},\"action\":\"{}\"}}",
                ev.ts,
                seed,
                seq,
                world.posts[post as usize].id,
                action.name()
            );
        }
        EvKind::Request { user, device } => {
            *request_no += 1;
            let u = &world.users[user as usize];
            let _ = writeln!(
                buf,
                "{{\"type\":\"request\",\"ts\":{},\"event_id\":\"{}-{}\",\"request_id\":\"r-{}\",\"user_id\":{},\"k\":50,\"context\":{{\"device\":\"{}\",\"region\":\"{}\"}}}}",
                ev.ts, seed, seq, request_no, u.id, DEVICES[device as usize], REGIONS[u.region as usize]
            );
        }
        EvKind::Engagement { user, post, kind, dwell } => {
            let _ = write!(
                buf,
                "{{\"type\":\"engagement\",\"ts\":{},\"event_id\":\"{}-{}\",\"user_id\":{},\"post_id\":{},\"kind\":\"{}\"",
                ev.ts,
                seed,
                seq,
                world.users[user as usize].id,
                world.posts[post as usize].id,
                kind.name()
            );
            if dwell > 0 {
                let _ = write!(buf, ",\"dwell_ms\":{}", dwell);
            }
            buf.push_str("}\n");
        }
    }
}

fn truth_of(world: &World, opts: &GenOptions, bursts: Vec<BurstTruth>) -> Truth {
    let topic_name = |t: usize| world.topics[t].name.to_string();
    Truth {
        seed: opts.seed,
        options: opts.clone(),
        end_ts: world.end,
        model: DEFAULT_MODEL,
        topics: world
            .topics
            .iter()
            .map(|t| TopicTruth { name: t.name.to_string(), audience: t.audience, centroid: t.centroid.clone() })
            .collect(),
        creators: world
            .creators
            .iter()
            .map(|c| CreatorTruth {
                id: c.id,
                topic: topic_name(c.topic),
                popularity: c.popularity,
                is_user: c.user.is_some(),
            })
            .collect(),
        posts: world
            .posts
            .iter()
            .map(|p| PostTruth {
                id: p.id,
                creator_id: world.creators[p.creator as usize].id,
                topic: topic_name(p.topic),
                upload_ts: p.upload_ts,
                quality: p.quality,
                is_public: p.is_public,
                content_type: CONTENT_TYPES[p.content_type as usize].to_string(),
                embedding: p.published.as_ref().unwrap_or(&p.embedding).clone(),
                affinity_embedding: p.published.as_ref().map(|_| p.embedding.clone()),
            })
            .collect(),
        users: world
            .users
            .iter()
            .map(|u| UserTruth {
                id: u.id,
                interests: u.interests.iter().map(|&(t, w)| Interest { topic: topic_name(t), weight: w }).collect(),
                latent: u.latent.clone(),
                activity: u.activity,
                device: DEVICES[u.device as usize].to_string(),
                region: REGIONS[u.region as usize].to_string(),
            })
            .collect(),
        bursts,
        moderation: world.moderation.clone(),
        index: OnceLock::new(),
    }
}

/// Generates the world described by `opts`, writes the event log to `out`
/// and the truth file to [`truth_path_for`]`(out)` (creating missing parent
/// directories). Deterministic: the same options give byte-identical files.
pub fn generate(opts: &GenOptions, out: &Path) -> Result<GenSummary> {
    validate(opts)?;
    let world = build_world(opts);
    let cats = build_catalogs(&world);

    let expected = (opts.users as f64 * opts.hours * 12.0) as usize + opts.posts * 2;
    let mut events: Vec<Ev> = Vec::with_capacity(expected);
    for (i, p) in world.posts.iter().enumerate() {
        events.push(Ev { ts: p.upload_ts, kind: EvKind::Upload { post: i as u32 } });
    }
    let post_index: HashMap<u64, u32> = world.posts.iter().enumerate().map(|(i, p)| (p.id, i as u32)).collect();
    for m in &world.moderation {
        let action = ModerationAction::parse(&m.action).unwrap_or(ModerationAction::Demote);
        events.push(Ev { ts: m.ts, kind: EvKind::Moderation { post: post_index[&m.post_id], action } });
    }
    drop(post_index);
    simulate_users(&world, &cats, opts.seed, &mut events);
    let bursts = burst_events(&world, opts.seed, &mut events);
    // Stable: ties keep generation order.
    events.sort_by_key(|e| e.ts);

    if let Some(parent) = out.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut buf = String::with_capacity(1024);
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut counts = [0u64; 4];
    let mut kind_counts = [0u64; 9];
    let mut request_no = 0u64;
    for (i, ev) in events.iter().enumerate() {
        write_event(&mut buf, &world, opts.seed, i as u64 + 1, &mut request_no, ev);
        w.write_all(buf.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
        match ev.kind {
            EvKind::Upload { .. } => counts[0] += 1,
            EvKind::Moderation { .. } => counts[1] += 1,
            EvKind::Request { .. } => counts[2] += 1,
            EvKind::Engagement { kind, .. } => {
                counts[3] += 1;
                kind_counts[kind as usize] += 1;
            }
        }
    }
    w.flush().with_context(|| format!("writing {}", out.display()))?;
    drop(w);
    for (name, n) in ["upload", "moderation", "request", "engagement"].iter().zip(counts) {
        if n > 0 {
            by_type.insert(name.to_string(), n);
        }
    }
    let kinds = [
        EngagementKind::View,
        EngagementKind::Like,
        EngagementKind::Comment,
        EngagementKind::Save,
        EngagementKind::Share,
        EngagementKind::Follow,
        EngagementKind::Skip,
        EngagementKind::Hide,
        EngagementKind::Report,
    ];
    for k in kinds {
        let n = kind_counts[k as usize];
        if n > 0 {
            by_kind.insert(k.name().to_string(), n);
        }
    }

    let truth = truth_of(&world, opts, bursts);
    let truth_path = truth_path_for(out);
    let file = std::fs::File::create(&truth_path).with_context(|| format!("creating {}", truth_path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    serde_json::to_writer(&mut w, &truth).with_context(|| format!("writing {}", truth_path.display()))?;
    w.write_all(b"\n")?;
    w.flush().with_context(|| format!("writing {}", truth_path.display()))?;

    Ok(GenSummary { events: events.len() as u64, by_type, by_kind, bursts: truth.bursts.len(), truth_path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("feedflow-gen-test-{}-{}", std::process::id(), name));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
        fn path(&self, file: &str) -> PathBuf {
            self.0.join(file)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn small(seed: u64) -> GenOptions {
        GenOptions { seed, users: 400, posts: 1_200, hours: 3.0, ..GenOptions::default() }
    }

    fn parse_log(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
            .collect()
    }

    fn count_kind(events: &[Value], kind: &str) -> usize {
        events.iter().filter(|e| e["type"] == "engagement" && e["kind"] == kind).count()
    }

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        let dir = Scratch::new("determinism");
        let (a, b, c) = (dir.path("a.jsonl"), dir.path("b.jsonl"), dir.path("c.jsonl"));
        let sa = generate(&small(7), &a).unwrap();
        let sb = generate(&small(7), &b).unwrap();
        let sc = generate(&small(8), &c).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(std::fs::read(truth_path_for(&a)).unwrap(), std::fs::read(truth_path_for(&b)).unwrap());
        assert_eq!(sa.by_type, sb.by_type);
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
        assert_ne!(std::fs::read(truth_path_for(&a)).unwrap(), std::fs::read(truth_path_for(&c)).unwrap());
        assert_ne!(sa.events, 0);
        assert_ne!(sc.events, 0);
    }

    #[test]
    fn every_line_is_a_valid_ordered_event() {
        let dir = Scratch::new("format");
        let opts = small(3);
        let out = dir.path("world.jsonl");
        let summary = generate(&opts, &out).unwrap();
        let events = parse_log(&out);
        assert_eq!(events.len() as u64, summary.events);
        let mut last_ts = i64::MIN;
        let mut ids = HashSet::new();
        let mut request_ids = HashSet::new();
        let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
        let kinds = ["view", "like", "comment", "save", "share", "follow", "skip", "hide", "report"];
        for (i, e) in events.iter().enumerate() {
            let ts = e["ts"].as_i64().expect("ts");
            assert!(ts >= last_ts, "line {i} out of order");
            last_ts = ts;
            assert_eq!(e["event_id"].as_str().unwrap(), format!("{}-{}", opts.seed, i + 1));
            assert!(ids.insert(e["event_id"].as_str().unwrap().to_string()));
            let ty = e["type"].as_str().unwrap();
            *by_type.entry(ty.to_string()).or_default() += 1;
            match ty {
                "upload" => {
                    e["post_id"].as_u64().unwrap();
                    e["creator_id"].as_u64().unwrap();
                    let emb = e["embedding"].as_array().unwrap();
                    assert_eq!(emb.len(), opts.dimensions);
                    let v: Vec<f64> = emb.iter().map(|x| x.as_f64().unwrap()).collect();
                    assert!(v.iter().all(|x| x.is_finite()));
                    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                    assert!((norm - 1.0).abs() < 0.01, "norm {norm}");
                    assert!(TOPIC_NAMES.contains(&e["category"].as_str().unwrap()));
                    assert!(CONTENT_TYPES.contains(&e["content_type"].as_str().unwrap()));
                    e["is_public"].as_bool().unwrap();
                    for k in ["nudity", "violence", "hate", "borderline"] {
                        let s = e["safety"][k].as_f64().unwrap();
                        assert!((0.0..=1.0).contains(&s));
                    }
                }
                "engagement" => {
                    e["user_id"].as_u64().unwrap();
                    e["post_id"].as_u64().unwrap();
                    let kind = e["kind"].as_str().unwrap();
                    assert!(kinds.contains(&kind), "{kind}");
                    if kind == "view" {
                        assert!(e["dwell_ms"].as_u64().unwrap() > 0);
                    }
                }
                "request" => {
                    assert!(request_ids.insert(e["request_id"].as_str().unwrap().to_string()));
                    assert!(e["request_id"].as_str().unwrap().starts_with("r-"));
                    e["user_id"].as_u64().unwrap();
                    assert_eq!(e["k"], 50);
                    assert!(DEVICES.contains(&e["context"]["device"].as_str().unwrap()));
                    assert!(REGIONS.contains(&e["context"]["region"].as_str().unwrap()));
                }
                "moderation" => {
                    e["post_id"].as_u64().unwrap();
                    assert!(["block", "unblock", "demote"].contains(&e["action"].as_str().unwrap()));
                }
                other => panic!("unknown type {other}"),
            }
        }
        assert_eq!(by_type, summary.by_type);
        assert_eq!(by_type["upload"], opts.posts as u64);
    }

    #[test]
    fn organic_engagement_respects_visibility() {
        let dir = Scratch::new("visibility");
        let out = dir.path("world.jsonl");
        generate(&small(5), &out).unwrap();
        let truth = load_truth(truth_path_for(&out)).unwrap();
        let events = parse_log(&out);
        let mut blocked: HashMap<u64, Vec<(i64, bool)>> = HashMap::new();
        for e in events.iter().filter(|e| e["type"] == "moderation") {
            let action = e["action"].as_str().unwrap();
            if action != "demote" {
                blocked
                    .entry(e["post_id"].as_u64().unwrap())
                    .or_default()
                    .push((e["ts"].as_i64().unwrap(), action == "block"));
            }
        }
        let mut follows = HashSet::new();
        for e in events.iter().filter(|e| e["type"] == "engagement") {
            let ts = e["ts"].as_i64().unwrap();
            let post = truth.post(e["post_id"].as_u64().unwrap()).unwrap();
            let user = e["user_id"].as_u64().unwrap();
            assert!(post.is_public, "engagement on a private post");
            assert!(post.upload_ts <= ts, "engagement before upload");
            assert_ne!(post.creator_id, user, "engagement with own post");
            // Views start before `ts`; the post must not have been blocked then.
            let state =
                blocked.get(&post.id).and_then(|v| v.iter().rev().find(|(t, _)| *t <= ts - 60_000)).map(|x| x.1);
            assert_ne!(state, Some(true), "engagement on a blocked post");
            if e["kind"] == "follow" {
                assert!(follows.insert((user, post.creator_id)), "double follow");
            }
        }
        assert!(truth.moderation.iter().all(|m| !truth.bursts.iter().any(|b| b.post_id == m.post_id)));

        // Sessions: a request opens each one, sessions last < 30 min and are
        // separated by >= 30 min of silence (burst likes are not session events).
        let fixtures: HashSet<u64> = truth.bursts.iter().map(|b| b.post_id).collect();
        let mut per_user: BTreeMap<u64, Vec<(i64, bool)>> = BTreeMap::new();
        for e in &events {
            let is_request = e["type"] == "request";
            let organic = e["type"] == "engagement" && !fixtures.contains(&e["post_id"].as_u64().unwrap());
            if is_request || organic {
                per_user
                    .entry(e["user_id"].as_u64().unwrap())
                    .or_default()
                    .push((e["ts"].as_i64().unwrap(), is_request));
            }
        }
        let mut sessions = 0;
        for evs in per_user.values() {
            assert!(evs[0].1, "first event of a user is a request");
            let mut session_start = evs[0].0;
            for w in evs.windows(2) {
                let gap = w[1].0 - w[0].0;
                if w[1].1 {
                    assert!(gap >= 30 * MINUTE, "new session after {gap} ms");
                    session_start = w[1].0;
                    sessions += 1;
                } else {
                    assert!(gap < 30 * MINUTE);
                    assert!(w[1].0 - session_start < 30 * MINUTE);
                }
            }
        }
        assert!(sessions > 100);
    }

    #[test]
    fn bursts_are_above_and_quiet_posts_stay_below() {
        let dir = Scratch::new("bursts");
        let opts = GenOptions { users: 600, ..small(11) };
        let out = dir.path("world.jsonl");
        let summary = generate(&opts, &out).unwrap();
        let truth = load_truth(truth_path_for(&out)).unwrap();
        let events = parse_log(&out);
        let above: Vec<&BurstTruth> = truth.bursts.iter().filter(|b| b.above_threshold).collect();
        let below: Vec<&BurstTruth> = truth.bursts.iter().filter(|b| !b.above_threshold).collect();
        assert_eq!(summary.bursts, truth.bursts.len());
        assert_eq!(above.len(), 4);
        assert_eq!(below.len(), 4);
        let categories: HashSet<&str> = above.iter().map(|b| b.category.as_str()).collect();
        assert_eq!(categories.len(), above.len(), "above bursts in distinct categories");
        let median = {
            let mut p: Vec<f64> = truth.creators.iter().map(|c| c.popularity).collect();
            p.sort_by(f64::total_cmp);
            p[p.len() / 2]
        };
        for b in &above {
            let post = truth.post(b.post_id).unwrap();
            assert!(post.is_public);
            assert_eq!(post.creator_id, b.creator_id);
            assert!(truth.creator(b.creator_id).unwrap().popularity <= median);
            assert!(b.end_ts - b.start_ts <= 4 * MINUTE);
            assert!(b.end_ts - post.upload_ts < 2 * HOUR);
            assert!(b.start_ts >= post.upload_ts + 5 * MINUTE);
            let likers: HashSet<u64> = events
                .iter()
                .filter(|e| {
                    e["type"] == "engagement"
                        && e["kind"] == "like"
                        && e["post_id"].as_u64() == Some(b.post_id)
                        && (b.start_ts..=b.end_ts).contains(&e["ts"].as_i64().unwrap())
                })
                .map(|e| e["user_id"].as_u64().unwrap())
                .collect();
            assert!(likers.len() >= 40, "burst on {} has {} distinct likers", b.post_id, likers.len());
            assert!(likers.len() as u64 >= b.engagements);
        }
        for b in &below {
            let mut ts: Vec<i64> = events
                .iter()
                .filter(|e| e["type"] == "engagement" && e["post_id"].as_u64() == Some(b.post_id))
                .map(|e| {
                    assert_eq!(e["kind"], "like", "quiet post got a non-like");
                    e["ts"].as_i64().unwrap()
                })
                .collect();
            ts.sort_unstable();
            assert_eq!(ts.len() as u64, b.engagements);
            assert!((3..=7).contains(&ts.len()));
            for (i, &t) in ts.iter().enumerate() {
                let in_window = ts[i..].iter().take_while(|&&x| x < t + 5 * MINUTE).count();
                assert!(in_window < 10);
            }
            assert!(b.end_ts - b.start_ts <= 5 * MINUTE);
        }
    }

    #[test]
    fn default_scale_volumes() {
        let dir = Scratch::new("volume");
        let opts = GenOptions::default();
        let out = dir.path("world.jsonl");
        let s = generate(&opts, &out).unwrap();
        assert!((100_000..=250_000).contains(&s.events), "{} events", s.events);
        let share = |t: &str| s.by_type.get(t).copied().unwrap_or(0) as f64 / s.events as f64;
        assert!((0.85..=0.95).contains(&share("engagement")), "engagements {}", share("engagement"));
        assert!((0.03..=0.08).contains(&share("request")), "requests {}", share("request"));
        assert_eq!(s.by_type["upload"], opts.posts as u64);
        let moderation = s.by_type.get("moderation").copied().unwrap_or(0);
        assert!((10..=150).contains(&moderation), "{moderation} moderation events");
        let like_rate = s.by_kind["like"] as f64 / s.by_kind["view"] as f64;
        assert!((0.10..=0.25).contains(&like_rate), "like rate {like_rate}");
        for k in ["comment", "save", "share", "follow", "skip", "hide", "report"] {
            assert!(s.by_kind[k] > 0, "no {k}");
            assert!(s.by_kind[k] < s.by_kind["like"] || k == "skip");
        }
        let views_per_request = s.by_kind["view"] as f64 / s.by_type["request"] as f64;
        assert!((5.0..=30.0).contains(&views_per_request));
    }

    #[test]
    fn volume_scales_with_users_and_hours() {
        let dir = Scratch::new("scaling");
        let base = GenOptions { users: 300, posts: 900, hours: 2.0, ..GenOptions::default() };
        let a = generate(&base, &dir.path("a.jsonl")).unwrap();
        let b = generate(&GenOptions { users: 1_200, hours: 4.0, ..base.clone() }, &dir.path("b.jsonl")).unwrap();
        let ratio = b.by_type["engagement"] as f64 / a.by_type["engagement"] as f64;
        assert!((5.5..=11.0).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn embedding_noise_changes_only_the_published_vectors() {
        let dir = Scratch::new("noise");
        let (clean, noisy) = (dir.path("clean.jsonl"), dir.path("noisy.jsonl"));
        generate(&small(5), &clean).unwrap();
        generate(&GenOptions { embedding_noise: 1.0, ..small(5) }, &noisy).unwrap();
        let (a, b) = (parse_log(&clean), parse_log(&noisy));
        assert_eq!(a.len(), b.len());
        let truth = load_truth(truth_path_for(&noisy)).unwrap();
        let mut cosines = Vec::new();
        for (x, y) in a.iter().zip(&b) {
            let (mut x, mut y) = (x.clone(), y.clone());
            if x["type"] == "upload" {
                let vector = |v: &serde_json::Value| -> Vec<f64> {
                    v["embedding"].as_array().unwrap().iter().map(|c| c.as_f64().unwrap()).collect()
                };
                let (true_vector, published) = (vector(&x), vector(&y));
                let post = truth.post(y["post_id"].as_u64().unwrap()).unwrap();
                assert_eq!(post.embedding, published, "the truth lists what the log carries");
                assert_eq!(post.affinity_embedding.as_ref(), Some(&true_vector), "and what engagement follows");
                cosines.push(cosine(&true_vector, &published));
                x["embedding"] = serde_json::Value::Null;
                y["embedding"] = serde_json::Value::Null;
            }
            assert_eq!(x, y, "only upload embeddings differ");
        }
        let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
        assert!((0.6..0.8).contains(&mean), "mean cosine of published to true vectors {mean}");
        assert!(generate(&GenOptions { embedding_noise: f64::NAN, ..small(5) }, &dir.path("bad.jsonl")).is_err());
    }

    #[test]
    fn truth_round_trips_and_oracle_is_sane() {
        let dir = Scratch::new("truth");
        let opts = small(21);
        let out = dir.path("world.jsonl");
        generate(&opts, &out).unwrap();
        let path = truth_path_for(&out);
        let truth = load_truth(&path).unwrap();
        assert_eq!(truth.options, opts);
        assert_eq!(truth.model, DEFAULT_MODEL);
        assert!((12..=16).contains(&truth.topics.len()));
        assert_eq!(truth.users.len(), opts.users);
        assert_eq!(truth.posts.len(), opts.posts);
        // Serializing the loaded truth gives the same bytes back.
        let again = serde_json::to_string(&truth).unwrap() + "\n";
        assert_eq!(again.as_bytes(), std::fs::read(&path).unwrap().as_slice());
        for u in &truth.users {
            let sum: f64 = u.interests.iter().map(|i| i.weight).sum();
            assert!((sum - 1.0).abs() < 1e-3 && (1..=3).contains(&u.interests.len()));
            assert_eq!(u.latent.len(), opts.dimensions);
        }
        // Embeddings in the truth are exactly those of the log.
        let events = parse_log(&out);
        for e in events.iter().filter(|e| e["type"] == "upload") {
            let post = truth.post(e["post_id"].as_u64().unwrap()).unwrap();
            let emb: Vec<f64> = e["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert_eq!(emb, post.embedding);
            assert_eq!(e["category"].as_str().unwrap(), post.topic);
        }
        // Probabilities in (0, 1), higher on the user's own topics.
        let (mut own, mut n_own, mut other, mut n_other) = (0.0, 0, 0.0, 0);
        for u in truth.users.iter().take(100) {
            let topics: HashSet<&str> = u.interests.iter().map(|i| i.topic.as_str()).collect();
            for p in truth.posts.iter().step_by(7) {
                let pr = truth.engagement_probability(u.id, p.id);
                assert!(pr > 0.0 && pr < 1.0);
                if topics.contains(p.topic.as_str()) {
                    own += pr;
                    n_own += 1;
                } else {
                    other += pr;
                    n_other += 1;
                }
            }
        }
        let (own, other) = (own / n_own as f64, other / n_other as f64);
        assert!(own > 3.0 * other, "own {own} other {other}");
        assert_eq!(truth.engagement_probability(0, truth.posts[0].id), 0.0);
        assert!(truth.try_engagement_probability(1, 42).is_none());
    }

    #[test]
    fn likes_follow_the_oracle() {
        let dir = Scratch::new("calibration");
        let out = dir.path("world.jsonl");
        generate(&small(4), &out).unwrap();
        let truth = load_truth(truth_path_for(&out)).unwrap();
        let events = parse_log(&out);
        let fixtures: HashSet<u64> = truth.bursts.iter().map(|b| b.post_id).collect();
        let likes: HashSet<(u64, u64)> = events
            .iter()
            .filter(|e| e["type"] == "engagement" && e["kind"] == "like")
            .map(|e| (e["user_id"].as_u64().unwrap(), e["post_id"].as_u64().unwrap()))
            .collect();
        let (mut lo, mut lo_liked, mut hi, mut hi_liked, mut sum_p) = (0, 0, 0, 0, 0.0);
        for e in events.iter().filter(|e| e["type"] == "engagement" && e["kind"] == "view") {
            let key = (e["user_id"].as_u64().unwrap(), e["post_id"].as_u64().unwrap());
            if fixtures.contains(&key.1) {
                continue;
            }
            let p = truth.engagement_probability(key.0, key.1);
            let liked = likes.contains(&key) as usize;
            sum_p += p;
            if p < 0.1 {
                lo += 1;
                lo_liked += liked;
            } else if p > 0.3 {
                hi += 1;
                hi_liked += liked;
            }
        }
        let lo_rate = lo_liked as f64 / lo as f64;
        let hi_rate = hi_liked as f64 / hi as f64;
        assert!(hi_rate > 4.0 * lo_rate, "hi {hi_rate} lo {lo_rate}");
        // Calibration: the number of organic likes matches the oracle's expectation.
        let organic_likes = likes.iter().filter(|k| !fixtures.contains(&k.1)).count() as f64;
        assert!((organic_likes / sum_p - 1.0).abs() < 0.1, "likes {organic_likes} expected {sum_p}");
        assert!(count_kind(&events, "like") as f64 >= organic_likes);
    }

    #[test]
    fn truth_path_naming() {
        assert_eq!(truth_path_for(Path::new("x/world.jsonl")), PathBuf::from("x/world.truth.json"));
        assert_eq!(truth_path_for(Path::new("world.jsonl")), PathBuf::from("world.truth.json"));
        assert_eq!(truth_path_for(Path::new("x/world")), PathBuf::from("x/world.truth.json"));
        assert_eq!(truth_path_for(Path::new("x/world.json")), PathBuf::from("x/world.json.truth.json"));
    }

    #[test]
    fn bad_options_and_tiny_worlds() {
        let dir = Scratch::new("edge");
        let out = dir.path("w.jsonl");
        assert!(generate(&GenOptions { dimensions: 0, ..small(1) }, &out).is_err());
        assert!(generate(&GenOptions { hours: 0.0, ..small(1) }, &out).is_err());
        assert!(generate(&GenOptions { hours: f64::NAN, ..small(1) }, &out).is_err());
        let s = generate(&GenOptions { users: 0, posts: 0, hours: 0.5, ..small(1) }, &out).unwrap();
        assert_eq!(s.events, 0);
        let s = generate(&GenOptions { users: 5, posts: 3, hours: 0.25, dimensions: 8, ..small(1) }, &out).unwrap();
        assert_eq!(s.by_type["upload"], 3);
        load_truth(truth_path_for(&out)).unwrap();
        // Nested output directories are created.
        generate(&GenOptions { users: 20, posts: 40, hours: 1.0, ..small(2) }, &dir.path("a/b/w.jsonl")).unwrap();
        assert!(dir.path("a/b/w.truth.json").exists());
    }

    #[test]
    fn prng_is_stable() {
        // Pins the generator so that accidental changes to it are noticed.
        let mut r = Rng::new(1, 0);
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut r2 = Rng::new(1, 0);
        assert_eq!(first, (0..3).map(|_| r2.next_u64()).collect::<Vec<_>>());
        let mut r = Rng::new(9, 3);
        let mean = (0..20_000).map(|_| r.gamma(2.0)).sum::<f64>() / 20_000.0;
        assert!((mean - 2.0).abs() < 0.1);
        let mean = (0..20_000).map(|_| r.normal()).sum::<f64>() / 20_000.0;
        assert!(mean.abs() < 0.05);
        let b = (0..20_000).map(|_| r.beta(2.5, 2.5)).sum::<f64>() / 20_000.0;
        assert!((b - 0.5).abs() < 0.02);
    }

    #[test]
    fn float_formatting_is_compact() {
        let mut s = String::new();
        for x in [0.12, -0.0, 1.0, -0.25, 0.1234, -0.00001] {
            push_float(&mut s, x);
            s.push(' ');
        }
        assert_eq!(s, "0.12 0 1 -0.25 0.1234 0 ");
    }
}
