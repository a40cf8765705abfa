//! Benchmarks ONNX Runtime scoring of the ranking model: batch latency and GFLOP/s against one row per call.
//!
//! ```text
//! cargo run --release -p feedflow-operators --example ranking_bench -- \
//!     [--library .venv/lib/libonnxruntime.so] [--model models/ranker.onnx] [--metadata models/ranker.json] \
//!     [--sizes 100,700,2000] [--threads 1] [--seconds 2]
//! ```
//!
//! For each batch size n (candidates per request) it scores n deterministic pseudo-random rows through
//! `OnnxScorer::score` in one call (after 20 warm-up calls; at least 200 timed calls and `--seconds` of them): median
//! and p99 of the call time, µs per row, rows/s, and GFLOP/s from the metadata's `training.flops_per_row`. The
//! reference is the same n rows scored one row per call (n calls a pass; median pass time over at least 5 passes and
//! `--seconds`); median pass / median batch call is the batching speedup. The two are timed interleaved, so that
//! load from other processes on a shared machine hits both alike. The batch scores must equal the one-per-call
//! scores (max abs diff ≤ 1e-5) or the run fails. Progress goes to stderr, one JSON object to stdout.

use std::error::Error;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use feedflow_operators::hash::mix64;
use feedflow_operators::onnx_scorer::{ModelMetadata, OnnxScorer, ScorerSettings};
use serde::Serialize;

const USAGE: &str = "usage: ranking_bench [--library PATH] [--model PATH] [--metadata PATH] [--sizes N,N,...] \
                     [--threads N] [--seconds S]";
/// Untimed batch calls before measuring a size.
const WARMUP_RUNS: usize = 20;
/// Timed batch calls per size, at least (and at least `--seconds`).
const MIN_RUNS: usize = 200;
/// Timed batch calls per size, at most (bounds memory and time for tiny batches).
const MAX_RUNS: usize = 1_000_000;
/// Timed one-per-call passes over the n rows per size, at least (and at least `--seconds`).
const MIN_REPS: usize = 5;
/// Largest accepted |batch score - one-per-call score|.
const TOLERANCE: f64 = 1e-5;
/// Seed of the pseudo-random feature values ("ranker" in ASCII): the same rows in every run.
const SEED: u64 = 0x7261_6e6b_6572;

/// The JSON report (fields in this order).
#[derive(Serialize)]
struct Report {
    benchmark: &'static str,
    model: String,
    model_version: String,
    features: usize,
    heads: usize,
    flops_per_row: u64,
    flops_source: String,
    threads: usize,
    seconds_per_measurement: f64,
    warmup_runs: usize,
    min_runs: usize,
    tolerance: f64,
    sizes: Vec<SizeResult>,
    /// `None` with fewer than two distinct sizes (or a non-positive slope).
    fit: Option<Fit>,
}

/// One batch size: batch call times, the one-row-per-call reference and their agreement.
#[derive(Serialize)]
struct SizeResult {
    n: usize,
    batch_runs: usize,
    batch_median_us: f64,
    batch_p99_us: f64,
    us_per_row: f64,
    rows_per_s: f64,
    gflops: f64,
    one_per_call_reps: usize,
    one_per_call_median_us: f64,
    one_per_call_us_per_call: f64,
    batching_speedup: f64,
    max_abs_diff: f64,
}

/// Least-squares line through the batch medians: `batch_median_us = fixed_us + us_per_row × n`.
#[derive(Serialize)]
struct Fit {
    what: &'static str,
    fixed_us: f64,
    us_per_row: f64,
    marginal_gflops: f64,
}

