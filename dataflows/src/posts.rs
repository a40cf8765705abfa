//! The post registry: per-post state at its owner shard, the usearch index, and the engagement join.
//!
//! Uploads, moderation and engagements are routed by post to a logical shard
//! (`hash(post_id) % index.shards`; shard `s` lives on worker `s % workers`).
//! Each tick, in a fixed order, the registry
//! - stores uploads and inserts public, unblocked ones into the shard's HNSW index,
//! - applies block / unblock / demote (block removes from the index, unblock re-inserts),
//! - joins engagements with their post (an engagement whose post is not yet
//!   uploaded waits up to `interest.pending_ttl_ms`, then is dropped and counted),
//!
//! It emits the enriched engagements and the changes of the set of
//! recommendable posts (a differential collection).

use crate::candidates::ShardServing;
use crate::model::{engagement_weight_milli, tick_of, PostInfo, Velocity};
use crate::serving::{Partial, RequestContext};
use crate::users::CoPair;
use crate::waiting::WaitingEngagements;
use feedflow_connectors::config::Config;
use feedflow_connectors::event::{Engagement, Event, EventBody, ModerationAction, Safety};
use feedflow_operators::hash::{mix64, FastMap};
use feedflow_operators::tick_batch::TickBatch;
use feedflow_operators::vector_shard::{ShardSettings, VectorShard};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use timely::dataflow::StreamVec;

/// The logical index shard owning a post.
pub fn shard_of(post_id: u64, shards: u32) -> u32 {
    (mix64(post_id) % shards.max(1) as u64) as u32
}

/// What the registry knows about one post.
#[derive(Clone, Debug, PartialEq)]
pub struct PostState {
    /// Author.
    pub creator_id: u64,
    /// Category name (shared with the candidate rows made from the post).
    pub category: Arc<str>,
    /// Content type (shared likewise).
    pub content_type: Arc<str>,
    /// Embedding as uploaded.
    pub embedding: Arc<[f32]>,
    /// Visibility.
    pub is_public: bool,
    /// Blocked by moderation.
    pub blocked: bool,
    /// Demoted by moderation.
    pub demoted: bool,
    /// Upload time (ms).
    pub upload_ts: i64,
    /// Upload tick.
    pub upload_tick: u64,
    /// Safety scores.
    pub safety: Safety,
}

impl PostState {
    /// Public and not blocked.
    pub fn recommendable(&self) -> bool {
        self.is_public && !self.blocked
    }
}

/// Counters of the registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryStats {
    /// Uploads stored.
    pub uploads: u64,
    /// Uploads of a post id already known (ignored).
    pub duplicate_uploads: u64,
    /// Vectors the index refused (zero vectors).
    pub index_rejects: u64,
    /// Engagements joined with their post.
    pub engagements_joined: u64,
    /// Engagements that had to wait for their upload.
    pub engagements_waited: u64,
    /// Engagements dropped because their post never arrived in time.
    pub engagements_expired: u64,
    /// Moderation actions applied.
    pub moderations: u64,
}

impl RegistryStats {
    /// Adds another worker's counters.
    pub fn merge(&mut self, other: &RegistryStats) {
        self.uploads += other.uploads;
        self.duplicate_uploads += other.duplicate_uploads;
        self.index_rejects += other.index_rejects;
        self.engagements_joined += other.engagements_joined;
        self.engagements_waited += other.engagements_waited;
        self.engagements_expired += other.engagements_expired;
        self.moderations += other.moderations;
    }
}

/// One stream out of the registry: velocity, eligibility changes, candidates.
#[derive(Clone, Debug)]
pub enum RegistryOutput {
    /// A positive engagement joined with its post, as velocity and popularity need it.
    Velocity(Velocity),
    /// At this tick the post became recommendable (+1) or stopped being so (−1).
    Eligibility(PostInfo, u64, isize),
    /// This worker's candidates for a request.
    Candidates(Partial),
}

/// What reaches the registry: post events, requests (one copy per worker) and co-engagement pairs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ShardInput {
    /// An upload, engagement or moderation event.
    Event(Event),
    /// A request's context, addressed to one worker.
    Query(u64, Arc<RequestContext>),
    /// Co-engagement pairs whose items live at this logical shard.
    Pairs(u32, Vec<CoPair>),
}

/// The state of the shards owned by one worker.
pub struct Registry {
    config: Config,
    settings: ShardSettings,
    /// Every post this worker owns.
    pub posts: FastMap<u64, PostState>,
    /// Moderation that arrived before its upload: (blocked, demoted).
    early_moderation: FastMap<u64, (bool, bool)>,
    /// Engagements waiting for their upload.
    waiting: WaitingEngagements,
    /// The HNSW shards owned by this worker, by shard number.
    pub shards: BTreeMap<u32, VectorShard>,
    /// Counters.
    pub stats: RegistryStats,
    /// What the candidate sources read.
    pub serving: ShardServing,
}

