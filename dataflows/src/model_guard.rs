//! The model guard: the linear fallback takes over from a model that this log's own engagements show to be worse.
//!
//! The committed model was trained on the generator's world; a user's log may be
//! nothing like it. So the engine keeps checking, on the log itself, which of its two
//! rankers would have found what users went on to like. For a like-or-stronger
//! engagement (at most one per user and `probe_interval_ms`; one in [`SAMPLE_ONE_IN`] of
//! them once the evidence is enough, see [`ModelGuard::wants_probe`]), the user's worker ranks a
//! probe: the request the user would have made just before it, from the state of
//! earlier ticks, with the usual filters but the served one (what follows a page is
//! mostly engagement with its posts; leaving those out weighs the evidence towards
//! what users find elsewhere). So in a live feed the evidence leans towards the ranker
//! that serves, and the guard is conservative there; it acts on logs whose engagements
//! do not come from the engine's pages (a replayed or imported log). Ranking scores
//! the probe with the model and with the fallback and notes whether the engaged post
//! is in each one's top [`GUARD_TOP`](crate::serving::GUARD_TOP). Only probes where exactly
//! one of them holds it say anything (a sign test, as McNemar's); their counts, decayed
//! with `half_life_ms`, go to every worker, which applies them `delay_ms` later. The
//! fallback takes over when its wins exceed the model's by more than `z` standard
//! deviations of a fair coin, and keeps the answers while its wins are still ahead.
//!
//! Determinism: every worker applies the same tallies (summed over all workers, per tick)
//! at the same tick in the same order, so every worker makes the same choice for the same
//! request, whatever the worker count. The delay is the feedback edge's: ranking at tick
//! `t` needs the tallies of ticks up to `t − delay` only, so a replay's ranking runs up
//! to `delay` ahead of its evidence instead of one tick at a time.

use feedflow_connectors::config::GuardConfig;
use serde::{Deserialize, Serialize};

/// Decisive probes (decayed) beyond which the guard scores only a sample of the probes: at
/// 100, a 3-sigma lead is a 65 %-to-35 % split, and a changing world still moves the counts.
pub const EVIDENCE_ENOUGH: f64 = 100.0;
/// The share of probes scored once the evidence is enough.
pub const SAMPLE_ONE_IN: u64 = 16;

/// One worker's probes of one tick that only one ranker got right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardTally {
    /// The tick the probes were ranked at.
    pub tick: u64,
    /// Probes whose engaged post only the model had in its top.
    pub model_only: u32,
    /// Probes whose engaged post only the fallback had in its top.
    pub fallback_only: u32,
}

/// The guard's evidence and choice, as one worker keeps it (the same on every worker).
#[derive(Clone, Debug)]
pub struct ModelGuard {
    enabled: bool,
    z: f64,
    half_life_ticks: f64,
    /// Decayed wins, as of `at_tick`.
    model_wins: f64,
    fallback_wins: f64,
    at_tick: u64,
    /// Tallies of probes ranked before this tick are ignored (they scored another model).
    since_tick: u64,
    prefers_fallback: bool,
    /// This worker's probes of the tick being ranked.
    current: GuardTally,
    /// Probes ranked by this worker, and how many only one ranker got right.
    pub probes: u64,
}

impl ModelGuard {
    /// A guard with no evidence yet (the model answers), for ticks of `tick_ms`.
    pub fn new(config: &GuardConfig, tick_ms: u64) -> Self {
        Self {
            enabled: config.enabled,
            z: config.z,
            half_life_ticks: (config.half_life_ms / tick_ms.max(1)).max(1) as f64,
            model_wins: 0.0,
            fallback_wins: 0.0,
            at_tick: 0,
            since_tick: 0,
            prefers_fallback: false,
            current: GuardTally::default(),
            probes: 0,
        }
    }

    /// Whether a probe (keyed by a hash of its user and time) is worth ranking: every one while
    /// the evidence is short, one in [`SAMPLE_ONE_IN`] once the decayed wins that decide reach
    /// [`EVIDENCE_ENOUGH`] (a probe costs as much as a request). Asked at the user's worker,
    /// before anything is spent on the probe, of a replica fed the same tallies at the same ticks.
    pub fn wants_probe(&self, key: u64) -> bool {
        self.model_wins + self.fallback_wins < EVIDENCE_ENOUGH || key.is_multiple_of(SAMPLE_ONE_IN)
    }

    /// Whether the fallback should answer instead of the model.
    pub fn prefers_fallback(&self) -> bool {
        self.prefers_fallback
    }

    /// The decayed wins so far: (model's, fallback's).
    pub fn wins(&self) -> (f64, f64) {
        (self.model_wins, self.fallback_wins)
    }

    /// Notes one probe ranked at `tick`: whether each ranker had the engaged post in its top.
    pub fn record(&mut self, tick: u64, model_hit: bool, fallback_hit: bool) {
        if self.current.tick != tick {
            self.current = GuardTally { tick, ..GuardTally::default() };
        }
        self.probes += 1;
        self.current.model_only += (model_hit && !fallback_hit) as u32;
        self.current.fallback_only += (fallback_hit && !model_hit) as u32;
    }

    /// This worker's tally for `tick`, if any probe of it said something.
    pub fn take_tally(&mut self, tick: u64) -> Option<GuardTally> {
        let tally = std::mem::take(&mut self.current);
        (tally.tick == tick && tally.model_only + tally.fallback_only > 0).then_some(tally)
    }

