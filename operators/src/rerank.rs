//! Builds one page from scored candidates: MMR diversity, per-author and per-group caps, exploration and boosted slots.
//!
//! [`build_page`] is domain-agnostic: a candidate is a relevance score, an
//! author id, a group id (a category, say), an embedding and two flags. The
//! result names, for each page position in order, which candidate fills it and
//! what kind of slot it is. The same input always gives the same page.
//!
//! ```
//! use feedflow_operators::rerank::{build_page, PageCandidate, PageRules, Placement, SlotKind};
//! let candidate = |score, id, embedding| PageCandidate {
//!     score, author: id, group: id, embedding, explore: false, boosted: false,
//! };
//! let (a, b) = ([1.0f32, 0.0], [0.0f32, 1.0]);
//! let candidates = [
//!     candidate(0.9, 1, &a[..]),
//!     candidate(0.8, 2, &a[..]),
//!     candidate(0.6, 3, &b[..]),
//!     candidate(0.0, 4, &b[..]),
//! ];
//! let rules = PageRules { page_size: 2, explore_share: 0.0, max_boosted: 0, ..PageRules::default() };
//! // The runner-up repeats the leader's embedding, so the dissimilar item comes second.
//! let page = build_page(&candidates, &rules);
//! assert_eq!(page, vec![
//!     Placement { candidate: 0, slot: SlotKind::Regular },
//!     Placement { candidate: 2, slot: SlotKind::Regular },
//! ]);
//! ```
//!
//! # Semantics
//!
//! Let `k = page_size` and `n` the number of candidates.
//!
//! 1. **Slot plan.** `n_e = round(explore_share · k)` (half away from zero,
//!    clamped into `0..=k`; NaN counts as 0) exploration positions at
//!    `floor((j + 1) · k / (n_e + 1))` for `j` in `0..n_e`. Then
//!    `n_b = min(max_boosted, k)` boosted positions at
//!    `floor((j + 0.5) · k / n_b)` for `j` in `0..n_b`, in order of `j`; a
//!    boosted position already taken (by exploration or an earlier boosted
//!    position) moves to the next free position after it, and is dropped if
//!    there is none before `k`. All other positions are regular. See
//!    [`PageRules::slot_plan`].
//! 2. **Eligibility.** A candidate not yet on the page is eligible while the
//!    page holds fewer than `max_per_author` items of its `author` and fewer
//!    than [`PageRules::group_cap`] `= max(1, floor(max_group_share · k))`
//!    items of its `group`.
//! 3. **Exploration / boosted position.** The eligible candidate with the flag
//!    (`explore` or `boosted`) and the highest score is placed with that slot
//!    kind. If no eligible candidate has the flag, the position is filled as a
//!    regular one.
//! 4. **Regular position.** Among all eligible candidates, the one maximizing
//!    `λ · rel(i) − (1 − λ) · maxsim(i)` (`λ = mmr_lambda`), where
//!    `rel(i) = (score_i − min) / (max − min)` with `min`, `max` over the
//!    finite scores of all candidates (`rel = 1` for every finite score if
//!    `max == min` or there is none; NaN and −∞ give 0, +∞ gives 1), and
//!    `maxsim(i)` is the largest cosine similarity of `i` to the items already
//!    on the page (0 while the page is empty).
//! 5. **End.** If no candidate is eligible for a position, the page ends there:
//!    it may be shorter than `k`; caps are never relaxed.
//!
//! Ties go to the lower candidate index. A NaN score or MMR value ranks below
//! every number. Cosine similarity is `a·b / (|a| |b|)` computed in `f64` and
//! clamped into `[-1, 1]`; it is 0 when either vector is zero, when the lengths
//! differ, or when the result is not finite (NaN or infinite components).
//!
//! Cost: at most `O(k · n · d)` time for `d`-dimensional embeddings and `O(n)`
//! memory. `maxsim` is brought up to date lazily: as it only grows, a
//! candidate's last MMR value bounds its current one, and only candidates that
//! reach the top of a queue ordered by that bound are compared with the items
//! placed since (typically a small share of the `k · n` similarities).

use crate::hash::FastMap;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The limits and slot shares of one page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageRules {
    /// Number of positions `k` (the page may end earlier, see the module docs).
    pub page_size: usize,
    /// MMR weight `λ` of relevance; `1 − λ` weighs redundancy with items already on the page.
    pub mmr_lambda: f64,
    /// At most this many items with the same `author` per page.
    pub max_per_author: usize,
    /// At most `max(1, floor(max_group_share · page_size))` items with the same `group` per page.
    pub max_group_share: f64,
    /// `round(explore_share · page_size)` positions are exploration slots.
    pub explore_share: f64,
    /// Up to this many boosted (e.g. trending) slots at spread positions.
    pub max_boosted: usize,
}

