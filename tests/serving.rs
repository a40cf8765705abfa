//! The request funnel end to end: one response per request, byte-identical
//! across runs and worker counts; every page checked against a brute-force
//! walk of the log (filters, creator cap, category quota, cold start);
//! shadow requests and same-tick events leave answers unchanged; the fallback
//! answers when the model is missing or corrupt; ANN recall against exact search.

mod common;

use common::{lines, replay, small_world};
use feedflow::connectors::config::Config;
use feedflow::operators::vector_shard::{ShardSettings, VectorShard};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

fn request_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.contains("\"request\""))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "request")
        .collect()
}

#[test]
fn every_request_gets_one_response_identical_across_runs_and_workers() {
    for seed in [3u64, 4] {
        let world = small_world(seed);
        let config = Config::default();
        let dirs: Vec<_> = ["a1", "b2", "c2"].iter().map(|d| world.dir.path().join(d)).collect();
        replay(&config, &world.log, &dirs[0], 1);
        replay(&config, &world.log, &dirs[1], 2);
        replay(&config, &world.log, &dirs[2], 2);
        let requests = request_lines(&world.text);
        let responses = lines(&dirs[0].join("responses.jsonl"));
        assert_eq!(responses.len(), requests.len(), "one response per request (seed {seed})");
        let asked: Vec<&str> = requests.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
        let answered: Vec<&str> = responses.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
        assert_eq!(asked, answered, "responses in request order (seed {seed})");
        let with_items = responses.iter().filter(|r| !r["items"].as_array().unwrap().is_empty()).count();
        assert!(with_items * 10 >= responses.len() * 9, "most pages are non-empty: {with_items}/{}", responses.len());
        for file in ["responses.jsonl", "impressions.jsonl"] {
            let first = std::fs::read(dirs[0].join(file)).unwrap();
            for dir in &dirs[1..] {
                assert!(first == std::fs::read(dir.join(file)).unwrap(), "{file} differs (seed {seed}, {dir:?})");
            }
        }
    }
}

/// What the log says, applied tick by tick, to check pages against.
#[derive(Default)]
struct Truth {
    creator: HashMap<u64, u64>,
    category: HashMap<u64, String>,
    public: HashSet<u64>,
    blocked: HashSet<u64>,
    engaged: HashMap<u64, HashMap<u64, i64>>,
    positives: HashMap<u64, u64>,
    hidden_posts: HashMap<u64, HashSet<u64>>,
    hidden_creators: HashMap<u64, HashMap<u64, i64>>,
    served: HashMap<u64, HashMap<u64, i64>>,
}

