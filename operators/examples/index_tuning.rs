//! Measures usearch insert rate and recall@k against exact search for HNSW settings.
//!
//! `cargo run --release -p feedflow-operators --example index_tuning -- N DIMS CONNECTIVITY EXPANSION_ADD EXPANSION_SEARCH QUANT [K] [QUERIES]`
//! Prints one JSON line. Data: unit vectors clustered around 16 topic centroids,
//! like the generator's posts.

use feedflow_operators::hash::mix64;
use feedflow_operators::vector_shard::{ShardSettings, VectorShard};
use std::collections::HashSet;
use std::time::Instant;

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

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let n: usize = arg(0, "100000").parse().expect("N");
    let dims: usize = arg(1, "64").parse().expect("DIMS");
    let settings = ShardSettings {
        dimensions: dims,
        connectivity: arg(2, "16").parse().expect("CONNECTIVITY"),
        expansion_add: arg(3, "64").parse().expect("EXPANSION_ADD"),
        expansion_search: arg(4, "128").parse().expect("EXPANSION_SEARCH"),
        quantization: arg(5, "f32"),
    };
    let k: usize = arg(6, "100").parse().expect("K");
    let queries: usize = arg(7, "200").parse().expect("QUERIES");
    let mut state = 42u64;
    let centroids: Vec<Vec<f32>> =
        (0..16).map(|_| normalized((0..dims).map(|_| gaussian(&mut state)).collect())).collect();
    let vectors: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            let c = &centroids[i % 16];
            normalized(c.iter().map(|x| x + 0.09 * gaussian(&mut state)).collect())
        })
        .collect();
    let mut shard = VectorShard::new(&settings).expect("index");
    let started = Instant::now();
    for (i, v) in vectors.iter().enumerate() {
        shard.insert(i as u64, v).expect("insert");
    }
    let insert_s = started.elapsed().as_secs_f64();
    let mut recall = 0.0;
    let (mut ann_s, mut exact_s) = (0.0, 0.0);
    for q in 0..queries {
        let query = normalized(centroids[q % 16].iter().map(|x| x + 0.12 * gaussian(&mut state)).collect());
        let t = Instant::now();
        let ann: HashSet<u64> = shard.search(&query, k).expect("search").into_iter().map(|(key, _)| key).collect();
        ann_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let exact = shard.exact_search(&query, k).expect("exact");
        exact_s += t.elapsed().as_secs_f64();
        recall += exact.iter().filter(|(key, _)| ann.contains(key)).count() as f64 / exact.len().max(1) as f64;
    }
    println!(
        "{{\"n\":{n},\"dims\":{dims},\"connectivity\":{},\"expansion_add\":{},\"expansion_search\":{},\"quantization\":\"{}\",\"inserts_per_s\":{:.0},\"recall_at_{k}\":{:.4},\"ann_ms\":{:.3},\"exact_ms\":{:.3}}}",
        settings.connectivity,
        settings.expansion_add,
        settings.expansion_search,
        settings.quantization,
        n as f64 / insert_s,
        recall / queries as f64,
        1000.0 * ann_s / queries as f64,
        1000.0 * exact_s / queries as f64
    );
}
