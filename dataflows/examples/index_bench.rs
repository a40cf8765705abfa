//! Benchmarks the HNSW index: insert rate on 1 and 2 threads, recall@k against exact search, and the exact scan's time.
//!
//! ```text
//! cargo run --release -p feedflow-dataflows --example index_bench -- [--n 100000] [--k 100] [--queries 200]
//!     [--seed 42] [--connectivity C] [--expansion-add A] [--expansion-search S] [--quantization i8|f16|f32]
//!     [--shards 4] [--with-defaults]
//! ```
//!
//! The settings default to the engine's (`[index]` of the configuration). Data: N unit vectors
//! clustered around 16 topic centroids, like the generator's posts; queries near the centroids.
//! Measured, printed as one JSON object:
//! - inserts/s into the engine's layout, `[index] shards` shards (owner = hash of the key) built by 1
//!   and by 2 threads at once (each thread, like a worker, owning its shards), and into one index on
//!   one thread;
//! - recall@k of the single index and of the shards searched together and merged, against the true
//!   top k by cosine (an exact scan of the f32 vectors);
//! - the reference: the exact scan's time per query (plain Rust over the f32 vectors, and usearch's
//!   own `exact_search`) beside the ANN search time;
//! - recall and search time with 2× and 4× the `expansion_search`, on the same graphs;
//! - with `--with-defaults`, usearch's default settings (16, 64, 128, f32) on the same data.

use feedflow_connectors::config::Config;
use feedflow_operators::hash::mix64;
use feedflow_operators::vector_shard::{ShardSettings, VectorShard};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Instant;

struct Options {
    n: usize,
    k: usize,
    queries: usize,
    seed: u64,
    settings: ShardSettings,
    shards: usize,
    with_defaults: bool,
}

