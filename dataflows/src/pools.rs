//! The fresh pool: recommendable uploads younger than 30 min.
//!
//! (The popular list, the top weighted engagement over 24 h, is kept by the post
//! registry's serving state: `candidates::ShardServing::popular`.)

use crate::model::PostInfo;
use differential_dataflow::VecCollection;
use feedflow_connectors::config::Config;
use feedflow_operators::expire::ExpireAfter;

/// Recommendable posts younger than `pools.fresh_max_age_ms`.
pub fn fresh_pool<'scope>(
    config: &Config,
    eligible: VecCollection<'scope, u64, PostInfo, isize>,
) -> VecCollection<'scope, u64, PostInfo, isize> {
    eligible.expire_after(|p: &PostInfo| p.upload_tick, config.ticks(config.pools.fresh_max_age_ms))
}
