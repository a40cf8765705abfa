//! Keeps the current contents of a differential collection in memory, up to a time horizon.
//!
//! Used to read pools between ticks and to hand final states to tests.

use differential_dataflow::{Data, VecCollection};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The accumulated contents of a collection on one worker.
pub type Contents<D> = Rc<RefCell<BTreeMap<D, isize>>>;

/// Applies every update of `collection` with time ≤ `horizon` to a map. Must
/// follow a consolidating operator so that updates arrive once their time is complete.
pub fn snapshot<'scope, D: Data>(
    collection: VecCollection<'scope, u64, D, isize>,
    horizon: Arc<AtomicU64>,
) -> Contents<D> {
    let contents: Contents<D> = Rc::new(RefCell::new(BTreeMap::new()));
    let sink = contents.clone();
    collection.inspect(move |(d, t, r)| {
        if *t <= horizon.load(Ordering::SeqCst) {
            let mut map = sink.borrow_mut();
            let count = map.entry(d.clone()).or_insert(0);
            *count += r;
            if *count == 0 {
                map.remove(d);
            }
        }
    });
    contents
}