#[test]
fn pages_respect_filters_caps_and_cold_start() {
    let world = small_world(5);
    let config = Config::default();
    let out = world.dir.path().join("out");
    replay(&config, &world.log, &out, 2);
    let mut responses: HashMap<String, Value> = HashMap::new();
    for r in lines(&out.join("responses.jsonl")) {
        responses.insert(r["request_id"].as_str().unwrap().to_string(), r);
    }
    let tick_ms = config.engine.tick_ms as i64;
    let day = 86_400_000i64;
    let category_cap = ((config.rerank.max_category_share * 50.0).floor() as usize).max(1);
    let events: Vec<Value> = world.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut truth = Truth::default();
    let mut applied = 0usize;
    let (mut items_checked, mut cold_pages, mut blocked_seen) = (0usize, 0usize, 0usize);
    for (i, e) in events.iter().enumerate() {
        if e["type"] != "request" {
            continue;
        }
        let ts = e["ts"].as_i64().unwrap();
        // Apply the events of earlier ticks only.
        while applied < events.len()
            && events[applied]["ts"].as_i64().unwrap().div_euclid(tick_ms) < ts.div_euclid(tick_ms)
        {
            apply(&mut truth, &events[applied]);
            applied += 1;
        }
        let _ = i;
        let user = e["user_id"].as_u64().unwrap();
        let response = &responses[e["request_id"].as_str().unwrap()];
        let items = response["items"].as_array().unwrap();
        let cold = truth.positives.get(&user).copied().unwrap_or(0) == 0;
        cold_pages += cold as usize;
        let mut per_creator: HashMap<u64, usize> = HashMap::new();
        let mut per_category: HashMap<&str, usize> = HashMap::new();
        let mut seen = HashSet::new();
        assert!(items.len() <= e["k"].as_u64().unwrap_or(50) as usize);
        for item in items {
            let post = item["post_id"].as_u64().unwrap();
            let creator = truth.creator[&post];
            let what = format!("post {post} for user {user} at {ts}");
            assert!(seen.insert(post), "{what}: twice on a page");
            assert!(truth.public.contains(&post), "{what}: private");
            assert!(!truth.blocked.contains(&post), "{what}: blocked");
            assert_ne!(creator, user, "{what}: the user's own post");
            let engaged = truth.engaged.get(&user).and_then(|m| m.get(&post)).is_some_and(|t| ts - t < day);
            assert!(!engaged, "{what}: engaged within 24 h");
            assert!(!truth.hidden_posts.get(&user).is_some_and(|h| h.contains(&post)), "{what}: hidden");
            let hidden_creator =
                truth.hidden_creators.get(&user).and_then(|m| m.get(&creator)).is_some_and(|until| *until > ts);
            assert!(!hidden_creator, "{what}: creator hidden");
            let served = truth.served.get(&user).and_then(|m| m.get(&post)).is_some_and(|t| ts - t < day);
            assert!(!served, "{what}: served within 24 h");
            *per_creator.entry(creator).or_default() += 1;
            *per_category.entry(truth.category[&post].as_str()).or_default() += 1;
            if cold {
                let source = item["source"].as_str().unwrap();
                assert!(
                    ["popular", "trending", "fresh", "explore"].contains(&source),
                    "{what}: cold start got {source}"
                );
            }
            items_checked += 1;
        }
        assert!(per_creator.values().all(|n| *n <= config.rerank.max_per_creator), "creator cap at {ts}");
        assert!(per_category.values().all(|n| *n <= category_cap), "category quota at {ts}");
        let served = truth.served.entry(user).or_default();
        for item in items {
            served.insert(item["post_id"].as_u64().unwrap(), ts);
        }
        blocked_seen = truth.blocked.len();
    }
    assert!(items_checked > 10_000, "enough items checked: {items_checked}");
    assert!(cold_pages > 0, "the world has cold-start requests");
    assert!(blocked_seen > 0, "the world blocks posts");
}

fn apply(t: &mut Truth, e: &Value) {
    let ts = e["ts"].as_i64().unwrap();
    match e["type"].as_str().unwrap() {
        "upload" => {
            let post = e["post_id"].as_u64().unwrap();
            t.creator.insert(post, e["creator_id"].as_u64().unwrap());
            t.category.insert(post, e["category"].as_str().unwrap().to_string());
            if e["is_public"].as_bool().unwrap() {
                t.public.insert(post);
            }
        }
        "moderation" => {
            let post = e["post_id"].as_u64().unwrap();
            match e["action"].as_str().unwrap() {
                "block" => {
                    t.blocked.insert(post);
                }
                "unblock" => {
                    t.blocked.remove(&post);
                }
                _ => {}
            }
        }
        "engagement" => {
            let (user, post) = (e["user_id"].as_u64().unwrap(), e["post_id"].as_u64().unwrap());
            t.engaged.entry(user).or_default().insert(post, ts);
            let kind = e["kind"].as_str().unwrap();
            let dwell = e["dwell_ms"].as_u64().unwrap_or(0);
            if ["like", "comment", "save", "share", "follow"].contains(&kind) || (kind == "view" && dwell >= 3000) {
                *t.positives.entry(user).or_default() += 1;
            }
            if kind == "hide" || kind == "report" {
                t.hidden_posts.entry(user).or_default().insert(post);
                let creator = t.creator[&post];
                t.hidden_creators.entry(user).or_default().insert(creator, ts + 30 * 86_400_000);
            }
        }
        _ => {}
    }
}

/// Inserts extra lines right after every `every`-th request and returns the new log and the chosen ids.
fn with_extra_lines(text: &str, every: usize, extra: impl Fn(&Value, usize) -> Vec<String>) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut touched = Vec::new();
    let mut n = 0;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.contains("\"type\":\"request\"") {
            n += 1;
            if n % every == 0 {
                let v: Value = serde_json::from_str(line).unwrap();
                touched.push(v["request_id"].as_str().unwrap().to_string());
                for extra_line in extra(&v, n) {
                    out.push_str(&extra_line);
                    out.push('\n');
                }
            }
        }
    }
    (out, touched)
}

