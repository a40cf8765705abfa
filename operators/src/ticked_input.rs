//! An input that accepts records at any tick not before its frontier and announces progress in steps.
//!
//! Moving the frontier tick by tick makes every downstream arrangement seal a
//! batch per tick; a replay moves it in steps of many ticks instead, which
//! gives the same results (records keep their own tick) with far fewer batches.
//!
//! ```
//! use timely::dataflow::operators::{Capture, capture::Extract};
//! use feedflow_operators::ticked_input::TickedInput;
//! let (send, recv) = std::sync::mpsc::channel();
//! let send = std::sync::Arc::new(std::sync::Mutex::new(send));
//! timely::execute(timely::Config::thread(), move |worker| {
//!     let send = send.lock().unwrap().clone();
//!     let mut input = worker.dataflow::<u64, _, _>(|scope| {
//!         let (input, stream) = TickedInput::new(&scope);
//!         stream.capture_into(send);
//!         input
//!     });
//!     input.push(3, 'b');
//!     input.push(1, 'a');
//!     input.advance_to(10);
//!     input.close();
//! }).unwrap();
//! assert_eq!(recv.extract(), vec![(1, vec!['a']), (3, vec!['b'])]);
//! ```

use timely::dataflow::operators::core::unordered_input::UnorderedHandle;
use timely::dataflow::operators::vec::UnorderedInput;
use timely::dataflow::operators::ActivateCapability;
use timely::dataflow::{Scope, StreamVec};

/// A multi-tick input handle for `u64` ticks.
pub struct TickedInput<D: Clone + 'static> {
    handle: UnorderedHandle<u64, timely::container::CapacityContainerBuilder<Vec<D>>>,
    capability: Option<ActivateCapability<u64>>,
    buffer: Vec<(u64, D)>,
}

impl<D: Clone + 'static> TickedInput<D> {
    /// Creates the input in `scope`, with its frontier at tick 0.
    pub fn new<'scope>(scope: &Scope<'scope, u64>) -> (Self, StreamVec<'scope, u64, D>) {
        let ((handle, capability), stream) = scope.new_unordered_input();
        (Self { handle, capability: Some(capability), buffer: Vec::new() }, stream)
    }

    /// The frontier: records may be pushed at this tick or later.
    pub fn frontier(&self) -> Option<u64> {
        self.capability.as_ref().map(|c| *c.time())
    }

    /// Queues a record at `tick` (raised to the frontier if earlier).
    pub fn push(&mut self, tick: u64, record: D) {
        let tick = tick.max(self.frontier().unwrap_or(tick));
        self.buffer.push((tick, record));
    }

    /// Sends the queued records, each at its tick.
    pub fn flush(&mut self) {
        let Some(cap) = self.capability.as_ref() else { return };
        self.buffer.sort_by_key(|(t, _)| *t);
        let mut records = std::mem::take(&mut self.buffer).into_iter().peekable();
        while let Some((tick, first)) = records.next() {
            let at = cap.delayed(&tick);
            let mut handle = self.handle.activate();
            let mut session = handle.session(&at);
            session.give(first);
            while let Some((_, record)) = records.next_if(|(t, _)| *t == tick) {
                session.give(record);
            }
        }
    }

    /// Sends what is queued and promises no more records before `tick`.
    pub fn advance_to(&mut self, tick: u64) {
        self.flush();
        if let Some(cap) = self.capability.as_mut() {
            if tick > *cap.time() {
                *cap = cap.delayed(&tick);
            }
        }
    }

    /// Sends what is queued and closes the input.
    pub fn close(&mut self) {
        self.flush();
        self.capability = None;
    }
}