    /// Applies every worker's tallies that reached this tick, and decides.
    pub fn apply(&mut self, mut tallies: Vec<GuardTally>) {
        tallies.sort_by_key(|t| t.tick);
        let mut i = 0;
        while i < tallies.len() {
            let tick = tallies[i].tick;
            let (mut model, mut fallback) = (0u64, 0u64);
            while i < tallies.len() && tallies[i].tick == tick {
                model += tallies[i].model_only as u64;
                fallback += tallies[i].fallback_only as u64;
                i += 1;
            }
            if tick < self.since_tick {
                continue;
            }
            let decay = 0.5f64.powf(tick.saturating_sub(self.at_tick) as f64 / self.half_life_ticks);
            self.model_wins = self.model_wins * decay + model as f64;
            self.fallback_wins = self.fallback_wins * decay + fallback as f64;
            self.at_tick = self.at_tick.max(tick);
        }
        // The model is the default: the fallback takes over on evidence beyond chance, and keeps
        // the answers while it is still ahead (no flapping around the threshold).
        let (b, c) = (self.fallback_wins, self.model_wins);
        self.prefers_fallback =
            self.enabled && if self.prefers_fallback { b > c } else { b - c > self.z * (b + c).sqrt() };
    }

    /// Forgets the evidence from `tick` on (a new model starts with a clean slate).
    pub fn reset(&mut self, tick: u64) {
        self.model_wins = 0.0;
        self.fallback_wins = 0.0;
        self.since_tick = tick;
        self.at_tick = tick;
        self.prefers_fallback = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> ModelGuard {
        ModelGuard::new(&GuardConfig { z: 3.0, half_life_ms: 1_000_000, ..GuardConfig::default() }, 1)
    }

    fn tally(tick: u64, model_only: u32, fallback_only: u32) -> GuardTally {
        GuardTally { tick, model_only, fallback_only }
    }

    #[test]
    fn the_fallback_takes_over_only_when_its_wins_beat_chance() {
        let mut g = guard();
        // 9 to 0 is exactly 3 sigma (9 = 3 * sqrt(9)): not more than chance yet.
        g.apply(vec![tally(1, 0, 9)]);
        assert!(!g.prefers_fallback());
        g.apply(vec![tally(2, 0, 1)]);
        assert!(g.prefers_fallback());
        // Once ahead beyond chance, the fallback keeps the answers while it is ahead at all …
        g.apply(vec![tally(3, 8, 0)]);
        assert!(g.prefers_fallback(), "10 to 8 still favours the fallback");
        // … and the model wins them back once its own wins outweigh the fallback's.
        g.apply(vec![tally(4, 3, 0)]);
        assert!(!g.prefers_fallback());
        // A close race never hands over: 60 to 50 is under 1 sigma.
        let mut close = guard();
        close.apply(vec![tally(1, 25, 30), tally(1, 25, 30)]);
        assert_eq!(close.wins(), (50.0, 60.0));
        assert!(!close.prefers_fallback());
    }

    #[test]
    fn tallies_give_the_same_choice_in_any_order_and_split() {
        let mut whole = guard();
        whole.apply(vec![tally(5, 3, 20), tally(9, 1, 4)]);
        let mut split = guard();
        split.apply(vec![tally(9, 1, 0), tally(5, 1, 12), tally(5, 2, 8), tally(9, 0, 4)]);
        assert_eq!(whole.wins(), split.wins());
        assert_eq!(whole.prefers_fallback(), split.prefers_fallback());
    }

    #[test]
    fn old_evidence_decays_and_a_reset_forgets_it() {
        let mut g = guard();
        g.apply(vec![tally(0, 0, 100)]);
        assert!(g.prefers_fallback());
        g.apply(vec![tally(1_000_000, 0, 0)]);
        assert!((g.wins().1 - 50.0).abs() < 1e-9, "one half-life halves it: {:?}", g.wins());
        g.reset(2_000_000);
        assert!(!g.prefers_fallback());
        g.apply(vec![tally(1_999_999, 0, 100)]);
        assert_eq!(g.wins(), (0.0, 0.0), "tallies of the old model are ignored");
    }

    #[test]
    fn a_disabled_guard_never_hands_over_and_tallies_come_once_per_tick() {
        let mut g = ModelGuard::new(&GuardConfig { enabled: false, ..GuardConfig::default() }, 1);
        g.apply(vec![tally(1, 0, 1_000)]);
        assert!(!g.prefers_fallback());
        g.record(7, true, false);
        g.record(7, true, true);
        g.record(7, false, false);
        assert_eq!(g.take_tally(7), Some(tally(7, 1, 0)));
        assert_eq!(g.take_tally(7), None);
        g.record(8, true, true);
        assert_eq!(g.take_tally(8), None, "a tie says nothing");
        assert_eq!(g.probes, 4);
    }

    #[test]
    fn probes_are_sampled_once_the_evidence_is_enough() {
        let mut g = guard();
        assert!((0..16).all(|key| g.wants_probe(key)));
        g.apply(vec![tally(1, 120, 80)]);
        let scored = (0..800u64).filter(|key| g.wants_probe(*key)).count();
        assert_eq!(scored, 800 / SAMPLE_ONE_IN as usize);
    }
}