fn responses_by_id(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["request_id"].as_str().unwrap().to_string(), l.to_string())
        })
        .collect()
}

#[test]
fn shadow_requests_and_same_tick_events_leave_answers_unchanged() {
    let world = small_world(6);
    let config = Config::default();
    let base = world.dir.path().join("base");
    replay(&config, &world.log, &base, 2);
    let base_responses = responses_by_id(&base.join("responses.jsonl"));

    // Shadow copies of every third request, placed right after the original.
    let (shadowed, _) = with_extra_lines(&world.text, 3, |v, n| {
        vec![format!(
            "{{\"type\":\"request\",\"ts\":{},\"request_id\":\"shadow-{n}\",\"user_id\":{},\"k\":50,\"shadow\":true}}",
            v["ts"], v["user_id"]
        )]
    });
    let log = world.dir.path().join("shadowed.jsonl");
    std::fs::write(&log, shadowed).unwrap();
    let out = world.dir.path().join("shadow");
    let report = replay(&config, &log, &out, 2);
    let responses = responses_by_id(&out.join("responses.jsonl"));
    let shadows = responses.keys().filter(|k| k.starts_with("shadow-")).count();
    assert!(shadows > 50, "shadow requests are answered: {shadows}");
    assert_eq!(report.summary.counters.rank.shadow as usize, shadows);
    for (id, line) in &base_responses {
        assert_eq!(&responses[id], line, "request {id} changed because of shadow requests");
    }
    assert_eq!(
        std::fs::read(base.join("impressions.jsonl")).unwrap(),
        std::fs::read(out.join("impressions.jsonl")).unwrap(),
        "shadow requests write no impressions"
    );

    // Events in a request's own tick are invisible to it (DESIGN.md §1): a like
    // by the user and an upload, with the request's timestamp, right after it.
    // One request per run, so that no earlier tick changes.
    let total = request_lines(&world.text).len();
    for chosen in [10, total / 3, 2 * total / 3] {
        let mut n = 0;
        let mut text = String::new();
        let mut id = String::new();
        for line in world.text.lines() {
            text.push_str(line);
            text.push('\n');
            if line.contains("\"type\":\"request\"") {
                n += 1;
                if n == chosen {
                    let v: Value = serde_json::from_str(line).unwrap();
                    id = v["request_id"].as_str().unwrap().to_string();
                    let embedding = vec!["0.125"; config.index.dimensions].join(",");
                    text.push_str(&format!(
                        "{{\"type\":\"engagement\",\"ts\":{},\"user_id\":{},\"post_id\":10000001,\"kind\":\"like\"}}\n",
                        v["ts"], v["user_id"]
                    ));
                    text.push_str(&format!(
                        "{{\"type\":\"upload\",\"ts\":{},\"post_id\":90000001,\"creator_id\":77,\"embedding\":[{embedding}],\"category\":\"food\",\"content_type\":\"reel\",\"is_public\":true}}\n",
                        v["ts"]
                    ));
                }
            }
        }
        let log = world.dir.path().join(format!("busier-{chosen}.jsonl"));
        std::fs::write(&log, text).unwrap();
        let out = world.dir.path().join(format!("busier-{chosen}"));
        replay(&config, &log, &out, 2);
        let responses = responses_by_id(&out.join("responses.jsonl"));
        assert_eq!(responses[&id], base_responses[&id], "request {id} saw an event of its own tick");
    }
}

fn first_response(out: &Path) -> Value {
    lines(&out.join("responses.jsonl")).into_iter().find(|r| !r["items"].as_array().unwrap().is_empty()).unwrap()
}

