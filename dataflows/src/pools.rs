//! The fresh pool (recommendable uploads younger than 30 min) and the popular list (top weighted engagement over 24 h).

use crate::model::{PostInfo, Velocity};
use differential_dataflow::{AsCollection, VecCollection};
use feedflow_connectors::config::Config;
use feedflow_operators::expire::ExpireAfter;
use feedflow_operators::sliding_window::SlidingWindow;
use feedflow_operators::sum_by_key::SumByKey;
use std::cmp::Reverse;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

/// A popular post: best first (highest weighted engagement, then lowest id).
pub type PopularEntry = (Reverse<i64>, u64);

/// Recommendable posts younger than `pools.fresh_max_age_ms`.
pub fn fresh_pool<'scope>(
    config: &Config,
    eligible: VecCollection<'scope, u64, PostInfo, isize>,
) -> VecCollection<'scope, u64, PostInfo, isize> {
    eligible.expire_after(|p: &PostInfo| p.upload_tick, config.ticks(config.pools.fresh_max_age_ms))
}

/// Weighted positive engagement over `pools.popular_window_ms` of every post,
/// keyed so that the natural order is best first. The popular list is the
/// first `pools.popular_top_n` of these that are recommendable, read from an
/// ordered index: a differential top-k over one key would re-sort every post
/// at every tick, and a semijoin with the recommendable posts would rearrange
/// every change, where the reader can skip the few blocked posts instead.
pub fn popularity<'scope>(
    config: &Config,
    engagements: StreamVec<'scope, u64, Velocity>,
) -> VecCollection<'scope, u64, PopularEntry, isize> {
    let window = config.ticks(config.pools.popular_window_ms);
    engagements
        .map(|e| (e.post_id, e.tick, e.weight_milli))
        .as_collection()
        .sliding_window(window)
        .sum_by_key()
        .map(|(post_id, weight)| (Reverse(weight), post_id))
}
