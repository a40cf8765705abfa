//! Sliding-window engagement counts per post, computed with feedflow's operators, for the side-by-side benchmark.
//!
//! ```text
//! cargo run --release -p feedflow-dataflows --example window_counts -- \
//!     --log LOG.jsonl --out DIR [--window-ms 300000] [--hop-ms 60000] [--workers 2] [--dimensions 64]
//! ```
//!
//! The computation `scripts/reference_window.py` also runs in Bytewax: for every post and every
//! hop-aligned window `[i·hop, i·hop + window)` holding at least one engagement, the number of
//! engagements in it. Here the hop is the tick, each engagement is added at its tick and retracted
//! `window / hop` ticks later (`SlidingWindow`), and `SumByKey` keeps the per-post counts; the
//! output is the change stream: `post tick count` whenever a post's count changes at a tick
//! (count 0 when its last engagement expires). Window `i` of the reference is tick
//! `i + window/hop − 1` here. Lines are decoded and validated by the engine's codec; invalid lines
//! are counted and skipped. Each worker writes `DIR/changes-<worker>.txt` and the run prints one
//! JSON line with the counts and the wall time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use differential_dataflow::AsCollection;
use feedflow_connectors::codec::{decode, DecodeLimits};
use feedflow_connectors::event::{EventBody, Position};
use feedflow_connectors::jsonl::LineReader;
use feedflow_operators::sliding_window::SlidingWindow;
use feedflow_operators::sum_by_key::SumByKey;
use feedflow_operators::ticked_input::TickedInput;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::ProbeHandle;

/// Ticks the input frontier moves at once (the replay's batching; results do not depend on it).
const STEP_TICKS: u64 = 64;

struct Options {
    log: PathBuf,
    out: PathBuf,
    window_ms: u64,
    hop_ms: u64,
    workers: usize,
    limits: DecodeLimits,
}

fn parse_args() -> Result<Options, String> {
    let (mut log, mut out) = (None, None);
    let (mut window_ms, mut hop_ms, mut workers, mut dimensions) = (300_000u64, 60_000u64, 1usize, 64usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: {v:?} is not a whole number"));
        match flag.as_str() {
            "--log" => log = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            "--window-ms" => window_ms = number(&value)?,
            "--hop-ms" => hop_ms = number(&value)?,
            "--workers" => workers = number(&value)? as usize,
            "--dimensions" => dimensions = number(&value)? as usize,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if hop_ms == 0 || window_ms == 0 || window_ms % hop_ms != 0 {
        return Err(format!("--window-ms ({window_ms}) must be a positive multiple of --hop-ms ({hop_ms})"));
    }
    if workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    Ok(Options {
        log: log.ok_or("--log is required")?,
        out: out.ok_or("--out is required")?,
        window_ms,
        hop_ms,
        workers,
        limits: DecodeLimits { dimensions, max_message_bytes: 64 * 1024 },
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("window_counts: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let options = Arc::new(parse_args()?);
    std::fs::create_dir_all(&options.out).map_err(|e| format!("cannot create {}: {e}", options.out.display()))?;
    let width = options.window_ms / options.hop_ms;
    let started = Instant::now();
    let engagements = Arc::new(AtomicU64::new(0));
    let invalid = Arc::new(AtomicU64::new(0));
    let changes = Arc::new(AtomicU64::new(0));
    let (e, i, c, o) = (engagements.clone(), invalid.clone(), changes.clone(), options.clone());
    let results = timely::execute(timely::Config::process(o.workers), move |worker| -> Result<(), String> {
        let (index, peers) = (worker.index(), worker.peers());
        let path = o.out.join(format!("changes-{index}.txt"));
        let file = File::create(&path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
        let mut sink = BufWriter::with_capacity(1 << 20, file);
        let probe = ProbeHandle::new();
        let changes = c.clone();
        let mut input = worker.dataflow::<u64, _, _>(|scope| {
            let (input, engagements) = TickedInput::new(&scope);
            engagements
                .map(|(post_id, tick)| (post_id, tick, 1i64))
                .as_collection()
                .sliding_window(width)
                .sum_by_key()
                .inner
                .inspect(move |((post_id, count), tick, diff)| {
                    // An addition carries the new count; a retraction alone means the count fell to zero.
                    let sign = if *diff > 0 { '+' } else { '-' };
                    let _ = writeln!(sink, "{sign} {post_id} {tick} {count}");
                    changes.fetch_add(1, Ordering::Relaxed);
                })
                .probe_with(&probe);
            input
        });
        let mut reader = LineReader::open(&o.log, index, peers).map_err(|err| err.to_string())?;
        let (mut max_tick, mut pushed) = (0u64, 0usize);
        while let Some((line_no, bytes)) = reader.next_line().map_err(|err| err.to_string())? {
            let position = Position { source: 0, partition: 0, offset: line_no };
            match decode(bytes, position, &o.limits) {
                Ok(event) => {
                    if let EventBody::Engagement(engagement) = &event.body {
                        let tick = event.ts.max(0) as u64 / o.hop_ms;
                        if tick > max_tick {
                            max_tick = tick;
                            if max_tick >= input.frontier().unwrap_or(0) + STEP_TICKS {
                                input.advance_to(max_tick);
                            }
                        }
                        // The log is read in order; a record behind the frontier is applied at it.
                        let at = tick.max(input.frontier().unwrap_or(0));
                        input.push(at, (engagement.post_id, at));
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(_) => {
                    i.fetch_add(1, Ordering::Relaxed);
                }
            }
            pushed += 1;
            if pushed % 1024 == 0 {
                worker.step();
            }
        }
        input.close();
        while worker.step_or_park(None) {}
        Ok(())
    })
    .map_err(|e| format!("timely: {e}"))?;
    for result in results.join() {
        result.map_err(|e| format!("worker: {e}"))??;
    }
    println!(
        "{{\"engine\":\"feedflow\",\"workers\":{},\"window_ms\":{},\"hop_ms\":{},\"engagements\":{},\"invalid\":{},\"changes\":{},\"seconds\":{:.3}}}",
        options.workers,
        options.window_ms,
        options.hop_ms,
        engagements.load(Ordering::Relaxed),
        invalid.load(Ordering::Relaxed),
        changes.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
