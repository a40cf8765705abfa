//! Prequential evaluation (`feedflow eval`): would the engine have shown what users went on to like?
//!
//! For a sample of positive engagements (like or stronger) the log is replayed
//! with a shadow request placed just before the user's first engagement with
//! that post (usually the view that led to the like): the request's tick sees
//! only earlier ticks, so the answer cannot know what follows. Shadow requests
//! leave no trace (not remembered as served, no impressions). The log's own
//! requests are left out: a page served to the user earlier would hide its
//! posts from later pages for 24 h, so a model that predicted a session well
//! at its start would be counted as missing it later; without them the
//! engine, the baseline and the oracle face the same candidates. The report compares the engine with a
//! popularity baseline (top weighted engagement over the popular window, same
//! filters) and, on generated logs, the oracle that ranks every eligible post
//! by the generator's true engagement probability.

use crate::gen::{load_truth, truth_path_for, Truth};
use anyhow::{bail, Context, Result};
use feedflow_connectors::config::Config;
use feedflow_connectors::event::{EngagementKind, EventBody, ModerationAction, Position};
use feedflow_connectors::{decode, DecodeLimits};
use feedflow_dataflows::model::engagement_weight_milli;
use feedflow_dataflows::{run_file, RunOptions};
use feedflow_operators::hash::mix64;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What to evaluate.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// The log.
    pub log: PathBuf,
    /// Output folder (augmented log, engine outputs, report).
    pub out: PathBuf,
    /// Worker threads.
    pub workers: usize,
    /// At most this many positives are evaluated (a deterministic sample).
    pub sample: usize,
    /// Page size of the shadow requests.
    pub k: usize,
}

/// One evaluation point: user `user` engaged positively with `post`; the shadow request is at `ts`.
#[derive(Clone, Debug)]
struct Point {
    user: u64,
    post: u64,
    ts: i64,
}

/// Metrics of one system.
#[derive(Clone, Debug, Default)]
struct Metrics {
    hits10: usize,
    hits50: usize,
    ndcg10: f64,
    pages: usize,
    served: HashSet<u64>,
    creator_diversity: f64,
    new_items: usize,
    items: usize,
}

impl Metrics {
    fn add(&mut self, target: u64, page: &[u64], creators: &HashMap<u64, u64>, uploads: &HashMap<u64, i64>, ts: i64) {
        self.pages += 1;
        if let Some(rank) = page.iter().position(|p| *p == target) {
            self.hits50 += (rank < 50) as usize;
            if rank < 10 {
                self.hits10 += 1;
                self.ndcg10 += 1.0 / ((rank + 2) as f64).log2();
            }
        }
        if !page.is_empty() {
            let distinct: HashSet<u64> = page.iter().filter_map(|p| creators.get(p)).copied().collect();
            self.creator_diversity += distinct.len() as f64 / page.len() as f64;
        }
        for p in page {
            self.served.insert(*p);
            self.items += 1;
            if uploads.get(p).is_some_and(|u| ts - u < 30 * 60_000) {
                self.new_items += 1;
            }
        }
    }

    fn report(&self, catalogue: usize) -> Value {
        let n = self.pages.max(1) as f64;
        json!({
            "hr@10": self.hits10 as f64 / n,
            "hr@50": self.hits50 as f64 / n,
            "ndcg@10": self.ndcg10 / n,
            "coverage": self.served.len() as f64 / catalogue.max(1) as f64,
            "creator_diversity": self.creator_diversity / n,
            "new_share": self.new_items as f64 / self.items.max(1) as f64,
        })
    }
}

/// The world as the log tells it, advanced event by event.
#[derive(Default)]
struct LogState {
    creators: HashMap<u64, u64>,
    uploads: HashMap<u64, i64>,
    public: HashSet<u64>,
    blocked: HashSet<u64>,
    /// user → post → last engagement ts
    engaged: HashMap<u64, HashMap<u64, i64>>,
    /// positive engagements in the popular window: (ts, post, weight)
    window: VecDeque<(i64, u64, i64)>,
    popularity: HashMap<u64, i64>,
}

impl LogState {
    fn eligible(&self, user: u64, post: u64, ts: i64, seen_ms: i64) -> bool {
        self.public.contains(&post)
            && !self.blocked.contains(&post)
            && self.creators.get(&post) != Some(&user)
            && self.engaged.get(&user).and_then(|m| m.get(&post)).is_none_or(|t| ts - t >= seen_ms)
    }
}

fn read_events(log: &Path, config: &Config) -> Result<Vec<(usize, feedflow_connectors::Event)>> {
    let limits = DecodeLimits::from_config(config);
    let file = std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {}", log.display()))?;
        let position = Position { source: 0, partition: 0, offset: i as u64 + 1 };
        if let Ok(e) = decode(&line, position, &limits) {
            events.push((i, e));
        }
    }
    Ok(events)
}

