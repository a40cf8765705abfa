//! Keeps the first `k` values of each key, in the values' own order, maintained incrementally.
//!
//! Each key's values live in an ordered map at the key's owner worker; a tick
//! that changes a key compares its new first `k` with the ones emitted before
//! and emits the difference, so keys may be few and their value sets large
//! only as far as an ordered map allows (categories, not one global list).

use crate::hash::FastMap;
use crate::tick_batch::TickBatch;
use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use std::collections::btree_map::{BTreeMap, Entry};
use std::hash::Hash;

/// Top-k selection per key.
pub trait TopK<'scope, K, V> {
    /// The `k` smallest values of each key (order values so that "best" is smallest), each once.
    fn top_k_per_key(self, k: usize) -> VecCollection<'scope, u64, (K, V), isize>;
}

impl<'scope, K, V> TopK<'scope, K, V> for VecCollection<'scope, u64, (K, V), isize>
where
    K: ExchangeData + Hashable + Hash,
    V: ExchangeData,
{
    fn top_k_per_key(self, k: usize) -> VecCollection<'scope, u64, (K, V), isize> {
        // key → (value → count, the values emitted as its top k).
        let mut keys: FastMap<K, (BTreeMap<V, isize>, Vec<V>)> = FastMap::default();
        self.inner
            .tick_batch_by(
                "TopK",
                |((key, _), _, _): &((K, V), u64, isize)| key.hashed().into(),
                |(_, t, _)| *t,
                move |tick, mut batch, out| {
                    batch.sort_by(|a, b| a.0.cmp(&b.0));
                    let mut changed: Vec<K> = Vec::new();
                    for ((key, value), _, diff) in batch {
                        if changed.last() != Some(&key) {
                            changed.push(key.clone());
                        }
                        let (values, _) = keys.entry(key).or_default();
                        match values.entry(value) {
                            Entry::Occupied(mut count) => {
                                *count.get_mut() += diff;
                                if *count.get() == 0 {
                                    count.remove();
                                }
                            }
                            Entry::Vacant(slot) => {
                                if diff != 0 {
                                    slot.insert(diff);
                                }
                            }
                        }
                    }
                    for key in changed {
                        let Some((values, emitted)) = keys.get_mut(&key) else { continue };
                        // A value counts once, however many times it is present.
                        let top: Vec<V> = values.keys().take(k).cloned().collect();
                        for gone in emitted.iter().filter(|v| top.binary_search(v).is_err()) {
                            out.push(((key.clone(), gone.clone()), tick, -1));
                        }
                        for new in top.iter().filter(|v| emitted.binary_search(v).is_err()) {
                            out.push(((key.clone(), new.clone()), tick, 1));
                        }
                        *emitted = top;
                        if values.is_empty() {
                            keys.remove(&key);
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
    use std::collections::BTreeMap;
    use timely::dataflow::operators::capture::Extract;
    use timely::dataflow::operators::Capture;

    /// After every round of inserts and removals, the maintained top-3 per key
    /// equals sorting each key's current values.
    #[test]
    fn matches_sorting_each_key() {
        for workers in [1, 2] {
            check_against_sorting(workers);
        }
    }

    fn check_against_sorting(workers: usize) {
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
        timely::execute(timely::Config::process(workers), move |worker| {
            let index = worker.index();
            let send = send.lock().unwrap().clone();
            let mut input = worker.dataflow::<u64, _, _>(|scope| {
                let (input, data) = scope.new_collection::<(u64, u64), isize>();
                data.top_k_per_key(3).inner.capture_into(send);
                input
            });
            for (tick, record, diff) in feed.iter().cloned() {
                input.advance_to(tick);
                if index == 0 {
                    input.update(record, diff);
                }
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
            assert_eq!(by_key, want, "tick {tick}, {workers} worker(s)");
        }
    }
}
