//! Collects each tick's records at their owner worker and hands them over once the tick is complete.
//!
//! The workhorse of the stateful stages: a tick's records are delivered only
//! when no more can arrive for it, and in tick order, so a stage can sort them
//! and apply them to its state deterministically, whatever the arrival order,
//! worker count or partitioning.
//!
//! ```
//! use timely::dataflow::operators::{ToStream, Capture, capture::Extract};
//! use feedflow_operators::tick_batch::TickBatch;
//! let captured = timely::example(|scope| {
//!     (0..10u64).to_stream(scope)
//!         .tick_batch("Sum", |x: &u64| *x, |_tick, mut batch: Vec<u64>, out: &mut Vec<u64>| {
//!             batch.sort();
//!             out.push(batch.iter().sum());
//!         })
//!         .capture()
//! });
//! assert_eq!(captured.extract(), vec![(0, vec![45])]);
//! ```

use crate::exchange::exchange;
use crate::pending::Pending;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

/// Buffers records per tick and applies `logic` to each completed tick, in order.
pub trait TickBatch<'scope, D: timely::ExchangeData + Clone> {
    /// Routes each record to the worker `route(record) % peers`, then calls
    /// `logic(tick, records, output)` once per tick that received records,
    /// after every worker has finished that tick. Output is stamped with the tick.
    fn tick_batch<D2, R, L>(self, name: &str, route: R, logic: L) -> StreamVec<'scope, u64, D2>
    where
        D2: Clone + 'static,
        R: Fn(&D) -> u64 + 'static,
        L: FnMut(u64, Vec<D>, &mut Vec<D2>) + 'static;

    /// As [`TickBatch::tick_batch`], but a record's tick is `time_of(record)`
    /// (at or after the time of the message carrying it), as for differential
    /// updates `(data, time, diff)` whose own time may lie ahead of their message.
    fn tick_batch_by<D2, R, T, L>(self, name: &str, route: R, time_of: T, logic: L) -> StreamVec<'scope, u64, D2>
    where
        D2: Clone + 'static,
        R: Fn(&D) -> u64 + 'static,
        T: Fn(&D) -> u64 + 'static,
        L: FnMut(u64, Vec<D>, &mut Vec<D2>) + 'static;
}

impl<'scope, D: timely::ExchangeData + Clone> TickBatch<'scope, D> for StreamVec<'scope, u64, D> {
    fn tick_batch<D2, R, L>(self, name: &str, route: R, logic: L) -> StreamVec<'scope, u64, D2>
    where
        D2: Clone + 'static,
        R: Fn(&D) -> u64 + 'static,
        L: FnMut(u64, Vec<D>, &mut Vec<D2>) + 'static,
    {
        batch_ticks(self, name, route, None::<fn(&D) -> u64>, logic)
    }

    fn tick_batch_by<D2, R, T, L>(self, name: &str, route: R, time_of: T, logic: L) -> StreamVec<'scope, u64, D2>
    where
        D2: Clone + 'static,
        R: Fn(&D) -> u64 + 'static,
        T: Fn(&D) -> u64 + 'static,
        L: FnMut(u64, Vec<D>, &mut Vec<D2>) + 'static,
    {
        batch_ticks(self, name, route, Some(time_of), logic)
    }
}

fn batch_ticks<'scope, D, D2, R, T, L>(
    stream: StreamVec<'scope, u64, D>,
    name: &str,
    route: R,
    time_of: Option<T>,
    mut logic: L,
) -> StreamVec<'scope, u64, D2>
where
    D: timely::ExchangeData + Clone,
    D2: Clone + 'static,
    R: Fn(&D) -> u64 + 'static,
    T: Fn(&D) -> u64 + 'static,
    L: FnMut(u64, Vec<D>, &mut Vec<D2>) + 'static,
{
    let mut pending: Pending<D> = Pending::default();
    let mut produced = Vec::new();
    stream.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<D2>>, _, _, _>(
        exchange(move |d: &D| route(d)),
        name,
        move |_, _| {
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, data| {
                    let tick = *cap.least().expect("a stamp has a time");
                    let port = output.output_index();
                    match &time_of {
                        None => {
                            for batch in data {
                                pending.append(tick, batch, || cap.delayed(&tick, port));
                            }
                        }
                        Some(time_of) => {
                            // Records of one time usually come together: one lookup per run.
                            let mut run: Vec<D> = Vec::new();
                            let mut run_at = tick;
                            for record in data.flat_map(|batch| batch.drain(..)) {
                                let at = time_of(&record).max(tick);
                                if at != run_at && !run.is_empty() {
                                    pending.append(run_at, &mut run, || cap.delayed(&run_at, port));
                                }
                                run_at = at;
                                run.push(record);
                            }
                            if !run.is_empty() {
                                pending.append(run_at, &mut run, || cap.delayed(&run_at, port));
                            }
                        }
                    }
                });
                while let Some((cap, records)) = pending.pop_ready(|tick| !frontier.less_equal(&tick)) {
                    logic(*cap.time(), records, &mut produced);
                    if !produced.is_empty() {
                        output.session(&cap).give_container(&mut produced);
                    }
                }
            }
        },
    )
}
