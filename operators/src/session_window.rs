//! The last N actions of the current session, where a gap longer than `gap_ms` ends a session.
//!
//! ```
//! use feedflow_operators::session_window::SessionWindow;
//! let mut s = SessionWindow::new(2, 1_000);
//! s.push(0, 1.0, vec![1.0]);
//! s.push(500, 1.0, vec![2.0]);
//! s.push(900, 1.0, vec![4.0]);          // keeps the last 2
//! assert_eq!(s.sum_at(1_000)[0], 6.0);
//! assert_eq!(s.sum_at(5_000)[0], 0.0);   // session over
//! ```

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

/// One action: time, weight and vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// When it happened (ms).
    pub ts: i64,
    /// Its weight.
    pub weight: f64,
    /// Its vector.
    pub vector: Arc<[f32]>,
}

/// Bounded window over the current session's most recent actions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionWindow {
    capacity: usize,
    gap_ms: i64,
    /// Actions of the current session, sorted by time, at most `capacity`.
    actions: VecDeque<Action>,
    /// Start of the current session (its earliest action, kept or trimmed).
    started: i64,
}

impl SessionWindow {
    /// Keeps at most `capacity` actions; a gap above `gap_ms` starts a new session.
    pub fn new(capacity: usize, gap_ms: u64) -> Self {
        Self { capacity: capacity.max(1), gap_ms: gap_ms as i64, actions: VecDeque::new(), started: i64::MIN }
    }

    /// Records an action. An action older than the newest one is put in time
    /// order; one from before the current session (more than the gap before its
    /// start) is ignored.
    pub fn push(&mut self, ts: i64, weight: f64, vector: impl Into<Arc<[f32]>>) {
        let vector = vector.into();
        let action = Action { ts, weight, vector };
        match self.actions.back() {
            Some(last) if ts >= last.ts => {
                if ts - last.ts > self.gap_ms {
                    self.actions.clear();
                    self.started = ts;
                }
                self.actions.push_back(action);
            }
            Some(_) => {
                if ts < self.started - self.gap_ms {
                    return;
                }
                let at = self.actions.partition_point(|a| a.ts <= ts);
                self.actions.insert(at, action);
                self.started = self.started.min(ts);
            }
            None => {
                self.started = ts;
                self.actions.push_back(action);
            }
        }
        while self.actions.len() > self.capacity {
            self.actions.pop_front();
        }
    }

    /// Σ weight·vector over the kept actions, or zeros when the session has
    /// ended by `now` (no action within the gap).
    pub fn sum_at(&self, now: i64) -> Vec<f64> {
        let dims = self.actions.front().map_or(0, |a| a.vector.len());
        let mut out = vec![0.0; dims];
        if self.is_active(now) {
            for a in &self.actions {
                for (o, v) in out.iter_mut().zip(a.vector.iter()) {
                    *o += a.weight * *v as f64;
                }
            }
        }
        out
    }

    /// Whether the session is still open at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.actions.back().is_some_and(|last| now - last.ts <= self.gap_ms)
    }

    /// The kept actions, oldest first.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_starts_a_new_session() {
        let mut s = SessionWindow::new(20, 100);
        s.push(0, 1.0, vec![1.0]);
        s.push(50, 1.0, vec![1.0]);
        s.push(300, 2.0, vec![1.0]);
        assert_eq!(s.sum_at(300), vec![2.0]);
        assert!(!s.is_active(401));
    }

    #[test]
    fn late_actions_are_placed_in_time_order() {
        let mut s = SessionWindow::new(2, 100);
        s.push(10, 1.0, vec![1.0]);
        s.push(30, 1.0, vec![2.0]);
        s.push(20, 1.0, vec![4.0]); // newer than 10: evicts it
        assert_eq!(s.sum_at(30), vec![6.0]);
        s.push(5, 1.0, vec![8.0]); // older than everything kept: not among the last 2
        assert_eq!(s.sum_at(30), vec![6.0]);
    }
}
