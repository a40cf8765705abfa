//! Shared helpers of the end-to-end tests: generated worlds, runs, outputs.
#![allow(dead_code)]

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
