//! The ranking stage at the user's worker: merge the shards' candidates, filter, score, build the page.
//!
//! Per request, in log order within a tick: rows from every worker are merged,
//! posts served to the user within the seen window are dropped, each source
//! keeps its global top-k (so the result does not depend on how posts are
//! spread over workers), the survivors are scored in one batch by the ONNX
//! ranker (or the linear fallback, marked in the response), safety and
//! moderation demote softly, and the page is built by MMR with creator,
//! category, exploration and trending rules. Trending-pool changes of a tick
//! are applied after that tick's requests, so a request sees earlier ticks only.

use crate::features::{fallback_score, features, Proposed, QueryNorms, FEATURES, HEADS};
use crate::live::LiveClock;
use crate::metrics::Metrics;
use crate::model::{tick_of, TrendEntry};
use crate::model_guard::{GuardTally, ModelGuard};
use crate::model_reload::ModelWatch;
use crate::serving::{impression_id, CandidateRow, Partial, RelatedFigures, RequestContext, Served, Source, GUARD_TOP};
use crate::users::{KnownPost, Users};
use feedflow_connectors::config::Config;
use feedflow_connectors::event::Position;
use feedflow_operators::hash::{mix64, FastMap};
use feedflow_operators::onnx_scorer::{OnnxScorer, ScorerSettings};
use feedflow_operators::rerank::{build_page, rank_relevance, PageCandidate, PageRules, SlotKind};
use feedflow_operators::tick_batch::TickBatch;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use timely::dataflow::StreamVec;

/// What reaches the ranking stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RankInput {
    /// A request's context (from the user's worker).
    Request(Arc<RequestContext>),
    /// One worker's candidates for a request.
    Rows(Partial),
    /// A change of the trending pool at a tick, addressed to one worker (every worker keeps the pool).
    Trend(u64, String, TrendEntry, u64, isize),
    /// One worker's model-guard tally, addressed to one worker (every worker keeps the evidence).
    Guard(u64, GuardTally),
}

/// What ranking produces: answers, and the evidence of its model-guard probes.
#[derive(Clone, Debug)]
pub enum RankOutput {
    /// A request's answer.
    Served(Served),
    /// This worker's probes of one tick that only one ranker got right.
    Guard(GuardTally),
}

/// How the ranker of one worker scores.
pub enum Scorer {
    /// The ONNX model.
    Model(Box<OnnxScorer>),
    /// The linear fallback, and why.
    Fallback(String),
}

/// Counters of the ranking stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RankStats {
    /// Responses produced.
    pub responses: u64,
    /// Responses scored by the fallback.
    pub fallback: u64,
    /// Of those, the ones the model guard handed to the fallback.
    pub guarded: u64,
    /// Model-guard probes ranked (scored by both rankers, answered to nobody).
    pub probes: u64,
    /// Model batches that failed (answered by the fallback).
    pub model_errors: u64,
    /// Requests whose candidates the cascade's first stage cut to `ranking.first_stage.keep`.
    pub first_stage: u64,
    /// First-stage batches that failed (the model scored every candidate).
    pub first_stage_errors: u64,
    /// Shadow requests answered.
    pub shadow: u64,
    /// Service times (µs) of every request.
    pub service_us: Vec<u32>,
    /// Candidates ranked per request.
    pub candidates: Vec<u32>,
    /// Candidate rows received from the workers' shards, summed over the requests (before each
    /// source's global top-k and the filters: what the exchange carried).
    pub rows_received: u64,
    /// Summed over the requests (µs): building the context, the slowest worker's candidates, ranking.
    pub stage_us: [u64; 3],
}

impl RankStats {
    /// Adds another worker's counters.
    pub fn merge(&mut self, other: &RankStats) {
        self.responses += other.responses;
        self.fallback += other.fallback;
        self.guarded += other.guarded;
        self.probes += other.probes;
        self.model_errors += other.model_errors;
        self.first_stage += other.first_stage;
        self.first_stage_errors += other.first_stage_errors;
        self.shadow += other.shadow;
        self.service_us.extend_from_slice(&other.service_us);
        self.candidates.extend_from_slice(&other.candidates);
        self.rows_received += other.rows_received;
        for (mine, theirs) in self.stage_us.iter_mut().zip(other.stage_us) {
            *mine += theirs;
        }
    }

