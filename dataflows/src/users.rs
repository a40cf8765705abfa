//! The user's worker: interest state, the user's profile, and requests turned into contexts.
//!
//! Engagements and requests are routed by `hash(user_id)`; every upload's
//! metadata (creator, category, embedding) reaches every worker, so the
//! engagement join happens here, straight from the input, with no loop back
//! from the post registry. Each complete tick first answers its requests, then
//! applies its uploads and engagements, so a request sees the events of earlier
//! ticks only (DESIGN.md §1). An engagement that arrives before its upload
//! waits for it, exactly as at the registry. Applying a positive engagement
//! also emits co-engagement pairs with the user's recent positives (bounded per
//! user) for the `related` counts.

use crate::interest::Interests;
use crate::model::{engagement_weight_milli, Enriched};
use crate::posts::shard_of;
use crate::serving::{RequestContext, GUARD_TOP};
use crate::waiting::WaitingEngagements;
use feedflow_connectors::config::Config;
use feedflow_connectors::event::{EngagementKind, Event, EventBody, Position, Request};
use feedflow_operators::hash::{mix64, FastMap};
use feedflow_operators::tick_batch::TickBatch;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use timely::dataflow::StreamVec;

/// What the user side needs of an upload to join engagements with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PostMeta {
    /// Upload time (ms).
    pub ts: i64,
    /// Where the upload was read (breaks ties between uploads of one post).
    pub position: Position,
    /// The post.
    pub post_id: u64,
    /// Its creator.
    pub creator_id: u64,
    /// Its category.
    pub category: String,
    /// Its content type.
    pub content_type: String,
    /// Its embedding.
    pub embedding: Arc<[f32]>,
}

impl PostMeta {
    /// The metadata of an upload event; `None` for other events.
    pub fn of(event: &Event) -> Option<Self> {
        let EventBody::Upload(u) = &event.body else { return None };
        Some(Self {
            ts: event.ts,
            position: event.position,
            post_id: u.post_id,
            creator_id: u.creator_id,
            category: u.category.clone(),
            content_type: u.content_type.clone(),
            embedding: Arc::from(u.embedding.as_slice()),
        })
    }
}

/// What reaches the user's worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum UserInput {
    /// An upload's metadata, addressed to one worker (every worker gets a copy).
    Post(u64, PostMeta),
    /// An engagement event.
    Engagement(Event),
    /// A request event.
    Request(Event),
    /// The model guard's evidence, addressed to one worker (every worker gets a copy): the user
    /// side keeps a replica of the guard to pick the probes worth ranking.
    Guard(u64, crate::model_guard::GuardTally),
}

impl UserInput {
    /// The exchange key: the addressed worker, or the user's hash.
    fn route(&self) -> u64 {
        match self {
            UserInput::Post(worker, _) | UserInput::Guard(worker, _) => *worker,
            UserInput::Engagement(Event { body: EventBody::Engagement(e), .. }) => mix64(e.user_id),
            UserInput::Request(Event { body: EventBody::Request(r), .. }) => mix64(r.user_id),
            UserInput::Engagement(_) | UserInput::Request(_) => 0,
        }
    }
}

/// A post as the user side keeps it; every worker keeps every post, in copies of its own.
#[derive(Debug)]
pub struct KnownPost {
    /// Its creator.
    pub creator_id: u64,
    /// Shared with every engagement joined with the post (no copy per engagement).
    pub category: Arc<str>,
    /// Its content type (ranking reads it from here, see [`Users::known_post`]).
    pub content_type: Arc<str>,
    /// Its embedding as uploaded.
    pub embedding: Arc<[f32]>,
}

/// One co-engagement: `item` was engaged positively near `anchor` by the same user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoPair {
    /// Tick of the engagement that made the pair.
    pub tick: u64,
    /// The earlier (or later) positive.
    pub anchor: u64,
    /// The post counted as related to `anchor` (the pair lives at this post's shard).
    pub item: u64,
}

/// What the user's worker produces.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum UserOutput {
    /// A request ready for the shards.
    Context(Arc<RequestContext>),
    /// A tick's co-engagement pairs whose item lives at one logical shard (the first field).
    /// Pairs outnumber events several times over, so they travel one batch per shard and tick.
    Pairs(u32, Vec<CoPair>),
}

/// A time-decayed number.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Decayed {
    value: f64,
    ts: i64,
}

impl Decayed {
    fn at(&self, ts: i64, half_life_ms: u64) -> f64 {
        let dt = (ts - self.ts).max(0) as f64;
        self.value * (-(dt / half_life_ms.max(1) as f64) * std::f64::consts::LN_2).exp()
    }

