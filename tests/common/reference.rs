//! A brute-force reference computed directly from a log: no dataflow, no
//! incremental state, every figure recomputed from the full list of events.
//!
//! It follows DESIGN.md and the documented choices of the engine:
//! ticks are `ts / tick_ms`; a log is read in order; duplicates by
//! `event_id` are dropped (first copy wins); an engagement takes effect at
//! `max(its tick, its post's upload tick)`; windows cover ticks `(T − W, T]`.

use feedflow::connectors::config::Config;
use feedflow::connectors::event::{EngagementKind, Event, EventBody, ModerationAction, Position};
use feedflow::connectors::{decode, DecodeLimits};
use std::collections::{BTreeMap, HashMap, HashSet};

pub struct Post {
    pub creator_id: u64,
    pub category: String,
    pub embedding: Vec<f32>,
    pub is_public: bool,
    pub upload_tick: u64,
}

pub struct Eng {
    pub tick: u64,
    pub ts: i64,
    pub user_id: u64,
    pub post_id: u64,
    pub creator_id: u64,
    pub kind: EngagementKind,
    pub dwell_ms: Option<u64>,
    pub weight: f64,
}

pub struct Reference {
    pub config: Config,
    pub posts: HashMap<u64, Post>,
    /// (tick, post, blocked?) moderation changes in order.
    pub moderation: Vec<(u64, u64, ModerationAction)>,
    pub engagements: Vec<Eng>,
    pub last_tick: u64,
    pub rejected: usize,
}

fn weight(config: &Config, kind: EngagementKind, dwell: Option<u64>) -> f64 {
    let w = &config.interest.weights;
    match kind {
        EngagementKind::View if dwell.unwrap_or(0) >= config.interest.view_min_dwell_ms => w.view,
        EngagementKind::View => 0.0,
        EngagementKind::Like => w.like,
        EngagementKind::Comment => w.comment,
        EngagementKind::Save => w.save,
        EngagementKind::Share => w.share,
        EngagementKind::Follow => w.follow,
        EngagementKind::Skip => w.skip,
        EngagementKind::Hide => w.hide,
        EngagementKind::Report => w.report,
    }
}

