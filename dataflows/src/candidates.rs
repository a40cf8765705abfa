//! The shard side of the funnel: per-post serving state and each worker's candidates for a request.
//!
//! Beside the index, the registry keeps what the candidate sources read, all
//! as of the end of the last applied tick: engagement sums per post (over the
//! trending window, and decayed for popularity), recommendable posts ordered by
//! upload time (per logical shard, for fresh and exploration) and by creator (for
//! followed), and the co-engagement counts for `related` (per logical shard). A request is
//! answered before the events of its own tick are applied. Every source is a
//! top-k whose union over shards gives the same global top-k for any number
//! of workers (exploration and ANN work per logical shard for that reason).

use crate::posts::{shard_of, PostState, Registry};
use crate::serving::{CandidateRow, Partial, RelatedFigures, RequestContext};
use feedflow_connectors::config::Config;
use feedflow_operators::co_counts::{best_by_both, CoCounts};
use feedflow_operators::decayed_top::DecayedTop;
use feedflow_operators::hash::{hash_bytes, mix64, FastMap};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

/// Sums of weights per key over a sliding window of ticks.
#[derive(Clone, Debug, Default)]
pub struct WindowSums {
    window: u64,
    /// key → (sum of weights, number of additions)
    sums: FastMap<u64, (i64, i64)>,
    added: VecDeque<(u64, u64, i64)>,
    /// Keys with at least this many additions in the window, when kept.
    counted: Option<(i64, BTreeSet<u64>)>,
}

impl WindowSums {
    /// A window of `window` ticks.
    pub fn new(window: u64) -> Self {
        Self { window: window.max(1), ..Self::default() }
    }

    /// Also keeps the keys with at least `min_count` additions in the window (see [`Self::counted`]).
    pub fn with_min_count(mut self, min_count: i64) -> Self {
        // Keys in the window have at least one addition.
        self.counted = Some((min_count.max(1), BTreeSet::new()));
        self
    }

    fn change(&mut self, key: u64, weight: i64, count: i64) {
        let entry = self.sums.entry(key).or_insert((0, 0));
        let count_before = entry.1;
        entry.0 += weight;
        entry.1 += count;
        let n = entry.1;
        if n == 0 {
            self.sums.remove(&key);
        }
        if let Some((min_count, keys)) = self.counted.as_mut() {
            match (count_before >= *min_count, n >= *min_count) {
                (false, true) => {
                    keys.insert(key);
                }
                (true, false) => {
                    keys.remove(&key);
                }
                _ => {}
            }
        }
    }

    /// Adds `weight` to `key` at `tick` (ticks must not decrease).
    pub fn add(&mut self, tick: u64, key: u64, weight: i64) {
        self.change(key, weight, 1);
        self.added.push_back((tick, key, weight));
    }

    /// Drops additions that are out of the window as of `now` (tick + window ≤ now).
    pub fn expire(&mut self, now: u64) {
        while let Some(&(tick, key, weight)) = self.added.front() {
            if tick + self.window > now {
                break;
            }
            self.added.pop_front();
            self.change(key, -weight, -1);
        }
    }

    /// (sum, count) of a key.
    pub fn get(&self, key: u64) -> (i64, i64) {
        self.sums.get(&key).copied().unwrap_or((0, 0))
    }

    /// Keys with at least the `min_count` of [`Self::with_min_count`] additions in the window, ascending
    /// (none when not kept).
    pub fn counted(&self) -> impl Iterator<Item = u64> + '_ {
        self.counted.iter().flat_map(|(_, keys)| keys.iter().copied())
    }
}

/// What the candidate sources read, for the shards of one worker.
pub struct ShardServing {
    /// Positive weight per post over the trending window.
    pub recent: WindowSums,
    /// Positive weight per post, decayed with the popular half-life, ordered.
    pub popular: DecayedTop,
    /// Recommendable posts per logical shard, by (upload time, post).
    pub uploads: BTreeMap<u32, BTreeSet<(i64, u64)>>,
    /// Recommendable posts per creator, by (upload time, post).
    pub by_creator: FastMap<u64, BTreeSet<(i64, u64)>>,
    /// Co-engagement counts per logical shard: anchor → posts of the shard. Per shard, not per
    /// worker, so their bound (`serving.related_max_pairs`) keeps the same pairs for any worker count.
    pub related: BTreeMap<u32, CoCounts>,
    related_window: u64,
    related_max_pairs: usize,
    shards: u32,
    tick_ms: u64,
    trending_max_age: u64,
    fresh_max_age: u64,
    followed_max_age_ms: i64,
}

