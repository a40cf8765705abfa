//! Velocity scores and the trending pool, maintained incrementally tick by tick.
//!
//! - recent(post): weighted positive engagements in the last `window` ticks,
//!   and their count (a sliding window: each engagement is retracted when it expires);
//! - baseline(creator): weighted positive engagements over `baseline_window`,
//!   expressed per `window`;
//! - velocity_ratio = recent / max(baseline, floor), an exact fraction;
//! - the pool: recommendable posts younger than `max_age` with ratio ≥ threshold
//!   and count ≥ `min_count`, the top `top_n` of each category by ratio.
//!
//! The windows and the age limit are change streams whose retractions are scheduled
//! at expiry; the sums and candidates live in one stage per creator
//! ([`VelocityState`]); the per-category top `top_n` is kept by `TopK`.

use crate::model::{weight_milli, PostInfo, Ratio, TrendEntry, Velocity};
use differential_dataflow::{AsCollection, VecCollection};
use feedflow_connectors::config::Config;
use feedflow_operators::expire::ExpireAfter;
use feedflow_operators::hash::{mix64, FastMap};
use feedflow_operators::schedule::Schedule;
use feedflow_operators::tick_batch::TickBatch;
use feedflow_operators::top_k::TopK;
use serde::{Deserialize, Serialize};
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

    // Each positive engagement enters the recent and the baseline window and leaves each when it
    // expires; young posts leave at their age limit. All three meet at the creator's worker,
    // where one stage keeps the sums and the pool candidates.
    let windows = engagements
        .flat_map(|e| {
            let (post_id, creator_id, weight_milli) = (e.post_id, e.creator_id, e.weight_milli);
            [
                (VelocityUpdate::Recent { post_id, creator_id, weight_milli }, e.tick, 1isize),
                (VelocityUpdate::Baseline { creator_id, weight_milli }, e.tick, 1isize),
            ]
        })
        .as_collection()
        .schedule("VelocityWindows", move |(update, tick, diff)| {
            let width = match update {
                VelocityUpdate::Recent { .. } => window,
                VelocityUpdate::Baseline { .. } => baseline_window,
                VelocityUpdate::Young(_) => return None,
            };
            Some((update.clone(), tick.saturating_add(width), -diff))
        });
    let young = eligible.expire_after(|p: &PostInfo| p.upload_tick, max_age).map(VelocityUpdate::Young);

    let mut state = VelocityState::new(config);
    windows
        .concat(young)
        .inner
        .tick_batch_by(
            "Velocity",
            |(u, _, _): &(VelocityUpdate, u64, isize)| mix64(u.creator_id()),
            |(_, tick, _)| *tick,
            move |tick, updates, out| state.apply_tick(tick, updates, out),
        )
        .as_collection()
        .top_k_per_key(t.top_n)
}

/// A change to one of the velocity stage's inputs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum VelocityUpdate {
    /// A positive engagement entering (+1) or leaving (-1) the recent window.
    Recent { post_id: u64, creator_id: u64, weight_milli: i64 },
    /// A positive engagement entering (+1) or leaving (-1) the creator's baseline window.
    Baseline { creator_id: u64, weight_milli: i64 },
    /// A recommendable post younger than `max_age` appearing (+1) or leaving (-1).
    Young(PostInfo),
}

impl VelocityUpdate {
    /// The creator the update concerns: the stage's routing key.
    pub fn creator_id(&self) -> u64 {
        match self {
            VelocityUpdate::Recent { creator_id, .. } | VelocityUpdate::Baseline { creator_id, .. } => *creator_id,
            VelocityUpdate::Young(info) => info.creator_id,
        }
    }
}

/// One pool candidate with its multiplicity.
type Candidate = ((String, TrendEntry), isize);

/// The velocity sums and pool candidates of the creators one worker owns.
///
/// What it emits is, tick by tick, the collection the relational form computes: recent sums
/// per post (present when non-zero) with at least `min_count` engagements, joined with the young
/// posts and their creator's baseline sum, kept when the ratio reaches the threshold. Instead of
/// three joins over arrangements it keeps the sums in hash maps and, each tick, recomputes only
/// the posts whose recent sum or age changed and the active posts of creators whose baseline
/// changed. The registry gives a post's velocity records and its eligibility the same creator.
pub struct VelocityState {
    window_ms: u64,
    baseline_window_ms: u64,
    floor_milli: i64,
    threshold_milli: i64,
    min_count: i64,
    /// post → (creator, weighted sum, count) in the recent window; absent when both are zero.
    recent: FastMap<u64, (u64, i64, i64)>,
    /// creator → weighted sum over the baseline window; absent when zero.
    baseline: FastMap<u64, i64>,
    /// post → its young, recommendable records and their multiplicities.
    young: FastMap<u64, Vec<(PostInfo, isize)>>,
    /// creator → posts with a recent sum (the ones a baseline change can move).
    active: FastMap<u64, Vec<u64>>,
    /// post → the candidates last emitted for it.
    emitted: FastMap<u64, Vec<Candidate>>,
}

