//! Turns a stream of additions into a sliding window by retracting each update `width` ticks later.
//!
//! Differential maintains everything downstream incrementally: at window
//! expiry it sees a retraction, not a recomputation.
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

use differential_dataflow::difference::Abelian;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::operators::vec::Map;

/// Keeps each update for `width` ticks: `(d, t, r)` becomes `(d, t, r)` and `(d, t + width, -r)`.
pub trait SlidingWindow<'scope, D, R> {
    /// The collection as seen through a window of `width` ticks.
    fn sliding_window(self, width: u64) -> VecCollection<'scope, u64, D, R>;
}

impl<'scope, D: Clone + 'static, R: Abelian + 'static> SlidingWindow<'scope, D, R> for VecCollection<'scope, u64, D, R> {
    fn sliding_window(self, width: u64) -> VecCollection<'scope, u64, D, R> {
        self.inner
            .flat_map(move |(d, t, r)| {
                let mut neg = r.clone();
                neg.negate();
                [(d.clone(), t, r), (d, t.saturating_add(width), neg)]
            })
            .as_collection()
    }
}
