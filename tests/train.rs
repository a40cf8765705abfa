//! `feedflow train` end to end on small generated logs: the same log and seed give the same
//! model bytes, a model that learned noise is refused, and `run --model` serves what it wrote.
//! Needs the project venv (scripts/setup: LightGBM, onnxmltools, onnxruntime).

mod common;

use common::{lines, replay, world};
use feedflow::connectors::config::Config;
use feedflow::gen::GenOptions;
use feedflow::train::{train, TrainOptions};
use serde_json::Value;
use std::path::Path;

fn onnx_config(model: &Path) -> Config {
    let mut config = Config::default();
    config.ranking.model = model.to_path_buf();
    config.ranking.metadata = model.with_extension("json");
    config.ranking.onnxruntime_lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib/libonnxruntime.so");
    config
}

fn small(seed: u64) -> common::World {
    world(GenOptions { seed, users: 600, posts: 2000, hours: 3.0, ..GenOptions::default() })
}

#[test]
fn same_log_and_seed_give_the_same_model_and_run_serves_it() {
    let w = small(21);
    let config = Config::default();
    let mut options = TrainOptions::new(&w.log, &w.dir.path().join("m1"));
    options.requests = 1500;
    let first = train(&config, &options).expect("training succeeds on a generated log");
    options.out = w.dir.path().join("m2");
    let second = train(&config, &options).unwrap();
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap(), "same model bytes");
    assert_eq!(
        std::fs::read(first.with_extension("json")).unwrap(),
        std::fs::read(second.with_extension("json")).unwrap(),
        "same metadata bytes"
    );
    let meta: Value = serde_json::from_slice(&std::fs::read(first.with_extension("json")).unwrap()).unwrap();
    let sha = meta["sha256"].as_str().unwrap().to_string();

    let out = w.dir.path().join("served");
    let report = replay(&onnx_config(&first), &w.log, &out, 2);
    assert_eq!(report.summary.counters.model, format!("ranker@{}", &sha[..12]), "the trained model answers");
    let responses = lines(&out.join("responses.jsonl"));
    assert!(!responses.is_empty());
    for r in &responses {
        assert_eq!(r["model"].as_str().unwrap(), format!("ranker@{}", &sha[..12]));
        assert!(r["degraded"].is_null(), "no fallback: {}", r["degraded"]);
    }
}

#[test]
fn a_model_trained_on_shuffled_labels_is_refused() {
    let w = small(22);
    // The same events with each engagement of the training part (the first 80 % of the log's time;
    // validation is the rest, its labels stay true) moved to a post drawn uniformly from the
    // catalogue: labels that carry no signal about the candidates (shuffling among the engaged
    // posts would keep their popularity, which is a real signal).
    let events: Vec<Value> = w.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ts: Vec<i64> = events.iter().map(|e| e["ts"].as_i64().unwrap()).collect();
    let (lo, hi) = (*ts.iter().min().unwrap(), *ts.iter().max().unwrap());
    let cut = lo + (hi - lo) * 8 / 10;
    let catalogue: Vec<Value> = events.iter().filter(|e| e["type"] == "upload").map(|e| e["post_id"].clone()).collect();
    let mut shuffled = events.clone();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for (e, t) in shuffled.iter_mut().zip(&ts) {
        if e["type"] == "engagement" && *t < cut {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            e["post_id"] = catalogue[(x % catalogue.len() as u64) as usize].clone();
        }
    }
    let labels = w.dir.path().join("shuffled.jsonl");
    let text: String = shuffled.iter().map(|e| e.to_string() + "\n").collect();
    std::fs::write(&labels, text).unwrap();

    let mut options = TrainOptions::new(&w.log, &w.dir.path().join("noise"));
    options.requests = 1500;
    options.labels = Some(labels);
    options.validation_from_ts = Some(cut);
    let refused = train(&Config::default(), &options);
    let message = format!("{:#}", refused.expect_err("a model trained on noise must be refused"));
    assert!(message.contains("worse than the fallback"), "{message}");
    assert!(!w.dir.path().join("noise/ranker.onnx").exists(), "no model written");

    // The same run with the real labels is accepted.
    options.labels = None;
    options.out = w.dir.path().join("real");
    train(&Config::default(), &options).expect("the real labels train a model");
}
