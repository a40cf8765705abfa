//! Co-occurrence counts between items over a sliding window of ticks, read as "items seen with these anchors".
//!
//! Each `add(tick, anchor, item)` counts one co-occurrence; it expires
//! `window` ticks later, or earlier when the window holds more than
//! `max_pairs` co-occurrences (the oldest ticks go first, whole). So a sparse
//! log keeps its whole horizon and a dense one its most recent pairs: memory is
//! bounded by count, and the horizon follows the data's rate. [`CoCounts::related`]
//! sums the counts of the given anchors per item and returns the best items;
//! [`CoCounts::related_normalized`] divides each item's sum by the square root
//! of its degree (all its co-occurrences in the window), so popular items do not
//! win by popularity alone (cosine-like item-kNN), and also weighs each anchor by
//! its place in the list (half weight every [`RECENT_HALF_LIFE_ANCHORS`] places:
//! callers list the newest anchors first, and the item a user engages with next
//! is most like the last few). Callers bound how many pairs each event may add.
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

/// An item related to a set of anchors (see [`CoCounts::related_normalized`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Related {
    /// The item.
    pub item: u64,
    /// Σ over the anchors of the co-occurrence count, / sqrt(the item's degree).
    pub score: f64,
    /// Σ over the anchors of the co-occurrence count.
    pub count: i64,
    /// How many of the anchors co-occur with it.
    pub anchors: u32,
    /// As `score`, each anchor's count weighted by `0.5^(place / RECENT_HALF_LIFE_ANCHORS)`
    /// (place 0: the first anchor given).
    pub recent: f64,
}

/// Places in the anchor list over which an anchor's weight in [`Related::recent`] halves.
/// Three places: on MovieLens-100K, weighting a user's last 20 positives so made item-kNN's
/// next-positive HR@10 0.188 against 0.176 unweighted (0.182 with weight 1/(1 + place),
/// 0.181 with the last 5 alone).
pub const RECENT_HALF_LIFE_ANCHORS: f64 = 3.0;

/// The weight of the anchor at `place` in [`Related::recent`].
pub fn anchor_weight(place: usize) -> f64 {
    (-(place as f64) * std::f64::consts::LN_2 / RECENT_HALF_LIFE_ANCHORS).exp()
}

/// The union of the `k` best of `items` by [`Related::score`] and the `k` best by
/// [`Related::recent`] (ties to the lower id in both), in score order. Merging the results of
/// disjoint shards and applying it again gives the union over all of them.
pub fn best_by_both(mut items: Vec<Related>, k: usize) -> Vec<Related> {
    items.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
    let mut keep = vec![false; items.len()];
    keep.iter_mut().take(k).for_each(|x| *x = true);
    let mut by_recent: Vec<usize> = (0..items.len()).collect();
    by_recent.sort_by(|a, b| items[*b].recent.total_cmp(&items[*a].recent).then(items[*a].item.cmp(&items[*b].item)));
    for i in by_recent.into_iter().take(k) {
        keep[i] = true;
    }
    items.into_iter().zip(keep).filter(|(_, k)| *k).map(|(r, _)| r).collect()
}

/// Best score first, ties to the lower id.
fn by_score(a: &Related, b: &Related) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.item.cmp(&b.item))
}