/// The shadow request of evaluation point number `n`.
fn shadow_request(point: &Point, n: usize, k: usize) -> String {
    format!(
        "{{\"type\":\"request\",\"ts\":{},\"request_id\":\"eval-{n}\",\"user_id\":{},\"k\":{k},\"shadow\":true}}",
        point.ts, point.user
    )
}

fn is_positive(kind: EngagementKind) -> bool {
    matches!(
        kind,
        EngagementKind::Like
            | EngagementKind::Comment
            | EngagementKind::Save
            | EngagementKind::Share
            | EngagementKind::Follow
    )
}

/// Runs the evaluation and writes `eval.json` (and `eval.png` when the project's Python is set up).
pub fn evaluate(config: &Config, options: &EvalOptions) -> Result<Value> {
    std::fs::create_dir_all(&options.out).with_context(|| format!("creating {}", options.out.display()))?;
    let events = read_events(&options.log, config)?;
    if events.is_empty() {
        bail!("{} holds no valid events", options.log.display());
    }
    // Points: the first positive per (user, post), placed at the user's first engagement with the post.
    let mut first_touch: HashMap<(u64, u64), i64> = HashMap::new();
    let mut candidates = Vec::new();
    let mut taken: HashSet<(u64, u64)> = HashSet::new();
    for (_, e) in &events {
        if let EventBody::Engagement(g) = &e.body {
            let key = (g.user_id, g.post_id);
            let first = *first_touch.entry(key).or_insert(e.ts);
            if is_positive(g.kind) && taken.insert(key) {
                candidates.push(Point { user: g.user_id, post: g.post_id, ts: first });
            }
        }
    }
    if candidates.is_empty() {
        bail!("{} holds no positive engagement to evaluate", options.log.display());
    }
    // A deterministic sample, kept in time order.
    let mut points: Vec<Point> = candidates;
    if points.len() > options.sample {
        let mut keyed: Vec<(u64, usize)> =
            points.iter().enumerate().map(|(i, p)| (mix64(p.user ^ mix64(p.post) ^ 0x5eed), i)).collect();
        keyed.sort_unstable();
        let mut keep: Vec<usize> = keyed.into_iter().take(options.sample).map(|(_, i)| i).collect();
        keep.sort_unstable();
        points = keep.into_iter().map(|i| points[i].clone()).collect();
    }
    points.sort_by_key(|p| (p.ts, p.user, p.post));

    // The augmented log: every original line, with the shadow requests before the first line at or after their time.
    let augmented = options.out.join("eval-log.jsonl");
    {
        let file = std::fs::File::open(&options.log)?;
        let mut out = BufWriter::new(std::fs::File::create(&augmented)?);
        let mut next = 0usize;
        let mut ts_of: HashMap<usize, i64> = HashMap::new();
        let mut requests: HashSet<usize> = HashSet::new();
        for (i, e) in &events {
            ts_of.insert(*i, e.ts);
            if matches!(e.body, EventBody::Request(_)) {
                requests.insert(*i);
            }
        }
        let mut last_ts = i64::MIN;
        for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
            let line = line?;
            if let Some(ts) = ts_of.get(&i) {
                last_ts = *ts;
            }
            while next < points.len() && points[next].ts <= last_ts {
                writeln!(out, "{}", shadow_request(&points[next], next, options.k))?;
                next += 1;
            }
            if !requests.contains(&i) {
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
        }
        while next < points.len() {
            writeln!(out, "{}", shadow_request(&points[next], next, options.k))?;
            next += 1;
        }
        out.flush()?;
    }
    let engine_out = options.out.join("engine");
    let mut run = RunOptions::new(&augmented, options.workers);
    run.out_dir = Some(engine_out.clone());
    run.progress = true;
    let report = run_file(config, &run)?;
    eprintln!("{}", report.summary);

    // The engine's shadow answers.
    let mut pages: HashMap<usize, Vec<u64>> = HashMap::new();
    let responses = std::fs::File::open(engine_out.join("responses.jsonl"))?;
    for line in std::io::BufReader::new(responses).lines() {
        let v: Value = serde_json::from_str(&line?)?;
        let Some(id) = v["request_id"].as_str().and_then(|s| s.strip_prefix("eval-")) else { continue };
        let n: usize = id.parse().unwrap_or(usize::MAX);
        let items =
            v["items"].as_array().map(|a| a.iter().filter_map(|i| i["post_id"].as_u64()).collect()).unwrap_or_default();
        pages.insert(n, items);
    }

    // Replay the log once more for the baseline and the oracle, stopping at each point.
    let truth: Option<Truth> = {
        let path = truth_path_for(&options.log);
        if path.exists() {
            Some(load_truth(&path)?)
        } else {
            None
        }
    };
    let tick_ms = config.engine.tick_ms as i64;
    let popular_ms = config.pools.popular_window_ms as i64;
    let seen_ms = config.serving.seen_window_ms as i64;
    let mut state = LogState::default();
    let (mut engine, mut popularity, mut oracle) = (Metrics::default(), Metrics::default(), Metrics::default());
    let mut e_iter = events.iter().peekable();
    for (n, point) in points.iter().enumerate() {
        // Apply every event of earlier ticks.
        let tick_start = point.ts.div_euclid(tick_ms) * tick_ms;
        while let Some((_, e)) = e_iter.peek() {
            if e.ts >= tick_start {
                break;
            }
            apply(&mut state, e, config);
            e_iter.next();
        }
        while let Some(&(ts, post, w)) = state.window.front() {
            if ts.div_euclid(tick_ms) * tick_ms + popular_ms > tick_start - tick_ms {
                break;
            }
            state.window.pop_front();
            *state.popularity.entry(post).or_default() -= w;
        }
        let page = pages.get(&n).cloned().unwrap_or_default();
        engine.add(point.post, &page, &state.creators, &state.uploads, point.ts);
        let mut best: Vec<(i64, u64)> = state
            .popularity
            .iter()
            .filter(|(p, w)| **w > 0 && state.eligible(point.user, **p, point.ts, seen_ms))
            .map(|(p, w)| (-*w, *p))
            .collect();
        best.sort_unstable();
        let page: Vec<u64> = best.into_iter().take(options.k).map(|(_, p)| p).collect();
        popularity.add(point.post, &page, &state.creators, &state.uploads, point.ts);
        if let Some(truth) = &truth {
            let mut scored: Vec<(f64, u64)> = state
                .uploads
                .keys()
                .filter(|p| state.eligible(point.user, **p, point.ts, seen_ms))
                .map(|p| (truth.engagement_probability(point.user, *p), *p))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let page: Vec<u64> = scored.into_iter().take(options.k).map(|(_, p)| p).collect();
            oracle.add(point.post, &page, &state.creators, &state.uploads, point.ts);
        }
    }
    let catalogue = events.iter().filter(|(_, e)| matches!(e.body, EventBody::Upload(_))).count();
    let mut systems = serde_json::Map::new();
    systems.insert("engine".into(), engine.report(catalogue));
    systems.insert("popularity".into(), popularity.report(catalogue));
    if truth.is_some() {
        systems.insert("oracle".into(), oracle.report(catalogue));
    }
    let hr = |m: &Metrics| m.hits10 as f64 / m.pages.max(1) as f64;
    let result = json!({
        "kind": "eval",
        "log": options.log.display().to_string(),
        "positives": points.len(),
        "k": options.k,
        "model": report.summary.counters.model,
        "fallback_responses": report.summary.counters.rank.fallback,
        "engine_vs_popularity_hr@10": hr(&engine) / hr(&popularity).max(1e-12),
        "systems": Value::Object(systems),
    });
    let json_path = options.out.join("eval.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&result)? + "\n")?;
    let png = options.out.join("eval.png");
    let python = Path::new(".venv/bin/python");
    let script = Path::new("scripts/plot_report.py");
    if python.exists() && script.exists() {
        let status = std::process::Command::new(python).arg(script).arg(&json_path).arg(&png).status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("[feedflow] could not draw {} (scripts/plot_report.py failed)", png.display());
        }
    } else {
        eprintln!(
            "[feedflow] no chart: run scripts/setup for the Python venv, then scripts/plot_report.py {} {}",
            json_path.display(),
            png.display()
        );
    }
    Ok(result)
}

