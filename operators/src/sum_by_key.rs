//! Maintains the sum of each key's updates and emits its changes as a collection, for totally ordered ticks.
//!
//! The output is what differential's `count_total` produces (`(key, sum)`
//! records, the old one retracted and the new one added whenever a key's sum
//! changes), computed with a hash map at the key's owner worker instead of an
//! arrangement: a window count only ever needs the current sum.
//!
//! ```
//! use differential_dataflow::input::Input;
//! use feedflow_operators::sum_by_key::SumByKey;
//! timely::example(|scope| {
//!     let (mut input, clicks) = scope.new_collection::<u64, i64>();
//!     clicks.sum_by_key().inspect(|x| println!("{x:?}"));
//!     input.update(7, 3);
//!     input.update(7, 2); // emits ((7, 5), 0, +1)
//! });
//! ```

use crate::hash::FastMap;
use crate::tick_batch::TickBatch;
use differential_dataflow::difference::Semigroup;
use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use std::hash::Hash;

/// Per-key sums of a collection's diffs.
pub trait SumByKey<'scope, K, R> {
    /// `(key, Σ diffs)` for every key whose sum is not zero, maintained incrementally.
    fn sum_by_key(self) -> VecCollection<'scope, u64, (K, R), isize>;
}

impl<'scope, K, R> SumByKey<'scope, K, R> for VecCollection<'scope, u64, K, R>
where
    K: ExchangeData + Hashable + Hash,
    R: ExchangeData + Semigroup + Clone,
{
    fn sum_by_key(self) -> VecCollection<'scope, u64, (K, R), isize> {
        let mut sums: FastMap<K, R> = FastMap::default();
        self.inner
            .tick_batch_by(
                "SumByKey",
                |(k, _, _): &(K, u64, R)| k.hashed().into(),
                |(_, t, _)| *t,
                move |tick, batch, out| {
                    // Net change per key in this tick, then one retraction and one addition per changed key.
                    let mut delta: FastMap<K, R> = FastMap::default();
                    for (k, _, r) in batch {
                        match delta.get_mut(&k) {
                            Some(d) => d.plus_equals(&r),
                            None => {
                                delta.insert(k, r);
                            }
                        }
                    }
                    let mut changed: Vec<(K, R)> = delta.into_iter().filter(|(_, d)| !d.is_zero()).collect();
                    changed.sort_by(|a, b| a.0.cmp(&b.0));
                    for (k, d) in changed {
                        let old = sums.remove(&k);
                        let mut new = d;
                        if let Some(old) = &old {
                            new.plus_equals(old);
                            out.push(((k.clone(), old.clone()), tick, -1));
                        }
                        if !new.is_zero() {
                            out.push(((k.clone(), new.clone()), tick, 1));
                            sums.insert(k, new);
                        }
                    }
                },
            )
            .as_collection()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::input::Input;
    use differential_dataflow::operators::CountTotal;
    use timely::dataflow::operators::capture::Extract;
    use timely::dataflow::operators::Capture;

    /// Same changes as differential's count_total on a random workload.
    #[test]
    fn matches_count_total() {
        let (send, recv) = std::sync::mpsc::channel();
        let send = std::sync::Arc::new(std::sync::Mutex::new(send));
        let (send_ours, recv_ours) = std::sync::mpsc::channel();
        let send_ours = std::sync::Arc::new(std::sync::Mutex::new(send_ours));
        timely::execute(timely::Config::process(2), move |worker| {
            let send = send.lock().unwrap().clone();
            let send_ours = send_ours.lock().unwrap().clone();
            let mut input = worker.dataflow::<u64, _, _>(|scope| {
                let (input, data) = scope.new_collection::<u64, i64>();
                let ours = data.clone().sum_by_key();
                ours.clone().inner.capture_into(send_ours);
                let theirs = data.count_total();
                ours.negate().concat(theirs).consolidate().inner.capture_into(send);
                input
            });
            let mut state = 1u64 + worker.index() as u64;
            for tick in 0..200u64 {
                input.advance_to(tick);
                for _ in 0..20 {
                    state = crate::hash::mix64(state);
                    let key = state % 13;
                    let diff = (state >> 20) as i64 % 5 - 2;
                    input.update(key, diff);
                }
            }
        })
        .unwrap();
        let differences: Vec<_> = recv.extract().into_iter().flat_map(|(_, v)| v).collect();
        let ours: usize = recv_ours.extract().iter().map(|(_, v)| v.len()).sum();
        assert!(ours > 1000, "the workload produces changes ({ours})");
        assert!(differences.is_empty(), "sum_by_key differs from count_total: {differences:?}");
    }
}
