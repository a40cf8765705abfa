//! Emits updates scheduled for a later time only when that time comes, holding them here meanwhile.
//!
//! A sliding window or an expiry produces, for each update, a retraction far
//! in the future. Handed to differential right away, such updates wait in
//! every downstream batcher and are re-sorted at every tick; held here in a
//! time-ordered map they cost O(log n) once and arrive downstream as current
//! updates.

use crate::pending::Pending;
use differential_dataflow::difference::Semigroup;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

/// Adds, for some updates, a second update at a later time, released when due.
pub trait Schedule<'scope, D, R> {
    /// Passes every update through and, when `later(update)` gives one, emits
    /// it once the input frontier reaches its time (which must not be earlier
    /// than the update's own time).
    fn schedule<F>(self, name: &str, later: F) -> VecCollection<'scope, u64, D, R>
    where
        F: FnMut(&(D, u64, R)) -> Option<(D, u64, R)> + 'static;
}

impl<'scope, D: Clone + 'static, R: Semigroup + 'static> Schedule<'scope, D, R> for VecCollection<'scope, u64, D, R> {
    fn schedule<F>(self, name: &str, mut later: F) -> VecCollection<'scope, u64, D, R>
    where
        F: FnMut(&(D, u64, R)) -> Option<(D, u64, R)> + 'static,
    {
        let mut held: Pending<(D, u64, R)> = Pending::default();
        self.inner
            .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<(D, u64, R)>>, _, _, _>(
                Pipeline,
                name,
                move |_, _| {
                    move |(input, frontier), output| {
                        let port = output.output_index();
                        input.for_each_stamp(|cap, data| {
                            let mut now = Vec::new();
                            for update in data.flat_map(|batch| batch.drain(..)) {
                                if let Some(next) = later(&update) {
                                    let due = next.1.max(update.1);
                                    held.push(due, next, || cap.delayed(&due, port));
                                }
                                now.push(update);
                            }
                            let message_time = *cap.least().expect("a stamp has a time");
                            output.session(&cap.delayed(&message_time, port)).give_container(&mut now);
                        });
                        // Due once no input can arrive before the scheduled time.
                        let earliest_input = frontier.frontier().first().copied();
                        while let Some((cap, mut updates)) =
                            held.pop_ready(|due| earliest_input.is_none_or(|t| t >= due))
                        {
                            output.session(&cap).give_container(&mut updates);
                        }
                    }
                },
            )
            .as_collection()
    }
}
