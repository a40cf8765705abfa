//! Measures JSONL decode throughput: `cargo run --release -p feedflow-connectors --example decode_bench -- LOG`.

use feedflow_connectors::event::Position;
use feedflow_connectors::jsonl::LineReader;
use feedflow_connectors::{decode, DecodeLimits};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: decode_bench LOG");
    let limits = DecodeLimits { dimensions: 64, max_message_bytes: 65_536 };
    let started = Instant::now();
    let mut reader = LineReader::open(path.as_ref(), 0, 1).expect("open");
    let (mut ok, mut bad, mut lines) = (0u64, 0u64, 0u64);
    while let Some((n, bytes)) = reader.next_line().expect("read") {
        lines += 1;
        match decode(bytes, Position { source: 0, partition: 0, offset: n }, &limits) {
            Ok(_) => ok += 1,
            Err(_) => bad += 1,
        }
    }
    let s = started.elapsed().as_secs_f64();
    println!(
        "{{\"lines\":{lines},\"valid\":{ok},\"rejected\":{bad},\"seconds\":{s:.3},\"lines_per_s\":{:.0}}}",
        lines as f64 / s
    );
}
