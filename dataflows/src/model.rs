//! Records that flow between the stages of the graph.

use feedflow_connectors::config::{Config, EngagementWeights};
use feedflow_connectors::EngagementKind;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::sync::Arc;

/// Event time to tick.
pub fn tick_of(ts: i64, tick_ms: u64) -> u64 {
    (ts.max(0) as u64) / tick_ms.max(1)
}

/// Weights are carried as integer thousandths so windowed sums are exact and
/// independent of the order in which they are added.
pub fn weight_milli(weight: f64) -> i64 {
    (weight * 1000.0).round() as i64
}

/// The weight of one engagement in thousandths (DESIGN.md §4).
pub fn engagement_weight_milli(config: &Config, kind: EngagementKind, dwell_ms: Option<u64>) -> i64 {
    let w: &EngagementWeights = &config.interest.weights;
    let weight = match kind {
        EngagementKind::View => {
            if dwell_ms.unwrap_or(0) >= config.interest.view_min_dwell_ms {
                w.view
            } else {
                0.0
            }
        }
        EngagementKind::Like => w.like,
        EngagementKind::Comment => w.comment,
        EngagementKind::Save => w.save,
        EngagementKind::Share => w.share,
        EngagementKind::Follow => w.follow,
        EngagementKind::Skip => w.skip,
        EngagementKind::Hide => w.hide,
        EngagementKind::Report => w.report,
    };
    weight_milli(weight)
}

/// An engagement joined with its post: emitted by the post registry once the
/// post is known, at tick `max(engagement tick, upload tick)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Enriched {
    /// Tick at which the engagement takes effect.
    pub tick: u64,
    /// Engagement time (ms).
    pub ts: i64,
    /// Who acted.
    pub user_id: u64,
    /// On which post.
    pub post_id: u64,
    /// The post's creator.
    pub creator_id: u64,
    /// The post's category.
    pub category: Arc<str>,
    /// What they did.
    pub kind: EngagementKind,
    /// Dwell, when given.
    pub dwell_ms: Option<u64>,
    /// Weight in thousandths.
    pub weight_milli: i64,
    /// The post's embedding.
    pub embedding: Arc<[f32]>,
}

impl Enriched {
    /// Sort key that makes per-tick processing independent of arrival order.
    pub fn order_key(&self) -> (i64, u64, u64, EngagementKind, Option<u64>) {
        (self.ts, self.user_id, self.post_id, self.kind, self.dwell_ms)
    }
}

/// A positive engagement as the velocity and popularity windows need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Velocity {
    /// Tick at which the engagement takes effect.
    pub tick: u64,
    /// The post.
    pub post_id: u64,
    /// Its creator.
    pub creator_id: u64,
    /// Weight in thousandths (> 0).
    pub weight_milli: i64,
}

/// A recommendable post (public, not blocked), as held in the eligibility collection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PostInfo {
    /// The post.
    pub post_id: u64,
    /// Its creator.
    pub creator_id: u64,
    /// Its category.
    pub category: String,
    /// Tick of its upload.
    pub upload_tick: u64,
}

/// An exact velocity ratio `num / den`, compared without rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ratio {
    /// Numerator.
    pub num: i128,
    /// Denominator (> 0).
    pub den: i128,
}

impl Ratio {
    /// `recent / max(baseline_sum · window / baseline_window, floor)`, all in thousandths
    /// of weighted engagements, kept as an exact fraction.
    pub fn velocity(
        recent_milli: i64,
        baseline_sum_milli: i64,
        window_ms: u64,
        baseline_window_ms: u64,
        floor_milli: i64,
    ) -> Self {
        let b = baseline_window_ms as i128;
        let num = recent_milli as i128 * b;
        let den = (baseline_sum_milli as i128 * window_ms as i128).max(floor_milli as i128 * b).max(1);
        Self { num, den }
    }

    /// As a float, for output.
    pub fn value(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Whether `self ≥ threshold_milli / 1000`.
    pub fn at_least(&self, threshold_milli: i64) -> bool {
        self.num * 1000 >= threshold_milli as i128 * self.den
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.num * other.den).cmp(&(other.num * self.den)).then((self.num, self.den).cmp(&(other.num, other.den)))
    }
}
impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A member of the trending pool; orders best first (highest ratio, then lowest post id).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TrendEntry {
    /// Velocity ratio.
    pub ratio: Ratio,
    /// The post.
    pub post_id: u64,
    /// Its creator.
    pub creator_id: u64,
    /// Weighted engagements in the window, in thousandths.
    pub recent_milli: i64,
    /// Positive engagements in the window.
    pub count: i64,
}

impl Ord for TrendEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.ratio.cmp(&self.ratio).then(self.post_id.cmp(&other.post_id)).then(
            (self.creator_id, self.recent_milli, self.count).cmp(&(other.creator_id, other.recent_milli, other.count)),
        )
    }
}
impl PartialOrd for TrendEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One change of the trending pool, as written to the `trending` output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendingChange {
    /// Event time from which the change is visible to requests: the end of the tick that caused it.
    pub ts: i64,
    /// The post.
    pub post_id: u64,
    /// Its category.
    pub category: String,
    /// recent / max(baseline, floor).
    pub velocity_ratio: f64,
    /// Weighted engagements in the window.
    pub recent: f64,
    /// +1 entered the pool (or its figures changed), -1 left it (or its old figures).
    pub diff: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_orders_exactly() {
        let a = Ratio { num: 1, den: 3 };
        let b = Ratio { num: 2, den: 6 };
        assert_ne!(a.cmp(&b), Ordering::Equal, "equal values, different representations: distinct but adjacent");
        assert!(Ratio { num: 1, den: 2 } > b);
        assert!(Ratio { num: 5, den: 1 }.at_least(5000));
        assert!(!Ratio { num: 4999, den: 1000 }.at_least(5000));
    }

    #[test]
    fn velocity_uses_floor_for_new_creators() {
        let r = Ratio::velocity(10_000, 0, 300_000, 604_800_000, 2_000);
        assert!((r.value() - 5.0).abs() < 1e-12);
    }
}
