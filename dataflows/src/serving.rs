//! Records of the request funnel: a request with its user's context, candidate rows, and the served answer.
//!
//! The funnel runs in three stages, each at the worker that owns its state:
//! 1. the user's worker ([`crate::users`]) turns a request into a [`RequestContext`]
//!    (vectors, recent positives, what to exclude, affinities), as of the end of the previous tick;
//! 2. every worker's post registry ([`crate::candidates`]) answers it from its shards with
//!    [`CandidateRow`]s (ANN, related, fresh, followed, popular, explore, and young engaged posts the trending pool may hold);
//! 3. the user's worker again ([`crate::rank`]) merges the rows, filters, reads the chosen posts'
//!    content from its own user side, scores them with the ranker and builds the page.

use feedflow_connectors::event::Position;
use serde::{Deserialize, Serialize};

/// Where a candidate came from (DESIGN.md §6), in the order used to name an item's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    /// Creators the user follows.
    Followed,
    /// Co-engaged with the user's recent positives.
    Related,
    /// Nearest to the user's query vector.
    Ann,
    /// The trending pool.
    Trending,
    /// Recent uploads.
    Fresh,
    /// Most engaged, decayed with the popular half-life.
    Popular,
    /// Exploration sample.
    Explore,
}

impl Source {
    /// Every source, in naming order.
    pub const ALL: [Source; 7] = [
        Source::Followed,
        Source::Related,
        Source::Ann,
        Source::Trending,
        Source::Fresh,
        Source::Popular,
        Source::Explore,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Source::Followed => "followed",
            Source::Related => "related",
            Source::Ann => "ann",
            Source::Trending => "trending",
            Source::Fresh => "fresh",
            Source::Popular => "popular",
            Source::Explore => "explore",
        }
    }
}

/// A request and what the user's worker knows about the user at the end of the previous tick.
/// The model guard compares the model's and the fallback's best this many (HR@10's cut).
pub const GUARD_TOP: usize = 10;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestContext {
    /// The request's tick.
    pub tick: u64,
    /// Request time (ms).
    pub ts: i64,
    /// Where the request was read; identifies it within a run.
    pub position: Position,
    /// Caller's id.
    pub request_id: String,
    /// Who asks.
    pub user_id: u64,
    /// Page size.
    pub k: u32,
    /// Device, when given.
    pub device: Option<String>,
    /// Answered normally but not remembered and not logged as impressions.
    pub shadow: bool,
    /// normalize(long_term + w · session); empty when the user has no interest vector yet.
    pub query: Vec<f32>,
    /// Long-term vector (may be empty).
    pub long_term: Vec<f32>,
    /// Session delta (may be empty).
    pub session: Vec<f32>,
    /// The user's most recent positives, newest first (anchors for `related`).
    pub anchors: Vec<u64>,
    /// Posts the user engaged with (the newest `serving.engaged_memory`) or hid, sorted.
    pub excluded: Vec<u64>,
    /// Creators hidden by the user, sorted.
    pub hidden_creators: Vec<u64>,
    /// Creators the user follows, sorted.
    pub followed: Vec<u64>,
    /// Share of the user's decayed positive weight per category, sorted by name.
    pub category_affinity: Vec<(String, f64)>,
    /// Decayed signed engagement weight per creator, sorted by creator.
    pub creator_affinity: Vec<(u64, f64)>,
    /// Engagements seen from this user.
    pub actions: u64,
    /// Positive engagements seen from this user.
    pub positives: u64,
    /// A model-guard probe, not a request: the post this user engaged with (like or stronger) in
    /// the context's tick. Ranking scores it with the model and the fallback and answers nothing.
    pub guard_target: Option<u64>,
    /// Time spent building this context (µs; not part of any output).
    pub build_us: u32,
}

impl RequestContext {
    /// Whether a post is excluded for this user.
    pub fn excludes(&self, post_id: u64, creator_id: u64) -> bool {
        creator_id == self.user_id
            || self.excluded.binary_search(&post_id).is_ok()
            || self.hidden_creators.binary_search(&creator_id).is_ok()
    }

    /// The user's affinity to a category (0 when unknown).
    pub fn category_affinity(&self, category: &str) -> f64 {
        match self.category_affinity.binary_search_by(|(c, _)| c.as_str().cmp(category)) {
            Ok(i) => self.category_affinity[i].1,
            Err(_) => 0.0,
        }
    }

    /// The user's affinity to a creator (0 when unknown).
    pub fn creator_affinity(&self, creator_id: u64) -> f64 {
        match self.creator_affinity.binary_search_by_key(&creator_id, |(c, _)| *c) {
            Ok(i) => self.creator_affinity[i].1,
            Err(_) => 0.0,
        }
    }

    /// Whether the user follows a creator.
    pub fn follows(&self, creator_id: u64) -> bool {
        self.followed.binary_search(&creator_id).is_ok()
    }

    /// A user with no positive engagement yet gets popular, trending, fresh and exploration only.
    pub fn cold_start(&self) -> bool {
        self.positives == 0
    }
}