impl Registry {
    /// An empty registry.
    pub fn new(config: &Config) -> Self {
        let x = &config.index;
        Self {
            config: config.clone(),
            settings: ShardSettings {
                dimensions: x.dimensions,
                connectivity: x.connectivity,
                expansion_add: x.expansion_add,
                expansion_search: x.expansion_search,
                quantization: x.quantization.clone(),
            },
            posts: FastMap::default(),
            early_moderation: FastMap::default(),
            waiting: WaitingEngagements::new(config.ticks(config.interest.pending_ttl_ms)),
            shards: BTreeMap::new(),
            stats: RegistryStats::default(),
            serving: ShardServing::new(config),
        }
    }

    fn shard(&mut self, post_id: u64) -> Result<&mut VectorShard, String> {
        let number = shard_of(post_id, self.config.index.shards);
        if !self.shards.contains_key(&number) {
            let shard = VectorShard::new(&self.settings).map_err(|e| e.to_string())?;
            self.shards.insert(number, shard);
        }
        Ok(self.shards.get_mut(&number).expect("inserted above"))
    }

    fn index_insert(&mut self, post_id: u64) {
        let Some(embedding) = self.posts.get(&post_id).map(|p| p.embedding.clone()) else { return };
        let ok = self.shard(post_id).and_then(|s| s.insert(post_id, &embedding).map_err(|e| e.to_string()));
        if ok.is_err() {
            self.stats.index_rejects += 1;
        }
    }

    fn index_remove(&mut self, post_id: u64) {
        if let Ok(shard) = self.shard(post_id) {
            let _ = shard.remove(post_id);
        }
    }

    fn info(post_id: u64, p: &PostState) -> PostInfo {
        PostInfo { post_id, creator_id: p.creator_id, category: p.category.to_string(), upload_tick: p.upload_tick }
    }

    /// Counts an engagement on a known post: velocity and popularity when positive.
    /// Returns false when the post is not uploaded yet.
    fn engaged(&mut self, tick: u64, e: &Engagement, out: &mut Vec<RegistryOutput>) -> bool {
        let Some(post) = self.posts.get(&e.post_id) else { return false };
        self.stats.engagements_joined += 1;
        let weight_milli = engagement_weight_milli(&self.config, e.kind, e.dwell_ms);
        if weight_milli > 0 {
            let v = Velocity { tick, post_id: e.post_id, creator_id: post.creator_id, weight_milli };
            self.serving.engaged(tick, e.post_id, weight_milli);
            out.push(RegistryOutput::Velocity(v));
        }
        true
    }

    /// Handles one complete tick: the tick's requests against the state of earlier
    /// ticks first, then its co-engagement pairs, then its events.
    pub fn apply_inputs(&mut self, tick: u64, inputs: Vec<ShardInput>, out: &mut Vec<RegistryOutput>) {
        let mut events = Vec::new();
        let mut queries = Vec::new();
        let mut pairs = Vec::new();
        for input in inputs {
            match input {
                ShardInput::Event(e) => events.push(e),
                ShardInput::Query(_, q) => queries.push(q),
                ShardInput::Pairs(shard, batch) => pairs.extend(batch.into_iter().map(|p| (shard, p))),
            }
        }
        self.serving.expire(tick.saturating_sub(1));
        if !queries.is_empty() {
            queries.sort_by_key(|q| (q.ts, q.position));
            for q in queries {
                let partial = self.candidates(&q, &self.config);
                if !partial.rows.is_empty() {
                    out.push(RegistryOutput::Candidates(partial));
                }
            }
        }
        pairs.sort_unstable_by_key(|(shard, p): &(u32, CoPair)| (*shard, p.tick));
        let mut batch = Vec::new();
        for run in pairs.chunk_by(|a, b| a.0 == b.0 && a.1.tick == b.1.tick) {
            batch.extend(run.iter().map(|(_, p)| (p.anchor, p.item)));
            self.serving.add_pairs(run[0].0, run[0].1.tick, &mut batch);
        }
        self.apply_tick(tick, events, out);
    }