impl VelocityState {
    /// Empty state with the thresholds of `config.trending`.
    pub fn new(config: &Config) -> Self {
        let t = &config.trending;
        Self {
            window_ms: t.window_ms,
            baseline_window_ms: t.baseline_window_ms,
            floor_milli: weight_milli(t.baseline_floor),
            threshold_milli: weight_milli(t.ratio_threshold),
            min_count: t.min_count,
            recent: FastMap::default(),
            baseline: FastMap::default(),
            young: FastMap::default(),
            active: FastMap::default(),
            emitted: FastMap::default(),
        }
    }

    /// Applies one complete tick of updates; pushes the tick's changes to the candidates.
    pub fn apply_tick(
        &mut self,
        tick: u64,
        updates: Vec<(VelocityUpdate, u64, isize)>,
        out: &mut Vec<((String, TrendEntry), u64, isize)>,
    ) {
        let mut posts = Vec::new();
        let mut creators = Vec::new();
        for (update, _, diff) in updates {
            match update {
                VelocityUpdate::Recent { post_id, creator_id, weight_milli } => {
                    let (weight_milli, count) = (weight_milli * diff as i64, diff as i64);
                    let sums = self.recent.entry(post_id).or_insert((creator_id, 0, 0));
                    let was_present = sums.1 != 0 || sums.2 != 0;
                    sums.1 += weight_milli;
                    sums.2 += count;
                    let present = sums.1 != 0 || sums.2 != 0;
                    let creator = sums.0;
                    if !present {
                        self.recent.remove(&post_id);
                    }
                    if present != was_present {
                        let active = self.active.entry(creator).or_default();
                        if present {
                            active.push(post_id);
                        } else {
                            active.retain(|p| *p != post_id);
                            if active.is_empty() {
                                self.active.remove(&creator);
                            }
                        }
                    }
                    posts.push(post_id);
                }
                VelocityUpdate::Baseline { creator_id, weight_milli } => {
                    let sum = self.baseline.entry(creator_id).or_insert(0);
                    *sum += weight_milli * diff as i64;
                    if *sum == 0 {
                        self.baseline.remove(&creator_id);
                    }
                    creators.push(creator_id);
                }
                VelocityUpdate::Young(info) => {
                    let post_id = info.post_id;
                    let records = self.young.entry(post_id).or_default();
                    match records.iter_mut().find(|(i, _)| *i == info) {
                        Some((_, n)) => *n += diff,
                        None => records.push((info, diff)),
                    }
                    records.retain(|(_, n)| *n != 0);
                    if records.is_empty() {
                        self.young.remove(&post_id);
                    }
                    posts.push(post_id);
                }
            }
        }
        creators.sort_unstable();
        creators.dedup();
        for creator in creators {
            posts.extend(self.active.get(&creator).into_iter().flatten());
        }
        posts.sort_unstable();
        posts.dedup();
        for post_id in posts {
            let now = self.candidates(post_id);
            let before = self.emitted.remove(&post_id).unwrap_or_default();
            if now != before {
                out.extend(before.into_iter().map(|(c, n)| (c, tick, -n)));
                out.extend(now.iter().cloned().map(|(c, n)| (c, tick, n)));
            }
            if !now.is_empty() {
                self.emitted.insert(post_id, now);
            }
        }
    }

    /// The pool candidates of `post_id` under the current sums, consolidated and sorted.
    fn candidates(&self, post_id: u64) -> Vec<Candidate> {
        let Some(&(_, recent_milli, count)) = self.recent.get(&post_id) else { return Vec::new() };
        let Some(young) = self.young.get(&post_id) else { return Vec::new() };
        if count < self.min_count {
            return Vec::new();
        }
        let mut out: Vec<Candidate> = Vec::new();
        for (by_creator, m1) in young {
            let Some(&baseline_milli) = self.baseline.get(&by_creator.creator_id) else { continue };
            let ratio = Ratio::velocity(
                recent_milli,
                baseline_milli,
                self.window_ms,
                self.baseline_window_ms,
                self.floor_milli,
            );
            if !ratio.at_least(self.threshold_milli) {
                continue;
            }
            let entry = TrendEntry { ratio, post_id, creator_id: by_creator.creator_id, recent_milli, count };
            for (by_category, m2) in young {
                out.push(((by_category.category.clone(), entry.clone()), m1 * m2));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 += later.1;
            }
            same
        });
        out.retain(|(_, n)| *n != 0);
        out
    }
}