impl Default for PageRules {
    /// A page of 50 with λ = 0.7, at most 2 per author, 30 % per group, 10 % exploration and 3 boosted slots.
    fn default() -> Self {
        Self {
            page_size: 50,
            mmr_lambda: 0.7,
            max_per_author: 2,
            max_group_share: 0.30,
            explore_share: 0.10,
            max_boosted: 3,
        }
    }
}

impl PageRules {
    /// The most items of one group a page may hold: `max(1, floor(max_group_share · page_size))`, computed in `f64`.
    pub fn group_cap(&self) -> usize {
        // `as` saturates and maps NaN to 0.
        ((self.max_group_share * self.page_size as f64).floor() as usize).max(1)
    }

    /// The number of exploration positions: `round(explore_share · page_size)`, clamped into `0..=page_size`.
    pub fn explore_slot_count(&self) -> usize {
        let rounded = (self.explore_share * self.page_size as f64).round();
        if rounded >= 1.0 {
            (rounded as usize).min(self.page_size)
        } else {
            0
        }
    }

    /// The number of boosted positions before collisions: `min(max_boosted, page_size)`.
    pub fn boosted_slot_count(&self) -> usize {
        self.max_boosted.min(self.page_size)
    }

    /// The planned slot kind of the first `min(page_size, max_len)` positions (rule 1 of the module docs).
    ///
    /// Positions past `max_len` are not materialized, so a huge `page_size`
    /// costs nothing; the plan of the positions returned does not depend on `max_len`.
    pub fn slot_plan(&self, max_len: usize) -> Vec<SlotKind> {
        let k = self.page_size;
        let len = k.min(max_len);
        let mut plan = vec![SlotKind::Regular; len];
        // Both position sequences are non-decreasing in j and at least j, so the loops stop after at most len + 1 steps.
        let explore_count = self.explore_slot_count();
        for j in 0..explore_count {
            let position = scaled_floor(j as u128 + 1, k, explore_count as u128 + 1);
            if position >= len {
                break;
            }
            plan[position] = SlotKind::Explore;
        }
        let boosted_count = self.boosted_slot_count();
        for j in 0..boosted_count {
            // floor((j + 0.5) · k / n_b) in integers: floor((2j + 1) · k / (2 n_b)).
            let wanted = scaled_floor(2 * j as u128 + 1, k, 2 * boosted_count as u128);
            if wanted >= len {
                break;
            }
            match (wanted..len).find(|&position| plan[position] == SlotKind::Regular) {
                Some(free) => plan[free] = SlotKind::Boosted,
                None => break, // later boosted positions start further right and find nothing either
            }
        }
        plan
    }
}

/// `floor(numerator · k / denominator)` without overflow (saturating at `usize::MAX`).
fn scaled_floor(numerator: u128, k: usize, denominator: u128) -> usize {
    numerator
        .checked_mul(k as u128)
        .and_then(|product| product.checked_div(denominator))
        .map_or(usize::MAX, |quotient| usize::try_from(quotient).unwrap_or(usize::MAX))
}

/// One item that may go on the page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageCandidate<'a> {
    /// Relevance; higher is better. NaN ranks below every number.
    pub score: f64,
    /// Who made the item; limited by [`PageRules::max_per_author`].
    pub author: u64,
    /// The item's group (e.g. category); limited by [`PageRules::group_cap`].
    pub group: u64,
    /// Embedding for MMR redundancy (cosine similarity; zero vectors have similarity 0).
    pub embedding: &'a [f32],
    /// May fill an exploration slot.
    pub explore: bool,
    /// May fill a boosted slot.
    pub boosted: bool,
}

/// How a position was filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    /// Chosen by MMR among all eligible candidates.
    Regular,
    /// An exploration slot filled by the best eligible `explore` candidate.
    Explore,
    /// A boosted slot filled by the best eligible `boosted` candidate.
    Boosted,
}

/// One position of the page: which candidate fills it and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// Index into the candidates passed to [`build_page`].
    pub candidate: usize,
    /// The kind of slot the candidate fills.
    pub slot: SlotKind,
}

/// The relevance of the candidate at `rank` (0-based) of a ranking, for a page of `page_size`:
/// `exp(−rank / page_size)`. Weighing by rank rather than raw score keeps MMR's trade-off
/// independent of the scorer's scale.
pub fn rank_relevance(rank: usize, page_size: usize) -> f64 {
    (-(rank as f64) / page_size.max(1) as f64).exp()
}

