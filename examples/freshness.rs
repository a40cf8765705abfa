//! Freshness in event time: upload → searchable, and a burst crossing the trending threshold → the `trending` output.
//!
//! ```text
//! cargo run --release --example freshness -- [--seeds 1,2,3] [--probes 100] [--workers 2] [--out DIR]
//! ```
//!
//! Both figures are measured on the engine's outputs, on generated worlds, with the embedded
//! configuration (`config/local.toml`, 1 s ticks):
//!
//! - **Upload → searchable.** Probes are added to each world: a user likes an anchor post with a
//!   random embedding e (so the user's long-term vector is e), then a new post with embedding e is
//!   uploaded at T, and the user requests pages at T − 100 ms and every 50 ms from T to T + 2 s. The
//!   delay is the first request time whose response holds the new post, minus T (50 ms
//!   resolution). DESIGN.md §1 says a request sees the events of earlier ticks, so the expected
//!   delay is the rest of the upload's tick; the run checks every probe against that and that
//!   the request before the upload never holds the post.
//! - **Burst → trending.** For each injected burst above the threshold (the generator's ground
//!   truth), the brute-force reference of the tests (`tests/common/reference.rs`) gives the tick
//!   in which the post first qualifies for the pool; the delay is the engine's `trending` output
//!   time (the end of the tick it is emitted in) minus the time of the post's first positive
//!   engagement in the crossing tick (an upper bound of the delay from the crossing engagement),
//!   and the lag in ticks (0 = emitted at the end of the crossing tick).
//!
//! Prints one JSON object.

#[allow(dead_code)] // the tests use more of it
#[path = "../tests/common/reference.rs"]
mod reference;

use anyhow::{bail, Context, Result};
use feedflow::cli::EMBEDDED_CONFIG;
use feedflow::connectors::config::Config;
use feedflow::dataflows::{run_file, RunOptions};
use feedflow::gen::{generate, load_truth, truth_path_for, GenOptions, Rng};
use reference::Reference;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Request offsets of a probe, ms after the upload (the first is before it).
const PROBE_OFFSETS_MS: std::ops::RangeInclusive<i64> = 0..=40;
const PROBE_STEP_MS: i64 = 50;
/// Ids far above the generator's.
const PROBE_POST_BASE: u64 = 900_000_000;
const PROBE_USER_BASE: u64 = 800_000_000;
const PROBE_CREATOR_BASE: u64 = 700_000_000;

struct Options {
    seeds: Vec<u64>,
    probes: usize,
    workers: usize,
    out: PathBuf,
}

fn parse_args() -> Result<Options> {
    let mut options =
        Options { seeds: vec![1, 2, 3], probes: 100, workers: 2, out: PathBuf::from("bench/out-freshness") };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seeds" => {
                options.seeds =
                    value.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>().context("--seeds")?
            }
            "--probes" => options.probes = value.parse().context("--probes")?,
            "--workers" => options.workers = value.parse().context("--workers")?,
            "--out" => options.out = PathBuf::from(value),
            _ => bail!("unknown argument {flag}"),
        }
    }
    if options.seeds.is_empty() || options.workers == 0 {
        bail!("--seeds needs at least one seed and --workers at least 1");
    }
    Ok(options)
}

