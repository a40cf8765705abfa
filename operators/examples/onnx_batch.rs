//! Loads a model with `OnnxScorer`, scores a batch of deterministic pseudo-random rows and prints the first scores
//! and the batch time.
//!
//! ```text
//! cargo run --release -p feedflow-operators --example onnx_batch -- \
//!     --library .venv/lib/libonnxruntime.so \
//!     --model operators/tests/fixtures/linear.onnx --metadata operators/tests/fixtures/linear.json \
//!     [--rows 1000] [--threads 1]
//! ```
//!
//! The expected features and heads are taken from the metadata itself, so this checks the model against its
//! sidecar, not against a caller.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use feedflow_operators::onnx_scorer::{ModelMetadata, OnnxScorer, ScorerSettings};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("onnx_batch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut library, mut model, mut metadata) = (None, None, None);
    let (mut rows, mut threads) = (1000usize, 1usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--library" => library = Some(PathBuf::from(value)),
            "--model" => model = Some(PathBuf::from(value)),
            "--metadata" => metadata = Some(PathBuf::from(value)),
            "--rows" => rows = value.parse()?,
            "--threads" => threads = value.parse()?,
            _ => return Err(format!("unknown argument {flag}").into()),
        }
    }
    let settings = ScorerSettings {
        library: library.ok_or("--library is required")?,
        model: model.ok_or("--model is required")?,
        metadata: metadata.ok_or("--metadata is required")?,
        intra_threads: threads,
    };
    let sidecar: ModelMetadata = serde_json::from_str(&std::fs::read_to_string(&settings.metadata)?)?;
    let features: Vec<&str> = sidecar.features.iter().map(String::as_str).collect();
    let heads: Vec<&str> = sidecar.heads.iter().map(String::as_str).collect();

    let started = Instant::now();
    let mut scorer = OnnxScorer::load(&settings, &features, &heads)?;
    println!(
        "loaded {} ({} features -> {} heads) in {:?}",
        scorer.model_id(),
        features.len(),
        heads.len(),
        started.elapsed()
    );

    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let batch: Vec<f32> = (0..rows * features.len())
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let started = Instant::now();
    let scores = scorer.score(&batch)?;
    println!("scored {rows} rows in one run in {:?}", started.elapsed());
    // Linux: how many threads the process has after loading (the runtime adds intra_threads - 1 workers).
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("Threads:")) {
            println!("process {}", line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    for (i, row) in scores.chunks(heads.len()).take(3).enumerate() {
        let named: Vec<String> = heads.iter().zip(row).map(|(h, s)| format!("{h}={s:.6}")).collect();
        println!("row {i}: {}", named.join(" "));
    }
    Ok(())
}
