//! Keeps the first `k` values of each key, in the values' own order, maintained incrementally.
//!
//! For a single global list over many records, [`TopK::top_k_global`] first
//! keeps the top `k` of each of `buckets` sub-lists, so one change re-sorts a
//! bucket and the short merged list rather than everything.

use differential_dataflow::{ExchangeData, Hashable, VecCollection};

/// Top-k selection per key.
pub trait TopK<'scope, K, V> {
    /// The `k` smallest values of each key (order values so that "best" is smallest).
    fn top_k_per_key(self, k: usize) -> VecCollection<'scope, u64, (K, V), isize>;
}

impl<'scope, K, V> TopK<'scope, K, V> for VecCollection<'scope, u64, (K, V), isize>
where
    K: ExchangeData + Hashable,
    V: ExchangeData,
{
    fn top_k_per_key(self, k: usize) -> VecCollection<'scope, u64, (K, V), isize> {
        self.reduce_named("TopK", move |_key, input, output| {
            // Values arrive sorted and with positive counts; a repeated value counts once.
            output.extend(input.iter().take(k).map(|(value, _)| ((*value).clone(), 1)));
        })
    }
}

/// Top-k over a whole collection, in two stages.
pub trait TopKGlobal<'scope, V> {
    /// The `k` smallest values overall; `bucket(v)` spreads the first stage.
    fn top_k_global<B: Fn(&V) -> u64 + 'static>(
        self,
        k: usize,
        buckets: u64,
        bucket: B,
    ) -> VecCollection<'scope, u64, V, isize>;
}

impl<'scope, V: ExchangeData> TopKGlobal<'scope, V> for VecCollection<'scope, u64, V, isize> {
    fn top_k_global<B: Fn(&V) -> u64 + 'static>(
        self,
        k: usize,
        buckets: u64,
        bucket: B,
    ) -> VecCollection<'scope, u64, V, isize> {
        self.map(move |v| (bucket(&v) % buckets.max(1), v))
            .top_k_per_key(k)
            .map(|(_, v)| ((), v))
            .top_k_per_key(k)
            .map(|((), v)| v)
    }
}
