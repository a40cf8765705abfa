//! The ranker's feature vector per (user, post, context) and the linear fallback scorer.
//!
//! The names and their order are the model's input contract: they are written
//! into every impression and into the model's metadata, and the model is
//! refused at load when its metadata lists other names (no train/serve skew).

use crate::serving::{cosine_with, squared_norm, CandidateRow, RequestContext};
use crate::users::KnownPost;

/// Feature names, in column order.
pub const FEATURES: [&str; 30] = [
    "sim_long_term",     // cosine(post, long-term vector)
    "sim_session",       // cosine(post, session delta)
    "sim_query",         // cosine(post, query vector)
    "retrieval_rank",    // 1 / (1 + best rank over the sources that proposed it)
    "src_ann",           // proposed by ANN (0/1)
    "src_related",       // by related
    "src_trending",      // by trending
    "src_fresh",         // by fresh
    "src_followed",      // by followed
    "src_popular",       // by popular
    "src_explore",       // by exploration
    "related_strength",  // related score / the request's best related score (0 when not related)
    "related_recent",    // the same with the newest anchors weighted most (0 when not related)
    "related_count",     // ln(1 + co-engagement count with the user's anchors)
    "related_anchors",   // share of the user's anchors co-engaged with the post
    "popularity",        // ln(1 + decayed weighted engagement)
    "popularity_share",  // decayed engagement / the request's most popular candidate's
    "recent_engagement", // ln(1 + weighted engagement over the trending window)
    "velocity_ratio",    // ln(1 + velocity ratio) when in the trending pool, else 0
    "age_hours",         // ln(1 + post age in hours)
    "creator_affinity",  // sign · ln(1 + |decayed engagement weight of the user on the creator|)
    "category_affinity", // share of the user's decayed positive weight in the post's category
    "follows_creator",   // the user follows the creator (0/1)
    "ct_reel",           // content type one-hot (other types: all zero)
    "ct_photo",
    "ct_carousel",
    "hour_sin", // hour of day of the request, on the circle
    "hour_cos",
    "user_activity", // ln(1 + engagements seen from the user)
    "safety_max",    // highest safety score of the post
];

/// Head names, in output column order (DESIGN.md §6).
pub const HEADS: [&str; 7] = ["like", "comment", "save", "share", "follow", "hide", "dwell"];

/// Which sources proposed a candidate, with its best global rank among them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Proposed {
    /// One flag per [`crate::serving::Source::ALL`] entry.
    pub by: [bool; 7],
    /// Best rank (0-based) over the proposing sources.
    pub best_rank: usize,
    /// Velocity ratio when in the trending pool.
    pub velocity_ratio: Option<f64>,
}

fn signed_log(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

/// What the features of a request's candidates share, computed once per request: the squared
/// norms of its vectors, and the best related score and popularity among its candidates. The
/// latter make scale-free features: a log with a few hundred events a day and one with
/// thousands a second give counts that differ by orders of magnitude, their shares do not.
#[derive(Clone, Copy, Debug)]
pub struct QueryNorms {
    long_term: f32,
    session: f32,
    query: f32,
    best_related: f64,
    best_recent: f64,
    best_popularity: f64,
}

impl QueryNorms {
    /// The norms of `context`'s long-term, session and query vectors, and the maxima over `rows`
    /// (the candidates chosen for ranking).
    pub fn of<'a>(context: &RequestContext, rows: impl Iterator<Item = &'a CandidateRow>) -> Self {
        let (mut best_related, mut best_recent, mut best_popularity) = (0.0f64, 0.0f64, 0.0f64);
        for row in rows {
            best_related = best_related.max(row.related.map_or(0.0, |r| r.score));
            best_recent = best_recent.max(row.related.map_or(0.0, |r| r.recent));
            best_popularity = best_popularity.max(row.popularity);
        }
        Self {
            long_term: squared_norm(&context.long_term),
            session: squared_norm(&context.session),
            query: squared_norm(&context.query),
            best_related,
            best_recent,
            best_popularity,
        }
    }
}