/// Builds the page: the placements of positions `0, 1, …` in order, at most `page_size` of them.
///
/// Deterministic; never panics. The exact rules are in the module docs.
pub fn build_page(candidates: &[PageCandidate<'_>], rules: &PageRules) -> Vec<Placement> {
    let plan = rules.slot_plan(candidates.len());
    let relevance = relevances(candidates);
    let norms: Vec<f64> = candidates.iter().map(|c| norm(c.embedding)).collect();
    let mut caps = PageCaps::new(candidates, rules.max_per_author, rules.group_cap());
    let mut placed = vec![false; candidates.len()];
    // Largest similarity to the first `seen[i]` items of the page (all of them, unless `lazy`).
    let mut max_similarity = vec![0.0f64; candidates.len()];
    let mut seen = vec![0usize; candidates.len()];
    let lambda = rules.mmr_lambda;
    // With 0 ≤ λ ≤ 1 a candidate's MMR value can only fall as the page grows (maxsim only
    // grows), so a value computed earlier bounds it from above: candidates wait in a queue by
    // that bound and are brought up to date only when they reach its top.
    let lazy = (0.0..=1.0).contains(&lambda);
    let mut queue: BinaryHeap<Queued> = BinaryHeap::new();
    let mmr = |i: usize, max_similarity: &[f64], page_is_empty: bool| {
        let redundancy = if page_is_empty { 0.0 } else { max_similarity[i] };
        lambda * relevance[i] - (1.0 - lambda) * redundancy
    };
    let mut page: Vec<Placement> = Vec::with_capacity(plan.len());

    for &planned in &plan {
        let flagged = |c: &PageCandidate<'_>| match planned {
            SlotKind::Explore => c.explore,
            SlotKind::Boosted => c.boosted,
            SlotKind::Regular => false,
        };
        let flagged_candidates =
            (0..candidates.len()).filter(|&i| !placed[i] && caps.admits(i) && flagged(&candidates[i]));
        let flagged_pick = best_index(flagged_candidates, |i| candidates[i].score);
        let (chosen, slot) = match flagged_pick {
            Some(i) => (i, planned),
            None if lazy && !page.is_empty() => {
                let mut pick = None;
                while let Some(Queued { index: i, .. }) = queue.pop() {
                    // Caps only tighten: a candidate they refuse now is refused for good.
                    if placed[i] || !caps.admits(i) {
                        continue;
                    }
                    if seen[i] < page.len() {
                        for item in &page[seen[i]..] {
                            let j = item.candidate;
                            let similarity =
                                cosine(candidates[i].embedding, norms[i], candidates[j].embedding, norms[j]);
                            max_similarity[i] = max_similarity[i].max(similarity);
                        }
                        seen[i] = page.len();
                        queue.push(Queued { value: mmr(i, &max_similarity, false), index: i });
                        continue;
                    }
                    pick = Some(i);
                    break;
                }
                match pick {
                    Some(i) => (i, SlotKind::Regular),
                    None => break,
                }
            }
            None => {
                let eligible = (0..candidates.len()).filter(|&i| !placed[i] && caps.admits(i));
                match best_index(eligible, |i| mmr(i, &max_similarity, page.is_empty())) {
                    Some(i) => (i, SlotKind::Regular),
                    None => break,
                }
            }
        };

        placed[chosen] = true;
        caps.record(chosen);
        page.push(Placement { candidate: chosen, slot });
        if page.len() == plan.len() {
            break;
        }
        if lazy && page.len() > 1 {
            continue;
        }
        // Eagerly: every unplaced candidate against the newest item (always for the first item,
        // which also fills the queue, as the empty page's values bound nothing).
        let first_on_page = page.len() == 1;
        let newest = &candidates[chosen];
        for (i, candidate) in candidates.iter().enumerate() {
            if placed[i] {
                continue;
            }
            let similarity = cosine(candidate.embedding, norms[i], newest.embedding, norms[chosen]);
            max_similarity[i] = if first_on_page { similarity } else { max_similarity[i].max(similarity) };
            seen[i] = page.len();
            if lazy {
                queue.push(Queued { value: mmr(i, &max_similarity, false), index: i });
            }
        }
    }
    page
}

/// A candidate waiting for a regular position, by an MMR value no lower than its current one.
/// The queue's top is the highest value, then the lowest index (a NaN value ranks lowest).
#[derive(Clone, Copy, Debug)]
struct Queued {
    value: f64,
    index: usize,
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_value = match (self.value.is_nan(), other.value.is_nan()) {
            (false, false) => self.value.partial_cmp(&other.value).unwrap_or(Ordering::Equal),
            (a, b) => b.cmp(&a),
        };
        by_value.then(other.index.cmp(&self.index))
    }
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Queued {}