fn apply(state: &mut LogState, e: &feedflow_connectors::Event, config: &Config) {
    match &e.body {
        EventBody::Upload(u) => {
            state.creators.entry(u.post_id).or_insert(u.creator_id);
            state.uploads.entry(u.post_id).or_insert(e.ts);
            if u.is_public {
                state.public.insert(u.post_id);
            }
        }
        EventBody::Moderation(m) => match m.action {
            ModerationAction::Block => {
                state.blocked.insert(m.post_id);
            }
            ModerationAction::Unblock => {
                state.blocked.remove(&m.post_id);
            }
            ModerationAction::Demote => {}
        },
        EventBody::Engagement(g) => {
            state.engaged.entry(g.user_id).or_default().insert(g.post_id, e.ts);
            let w = engagement_weight_milli(config, g.kind, g.dwell_ms);
            if w > 0 && state.uploads.contains_key(&g.post_id) {
                state.window.push_back((e.ts, g.post_id, w));
                *state.popularity.entry(g.post_id).or_default() += w;
            }
        }
        EventBody::Request(_) => {}
    }
}

/// The report's metrics as a text table, one column per system.
pub fn table(report: &Value) -> String {
    let mut out = String::new();
    let systems = report["systems"].as_object().cloned().unwrap_or_default();
    let metrics = ["hr@10", "hr@50", "ndcg@10", "coverage", "creator_diversity", "new_share"];
    out.push_str(&format!("{:<18}", "metric"));
    for name in systems.keys() {
        out.push_str(&format!("{name:>12}"));
    }
    out.push('\n');
    for m in metrics {
        out.push_str(&format!("{m:<18}"));
        for v in systems.values() {
            out.push_str(&format!("{:>12.4}", v[m].as_f64().unwrap_or(f64::NAN)));
        }
        out.push('\n');
    }
    out
}
