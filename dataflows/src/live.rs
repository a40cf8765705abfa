//! Live event time: the input frontier of a Kafka run, from the partitions' progress (DESIGN.md §1–2).
//!
//! Each input partition is ordered by event time, so once a partition has
//! delivered an event of tick `t` it holds time back at `t` at most (minus the
//! allowed lateness). A partition that reached its end and received nothing
//! for `idle_ms` stops holding time back — but only up to what had been read
//! *`idle_ms` before*: if the newest tick read anywhere at `now − idle_ms` was
//! `r`, the idle partition holds time at `r + 1`. The events a producer wrote
//! to it before the one of tick `r` had `idle_ms` to arrive, and did not; so
//! the rule is exact for any arrival timing as long as one partition's
//! deliveries trail another's by less than `idle_ms` (an in-order producer,
//! `feedflow replay --to kafka` or any client). A quiet partition therefore
//! never lets the first records after a pause run the frontier past records
//! still in flight on it. When every partition is idle the frontier is just
//! past the newest tick read, so every request read so far is answered. A
//! request that waited `max_request_wait_ms` for slower partitions forces the
//! frontier past its tick; the ticks skipped that way are remembered so that
//! its response says `degraded:"partial_prefix"`.
//!
//! Producers that stamp `ts` with their own clock (`ts` ≈ now, the production
//! shape) need not wait `idle_ms`: with [`WallClock`], while the newest event
//! read is current (its tick ends within `idle_ms` of the wall clock), a
//! partition at its end holds time at `now − wall_clock_lateness_ms` at most,
//! like a bounded-out-of-orderness watermark. That is exact for events that
//! reach the consumer within the lateness of their `ts`; a later one is late:
//! applied at the frontier, counted, and the requests of the ticks it missed
//! that are still unanswered say `degraded:"late_input"`. A recorded log
//! replayed with its own (old) timestamps is never current, so the rule stays
//! out of its way.
//!
//! One clock is shared by the workers of a process; each worker reports its own
//! partitions and every worker reads the same frontier.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct PartitionClock {
    /// Highest tick read from the partition.
    tick: Option<u64>,
    /// The consumer reported the partition's end and nothing arrived since.
    at_end: bool,
    /// When the partition last delivered a message or reached its end.
    since: Instant,
}

#[derive(Debug, Default)]
struct ClockState {
    partitions: BTreeMap<(u32, i32), PartitionClock>,
    /// Highest tick read from any partition.
    newest: Option<u64>,
    /// When `newest` rose, and to what, oldest first: the newest tick read `idle_ms` ago is
    /// the furthest an idle partition lets time pass. Entries older than that are dropped.
    newest_since: VecDeque<(Instant, u64)>,
    /// The frontier never moves back.
    frontier: u64,
    /// Requests read and not yet answered: tick → earliest arrival.
    waiting: BTreeMap<u64, Instant>,
    /// Tick ranges `[from, to)` the frontier skipped for a waiting request.
    partial: Vec<(u64, u64)>,
    /// Tick ranges `[from, to)` a late event belonged to but was applied after.
    late: Vec<(u64, u64)>,
    /// For each tick with requests that the frontier passed since the last `take_input_waits`:
    /// how long its earliest request waited for it.
    input_waits: Vec<Duration>,
}

/// The event-time clock of a live run.
#[derive(Debug)]
pub struct LiveClock {
    idle: Duration,
    max_request_wait: Duration,
    lateness_ticks: u64,
    wall: Option<WallClock>,
    state: Mutex<ClockState>,
}

/// The wall clock that producers stamping `ts` ≈ now are trusted to follow (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    /// An instant and the Unix time in ms at that instant: wall time is measured from there.
    pub origin: (Instant, i64),
    /// Events reach the consumer within this long of their `ts`.
    pub lateness: Duration,
    /// The engine's tick length, to turn wall time into ticks.
    pub tick_ms: u64,
}