fn main() -> Result<()> {
    let options = parse_args()?;
    let config = Config::from_toml_str(EMBEDDED_CONFIG, "embedded config/local.toml")?;
    let tick_ms = config.engine.tick_ms as i64;
    let (mut upload_delays, mut trend_delays, mut trend_lags) = (Vec::new(), Vec::new(), Vec::new());
    let mut failures = Vec::new();
    for &seed in &options.seeds {
        let dir = options.out.join(format!("seed-{seed}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let world = dir.join("world.jsonl");
        generate(&GenOptions { seed, users: 400, posts: 1500, hours: 3.0, ..GenOptions::default() }, &world)?;
        let text = std::fs::read_to_string(&world)?;
        let (log, probes) = with_probes(&text, &dir, seed, options.probes, config.index.dimensions)?;
        let out = dir.join("out");
        let run = RunOptions { out_dir: Some(out.clone()), ..RunOptions::new(&log, options.workers) };
        run_file(&config, &run).with_context(|| format!("replaying {}", log.display()))?;

        // Upload → searchable.
        let responses = read_lines(&out.join("responses.jsonl"))?;
        let mut shown: HashMap<&str, Vec<u64>> = HashMap::new();
        for r in &responses {
            if let Some(id) = r["request_id"].as_str().filter(|id| id.starts_with("probe-")) {
                shown.insert(
                    id,
                    r["items"].as_array().into_iter().flatten().filter_map(|i| i["post_id"].as_u64()).collect(),
                );
            }
        }
        for probe in &probes {
            let holds =
                |offset: i64| shown.get(probe.request_id(offset).as_str()).map(|items| items.contains(&probe.post_id));
            if holds(-100) != Some(false) {
                failures.push(format!("seed {seed}: post {} answered or shown before its upload", probe.post_id));
                continue;
            }
            let first = PROBE_OFFSETS_MS.map(|i| i * PROBE_STEP_MS).find(|&o| holds(o) == Some(true));
            let expected = (probe.upload_ts.div_euclid(tick_ms) + 1) * tick_ms - probe.upload_ts;
            match first {
                Some(delay) if delay >= expected && delay < expected + PROBE_STEP_MS => upload_delays.push(delay),
                Some(delay) => failures.push(format!(
                    "seed {seed}: post {} searchable after {delay} ms, expected the rest of its tick, {expected} ms",
                    probe.post_id
                )),
                None => failures.push(format!("seed {seed}: post {} never shown to its probe user", probe.post_id)),
            }
        }

        // Burst → trending.
        let reference = Reference::from_log(&text, &config);
        let truth = load_truth(truth_path_for(&world))?;
        let mut entered: BTreeMap<u64, i64> = BTreeMap::new();
        for change in read_lines(&out.join("trending.jsonl"))? {
            if change["diff"] == 1 {
                let (post, ts) = (change["post_id"].as_u64().unwrap_or(0), change["ts"].as_i64().unwrap_or(0));
                entered.entry(post).or_insert(ts);
            }
        }
        for burst in truth.bursts.iter().filter(|b| b.above_threshold) {
            let ticks = burst.start_ts as u64 / tick_ms as u64..=burst.end_ts as u64 / tick_ms as u64 + 1;
            let crossing =
                ticks.clone().find(|t| reference.pool_at(*t).values().flatten().any(|(p, _, _)| *p == burst.post_id));
            match (crossing, entered.get(&burst.post_id)) {
                (Some(tick), Some(&ts)) => {
                    // The crossing engagement is one of the post's positive engagements in that tick: the
                    // delay from the first of them bounds the delay from the crossing from above.
                    let first = reference
                        .engagements
                        .iter()
                        .filter(|e| e.post_id == burst.post_id && e.tick == tick && e.weight > 0.0)
                        .map(|e| e.ts)
                        .min()
                        .unwrap_or(tick as i64 * tick_ms);
                    trend_delays.push(ts - first);
                    trend_lags.push(ts / tick_ms - 1 - tick as i64);
                }
                (crossing, seen) => failures.push(format!(
                    "seed {seed}: burst on {}: reference crossing {crossing:?}, engine output at {seen:?}",
                    burst.post_id
                )),
            }
        }
        eprintln!("freshness: seed {seed}: {} probes, {} bursts", probes.len(), truth.bursts.len());
    }
    let report = json!({
        "benchmark": "freshness",
        "tick_ms": tick_ms,
        "seeds": options.seeds,
        "workers": options.workers,
        "upload_to_searchable_ms": summary(&mut upload_delays),
        "burst_to_trending_ms": summary(&mut trend_delays),
        "burst_to_trending_lag_ticks": summary(&mut trend_lags),
        "failures": failures,
    });
    println!("{report}");
    if !failures.is_empty() {
        bail!("{} probes or bursts did not behave as DESIGN.md says (listed in the report)", failures.len());
    }
    Ok(())
}

struct Probe {
    index: usize,
    post_id: u64,
    upload_ts: i64,
}

impl Probe {
    fn request_id(&self, offset_ms: i64) -> String {
        format!("probe-{}-{offset_ms}", self.index)
    }
}

/// Writes `text` with the probes' events merged in event-time order to `dir/probed.jsonl`.
fn with_probes(text: &str, dir: &Path, seed: u64, count: usize, dimensions: usize) -> Result<(PathBuf, Vec<Probe>)> {
    let timed = |line: &str| -> i64 {
        serde_json::from_str::<Value>(line).ok().and_then(|v| v["ts"].as_i64()).unwrap_or(i64::MIN)
    };
    let mut lines: Vec<(i64, String)> = text.lines().map(|l| (timed(l), l.to_string())).collect();
    let (first, last) = (lines.first().map_or(0, |l| l.0), lines.last().map_or(0, |l| l.0));
    // Probes spread over the world after its first 20 minutes, at arbitrary points of their ticks.
    let span = (last - first - 1_800_000).max(1);
    let mut rng = Rng::new(seed, 0xf7e5);
    let mut probes = Vec::with_capacity(count);
    for index in 0..count {
        let upload_ts = first + 1_200_000 + span * index as i64 / count.max(1) as i64 + rng.below(1000) as i64;
        let (anchor, post_id) = (PROBE_POST_BASE + 2 * index as u64, PROBE_POST_BASE + 2 * index as u64 + 1);
        let (user, creator) = (PROBE_USER_BASE + index as u64, PROBE_CREATOR_BASE + index as u64);
        let mut embedding: Vec<f64> = (0..dimensions).map(|_| rng.f64() * 2.0 - 1.0).collect();
        let norm = embedding.iter().map(|x| x * x).sum::<f64>().sqrt();
        embedding.iter_mut().for_each(|x| *x = (*x / norm * 1e4).round() / 1e4);
        let upload = |post: u64, ts: i64| {
            json!({"type": "upload", "ts": ts, "post_id": post, "creator_id": creator, "embedding": embedding,
                   "category": "probe", "content_type": "photo", "is_public": true,
                   "safety": {"nudity": 0.0, "violence": 0.0, "hate": 0.0, "borderline": 0.0}})
        };
        lines.push((upload_ts - 600_000, upload(anchor, upload_ts - 600_000).to_string()));
        let like = json!({"type": "engagement", "ts": upload_ts - 300_000, "user_id": user, "post_id": anchor,
                          "kind": "like", "dwell_ms": 8000});
        lines.push((upload_ts - 300_000, like.to_string()));
        lines.push((upload_ts, upload(post_id, upload_ts).to_string()));
        let probe = Probe { index, post_id, upload_ts };
        for offset in std::iter::once(-100).chain(PROBE_OFFSETS_MS.map(|i| i * PROBE_STEP_MS)) {
            let request = json!({"type": "request", "ts": upload_ts + offset, "request_id": probe.request_id(offset),
                                 "user_id": user, "k": 50});
            lines.push((upload_ts + offset, request.to_string()));
        }
        probes.push(probe);
    }
    // Stable: the world's own order is kept among equal times, and a probe's upload precedes its
    // request at the same ms (both are in one tick, so the order does not change the answer).
    lines.sort_by_key(|l| l.0);
    let path = dir.join("probed.jsonl");
    let mut out = String::with_capacity(text.len() + count * 8192);
    for (_, line) in lines {
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    Ok((path, probes))
}

fn read_lines(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines().map(|l| serde_json::from_str(l).with_context(|| format!("a line of {}", path.display()))).collect()
}

/// Count, min, median, P90 and max of `values` (sorted in place).
fn summary(values: &mut [i64]) -> Value {
    values.sort_unstable();
    let at = |q: f64| values.get(((values.len() as f64 - 1.0) * q).round() as usize).copied();
    json!({"count": values.len(), "min": at(0.0), "p50": at(0.5), "p90": at(0.9), "max": at(1.0)})
}