    /// Applies one complete tick of events; pushes what it produces to `out`.
    pub fn apply_tick(&mut self, tick: u64, mut events: Vec<Event>, out: &mut Vec<RegistryOutput>) {
        // Forget engagements that waited too long for their upload.
        self.stats.engagements_expired += self.waiting.expire(tick);
        // Uploads and moderation before engagements; then by time; position breaks ties.
        let class = |e: &Event| match e.body {
            EventBody::Upload(_) => 0,
            EventBody::Moderation(_) => 1,
            _ => 2,
        };
        events.sort_by_key(|e| (class(e), e.ts, e.position));
        for event in events {
            match &event.body {
                EventBody::Upload(u) => {
                    if self.posts.contains_key(&u.post_id) {
                        self.stats.duplicate_uploads += 1;
                        continue;
                    }
                    let (blocked, demoted) = self.early_moderation.remove(&u.post_id).unwrap_or((false, false));
                    let state = PostState {
                        creator_id: u.creator_id,
                        category: Arc::from(u.category.as_str()),
                        content_type: Arc::from(u.content_type.as_str()),
                        embedding: Arc::from(u.embedding.as_slice()),
                        is_public: u.is_public,
                        blocked,
                        demoted,
                        upload_ts: event.ts,
                        upload_tick: tick_of(event.ts, self.config.engine.tick_ms).min(tick),
                        safety: u.safety,
                    };
                    let recommendable = state.recommendable();
                    let info = Self::info(u.post_id, &state);
                    self.posts.insert(u.post_id, state);
                    self.stats.uploads += 1;
                    if recommendable {
                        self.index_insert(u.post_id);
                        self.serving.set_recommendable(u.post_id, &self.posts[&u.post_id], true);
                        out.push(RegistryOutput::Eligibility(info, tick, 1));
                    }
                    // Engagements that were waiting for this post take effect now.
                    for ev in self.waiting.release(u.post_id, tick) {
                        if let EventBody::Engagement(e) = &ev.body {
                            self.engaged(tick, e, out);
                        }
                    }
                }
                EventBody::Moderation(m) => {
                    self.stats.moderations += 1;
                    let Some(post) = self.posts.get_mut(&m.post_id) else {
                        let early = self.early_moderation.entry(m.post_id).or_insert((false, false));
                        match m.action {
                            ModerationAction::Block => early.0 = true,
                            ModerationAction::Unblock => early.0 = false,
                            ModerationAction::Demote => early.1 = true,
                        }
                        continue;
                    };
                    let was = post.recommendable();
                    match m.action {
                        ModerationAction::Block => post.blocked = true,
                        ModerationAction::Unblock => post.blocked = false,
                        ModerationAction::Demote => post.demoted = true,
                    }
                    let now = post.recommendable();
                    let info = Self::info(m.post_id, post);
                    if was != now {
                        let post = post.clone();
                        self.serving.set_recommendable(m.post_id, &post, now);
                    }
                    if was && !now {
                        self.index_remove(m.post_id);
                        out.push(RegistryOutput::Eligibility(info, tick, -1));
                    } else if !was && now {
                        self.index_insert(m.post_id);
                        out.push(RegistryOutput::Eligibility(info, tick, 1));
                    }
                }
                EventBody::Engagement(e) => {
                    if !self.engaged(tick, e, out) {
                        self.stats.engagements_waited += 1;
                        let post_id = e.post_id;
                        self.waiting.wait(tick, post_id, event);
                    }
                }
                EventBody::Request(_) => {}
            }
        }
    }

    /// Number of vectors in this worker's shards.
    pub fn index_len(&self) -> usize {
        self.shards.values().map(|s| s.len()).sum()
    }
}

/// The worker-routing key of an event: its post's shard (requests: their user).
pub fn route_event(event: &Event, shards: u32) -> u64 {
    match &event.body {
        EventBody::Upload(u) => shard_of(u.post_id, shards) as u64,
        EventBody::Engagement(x) => shard_of(x.post_id, shards) as u64,
        EventBody::Moderation(m) => shard_of(m.post_id, shards) as u64,
        EventBody::Request(r) => mix64(r.user_id),
    }
}

/// Routes post events and pairs to their shard's worker, queries to their addressee, and runs the registry there.
pub fn post_registry<'scope>(
    inputs: StreamVec<'scope, u64, ShardInput>,
    registry: Rc<RefCell<Registry>>,
    shards: u32,
) -> StreamVec<'scope, u64, RegistryOutput> {
    inputs.tick_batch(
        "PostRegistry",
        move |input: &ShardInput| match input {
            ShardInput::Event(e) => route_event(e, shards),
            ShardInput::Query(worker, _) => *worker,
            ShardInput::Pairs(shard, _) => *shard as u64,
        },
        move |tick, batch, out| registry.borrow_mut().apply_inputs(tick, batch, out),
    )
}