    fn add(&mut self, ts: i64, weight: f64, half_life_ms: u64) {
        let now = ts.max(self.ts);
        self.value = self.at(now, half_life_ms) + weight;
        self.ts = now;
    }
}

/// What the engine remembers about a user beyond the interest vectors.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Recent positive engagements, newest first: (time, post).
    recent_positives: VecDeque<(i64, u64)>,
    /// Last engagement time per post: never recommended again (at most `serving.engaged_memory`, the newest).
    engaged: FastMap<u64, i64>,
    /// Posts the user hid or reported.
    hidden_posts: BTreeSet<u64>,
    /// Creators hidden until a time.
    hidden_creators: FastMap<u64, i64>,
    /// Creators followed.
    followed: BTreeSet<u64>,
    /// When the model guard last probed this user (ms).
    guard_probed: Option<i64>,
    /// Decayed positive weight per category.
    categories: FastMap<String, Decayed>,
    /// Decayed signed weight per creator.
    creators: FastMap<u64, Decayed>,
}

/// The user side of one worker: interests and profiles of the users it owns.
pub struct Users {
    /// Long-term vectors and session deltas.
    pub interests: Interests,
    /// Profiles by user.
    pub profiles: FastMap<u64, Profile>,
    /// Every uploaded post (first upload wins).
    posts: FastMap<u64, KnownPost>,
    /// This worker's users' engagements waiting for their upload.
    waiting: WaitingEngagements,
    config: Config,
    half_life_ms: u64,
    engaged_memory: usize,
    hide_creator_ms: u64,
    related_window_ms: u64,
    pairs_per_user: usize,
    anchors: usize,
    /// Probe interval per user for the model guard (ms); `None` when the guard cannot run.
    guard_interval_ms: Option<i64>,
    /// A replica of the ranking's model guard, fed the same tallies at the same ticks: it
    /// decides which probes are worth their cost.
    guard: crate::model_guard::ModelGuard,
}

impl Users {
    /// An uploaded post (the first upload of its id), as of the last tick applied.
    ///
    /// Ranking takes a candidate's category, content type and embedding from here, at the
    /// user's worker, rather than from the shard that offered it: the shard's copies would be
    /// cloned on one core and dropped on another, bouncing their reference counts between them.
    pub fn known_post(&self, post_id: u64) -> Option<&KnownPost> {
        self.posts.get(&post_id)
    }

    /// Empty state with the parameters of `config`.
    pub fn new(config: &Config) -> Self {
        let s = &config.serving;
        Self {
            interests: Interests::new(config),
            profiles: FastMap::default(),
            posts: FastMap::default(),
            waiting: WaitingEngagements::new(config.ticks(config.interest.pending_ttl_ms)),
            config: config.clone(),
            half_life_ms: config.interest.half_life_ms,
            engaged_memory: s.engaged_memory,
            hide_creator_ms: s.hide_creator_ms,
            related_window_ms: s.related_window_ms,
            pairs_per_user: s.related_pairs_per_user,
            anchors: s.related_anchors,
            guard_interval_ms: (config.ranking.guard.enabled && !config.ranking.model.as_os_str().is_empty())
                .then_some(config.ranking.guard.probe_interval_ms as i64),
            guard: crate::model_guard::ModelGuard::new(&config.ranking.guard, config.engine.tick_ms),
        }
    }

