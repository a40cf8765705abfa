//! Turns a stream of additions into a sliding window by retracting each update `width` ticks later.
//!
//! Differential maintains everything downstream incrementally: at window
//! expiry it sees a retraction, not a recomputation. Retractions are held by
//! [`crate::schedule`] until due.
//!
//! ```
//! use differential_dataflow::input::Input;
//! use feedflow_operators::sliding_window::SlidingWindow;
//! timely::example(|scope| {
//!     let (mut input, clicks) = scope.new_collection::<u64, isize>();
//!     let _last_5_ticks = clicks.sliding_window(5);
//!     input.insert(7);
//! });
//! ```

use crate::schedule::Schedule;
use differential_dataflow::difference::Abelian;
use differential_dataflow::VecCollection;

/// Keeps each update for `width` ticks: `(d, t, r)` is followed by `(d, t + width, -r)`.
pub trait SlidingWindow<'scope, D, R> {
    /// The collection as seen through a window of `width` ticks.
    fn sliding_window(self, width: u64) -> VecCollection<'scope, u64, D, R>;
}

impl<'scope, D: Clone + 'static, R: Abelian + 'static> SlidingWindow<'scope, D, R>
    for VecCollection<'scope, u64, D, R>
{
    fn sliding_window(self, width: u64) -> VecCollection<'scope, u64, D, R> {
        self.schedule("SlidingWindow", move |(d, t, r)| {
            let mut neg = r.clone();
            neg.negate();
            Some((d.clone(), t.saturating_add(width), neg))
        })
    }
}
