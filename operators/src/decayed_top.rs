//! Exponentially decayed sums per key, kept in order: "most engaged lately" without a hard window.
//!
//! `add(tick, key, w)` adds `w · 2^(−(now − tick)/half_life)` to the key's value at any
//! later `now`. Values are stored scaled to a common reference tick, so one decay factor
//! applies to every key: the order of keys never changes with time alone, and a read
//! costs no update. The reference sits on a grid of [`GRID_HALF_LIVES`] half-lives and moves
//! forward (every stored value is rescaled) when an addition falls in a later cell: the
//! rescaling multiplies by a power of two, which is exact, so a key's value is the same bits
//! whichever other keys share the structure (and so for any number of workers). A hard window zeroes out on a log with a few events a day and
//! holds millions of entries on a busy one; a half-life gives a useful answer on both.
//!
//! ```
//! use feedflow_operators::decayed_top::DecayedTop;
//! let mut top = DecayedTop::new(10);
//! top.add(0, 1, 4.0);
//! top.add(10, 2, 3.0);
//! assert!((top.value(1, 10) - 2.0).abs() < 1e-9); // one half-life later
//! assert_eq!(top.best(10).map(|(k, _)| k).collect::<Vec<_>>(), vec![2, 1]);
//! ```

use crate::hash::FastMap;
use std::cmp::Reverse;
use std::collections::BTreeSet;

/// The reference tick is a multiple of this many half-lives (stored scales stay below 2^64).
pub const GRID_HALF_LIVES: u64 = 64;

/// Decayed sums per key, ordered by value.
#[derive(Clone, Debug)]
pub struct DecayedTop {
    half_life: f64,
    grid: u64,
    /// The tick at which a stored value equals the decayed value.
    reference: u64,
    /// key → stored value (value at `reference`)
    values: FastMap<u64, f64>,
    /// (Reverse(stored value bits), key) for positive values: positive f64s order as their bits.
    ordered: BTreeSet<(Reverse<u64>, u64)>,
}

impl DecayedTop {
    /// Sums that halve every `half_life` ticks.
    pub fn new(half_life: u64) -> Self {
        let half_life = half_life.max(1);
        Self {
            half_life: half_life as f64,
            grid: half_life.saturating_mul(GRID_HALF_LIVES),
            reference: 0,
            values: FastMap::default(),
            ordered: BTreeSet::new(),
        }
    }

    fn scale(&self, tick: u64) -> f64 {
        ((tick as f64 - self.reference as f64) / self.half_life).exp2()
    }

    /// Adds `weight` (positive or negative) to `key` at `tick` (ticks must not decrease).
    pub fn add(&mut self, tick: u64, key: u64, weight: f64) {
        if !weight.is_finite() || weight == 0.0 {
            return;
        }
        let cell = tick / self.grid * self.grid;
        if cell > self.reference {
            self.rescale(cell);
        }
        let scaled = weight * self.scale(tick);
        let value = self.values.entry(key).or_insert(0.0);
        let before = *value;
        *value += scaled;
        let after = *value;
        if before > 0.0 {
            self.ordered.remove(&(Reverse(before.to_bits()), key));
        }
        if after > 0.0 {
            self.ordered.insert((Reverse(after.to_bits()), key));
        } else if after == 0.0 {
            self.values.remove(&key);
        }
    }

    /// Moves the reference to the grid tick `cell`; values too small to matter any more (below
    /// 1e-180) are forgotten, so quiet keys do not accumulate.
    fn rescale(&mut self, cell: u64) {
        // (cell − reference) / half_life is a multiple of GRID_HALF_LIVES: an exact power of two.
        let factor = self.scale(cell).recip();
        self.reference = cell;
        self.values.retain(|_, v| {
            *v *= factor;
            v.abs() > 1e-180
        });
        self.ordered = self.values.iter().filter(|(_, v)| **v > 0.0).map(|(k, v)| (Reverse(v.to_bits()), *k)).collect();
    }

    /// The decayed value of `key` at `tick` (0 when unknown).
    pub fn value(&self, key: u64, tick: u64) -> f64 {
        self.values.get(&key).map_or(0.0, |v| v / self.scale(tick))
    }

    /// Keys with a positive value, best first (ties: lower key), with their values at `tick`.
    pub fn best(&self, tick: u64) -> impl Iterator<Item = (u64, f64)> + '_ {
        let unscale = self.scale(tick).recip();
        self.ordered.iter().map(move |(Reverse(bits), k)| (*k, f64::from_bits(*bits) * unscale))
    }

    /// Number of keys with a nonzero value.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_direct_sum_and_survives_rescaling() {
        // Half-life 3 ticks over 5,000 ticks: the reference moves 26 times.
        let mut top = DecayedTop::new(3);
        let mut log: Vec<(u64, u64, f64)> = Vec::new();
        let mut x = 4242u64;
        for tick in 0..5_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (key, w) = ((x >> 33) % 20, ((x >> 50) % 7) as f64 - 1.0);
            top.add(tick, key, w);
            log.push((tick, key, w));
            if tick % 97 == 0 {
                let mut want: Vec<(u64, f64)> = (0..20u64)
                    .map(|k| {
                        let v: f64 =
                            log.iter().filter(|e| e.1 == k).map(|e| e.2 * (-((tick - e.0) as f64) / 3.0).exp2()).sum();
                        (k, v)
                    })
                    .collect();
                for (k, v) in &want {
                    assert!((top.value(*k, tick) - v).abs() <= 1e-9 * (1.0 + v.abs()), "tick {tick} key {k}");
                }
                want.retain(|(_, v)| *v > 1e-9);
                want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                let got: Vec<u64> = top.best(tick).filter(|(_, v)| *v > 1e-9).map(|(k, _)| k).collect();
                assert_eq!(got, want.iter().map(|(k, _)| *k).collect::<Vec<_>>(), "tick {tick}");
            }
        }
    }

    #[test]
    fn a_keys_value_does_not_depend_on_the_other_keys() {
        // Two structures see key 1's additions at the same ticks; only one also holds other keys,
        // which move its reference at other times. Key 1's value must be bit-identical.
        let (mut alone, mut shared) = (DecayedTop::new(5), DecayedTop::new(5));
        for tick in (1_700_000_000u64..1_700_003_000).step_by(7) {
            if tick % 3 == 0 {
                alone.add(tick, 1, 1.5);
                shared.add(tick, 1, 1.5);
            }
            shared.add(tick, 2 + tick % 5, 0.5);
        }
        assert_eq!(alone.value(1, 1_700_003_000).to_bits(), shared.value(1, 1_700_003_000).to_bits());
    }
}