struct Options {
    library: PathBuf,
    model: PathBuf,
    metadata: PathBuf,
    sizes: Vec<usize>,
    threads: usize,
    seconds: f64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ranking_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<Option<Options>, String> {
    let mut options = Options {
        library: PathBuf::from(".venv/lib/libonnxruntime.so"),
        model: PathBuf::from("models/ranker.onnx"),
        metadata: PathBuf::from("models/ranker.json"),
        sizes: vec![100, 700, 2000],
        threads: 1,
        seconds: 2.0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            return Ok(None);
        }
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), value.to_string()),
            _ => {
                let value = args
                    .next()
                    .filter(|v| !v.starts_with("--"))
                    .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?;
                (arg, value)
            }
        };
        let invalid = |what: &str| format!("{flag} {value:?}: {what}\n{USAGE}");
        match flag.as_str() {
            "--library" => options.library = PathBuf::from(&value),
            "--model" => options.model = PathBuf::from(&value),
            "--metadata" => options.metadata = PathBuf::from(&value),
            "--sizes" => {
                options.sizes = value
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<_>>()
                    .ok_or_else(|| invalid("expected a comma-separated list of positive row counts"))?;
            }
            "--threads" => {
                options.threads =
                    value.parse().ok().filter(|&t| t > 0).ok_or_else(|| invalid("expected a positive thread count"))?;
            }
            "--seconds" => {
                options.seconds = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
                    .ok_or_else(|| invalid("expected seconds between 0 and 3600"))?;
            }
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    Ok(Some(options))
}

/// `training.flops_per_row` of the metadata: the model's FLOPs per scored row, as written by scripts/train_ranker.py.
fn flops_per_row(metadata: &ModelMetadata, path: &str) -> Result<u64, String> {
    match metadata.training.get("flops_per_row") {
        None => Err(format!(
            "metadata {path} has no training.flops_per_row (the model's FLOPs per scored row); \
             regenerate it with scripts/train_ranker.py"
        )),
        Some(value) => value
            .as_u64()
            .filter(|&f| f > 0)
            .ok_or_else(|| format!("metadata {path}: training.flops_per_row is {value}, not a positive integer")),
    }
}