    /// Answers a tick's requests (in log order), then applies its uploads and
    /// engagements (joined here; applied in a fixed order).
    pub fn apply_tick(&mut self, tick: u64, batch: Vec<UserInput>, out: &mut Vec<UserOutput>) {
        let mut posts = Vec::new();
        let mut engagements = Vec::new();
        let mut requests = Vec::new();
        let mut tallies = Vec::new();
        for input in batch {
            match input {
                UserInput::Post(_, p) => posts.push(p),
                UserInput::Engagement(e) => engagements.push(e),
                UserInput::Request(r) => requests.push(r),
                UserInput::Guard(_, t) => tallies.push(t),
            }
        }
        if !tallies.is_empty() {
            self.guard.apply(tallies);
        }
        requests.sort_by_key(|r| (r.ts, r.position));
        for r in requests {
            if let Some(context) = self.context(tick, &r) {
                out.push(UserOutput::Context(Arc::new(context)));
            }
        }
        engagements.sort_by_key(|e| (e.ts, e.position));
        if let Some(interval) = self.guard_interval_ms {
            for e in &engagements {
                if let Some(context) = self.guard_probe(tick, e, interval) {
                    out.push(UserOutput::Context(Arc::new(context)));
                }
            }
        }
        self.waiting.expire(tick);
        let mut joined = Vec::new();
        posts.sort_by_key(|p| (p.ts, p.position));
        for p in posts {
            if self.posts.contains_key(&p.post_id) {
                continue;
            }
            // A copy of our own: every engagement clones this Arc, and a count shared with the other
            // workers' copies would bounce its cache line between cores on each clone and drop.
            let embedding = Arc::from(&*p.embedding);
            let known = KnownPost {
                creator_id: p.creator_id,
                category: p.category.into(),
                content_type: p.content_type.into(),
                embedding,
            };
            self.posts.insert(p.post_id, known);
            for event in self.waiting.release(p.post_id, tick) {
                joined.extend(self.join(tick, &event));
            }
        }
        for event in engagements {
            match (self.join(tick, &event), &event.body) {
                (Some(e), _) => joined.push(e),
                (None, EventBody::Engagement(e)) => {
                    let post_id = e.post_id;
                    self.waiting.wait(tick, post_id, event);
                }
                (None, _) => {}
            }
        }
        joined.sort_by_key(Enriched::order_key);
        let shards = self.config.index.shards.max(1);
        let mut pairs: Vec<Vec<CoPair>> = vec![Vec::new(); shards as usize];
        for e in &joined {
            self.apply_profile(e, &mut |pair| pairs[shard_of(pair.item, shards) as usize].push(pair));
        }
        for (shard, batch) in pairs.into_iter().enumerate() {
            if !batch.is_empty() {
                out.push(UserOutput::Pairs(shard as u32, batch));
            }
        }
        self.interests.apply_tick(joined);
    }

    /// An engagement joined with its post, taking effect at `tick`; `None` while the post is unknown.
    fn join(&self, tick: u64, event: &Event) -> Option<Enriched> {
        let EventBody::Engagement(e) = &event.body else { return None };
        let post = self.posts.get(&e.post_id)?;
        Some(Enriched {
            tick,
            ts: event.ts,
            user_id: e.user_id,
            post_id: e.post_id,
            creator_id: post.creator_id,
            category: post.category.clone(),
            kind: e.kind,
            dwell_ms: e.dwell_ms,
            weight_milli: engagement_weight_milli(&self.config, e.kind, e.dwell_ms),
            embedding: post.embedding.clone(),
        })
    }

    fn apply_profile(&mut self, e: &Enriched, pair: &mut impl FnMut(CoPair)) {
        let keep = self.pairs_per_user.max(self.anchors);
        let p = self.profiles.entry(e.user_id).or_default();
        p.engaged.insert(e.post_id, e.ts);
        // Over the bound by an eighth: forget the oldest, down to the bound (amortised).
        if p.engaged.len() > self.engaged_memory + self.engaged_memory / 8 {
            let mut by_age: Vec<(i64, u64)> = p.engaged.iter().map(|(post, ts)| (*ts, *post)).collect();
            by_age.sort_unstable();
            for (_, post) in &by_age[..by_age.len() - self.engaged_memory] {
                p.engaged.remove(post);
            }
        }
        match e.kind {
            EngagementKind::Hide | EngagementKind::Report => {
                p.hidden_posts.insert(e.post_id);
                p.hidden_creators.insert(e.creator_id, e.ts.saturating_add(self.hide_creator_ms as i64));
            }
            EngagementKind::Follow => {
                p.followed.insert(e.creator_id);
            }
            _ => {}
        }
        let weight = e.weight_milli as f64 / 1000.0;
        if e.weight_milli != 0 {
            p.creators.entry(e.creator_id).or_default().add(e.ts, weight, self.half_life_ms);
        }
        if e.weight_milli > 0 {
            match p.categories.get_mut(&*e.category) {
                Some(d) => d.add(e.ts, weight, self.half_life_ms),
                None => {
                    let mut d = Decayed::default();
                    d.add(e.ts, weight, self.half_life_ms);
                    p.categories.insert(e.category.to_string(), d);
                }
            }
            // Pairs with the user's earlier positives inside the related window, both ways.
            let oldest = e.ts - self.related_window_ms as i64;
            for &(_, q) in
                p.recent_positives.iter().filter(|(ts, q)| *ts > oldest && *q != e.post_id).take(self.pairs_per_user)
            {
                pair(CoPair { tick: e.tick, anchor: q, item: e.post_id });
                pair(CoPair { tick: e.tick, anchor: e.post_id, item: q });
            }
            p.recent_positives.retain(|(_, q)| *q != e.post_id);
            p.recent_positives.push_front((e.ts, e.post_id));
            p.recent_positives.truncate(keep);
        }
    }

