//! Velocity scores and the trending pool, maintained incrementally in differential dataflow.
//!
//! - recent(post): weighted positive engagements in the last `window` ticks,
//!   and their count (a sliding window: each engagement is retracted when it expires);
//! - baseline(creator): weighted positive engagements over `baseline_window`,
//!   expressed per `window`;
//! - velocity_ratio = recent / max(baseline, floor), an exact fraction;
//! - the pool: recommendable posts younger than `max_age` with ratio ≥ threshold
//!   and count ≥ `min_count`, the top `top_n` of each category by ratio.

use crate::model::{weight_milli, PostInfo, Ratio, TrendEntry, Velocity};
use differential_dataflow::{AsCollection, VecCollection};
use feedflow_connectors::config::Config;
use feedflow_operators::expire::ExpireAfter;
use feedflow_operators::sliding_window::SlidingWindow;
use feedflow_operators::sum_by_key::SumByKey;
use feedflow_operators::top_k::TopK;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

/// The trending pool: `(category, entry)` records.
pub type TrendingPool<'scope> = VecCollection<'scope, u64, (String, TrendEntry), isize>;

/// Builds the velocity computation and the pool from positive engagements and
/// the collection of recommendable posts.
pub fn trending_pool<'scope>(
    config: &Config,
    engagements: StreamVec<'scope, u64, Velocity>,
    eligible: VecCollection<'scope, u64, PostInfo, isize>,
) -> TrendingPool<'scope> {
    let t = config.trending.clone();
    let window = config.ticks(t.window_ms);
    let baseline_window = config.ticks(t.baseline_window_ms);
    let max_age = config.ticks(t.max_age_ms);
    let floor_milli = weight_milli(t.baseline_floor);
    let threshold_milli = weight_milli(t.ratio_threshold);
    let min_count = t.min_count;

    // Only positive engagements make a post trend (the registry emits only those).
    let recent = engagements
        .clone()
        .map(|e| (e.post_id, e.tick, (e.weight_milli, 1i64)))
        .as_collection()
        .sliding_window(window)
        .sum_by_key()
        .filter(move |(_, (_, count))| *count >= min_count);

    let baseline = engagements
        .map(|e| (e.creator_id, e.tick, e.weight_milli))
        .as_collection()
        .sliding_window(baseline_window)
        .sum_by_key();

    // Young recommendable posts, arranged once by post and read twice: by the first join (for
    // the creator) and, after the ratio threshold, by the last (for the category), so the
    // category string travels only with the posts that pass the threshold.
    let young = eligible
        .expire_after(|p: &PostInfo| p.upload_tick, max_age)
        .map(|p| (p.post_id, (p.creator_id, p.category)))
        .arrange_by_key();

    recent
        .join_core(young.clone(), |post_id, &(recent_milli, count), (creator_id, _)| {
            Some((*creator_id, (*post_id, recent_milli, count)))
        })
        .join_core(baseline.arrange_by_key(), move |creator_id, &(post_id, recent_milli, count), &baseline_milli| {
            let ratio = Ratio::velocity(recent_milli, baseline_milli, t.window_ms, t.baseline_window_ms, floor_milli);
            ratio
                .at_least(threshold_milli)
                .then_some((post_id, TrendEntry { ratio, post_id, creator_id: *creator_id, recent_milli, count }))
        })
        .join_core(young, |_, entry, (_, category)| Some((category.clone(), entry.clone())))
        .top_k_per_key(t.top_n)
}
