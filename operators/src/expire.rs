//! Removes records from a collection once they are older than a time-to-live, measured from a birth time they carry.
//!
//! Used for "posts younger than 2 h" and "fresh uploads": every update made
//! while the record is alive is undone at its deadline, so the collection
//! holds exactly the live records at every tick.

use crate::schedule::Schedule;
use differential_dataflow::difference::Abelian;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::operators::vec::Filter;

/// Restricts a collection to records younger than `ttl` ticks.
pub trait ExpireAfter<'scope, D, R> {
    /// `birth(d)` is the record's birth tick; it is present in `[birth, birth + ttl)`.
    fn expire_after<B: Fn(&D) -> u64 + 'static>(self, birth: B, ttl: u64) -> VecCollection<'scope, u64, D, R>;
}

impl<'scope, D: Clone + 'static, R: Abelian + 'static> ExpireAfter<'scope, D, R> for VecCollection<'scope, u64, D, R> {
    fn expire_after<B: Fn(&D) -> u64 + 'static>(self, birth: B, ttl: u64) -> VecCollection<'scope, u64, D, R> {
        let birth = std::rc::Rc::new(birth);
        let alive = birth.clone();
        // An update at or after the deadline concerns a record that is already gone.
        self.inner.filter(move |(d, t, _)| *t < alive(d).saturating_add(ttl)).as_collection().schedule(
            "ExpireAfter",
            move |(d, _, r)| {
                let mut neg = r.clone();
                neg.negate();
                Some((d.clone(), birth(d).saturating_add(ttl), neg))
            },
        )
    }
}