#[test]
fn the_fallback_answers_when_the_model_is_missing_or_corrupt() {
    let world = small_world(7);
    let dir = world.dir.path();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let count = request_lines(&world.text).len();

    let mut config = Config::default();
    config.ranking.model = dir.join("missing.onnx");
    let missing = dir.join("missing");
    let report = replay(&config, &world.log, &missing, 2);
    assert_eq!(report.summary.counters.rank.fallback as usize, count);
    assert!(report.summary.counters.fallback_reason.as_deref().unwrap().contains("missing.onnx"));

    // Corrupt bytes whose checksum the metadata does not match, and corrupt bytes it does match.
    let metadata: Value = serde_json::from_str(&std::fs::read_to_string(models.join("ranker.json")).unwrap()).unwrap();
    std::fs::write(dir.join("corrupt.onnx"), b"\x08\x07not a model at all").unwrap();
    std::fs::write(dir.join("corrupt.json"), metadata.to_string()).unwrap();
    let mut matching = metadata.clone();
    matching["sha256"] =
        Value::String(feedflow::operators::onnx_scorer::sha256_hex(&dir.join("corrupt.onnx")).unwrap());
    std::fs::write(dir.join("corrupt2.onnx"), b"\x08\x07not a model at all").unwrap();
    std::fs::write(dir.join("corrupt2.json"), matching.to_string()).unwrap();
    for name in ["corrupt", "corrupt2"] {
        config.ranking.model = dir.join(format!("{name}.onnx"));
        config.ranking.metadata = dir.join(format!("{name}.json"));
        let out = dir.join(name);
        let report = replay(&config, &world.log, &out, 1);
        assert_eq!(report.summary.counters.rank.fallback as usize, count, "{name}");
        let r = first_response(&out);
        assert_eq!(r["degraded"], "ranker_fallback");
        assert_eq!(r["model"], "fallback");
        assert_eq!(lines(&out.join("responses.jsonl")).len(), count, "never a missing response");
    }

    // The committed model answers, and says which one it is (the model guard, which may hand
    // answers to the fallback on evidence, is tested on its own below).
    let config = Config {
        ranking: feedflow::connectors::config::RankingConfig {
            model: models.join("ranker.onnx"),
            metadata: models.join("ranker.json"),
            onnxruntime_lib: Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib/libonnxruntime.so"),
            guard: feedflow::connectors::config::GuardConfig { enabled: false, ..Default::default() },
            ..Default::default()
        },
        ..Config::default()
    };
    let out = dir.join("model");
    let report = replay(&config, &world.log, &out, 2);
    assert_eq!(report.summary.counters.rank.fallback, 0, "{:?}", report.summary.counters.fallback_reason);
    let r = first_response(&out);
    assert!(r["degraded"].is_null());
    let sha = metadata["sha256"].as_str().unwrap();
    assert_eq!(r["model"].as_str().unwrap(), format!("ranker@{}", &sha[..12]));
    let impression = &lines(&out.join("impressions.jsonl"))[0];
    assert_eq!(impression["items"][0]["head_scores"].as_array().map(|h| h.len()), Some(7));
}

