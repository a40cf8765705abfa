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
use std::collections::VecDeque;

/// One tick's additions: `(anchor, item, count)`, sorted by anchor.
type TickBatch = Vec<(u64, u64, i64)>;

/// Windowed co-occurrence counts: anchor → item → count.
#[derive(Clone, Debug, Default)]
pub struct CoCounts {
    window: u64,
    counts: FastMap<u64, FastMap<u64, i64>>,
    /// What each tick added, `(anchor, item, count)` sorted by anchor, oldest tick first:
    /// one exact-size batch per tick, so the window never reallocates as a whole.
    added: VecDeque<(u64, TickBatch)>,
    pairs: usize,
}

impl CoCounts {
    /// Counts kept for `window` ticks.
    pub fn new(window: u64) -> Self {
        Self { window: window.max(1), counts: FastMap::default(), added: VecDeque::new(), pairs: 0 }
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
        // Equal pairs become one count; each anchor's items are updated after one lookup of the anchor.
        let mut batch: TickBatch = Vec::with_capacity(pairs.len());
        for (anchor, item) in pairs.drain(..) {
            match batch.last_mut() {
                Some((a, i, n)) if *a == anchor && *i == item => *n += 1,
                _ => batch.push((anchor, item, 1)),
            }
        }
        for run in batch.chunk_by(|x, y| x.0 == y.0) {
            let items = self.counts.entry(run[0].0).or_default();
            for &(_, item, n) in run {
                *items.entry(item).or_default() += n;
            }
        }
        match self.added.back_mut() {
            Some((last, earlier)) if *last == tick => {
                // A second batch for the same tick: expiry walks it like the first.
                earlier.extend(batch);
                earlier.sort_unstable();
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
            let Some((_, batch)) = self.added.pop_front() else { break };
            for run in batch.chunk_by(|x, y| x.0 == y.0) {
                let anchor = run[0].0;
                let Some(items) = self.counts.get_mut(&anchor) else { continue };
                for &(_, item, n) in run {
                    self.pairs -= n as usize;
                    if let Some(c) = items.get_mut(&item) {
                        *c -= n;
                        if *c <= 0 {
                            items.remove(&item);
                        }
                    }
                }
                if items.is_empty() {
                    self.counts.remove(&anchor);
                }
            }
        }
    }

    /// The `k` items with the highest summed count over `anchors` that `accept` lets through
    /// (anchors themselves excluded), best first; ties go to the lower item id.
    pub fn related(&self, anchors: &[u64], k: usize, accept: impl Fn(u64) -> bool) -> Vec<(u64, i64)> {
        let mut sums: FastMap<u64, i64> = FastMap::default();
        for a in anchors {
            if let Some(items) = self.counts.get(a) {
                for (item, c) in items {
                    *sums.entry(*item).or_default() += c;
                }
            }
        }
        let mut best: Vec<(u64, i64)> =
            sums.into_iter().filter(|(item, _)| !anchors.contains(item) && accept(*item)).collect();
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
    }
}