/// Per-author and per-group counts of the page so far, against their caps.
/// Authors and groups are numbered densely once, so a check is two array reads.
struct PageCaps {
    max_per_author: usize,
    max_per_group: usize,
    author_of: Vec<usize>,
    group_of: Vec<usize>,
    authors: Vec<usize>,
    groups: Vec<usize>,
}

impl PageCaps {
    fn new(candidates: &[PageCandidate<'_>], max_per_author: usize, max_per_group: usize) -> Self {
        let dense = |key: fn(&PageCandidate<'_>) -> u64| -> (Vec<usize>, usize) {
            let mut numbers: FastMap<u64, usize> = FastMap::default();
            let of = candidates
                .iter()
                .map(|c| {
                    let next = numbers.len();
                    *numbers.entry(key(c)).or_insert(next)
                })
                .collect();
            (of, numbers.len())
        };
        let (author_of, authors) = dense(|c| c.author);
        let (group_of, groups) = dense(|c| c.group);
        Self { max_per_author, max_per_group, author_of, group_of, authors: vec![0; authors], groups: vec![0; groups] }
    }

    fn admits(&self, i: usize) -> bool {
        self.authors[self.author_of[i]] < self.max_per_author && self.groups[self.group_of[i]] < self.max_per_group
    }

    fn record(&mut self, i: usize) {
        self.authors[self.author_of[i]] += 1;
        self.groups[self.group_of[i]] += 1;
    }
}

/// The index with the highest value (NaN lowest); ties go to the first index yielded.
fn best_index(indices: impl Iterator<Item = usize>, value: impl Fn(usize) -> f64) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for i in indices {
        let v = value(i);
        if best.is_none_or(|(_, best_value)| ranks_above(v, best_value)) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Whether `a` ranks strictly above `b`, with NaN below every number.
fn ranks_above(a: f64, b: f64) -> bool {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a > b,
        (false, true) => true,
        (true, _) => false,
    }
}

/// Scores rescaled into `[0, 1]` over the finite scores (rule 4 of the module docs).
fn relevances(candidates: &[PageCandidate<'_>]) -> Vec<f64> {
    let finite_range =
        candidates.iter().map(|c| c.score).filter(|s| s.is_finite()).fold(None, |range: Option<(f64, f64)>, s| {
            match range {
                None => Some((s, s)),
                Some((lo, hi)) => Some((lo.min(s), hi.max(s))),
            }
        });
    candidates
        .iter()
        .map(|c| {
            let s = c.score;
            if s.is_nan() || s == f64::NEG_INFINITY {
                return 0.0;
            }
            if s == f64::INFINITY {
                return 1.0;
            }
            match finite_range {
                Some((lo, hi)) if hi > lo => {
                    let span = hi - lo;
                    let rel = if span.is_finite() {
                        (s - lo) / span
                    } else {
                        // The span overflows only for huge magnitudes, where halving loses nothing.
                        (s / 2.0 - lo / 2.0) / (hi / 2.0 - lo / 2.0)
                    };
                    rel.clamp(0.0, 1.0)
                }
                _ => 1.0,
            }
        })
        .collect()
}

/// Euclidean norm in `f64`.
fn norm(vector: &[f32]) -> f64 {
    dot(vector, vector).sqrt()
}

/// Dot product in eight independent f32 lanes (vectorises; the order of additions is fixed, so results are
/// deterministic), summed in f64.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0.0f32; 8];
    let (chunks_a, chunks_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = chunks_a.remainder().iter().zip(chunks_b.remainder()).map(|(x, y)| f64::from(x * y)).sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().map(|v| f64::from(*v)).sum::<f64>() + tail
}

/// Cosine similarity given precomputed norms; 0 for zero vectors, different lengths or non-finite results.
fn cosine(a: &[f32], norm_a: f64, b: &[f32], norm_b: f64) -> f64 {
    if a.len() != b.len() || norm_a == 0.0 || norm_b == 0.0 {
        return 0.0;
    }
    let similarity = dot(a, b) / (norm_a * norm_b);
    if similarity.is_finite() {
        similarity.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a tiny deterministic generator for test data.
    struct TestRng(u64);

    impl TestRng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next_u64() % bound.max(1)
        }

        fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn chance(&mut self, probability: f64) -> bool {
            self.unit() < probability
        }
    }

    const DIMENSIONS: usize = 8;

    /// Candidate data owning its embedding.
    struct OwnedCandidate {
        score: f64,
        author: u64,
        group: u64,
        embedding: Vec<f32>,
        explore: bool,
        boosted: bool,
    }

    impl OwnedCandidate {
        fn view(&self) -> PageCandidate<'_> {
            PageCandidate {
                score: self.score,
                author: self.author,
                group: self.group,
                embedding: &self.embedding,
                explore: self.explore,
                boosted: self.boosted,
            }
        }
    }

