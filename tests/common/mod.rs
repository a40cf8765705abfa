//! Shared helpers of the end-to-end tests: generated worlds, runs, outputs.
#![allow(dead_code)]

pub mod broker;
pub mod reference;

use feedflow::connectors::config::Config;
use feedflow::dataflows::{run_file, RunOptions, RunReport};
use feedflow::gen::{generate, GenOptions};
use std::path::{Path, PathBuf};

/// A generated world in its own temporary folder.
pub struct World {
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub text: String,
}

/// A small world: a few thousand users' worth of events, fast to replay.
pub fn small_world(seed: u64) -> World {
    world(GenOptions { seed, users: 400, posts: 1500, hours: 3.0, ..GenOptions::default() })
}

pub fn world(options: GenOptions) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("world.jsonl");
    generate(&options, &log).expect("generate");
    let text = std::fs::read_to_string(&log).expect("read log");
    World { dir, log, text }
}

/// Replays `log` with `workers` workers, writing outputs under `out` and keeping the final state.
pub fn replay(config: &Config, log: &Path, out: &Path, workers: usize) -> RunReport {
    let options = RunOptions { out_dir: Some(out.to_path_buf()), snapshot: true, ..RunOptions::new(log, workers) };
    run_file(config, &options).expect("run")
}

/// The lines of an output file.
pub fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("output lines are JSON"))
        .collect()
}

/// One malformed line per DESIGN.md §8 defect, with the reason it must get.
pub fn malformed(i: usize) -> (String, &'static str) {
    let emb = |n: usize| vec!["0.1"; n].join(",");
    match i % 11 {
        0 => ("{\"type\":\"engagement\",\"ts\":".to_string(), "invalid_json"),
        1 => (format!("{{\"type\":\"telemetry\",\"ts\":1700000000000,\"n\":{i}}}"), "unknown_type"),
        2 => (
            "{\"type\":\"engagement\",\"ts\":1700000000000,\"post_id\":1,\"kind\":\"like\"}".to_string(),
            "missing_field",
        ),
        3 => (
            format!(
                "{{\"type\":\"upload\",\"ts\":1700000000000,\"post_id\":{},\"creator_id\":1,\"embedding\":[{}]}}",
                9_000_000_000u64 + i as u64,
                emb(63)
            ),
            "embedding_length",
        ),
        4 => (
            format!(
                "{{\"type\":\"upload\",\"ts\":1700000000000,\"post_id\":{},\"creator_id\":1,\"embedding\":[NaN,{}]}}",
                9_000_000_000u64 + i as u64,
                emb(63)
            ),
            "non_finite",
        ),
        5 => (
            format!(
                "{{\"type\":\"request\",\"ts\":1700000000000,\"request_id\":\"{}\",\"user_id\":1}}",
                "x".repeat(70_000)
            ),
            "oversized",
        ),
        6 => (
            "{\"type\":\"engagement\",\"ts\":1700000000000,\"user_id\":1,\"post_id\":1,\"kind\":\"poke\"}".to_string(),
            "unknown_kind",
        ),
        7 => (
            "{\"type\":\"moderation\",\"ts\":1700000000000,\"post_id\":1,\"action\":\"nuke\"}".to_string(),
            "unknown_action",
        ),
        8 => (
            "{\"type\":\"request\",\"ts\":1700000000000,\"request_id\":\"r\",\"user_id\":1,\"k\":500}".to_string(),
            "k_out_of_range",
        ),
        9 => (
            "{\"type\":\"engagement\",\"ts\":\"soon\",\"user_id\":1,\"post_id\":1,\"kind\":\"like\"}".to_string(),
            "invalid_field",
        ),
        _ => ("\u{1F4A5} not json at all".to_string(), "invalid_json"),
    }
}
