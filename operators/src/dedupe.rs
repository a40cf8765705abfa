//! Drops records whose id was already seen within a horizon, with memory bounded by time and count.
//!
//! Ids are routed to an owner worker and each tick is handled as a sorted
//! batch, so which copy survives does not depend on arrival order: the first
//! in `order`. Ids are kept as 64-bit hashes.
//!
//! ```
//! use timely::dataflow::operators::{ToStream, Capture, capture::Extract};
//! use feedflow_operators::dedupe::{Dedupe, SeenIds};
//! let kept = timely::example(|scope| {
//!     vec![(1u64, 'a'), (2, 'b'), (1, 'c')].to_stream(scope)
//!         .dedupe("Dedupe", |r: &(u64, char)| r.0, |r| Some(r.0), |r| r.1, SeenIds::new(10, 100), |_dup| {})
//!         .capture()
//! });
//! assert_eq!(kept.extract(), vec![(0, vec![(1, 'a'), (2, 'b')])]);
//! ```

use crate::hash::FastMap;
use crate::tick_batch::TickBatch;
use std::collections::VecDeque;
use timely::dataflow::StreamVec;

/// Remembers ids for `horizon` ticks, at most `capacity` of them (oldest forgotten first).
#[derive(Debug)]
pub struct SeenIds {
    horizon: u64,
    capacity: usize,
    seen: FastMap<u64, u64>,
    order: VecDeque<(u64, u64)>,
}

impl SeenIds {
    /// An empty memory.
    pub fn new(horizon: u64, capacity: usize) -> Self {
        Self { horizon, capacity: capacity.max(1), seen: FastMap::default(), order: VecDeque::new() }
    }

    /// Forgets ids older than the horizon as of `tick`.
    pub fn expire(&mut self, tick: u64) {
        while let Some(&(t, id)) = self.order.front() {
            if t.saturating_add(self.horizon) > tick && self.seen.len() <= self.capacity {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&id) == Some(&t) {
                self.seen.remove(&id);
            }
        }
    }

    /// Records `id` at `tick`; returns false if it was already remembered.
    pub fn first_seen(&mut self, id: u64, tick: u64) -> bool {
        if self.seen.contains_key(&id) {
            return false;
        }
        self.seen.insert(id, tick);
        self.order.push_back((tick, id));
        if self.seen.len() > self.capacity {
            self.expire(tick);
        }
        true
    }

    /// Number of ids remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Duplicate suppression on a stream.
pub trait Dedupe<'scope, D> {
    /// Keeps the first record (in `order`) of each `id` that `memory` does not
    /// remember; records without an id pass. Records are handled at worker
    /// `route(record)`, which must send every copy of an id to the same worker
    /// (route by the id, or by a key its copies share, such as the next stage's
    /// key, which saves an exchange). `on_duplicate` sees each dropped record.
    fn dedupe<R, I, O, K, F>(
        self,
        name: &str,
        route: R,
        id: I,
        order: O,
        memory: SeenIds,
        on_duplicate: F,
    ) -> StreamVec<'scope, u64, D>
    where
        R: Fn(&D) -> u64 + 'static,
        I: Fn(&D) -> Option<u64> + 'static,
        O: Fn(&D) -> K + 'static,
        K: Ord,
        F: FnMut(&D) + 'static;
}

impl<'scope, D: timely::ExchangeData + Clone> Dedupe<'scope, D> for StreamVec<'scope, u64, D> {
    fn dedupe<R, I, O, K, F>(
        self,
        name: &str,
        route: R,
        id: I,
        order: O,
        mut memory: SeenIds,
        mut on_duplicate: F,
    ) -> StreamVec<'scope, u64, D>
    where
        R: Fn(&D) -> u64 + 'static,
        I: Fn(&D) -> Option<u64> + 'static,
        O: Fn(&D) -> K + 'static,
        K: Ord,
        F: FnMut(&D) + 'static,
    {
        self.tick_batch(name, route, move |tick, batch, out| {
            memory.expire(tick);
            // Sort the keys and visit the records in their order: records may be
            // large, and moving them around while sorting costs more than the check.
            // The index breaks no ties (the order is total), it only finds the record.
            let mut keys: Vec<(Option<u64>, K, usize)> =
                batch.iter().enumerate().map(|(i, r)| (id(r), order(r), i)).collect();
            keys.sort_unstable_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
            let mut slots: Vec<Option<D>> = batch.into_iter().map(Some).collect();
            for (key, _, i) in keys {
                let record = slots[i].take().expect("every index is visited once");
                match key {
                    Some(key) if !memory.first_seen(key, tick) => on_duplicate(&record),
                    _ => out.push(record),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizon_and_capacity_bound_memory() {
        let mut s = SeenIds::new(10, 3);
        assert!(s.first_seen(1, 0));
        assert!(!s.first_seen(1, 5));
        s.expire(10);
        assert!(s.first_seen(1, 10), "forgotten after the horizon");
        for id in 2..10 {
            s.first_seen(id, 11);
        }
        assert!(s.len() <= 3);
    }
}