impl Reference {
    pub fn from_log(text: &str, config: &Config) -> Self {
        let limits = DecodeLimits::from_config(config);
        let tick_ms = config.engine.tick_ms;
        let mut seen = HashSet::new();
        let mut events: Vec<Event> = Vec::new();
        let mut rejected = 0;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match decode(line.as_bytes(), Position { source: 0, partition: 0, offset: i as u64 + 1 }, &limits) {
                Ok(e) => {
                    if let Some(id) = &e.event_id {
                        if !seen.insert(id.clone()) {
                            continue;
                        }
                    }
                    events.push(e);
                }
                Err(_) => rejected += 1,
            }
        }
        let tick = |ts: i64| ts as u64 / tick_ms;
        let mut posts = HashMap::new();
        let mut moderation = Vec::new();
        let mut raw = Vec::new();
        let mut last_tick = 0;
        for e in &events {
            last_tick = last_tick.max(tick(e.ts));
            match &e.body {
                EventBody::Upload(u) => {
                    posts.entry(u.post_id).or_insert(Post {
                        creator_id: u.creator_id,
                        category: u.category.clone(),
                        embedding: u.embedding.clone(),
                        is_public: u.is_public,
                        upload_tick: tick(e.ts),
                    });
                }
                EventBody::Moderation(m) => moderation.push((tick(e.ts), m.post_id, m.action)),
                EventBody::Engagement(x) => raw.push((e.ts, x.clone())),
                EventBody::Request(_) => {}
            }
        }
        let ttl = config.interest.pending_ttl_ms / tick_ms;
        let mut engagements = Vec::new();
        for (ts, x) in raw {
            let Some(post) = posts.get(&x.post_id) else { continue };
            let own = tick(ts);
            if post.upload_tick > own + ttl {
                continue;
            }
            engagements.push(Eng {
                tick: own.max(post.upload_tick),
                ts,
                user_id: x.user_id,
                post_id: x.post_id,
                creator_id: post.creator_id,
                kind: x.kind,
                dwell_ms: x.dwell_ms,
                weight: weight(config, x.kind, x.dwell_ms),
            });
        }
        Self { config: config.clone(), posts, moderation, engagements, last_tick, rejected }
    }

    /// Whether a post is public and unblocked after the events of tick `t`.
    pub fn recommendable(&self, post_id: u64, t: u64) -> bool {
        let Some(p) = self.posts.get(&post_id) else { return false };
        if !p.is_public || p.upload_tick > t {
            return false;
        }
        let mut blocked = false;
        for (mt, pid, action) in &self.moderation {
            if *pid == post_id && *mt <= t {
                match action {
                    ModerationAction::Block => blocked = true,
                    ModerationAction::Unblock => blocked = false,
                    ModerationAction::Demote => {}
                }
            }
        }
        !blocked
    }

    /// Recent (weighted, count) per post and baseline per creator at tick `t`.
    pub fn windows_at(&self, t: u64) -> (HashMap<u64, (f64, i64)>, HashMap<u64, f64>) {
        let tr = &self.config.trending;
        let w = tr.window_ms / self.config.engine.tick_ms;
        let b = tr.baseline_window_ms / self.config.engine.tick_ms;
        let mut recent: HashMap<u64, (f64, i64)> = HashMap::new();
        let mut baseline: HashMap<u64, f64> = HashMap::new();
        for e in &self.engagements {
            if e.weight <= 0.0 || e.tick > t {
                continue;
            }
            if e.tick + w > t {
                let r = recent.entry(e.post_id).or_default();
                r.0 += e.weight;
                r.1 += 1;
            }
            if e.tick + b > t {
                *baseline.entry(e.creator_id).or_default() += e.weight;
            }
        }
        (recent, baseline)
    }

    /// The trending pool at tick `t`: category → [(post, ratio, recent)], best first.
    pub fn pool_at(&self, t: u64) -> BTreeMap<String, Vec<(u64, f64, f64)>> {
        let tr = &self.config.trending;
        let max_age = tr.max_age_ms / self.config.engine.tick_ms;
        let (recent, baseline) = self.windows_at(t);
        let mut by_category: BTreeMap<String, Vec<(u64, f64, f64)>> = BTreeMap::new();
        for (post_id, (r, count)) in recent {
            let post = &self.posts[&post_id];
            if count < tr.min_count || post.upload_tick + max_age <= t || !self.recommendable(post_id, t) {
                continue;
            }
            let base = baseline[&post.creator_id] * tr.window_ms as f64 / tr.baseline_window_ms as f64;
            let ratio = r / base.max(tr.baseline_floor);
            if ratio >= tr.ratio_threshold - 1e-12 {
                by_category.entry(post.category.clone()).or_default().push((post_id, ratio, r));
            }
        }
        for list in by_category.values_mut() {
            list.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
            list.truncate(tr.top_n);
        }
        by_category.retain(|_, v| !v.is_empty());
        by_category
    }

    /// Posts in the index at the end: public and not blocked.
    pub fn index_at_end(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.posts.keys().copied().filter(|p| self.recommendable(*p, u64::MAX)).collect();
        v.sort();
        v
    }

    /// Fresh pool at tick `t`.
    pub fn fresh_at(&self, t: u64) -> Vec<u64> {
        let age = self.config.pools.fresh_max_age_ms / self.config.engine.tick_ms;
        let mut v: Vec<u64> = self
            .posts
            .iter()
            .filter(|(id, p)| p.upload_tick <= t && p.upload_tick + age > t && self.recommendable(**id, t))
            .map(|(id, _)| *id)
            .collect();
        v.sort();
        v
    }

    /// Popular list at tick `t`: (post, weight decayed with the popular half-life), best first.
    pub fn popular_at(&self, t: u64) -> Vec<(u64, f64)> {
        let half_life = (self.config.pools.popular_half_life_ms / self.config.engine.tick_ms) as f64;
        let mut sums: HashMap<u64, f64> = HashMap::new();
        for e in &self.engagements {
            if e.weight > 0.0 && e.tick <= t {
                let w = (e.weight * 1000.0).round() / 1000.0;
                *sums.entry(e.post_id).or_default() += w * (-((t - e.tick) as f64) / half_life).exp2();
            }
        }
        let mut v: Vec<(u64, f64)> = sums.into_iter().filter(|(p, w)| *w > 0.0 && self.recommendable(*p, t)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(self.config.pools.popular_top_n);
        v
    }

    /// Co-engagement counts `(anchor, item) → count` after the last tick: each positive engagement
    /// (weight > 0) of a user, in the user's order of effect, pairs both ways with the user's last
    /// `related_pairs_per_user` distinct earlier positives within `related_window_ms`; the pairs
    /// of an item's logical shard leave by whole ticks, oldest first, while the shard holds more
    /// than `related_max_pairs` (never the newest tick). The window itself outlasts these tests' logs.
    pub fn related_counts(&self) -> BTreeMap<(u64, u64), i64> {
        let s = &self.config.serving;
        let keep = s.related_pairs_per_user.max(s.related_anchors);
        let mut by_user: BTreeMap<u64, Vec<&Eng>> = BTreeMap::new();
        for e in self.engagements.iter().filter(|e| (e.weight * 1000.0).round() > 0.0) {
            by_user.entry(e.user_id).or_default().push(e);
        }
        // shard → tick → pairs
        let mut shards: BTreeMap<u32, BTreeMap<u64, Vec<(u64, u64)>>> = BTreeMap::new();
        for list in by_user.values_mut() {
            list.sort_by_key(|e| (e.tick, e.ts, e.post_id, e.kind, e.dwell_ms));
            let mut recent: Vec<(i64, u64)> = Vec::new(); // newest first
            for e in list.iter() {
                let oldest = e.ts - s.related_window_ms as i64;
                let partners: Vec<u64> = recent
                    .iter()
                    .filter(|(ts, q)| *ts > oldest && *q != e.post_id)
                    .take(s.related_pairs_per_user)
                    .map(|(_, q)| *q)
                    .collect();
                for q in partners {
                    for (anchor, item) in [(q, e.post_id), (e.post_id, q)] {
                        let shard = feedflow::dataflows::posts::shard_of(item, self.config.index.shards);
                        shards.entry(shard).or_default().entry(e.tick).or_default().push((anchor, item));
                    }
                }
                recent.retain(|(_, q)| *q != e.post_id);
                recent.insert(0, (e.ts, e.post_id));
                recent.truncate(keep);
            }
        }
        let mut counts: BTreeMap<(u64, u64), i64> = BTreeMap::new();
        for ticks in shards.values() {
            let mut kept: Vec<(u64, usize)> = Vec::new();
            let mut held = 0usize;
            for (tick, pairs) in ticks {
                kept.push((*tick, pairs.len()));
                held += pairs.len();
                while held > s.related_max_pairs && kept.len() > 1 {
                    held -= kept.remove(0).1;
                }
            }
            for (tick, _) in kept {
                for pair in &ticks[&tick] {
                    *counts.entry(*pair).or_default() += 1;
                }
            }
        }
        counts
    }

    /// A user's long-term vector and session delta at `at_ts`, from all their engagements.
    pub fn user_vectors(&self, user_id: u64, at_ts: i64) -> (Vec<f64>, Vec<f64>) {
        let dims = self.config.index.dimensions;
        let hl = self.config.interest.half_life_ms as f64;
        let mut long_term = vec![0.0; dims];
        let mut actions: Vec<&Eng> = self.engagements.iter().filter(|e| e.user_id == user_id).collect();
        for e in &actions {
            let f = e.weight * (-((at_ts - e.ts) as f64) / hl).exp2();
            let emb = &self.posts[&e.post_id].embedding;
            for i in 0..dims {
                long_term[i] += f * emb[i] as f64;
            }
        }
        actions.sort_by_key(|e| (e.ts, e.post_id, e.kind, e.dwell_ms));
        let gap = self.config.interest.session_gap_ms as i64;
        let mut session = vec![0.0; dims];
        if let Some(last) = actions.last() {
            if at_ts - last.ts <= gap {
                let mut start = actions.len() - 1;
                while start > 0 && actions[start].ts - actions[start - 1].ts <= gap {
                    start -= 1;
                }
                let run = &actions[start..];
                let keep = run.len().saturating_sub(self.config.interest.session_actions);
                for e in &run[keep..] {
                    let emb = &self.posts[&e.post_id].embedding;
                    for i in 0..dims {
                        session[i] += e.weight * emb[i] as f64;
                    }
                }
            }
        }
        (long_term, session)
    }

    pub fn users(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.engagements.iter().map(|e| e.user_id).collect::<HashSet<_>>().into_iter().collect();
        v.sort();
        v
    }
}