impl ShardServing {
    /// Empty state with the windows of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            recent: WindowSums::new(config.ticks(config.trending.window_ms)).with_min_count(config.trending.min_count),
            popular: DecayedTop::new(config.ticks(config.pools.popular_half_life_ms)),
            uploads: BTreeMap::new(),
            by_creator: FastMap::default(),
            related: BTreeMap::new(),
            related_window: config.ticks(config.serving.related_window_ms),
            related_max_pairs: config.serving.related_max_pairs,
            shards: config.index.shards,
            tick_ms: config.engine.tick_ms,
            trending_max_age: config.ticks(config.trending.max_age_ms),
            fresh_max_age: config.ticks(config.pools.fresh_max_age_ms),
            followed_max_age_ms: config.serving.followed_max_age_ms as i64,
        }
    }

    /// Brings the windows to the end of tick `now`.
    pub fn expire(&mut self, now: u64) {
        self.recent.expire(now);
        for related in self.related.values_mut() {
            related.expire(now);
        }
    }

    /// Counts one tick's co-engagement pairs of logical shard `shard`; empties `pairs`.
    pub fn add_pairs(&mut self, shard: u32, tick: u64, pairs: &mut Vec<(u64, u64)>) {
        let (window, max_pairs) = (self.related_window, self.related_max_pairs);
        self.related.entry(shard).or_insert_with(|| CoCounts::bounded(window, max_pairs)).add_batch(tick, pairs);
    }

    /// A post became recommendable (`true`) or stopped being so.
    pub fn set_recommendable(&mut self, post_id: u64, post: &PostState, recommendable: bool) {
        let key = (post.upload_ts, post_id);
        let shard = shard_of(post_id, self.shards);
        if recommendable {
            self.uploads.entry(shard).or_default().insert(key);
            self.by_creator.entry(post.creator_id).or_default().insert(key);
        } else {
            if let Some(set) = self.uploads.get_mut(&shard) {
                set.remove(&key);
            }
            if let Some(set) = self.by_creator.get_mut(&post.creator_id) {
                set.remove(&key);
                if set.is_empty() {
                    self.by_creator.remove(&post.creator_id);
                }
            }
        }
    }

    /// A positive engagement of `weight_milli` on a post at `tick`.
    pub fn engaged(&mut self, tick: u64, post_id: u64, weight_milli: i64) {
        self.recent.add(tick, post_id, weight_milli);
        self.popular.add(tick, post_id, weight_milli as f64 / 1000.0);
    }
}

/// A row for a post, with its engagement figures as of `tick` and no source yet (its content is added at ranking).
fn new_row(serving: &ShardServing, tick: u64, post_id: u64, post: &PostState) -> CandidateRow {
    let popularity = serving.popular.value(post_id, tick);
    let (recent_milli, recent_count) = serving.recent.get(post_id);
    let safety = &post.safety;
    CandidateRow {
        post_id,
        creator_id: post.creator_id,
        upload_ts: post.upload_ts,
        popularity,
        recent_milli,
        recent_count,
        safety_max: safety.nudity.max(safety.violence).max(safety.hate).max(safety.borderline),
        demoted: post.demoted,
        ann_distance: None,
        related: None,
        fresh: false,
        followed: false,
        popular: false,
        explore_key: None,
    }
}

/// A deterministic per-request key for exploration sampling.
fn explore_key(context: &RequestContext, post_id: u64) -> u64 {
    mix64(post_id ^ hash_bytes(context.request_id.as_bytes()) ^ mix64(context.user_id) ^ context.ts as u64)
}