impl WallClock {
    /// The wall clock of this machine now, with `lateness` and `tick_ms`.
    pub fn system(lateness: Duration, tick_ms: u64) -> Self {
        let unix_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Self { origin: (Instant::now(), unix_ms), lateness, tick_ms: tick_ms.max(1) }
    }

    fn unix_ms(&self, now: Instant) -> i64 {
        self.origin.1 + now.saturating_duration_since(self.origin.0).as_millis() as i64
    }

    /// The tick an at-end partition lets time reach at `now` when the newest tick read is `newest`:
    /// none unless that tick ended within `idle` of the wall clock (the producers are current).
    fn holds_at(&self, now: Instant, newest: Option<u64>, idle: Duration) -> Option<u64> {
        let wall = self.unix_ms(now);
        let newest_end = (newest? + 1).saturating_mul(self.tick_ms) as i64;
        if newest_end + idle.as_millis() as i64 >= wall {
            Some((wall - self.lateness.as_millis() as i64).max(0) as u64 / self.tick_ms)
        } else {
            None
        }
    }
}

/// The frontier and what moved it, for metrics and progress lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frontier {
    /// Records may arrive at this tick or later.
    pub tick: u64,
    /// Highest tick read so far.
    pub newest: Option<u64>,
    /// Every partition is idle (the frontier is past everything read).
    pub all_idle: bool,
}

impl LiveClock {
    /// A clock with the config's `idle_ms`, `max_request_wait_ms` and lateness in ticks.
    pub fn new(idle: Duration, max_request_wait: Duration, lateness_ticks: u64) -> Self {
        Self { idle, max_request_wait, lateness_ticks, wall: None, state: Mutex::new(ClockState::default()) }
    }