    /// Mean time per request (µs) of each stage: context, slowest worker's candidates, ranking.
    pub fn mean_stage_us(&self) -> [f64; 3] {
        self.stage_us.map(|total| total as f64 / self.responses.max(1) as f64)
    }

    /// A percentile (0..=1) of the service times, in µs (0 without requests).
    pub fn percentile_us(&self, q: f64) -> u32 {
        let mut v = self.service_us.clone();
        if v.is_empty() {
            return 0;
        }
        v.sort_unstable();
        v[((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
    }

    /// Mean number of candidates ranked per request.
    pub fn mean_candidates(&self) -> f64 {
        self.candidates.iter().map(|c| *c as f64).sum::<f64>() / self.candidates.len().max(1) as f64
    }

    /// Mean number of candidate rows received per request.
    pub fn mean_rows_received(&self) -> f64 {
        self.rows_received as f64 / self.candidates.len().max(1) as f64
    }
}

/// The ranking state of one worker.
pub struct Ranker {
    config: Config,
    scorer: Scorer,
    /// The cascade's first stage (`ranking.first_stage`), if configured and loaded.
    first_stage: Option<Box<OnnxScorer>>,
    /// Why the configured first stage is not in use.
    first_stage_error: Option<String>,
    /// Posts served per user with the time served.
    served: FastMap<u64, FastMap<u64, i64>>,
    /// The trending pool: post → (category, entry).
    pool: BTreeMap<u64, (String, TrendEntry)>,
    /// Counters.
    pub stats: RankStats,
    /// Live runs: tells which requests were answered before every partition reached their tick.
    clock: Option<Arc<LiveClock>>,
    /// The process's metrics.
    metrics: Option<Arc<Metrics>>,
    /// Shadow requests log every ranked candidate as an impression (training runs).
    pub log_shadow_candidates: bool,
    /// Live runs: where newly validated models appear, and the generation this ranker serves.
    reload: Option<(Arc<ModelWatch>, u64)>,
    /// Whether the model or the fallback answers, from this log's evidence.
    pub guard: ModelGuard,
    /// Whether this ranker reports the guard's changes of mind (one worker does).
    pub log_guard: bool,
}

/// Training runs log the fallback's best this many candidates of a shadow request …
const TRAIN_TOP: usize = 150;
/// … and a deterministic sample of this many of the others.
const TRAIN_SAMPLE: usize = 50;

/// Where the model of `config` and the runtime are; `None` when no model is configured.
pub fn scorer_settings(config: &Config) -> Option<ScorerSettings> {
    let r = &config.ranking;
    if r.model.as_os_str().is_empty() {
        return None;
    }
    let library = std::env::var_os("ORT_DYLIB_PATH").map(Into::into).unwrap_or_else(|| r.onnxruntime_lib.clone());
    Some(ScorerSettings {
        library,
        model: r.model.clone(),
        metadata: r.metadata.clone(),
        intra_threads: r.intra_threads,
    })
}

/// Opens the model of `config` for one worker, or says why the fallback will answer.
pub fn open_scorer(config: &Config) -> Scorer {
    let Some(settings) = scorer_settings(config) else {
        return Scorer::Fallback("no model configured (ranking.model is empty)".into());
    };
    match OnnxScorer::load(&settings, &FEATURES, &HEADS) {
        Ok(s) => Scorer::Model(Box::new(s)),
        Err(e) => Scorer::Fallback(e.to_string()),
    }
}

/// Opens the cascade's first stage of `config` for one worker: `Ok(None)` when none is
/// configured (or no model is: the fallback needs no cascade).
pub fn open_first_stage(config: &Config) -> Result<Option<OnnxScorer>, String> {
    let first = &config.ranking.first_stage;
    let Some(settings) = scorer_settings(config).filter(|_| !first.model.as_os_str().is_empty()) else {
        return Ok(None);
    };
    let metadata =
        if first.metadata.as_os_str().is_empty() { first.model.with_extension("json") } else { first.metadata.clone() };
    let settings = ScorerSettings { model: first.model.clone(), metadata, ..settings };
    OnnxScorer::load(&settings, &FEATURES, &HEADS)
        .map(Some)
        .map_err(|e| format!("ranking.first_stage is not used (the model scores every candidate): {e}"))
}

impl Ranker {
    /// Sets the cascade's first stage, as [`open_first_stage`] opened it.
    pub fn set_first_stage(&mut self, first: Result<Option<OnnxScorer>, String>) {
        match first {
            Ok(first) => self.first_stage = first.map(Box::new),
            Err(why) => self.first_stage_error = Some(why),
        }
    }

    /// What the summary says of the cascade: the first stage's model and `keep`, or why it is off;
    /// `None` when none is configured.
    pub fn first_stage_note(&self) -> Option<String> {
        match (&self.first_stage, &self.first_stage_error) {
            (Some(first), _) => Some(format!(
                "first stage {}: the model scores its best {} candidates",
                first.model_id(),
                self.config.ranking.first_stage.keep
            )),
            (None, Some(why)) => Some(why.clone()),
            (None, None) => None,
        }
    }

    /// A ranker with the given scorer.
    pub fn new(config: &Config, scorer: Scorer) -> Self {
        Self {
            config: config.clone(),
            scorer,
            first_stage: None,
            first_stage_error: None,
            served: FastMap::default(),
            pool: BTreeMap::new(),
            stats: RankStats::default(),
            clock: None,
            metrics: None,
            log_shadow_candidates: false,
            reload: None,
            guard: ModelGuard::new(&config.ranking.guard, config.engine.tick_ms),
            log_guard: false,
        }
    }

    /// Swaps in the models `watch` publishes, each from the tick it names (live runs).
    pub fn reload_from(&mut self, watch: Arc<ModelWatch>) {
        let generation = watch.generation();
        self.reload = Some((watch, generation));
    }

    /// Before the requests of `tick`: the newest published model, if it serves from `tick` or
    /// earlier and is not the one in use. Every worker reaches the same tick boundary, so all
    /// swap between the same two ticks.
    fn swap_model(&mut self, tick: u64) {
        let Some((watch, serving)) = &mut self.reload else { return };
        if watch.generation() == *serving {
            return;
        }
        let Some(published) = watch.published() else { return };
        if published.from_tick > tick {
            return;
        }
        *serving = published.generation;
        match OnnxScorer::load(&published.settings, &FEATURES, &HEADS) {
            Ok(scorer) => {
                self.scorer = Scorer::Model(Box::new(scorer));
                self.guard.reset(tick);
            }
            // Checked already, so only a vanished copy or a full disk gets here.
            Err(e) => eprintln!("[feedflow] model: could not open the validated {}: {e}", published.model_id),
        }
    }

    /// Reports batch times and fallbacks to `metrics`, and partial prefixes from `clock` (live runs).
    pub fn observe(&mut self, metrics: Arc<Metrics>, clock: Option<Arc<LiveClock>>) {
        self.metrics = Some(metrics);
        self.clock = clock;
    }

    /// The model id reported in responses.
    pub fn model_id(&self) -> String {
        match &self.scorer {
            Scorer::Model(m) => m.model_id().to_string(),
            Scorer::Fallback(_) => "fallback".into(),
        }
    }

    /// Why the fallback answers, if it does.
    pub fn fallback_reason(&self) -> Option<&str> {
        match &self.scorer {
            Scorer::Model(_) => None,
            Scorer::Fallback(why) => Some(why),
        }
    }

    /// Handles one complete tick: the tick's requests, then its trending-pool changes.
    pub fn apply_tick(&mut self, tick: u64, batch: Vec<RankInput>, users: &Users, out: &mut Vec<RankOutput>) {
        self.swap_model(tick);
        let mut requests: Vec<Arc<RequestContext>> = Vec::new();
        let mut rows: FastMap<Position, Vec<Partial>> = FastMap::default();
        let mut trends = Vec::new();
        let mut tallies = Vec::new();
        for input in batch {
            match input {
                RankInput::Request(r) => requests.push(r),
                RankInput::Rows(p) => rows.entry(p.request).or_default().push(p),
                RankInput::Trend(_, category, entry, time, diff) => trends.push((time, category, entry, diff)),
                RankInput::Guard(_, tally) => tallies.push(tally),
            }
        }
        // Evidence of earlier ticks (the feedback edge's delay) decides before this tick's requests.
        if !tallies.is_empty() {
            let before = self.guard.prefers_fallback();
            self.guard.apply(tallies);
            if let Some(m) = &self.metrics {
                m.ranker_guard_fallback.set(self.guard.prefers_fallback() as i64);
            }
            if before != self.guard.prefers_fallback() && self.log_guard {
                let (model, fallback) = self.guard.wins();
                eprintln!(
                    "[feedflow] model guard: from tick {tick} the {} answers (decayed probe wins: model {model:.1}, fallback {fallback:.1})",
                    if self.guard.prefers_fallback() { "fallback" } else { "model" }
                );
            }
        }
        requests.sort_by_key(|r| (r.ts, r.position));
        for request in requests {
            let partials = rows.remove(&request.position).unwrap_or_default();
            if let Some(served) = self.answer(&request, partials, users) {
                out.push(RankOutput::Served(served));
            }
        }
        if let Some(tally) = self.guard.take_tally(tick) {
            out.push(RankOutput::Guard(tally));
        }
        trends.sort_by(|a, b| (a.0, &a.2, a.3).cmp(&(b.0, &b.2, b.3)));
        for (_, category, entry, diff) in trends {
            if diff > 0 {
                self.pool.insert(entry.post_id, (category, entry));
            } else if self.pool.get(&entry.post_id).is_some_and(|(_, e)| *e == entry) {
                self.pool.remove(&entry.post_id);
            }
        }
    }

    /// Answers one request from the rows of every worker; `users` holds the posts' content.
    /// A model-guard probe is scored by both rankers and answers nothing.
    pub fn answer(&mut self, context: &RequestContext, partials: Vec<Partial>, users: &Users) -> Option<Served> {
        if context.guard_target.is_some() && !matches!(self.scorer, Scorer::Model(_)) {
            return None;
        }
        let started = Instant::now();
        let s = &self.config.serving;
        let shard_us = partials.iter().map(|p| p.shard_us).max().unwrap_or(0);
        let seen_since = context.ts - s.seen_window_ms as i64;
        let served = self.served.entry(context.user_id).or_default();
        served.retain(|_, t| *t > seen_since);
        let mut rows: Vec<CandidateRow> = partials.into_iter().flat_map(|p| p.rows).collect();
        let rows_received = rows.len() as u64;
        rows.sort_by_key(|r| r.post_id);
        // Served posts are dropped after each source's global top-k is taken: every worker's
        // top-k is taken before this filter too, so the result is the same for any worker count.
        // A guard probe keeps the posts served to the user: the engagements that follow a page are
        // mostly with its posts, and leaving them out would weigh the probes towards what users
        // find elsewhere (on a generated world that favoured the popularity-heavy fallback).
        let probe = context.guard_target.is_some();
        let unseen: Vec<bool> = rows.iter().map(|r| probe || !served.contains_key(&r.post_id)).collect();

        // Each source keeps its global top-k.
        let mut proposed = vec![Proposed { best_rank: usize::MAX, ..Proposed::default() }; rows.len()];
        let pick = |source: Source, mut order: Vec<usize>, k: usize, proposed: &mut Vec<Proposed>| {
            order.truncate(k);
            let slot = Source::ALL.iter().position(|x| *x == source).unwrap_or(0);
            for (rank, i) in order.into_iter().enumerate() {
                proposed[i].by[slot] = true;
                proposed[i].best_rank = proposed[i].best_rank.min(rank);
            }
        };
        let indices = |keep: &dyn Fn(&CandidateRow) -> bool| -> Vec<usize> {
            (0..rows.len()).filter(|i| keep(&rows[*i])).collect()
        };
        let mut ann = indices(&|r| r.ann_distance.is_some());
        ann.sort_by(|a, b| {
            let (x, y) = (&rows[*a], &rows[*b]);
            x.ann_distance
                .unwrap_or(f32::MAX)
                .total_cmp(&y.ann_distance.unwrap_or(f32::MAX))
                .then(x.post_id.cmp(&y.post_id))
        });
        pick(Source::Ann, ann, s.ann_k, &mut proposed);
        // Related: the global top-k by the co-engagement score, and by its recency-weighted twin
        // (the last few anchors' neighbours).
        let related_by = |key: fn(&RelatedFigures) -> f64| {
            let mut order = indices(&|r| r.related.is_some());
            order.sort_by(|a, b| {
                let score = |i: &usize| rows[*i].related.as_ref().map_or(0.0, key);
                score(b).total_cmp(&score(a)).then(rows[*a].post_id.cmp(&rows[*b].post_id))
            });
            order
        };
        pick(Source::Related, related_by(|r| r.score), s.related_k, &mut proposed);
        pick(Source::Related, related_by(|r| r.recent), s.related_k, &mut proposed);
        let mut fresh = indices(&|r| r.fresh);
        fresh.sort_by_key(|i| std::cmp::Reverse((rows[*i].upload_ts, rows[*i].post_id)));
        pick(Source::Fresh, fresh, s.fresh_k, &mut proposed);
        let mut followed = indices(&|r| r.followed);
        followed.sort_by_key(|i| std::cmp::Reverse((rows[*i].upload_ts, rows[*i].post_id)));
        pick(Source::Followed, followed, s.followed_k, &mut proposed);
        let mut popular = indices(&|r| r.popular);
        popular.sort_by(|a, b| {
            rows[*b].popularity.total_cmp(&rows[*a].popularity).then(rows[*a].post_id.cmp(&rows[*b].post_id))
        });
        pick(Source::Popular, popular, s.popular_k, &mut proposed);
        let mut explore = indices(&|r| r.explore_key.is_some());
        explore.sort_by_key(|i| (rows[*i].explore_key, rows[*i].post_id));
        pick(Source::Explore, explore, s.explore_k, &mut proposed);
        // Trending: the pool, weighted by the user's affinity to each post's category.
        let mut trending: Vec<(f64, usize)> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if let Some((category, entry)) = self.pool.get(&row.post_id) {
                proposed[i].velocity_ratio = Some(entry.ratio.value());
                trending.push((entry.ratio.value() * (0.5 + context.category_affinity(category)), i));
            }
        }
        trending.sort_by(|a, b| b.0.total_cmp(&a.0).then(rows[a.1].post_id.cmp(&rows[b.1].post_id)));
        pick(Source::Trending, trending.into_iter().map(|(_, i)| i).collect(), s.trending_k, &mut proposed);

        // Only the chosen rows get their post's content: from this worker's user side, which has
        // every upload a shard knows (uploads reach both sides at their tick).
        let (mut chosen, mut content): (Vec<usize>, Vec<&KnownPost>) = (0..rows.len())
            .filter(|i| unseen[*i] && proposed[*i].by.iter().any(|b| *b))
            .filter_map(|i| {
                let post = users.known_post(rows[i].post_id);
                debug_assert!(
                    post.is_some(),
                    "post {} offered by a shard is unknown to the user side",
                    rows[i].post_id
                );
                post.map(|post| (i, post))
            })
            .unzip();
        let width = FEATURES.len();
        let mut matrix = vec![0.0f32; chosen.len() * width];
        let norms = QueryNorms::of(context, chosen.iter().map(|i| &rows[*i]));
        for (n, i) in chosen.iter().enumerate() {
            features(context, &norms, &rows[*i], content[n], &proposed[*i], &mut matrix[n * width..(n + 1) * width]);
        }

        // Score: the model's heads combined with the configured weights, or the fallback.
        let weights = self.config.ranking.heads.as_array();
        let guarded = context.guard_target.is_none() && self.guard.prefers_fallback();
        // A cascade: the first stage ranks every candidate and the model scores only its best
        // `keep`, with the exploration and trending candidates (they have slots of their own).
        // Not for guard probes: they compare the model with the fallback on the same candidates.
        let keep = self.config.ranking.first_stage.keep;
        if let (Some(first), Scorer::Model(_), false, None) =
            (&mut self.first_stage, &self.scorer, guarded, context.guard_target)
        {
            if chosen.len() > keep {
                match first.score(&matrix) {
                    Ok(h) if h.len() == chosen.len() * HEADS.len() && h.iter().all(|x| x.is_finite()) => {
                        let r = &self.config.ranking;
                        let first_score = |n: usize| -> f64 {
                            let row = &rows[chosen[n]];
                            h[n * HEADS.len()..(n + 1) * HEADS.len()]
                                .iter()
                                .zip(weights)
                                .map(|(p, w)| *p as f64 * w)
                                .sum::<f64>()
                                - r.safety_penalty * row.safety_max as f64
                                - if row.demoted { r.demote_penalty } else { 0.0 }
                        };
                        let scored: Vec<f64> = (0..chosen.len()).map(first_score).collect();
                        let mut order: Vec<usize> = (0..chosen.len()).collect();
                        order.sort_by(|a, b| scored[*b].total_cmp(&scored[*a]).then(a.cmp(b)));
                        let mut kept = vec![false; chosen.len()];
                        order.into_iter().take(keep).for_each(|n| kept[n] = true);
                        for (n, i) in chosen.iter().enumerate() {
                            kept[n] |= proposed[*i].by[3] || proposed[*i].by[6];
                        }
                        let mut next = 0;
                        for n in 0..chosen.len() {
                            if kept[n] {
                                chosen[next] = chosen[n];
                                content[next] = content[n];
                                matrix.copy_within(n * width..(n + 1) * width, next * width);
                                next += 1;
                            }
                        }
                        chosen.truncate(next);
                        content.truncate(next);
                        matrix.truncate(next * width);
                        self.stats.first_stage += 1;
                    }
                    _ => self.stats.first_stage_errors += 1,
                }
            }
        }
        let mut heads: Option<Vec<f32>> = None;
        if let (Scorer::Model(model), false) = (&mut self.scorer, guarded) {
            let scoring = Instant::now();
            let result = model.score(&matrix);
            if let Some(m) = &self.metrics {
                m.ranker_batch.observe(scoring.elapsed().as_secs_f64());
            }
            match result {
                Ok(h) if h.len() == chosen.len() * HEADS.len() && h.iter().all(|x| x.is_finite()) => heads = Some(h),
                _ => self.stats.model_errors += 1,
            }
        }
        let fallback = heads.is_none();
        let r = &self.config.ranking;
        let scores_by = |heads: Option<&Vec<f32>>| -> Vec<f64> {
            chosen
                .iter()
                .enumerate()
                .map(|(n, i)| {
                    let base = match heads {
                        Some(h) => h[n * HEADS.len()..(n + 1) * HEADS.len()]
                            .iter()
                            .zip(weights)
                            .map(|(p, w)| *p as f64 * w)
                            .sum::<f64>(),
                        None => fallback_score(&matrix[n * width..(n + 1) * width]),
                    };
                    let row = &rows[*i];
                    base - r.safety_penalty * row.safety_max as f64 - if row.demoted { r.demote_penalty } else { 0.0 }
                })
                .collect()
        };
        let scores = scores_by(heads.as_ref());
        if let Some(target) = context.guard_target {
            // A probe: does each ranker's top hold the post the user went on to engage with?
            if heads.is_some() {
                let in_top = |scores: &[f64]| {
                    let mut order: Vec<usize> = (0..scores.len()).collect();
                    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
                    order.iter().take(GUARD_TOP).any(|n| rows[chosen[*n]].post_id == target)
                };
                let model_hit = in_top(&scores);
                let fallback_hit = in_top(&scores_by(None));
                self.guard.record(context.tick, model_hit, fallback_hit);
                self.stats.probes += 1;
            }
            return None;
        }

        // The page. MMR weighs relevance by rank, exp(−rank / k), not by raw score:
        // heads and the fallback have different, often skewed, scales; a min-max
        // rescaling (or a percentile over hundreds of candidates) would leave the
        // top of the ranking nearly tied and let similarity decide alone. On this
        // scale λ = 0.7 trades a few places of rank for real variety.
        let mut by_score: Vec<usize> = (0..scores.len()).collect();
        by_score.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
        let mut relevance = vec![0.0f64; scores.len()];
        for (rank, n) in by_score.iter().enumerate() {
            relevance[*n] = rank_relevance(rank, context.k as usize);
        }
        let rr = &self.config.rerank;
        let categories: Vec<u64> =
            content.iter().map(|post| feedflow_operators::hash::hash_bytes(post.category.as_bytes())).collect();
        let candidates: Vec<PageCandidate<'_>> = chosen
            .iter()
            .enumerate()
            .map(|(n, i)| PageCandidate {
                score: relevance[n],
                author: rows[*i].creator_id,
                group: categories[n],
                embedding: &content[n].embedding,
                explore: proposed[*i].by[6],
                boosted: proposed[*i].by[3],
            })
            .collect();
        let rules = PageRules {
            page_size: context.k as usize,
            mmr_lambda: rr.mmr_lambda,
            max_per_author: rr.max_per_creator,
            max_group_share: rr.max_category_share,
            explore_share: rr.explore_share,
            max_boosted: rr.trending_slots,
        };
        let page = build_page(&candidates, &rules);

        let model = if fallback { "fallback".to_string() } else { self.model_id() };
        let impression = impression_id(&context.request_id, context.user_id, context.ts);
        let mut items = Vec::with_capacity(page.len());
        let mut logged = Vec::with_capacity(page.len());
        let served = self.served.entry(context.user_id).or_default();
        for (rank, placed) in page.iter().enumerate() {
            let n = placed.candidate;
            let i = chosen[n];
            let row = &rows[i];
            let source = match placed.slot {
                SlotKind::Explore => Source::Explore,
                SlotKind::Boosted => Source::Trending,
                SlotKind::Regular => {
                    Source::ALL.into_iter().zip(proposed[i].by).find(|(_, b)| *b).map_or(Source::Ann, |(s, _)| s)
                }
            };
            let score = round6(scores[n]);
            items.push(ResponseItem {
                creator_id: row.creator_id,
                post_id: row.post_id,
                rank: rank + 1,
                score,
                source: source.name(),
            });
            if !context.shadow {
                served.insert(row.post_id, context.ts);
                logged.push(ImpressionItem {
                    fallback_score: None,
                    features: &matrix[n * width..(n + 1) * width],
                    head_scores: heads.as_ref().map(|h| &h[n * HEADS.len()..(n + 1) * HEADS.len()]),
                    post_id: row.post_id,
                    rank: rank + 1,
                    score,
                    source: source.name(),
                });
            }
        }
        let tick = tick_of(context.ts, self.config.engine.tick_ms);
        let partial = self.clock.as_ref().is_some_and(|c| c.partial(tick));
        let late = self.clock.as_ref().is_some_and(|c| c.missed_late_input(tick));
        let failed = fallback && !guarded;
        let reasons: Vec<&str> = [(partial, "partial_prefix"), (late, "late_input"), (failed, "ranker_fallback")]
            .into_iter()
            .filter_map(|(on, reason)| on.then_some(reason))
            .collect();
        let degraded = (!reasons.is_empty()).then(|| reasons.join(","));
        if let Some(m) = &self.metrics {
            m.responses.with_label_values(&[degraded.as_deref().unwrap_or("none")]).inc();
            if fallback {
                m.ranker_fallback.inc();
            }
        }
        let response = to_line(&Response {
            degraded: degraded.as_deref(),
            impression_id: &impression,
            items: &items,
            model: &model,
            request_id: &context.request_id,
            ts: context.ts,
            user_id: context.user_id,
        });
        let training = context.shadow && self.log_shadow_candidates;
        if training {
            // Every ranked candidate, in score order, with the fallback's score beside the model's:
            // `feedflow train` labels them by what the user did next and compares the two.
            // The fallback's best TRAIN_TOP (the hard negatives and most positives) and a
            // deterministic sample of TRAIN_SAMPLE of the rest, so the model also sees rows it
            // must keep low; all of them would make the training log several times larger.
            logged.clear();
            // (key, rank) of the others; the rank is the candidate's place in `by_score`.
            let mut rest: Vec<(u64, usize)> = by_score
                .iter()
                .enumerate()
                .skip(TRAIN_TOP)
                .map(|(rank, n)| (mix64(rows[chosen[*n]].post_id ^ mix64(context.ts as u64 ^ context.user_id)), rank))
                .collect();
            rest.sort_unstable();
            let mut keep: Vec<usize> = (0..by_score.len().min(TRAIN_TOP)).collect();
            keep.extend(rest.into_iter().take(TRAIN_SAMPLE).map(|(_, rank)| rank));
            for rank in keep {
                let n = &by_score[rank];
                let i = chosen[*n];
                let row_features = &matrix[*n * width..(*n + 1) * width];
                logged.push(ImpressionItem {
                    fallback_score: Some(round6(fallback_score(row_features))),
                    features: row_features,
                    head_scores: heads.as_ref().map(|h| &h[*n * HEADS.len()..(*n + 1) * HEADS.len()]),
                    post_id: rows[i].post_id,
                    rank: rank + 1,
                    score: round6(scores[*n]),
                    source: Source::ALL
                        .into_iter()
                        .zip(proposed[i].by)
                        .find(|(_, b)| *b)
                        .map_or("ann", |(s, _)| s.name()),
                });
            }
        }
        let impression_line = (!context.shadow || training).then(|| {
            to_line(&Impression {
                features: &FEATURES,
                heads: &HEADS,
                impression_id: &impression,
                items: &logged,
                model: &model,
                request_id: &context.request_id,
                ts: context.ts,
                user_id: context.user_id,
            })
        });
        let rank_us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
        let service_us = context.build_us.saturating_add(shard_us).saturating_add(rank_us);
        self.stats.responses += 1;
        self.stats.fallback += fallback as u64;
        self.stats.guarded += guarded as u64;
        self.stats.shadow += context.shadow as u64;
        self.stats.service_us.push(service_us);
        self.stats.candidates.push(chosen.len() as u32);
        self.stats.rows_received += rows_received;
        for (total, us) in self.stats.stage_us.iter_mut().zip([context.build_us, shard_us, rank_us]) {
            *total += us as u64;
        }
        Some(Served {
            ts: context.ts,
            user_id: context.user_id,
            degraded,
            position: context.position,
            response,
            impression: impression_line,
            fallback,
            service_us,
            candidates: chosen.len() as u32,
        })
    }
}

// The output records. Fields are in alphabetical order: the order the JSON objects had when they were
// built as `serde_json::Value` maps, so the wire format stays byte for byte what DESIGN.md shows. Feature
// values and head scores are serialized as the f32 they are (shortest form, e.g. 0.2 rather than the
// 0.20000000298023224 of a widening to f64): the same numbers, a third fewer bytes per impression.

#[derive(Serialize)]
struct ResponseItem {
    creator_id: u64,
    post_id: u64,
    rank: usize,
    score: f64,
    source: &'static str,
}

#[derive(Serialize)]
struct Response<'a> {
    degraded: Option<&'a str>,
    impression_id: &'a str,
    items: &'a [ResponseItem],
    model: &'a str,
    request_id: &'a str,
    ts: i64,
    user_id: u64,
}

#[derive(Serialize)]
struct ImpressionItem<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_score: Option<f64>,
    features: &'a [f32],
    head_scores: Option<&'a [f32]>,
    post_id: u64,
    rank: usize,
    score: f64,
    source: &'static str,
}

