//! Keeps the first `k` values of each key, in the values' own order, maintained incrementally.
//!
//! Each change of a key re-sorts that key's values, so keys should be many
//! and small (categories, not one global list).

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

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::input::Input;
    use std::collections::BTreeMap;
    use timely::dataflow::operators::capture::Extract;
    use timely::dataflow::operators::Capture;

    /// After every round of inserts and removals, the maintained top-3 per key
    /// equals sorting each key's current values.
    #[test]
    fn matches_sorting_each_key() {
        let (send, recv) = std::sync::mpsc::channel();
        let send = std::sync::Arc::new(std::sync::Mutex::new(send));
        let mut expected: BTreeMap<u64, BTreeMap<u64, Vec<u64>>> = BTreeMap::new();
        let mut live: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut updates = Vec::new();
        let mut state = 7u64;
        for tick in 0..50u64 {
            for _ in 0..6 {
                state = crate::hash::mix64(state);
                let (key, value) = (state % 4, (state >> 8) % 40);
                let values = live.entry(key).or_default();
                if let Some(i) = values.iter().position(|v| *v == value) {
                    values.remove(i);
                    updates.push((tick, (key, value), -1isize));
                } else {
                    values.push(value);
                    updates.push((tick, (key, value), 1));
                }
            }
            let top = live.iter().map(|(k, v)| {
                let mut v = v.clone();
                v.sort();
                v.truncate(3);
                (*k, v)
            });
            expected.insert(tick, top.filter(|(_, v)| !v.is_empty()).collect());
        }
        let feed = updates.clone();
        timely::execute(timely::Config::thread(), move |worker| {
            let send = send.lock().unwrap().clone();
            let mut input = worker.dataflow::<u64, _, _>(|scope| {
                let (input, data) = scope.new_collection::<(u64, u64), isize>();
                data.top_k_per_key(3).inner.capture_into(send);
                input
            });
            for (tick, record, diff) in feed.iter().cloned() {
                input.advance_to(tick);
                input.update(record, diff);
            }
        })
        .unwrap();
        let changes: Vec<_> = recv.extract().into_iter().flat_map(|(_, v)| v).collect();
        for (tick, want) in expected {
            let mut got: BTreeMap<(u64, u64), isize> = BTreeMap::new();
            for ((k, v), t, r) in &changes {
                if *t <= tick {
                    *got.entry((*k, *v)).or_default() += r;
                }
            }
            let mut by_key: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for ((k, v), r) in got {
                assert!(r == 0 || r == 1);
                if r == 1 {
                    by_key.entry(k).or_default().push(v);
                }
            }
            assert_eq!(by_key, want, "tick {tick}");
        }
    }
}
