//! Records waiting for later ticks, held with one capability at the earliest of them.
//!
//! An operator that holds a capability per waiting tick makes timely's progress
//! tracker keep one pointstamp per tick: with short ticks and long windows
//! that is tens of thousands of them, re-sorted whenever the frontier moves,
//! and progress then costs more than the data. One capability at the earliest
//! waiting tick says the same thing downstream (nothing before it will come),
//! and is delayed to each tick as it is released.
//!
//! ```
//! use feedflow_operators::pending::Pending;
//! let mut waiting: Pending<&str> = Pending::default();
//! assert!(waiting.is_empty());
//! // In an operator, `push(tick, record, || input_cap.delayed(&tick, port))`; see `schedule.rs`.
//! ```

use std::collections::BTreeMap;
use timely::dataflow::operators::Capability;

/// Records by the tick they are due, and a capability at the earliest tick.
pub struct Pending<D> {
    waiting: BTreeMap<u64, Vec<D>>,
    /// At `waiting`'s first tick whenever `waiting` is not empty.
    capability: Option<Capability<u64>>,
}

impl<D> Default for Pending<D> {
    fn default() -> Self {
        Self { waiting: BTreeMap::new(), capability: None }
    }
}

impl<D> Pending<D> {
    /// Nothing is waiting (and no capability is held).
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Number of distinct ticks waiting.
    pub fn ticks(&self) -> usize {
        self.waiting.len()
    }

    /// Adds `records` due at `tick`; `capability_at_tick` is asked for a capability at `tick`
    /// only when `tick` is earlier than everything waiting.
    pub fn extend<I, C>(&mut self, tick: u64, records: I, capability_at_tick: C)
    where
        I: IntoIterator<Item = D>,
        C: FnOnce() -> Capability<u64>,
    {
        self.slot(tick, capability_at_tick).extend(records);
    }

    /// Moves all of `records` in as due at `tick` (see [`Pending::extend`]); the first batch of a
    /// tick is kept as it is, not copied.
    pub fn append<C>(&mut self, tick: u64, records: &mut Vec<D>, capability_at_tick: C)
    where
        C: FnOnce() -> Capability<u64>,
    {
        let slot = self.slot(tick, capability_at_tick);
        if slot.is_empty() {
            std::mem::swap(slot, records);
        } else {
            slot.append(records);
        }
    }

    /// The records due at `tick`, taking a capability at `tick` when it is earlier than
    /// everything waiting.
    fn slot<C: FnOnce() -> Capability<u64>>(&mut self, tick: u64, capability_at_tick: C) -> &mut Vec<D> {
        if self.capability.as_ref().is_none_or(|held| tick < *held.time()) {
            self.capability = Some(capability_at_tick());
        }
        self.waiting.entry(tick).or_default()
    }

    /// Adds one record due at `tick` (see [`Pending::extend`]).
    pub fn push<C: FnOnce() -> Capability<u64>>(&mut self, tick: u64, record: D, capability_at_tick: C) {
        self.extend(tick, std::iter::once(record), capability_at_tick);
    }

    /// Removes the earliest tick's records if `ready(tick)`, with a capability at that tick to
    /// send what they produce; the held capability moves on to the next waiting tick.
    pub fn pop_ready<F: FnOnce(u64) -> bool>(&mut self, ready: F) -> Option<(Capability<u64>, Vec<D>)> {
        let entry = self.waiting.first_entry()?;
        let tick = *entry.key();
        if !ready(tick) {
            return None;
        }
        let records = entry.remove();
        let held = self.capability.as_mut().expect("a capability is held while records wait");
        let at_tick = held.delayed(&tick);
        match self.waiting.first_key_value() {
            Some((next, _)) => held.downgrade(next),
            None => self.capability = None,
        }
        Some((at_tick, records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::dataflow::channels::pact::Pipeline;
    use timely::dataflow::operators::capture::Extract;
    use timely::dataflow::operators::generic::Operator;
    use timely::dataflow::operators::{Capture, ToStream};

    /// Each number n is released at tick n + 1000 (far ahead), through one held capability.
    #[test]
    fn releases_in_tick_order_and_lets_the_frontier_pass() {
        let captured = timely::example(|scope| {
            let mut waiting: Pending<u64> = Pending::default();
            let mut most_ticks_held = 0;
            (0..50u64)
                .to_stream(scope)
                .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<(u64, usize)>>, _, _, _>(
                    Pipeline,
                    "Delay",
                    move |_, _| {
                        move |(input, frontier), output| {
                            let port = output.output_index();
                            input.for_each_stamp(|cap, data| {
                                for n in data.flat_map(|batch: &mut Vec<u64>| batch.drain(..)) {
                                    let due = n + 1000;
                                    waiting.push(due, n, || cap.delayed(&due, port));
                                }
                            });
                            most_ticks_held = most_ticks_held.max(waiting.ticks());
                            while let Some((cap, records)) = waiting.pop_ready(|t| !frontier.less_equal(&t)) {
                                let held = most_ticks_held;
                                output.session(&cap).give_iterator(records.into_iter().map(move |n| (n, held)));
                            }
                        }
                    },
                )
                .capture()
        });
        let got = captured.extract();
        let times: Vec<u64> = got.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, (1000..1050).collect::<Vec<_>>(), "one release per tick, in order");
        for (t, records) in &got {
            assert_eq!(records.iter().map(|(n, _)| n + 1000).collect::<Vec<_>>(), vec![*t]);
        }
        assert!(got.iter().all(|(_, r)| r.iter().all(|(_, held)| *held == 50)), "all 50 ticks were held at once");
    }

    #[test]
    fn an_earlier_tick_takes_over_the_capability() {
        timely::example(|scope| {
            let mut waiting: Pending<u64> = Pending::default();
            (0..1u64)
                .to_stream(scope)
                .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<u64>>, _, _, _>(
                    Pipeline,
                    "Order",
                    move |_, _| {
                        move |(input, frontier), output| {
                            let port = output.output_index();
                            input.for_each_stamp(|cap, data| {
                                for _ in data.flat_map(|batch: &mut Vec<u64>| batch.drain(..)) {
                                    waiting.push(30, 30, || cap.delayed(&30, port));
                                    waiting.push(10, 10, || cap.delayed(&10, port));
                                    waiting.push(20, 20, || panic!("not earlier: the held capability serves"));
                                }
                            });
                            let mut released = Vec::new();
                            while let Some((cap, records)) = waiting.pop_ready(|t| !frontier.less_equal(&t)) {
                                assert_eq!(records, vec![*cap.time()]);
                                released.push(*cap.time());
                                output.session(&cap).give_iterator(records.into_iter());
                            }
                            if !released.is_empty() {
                                assert_eq!(released, vec![10, 20, 30]);
                            }
                        }
                    },
                );
        });
    }
}