/// How a post relates to a user's anchors (their recent positives, newest first), as a shard counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RelatedFigures {
    /// Σ co-engagement count with the anchors / sqrt(the post's co-engagement degree).
    pub score: f64,
    /// The same with each anchor weighted by recency (`feedflow_operators::co_counts::Related::recent`).
    pub recent: f64,
    /// The summed co-engagement count.
    pub count: i64,
    /// How many anchors it was co-engaged with.
    pub anchors: u32,
}

/// A post offered by one shard for one request: what only the shard knows.
///
/// The post's category, content type and embedding are not shipped: the user's worker keeps
/// every upload and ranking reads them there ([`crate::users::Users::known_post`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateRow {
    /// The post.
    pub post_id: u64,
    /// Its creator.
    pub creator_id: u64,
    /// Upload time (ms).
    pub upload_ts: i64,
    /// Weighted positive engagement, decayed with the popular half-life, as of the request's state.
    pub popularity: f64,
    /// Weighted positive engagement over the trending window (thousandths).
    pub recent_milli: i64,
    /// Positive engagements over the trending window.
    pub recent_count: i64,
    /// Highest of the post's safety scores.
    pub safety_max: f32,
    /// Demoted by moderation.
    pub demoted: bool,
    /// ANN: cosine distance to the query.
    pub ann_distance: Option<f32>,
    /// Related: the post's figures against the user's anchors.
    pub related: Option<RelatedFigures>,
    /// Fresh: among the shard's newest uploads younger than the fresh age.
    pub fresh: bool,
    /// Followed: by a creator the user follows, recent.
    pub followed: bool,
    /// Popular: among the shard's most engaged.
    pub popular: bool,
    /// Explore: the sampling key (smaller is picked first).
    pub explore_key: Option<u64>,
}

/// One worker's answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// The request it answers.
    pub request: Position,
    /// The requesting user (routes the answer back).
    pub user_id: u64,
    /// Time the worker spent on the request (µs).
    pub shard_us: u32,
    /// The candidates of this worker's shards.
    pub rows: Vec<CandidateRow>,
}

/// One line of the `responses` output and, unless shadow, of `impressions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// Request time (ms).
    pub ts: i64,
    /// The user asking (the response's key on the `responses` topic).
    pub user_id: u64,
    /// What was degraded (`ranker_fallback`, `partial_prefix`, both comma-separated), if anything.
    pub degraded: Option<String>,
    /// Where the request was read (orders the output).
    pub position: Position,
    /// The response JSON.
    pub response: String,
    /// The impression JSON (none for shadow requests).
    pub impression: Option<String>,
    /// Whether the fallback scorer answered.
    pub fallback: bool,
    /// Service time: context + slowest shard + ranking (µs).
    pub service_us: u32,
    /// Candidates ranked.
    pub candidates: u32,
}

/// A request's deterministic impression id: a hash of what the request says (not of where it was read,
/// so a log and the same events from Kafka give the same ids).
pub fn impression_id(request_id: &str, user_id: u64, ts: i64) -> String {
    use feedflow_operators::hash::{hash_bytes, mix64};
    let h = mix64(hash_bytes(request_id.as_bytes()) ^ mix64(user_id) ^ mix64(ts as u64).rotate_left(17));
    format!("imp-{h:016x}")
}

/// Cosine similarity of two vectors (0 when either is empty or zero, or their lengths differ).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    cosine_with(a, squared_norm(a), b, squared_norm(b))
}

/// Sum of squares, accumulated in order.
pub fn squared_norm(v: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for x in v {
        sum += x * x;
    }
    sum
}

/// [`cosine`] given both squared norms ([`squared_norm`]): for one vector compared with several.
pub fn cosine_with(a: &[f32], a_squared: f32, b: &[f32], b_squared: f32) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let mut dot = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
    }
    if a_squared <= 0.0 || b_squared <= 0.0 {
        0.0
    } else {
        dot / (a_squared.sqrt() * b_squared.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dot product and both norms in one pass: the formula the features were trained with.
    fn one_pass_cosine(a: &[f32], b: &[f32]) -> f32 {
        if a.len() != b.len() || a.is_empty() {
            return 0.0;
        }
        let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
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

    #[test]
    fn cosine_matches_the_one_pass_formula_bit_for_bit() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for len in [0usize, 1, 3, 8, 64] {
            for zero in [false, true] {
                let a: Vec<f32> = (0..len).map(|_| next()).collect();
                let b: Vec<f32> = (0..len).map(|_| if zero { 0.0 } else { next() }).collect();
                let want = one_pass_cosine(&a, &b).to_bits();
                assert_eq!(cosine(&a, &b).to_bits(), want, "len {len}");
                assert_eq!(cosine_with(&a, squared_norm(&a), &b, squared_norm(&b)).to_bits(), want, "len {len}");
            }
        }
        let (a, b) = ([1.0f32, 2.0], [1.0f32]);
        assert_eq!(cosine(&a, &b), 0.0);
        assert_eq!(cosine(&a, &b), one_pass_cosine(&a, &b));
    }
}