/// `rows` × `features` values in [-1, 1), the same for every run.
fn pseudo_random_rows(rows: usize, features: usize) -> Vec<f32> {
    let mut state = SEED;
    (0..rows * features)
        .map(|_| {
            state = mix64(state);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Median of a sorted slice.
fn median(sorted: &[f64]) -> f64 {
    let len = sorted.len();
    (sorted[(len - 1) / 2] + sorted[len / 2]) / 2.0
}

/// Nearest-rank percentile `p` (0 < p ≤ 100) of a sorted, non-empty slice.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut samples: Vec<f64>) -> Vec<f64> {
    samples.sort_by(f64::total_cmp);
    samples
}

/// Scores `rows` in one call, checking the output length; returns the scores.
fn score_batch(scorer: &mut OnnxScorer, rows: &[f32], expected: usize) -> Result<Vec<f32>, Box<dyn Error>> {
    let scores = scorer.score(rows)?;
    if scores.len() != expected {
        return Err(format!("{} scores for a batch, expected {expected}", scores.len()).into());
    }
    Ok(scores)
}

/// Scores `rows` one row per call; returns all the scores, row-major.
fn score_one_per_call(
    scorer: &mut OnnxScorer,
    rows: &[f32],
    features: usize,
    heads: usize,
    out: &mut Vec<f32>,
) -> Result<(), Box<dyn Error>> {
    out.clear();
    for row in rows.chunks(features) {
        out.extend_from_slice(&score_batch(scorer, black_box(row), heads)?);
    }
    black_box(out);
    Ok(())
}

/// Timings of one batch size, in µs (sorted), and the scores of the last batch call and the last one-per-call pass.
struct Measurement {
    batch: Vec<f64>,
    one_per_call: Vec<f64>,
    batch_scores: Vec<f32>,
    one_per_call_scores: Vec<f32>,
}

/// Times batch calls on `rows` and one-per-call passes over them, interleaved: each step runs whichever of the two
/// has had less measured time so far, until each has its minimum count and `budget` of measured time.
fn measure(
    scorer: &mut OnnxScorer,
    rows: &[f32],
    features: usize,
    heads: usize,
    budget: Duration,
) -> Result<Measurement, Box<dyn Error>> {
    let expected = rows.len() / features * heads;
    let mut batch_scores = Vec::new();
    for _ in 0..WARMUP_RUNS {
        batch_scores = black_box(score_batch(scorer, black_box(rows), expected)?);
    }
    let mut one_scores = Vec::with_capacity(expected);
    score_one_per_call(scorer, rows, features, heads, &mut one_scores)?;

    let budget_us = budget.as_secs_f64() * 1e6;
    let (mut batch, mut one) = (Vec::with_capacity(MIN_RUNS), Vec::with_capacity(MIN_REPS));
    let (mut batch_us, mut one_us) = (0.0, 0.0);
    loop {
        let batch_done = batch.len() >= MAX_RUNS || (batch.len() >= MIN_RUNS && batch_us >= budget_us);
        let one_done = one.len() >= MIN_REPS && one_us >= budget_us;
        if batch_done && one_done {
            break;
        }
        let t = Instant::now();
        if one_done || (!batch_done && batch_us <= one_us) {
            batch_scores = black_box(score_batch(scorer, black_box(rows), expected)?);
            let us = t.elapsed().as_secs_f64() * 1e6;
            batch.push(us);
            batch_us += us;
        } else {
            score_one_per_call(scorer, rows, features, heads, &mut one_scores)?;
            let us = t.elapsed().as_secs_f64() * 1e6;
            one.push(us);
            one_us += us;
        }
    }
    Ok(Measurement { batch: sorted(batch), one_per_call: sorted(one), batch_scores, one_per_call_scores: one_scores })
}

/// Largest |a - b| over two equally long score vectors; an error if either has a non-finite score or if every
/// row got the same scores (a model that ignores its input, or rows that are all alike, measure nothing).
fn max_abs_diff(batch: &[f32], one_per_call: &[f32], heads: usize) -> Result<f64, String> {
    if batch.len() != one_per_call.len() {
        return Err(format!("{} batch scores vs {} one-per-call scores", batch.len(), one_per_call.len()));
    }
    let mut max = 0f64;
    for (i, (&a, &b)) in batch.iter().zip(one_per_call).enumerate() {
        if !a.is_finite() || !b.is_finite() {
            return Err(format!("score {i} (row {}) is not finite: batch {a}, one per call {b}", i / heads));
        }
        max = max.max((f64::from(a) - f64::from(b)).abs());
    }
    let rows = batch.len() / heads;
    if rows > 1 && batch.chunks(heads).all(|row| row == &batch[..heads]) {
        return Err(format!("all {rows} rows got the same scores {:?}", &batch[..heads]));
    }
    Ok(max)
}

/// Least-squares fit of `time_us = fixed + per_row × n`; `None` with fewer than two distinct sizes or a
/// non-positive slope (noise).
fn linear_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let k = points.len() as f64;
    let mean_n = points.iter().map(|p| p.0).sum::<f64>() / k;
    let mean_t = points.iter().map(|p| p.1).sum::<f64>() / k;
    let var = points.iter().map(|p| (p.0 - mean_n).powi(2)).sum::<f64>();
    if var == 0.0 {
        return None;
    }
    let per_row = points.iter().map(|p| (p.0 - mean_n) * (p.1 - mean_t)).sum::<f64>() / var;
    (per_row > 0.0).then_some((mean_t - per_row * mean_n, per_row))
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn run() -> Result<(), Box<dyn Error>> {
    let Some(options) = parse_args()? else {
        return Ok(());
    };
    let metadata_path = options.metadata.display().to_string();
    let text =
        std::fs::read_to_string(&options.metadata).map_err(|e| format!("cannot read metadata {metadata_path}: {e}"))?;
    let sidecar: ModelMetadata =
        serde_json::from_str(&text).map_err(|e| format!("metadata {metadata_path} is not valid: {e}"))?;
    let flops = flops_per_row(&sidecar, &metadata_path)?;
    let features: Vec<&str> = sidecar.features.iter().map(String::as_str).collect();
    let heads: Vec<&str> = sidecar.heads.iter().map(String::as_str).collect();
    let (n_features, n_heads) = (features.len(), heads.len());

    let settings = ScorerSettings {
        library: options.library.clone(),
        model: options.model.clone(),
        metadata: options.metadata.clone(),
        intra_threads: options.threads,
    };
    let started = Instant::now();
    let mut scorer = OnnxScorer::load(&settings, &features, &heads)?;
    eprintln!(
        "ranking_bench: loaded {} ({n_features} features -> {n_heads} heads) in {:.0?}; {flops} FLOP/row \
         (training.flops_per_row of {metadata_path}); {} intra-op thread(s); {} s per measurement",
        scorer.model_id(),
        started.elapsed(),
        options.threads,
        options.seconds
    );

    let budget = Duration::from_secs_f64(options.seconds);
    let largest = options.sizes.iter().copied().max().unwrap_or(0);
    let all_rows = pseudo_random_rows(largest, n_features);
    let mut results = Vec::new();
    let mut fit_points = Vec::new();
    for &n in &options.sizes {
        let rows = &all_rows[..n * n_features];
        let Measurement { batch, one_per_call: one, batch_scores, one_per_call_scores: one_scores } =
            measure(&mut scorer, rows, n_features, n_heads, budget)?;
        let diff = max_abs_diff(&batch_scores, &one_scores, n_heads).map_err(|e| format!("n={n}: {e}"))?;
        if diff > TOLERANCE {
            return Err(format!(
                "n={n}: batch scores differ from one-per-call scores by up to {diff:e} (tolerance {TOLERANCE:e})"
            )
            .into());
        }
        let (batch_median, batch_p99, one_median) = (median(&batch), percentile(&batch, 99.0), median(&one));
        let gflops = flops as f64 * n as f64 / (batch_median * 1e3);
        let speedup = one_median / batch_median;
        let (low, high) = batch_scores.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        eprintln!(
            "ranking_bench: n={n}: batch median {batch_median:.1} µs (p99 {batch_p99:.1}, {} runs), \
             {:.3} µs/row, {:.2} GFLOP/s; one per call {one_median:.0} µs ({:.2} µs/call, {} reps), \
             speedup {speedup:.1}x; max |diff| {diff:e}, scores in [{low:.4}, {high:.4}]",
            batch.len(),
            batch_median / n as f64,
            gflops,
            one_median / n as f64,
            one.len()
        );
        fit_points.push((n as f64, batch_median));
        results.push(SizeResult {
            n,
            batch_runs: batch.len(),
            batch_median_us: round(batch_median, 2),
            batch_p99_us: round(batch_p99, 2),
            us_per_row: round(batch_median / n as f64, 4),
            rows_per_s: round(n as f64 / batch_median * 1e6, 0),
            gflops: round(gflops, 3),
            one_per_call_reps: one.len(),
            one_per_call_median_us: round(one_median, 1),
            one_per_call_us_per_call: round(one_median / n as f64, 3),
            batching_speedup: round(speedup, 2),
            max_abs_diff: diff,
        });
    }
    let fit = linear_fit(&fit_points).map(|(fixed, per_row)| Fit {
        what: "least-squares batch_median_us = fixed_us + us_per_row * n over the sizes",
        fixed_us: round(fixed, 2),
        us_per_row: round(per_row, 4),
        marginal_gflops: round(flops as f64 / (per_row * 1e3), 3),
    });
    let report = Report {
        benchmark: "ranking",
        model: scorer.model_id().to_string(),
        model_version: sidecar.version.clone(),
        features: n_features,
        heads: n_heads,
        flops_per_row: flops,
        flops_source: format!("training.flops_per_row in {metadata_path}"),
        threads: options.threads,
        seconds_per_measurement: options.seconds,
        warmup_runs: WARMUP_RUNS,
        min_runs: MIN_RUNS,
        tolerance: TOLERANCE,
        sizes: results,
        fit,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