impl Registry {
    /// This worker's candidates for a request at `context.tick`, from the state of earlier ticks.
    pub fn candidates(&self, context: &RequestContext, config: &Config) -> Partial {
        let started = Instant::now();
        let s = &config.serving;
        let serving = &self.serving;
        let state_tick = context.tick.saturating_sub(1);
        let mut rows: BTreeMap<u64, CandidateRow> = BTreeMap::new();
        let usable = |post_id: u64| -> Option<&PostState> {
            let post = self.posts.get(&post_id)?;
            (post.recommendable() && !context.excludes(post_id, post.creator_id)).then_some(post)
        };
        macro_rules! row {
            ($post_id:expr, $post:expr) => {
                rows.entry($post_id).or_insert_with(|| new_row(serving, state_tick, $post_id, $post))
            };
        }

        // ANN over each logical shard of this worker.
        // A cold-start user (no positive engagement yet) gets popular, trending, fresh and exploration only.
        if !context.cold_start() && !context.query.is_empty() && s.ann_k > 0 {
            // The index holds recommendable posts only, so the search's filter (called for every
            // node visited) needs just the user's exclusions: no post lookup. The user's own posts
            // and those of hidden creators come from `by_creator`, which holds this worker's
            // recommendable posts like its shards do.
            let mut unwanted: Vec<u64> = context
                .hidden_creators
                .iter()
                .chain(std::iter::once(&context.user_id))
                .filter_map(|creator| serving.by_creator.get(creator))
                .flat_map(|posts| posts.iter().map(|(_, post_id)| *post_id))
                .collect();
            unwanted.sort_unstable();
            let filter =
                |key: u64| context.excluded.binary_search(&key).is_err() && unwanted.binary_search(&key).is_err();
            let mut hits: Vec<(f32, u64)> = Vec::new();
            for shard in self.shards.values() {
                if let Ok(found) = shard.filtered_search(&context.query, s.ann_k, filter) {
                    hits.extend(found.into_iter().map(|(post_id, distance)| (distance, post_id)));
                }
            }
            // Only this worker's top-k can be in the global top-k (ranking orders ANN rows the
            // same way), and ANN rows beyond it are used for nothing else: they stay here.
            hits.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut kept = 0;
            for (distance, post_id) in hits {
                if kept == s.ann_k {
                    break;
                }
                if let Some(post) = usable(post_id) {
                    let r = row!(post_id, post);
                    if r.ann_distance.is_none() {
                        kept += 1;
                    }
                    r.ann_distance = Some(r.ann_distance.map_or(distance, |d| d.min(distance)));
                }
            }
        }
        // Related: posts of this worker co-engaged with the user's anchors. Shards hold disjoint
        // posts, so the worker's top-k is within the union of its shards' top-k.
        if !context.anchors.is_empty() && s.related_k > 0 {
            let mut found = Vec::new();
            for related in serving.related.values() {
                found.extend(related.related_by_both(&context.anchors, s.related_k, |p| usable(p).is_some()));
            }
            // The worker's top-k by each score, as ranking takes the global ones.
            for r in best_by_both(found, s.related_k) {
                if let Some(post) = usable(r.item) {
                    row!(r.item, post).related =
                        Some(RelatedFigures { score: r.score, recent: r.recent, count: r.count, anchors: r.anchors });
                }
            }
        }
        // Fresh: the newest recommendable uploads still younger than the fresh age.
        let mut newest: Vec<(i64, u64)> = Vec::new();
        for uploads in serving.uploads.values() {
            newest.extend(
                uploads
                    .iter()
                    .rev()
                    .take_while(|(ts, _)| (*ts as u64 / serving.tick_ms.max(1)) + serving.fresh_max_age > state_tick)
                    .filter(|(_, p)| usable(*p).is_some())
                    .take(s.fresh_k),
            );
        }
        newest.sort_by(|a, b| b.cmp(a));
        for (_, post_id) in newest.into_iter().take(s.fresh_k) {
            if let Some(post) = usable(post_id) {
                row!(post_id, post).fresh = true;
            }
        }
        // Followed: recent posts of followed creators.
        if !context.followed.is_empty() && s.followed_k > 0 {
            let since = context.ts - serving.followed_max_age_ms;
            let mut recent: Vec<(i64, u64)> = Vec::new();
            for creator in &context.followed {
                if let Some(posts) = serving.by_creator.get(creator) {
                    recent.extend(
                        posts
                            .iter()
                            .rev()
                            .take_while(|(ts, _)| *ts > since)
                            .filter(|(_, p)| usable(*p).is_some())
                            .take(s.followed_k),
                    );
                }
            }
            recent.sort_by(|a, b| b.cmp(a));
            for (_, post_id) in recent.into_iter().take(s.followed_k) {
                if let Some(post) = usable(post_id) {
                    row!(post_id, post).followed = true;
                }
            }
        }
        // Popular: the highest decayed engagement.
        for (post_id, post) in
            serving.popular.best(state_tick).filter_map(|(p, _)| usable(p).map(|post| (p, post))).take(s.popular_k)
        {
            row!(post_id, post).popular = true;
        }
        // Exploration: per logical shard, a deterministic sample of its newest uploads. Keys are
        // drawn for all of them; only the smallest few are checked against the filters.
        if s.explore_k > 0 {
            let mut explored: Vec<(u64, u64)> = Vec::new();
            let mut sample: Vec<(u64, u64)> = Vec::with_capacity(s.explore_scan.min(65_536));
            for uploads in serving.uploads.values() {
                sample.clear();
                sample.extend(uploads.iter().rev().take(s.explore_scan).map(|(_, p)| (explore_key(context, *p), *p)));
                let mut shortlist = (2 * s.explore_k).min(sample.len());
                loop {
                    if shortlist < sample.len() {
                        sample.select_nth_unstable(shortlist);
                    }
                    sample[..shortlist].sort_unstable();
                    let picked: Vec<(u64, u64, &PostState)> = sample[..shortlist]
                        .iter()
                        .filter_map(|&(key, p)| usable(p).map(|post| (key, p, post)))
                        .take(s.explore_k)
                        .collect();
                    if picked.len() == s.explore_k || shortlist == sample.len() {
                        explored.extend(picked.into_iter().map(|(key, post_id, _)| (key, post_id)));
                        break;
                    }
                    shortlist = (shortlist * 4).min(sample.len());
                }
            }
            // As for ANN: only this worker's smallest keys can be among the global ones.
            explored.sort_unstable();
            for (key, post_id) in explored.into_iter().take(s.explore_k) {
                if let Some(post) = usable(post_id) {
                    row!(post_id, post).explore_key = Some(key);
                }
            }
        }
        // Trending: every young, engaged post; the pool (at the ranking stage) decides.
        for post_id in serving.recent.counted() {
            if let Some(post) = usable(post_id) {
                if post.upload_tick + serving.trending_max_age > state_tick {
                    row!(post_id, post);
                }
            }
        }
        Partial {
            request: context.position,
            user_id: context.user_id,
            shard_us: started.elapsed().as_micros().min(u32::MAX as u128) as u32,
            rows: rows.into_values().collect(),
        }
    }
}