/// Indices of the `k` items with the highest `key` (ties to the lower id) that `accept` lets
/// through, best first. Only a shortlist is ordered and filtered, widened until it holds `k`
/// accepted items: an anchor set's related items run to thousands, and a page needs a hundred.
fn top_accepted(
    items: &[Related],
    k: usize,
    key: impl Fn(&Related) -> f64,
    accept: &impl Fn(u64) -> bool,
) -> Vec<usize> {
    if k == 0 || items.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<(f64, u64, usize)> = items.iter().enumerate().map(|(i, r)| (key(r), r.item, i)).collect();
    let best_first = |a: &(f64, u64, usize), b: &(f64, u64, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    let mut shortlist = (2 * k).min(order.len());
    loop {
        if shortlist < order.len() {
            order.select_nth_unstable_by(shortlist, best_first);
        }
        order[..shortlist].sort_by(best_first);
        let picked: Vec<usize> = order[..shortlist].iter().filter(|x| accept(x.1)).map(|x| x.2).take(k).collect();
        if picked.len() == k || shortlist == order.len() {
            return picked;
        }
        shortlist = (shortlist * 4).min(order.len());
    }
}

/// One tick's `(anchor, item)` co-occurrences, in arrival order.
type TickBatch = Vec<(u64, u64)>;

/// Windowed co-occurrence counts: anchor → item → count.
#[derive(Clone, Debug, Default)]
pub struct CoCounts {
    window: u64,
    max_pairs: usize,
    anchors: FastMap<u64, AnchorCounts>,
    /// item → its co-occurrences in the window (as item, over every anchor)
    degree: FastMap<u64, i64>,
    /// What each tick added, oldest tick first, for expiry.
    added: VecDeque<(u64, TickBatch)>,
    pairs: usize,
}

/// One anchor's counts: a sorted consolidated part and the updates since it was last sorted.
///
/// A replay adds millions of pairs at random anchors. Counting each in a per-anchor hash
/// map costs a cache miss or two per pair; appending to the anchor's update list touches
/// one line, and folding the list in once it is half the sorted part's size streams
/// through memory, copying each update a few times.
#[derive(Clone, Debug, Default)]
struct AnchorCounts {
    /// `(item, count)` sorted by item; no zero counts.
    sorted: Vec<(u64, i64)>,
    /// `(item, change)` in arrival order (expiry appends negated counts).
    updates: Vec<(u64, i64)>,
}

impl AnchorCounts {
    /// Folds the updates in once there are enough of them to be worth the copy.
    fn push(&mut self, item: u64, change: i64) {
        self.updates.push((item, change));
        if self.updates.len() >= (self.sorted.len() / 2).max(16) {
            self.fold();
        }
    }

    fn fold(&mut self) {
        self.updates.sort_unstable_by_key(|u| u.0);
        let mut merged = Vec::with_capacity(self.sorted.len() + self.updates.len());
        let mut sorted = self.sorted.iter().copied().peekable();
        for &(item, change) in &self.updates {
            while let Some(&older) = sorted.peek() {
                if older.0 >= item {
                    break;
                }
                merged.push(older);
                sorted.next();
            }
            match merged.last_mut() {
                Some(last) if last.0 == item => last.1 += change,
                _ => match sorted.next_if(|older| older.0 == item) {
                    Some(older) => merged.push((item, older.1 + change)),
                    None => merged.push((item, change)),
                },
            }
            if merged.last().is_some_and(|last| last.1 == 0) {
                merged.pop();
            }
        }
        merged.extend(sorted);
        self.sorted = merged;
        self.updates.clear();
    }

    /// The counts with the updates folded in, without changing `self`: the sorted part itself
    /// when there are no updates, else a merged copy in `scratch`.
    fn consolidated<'a>(&'a self, scratch: &'a mut AnchorCounts) -> &'a [(u64, i64)] {
        if self.updates.is_empty() {
            return &self.sorted;
        }
        scratch.sorted.clear();
        scratch.sorted.extend_from_slice(&self.sorted);
        scratch.updates.clear();
        scratch.updates.extend_from_slice(&self.updates);
        scratch.fold();
        &scratch.sorted
    }

    fn is_empty(&self) -> bool {
        self.sorted.is_empty() && self.updates.is_empty()
    }
}

impl CoCounts {
    /// Counts kept for `window` ticks, with no bound on their number.
    pub fn new(window: u64) -> Self {
        Self::bounded(window, usize::MAX)
    }

    /// Counts kept for `window` ticks while the window holds at most `max_pairs` co-occurrences;
    /// beyond that the oldest ticks leave first (a tick's pairs leave together, so the result does
    /// not depend on the order pairs of one tick arrived in).
    pub fn bounded(window: u64, max_pairs: usize) -> Self {
        Self {
            window: window.max(1),
            max_pairs: max_pairs.max(1),
            anchors: FastMap::default(),
            degree: FastMap::default(),
            added: VecDeque::new(),
            pairs: 0,
        }
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
        for &(anchor, item) in pairs.iter() {
            self.anchors.entry(anchor).or_default().push(item, 1);
            *self.degree.entry(item).or_default() += 1;
        }
        match self.added.back_mut() {
            Some((last, earlier)) if *last == tick => earlier.append(pairs),
            _ => self.added.push_back((tick, std::mem::take(pairs))),
        }
        // Over the bound: the oldest ticks leave, but never the current one (it may still grow).
        while self.pairs > self.max_pairs && self.added.len() > 1 {
            self.expire_oldest();
        }
    }

    fn expire_oldest(&mut self) {
        let Some((_, batch)) = self.added.pop_front() else { return };
        self.pairs -= batch.len();
        for (anchor, item) in batch {
            if let Some(d) = self.degree.get_mut(&item) {
                *d -= 1;
                if *d <= 0 {
                    self.degree.remove(&item);
                }
            }
            let Some(counts) = self.anchors.get_mut(&anchor) else { continue };
            counts.push(item, -1);
            if counts.updates.len() >= counts.sorted.len() {
                // Possibly all cancelled: fold now so a quiet anchor does not linger.
                counts.fold();
                if counts.is_empty() {
                    self.anchors.remove(&anchor);
                }
            }
        }
    }

    /// Forgets co-occurrences that are `window` or more ticks older than `now`.
    pub fn expire(&mut self, now: u64) {
        while let Some((tick, _)) = self.added.front() {
            if tick + self.window > now {
                break;
            }
            self.expire_oldest();
        }
    }

    /// The `k` items with the highest summed count over `anchors` that `accept` lets through
    /// (anchors themselves excluded), best first; ties go to the lower item id.
    pub fn related(&self, anchors: &[u64], k: usize, accept: impl Fn(u64) -> bool) -> Vec<(u64, i64)> {
        let mut sums: FastMap<u64, i64> = FastMap::default();
        for a in anchors {
            if let Some(counts) = self.anchors.get(a) {
                for &(item, n) in counts.sorted.iter().chain(&counts.updates) {
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

    /// The `k` items with the highest `Σ_anchors count / sqrt(degree)` that `accept` lets
    /// through (anchors excluded), best first; ties go to the lower id. Each comes with its
    /// summed count, the number of anchors it co-occurs with and its score with the anchors
    /// weighted by place ([`Related::recent`]; `anchors` newest first). The scores are computed
    /// in a fixed order (anchors in the order given), so they are the same on every run.
    pub fn related_normalized(&self, anchors: &[u64], k: usize, accept: impl Fn(u64) -> bool) -> Vec<Related> {
        let items = self.related_scored(anchors);
        let mut best: Vec<Related> =
            top_accepted(&items, k, |r| r.score, &accept).into_iter().map(|i| items[i]).collect();
        best.sort_by(by_score);
        best
    }

    /// The union of the `k` best by [`Related::score`] and the `k` best by [`Related::recent`]
    /// (see [`best_by_both`]): a related source that proposes both a user's long-run neighbours
    /// and the last few anchors'.
    pub fn related_by_both(&self, anchors: &[u64], k: usize, accept: impl Fn(u64) -> bool) -> Vec<Related> {
        let items = self.related_scored(anchors);
        let mut keep = vec![false; items.len()];
        for i in top_accepted(&items, k, |r| r.score, &accept).into_iter().chain(top_accepted(
            &items,
            k,
            |r| r.recent,
            &accept,
        )) {
            keep[i] = true;
        }
        let mut best: Vec<Related> = items.into_iter().zip(keep).filter(|(_, k)| *k).map(|(r, _)| r).collect();
        best.sort_by(by_score);
        best
    }

    /// Every related item (not an anchor), unordered and not yet filtered by the caller.
    fn related_scored(&self, anchors: &[u64]) -> Vec<Related> {
        // item → (summed count, anchors seen with it, weighted count). An anchor's updates may
        // hold an item twice (and cancelled entries), so its counts are consolidated first: a
        // merge with its sorted part, as `fold` does, or the sorted part itself when it has no
        // updates (a hash map per anchor cost a quarter of a live request's CPU).
        let mut sums: FastMap<u64, (i64, u32, f64)> = FastMap::default();
        let mut scratch = AnchorCounts::default();
        for (place, a) in anchors.iter().enumerate() {
            let weight = anchor_weight(place);
            if let Some(counts) = self.anchors.get(a) {
                for &(item, n) in counts.consolidated(&mut scratch) {
                    if n > 0 {
                        let s = sums.entry(item).or_default();
                        s.0 += n;
                        s.1 += 1;
                        s.2 += weight * n as f64;
                    }
                }
            }
        }
        sums.into_iter()
            .filter(|&(item, (n, _, _))| n > 0 && !anchors.contains(&item))
            .map(|(item, (count, anchors, weighted))| {
                let norm = (self.degree.get(&item).copied().unwrap_or(1).max(1) as f64).sqrt();
                Related { item, score: count as f64 / norm, count, anchors, recent: weighted / norm }
            })
            .collect()
    }

    /// Every `(anchor, item, count)` in the window, sorted (for inspection and tests).
    pub fn counts(&self) -> Vec<(u64, u64, i64)> {
        let mut all: Vec<(u64, u64, i64)> = Vec::new();
        for (anchor, counts) in &self.anchors {
            let mut merged = counts.clone();
            merged.fold();
            all.extend(merged.sorted.iter().map(|&(item, n)| (*anchor, item, n)));
        }
        all.sort_unstable();
        all
    }

    /// An item's co-occurrences in the window, over every anchor.
    pub fn degree(&self, item: u64) -> i64 {
        self.degree.get(&item).copied().unwrap_or(0)
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
    fn fold_sums_updates_into_the_sorted_counts() {
        let mut x = 99u64;
        let mut next = move |m: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        for round in 0..500 {
            let mut counts = AnchorCounts::default();
            let mut want: BTreeMap<u64, i64> = BTreeMap::new();
            for _ in 0..next(60) {
                let (item, change) = (next(8), next(5) as i64 - 2);
                counts.push(item, change);
                *want.entry(item).or_default() += change;
            }
            counts.fold();
            want.retain(|_, n| *n != 0);
            assert_eq!(counts.sorted, want.into_iter().collect::<Vec<_>>(), "round {round}");
            assert!(counts.updates.is_empty());
        }
    }

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
        co.expire(1000);
        assert!(co.is_empty() && co.anchors.is_empty() && co.degree.is_empty());
        assert!(co.related(&[1, 2], 5, |_| true).is_empty());
    }

    /// A brute-force reference: the pairs of the kept ticks, recounted, normalised by degree.
    fn reference(kept: &[(u64, u64, u64)], anchors: &[u64], k: usize) -> Vec<Related> {
        let mut degree: BTreeMap<u64, i64> = BTreeMap::new();
        let mut sums: BTreeMap<u64, i64> = BTreeMap::new();
        let mut seen: BTreeMap<u64, std::collections::BTreeSet<u64>> = BTreeMap::new();
        let mut per_anchor: BTreeMap<(u64, u64), i64> = BTreeMap::new();
        for &(_, a, i) in kept {
            *degree.entry(i).or_default() += 1;
            if anchors.contains(&a) && !anchors.contains(&i) {
                *sums.entry(i).or_default() += 1;
                *per_anchor.entry((i, a)).or_default() += 1;
                seen.entry(i).or_default().insert(a);
            }
        }
        // Σ over the anchors in their given order, as the engine sums (the same rounding).
        let recent = |i: u64| -> f64 {
            let mut total = 0.0;
            for (place, a) in anchors.iter().enumerate() {
                if let Some(n) = per_anchor.get(&(i, *a)) {
                    total += 0.5f64.powf(place as f64 / RECENT_HALF_LIFE_ANCHORS) * *n as f64;
                }
            }
            total
        };
        let mut want: Vec<Related> = sums
            .into_iter()
            .map(|(i, n)| Related {
                item: i,
                score: n as f64 / (degree[&i] as f64).sqrt(),
                count: n,
                anchors: seen[&i].len() as u32,
                recent: recent(i) / (degree[&i] as f64).sqrt(),
            })
            .collect();
        want.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        want.truncate(k);
        want
    }

    #[test]
    fn bounded_window_keeps_the_newest_ticks_and_normalizes_by_degree() {
        let (window, max_pairs) = (60u64, 40usize);
        let mut co = CoCounts::bounded(window, max_pairs);
        let mut log: Vec<(u64, u64, u64)> = Vec::new();
        let mut x = 777u64;
        for tick in 0..300u64 {
            let mut batch = Vec::new();
            // Bursty: some ticks add many pairs, so the bound (not the window) decides.
            let n = if tick % 17 == 0 { 12 } else { 1 + tick % 3 };
            for _ in 0..n {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let (a, i) = ((x >> 33) % 9, (x >> 45) % 25);
                batch.push((a, i));
                log.push((tick, a, i));
            }
            co.add_batch(tick, &mut batch);
            co.expire(tick + 1);
            // Reference: the window's ticks, then the oldest whole ticks dropped while over the bound
            // (never the newest tick).
            let mut ticks: Vec<u64> = log.iter().map(|p| p.0).filter(|t| t + window > tick + 1).collect();
            ticks.dedup();
            let count = |from: u64| log.iter().filter(|p| p.0 >= from && p.0 + window > tick + 1).count();
            let mut from = ticks[0];
            for &t in &ticks {
                from = t;
                if count(t) <= max_pairs || t == tick {
                    break;
                }
            }
            let kept: Vec<(u64, u64, u64)> =
                log.iter().copied().filter(|p| p.0 >= from && p.0 + window > tick + 1).collect();
            assert_eq!(co.len(), kept.len(), "tick {tick}");
            let anchors = [tick % 9, (tick + 4) % 9, (tick + 2) % 9, (tick + 7) % 9];
            let (got, want) = (co.related_normalized(&anchors, 6, |_| true), reference(&kept, &anchors, 6));
            same_related(&got, &want, tick);
            // The union with the 3 best by recency, in score order.
            let all = reference(&kept, &anchors, usize::MAX);
            let mut by_recent = all.clone();
            by_recent.sort_by(|a, b| b.recent.total_cmp(&a.recent).then(a.item.cmp(&b.item)));
            let chosen: Vec<u64> = all.iter().take(3).chain(by_recent.iter().take(3)).map(|r| r.item).collect();
            let want: Vec<Related> = all.iter().filter(|r| chosen.contains(&r.item)).copied().collect();
            same_related(&co.related_by_both(&anchors, 3, |_| true), &want, tick);
            // With a filter: the best of the accepted items, as if the others were not there (the
            // shortlist of 2k is widened when the filter empties it).
            let accept = |i: u64| !i.is_multiple_of(3);
            let all_ok: Vec<Related> = all.iter().filter(|r| accept(r.item)).copied().collect();
            same_related(&co.related_normalized(&anchors, 2, accept), &all_ok[..all_ok.len().min(2)], tick);
            let mut by_recent_ok = all_ok.clone();
            by_recent_ok.sort_by(|a, b| b.recent.total_cmp(&a.recent).then(a.item.cmp(&b.item)));
            let chosen: Vec<u64> = all_ok.iter().take(2).chain(by_recent_ok.iter().take(2)).map(|r| r.item).collect();
            let want: Vec<Related> = all_ok.iter().filter(|r| chosen.contains(&r.item)).copied().collect();
            same_related(&co.related_by_both(&anchors, 2, accept), &want, tick);
            assert!(co.related_by_both(&anchors, 0, accept).is_empty());
        }
    }

    /// Equal, `recent` to rounding (the reference sums powers of 0.5, the engine exponentials).
    fn same_related(got: &[Related], want: &[Related], tick: u64) {
        assert_eq!(got.len(), want.len(), "tick {tick}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.item, g.score, g.count, g.anchors), (w.item, w.score, w.count, w.anchors), "tick {tick}");
            assert!((g.recent - w.recent).abs() <= 1e-12 * w.recent.abs().max(1.0), "tick {tick}: {g:?} vs {w:?}");
        }
    }
}
