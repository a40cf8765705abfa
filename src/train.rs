//! `feedflow train`: fits the ranker to a log, with the features exactly as the engine serves them.
//!
//! 1. The log is replayed (its own requests left out, as in `eval`) with a shadow request
//!    placed at the user's first engagement with each sampled positive: the request's tick
//!    sees only earlier ticks, so its candidates and features are what serving would have had.
//!    The run ranks with the linear fallback and logs, for each shadow request, every ranked
//!    candidate with its features and the fallback's score (`serve/impressions.jsonl`).
//! 2. `scripts/train_ranker.py` (LightGBM, one model per head, exported with onnxmltools)
//!    labels each candidate by what the user did with the post within the horizon, splits
//!    train / validation by time, prints per-head validation metrics and HR@10 of the model
//!    against the fallback (hits: any positive item of the horizon, and the post each shadow
//!    request was placed before, `work/targets.jsonl`), and refuses (exit status 3) to write a
//!    model that ranks worse on either.
//! 3. The model lands in `DIR/ranker.onnx` with its metadata in `DIR/ranker.json`; `feedflow
//!    run --model DIR/ranker.onnx` (and `eval`) serve it. Same log, config and seed: the same bytes.

use crate::eval::{positive_points, read_events, time_span, write_targets, write_with_shadow_requests};
use anyhow::{bail, Context, Result};
use feedflow_connectors::config::Config;
use feedflow_dataflows::{run_file, RunOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What to train on and where the model goes.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The log.
    pub log: PathBuf,
    /// Output folder: `ranker.onnx`, `ranker.json`, and the training run under `work/`.
    pub out: PathBuf,
    /// Seed of the sample and of the learner.
    pub seed: u64,
    /// Worker threads of the replay.
    pub workers: usize,
    /// At most this many shadow requests (a deterministic sample of the log's positives).
    pub requests: usize,
    /// A candidate's labels are the user's engagements with the post within this long after the request.
    pub horizon_ms: u64,
    /// Write the model even when it ranks worse than the fallback on the validation period.
    pub allow_worse: bool,
    /// Boosting rounds per head (trees per head; serving cost grows with them).
    pub rounds: usize,
    /// The learner's learning rate (fewer rounds want a larger one).
    pub learning_rate: f64,
    /// Validation is the requests at or after this time (default: the last 20 % of their span).
    pub validation_from_ts: Option<i64>,
    /// Where the labels come from, when not from `log` itself (the same events, e.g. with
    /// labels shuffled to check that the gate refuses a model that learned noise).
    pub labels: Option<PathBuf>,
}

impl TrainOptions {
    /// Defaults for training on `log` into `out`: seed 1, 2 workers, 8,000 requests, 60 s horizon,
    /// 150 rounds per head at learning rate 0.05.
    pub fn new(log: &Path, out: &Path) -> Self {
        Self {
            log: log.to_path_buf(),
            out: out.to_path_buf(),
            seed: 1,
            workers: 2,
            requests: 8000,
            horizon_ms: 60_000,
            allow_worse: false,
            rounds: 150,
            learning_rate: 0.05,
            validation_from_ts: None,
            labels: None,
        }
    }
}

/// The checkout holding `scripts/train_ranker.py` and the project's venv: the working directory,
/// or a folder above the running binary (`target/release/feedflow` lives two levels down).
fn project_root() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("scripts/train_ranker.py").is_file() && dir.join(".venv/bin/python").exists();
    let cwd = std::env::current_dir().ok();
    if let Some(dir) = cwd.as_deref().filter(|d| has(d)) {
        return Some(dir.to_path_buf());
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors().skip(1).find(|d| has(d)).map(Path::to_path_buf)
}

/// Trains the ranker on `options.log`; returns the model's path.
pub fn train(config: &Config, options: &TrainOptions) -> Result<PathBuf> {
    let root = project_root().context(
        "feedflow train needs the project's Python venv and scripts/train_ranker.py: run scripts/setup in the \
         feedflow checkout, and run train from there",
    )?;
    let work = options.out.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let events = read_events(&options.log, config)?;
    if events.is_empty() {
        bail!("{} holds no valid events", options.log.display());
    }
    let (first_ts, _) = time_span(&events);
    let points = positive_points(&events, first_ts, options.requests, options.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    if points.len() < 50 {
        bail!("{} holds {} positive engagements; training needs at least 50", options.log.display(), points.len());
    }
    let augmented = work.join("train-log.jsonl");
    write_with_shadow_requests(&options.log, &events, &points, 50, &augmented)?;
    let targets = work.join("targets.jsonl");
    write_targets(&points, &targets)?;
    eprintln!("[feedflow] train: replaying {} with {} shadow requests", options.log.display(), points.len());
    // Rank with the fallback: the features do not depend on the scorer, and the log then carries
    // the fallback's score for the comparison.
    let mut serving = config.clone();
    serving.ranking.model = PathBuf::new();
    let mut run = RunOptions::new(&augmented, options.workers);
    run.out_dir = Some(work.join("serve"));
    run.progress = true;
    run.log_shadow_candidates = true;
    let report = run_file(&serving, &run)?;
    eprintln!("{}", report.summary);

    let model = options.out.join("ranker.onnx");
    let weights: Vec<String> = config.ranking.heads.as_array().iter().map(|w| w.to_string()).collect();
    let mut command = Command::new(root.join(".venv/bin/python"));
    command
        .arg(root.join("scripts/train_ranker.py"))
        .arg("--impressions")
        .arg(work.join("serve/impressions.jsonl"))
        .arg("--log")
        .arg(options.labels.as_ref().unwrap_or(&options.log))
        .arg("--out-model")
        .arg(&model)
        .arg("--out-meta")
        .arg(options.out.join("ranker.json"))
        .arg("--seed")
        .arg(options.seed.to_string())
        .arg("--horizon-ms")
        .arg(options.horizon_ms.to_string())
        .arg("--head-weights")
        .arg(weights.join(","))
        .arg("--targets")
        .arg(&targets)
        .arg("--rounds")
        .arg(options.rounds.to_string())
        .arg("--learning-rate")
        .arg(options.learning_rate.to_string());
    if options.allow_worse {
        command.arg("--allow-worse");
    }
    if let Some(ts) = options.validation_from_ts {
        command.arg("--validation-from-ts").arg(ts.to_string());
    }
    let status = command.status().context("starting scripts/train_ranker.py")?;
    match status.code() {
        Some(0) => Ok(model),
        Some(3) => bail!("no model written: it ranks worse than the fallback on the validation period (see above)"),
        _ => bail!("scripts/train_ranker.py failed ({status}); no model written"),
    }
}