fn parse_args() -> Result<Options, String> {
    let index = Config::default().index;
    let mut o = Options {
        n: 100_000,
        k: 100,
        queries: 200,
        seed: 42,
        settings: ShardSettings {
            dimensions: index.dimensions,
            connectivity: index.connectivity,
            expansion_add: index.expansion_add,
            expansion_search: index.expansion_search,
            quantization: index.quantization,
        },
        shards: index.shards as usize,
        with_defaults: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--with-defaults" {
            o.with_defaults = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|_| format!("{flag}: {value:?} is not a whole number"));
        match flag.as_str() {
            "--n" => o.n = number()?,
            "--k" => o.k = number()?,
            "--queries" => o.queries = number()?,
            "--seed" => o.seed = number()? as u64,
            "--dimensions" => o.settings.dimensions = number()?,
            "--shards" => o.shards = number()?.max(1),
            "--connectivity" => o.settings.connectivity = number()?,
            "--expansion-add" => o.settings.expansion_add = number()?,
            "--expansion-search" => o.settings.expansion_search = number()?,
            "--quantization" if ["i8", "f16", "f32"].contains(&value.as_str()) => o.settings.quantization = value,
            "--quantization" => return Err(format!("--quantization: {value:?} is not i8, f16 or f32")),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if o.n < 2 || o.k == 0 || o.k > o.n / 2 || o.queries == 0 || o.settings.dimensions == 0 {
        return Err("need --n ≥ 2, 1 ≤ --k ≤ n/2, --queries ≥ 1 and --dimensions ≥ 1".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    match parse_args().and_then(|o| run(&o)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("index_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: &Options) -> Result<Value, String> {
    let dims = o.settings.dimensions;
    let mut state = o.seed;
    let centroids: Vec<Vec<f32>> =
        (0..16).map(|_| normalized((0..dims).map(|_| gaussian(&mut state)).collect())).collect();
    let near =
        |c: &[f32], noise: f32, state: &mut u64| normalized(c.iter().map(|x| x + noise * gaussian(state)).collect());
    let vectors: Vec<Vec<f32>> = (0..o.n).map(|i| near(&centroids[i % 16], 0.09, &mut state)).collect();
    let queries: Vec<Vec<f32>> = (0..o.queries).map(|q| near(&centroids[q % 16], 0.12, &mut state)).collect();

    eprintln!("index_bench: exact top {} of {} queries over {} vectors", o.k, o.queries, o.n);
    let started = Instant::now();
    let truth: Vec<Vec<u64>> = queries.iter().map(|q| exact_scan(&vectors, q, o.k)).collect();
    let exact_scan_ms = 1e3 * started.elapsed().as_secs_f64() / o.queries as f64;

    eprintln!("index_bench: one index, one thread");
    let (one, one_s) = build(&o.settings, &vectors)?;
    // The engine's layout: `shards` logical shards (owner = hash of the key), each built by the
    // thread (worker) that owns it, searched together and merged; with 1 and with 2 workers.
    eprintln!("index_bench: {} shards on 1 thread", o.shards);
    let (_, sharded_1_s) = build_sharded(o, &vectors, 1)?;
    eprintln!("index_bench: {} shards on 2 threads", o.shards);
    let (shards, sharded_2_s) = build_sharded(o, &vectors, 2)?;

    let (recall_one, ann_ms) = recall(&queries, &truth, o.k, |q| one.search(q, o.k))?;
    let (recall_sharded, ann_sharded_ms) = recall(&queries, &truth, o.k, |q| merged_search(&shards, q, o.k))?;
    // Recall against search time for larger candidate lists, on the same graphs.
    let mut sweep = Vec::new();
    for expansion in [o.settings.expansion_search * 2, o.settings.expansion_search * 4] {
        one.set_expansion_search(expansion);
        shards.iter().for_each(|s| s.set_expansion_search(expansion));
        let (recall_one, ann_ms) = recall(&queries, &truth, o.k, |q| one.search(q, o.k))?;
        let (recall_sharded, ann_sharded_ms) = recall(&queries, &truth, o.k, |q| merged_search(&shards, q, o.k))?;
        sweep.push(json!({"expansion_search": expansion, "recall_at_k": recall_one, "ann_ms": ann_ms,
                          "recall_at_k_sharded": recall_sharded, "ann_sharded_ms": ann_sharded_ms}));
    }
    let started = Instant::now();
    for q in &queries {
        one.exact_search(q, o.k).map_err(|e| e.to_string())?;
    }
    let exact_usearch_ms = 1e3 * started.elapsed().as_secs_f64() / o.queries as f64;

    let mut report = json!({
        "n": o.n, "dims": dims, "k": o.k, "queries": o.queries, "seed": o.seed,
        "settings": settings_json(&o.settings),
        "inserts_per_s_1_thread": o.n as f64 / one_s,
        "shards": o.shards,
        "inserts_per_s_sharded_1_thread": o.n as f64 / sharded_1_s,
        "inserts_per_s_sharded_2_threads": o.n as f64 / sharded_2_s,
        "recall_at_k": recall_one,
        "recall_at_k_sharded": recall_sharded,
        "ann_ms": ann_ms,
        "ann_sharded_ms": ann_sharded_ms,
        "exact_scan_ms": exact_scan_ms,
        "exact_usearch_ms": exact_usearch_ms,
        "ann_speedup_over_exact_scan": exact_scan_ms / ann_ms,
        "memory_bytes": one.memory_usage(),
        "expansion_search_sweep": sweep,
    });
    if o.with_defaults {
        eprintln!("index_bench: usearch defaults, one thread");
        let defaults = ShardSettings { dimensions: dims, ..ShardSettings::default() };
        let (index, seconds) = build(&defaults, &vectors)?;
        let (recall_defaults, ann_defaults_ms) = recall(&queries, &truth, o.k, |q| index.search(q, o.k))?;
        report["usearch_defaults"] = json!({
            "settings": settings_json(&defaults),
            "inserts_per_s_1_thread": o.n as f64 / seconds,
            "recall_at_k": recall_defaults,
            "ann_ms": ann_defaults_ms,
        });
    }
    Ok(report)
}

fn settings_json(s: &ShardSettings) -> Value {
    json!({"connectivity": s.connectivity, "expansion_add": s.expansion_add,
           "expansion_search": s.expansion_search, "quantization": s.quantization})
}

/// `o.shards` shards (owner = hash of the key) built by `threads` threads at once, thread t owning
/// shards t, t + threads, … like timely workers; and the seconds the whole build took.
fn build_sharded(o: &Options, vectors: &[Vec<f32>], threads: usize) -> Result<(Vec<VectorShard>, f64), String> {
    let started = Instant::now();
    let built: Vec<Result<Vec<VectorShard>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..o.shards)
                        .step_by(threads)
                        .map(|shard| {
                            let keys = (0..vectors.len()).filter(|i| mix64(*i as u64) as usize % o.shards == shard);
                            build_keys(&o.settings, vectors, keys).map(|(index, _)| index)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a shard build panicked".into()))).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut shards = Vec::with_capacity(o.shards);
    for owned in built {
        shards.extend(owned?);
    }
    Ok((shards, seconds))
}

/// One index holding all `vectors` (key = position), and the seconds the inserts took.
fn build(settings: &ShardSettings, vectors: &[Vec<f32>]) -> Result<(VectorShard, f64), String> {
    build_keys(settings, vectors, 0..vectors.len())
}

/// One index holding the vectors at `keys`, and the seconds the inserts took.
fn build_keys(
    settings: &ShardSettings,
    vectors: &[Vec<f32>],
    keys: impl Iterator<Item = usize>,
) -> Result<(VectorShard, f64), String> {
    let mut shard = VectorShard::new(settings).map_err(|e| e.to_string())?;
    let started = Instant::now();
    for key in keys {
        shard.insert(key as u64, &vectors[key]).map_err(|e| e.to_string())?;
    }
    Ok((shard, started.elapsed().as_secs_f64()))
}

/// The top k of every shard, merged by distance: how the engine searches its shards.
fn merged_search(shards: &[VectorShard], query: &[f32], k: usize) -> Found {
    let mut merged = Vec::with_capacity(k * shards.len());
    for shard in shards {
        merged.extend(shard.search(query, k)?);
    }
    merged.sort_by(|x, y| x.1.total_cmp(&y.1));
    merged.truncate(k);
    Ok(merged)
}

type Found = Result<Vec<(u64, f32)>, feedflow_operators::vector_shard::ShardError>;

/// Mean recall@k of `search` against `truth`, and its mean time per query in ms.
fn recall(
    queries: &[Vec<f32>],
    truth: &[Vec<u64>],
    k: usize,
    search: impl Fn(&[f32]) -> Found,
) -> Result<(f64, f64), String> {
    let (mut hits, mut seconds) = (0usize, 0.0);
    for (q, exact) in queries.iter().zip(truth) {
        let started = Instant::now();
        let found: HashSet<u64> = search(q).map_err(|e| e.to_string())?.into_iter().map(|(key, _)| key).collect();
        seconds += started.elapsed().as_secs_f64();
        hits += exact.iter().filter(|key| found.contains(key)).count();
    }
    Ok((hits as f64 / (k * queries.len()) as f64, 1e3 * seconds / queries.len() as f64))
}

/// The true top k by cosine (the vectors are unit length: the dot product), by scanning every vector.
fn exact_scan(vectors: &[Vec<f32>], query: &[f32], k: usize) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> =
        vectors.iter().enumerate().map(|(i, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum(), i as u64)).collect();
    scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored.into_iter().map(|(_, key)| key).collect()
}

fn uniform(state: &mut u64) -> f32 {
    *state = mix64(*state);
    (*state >> 40) as f32 / (1u64 << 24) as f32
}

fn gaussian(state: &mut u64) -> f32 {
    let (u1, u2) = (uniform(state).max(1e-7), uniform(state));
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn normalized(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}
