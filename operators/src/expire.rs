//! Removes records from a collection once they are older than a time-to-live, measured from a birth time they carry.
//!
//! Used for "posts younger than 2 h" and "fresh uploads": every update made
//! while the record is alive is undone at its deadline, so the collection
//! holds exactly the live records at every tick.

use differential_dataflow::difference::Abelian;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::operators::vec::Map;

/// Restricts a collection to records younger than `ttl` ticks.
pub trait ExpireAfter<'scope, D, R> {
    /// `birth(d)` is the record's birth tick; it is present in `[birth, birth + ttl)`.
    fn expire_after<B: Fn(&D) -> u64 + 'static>(self, birth: B, ttl: u64) -> VecCollection<'scope, u64, D, R>;
}

impl<'scope, D: Clone + 'static, R: Abelian + 'static> ExpireAfter<'scope, D, R> for VecCollection<'scope, u64, D, R> {
    fn expire_after<B: Fn(&D) -> u64 + 'static>(self, birth: B, ttl: u64) -> VecCollection<'scope, u64, D, R> {
        self.inner
            .flat_map(move |(d, t, r)| {
                let deadline = birth(&d).saturating_add(ttl);
                let mut out = Vec::new();
                // An update after the deadline concerns a record that is already gone.
                if t < deadline {
                    let mut neg = r.clone();
                    neg.negate();
                    out.push((d.clone(), t, r));
                    out.push((d, deadline, neg));
                }
                out
            })
            .as_collection()
    }
}