/// `x / best`, 0 when `best` is not positive.
fn share(x: f64, best: f64) -> f64 {
    if best > 0.0 {
        (x / best).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// Writes the features of one candidate (the shard's row and the post's content) into `out`
/// (length [`FEATURES`]).
pub fn features(
    context: &RequestContext,
    norms: &QueryNorms,
    row: &CandidateRow,
    post: &KnownPost,
    proposed: &Proposed,
    out: &mut [f32],
) {
    use crate::serving::Source;
    let flag = |s: Source| proposed.by[Source::ALL.iter().position(|x| *x == s).unwrap_or(0)] as u8 as f32;
    let age_h = ((context.ts - row.upload_ts).max(0) as f64) / 3_600_000.0;
    let hour = ((context.ts.rem_euclid(86_400_000)) as f64 / 3_600_000.0) * std::f64::consts::TAU / 24.0;
    let row_squared = squared_norm(&post.embedding);
    let related = flag(Source::Related) as f64;
    let figures = row.related.unwrap_or_default();
    let values: [f64; 30] = [
        cosine_with(&post.embedding, row_squared, &context.long_term, norms.long_term) as f64,
        cosine_with(&post.embedding, row_squared, &context.session, norms.session) as f64,
        cosine_with(&post.embedding, row_squared, &context.query, norms.query) as f64,
        1.0 / (1.0 + proposed.best_rank as f64),
        flag(Source::Ann) as f64,
        flag(Source::Related) as f64,
        flag(Source::Trending) as f64,
        flag(Source::Fresh) as f64,
        flag(Source::Followed) as f64,
        flag(Source::Popular) as f64,
        flag(Source::Explore) as f64,
        // Only when `related` kept it: a shard may report counts beyond the global top-k.
        related * share(figures.score, norms.best_related),
        related * share(figures.recent, norms.best_recent),
        related * (figures.count.max(0) as f64).ln_1p(),
        related * share(figures.anchors as f64, context.anchors.len() as f64),
        row.popularity.max(0.0).ln_1p(),
        share(row.popularity, norms.best_popularity),
        (row.recent_milli.max(0) as f64 / 1000.0).ln_1p(),
        proposed.velocity_ratio.map_or(0.0, |r| r.max(0.0).ln_1p()),
        age_h.ln_1p(),
        signed_log(context.creator_affinity(row.creator_id)),
        context.category_affinity(&post.category),
        context.follows(row.creator_id) as u8 as f64,
        (&*post.content_type == "reel") as u8 as f64,
        (&*post.content_type == "photo") as u8 as f64,
        (&*post.content_type == "carousel") as u8 as f64,
        hour.sin(),
        hour.cos(),
        (context.actions as f64).ln_1p(),
        row.safety_max as f64,
    ];
    for (o, v) in out.iter_mut().zip(values) {
        *o = if v.is_finite() { v as f32 } else { 0.0 };
    }
}

/// Weights of the linear fallback scorer, per feature (DESIGN.md §7: used when the model is missing or fails).
/// Similarity to the user's interests dominates, then affinities and engagement.
pub const FALLBACK_WEIGHTS: [f32; 30] = [
    1.0, 0.5, 3.0, 0.5, // similarities, retrieval rank
    0.0, 0.3, 0.2, 0.0, 0.3, 0.0, 0.0, // sources
    2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.2, 0.3,
    -0.1, // related (share, recent share, count, anchors), popularity (log, share), recent, velocity, age
    0.3, 1.0, 0.5, // creator, category, follows
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, // content type, hour, activity
    0.0, // safety (demoted separately)
];

/// The fallback score of one feature row.
pub fn fallback_score(features: &[f32]) -> f64 {
    features.iter().zip(FALLBACK_WEIGHTS).map(|(f, w)| (*f as f64) * w as f64).sum()
}