#[test]
fn a_ranking_cascade_cuts_to_its_first_stage_best_and_stays_deterministic() {
    let world = small_world(5);
    let dir = world.dir.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = Config::default();
    config.ranking.onnxruntime_lib = root.join(".venv/lib/libonnxruntime.so");
    config.ranking.guard.enabled = false;
    let count = request_lines(&world.text).len();
    let plain = dir.join("plain");
    let plain_report = replay(&config, &world.log, &plain, 2);

    // A first stage that never has to cut (keep above any candidate count) changes nothing.
    config.ranking.first_stage.model = root.join("models/ranker-first.onnx");
    config.ranking.first_stage.keep = 1_000_000;
    let wide = dir.join("wide");
    let report = replay(&config, &world.log, &wide, 2);
    let first_id = {
        let metadata: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("models/ranker-first.json")).unwrap()).unwrap();
        format!("ranker@{}", &metadata["sha256"].as_str().unwrap()[..12])
    };
    let note = report.summary.counters.first_stage.clone().unwrap_or_default();
    assert!(note.contains(&first_id), "the summary names the first stage: {note:?}");
    assert_eq!(report.summary.counters.rank.first_stage, 0);
    for file in ["responses.jsonl", "impressions.jsonl"] {
        assert!(std::fs::read(plain.join(file)).unwrap() == std::fs::read(wide.join(file)).unwrap(), "{file}");
    }

    // One that cuts every request to its best 10 (and the exploration and trending candidates):
    // the pages change, the same for 1 and 2 workers, and every request is still answered.
    config.ranking.first_stage.keep = 10;
    let (one, two) = (dir.join("cut1"), dir.join("cut2"));
    replay(&config, &world.log, &one, 1);
    let report = replay(&config, &world.log, &two, 2);
    let cut = report.summary.counters.rank.first_stage as usize;
    assert!(cut * 10 >= count * 9, "most requests have more than 10 candidates: {cut} of {count} cut");
    assert_eq!(report.summary.counters.rank.first_stage_errors, 0);
    for file in ["responses.jsonl", "impressions.jsonl"] {
        assert!(std::fs::read(one.join(file)).unwrap() == std::fs::read(two.join(file)).unwrap(), "{file}");
    }
    let responses = lines(&two.join("responses.jsonl"));
    assert_eq!(responses.len(), count, "one response per request");
    let pages: Vec<Vec<u64>> = responses
        .iter()
        .map(|r| r["items"].as_array().unwrap().iter().map(|i| i["post_id"].as_u64().unwrap()).collect())
        .collect();
    let plain_pages: Vec<Vec<u64>> = lines(&plain.join("responses.jsonl"))
        .iter()
        .map(|r| r["items"].as_array().unwrap().iter().map(|i| i["post_id"].as_u64().unwrap()).collect())
        .collect();
    let changed = pages.iter().zip(&plain_pages).filter(|(a, b)| a != b).count();
    assert!(changed * 2 >= count, "a cut to 10 candidates changes most pages: {changed} of {count}");
    // Only the first stage's best 10 and the protected candidates reach the model, and every
    // served item was scored by it (head scores in the impressions).
    let ranked = report.summary.counters.rank.mean_candidates();
    assert!(ranked < plain_report.summary.counters.rank.mean_candidates(), "{ranked} candidates ranked per request");
    for impression in lines(&two.join("impressions.jsonl")) {
        for item in impression["items"].as_array().unwrap() {
            assert_eq!(item["head_scores"].as_array().map(Vec::len), Some(7), "{impression}");
        }
    }

    // A first stage that cannot be opened is reported, and the model scores every candidate.
    config.ranking.first_stage.model = dir.join("missing-first.onnx");
    let broken = dir.join("broken");
    let report = replay(&config, &world.log, &broken, 2);
    let note = report.summary.counters.first_stage.clone().unwrap_or_default();
    assert!(note.contains("missing-first") && note.contains("not used"), "{note:?}");
    assert!(
        std::fs::read(plain.join("responses.jsonl")).unwrap() == std::fs::read(broken.join("responses.jsonl")).unwrap()
    );
}

#[test]
fn ann_recall_against_exact_search_on_the_same_shard() {
    // Clustered unit vectors like the generator's, in the engine's index settings.
    let config = Config::default();
    let x = &config.index;
    let settings = ShardSettings {
        dimensions: x.dimensions,
        connectivity: x.connectivity,
        expansion_add: x.expansion_add,
        expansion_search: x.expansion_search,
        quantization: x.quantization.clone(),
    };
    let mut shard = VectorShard::new(&settings).unwrap();
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) as f32 - 0.5
    };
    let d = x.dimensions;
    let centroids: Vec<Vec<f32>> = (0..16).map(|_| (0..d).map(|_| next()).collect()).collect();
    let n = 20_000u64;
    for key in 0..n {
        let c = &centroids[(key % 16) as usize];
        let v: Vec<f32> = c.iter().map(|x| x + 0.6 * next()).collect();
        shard.insert(key, &v).unwrap();
    }
    let stored: Vec<(u64, Vec<f32>)> = (0..n).map(|k| (k, shard.get(k).unwrap())).collect();
    let k = 100;
    let (mut found, mut total) = (0usize, 0usize);
    for q in 0..50 {
        let c = &centroids[q % 16];
        let query: Vec<f32> = c.iter().map(|x| x + 0.3 * next()).collect();
        let accept = |key: u64| key % 5 != (q as u64 % 5); // a filter, as the funnel's exclusions
        let approx: HashSet<u64> =
            shard.filtered_search(&query, k, accept).unwrap().into_iter().map(|(k, _)| k).collect();
        let mut exact: Vec<(f32, u64)> = stored
            .iter()
            .filter(|(key, _)| accept(*key))
            .map(|(key, v)| (1.0 - feedflow::dataflows::serving::cosine(&query, v), *key))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        found += exact.iter().take(k).filter(|(_, key)| approx.contains(key)).count();
        total += k;
    }
    let recall = found as f64 / total as f64;
    println!("ANN recall@{k} with a filter, 20k vectors, index settings of the config: {recall:.4}");
    assert!(recall >= 0.9, "recall@{k} = {recall:.4}");
}

