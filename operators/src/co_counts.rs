//! Co-occurrence counts between items over a sliding window of ticks, read as "items seen with these anchors".
//!
//! Each `add(tick, anchor, item)` counts one co-occurrence; it expires
//! `window` ticks later. [`CoCounts::related`] sums the counts of the given
//! anchors per item and returns the best items. State is bounded by what the
//! window holds; callers bound how many pairs each event may add.
//!
//! ```
//! use feedflow_operators::co_counts::CoCounts;
//! let mut co = CoCounts::new(10);
//! co.add(0, 1, 7);
//! co.add(0, 2, 7);
//! co.add(1, 1, 8);
//! assert_eq!(co.related(&[1, 2], 5, |_| true), vec![(7, 2), (8, 1)]);
//! co.expire(10); // the tick-0 pairs leave the window
//! assert_eq!(co.related(&[1, 2], 5, |_| true), vec![(8, 1)]);
//! ```

use crate::hash::FastMap;
use std::cmp::Ordering;
use std::collections::VecDeque;

/// `(anchor, item, count)` updates sorted by `(anchor, item)`, each pair at most once.
type Run = Vec<(u64, u64, i64)>;

/// Windowed co-occurrence counts: anchor → item → count.
///
/// Updates are kept as sorted runs merged like a log-structured merge tree rather than
/// in per-anchor hash maps: a replay adds millions of pairs at random anchors, and a
/// hash map pays a cache miss or two for each, where merging sorted runs streams
/// through memory. Expiry adds the expired tick's pairs again with negated counts;
/// merges cancel them out.
#[derive(Clone, Debug, Default)]
pub struct CoCounts {
    window: u64,
    /// Consolidated runs, larger (older) first; a run is merged into the one before it
    /// once it holds at least half as many updates, so there are O(log n) runs.
    runs: Vec<Run>,
    /// What each tick added, oldest tick first, for expiry.
    added: VecDeque<(u64, Run)>,
    pairs: usize,
}

impl CoCounts {
    /// Counts kept for `window` ticks.
    pub fn new(window: u64) -> Self {
        Self { window: window.max(1), runs: Vec::new(), added: VecDeque::new(), pairs: 0 }
    }

    /// Counts one co-occurrence of `item` with `anchor` at `tick` (ticks must not decrease).
    pub fn add(&mut self, tick: u64, anchor: u64, item: u64) {
        self.add_batch(tick, &mut vec![(anchor, item)]);
    }

    /// Counts the `(anchor, item)` co-occurrences of one tick (ticks must not decrease); empties `pairs`.
    pub fn add_batch(&mut self, tick: u64, pairs: &mut Vec<(u64, u64)>) {
        if pairs.is_empty() {
            return;
        }
        self.pairs += pairs.len();
        pairs.sort_unstable();
        let mut batch: Run = Vec::with_capacity(pairs.len());
        for (anchor, item) in pairs.drain(..) {
            match batch.last_mut() {
                Some((a, i, n)) if *a == anchor && *i == item => *n += 1,
                _ => batch.push((anchor, item, 1)),
            }
        }
        self.push_run(batch.clone());
        match self.added.back_mut() {
            Some((last, earlier)) if *last == tick => {
                // A second batch for the same tick: expiry takes both at once.
                *earlier = merge(earlier, &batch);
            }
            _ => self.added.push_back((tick, batch)),
        }
    }

    /// Forgets co-occurrences that are `window` or more ticks older than `now`.
    pub fn expire(&mut self, now: u64) {
        while let Some((tick, _)) = self.added.front() {
            if tick + self.window > now {
                break;
            }
            let Some((_, mut batch)) = self.added.pop_front() else { break };
            for (_, _, n) in batch.iter_mut() {
                self.pairs -= *n as usize;
                *n = -*n;
            }
            self.push_run(batch);
        }
    }

    /// Adds a sorted run, then merges while the last run is at least half the size of
    /// the one before it (each update is copied O(log n) times over its life).
    fn push_run(&mut self, run: Run) {
        self.runs.push(run);
        while let [.., older, newer] = &self.runs[..] {
            if older.len() > 2 * newer.len() {
                break;
            }
            let merged = merge(older, newer);
            self.runs.truncate(self.runs.len() - 2);
            if !merged.is_empty() {
                self.runs.push(merged);
            }
        }
        if self.pairs == 0 {
            // Everything expired: whatever is left cancels out.
            self.runs.clear();
        }
    }

    /// The `k` items with the highest summed count over `anchors` that `accept` lets through
    /// (anchors themselves excluded), best first; ties go to the lower item id.
    pub fn related(&self, anchors: &[u64], k: usize, accept: impl Fn(u64) -> bool) -> Vec<(u64, i64)> {
        let mut sums: FastMap<u64, i64> = FastMap::default();
        for run in &self.runs {
            for &a in anchors {
                let from = run.partition_point(|u| u.0 < a);
                for &(_, item, n) in run[from..].iter().take_while(|u| u.0 == a) {
                    *sums.entry(item).or_default() += n;
                }
            }
        }
        let mut best: Vec<(u64, i64)> =
            sums.into_iter().filter(|&(item, n)| n > 0 && !anchors.contains(&item) && accept(item)).collect();
        best.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        best.truncate(k);
        best
    }

    /// Co-occurrences currently in the window.
    pub fn len(&self) -> usize {
        self.pairs
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.pairs == 0
    }
}

/// Merges two sorted runs, summing the counts of equal pairs and dropping those that cancel.
fn merge(a: &[(u64, u64, i64)], b: &[(u64, u64, i64)]) -> Run {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        match (x.0, x.1).cmp(&(y.0, y.1)) {
            Ordering::Less => {
                out.push(x);
                i += 1;
            }
            Ordering::Greater => {
                out.push(y);
                j += 1;
            }
            Ordering::Equal => {
                if x.2 + y.2 != 0 {
                    out.push((x.0, x.1, x.2 + y.2));
                }
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn matches_recount_from_the_window() {
        let mut co = CoCounts::new(50);
        let mut log = Vec::new();
        let mut x = 12345u64;
        for tick in 0..400u64 {
            // Odd ticks add pair by pair, even ticks in one batch.
            let mut batch = Vec::new();
            for _ in 0..3 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let (a, i) = ((x >> 33) % 12, (x >> 45) % 30);
                if tick % 2 == 1 {
                    co.add(tick, a, i);
                } else {
                    batch.push((a, i));
                }
                log.push((tick, a, i));
            }
            co.add_batch(tick, &mut batch);
            assert!(batch.is_empty());
            co.expire(tick + 1);
            let anchors = [tick % 12, (tick + 5) % 12];
            let mut sums: BTreeMap<u64, i64> = BTreeMap::new();
            for &(t, a, i) in &log {
                if t + 50 > tick + 1 && anchors.contains(&a) && !anchors.contains(&i) && i % 7 != 0 {
                    *sums.entry(i).or_default() += 1;
                }
            }
            let mut want: Vec<(u64, i64)> = sums.into_iter().collect();
            want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(8);
            assert_eq!(co.related(&anchors, 8, |i| i % 7 != 0), want, "tick {tick}");
        }
        assert_eq!(co.len(), 3 * 49, "ticks 351..=399 are still in the window");
        assert!(co.runs.len() <= 12, "merging keeps few runs: {}", co.runs.len());
        co.expire(1000);
        assert!(co.is_empty() && co.runs.is_empty() && co.related(&[1, 2], 5, |_| true).is_empty());
    }
}
