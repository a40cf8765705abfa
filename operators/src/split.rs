//! Splits one stream into two or three streams of other types, in one operator.
//!
//! Each record goes to any number of the outputs (none, one, or copies to several), so a
//! `partition` followed by a `map`, `flat_map`, clone or `concat` per part becomes one operator:
//! fewer operators to run at every timestamp. Pipelined: records stay on their worker.
//!
//! ```
//! use timely::dataflow::operators::{Inspect, ToStream};
//! use feedflow_operators::split::Split;
//! timely::example(|scope| {
//!     let (evens, odd_strings) = (0..10u64).to_stream(scope).split2("Parity", |x, evens, odds| {
//!         if x % 2 == 0 { evens.push(x) } else { odds.push(x.to_string()) }
//!     });
//!     evens.inspect(|x: &u64| assert!(x % 2 == 0));
//!     odd_strings.inspect(|s: &String| assert!(s.parse::<u64>().unwrap() % 2 == 1));
//! });
//! ```

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::StreamVec;
use timely::progress::Timestamp;

/// One stream into several, by a function that pushes each record's parts to the outputs.
pub trait Split<'scope, T: Timestamp, D> {
    /// Two output streams.
    fn split2<A, B, L>(self, name: &str, logic: L) -> (StreamVec<'scope, T, A>, StreamVec<'scope, T, B>)
    where
        A: Clone + 'static,
        B: Clone + 'static,
        L: FnMut(D, &mut Vec<A>, &mut Vec<B>) + 'static;

    /// Three output streams.
    #[allow(clippy::type_complexity)]
    fn split3<A, B, C, L>(
        self,
        name: &str,
        logic: L,
    ) -> (StreamVec<'scope, T, A>, StreamVec<'scope, T, B>, StreamVec<'scope, T, C>)
    where
        A: Clone + 'static,
        B: Clone + 'static,
        C: Clone + 'static,
        L: FnMut(D, &mut Vec<A>, &mut Vec<B>, &mut Vec<C>) + 'static;
}

impl<'scope, T: Timestamp, D: Clone + 'static> Split<'scope, T, D> for StreamVec<'scope, T, D> {
    fn split2<A, B, L>(self, name: &str, mut logic: L) -> (StreamVec<'scope, T, A>, StreamVec<'scope, T, B>)
    where
        A: Clone + 'static,
        B: Clone + 'static,
        L: FnMut(D, &mut Vec<A>, &mut Vec<B>) + 'static,
    {
        // The third output is never written and has no reader.
        let (a, b, _) = self.split3(name, move |d, a, b, _: &mut Vec<()>| logic(d, a, b));
        (a, b)
    }

    fn split3<A, B, C, L>(
        self,
        name: &str,
        mut logic: L,
    ) -> (StreamVec<'scope, T, A>, StreamVec<'scope, T, B>, StreamVec<'scope, T, C>)
    where
        A: Clone + 'static,
        B: Clone + 'static,
        C: Clone + 'static,
        L: FnMut(D, &mut Vec<A>, &mut Vec<B>, &mut Vec<C>) + 'static,
    {
        let mut builder = OperatorBuilder::new(name.to_owned(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        let (mut out_a, stream_a) = builder.new_output::<Vec<A>>();
        let (mut out_b, stream_b) = builder.new_output::<Vec<B>>();
        let (mut out_c, stream_c) = builder.new_output::<Vec<C>>();
        builder.build(move |_| {
            move |_frontiers| {
                let (mut out_a, mut out_b, mut out_c) = (out_a.activate(), out_b.activate(), out_c.activate());
                input.for_each_stamp(|cap, data| {
                    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
                    for record in data.flat_map(|batch| batch.drain(..)) {
                        logic(record, &mut a, &mut b, &mut c);
                    }
                    // Each part goes on whole, as one message.
                    if !a.is_empty() {
                        out_a.give(&cap, &mut a);
                    }
                    if !b.is_empty() {
                        out_b.give(&cap, &mut b);
                    }
                    if !c.is_empty() {
                        out_c.give(&cap, &mut c);
                    }
                });
            }
        });
        (stream_a, stream_b, stream_c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::dataflow::operators::capture::Extract;
    use timely::dataflow::operators::{Capture, ToStream};

    /// Against the sequential reference: each output holds exactly what the logic pushed, per time.
    #[test]
    fn outputs_match_a_sequential_split() {
        for workers in [1, 2] {
            let results = timely::execute(timely::Config::process(workers), |worker| {
                let index = worker.index() as u64;
                let (a, b, c) = worker.dataflow::<u64, _, _>(|scope| {
                    let (a, b, c) = (0..200u64).map(move |x| x * 2 + index).to_stream(scope).split3(
                        "Test",
                        |x, a: &mut Vec<u64>, b: &mut Vec<String>, c: &mut Vec<(u64, u64)>| {
                            if x % 3 == 0 {
                                a.push(x);
                            }
                            if x % 5 == 0 {
                                b.push(format!("{x}"));
                                b.push(format!("{x}!"));
                            }
                            if x % 7 != 0 {
                                c.push((x, x * x));
                            }
                        },
                    );
                    (a.capture(), b.capture(), c.capture())
                });
                while worker.step() {}
                fn sorted<X: Ord>(mut v: Vec<X>) -> Vec<X> {
                    v.sort();
                    v
                }
                fn flat<X>(e: Vec<(u64, Vec<X>)>) -> Vec<X> {
                    e.into_iter().flat_map(|(_, v)| v).collect()
                }
                let (a, b, c) = (sorted(flat(a.extract())), sorted(flat(b.extract())), sorted(flat(c.extract())));
                let input: Vec<u64> = (0..200u64).map(|x| x * 2 + index).collect();
                assert_eq!(a, sorted(input.iter().copied().filter(|x| x % 3 == 0).collect()));
                let want_b: Vec<String> =
                    input.iter().filter(|x| *x % 5 == 0).flat_map(|x| [format!("{x}"), format!("{x}!")]).collect();
                assert_eq!(b, sorted(want_b));
                assert_eq!(c, sorted(input.iter().filter(|x| *x % 7 != 0).map(|x| (*x, x * x)).collect()));
            })
            .unwrap();
            results.join().into_iter().for_each(|r| r.unwrap());
        }
    }
}
