//! Long-term user vectors and session deltas (DESIGN.md §4), kept per user at the user's owner worker.
//!
//! Enriched engagements are routed by `hash(user_id)`; each complete tick is
//! applied in a fixed order (time, then post, kind, dwell), so the state is the
//! same for any worker count. The state is shared with the serving stage of
//! the same worker, which reads it between ticks.

use crate::model::Enriched;
use feedflow_connectors::config::Config;
use feedflow_operators::decayed_vector::DecayedSum;
use feedflow_operators::hash::FastMap;
use feedflow_operators::session_window::SessionWindow;

/// What the engine knows about one user's interests.
#[derive(Clone, Debug, PartialEq)]
pub struct UserState {
    /// Time-decayed weighted sum of engaged post embeddings.
    pub long_term: DecayedSum,
    /// The current session's last actions.
    pub session: SessionWindow,
    /// Engagements seen.
    pub actions: u64,
    /// Positive engagements seen.
    pub positives: u64,
    /// Time of the last engagement (ms).
    pub last_ts: i64,
}

/// Interest state of the users owned by one worker.
pub struct Interests {
    half_life_ms: u64,
    session_weight: f64,
    dimensions: usize,
    session_actions: usize,
    session_gap_ms: u64,
    /// Users by id.
    pub users: FastMap<u64, UserState>,
}

/// A user's vectors evaluated at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct UserVectors {
    /// Long-term vector.
    pub long_term: Vec<f64>,
    /// Session delta (zeros outside a session).
    pub session: Vec<f64>,
    /// normalize(long_term + session_weight · session); zeros when both are zero.
    pub query: Vec<f64>,
}

impl Interests {
    /// Empty state with the parameters of `config`.
    pub fn new(config: &Config) -> Self {
        let i = &config.interest;
        Self {
            half_life_ms: i.half_life_ms,
            session_weight: i.session_weight,
            dimensions: config.index.dimensions,
            session_actions: i.session_actions,
            session_gap_ms: i.session_gap_ms,
            users: FastMap::default(),
        }
    }

    /// Applies one complete tick of a worker's engagements.
    pub fn apply_tick(&mut self, mut engagements: Vec<Enriched>) {
        engagements.sort_by_key(Enriched::order_key);
        for e in engagements {
            let user = self.users.entry(e.user_id).or_insert_with(|| UserState {
                long_term: DecayedSum::new(self.dimensions),
                session: SessionWindow::new(self.session_actions, self.session_gap_ms),
                actions: 0,
                positives: 0,
                last_ts: e.ts,
            });
            let weight = e.weight_milli as f64 / 1000.0;
            if e.weight_milli != 0 {
                user.long_term.add(e.ts, weight, &e.embedding, self.half_life_ms);
            }
            user.actions += 1;
            user.positives += (e.weight_milli > 0) as u64;
            user.last_ts = user.last_ts.max(e.ts);
            user.session.push(e.ts, weight, e.embedding);
        }
    }

    /// The vectors of `user_id` as of `ts`, if the user has engaged at all.
    pub fn vectors_at(&self, user_id: u64, ts: i64) -> Option<UserVectors> {
        let user = self.users.get(&user_id)?;
        let long_term = user.long_term.value_at(ts, self.half_life_ms);
        let mut session = user.session.sum_at(ts);
        session.resize(self.dimensions, 0.0);
        let mut query: Vec<f64> = long_term.iter().zip(&session).map(|(l, s)| l + self.session_weight * s).collect();
        let norm = query.iter().map(|q| q * q).sum::<f64>().sqrt();
        if norm > 0.0 {
            query.iter_mut().for_each(|q| *q /= norm);
        }
        Some(UserVectors { long_term, session, query })
    }
}
