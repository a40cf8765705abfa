//! Engagements that arrive before their post's upload wait for it, for a bounded time (`interest.pending_ttl_ms`).
//!
//! Both places that join engagements with posts keep one: the post registry
//! (velocity, popularity) and the user's worker (interests, profiles).

use feedflow_connectors::event::Event;
use feedflow_operators::hash::FastMap;
use std::collections::VecDeque;

/// Engagements waiting for their upload, each with the tick it arrived at.
#[derive(Default)]
pub struct WaitingEngagements {
    ttl_ticks: u64,
    by_post: FastMap<u64, Vec<(u64, Event)>>,
    /// (tick, post) in arrival order, to expire the oldest first.
    order: VecDeque<(u64, u64)>,
}

impl WaitingEngagements {
    /// Engagements wait at most `ttl_ticks`.
    pub fn new(ttl_ticks: u64) -> Self {
        Self { ttl_ticks, ..Self::default() }
    }

    /// Forgets what waited longer than the TTL at `tick`; returns how many were dropped.
    pub fn expire(&mut self, tick: u64) -> u64 {
        let mut dropped = 0;
        while let Some(&(t, post_id)) = self.order.front() {
            if t + self.ttl_ticks >= tick {
                break;
            }
            self.order.pop_front();
            if let Some(list) = self.by_post.get_mut(&post_id) {
                let before = list.len();
                list.retain(|(et, _)| et + self.ttl_ticks >= tick);
                dropped += (before - list.len()) as u64;
                if list.is_empty() {
                    self.by_post.remove(&post_id);
                }
            }
        }
        dropped
    }

    /// An engagement of `tick` on `post_id`, which is not uploaded yet.
    pub fn wait(&mut self, tick: u64, post_id: u64, event: Event) {
        self.order.push_back((tick, post_id));
        self.by_post.entry(post_id).or_default().push((tick, event));
    }

    /// The engagements waiting for `post_id`, uploaded at `tick`, still within the TTL.
    pub fn release(&mut self, post_id: u64, tick: u64) -> Vec<Event> {
        let ttl = self.ttl_ticks;
        self.by_post
            .remove(&post_id)
            .map(|list| list.into_iter().filter(|(et, _)| et + ttl >= tick).map(|(_, e)| e).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use feedflow_connectors::event::{Engagement, EngagementKind, EventBody, Position};

    fn like(post_id: u64, ts: i64) -> Event {
        Event {
            ts,
            event_id: None,
            position: Position { source: 0, partition: 0, offset: ts as u64 },
            body: EventBody::Engagement(Engagement {
                user_id: 1,
                post_id,
                kind: EngagementKind::Like,
                dwell_ms: None,
                impression_id: None,
            }),
        }
    }

    #[test]
    fn engagements_wait_for_their_upload_within_the_ttl() {
        let mut w = WaitingEngagements::new(10);
        w.wait(1, 7, like(7, 1));
        w.wait(5, 7, like(7, 5));
        w.wait(5, 8, like(8, 5));
        assert_eq!(w.expire(11), 0);
        assert_eq!(w.expire(12), 1, "the tick-1 engagement waited 11 ticks");
        let released: Vec<i64> = w.release(7, 12).iter().map(|e| e.ts).collect();
        assert_eq!(released, vec![5]);
        assert!(w.release(7, 12).is_empty());
        // Past the TTL at release time, even if not expired yet.
        assert!(w.release(8, 16).is_empty());
    }
}