    fn views(owned: &[OwnedCandidate]) -> Vec<PageCandidate<'_>> {
        owned.iter().map(OwnedCandidate::view).collect()
    }

    /// Random candidates with many repeated authors and groups, some tied and NaN scores, some zero and
    /// some repeated embeddings.
    fn random_candidates(rng: &mut TestRng, n: usize) -> Vec<OwnedCandidate> {
        let authors = 1 + rng.below(n as u64 / 3 + 2);
        let groups = 1 + rng.below(8);
        let nan_share = if rng.chance(0.3) { 0.1 } else { 0.0 };
        (0..n)
            .map(|_| {
                let score = if rng.chance(nan_share) {
                    f64::NAN
                } else if rng.chance(0.3) {
                    rng.below(4) as f64 // frequent ties
                } else {
                    rng.unit() * 4.0 - 1.0
                };
                let embedding = if rng.chance(0.05) {
                    vec![0.0; DIMENSIONS]
                } else if rng.chance(0.2) {
                    // Coarse components: repeated directions.
                    (0..DIMENSIONS).map(|_| rng.below(3) as f32 - 1.0).collect()
                } else {
                    (0..DIMENSIONS).map(|_| rng.unit() as f32 * 2.0 - 1.0).collect()
                };
                OwnedCandidate {
                    score,
                    author: rng.below(authors),
                    group: rng.below(groups),
                    embedding,
                    explore: rng.chance(0.3),
                    boosted: rng.chance(0.15),
                }
            })
            .collect()
    }

    /// Rule variants exercised by the randomized tests.
    fn rule_variants(k: usize) -> Vec<PageRules> {
        let base = PageRules { page_size: k, ..PageRules::default() };
        vec![
            base,
            PageRules { mmr_lambda: 0.3, ..base },
            PageRules { mmr_lambda: 1.0, ..base },
            PageRules { mmr_lambda: 0.0, max_per_author: 1, max_group_share: 0.1, ..base },
            PageRules { explore_share: 0.5, max_boosted: 6, max_per_author: 3, ..base },
            PageRules { max_per_author: k, max_group_share: 1.0, explore_share: 0.0, max_boosted: 0, ..base },
            PageRules { explore_share: 1.0, max_boosted: k, ..base },
            // λ outside [0, 1]: MMR values are not monotone, every similarity is computed eagerly.
            PageRules { mmr_lambda: 1.5, ..base },
        ]
    }

    const SIZES: [usize; 11] = [0, 1, 2, 3, 5, 9, 20, 50, 120, 200, 300];
    const PAGE_SIZES: [usize; 4] = [0, 1, 10, 50];

    /// Calls `check` for every seed, candidate count, page size and rule variant; returns the number of cases.
    fn for_each_case(mut check: impl FnMut(&[PageCandidate<'_>], &PageRules, &str)) -> usize {
        let mut cases = 0;
        for seed in 0..6u64 {
            let mut rng = TestRng(seed);
            for n in SIZES {
                let owned = random_candidates(&mut rng, n);
                let candidates = views(&owned);
                for k in PAGE_SIZES {
                    for (variant, rules) in rule_variants(k).iter().enumerate() {
                        let label = format!("seed {seed}, n {n}, k {k}, variant {variant}");
                        check(&candidates, rules, &label);
                        cases += 1;
                    }
                }
            }
        }
        cases
    }

    /// The slot plan written plainly from the formulas (floating point, full length `k`).
    fn reference_plan(rules: &PageRules) -> Vec<SlotKind> {
        let k = rules.page_size;
        let mut plan = vec![SlotKind::Regular; k];
        let explore_count = ((rules.explore_share * k as f64).round().max(0.0) as usize).min(k);
        for j in 0..explore_count {
            let position = ((j + 1) as f64 * k as f64 / (explore_count + 1) as f64).floor() as usize;
            plan[position.min(k - 1)] = SlotKind::Explore;
        }
        let boosted_count = rules.max_boosted.min(k);
        for j in 0..boosted_count {
            let mut position = ((j as f64 + 0.5) * k as f64 / boosted_count as f64).floor() as usize;
            while position < k && plan[position] != SlotKind::Regular {
                position += 1;
            }
            if position < k {
                plan[position] = SlotKind::Boosted;
            }
        }
        plan
    }

    fn reference_cosine(a: &[f32], b: &[f32]) -> f64 {
        if a.len() != b.len() {
            return 0.0;
        }
        // The arithmetic kernel is shared; the reference checks the page logic around it.
        let (dot, aa, bb) = (super::dot(a, b), super::dot(a, a), super::dot(b, b));
        let (norm_a, norm_b) = (aa.sqrt(), bb.sqrt());
        if norm_a == 0.0 || norm_b == 0.0 {
            return 0.0;
        }
        let similarity = dot / (norm_a * norm_b);
        if similarity.is_nan() || similarity.is_infinite() {
            0.0
        } else {
            similarity.clamp(-1.0, 1.0)
        }
    }

    /// `a` beats `b` (NaN lowest, ties keep the earlier one).
    fn reference_beats(a: f64, b: f64) -> bool {
        if a.is_nan() {
            false
        } else if b.is_nan() {
            true
        } else {
            a > b
        }
    }

    /// Brute force: recounts the page and recomputes every similarity from scratch at each position.
    fn reference_page(candidates: &[PageCandidate<'_>], rules: &PageRules) -> Vec<Placement> {
        let k = rules.page_size;
        let plan = reference_plan(rules);
        let group_cap = ((rules.max_group_share * k as f64).floor() as usize).max(1);
        let finite: Vec<f64> = candidates.iter().map(|c| c.score).filter(|s| s.is_finite()).collect();
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let rel = |s: f64| {
            if s.is_nan() {
                0.0
            } else if !finite.is_empty() && hi > lo {
                (s - lo) / (hi - lo)
            } else {
                1.0
            }
        };
        let mut page: Vec<Placement> = Vec::new();
        for kind in plan {
            let eligible: Vec<usize> = (0..candidates.len())
                .filter(|&i| {
                    let c = &candidates[i];
                    let on_page = |same: &dyn Fn(&PageCandidate<'_>) -> bool| {
                        page.iter().filter(|p| same(&candidates[p.candidate])).count()
                    };
                    !page.iter().any(|p| p.candidate == i)
                        && on_page(&|o| o.author == c.author) < rules.max_per_author
                        && on_page(&|o| o.group == c.group) < group_cap
                })
                .collect();
            if eligible.is_empty() {
                break;
            }
            let mut chosen: Option<(usize, SlotKind)> = None;
            if kind != SlotKind::Regular {
                let mut best: Option<usize> = None;
                for &i in &eligible {
                    let c = &candidates[i];
                    let flagged = if kind == SlotKind::Explore { c.explore } else { c.boosted };
                    if flagged && best.is_none_or(|b| reference_beats(c.score, candidates[b].score)) {
                        best = Some(i);
                    }
                }
                chosen = best.map(|i| (i, kind));
            }
            if chosen.is_none() {
                let mut best: Option<(usize, f64)> = None;
                for &i in &eligible {
                    let mut max_similarity = 0.0;
                    for (n, p) in page.iter().enumerate() {
                        let similarity = reference_cosine(candidates[i].embedding, candidates[p.candidate].embedding);
                        if n == 0 || similarity > max_similarity {
                            max_similarity = similarity;
                        }
                    }
                    let value = rules.mmr_lambda * rel(candidates[i].score) - (1.0 - rules.mmr_lambda) * max_similarity;
                    if best.is_none_or(|(_, b)| reference_beats(value, b)) {
                        best = Some((i, value));
                    }
                }
                chosen = best.map(|(i, _)| (i, SlotKind::Regular));
            }
            let (candidate, slot) = chosen.expect("eligible is non-empty");
            page.push(Placement { candidate, slot });
        }
        page
    }

    #[test]
    fn matches_brute_force_reference() {
        let cases = for_each_case(|candidates, rules, label| {
            assert_eq!(build_page(candidates, rules), reference_page(candidates, rules), "{label}");
        });
        assert_eq!(cases, 6 * SIZES.len() * PAGE_SIZES.len() * 8);
    }

    #[test]
    fn slot_plan_matches_formulas() {
        for k in 0..=120 {
            for explore_share in [0.0, 0.1, 0.25, 0.5, 1.0] {
                for max_boosted in [0, 1, 3, 7, 200] {
                    let rules = PageRules { page_size: k, explore_share, max_boosted, ..PageRules::default() };
                    let expected = reference_plan(&rules);
                    assert_eq!(rules.slot_plan(usize::MAX), expected, "k {k}, share {explore_share}, {max_boosted}");
                    // A shorter materialization is a prefix of the full plan.
                    assert_eq!(rules.slot_plan(k / 2), expected[..k / 2], "k {k}");
                }
            }
        }
        let plan_of = |page_size| {
            let plan = PageRules { page_size, ..PageRules::default() }.slot_plan(usize::MAX);
            let positions = |kind| (0..plan.len()).filter(|&p| plan[p] == kind).collect::<Vec<_>>();
            (positions(SlotKind::Explore), positions(SlotKind::Boosted))
        };
        assert_eq!(plan_of(10), (vec![5], vec![1, 6, 8])); // boosted 5 collides with exploration
        assert_eq!(plan_of(50), (vec![8, 16, 25, 33, 41], vec![9, 26, 42]));
        assert_eq!(plan_of(1), (vec![], vec![0]));
    }

    #[test]
    fn caps_and_slot_limits_hold_on_every_page() {
        for_each_case(|candidates, rules, label| {
            let page = build_page(candidates, rules);
            assert!(page.len() <= rules.page_size.min(candidates.len()), "{label}");
            let mut seen = vec![false; candidates.len()];
            let mut authors: FastMap<u64, usize> = FastMap::default();
            let mut groups: FastMap<u64, usize> = FastMap::default();
            let plan = rules.slot_plan(usize::MAX);
            for (position, placement) in page.iter().enumerate() {
                let c = &candidates[placement.candidate];
                assert!(!seen[placement.candidate], "{label}: repeated candidate");
                seen[placement.candidate] = true;
                *authors.entry(c.author).or_default() += 1;
                *groups.entry(c.group).or_default() += 1;
                match placement.slot {
                    SlotKind::Explore => assert!(c.explore && plan[position] == SlotKind::Explore, "{label}"),
                    SlotKind::Boosted => assert!(c.boosted && plan[position] == SlotKind::Boosted, "{label}"),
                    SlotKind::Regular => {}
                }
            }
            assert!(authors.values().all(|&n| n <= rules.max_per_author), "{label}: author cap");
            assert!(groups.values().all(|&n| n <= rules.group_cap()), "{label}: group cap");
            let count = |kind| page.iter().filter(|p| p.slot == kind).count();
            assert!(count(SlotKind::Boosted) <= rules.max_boosted, "{label}");
            assert!(count(SlotKind::Explore) <= rules.explore_slot_count(), "{label}");
        });
    }

    /// Distinct authors and five groups; every candidate may fill exploration and boosted slots.
    fn plentiful_candidates(rng: &mut TestRng, n: usize) -> Vec<OwnedCandidate> {
        (0..n)
            .map(|i| OwnedCandidate {
                score: rng.unit(),
                author: i as u64,
                group: i as u64 % 5,
                embedding: (0..DIMENSIONS).map(|_| rng.unit() as f32 - 0.5).collect(),
                explore: true,
                boosted: true,
            })
            .collect()
    }

    #[test]
    fn slots_follow_the_plan_when_flagged_candidates_are_plentiful() {
        for seed in 0..4 {
            let mut rng = TestRng(100 + seed);
            let owned = plentiful_candidates(&mut rng, 300);
            let candidates = views(&owned);
            for k in [1, 10, 50] {
                for rules in [
                    PageRules { page_size: k, ..PageRules::default() },
                    PageRules { page_size: k, explore_share: 0.3, max_boosted: 5, ..PageRules::default() },
                ] {
                    let page = build_page(&candidates, &rules);
                    let slots: Vec<SlotKind> = page.iter().map(|p| p.slot).collect();
                    assert_eq!(slots, reference_plan(&rules), "seed {seed}, k {k}");
                    let explore = slots.iter().filter(|&&s| s == SlotKind::Explore).count();
                    assert_eq!(explore, rules.explore_slot_count(), "seed {seed}, k {k}");
                    assert!(slots.iter().filter(|&&s| s == SlotKind::Boosted).count() <= rules.max_boosted);
                }
            }
        }
    }

    #[test]
    fn page_is_full_with_enough_diverse_candidates() {
        for seed in 0..4 {
            let mut rng = TestRng(200 + seed);
            let mut owned = plentiful_candidates(&mut rng, 300);
            for c in &mut owned {
                c.explore = rng.chance(0.2);
                c.boosted = rng.chance(0.1);
            }
            let candidates = views(&owned);
            for k in [1, 10, 50] {
                let rules = PageRules { page_size: k, ..PageRules::default() };
                assert_eq!(build_page(&candidates, &rules).len(), k, "seed {seed}, k {k}");
            }
        }
    }

    #[test]
    fn pure_relevance_without_caps_sorts_by_score() {
        for seed in 0..6 {
            let mut rng = TestRng(300 + seed);
            for n in SIZES {
                let mut owned = random_candidates(&mut rng, n);
                for c in &mut owned {
                    c.score = rng.below(40) as f64 / 8.0; // exact values, many ties
                }
                let candidates = views(&owned);
                for k in PAGE_SIZES {
                    let rules = PageRules {
                        page_size: k,
                        mmr_lambda: 1.0,
                        max_per_author: k,
                        max_group_share: 1.0,
                        explore_share: 0.0,
                        max_boosted: 0,
                    };
                    let mut expected: Vec<usize> = (0..n).collect();
                    expected.sort_by(|&a, &b| owned[b].score.total_cmp(&owned[a].score).then(a.cmp(&b)));
                    expected.truncate(k);
                    let page = build_page(&candidates, &rules);
                    assert!(page.iter().all(|p| p.slot == SlotKind::Regular));
                    let order: Vec<usize> = page.iter().map(|p| p.candidate).collect();
                    assert_eq!(order, expected, "seed {seed}, n {n}, k {k}");
                }
            }
        }
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let rules = PageRules::default();
        assert!(build_page(&[], &rules).is_empty());
        assert!(build_page(&[], &PageRules { page_size: usize::MAX, max_boosted: usize::MAX, ..rules }).is_empty());

        let mut rng = TestRng(7);
        let mut owned = random_candidates(&mut rng, 40);
        let candidates = views(&owned);
        assert!(build_page(&candidates, &PageRules { page_size: 0, ..rules }).is_empty());
        assert!(build_page(&candidates, &PageRules { max_per_author: 0, ..rules }).is_empty());

        let strange_rules = [
            PageRules { mmr_lambda: f64::NAN, max_group_share: f64::NAN, explore_share: f64::NAN, ..rules },
            PageRules { mmr_lambda: f64::INFINITY, max_group_share: -1.0, explore_share: -3.0, ..rules },
            PageRules { max_group_share: f64::INFINITY, explore_share: f64::INFINITY, ..rules },
            PageRules { page_size: usize::MAX, max_per_author: usize::MAX, max_boosted: usize::MAX, ..rules },
            PageRules { page_size: usize::MAX, explore_share: 0.5, max_group_share: 1.0, ..rules },
        ];
        for strange in &strange_rules {
            let page = build_page(&candidates, strange);
            assert!(page.len() <= candidates.len());
        }
        // A huge page takes every candidate once when caps allow it.
        assert_eq!(build_page(&candidates, &strange_rules[3]).len(), candidates.len());

        // All scores NaN, infinite scores, NaN and infinite embedding components, mismatched lengths.
        for c in &mut owned {
            c.score = f64::NAN;
        }
        let page = build_page(&views(&owned), &rules);
        assert_eq!(page, reference_page(&views(&owned), &rules));
        owned[0].score = f64::INFINITY;
        owned[1].score = f64::NEG_INFINITY;
        owned[2].embedding = vec![f32::NAN; DIMENSIONS];
        owned[3].embedding = vec![f32::INFINITY; DIMENSIONS];
        owned[4].embedding = vec![1.0; 3];
        owned[5].embedding = Vec::new();
        owned[6].embedding = vec![f32::MAX; DIMENSIONS];
        let page = build_page(&views(&owned), &PageRules { page_size: 40, ..rules });
        assert!(!page.is_empty());
        assert_eq!(page[0].candidate, 0, "+∞ is the most relevant");
    }

    #[test]
    fn nan_scores_rank_last() {
        let embedding = [1.0f32; DIMENSIONS];
        let scores = [f64::NAN, 0.5, f64::NAN, -2.0, 3.0];
        let candidates: Vec<PageCandidate<'_>> = scores
            .iter()
            .enumerate()
            .map(|(i, &score)| PageCandidate {
                score,
                author: i as u64,
                group: i as u64,
                embedding: &embedding,
                explore: true,
                boosted: false,
            })
            .collect();
        // An exploration slot ranks by score alone: the NaN candidates come last, in index order.
        let rules = PageRules { page_size: 5, explore_share: 1.0, max_boosted: 0, ..PageRules::default() };
        let order: Vec<usize> = build_page(&candidates, &rules).iter().map(|p| p.candidate).collect();
        assert_eq!(order, vec![4, 1, 3, 0, 2]);
    }

    #[test]
    fn page_ends_when_caps_exhaust_the_candidates() {
        let embedding = [0.0f32; DIMENSIONS];
        let candidate = |author, group| PageCandidate {
            score: 1.0,
            author,
            group,
            embedding: &embedding,
            explore: false,
            boosted: false,
        };
        let rules = PageRules { page_size: 10, ..PageRules::default() }; // 2 per author, 3 per group
        let same_author: Vec<_> = (0..6).map(|g| candidate(1, g)).collect();
        assert_eq!(build_page(&same_author, &rules).len(), 2);
        let same_group: Vec<_> = (0..6).map(|a| candidate(a, 1)).collect();
        assert_eq!(build_page(&same_group, &rules).len(), 3);
    }
}