#[test]
fn eval_beats_the_popularity_baseline_on_a_generated_world() {
    // The catalogue of the embedded default's world (6,000 posts), fewer users and hours.
    let world = common::world(feedflow::gen::GenOptions {
        seed: 8,
        users: 1000,
        posts: 6000,
        hours: 3.0,
        ..feedflow::gen::GenOptions::default()
    });
    let config = Config {
        ranking: feedflow::connectors::config::RankingConfig {
            model: Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ranker.onnx"),
            metadata: Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ranker.json"),
            onnxruntime_lib: Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib/libonnxruntime.so"),
            ..Default::default()
        },
        ..Config::default()
    };
    let options = feedflow::eval::EvalOptions {
        log: world.log.clone(),
        out: world.dir.path().join("eval"),
        workers: 2,
        sample: 1000,
        from: 0.0,
        k: 50,
    };
    let report = feedflow::eval::evaluate(&config, &options).unwrap();
    println!("{}", feedflow::eval::table(&report));
    let hr = |system: &str| report["systems"][system]["hr@10"].as_f64().unwrap();
    assert!(report["model"].as_str().unwrap().starts_with("ranker@"), "evaluated with the model");
    assert!(hr("engine") >= 2.0 * hr("popularity"), "engine {} vs popularity {}", hr("engine"), hr("popularity"));
    assert!(hr("oracle") > hr("popularity"));
    assert!(options.out.join("eval.json").exists());
}

#[test]
fn the_model_guard_hands_a_worse_model_over_to_the_fallback_and_keeps_a_better_one() {
    let world = small_world(5);
    let dir = world.dir.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = Config::default();
    config.ranking.model = root.join("models/ranker.onnx");
    config.ranking.metadata = root.join("models/ranker.json");
    config.ranking.onnxruntime_lib = root.join(".venv/lib/libonnxruntime.so");
    // Evidence reaches ranking 10 minutes after its probes (a 3-hour world).
    config.ranking.guard.delay_ms = 600_000;
    config.ranking.guard.probe_interval_ms = 600_000;

    // The committed model as it is: better than the fallback here, so it keeps every answer.
    let kept = replay(&config, &world.log, &dir.join("kept"), 2);
    let rank = &kept.summary.counters.rank;
    assert!(rank.probes > 100, "the guard probed: {}", rank.probes);
    assert_eq!(rank.fallback, 0, "the model keeps the answers");

    // The same model with every head weight negated ranks upside down: the probes find it out.
    let h = &mut config.ranking.heads;
    for w in [&mut h.like, &mut h.comment, &mut h.save, &mut h.share, &mut h.follow, &mut h.hide, &mut h.dwell] {
        *w = -*w;
    }
    let runs: Vec<_> = [("w1", 1), ("w2", 2)]
        .iter()
        .map(|(name, workers)| (dir.join(name), replay(&config, &world.log, &dir.join(name), *workers)))
        .collect();
    let rank = &runs[0].1.summary.counters.rank;
    assert!(rank.guarded > 0 && rank.guarded == rank.fallback, "the guard handed over: {rank:?}");
    let responses = lines(&runs[0].0.join("responses.jsonl"));
    let first = responses.iter().position(|r| r["model"] == "fallback").expect("a fallback answer");
    assert!(first > 0 && responses[..first].iter().all(|r| r["model"].as_str().unwrap().starts_with("ranker@")));
    assert!(responses[first..].iter().all(|r| r["degraded"].is_null()), "the guard's choice is not a degradation");
    assert!(
        responses.len() - first > responses.len() / 3,
        "handed over early enough: at answer {first} of {}",
        responses.len()
    );
    for file in ["responses.jsonl", "impressions.jsonl"] {
        assert!(
            std::fs::read(runs[0].0.join(file)).unwrap() == std::fs::read(runs[1].0.join(file)).unwrap(),
            "{file}: the guard decides alike with 1 and 2 workers"
        );
    }

    // Turned off, the upside-down model answers everything.
    config.ranking.guard.enabled = false;
    let off = replay(&config, &world.log, &dir.join("off"), 2);
    assert_eq!(off.summary.counters.rank.fallback, 0);
}