#[derive(Serialize)]
struct Impression<'a> {
    features: &'a [&'static str],
    heads: &'a [&'static str],
    impression_id: &'a str,
    items: &'a [ImpressionItem<'a>],
    model: &'a str,
    request_id: &'a str,
    ts: i64,
    user_id: u64,
}

/// One output line; the records above hold only strings, numbers and slices, which always serialize.
fn to_line<T: Serialize>(record: &T) -> String {
    serde_json::to_string(record).unwrap_or_default()
}

fn round6(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        0.0
    }
}

/// Routes requests, rows and pool changes to the user's worker (pool changes to every worker) and ranks there,
/// with the posts' content from that worker's user side.
pub fn rank_requests<'scope>(
    inputs: StreamVec<'scope, u64, RankInput>,
    ranker: Rc<RefCell<Ranker>>,
    users: Rc<RefCell<Users>>,
) -> StreamVec<'scope, u64, RankOutput> {
    inputs.tick_batch_by(
        "Rank",
        |input: &RankInput| match input {
            RankInput::Request(r) => mix64(r.user_id),
            RankInput::Rows(p) => mix64(p.user_id),
            RankInput::Trend(worker, ..) | RankInput::Guard(worker, _) => *worker,
        },
        // A pool change at time t is seen by requests of later ticks: it is applied after the requests of t.
        |input: &RankInput| match input {
            RankInput::Trend(_, _, _, time, _) => *time,
            _ => 0,
        },
        move |tick, batch, out| ranker.borrow_mut().apply_tick(tick, batch, &users.borrow(), out),
    )
}
