//! A time-decayed weighted sum of vectors: `Σ wᵢ·vᵢ·2^(−(T−tᵢ)/half_life)`, evaluated at any time T.
//!
//! Stored as its value at a reference time, so an update costs one scale and
//! one add, whatever the history length.
//!
//! ```
//! use feedflow_operators::decayed_vector::DecayedSum;
//! let mut v = DecayedSum::new(2);
//! v.add(0, 1.0, &[1.0, 0.0], 10);
//! assert!((v.value_at(10, 10)[0] - 0.5).abs() < 1e-12); // one half-life later
//! ```

use serde::{Deserialize, Serialize};

/// Decayed sum of weighted vectors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecayedSum {
    sum: Vec<f64>,
    at: i64,
    updates: u64,
}

fn decay(dt_ms: i64, half_life_ms: u64) -> f64 {
    (-(dt_ms as f64) / half_life_ms as f64).exp2()
}

impl DecayedSum {
    /// An empty sum of `dimensions`-long vectors.
    pub fn new(dimensions: usize) -> Self {
        Self { sum: vec![0.0; dimensions], at: i64::MIN, updates: 0 }
    }

    /// Adds `weight · vector` observed at `ts` (ms). Out-of-order times are fine.
    pub fn add(&mut self, ts: i64, weight: f64, vector: &[f32], half_life_ms: u64) {
        if self.updates == 0 {
            self.at = ts;
        }
        self.updates += 1;
        let scale = if ts >= self.at {
            let shrink = decay(ts - self.at, half_life_ms);
            if shrink != 1.0 {
                self.sum.iter_mut().for_each(|s| *s *= shrink);
            }
            self.at = ts;
            weight
        } else {
            weight * decay(self.at - ts, half_life_ms)
        };
        for (s, v) in self.sum.iter_mut().zip(vector) {
            *s += scale * *v as f64;
        }
    }

    /// The sum as of time `ts` (ms).
    pub fn value_at(&self, ts: i64, half_life_ms: u64) -> Vec<f64> {
        if self.updates == 0 {
            return self.sum.clone();
        }
        let f = decay(ts - self.at, half_life_ms);
        self.sum.iter().map(|s| s * f).collect()
    }

    /// How many vectors were added.
    pub fn updates(&self) -> u64 {
        self.updates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(items: &[(i64, f64, [f32; 2])], at: i64, hl: u64) -> Vec<f64> {
        let mut out = vec![0.0; 2];
        for (t, w, v) in items {
            for i in 0..2 {
                out[i] += w * v[i] as f64 * decay(at - t, hl);
            }
        }
        out
    }

    #[test]
    fn matches_direct_sum_in_any_order() {
        let items = [(100, 1.0, [1.0, 0.0]), (50, -0.5, [0.0, 1.0]), (400, 2.0, [0.5, 0.5]), (399, 1.5, [1.0, 1.0])];
        let mut d = DecayedSum::new(2);
        for (t, w, v) in items {
            d.add(t, w, &v, 300);
        }
        for at in [400, 1_000, 10_000] {
            let (a, b) = (d.value_at(at, 300), brute(&items, at, 300));
            for i in 0..2 {
                assert!((a[i] - b[i]).abs() < 1e-12, "{a:?} {b:?}");
            }
        }
    }
}
