//! An exchange pact whose per-worker buffers grow with the data instead of starting full size.
//!
//! Timely's `Exchange` reserves a whole buffer (8 KiB of records) for each
//! worker at each timestamp. With one timestamp per tick and a few records per
//! tick and worker, most of that memory is allocated, never written, and freed
//! by another thread a moment later; that churn was a large share of the
//! per-tick cost of a replay. [`exchange`] routes records the same way, into
//! buffers that start empty and grow as records arrive (shipped, as timely's
//! are, once they reach that same size).
//!
//! ```
//! use timely::dataflow::operators::{Inspect, ToStream};
//! use timely::dataflow::operators::generic::Operator;
//! use feedflow_operators::exchange::exchange;
//! timely::example(|scope| {
//!     (0..10u64)
//!         .to_stream(scope)
//!         .unary(exchange(|x: &u64| *x), "Route", |_, _| {
//!             |input, output| input.for_each(|time, data| output.session(&time).give_container(data))
//!         })
//!         .inspect(|x: &u64| assert!(*x < 10));
//! });
//! ```

use std::collections::VecDeque;
use timely::container::{ContainerBuilder, LengthPreservingContainerBuilder, PushInto};
use timely::dataflow::channels::pact::ExchangeCore;

/// The exchange pact routing each record to worker `route(record) % peers`.
pub fn exchange<D, F>(route: F) -> ExchangeCore<GrowingVecBuilder<D>, F>
where
    D: 'static,
    F: FnMut(&D) -> u64 + 'static,
{
    ExchangeCore::<GrowingVecBuilder<D>, F>::new_core(route)
}

/// Builds `Vec` containers that grow from empty and ship at timely's buffer size.
#[derive(Debug)]
pub struct GrowingVecBuilder<D> {
    current: Vec<D>,
    /// The container last handed out by `extract`/`finish` (the channel takes its contents).
    handed_out: Vec<D>,
    ready: VecDeque<Vec<D>>,
}

impl<D> Default for GrowingVecBuilder<D> {
    fn default() -> Self {
        Self { current: Vec::new(), handed_out: Vec::new(), ready: VecDeque::new() }
    }
}

impl<D> PushInto<D> for GrowingVecBuilder<D> {
    #[inline]
    fn push_into(&mut self, item: D) {
        self.current.push(item);
        if self.current.len() >= timely::container::buffer::default_capacity::<D>() {
            self.ready.push_back(std::mem::take(&mut self.current));
        }
    }
}

impl<D: 'static> ContainerBuilder for GrowingVecBuilder<D> {
    type Container = Vec<D>;

    #[inline]
    fn extract(&mut self) -> Option<&mut Vec<D>> {
        self.handed_out = self.ready.pop_front()?;
        Some(&mut self.handed_out)
    }

    #[inline]
    fn finish(&mut self) -> Option<&mut Vec<D>> {
        if !self.current.is_empty() {
            self.ready.push_back(std::mem::take(&mut self.current));
        }
        self.extract()
    }
}

impl<D: 'static> LengthPreservingContainerBuilder for GrowingVecBuilder<D> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ships_every_record_once_in_order() {
        let mut builder = GrowingVecBuilder::default();
        let size = timely::container::buffer::default_capacity::<u64>();
        let mut shipped = Vec::new();
        for x in 0..(2 * size as u64 + 5) {
            builder.push_into(x);
            while let Some(c) = builder.extract() {
                assert_eq!(c.len(), size);
                shipped.append(c);
            }
        }
        while let Some(c) = builder.finish() {
            shipped.append(c);
        }
        assert_eq!(shipped, (0..(2 * size as u64 + 5)).collect::<Vec<_>>());
    }
}