    /// A model-guard probe for a like-or-stronger engagement of `tick`: the context a request
    /// just before it would have had (state of earlier ticks), at most one per user and
    /// `interval` ms, sampled as the guard wants ([`crate::model_guard::ModelGuard::wants_probe`]),
    /// and only for a post known before the tick (one that could be offered).
    fn guard_probe(&mut self, tick: u64, event: &Event, interval: i64) -> Option<RequestContext> {
        let EventBody::Engagement(e) = &event.body else { return None };
        if !e.kind.is_positive() || !self.posts.contains_key(&e.post_id) {
            return None;
        }
        let profile = self.profiles.entry(e.user_id).or_default();
        if profile.guard_probed.is_some_and(|at| event.ts < at.saturating_add(interval)) {
            return None;
        }
        profile.guard_probed = Some(event.ts);
        if !self.guard.wants_probe(mix64(e.user_id ^ mix64(event.ts as u64))) {
            return None;
        }
        let probe = Event {
            ts: event.ts,
            event_id: None,
            position: event.position,
            body: EventBody::Request(Box::new(Request {
                request_id: String::new(),
                user_id: e.user_id,
                k: GUARD_TOP as u32,
                device: None,
                region: None,
                shadow: true,
            })),
        };
        let mut context = self.context(tick, &probe)?;
        context.guard_target = Some(e.post_id);
        Some(context)
    }

    /// The context of a request at `tick`, from the state of earlier ticks.
    fn context(&mut self, tick: u64, event: &Event) -> Option<RequestContext> {
        let EventBody::Request(r) = &event.body else { return None };
        let started = Instant::now();
        let ts = event.ts;
        let vectors = self.interests.vectors_at(r.user_id, ts);
        let (actions, positives) =
            self.interests.users.get(&r.user_id).map(|u| (u.actions, u.positives)).unwrap_or((0, 0));
        let to_f32 = |v: &[f64]| -> Vec<f32> {
            if v.iter().all(|x| *x == 0.0) {
                Vec::new()
            } else {
                v.iter().map(|x| *x as f32).collect()
            }
        };
        let (query, long_term, session) = match &vectors {
            Some(v) => (to_f32(&v.query), to_f32(&v.long_term), to_f32(&v.session)),
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        let mut context = RequestContext {
            tick,
            ts,
            position: event.position,
            request_id: r.request_id.clone(),
            user_id: r.user_id,
            k: r.k,
            device: r.device.clone(),
            shadow: r.shadow,
            query,
            long_term,
            session,
            anchors: Vec::new(),
            excluded: Vec::new(),
            hidden_creators: Vec::new(),
            followed: Vec::new(),
            category_affinity: Vec::new(),
            creator_affinity: Vec::new(),
            actions,
            positives,
            guard_target: None,
            build_us: 0,
        };
        if let Some(p) = self.profiles.get_mut(&r.user_id) {
            p.hidden_creators.retain(|_, until| *until > ts);
            let mut excluded: Vec<u64> = p.engaged.keys().copied().chain(p.hidden_posts.iter().copied()).collect();
            excluded.sort_unstable();
            excluded.dedup();
            context.excluded = excluded;
            let mut hidden: Vec<u64> = p.hidden_creators.keys().copied().collect();
            hidden.sort_unstable();
            context.hidden_creators = hidden;
            context.followed = p.followed.iter().copied().collect();
            context.anchors = p.recent_positives.iter().take(self.anchors).map(|(_, q)| *q).collect();
            let total: f64 = p.categories.values().map(|d| d.at(ts, self.half_life_ms)).sum();
            let mut categories: Vec<(String, f64)> = p
                .categories
                .iter()
                .map(|(c, d)| (c.clone(), if total > 0.0 { d.at(ts, self.half_life_ms) / total } else { 0.0 }))
                .collect();
            categories.sort_by(|a, b| a.0.cmp(&b.0));
            context.category_affinity = categories;
            let mut creators: Vec<(u64, f64)> =
                p.creators.iter().map(|(c, d)| (*c, d.at(ts, self.half_life_ms))).collect();
            creators.sort_by_key(|(c, _)| *c);
            context.creator_affinity = creators;
        }
        context.build_us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
        Some(context)
    }
}

/// Routes engagements and requests to the user's worker (uploads to every worker) and runs [`Users::apply_tick`] there.
pub fn user_front<'scope>(
    inputs: StreamVec<'scope, u64, UserInput>,
    state: Rc<RefCell<Users>>,
) -> StreamVec<'scope, u64, UserOutput> {
    inputs.tick_batch("UserFront", UserInput::route, move |tick, batch, out| {
        state.borrow_mut().apply_tick(tick, batch, out)
    })
}