    /// Lets partitions at their end follow `wall` while the producers are current (module docs).
    pub fn with_wall_clock(mut self, wall: WallClock) -> Self {
        self.wall = Some(wall);
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an assigned partition: it holds time back until it delivers or reaches its end.
    pub fn add_partition(&self, source: u32, partition: i32, now: Instant) {
        self.state().partitions.insert((source, partition), PartitionClock { tick: None, at_end: false, since: now });
    }

    /// A message was read from a partition; `tick` is its event's tick (none for a rejected message).
    pub fn observe(&self, source: u32, partition: i32, tick: Option<u64>, now: Instant) {
        let mut s = self.state();
        if let Some(t) = tick {
            if s.newest.is_none_or(|n| t > n) {
                s.newest = Some(t);
                s.newest_since.push_back((now, t));
            }
        }
        if let Some(p) = s.partitions.get_mut(&(source, partition)) {
            if let Some(t) = tick {
                p.tick = Some(p.tick.map_or(t, |old| old.max(t)));
            }
            p.at_end = false;
            p.since = now;
        }
    }

    /// The consumer reached the end of a partition.
    pub fn reached_end(&self, source: u32, partition: i32, now: Instant) {
        if let Some(p) = self.state().partitions.get_mut(&(source, partition)) {
            if !p.at_end {
                p.at_end = true;
                p.since = now;
            }
        }
    }

    /// A request of `tick` was read at `arrival`.
    pub fn request_read(&self, tick: u64, arrival: Instant) {
        let mut s = self.state();
        let e = s.waiting.entry(tick).or_insert(arrival);
        *e = (*e).min(arrival);
    }

    /// The frontier now, moving it forward when partitions allow or a request waited too long.
    pub fn frontier(&self, now: Instant) -> Frontier {
        let mut s = self.state();
        // The newest tick read at least `idle` ago: what an idle partition lets time pass.
        let settled = match now.checked_sub(self.idle) {
            Some(cutoff) => {
                while s.newest_since.len() > 1 && s.newest_since[1].0 <= cutoff {
                    s.newest_since.pop_front();
                }
                s.newest_since.front().filter(|(at, _)| *at <= cutoff).map(|(_, tick)| *tick)
            }
            None => None,
        };
        let wall = self.wall.and_then(|w| w.holds_at(now, s.newest, self.idle));
        let mut slowest: Option<u64> = None;
        let mut active = 0usize;
        for p in s.partitions.values() {
            let idle = p.at_end && now.duration_since(p.since) >= self.idle;
            let mut holds = if idle {
                // Everything this partition will still deliver is newer than `settled`.
                settled.map_or(0, |r| r + 1).max(p.tick.unwrap_or(0))
            } else {
                active += 1;
                p.tick.unwrap_or(0).saturating_sub(self.lateness_ticks)
            };
            if p.at_end {
                // What a current producer writes to it from now on is at most `lateness` old.
                holds = holds.max(wall.unwrap_or(0));
            }
            slowest = Some(slowest.map_or(holds, |m: u64| m.min(holds)));
        }
        let all_idle = active == 0;
        let target = match slowest {
            Some(t) => t,
            None => s.newest.map_or(0, |n| n + 1),
        };
        let mut frontier = s.frontier.max(target);
        // Requests answered by this frontier stop waiting; the oldest waiting too long forces it on.
        let waited_too_long = s
            .waiting
            .range(frontier..)
            .filter(|(_, arrival)| now.duration_since(**arrival) >= self.max_request_wait)
            .map(|(tick, _)| *tick)
            .max();
        if let Some(tick) = waited_too_long {
            s.partial.push((frontier, tick + 1));
            frontier = tick + 1;
        }
        let still_waiting = s.waiting.split_off(&frontier);
        let closed = std::mem::replace(&mut s.waiting, still_waiting);
        s.input_waits.extend(closed.values().map(|arrival| now.saturating_duration_since(*arrival)));
        s.frontier = frontier;
        Frontier { tick: frontier, newest: s.newest, all_idle }
    }

    /// The frontier as last computed, without moving it: no worker has started this tick.
    pub fn current_tick(&self) -> u64 {
        self.state().frontier
    }

    /// How long the earliest request of each tick closed since the last call waited for its tick
    /// to close at the input (the `input_closed` stage of the request latency).
    pub fn take_input_waits(&self) -> Vec<Duration> {
        std::mem::take(&mut self.state().input_waits)
    }

    /// Whether a request of `tick` was answered before every partition reached its tick.
    pub fn partial(&self, tick: u64) -> bool {
        self.state().partial.iter().any(|(from, to)| (*from..*to).contains(&tick))
    }

    /// An event of `tick` arrived after the frontier had passed it (to `frontier`).
    pub fn late_event(&self, tick: u64, frontier: u64) {
        let mut s = self.state();
        match s.late.last_mut() {
            // Late events come in bursts against the same frontier: one range for the burst.
            Some((from, to)) if tick <= *to && frontier >= *from => {
                *from = (*from).min(tick);
                *to = (*to).max(frontier);
            }
            _ => s.late.push((tick, frontier)),
        }
    }

    /// Whether a request of `tick` may have missed a late event of its prefix.
    pub fn missed_late_input(&self, tick: u64) -> bool {
        self.state().late.iter().any(|(from, to)| *from < tick && tick <= *to)
    }

    /// How long every partition has been idle (zero while one is active).
    pub fn idle_for(&self, now: Instant) -> Duration {
        let s = self.state();
        let mut idle = Duration::MAX;
        for p in s.partitions.values() {
            if !p.at_end {
                return Duration::ZERO;
            }
            idle = idle.min(now.duration_since(p.since));
        }
        if s.partitions.is_empty() {
            Duration::ZERO
        } else {
            idle
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_slowest_active_partition_holds_time() {
        let t0 = Instant::now();
        let c = LiveClock::new(ms(100), ms(1_000), 0);
        c.add_partition(0, 0, t0);
        c.add_partition(1, 0, t0);
        c.observe(0, 0, Some(10), t0);
        assert_eq!(c.frontier(t0).tick, 0, "partition (1,0) has delivered nothing and is not at its end");
        c.observe(1, 0, Some(7), t0);
        assert_eq!(c.frontier(t0).tick, 7);
        c.observe(1, 0, Some(12), t0);
        assert_eq!(c.frontier(t0).tick, 10);
        // (0,0) reaches its end: it stops holding time back only after idle_ms.
        c.reached_end(0, 0, t0);
        assert_eq!(c.frontier(t0 + ms(50)).tick, 10);
        let f = c.frontier(t0 + ms(150));
        assert_eq!((f.tick, f.all_idle), (12, false));
        // Every partition idle: just past the newest tick read.
        c.reached_end(1, 0, t0 + ms(150));
        let f = c.frontier(t0 + ms(300));
        assert_eq!((f.tick, f.all_idle), (13, true));
        // A message wakes a partition up; the frontier never moves back.
        c.observe(1, 0, Some(11), t0 + ms(301));
        assert_eq!(c.frontier(t0 + ms(301)).tick, 13);
        assert!(!c.partial(12));
    }

    #[test]
    fn a_quiet_partition_holds_time_for_records_still_in_flight() {
        let t0 = Instant::now();
        let c = LiveClock::new(ms(100), ms(10_000), 0);
        c.add_partition(0, 0, t0);
        c.add_partition(1, 0, t0);
        c.observe(0, 0, Some(5), t0);
        c.observe(1, 0, Some(5), t0);
        c.reached_end(0, 0, t0);
        c.reached_end(1, 0, t0);
        assert_eq!(c.frontier(t0 + ms(200)).tick, 6, "everything read is answered after a pause");
        // After the pause (0,0) delivers tick 9 first; (1,0) is still idle, but its records
        // written before that one may be in flight: it holds time at what was read 100 ms ago.
        c.observe(0, 0, Some(9), t0 + ms(300));
        assert_eq!(c.frontier(t0 + ms(300)).tick, 6);
        assert_eq!(c.frontier(t0 + ms(390)).tick, 6);
        // (1,0)'s in-flight record of tick 7 arrives in time: not late.
        c.observe(1, 0, Some(7), t0 + ms(395));
        assert_eq!(c.frontier(t0 + ms(395)).tick, 7);
        // (1,0) stays quiet: once it has been at its end for 100 ms after tick 9 was read,
        // it no longer holds time back below 10.
        c.reached_end(1, 0, t0 + ms(396));
        assert_eq!(c.frontier(t0 + ms(450)).tick, 7);
        c.observe(0, 0, Some(12), t0 + ms(460));
        let f = c.frontier(t0 + ms(500));
        assert_eq!((f.tick, f.all_idle), (10, false), "settled at tick 9 (read at +300 ms)");
        assert_eq!(c.frontier(t0 + ms(560)).tick, 12, "(0,0) is active at 12; (1,0) settled at 12 + 1");
    }

    #[test]
    fn lateness_holds_the_frontier_back() {
        let t0 = Instant::now();
        let c = LiveClock::new(ms(100), ms(1_000), 3);
        c.add_partition(0, 0, t0);
        c.observe(0, 0, Some(10), t0);
        assert_eq!(c.frontier(t0).tick, 7);
    }

    #[test]
    fn a_request_waits_at_most_max_request_wait() {
        let t0 = Instant::now();
        let c = LiveClock::new(ms(10_000), ms(50), 0);
        c.add_partition(0, 0, t0);
        c.add_partition(2, 0, t0);
        c.observe(0, 0, Some(4), t0);
        c.observe(2, 0, Some(9), t0);
        c.request_read(9, t0);
        assert_eq!(c.frontier(t0 + ms(20)).tick, 4);
        assert!(!c.partial(9));
        let f = c.frontier(t0 + ms(60));
        assert_eq!(f.tick, 10, "the request of tick 9 is answered on the state so far");
        assert!(c.partial(9) && c.partial(4) && !c.partial(10) && !c.partial(3));
        // Answered requests stop waiting: no further forcing.
        c.request_read(20, t0 + ms(60));
        assert_eq!(c.frontier(t0 + ms(70)).tick, 10);
        assert_eq!(c.take_input_waits(), vec![ms(60)], "tick 9's request waited 60 ms; tick 20 is still open");
        assert!(c.take_input_waits().is_empty());
    }

    #[test]
    fn idle_for_counts_from_the_last_end() {
        let t0 = Instant::now();
        let c = LiveClock::new(ms(10), ms(50), 0);
        assert_eq!(c.idle_for(t0), Duration::ZERO);
        c.add_partition(0, 0, t0);
        c.add_partition(0, 1, t0);
        c.reached_end(0, 0, t0);
        assert_eq!(c.idle_for(t0 + ms(5)), Duration::ZERO);
        c.reached_end(0, 1, t0 + ms(5));
        assert_eq!(c.idle_for(t0 + ms(25)), ms(20));
    }

    /// A clock whose wall time at `t0` is `unix_ms`, with 10 ms ticks and 30 ms lateness.
    fn wall_clock(t0: Instant, unix_ms: i64) -> LiveClock {
        LiveClock::new(ms(1_000), ms(3_000), 0).with_wall_clock(WallClock {
            origin: (t0, unix_ms),
            lateness: ms(30),
            tick_ms: 10,
        })
    }

    #[test]
    fn with_current_producers_a_partition_at_its_end_follows_the_wall_clock() {
        let t0 = Instant::now();
        let c = wall_clock(t0, 100_000); // wall tick 10,000 at t0
        c.add_partition(0, 0, t0);
        c.add_partition(1, 0, t0);
        c.observe(0, 0, Some(9_999), t0); // a current event: ts ≈ now
        c.observe(1, 0, Some(9_990), t0);
        assert_eq!(c.frontier(t0).tick, 9_990, "partitions with data to read hold time at their tick");
        c.reached_end(1, 0, t0);
        // (1,0) is at its end: no idle_ms wait, it holds at now − 30 ms = tick 9,997 at t0.
        assert_eq!(c.frontier(t0).tick, 9_997);
        // (0,0) still has data to read: it holds time at its own tick, whatever the wall clock says.
        assert_eq!(c.frontier(t0 + ms(100)).tick, 9_999);
        c.reached_end(0, 0, t0 + ms(100));
        assert_eq!(c.frontier(t0 + ms(100)).tick, 10_007, "both at their end: now − 30 ms");
        // An event of an earlier tick now is late: the requests of the ticks it missed are marked.
        c.late_event(10_002, 10_007);
        c.late_event(10_004, 10_007);
        assert!(!c.missed_late_input(10_002), "a request of the event's own tick does not see it anyway");
        assert!(c.missed_late_input(10_003) && c.missed_late_input(10_007));
        assert!(!c.missed_late_input(10_008), "applied at tick 10,007: later requests see it");
    }

    #[test]
    fn a_recorded_log_with_old_timestamps_is_not_held_to_the_wall_clock() {
        let t0 = Instant::now();
        let c = wall_clock(t0, 1_000_000_000); // far later than the log's ticks
        c.add_partition(0, 0, t0);
        c.add_partition(1, 0, t0);
        c.observe(0, 0, Some(50), t0);
        c.observe(1, 0, Some(40), t0);
        c.reached_end(1, 0, t0);
        assert_eq!(c.frontier(t0 + ms(10)).tick, 40, "not current: (1,0) waits idle_ms as before");
        assert_eq!(c.frontier(t0 + ms(1_000)).tick, 50);
        // A quiet spell of a current stream longer than idle_ms falls back to the idle rule too.
        let c = wall_clock(t0, 100_000);
        c.add_partition(0, 0, t0);
        c.observe(0, 0, Some(9_900), t0); // its tick ended 990 ms before t0
        c.reached_end(0, 0, t0);
        assert_eq!(c.frontier(t0).tick, 9_997, "within idle_ms of the wall clock: current");
        let c = wall_clock(t0, 100_000);
        c.add_partition(0, 0, t0);
        c.observe(0, 0, Some(9_800), t0); // ended 1,990 ms before t0
        c.reached_end(0, 0, t0);
        assert_eq!(c.frontier(t0).tick, 9_800, "older than idle_ms: the idle rule");
    }
}
