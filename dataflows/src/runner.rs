//! Runs the whole graph on N timely workers, over a recorded log (file mode) or Kafka topics (live mode).
//!
//! File mode: each worker reads every line of the log and keeps the lines
//! `i ≡ worker (mod workers)`, decodes them, and feeds them to the graph at
//! their tick. Live mode: each worker consumes its partitions (see
//! [`crate::live_input`]). Rejected messages go to the DLQ. Outputs are gathered
//! on worker 0, sorted within each tick, and written as JSONL files or
//! produced to the output topics.

use crate::delivered::{output_partition, OutputPosition};
use crate::interest::{Interests, UserVectors};
use crate::live_input::{drive_kafka, Live, LiveControl, RequestStage};
use crate::metrics::Metrics;
use crate::model::{tick_of, PostInfo, TrendEntry, TrendingChange, Velocity};
use crate::model_reload::watch_model;
use crate::pools::fresh_pool;
use crate::posts::{post_registry, route_event, PostState, Registry, RegistryOutput, ShardInput};
use crate::rank::{open_first_stage, open_scorer, rank_requests, scorer_settings, RankInput, RankOutput, Ranker};
use crate::serving::Served;
use crate::snapshot::{snapshot, Contents};
use crate::stats::{Counters, Summary};
use crate::trending::trending_pool;
use crate::users::{user_front, PostMeta, UserInput, UserOutput, Users};
use differential_dataflow::AsCollection;
use feedflow_connectors::config::Config;
use feedflow_connectors::event::{Event, EventBody, Position};
use feedflow_connectors::jsonl::{FileError, LineReader, LineSink, Pacer};
use feedflow_connectors::kafka::{KafkaError, OutRecord, OutputProducer};
use feedflow_connectors::{decode, peek_ts, DecodeLimits, DlqRecord};
use feedflow_operators::dedupe::{Dedupe, SeenIds};
use feedflow_operators::exchange::exchange;
use feedflow_operators::hash::hash_bytes;
use feedflow_operators::split::Split;
use feedflow_operators::tick_batch::TickBatch;
use feedflow_operators::ticked_input::TickedInput;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, ConnectLoop, Feedback, Probe, ToStream};
use timely::dataflow::{ProbeHandle, StreamVec};

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The JSONL log to replay.
    pub log: PathBuf,
    /// Output folder; `None` writes no files.
    pub out_dir: Option<PathBuf>,
    /// Worker threads in this process.
    pub workers: usize,
    /// Replay pace (0 = as fast as possible).
    pub speed: f64,
    /// Collect final state for inspection (tests, evaluation).
    pub snapshot: bool,
    /// Print progress lines to stderr.
    pub progress: bool,
    /// Timely cluster arguments (`-w`, `-n`, `-p`, `-h`); when given they decide the workers.
    pub timely_args: Vec<String>,
    /// Training runs (`feedflow train`): shadow requests write every ranked candidate with its
    /// features and the fallback's score to `impressions` (still remembering nothing as served).
    pub log_shadow_candidates: bool,
}

impl RunOptions {
    /// Defaults for replaying `log` with `workers` threads and no files.
    pub fn new(log: &Path, workers: usize) -> Self {
        Self {
            log: log.to_path_buf(),
            out_dir: None,
            workers,
            speed: 0.0,
            snapshot: false,
            progress: false,
            timely_args: Vec::new(),
            log_shadow_candidates: false,
        }
    }
}

/// Errors that stop a run (never caused by an event).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading the log or writing an output failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The timely cluster could not start or a worker failed.
    #[error("dataflow: {0}")]
    Dataflow(String),
    /// A Kafka client could not be made or used (live mode).
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// Output messages still undelivered when the flush timeout ran out (live mode).
    #[error("{0} output message(s) were still undelivered after kafka.flush_timeout_ms; the broker is unreachable?")]
    Undelivered(usize),
    /// The metrics endpoint could not listen.
    #[error("metrics endpoint {address}: {source}")]
    Metrics {
        /// The configured address.
        address: String,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// Final state of the engine, gathered from every worker.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Last tick of the log.
    pub last_tick: u64,
    /// The time at which vectors are evaluated: the end of the last tick.
    pub at_ts: i64,
    /// Indexed posts and their stored vectors.
    pub index: BTreeMap<u64, Vec<f32>>,
    /// Posts per logical shard.
    pub shard_members: BTreeMap<u32, Vec<u64>>,
    /// Every user's vectors at `at_ts`.
    pub users: BTreeMap<u64, UserVectors>,
    /// The trending pool: category → entries, best first.
    pub trending: BTreeMap<String, Vec<TrendEntry>>,
    /// Fresh posts.
    pub fresh: Vec<u64>,
    /// Popular posts with their decayed weighted engagement, best first.
    pub popular: Vec<(u64, f64)>,
    /// Co-engagement counts in the window: (anchor, item) → count.
    pub related: BTreeMap<(u64, u64), i64>,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunReport {
    /// Counters and figures.
    pub summary: Summary,
    /// Final state, when asked for.
    pub snapshot: Option<Snapshot>,
}

/// What one worker hands back.
struct WorkerResult {
    totals: WorkerTotals,
    snapshot: Option<Snapshot>,
    /// At worker 0 of a cluster of several processes: every worker's totals (its own included).
    cluster: Vec<WorkerTotals>,
}

/// What one worker counted, as the summary adds it up (shipped to worker 0 in a cluster).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct WorkerTotals {
    counters: Counters,
    trending_changes: u64,
    trending_pool: u64,
    fresh_pool: u64,
    popular: u64,
    error: Option<String>,
}

/// Shared between the workers of this process.
struct Shared {
    /// Outputs stop at this tick; unknown (u64::MAX) until every worker has read its share.
    horizon: Arc<AtomicU64>,
    /// Highest tick read by any worker so far.
    max_read: AtomicU64,
    /// Workers done reading.
    finished: AtomicUsize,
    /// Lines read by all workers (progress).
    lines: AtomicU64,
    /// The process's metrics.
    metrics: Arc<Metrics>,
}

/// Where the engine's input comes from and its outputs go.
enum Mode {
    /// The recorded log of the options; JSONL files in `out_dir`.
    File,
    /// The Kafka topics; the output topics.
    Live(Arc<Live>),
}

/// One output stream, written by worker 0: a JSONL file or a topic.
enum OutputSink {
    File(LineSink),
    Topic { producer: Arc<OutputProducer>, topic: String, live: Arc<Live> },
}

/// A record for an output: its key (user_id for responses), the request it answers, its place in
/// the stream's output order (exactly-once outputs, `delivered`), its JSON.
struct OutputLine {
    key: Option<u64>,
    request: Option<Position>,
    position: OutputPosition,
    json: String,
}

impl OutputLine {
    fn plain(position: OutputPosition, json: String) -> Self {
        Self { key: None, request: None, position, json }
    }
}

/// The `seq`-th record a stream writes for `tick`.
fn at_tick(tick: u64, seq: usize) -> OutputPosition {
    OutputPosition::Tick { tick, seq: seq as u64 }
}

type Writer = Rc<RefCell<Option<OutputSink>>>;

fn open_writer(mode: &Mode, dir: Option<&Path>, stream: &str, is_writer: bool) -> Result<Writer, FileError> {
    let sink = match (mode, dir) {
        _ if !is_writer => None,
        (Mode::Live(live), _) => Some(OutputSink::Topic {
            producer: live.producer.clone(),
            topic: live.config.topic(stream),
            live: live.clone(),
        }),
        (Mode::File, Some(dir)) => Some(OutputSink::File(LineSink::create(&dir.join(format!("{stream}.jsonl")))?)),
        (Mode::File, None) => None,
    };
    Ok(Rc::new(RefCell::new(sink)))
}

fn write_lines(writer: &Writer, error: &Rc<RefCell<Option<String>>>, lines: impl Iterator<Item = OutputLine>) {
    match writer.borrow_mut().as_mut() {
        None => {}
        Some(OutputSink::File(sink)) => {
            for line in lines {
                if let Err(e) = sink.write_line(&line.json) {
                    error.borrow_mut().get_or_insert(e.to_string());
                    return;
                }
            }
        }
        Some(OutputSink::Topic { producer, topic, live }) => {
            let partitions = live.output_partitions(topic);
            for line in lines {
                let key = line.key.map(|k| k.to_string());
                let key = key.as_deref().map(str::as_bytes);
                let partition = output_partition(key, partitions);
                let arrival = line.request.and_then(|p| live.take_arrival(&p));
                if live.delivered.skip(topic, partition, &line.position) {
                    live.metrics().output.with_label_values(&[topic, "skipped_delivered"]).inc();
                    continue;
                }
                if let Some(at) = arrival {
                    live.record_stage(RequestStage::Answered, at.elapsed());
                }
                let position = line.position.encode();
                producer.send_record(OutRecord {
                    topic,
                    partition: Some(partition),
                    key,
                    payload: line.json.as_bytes(),
                    position: Some(position.as_bytes()),
                    arrival,
                });
            }
        }
    }
}

fn flush_writer(writer: &Writer) -> Result<(), String> {
    match writer.borrow_mut().as_mut() {
        Some(OutputSink::File(sink)) => sink.flush().map_err(|e| e.to_string()),
        // The topics share one producer, flushed once when every worker is done.
        _ => Ok(()),
    }
}

fn trending_json(change: &TrendingChange) -> String {
    serde_json::json!({
        "ts": change.ts,
        "post_id": change.post_id,
        "category": change.category,
        "velocity_ratio": change.velocity_ratio,
        "recent": change.recent,
        "diff": change.diff,
    })
    .to_string()
}

/// Replays a log through the graph and returns its summary (and final state on request).
pub fn run_file(config: &Config, options: &RunOptions) -> Result<RunReport, RunError> {
    // Fail early, with one clear message, if the log cannot be read.
    LineReader::open(&options.log, 0, 1)?;
    if let Some(dir) = &options.out_dir {
        std::fs::create_dir_all(dir).map_err(|source| FileError::Write { path: dir.clone(), source })?;
    }
    run(config, options, Mode::File, Metrics::new())
}

/// Consumes the input topics live until `control` says stop, producing the
/// outputs to their topics; then answers what was read, flushes and returns the summary.
pub fn run_live(config: &Config, options: &RunOptions, control: LiveControl) -> Result<RunReport, RunError> {
    let metrics = control.metrics.clone();
    let live = Arc::new(Live::connect(config, control)?);
    // Model hot reload: a watcher validates new model files; workers swap at a tick boundary.
    let stop_watcher = Arc::new(AtomicBool::new(false));
    let checked = std::env::temp_dir().join(format!("feedflow-models-{}", std::process::id()));
    let watcher = scorer_settings(config).filter(|_| config.ranking.reload_check_ms > 0).map(|settings| {
        let clock = live.clock.clone();
        watch_model(
            settings,
            Duration::from_millis(config.ranking.reload_check_ms),
            checked.clone(),
            live.models.clone(),
            metrics.clone(),
            stop_watcher.clone(),
            move || clock.current_tick(),
        )
    });
    let report = run(config, options, Mode::Live(live.clone()), metrics);
    stop_watcher.store(true, Ordering::SeqCst);
    if let Some(watcher) = watcher {
        let _ = watcher.join();
        let _ = std::fs::remove_dir_all(&checked);
    }
    let undelivered = live.producer.flush(Duration::from_millis(config.kafka.flush_timeout_ms));
    let mut report = report?;
    if undelivered > 0 {
        return Err(RunError::Undelivered(undelivered));
    }
    report.summary.notes.push(live.output_summary());
    Ok(report)
}

/// Exits the process if the cluster is not connected within `limit_ms` (0: no limit) or `stop` is
/// set first (a signal). Once connected, the run stops through its own channels.
fn watch_peer_wait(
    connected: Arc<AtomicBool>,
    stop: Option<Arc<AtomicBool>>,
    process: usize,
    processes: usize,
    limit_ms: u64,
) {
    let started = Instant::now();
    std::thread::spawn(move || loop {
        if connected.load(Ordering::SeqCst) {
            return;
        }
        if stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            eprintln!("[feedflow] process {process} of {processes}: stopped while waiting for its peers");
            std::process::exit(130);
        }
        if limit_ms > 0 && started.elapsed() >= Duration::from_millis(limit_ms) {
            eprintln!(
                "[feedflow] error: process {process} of {processes} could not reach its peers within engine.peer_wait_ms \
                 ({limit_ms} ms); start every process of the cluster with the same -n and hostfile"
            );
            std::process::exit(2);
        }
        std::thread::sleep(Duration::from_millis(50));
    });
}

fn run(config: &Config, options: &RunOptions, mode: Mode, metrics: Arc<Metrics>) -> Result<RunReport, RunError> {
    let (timely_config, local_workers) = if options.timely_args.is_empty() {
        (timely::Config::process(options.workers.max(1)), options.workers.max(1))
    } else {
        let c = timely::Config::from_args(options.timely_args.clone().into_iter()).map_err(RunError::Dataflow)?;
        let threads = match &c.communication {
            timely::CommunicationConfig::Thread => 1,
            timely::CommunicationConfig::Process(n) => *n,
            timely::CommunicationConfig::ProcessBinary(n) => *n,
            timely::CommunicationConfig::Cluster { threads, .. } => *threads,
        };
        (c, threads)
    };
    let shared = Arc::new(Shared {
        horizon: Arc::new(AtomicU64::new(u64::MAX)),
        max_read: AtomicU64::new(0),
        finished: AtomicUsize::new(0),
        lines: AtomicU64::new(0),
        metrics,
    });
    let mode = Arc::new(mode);
    let config_popular_top_n = config.pools.popular_top_n;
    let config = Arc::new(config.clone());
    let options_shared = Arc::new(options.clone());
    let started = Instant::now();
    let results = Arc::new(Mutex::new(Vec::new()));
    let results_in = results.clone();
    // timely connects a cluster's processes inside `execute` and cannot be interrupted there:
    // a watchdog ends a wait that a signal stops or that runs past `engine.peer_wait_ms`.
    let connected = Arc::new(AtomicBool::new(false));
    if let timely::CommunicationConfig::Cluster { process, addresses, .. } = &timely_config.communication {
        let stop = match &*mode {
            Mode::Live(live) => Some(live.control.shutdown.clone()),
            Mode::File => None,
        };
        watch_peer_wait(connected.clone(), stop, *process, addresses.len(), config.engine.peer_wait_ms);
    }
    let guards = timely::execute(timely_config, move |worker| {
        connected.store(true, Ordering::SeqCst);
        let result = run_worker(worker, &config, &options_shared, &shared, local_workers, &mode);
        results_in.lock().expect("no worker panicked while holding the lock").push(result);
    })
    .map_err(RunError::Dataflow)?;
    for outcome in guards.join() {
        outcome.map_err(RunError::Dataflow)?;
    }
    let elapsed = started.elapsed();
    let results = std::mem::take(&mut *results.lock().expect("workers are done"));
    // A cluster's process 0 reports the whole cluster (its worker 0 gathered every worker's
    // totals); any other process, and a single process, reports its own workers.
    let cluster: Vec<&WorkerTotals> = results.iter().flat_map(|r| &r.cluster).collect();
    let totals: Vec<&WorkerTotals> =
        if cluster.is_empty() { results.iter().map(|r| &r.totals).collect() } else { cluster };
    let mut summary = Summary { workers: totals.len(), elapsed, ..Summary::default() };
    for r in totals {
        if let Some(e) = &r.error {
            return Err(RunError::Dataflow(e.clone()));
        }
        summary.counters.merge(&r.counters);
        summary.trending_changes += r.trending_changes;
        summary.trending_pool += r.trending_pool;
        summary.fresh_pool += r.fresh_pool;
        summary.popular += r.popular;
    }
    let mut snapshot: Option<Snapshot> = None;
    for r in results {
        if let Some(part) = r.snapshot {
            let whole = snapshot.get_or_insert_with(Snapshot::default);
            whole.last_tick = part.last_tick;
            whole.at_ts = part.at_ts;
            whole.index.extend(part.index);
            whole.shard_members.extend(part.shard_members);
            whole.users.extend(part.users);
            for (category, entries) in part.trending {
                whole.trending.entry(category).or_default().extend(entries);
            }
            whole.fresh.extend(part.fresh);
            whole.popular.extend(part.popular);
            whole.related.extend(part.related);
        }
    }
    summary.popular = summary.popular.min(config_popular_top_n as u64);
    if let Some(s) = snapshot.as_mut() {
        s.trending.values_mut().for_each(|v| v.sort());
        s.fresh.sort();
        s.popular.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        s.popular.truncate(config_popular_top_n);
        summary.last_tick = s.last_tick;
    }
    Ok(RunReport { summary, snapshot })
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    config: &Config,
    options: &RunOptions,
    shared: &Shared,
    local_workers: usize,
    mode: &Mode,
) -> WorkerResult {
    let index = worker.index();
    let peers = worker.peers();
    let metrics = shared.metrics.clone();
    let counters = Rc::new(RefCell::new(Counters::default()));
    let error: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    let registry = Rc::new(RefCell::new(Registry::new(config)));
    let users = Rc::new(RefCell::new(Users::new(config)));
    let mut ranker = Ranker::new(config, open_scorer(config));
    ranker.set_first_stage(open_first_stage(config));
    ranker.log_shadow_candidates = options.log_shadow_candidates;
    ranker.log_guard = index == 0;
    ranker.observe(metrics.clone(), if let Mode::Live(live) = mode { Some(live.clock.clone()) } else { None });
    if let Mode::Live(live) = mode {
        ranker.reload_from(live.models.clone());
    }
    let ranker = Rc::new(RefCell::new(ranker));
    let out_dir = options.out_dir.as_deref();
    let writers = (|| -> Result<[Writer; 4], FileError> {
        Ok([
            open_writer(mode, out_dir, "trending", index == 0)?,
            open_writer(mode, out_dir, "dlq", index == 0)?,
            open_writer(mode, out_dir, "responses", index == 0)?,
            open_writer(mode, out_dir, "impressions", index == 0)?,
        ])
    })();
    let [trending_writer, dlq_writer, responses_writer, impressions_writer] = match writers {
        Ok(w) => w,
        Err(e) => {
            *error.borrow_mut() = Some(e.to_string());
            std::array::from_fn(|_| Rc::new(RefCell::new(None)))
        }
    };
    let trending_changes = Rc::new(RefCell::new(0u64));

    let probe = ProbeHandle::new();
    let horizon = shared.horizon.clone();
    let dedupe_ticks = config.ticks(config.dedupe.horizon_ms);
    let tick_ms = config.engine.tick_ms;

    let main_dataflow = worker.next_dataflow_index();
    let (pool, fresh, mut events_in, mut dlq_in) = worker.dataflow::<u64, _, _>(|scope| {
        let dup_counters = counters.clone();
        let dup_metrics = metrics.clone();
        let (events_in, events) = TickedInput::new(&scope);
        let (dlq_in, dlq) = TickedInput::new(&scope);
        // Copies of an event share its post (or user), so deduplicating where
        // the registry runs catches them and spares an exchange.
        let shards = config.index.shards;
        let events = events.dedupe(
            "Dedupe",
            move |e: &Event| route_event(e, shards),
            |e: &Event| e.event_id.as_ref().map(|id| hash_bytes(id.as_bytes())),
            |e: &Event| (e.ts, e.position),
            SeenIds::new(dedupe_ticks, config.dedupe.max_ids_per_worker),
            move |e: &Event| {
                dup_counters.borrow_mut().duplicates += 1;
                dup_metrics.event(e.body.type_name(), "duplicate");
            },
        );
        // The user side joins engagements with uploads itself (every worker keeps
        // every upload's metadata). The model guard's tallies go to every worker's ranking
        // and user side, `delay_ms` later (model_guard.rs): the one edge back, and a long one,
        // so replays still rank many ticks per step; the user side picks the probes with it.
        let guard_delay = config.ticks(config.ranking.guard.delay_ms).max(1);
        let (guard_loop, guard_evidence) = scope.feedback::<Vec<RankInput>>(guard_delay);
        let (user_inputs, shard_events) = split_by_side(events, peers as u64);
        let user_inputs = user_inputs.concat(guard_evidence.clone().flat_map(|input| match input {
            RankInput::Guard(worker, tally) => Some(UserInput::Guard(worker, tally)),
            _ => None,
        }));
        let user_out = user_front(user_inputs, users.clone());
        // Contexts go to ranking (at this worker) and, as queries, to every worker's registry;
        // co-engagement pairs to the registry shard that keeps them.
        let (queries_and_pairs, rank_requests_in) = user_out.split2(
            "SplitUserOutput",
            move |o: UserOutput, registry_in: &mut Vec<ShardInput>, rank_in: &mut Vec<RankInput>| match o {
                UserOutput::Context(c) => {
                    registry_in.extend((0..peers as u64).map(|w| ShardInput::Query(w, c.clone())));
                    rank_in.push(RankInput::Request(c));
                }
                UserOutput::Pairs(shard, batch) => registry_in.push(ShardInput::Pairs(shard, batch)),
            },
        );
        let post_events = shard_events.concat(queries_and_pairs);
        let registry_out = post_registry(post_events, registry.clone(), config.index.shards);
        let (velocity, eligible, rank_rows) = registry_out.split3(
            "SplitRegistryOutput",
            |o: RegistryOutput,
             velocity: &mut Vec<Velocity>,
             eligible: &mut Vec<(PostInfo, u64, isize)>,
             rows: &mut Vec<RankInput>| match o {
                RegistryOutput::Velocity(v) => velocity.push(v),
                RegistryOutput::Eligibility(info, tick, diff) => eligible.push((info, tick, diff)),
                RegistryOutput::Candidates(p) => rows.push(RankInput::Rows(p)),
            },
        );
        let eligible = eligible.as_collection();

        let pool = trending_pool(config, velocity, eligible.clone());
        let fresh = fresh_pool(config, eligible.clone());

        // Ranking at the user's worker: contexts, every worker's rows, the trending pool (kept by
        // every worker) and the model guard's tallies.
        let rank_inputs = rank_requests_in
            .concat(rank_rows)
            .concat(pool.inner.clone().flat_map(move |((category, entry), time, diff)| {
                (0..peers as u64).map(move |w| RankInput::Trend(w, category.clone(), entry.clone(), time, diff))
            }))
            .concat(guard_evidence);
        let (served, tallies) = rank_requests(rank_inputs, ranker.clone(), users.clone()).split2(
            "SplitRankOutput",
            move |o: RankOutput, served: &mut Vec<Served>, tallies: &mut Vec<RankInput>| match o {
                RankOutput::Served(s) => served.push(s),
                RankOutput::Guard(t) => tallies.extend((0..peers as u64).map(|w| RankInput::Guard(w, t))),
            },
        );
        tallies.connect_loop(guard_loop);
        let writers = (responses_writer.clone(), impressions_writer.clone());
        let sink_error = error.clone();
        served
            .tick_batch(
                "ResponseSink",
                |_| 0,
                move |tick, mut batch: Vec<Served>, _out: &mut Vec<()>| {
                    batch.sort_by_key(|s| (s.ts, s.position));
                    let responses = batch.iter().enumerate().map(|(seq, s)| OutputLine {
                        key: Some(s.user_id),
                        request: Some(s.position),
                        position: at_tick(tick, seq),
                        json: s.response.clone(),
                    });
                    write_lines(&writers.0, &sink_error, responses);
                    let impressions = batch.iter().filter_map(|s| Some((s.user_id, s.impression.clone()?)));
                    let impressions = impressions.enumerate().map(|(seq, (user, json))| OutputLine {
                        key: Some(user),
                        request: None,
                        position: at_tick(tick, seq),
                        json,
                    });
                    write_lines(&writers.1, &sink_error, impressions);
                },
            )
            .probe_with(&probe);

        // The trending change stream, gathered on worker 0 and written in a fixed order.
        let writer = trending_writer.clone();
        let sink_error = error.clone();
        let written = trending_changes.clone();
        let sink_horizon = horizon.clone();
        let pool_metrics = metrics.clone();
        pool.clone()
            .inner
            .tick_batch_by(
                "TrendingSink",
                |_| 0,
                |(_, t, _)| *t,
                move |tick, batch, _out: &mut Vec<()>| {
                    if tick > sink_horizon.load(Ordering::SeqCst) {
                        return;
                    }
                    let mut net: BTreeMap<(u64, String, TrendEntry), isize> = BTreeMap::new();
                    for ((category, entry), _, diff) in batch {
                        *net.entry((entry.post_id, category, entry)).or_default() += diff;
                    }
                    let mut changes: Vec<_> = net.into_iter().filter(|(_, d)| *d != 0).collect();
                    changes.sort_by(|a, b| (a.0 .0, a.1, &a.0 .2).cmp(&(b.0 .0, b.1, &b.0 .2)));
                    *written.borrow_mut() += changes.len() as u64;
                    pool_metrics.trending_pool.add(changes.iter().map(|(_, d)| *d as i64).sum());
                    let lines = changes.into_iter().enumerate().map(|(seq, ((post_id, category, entry), diff))| {
                        OutputLine::plain(
                            at_tick(tick, seq),
                            trending_json(&TrendingChange {
                                ts: ((tick + 1) * tick_ms) as i64,
                                post_id,
                                category,
                                velocity_ratio: entry.ratio.value(),
                                recent: entry.recent_milli as f64 / 1000.0,
                                diff: diff as i64,
                            }),
                        )
                    });
                    write_lines(&writer, &sink_error, lines);
                },
            )
            .probe_with(&probe);

        let writer = dlq_writer.clone();
        let sink_error = error.clone();
        dlq.tick_batch(
            "DlqSink",
            |_| 0,
            move |_tick, mut batch: Vec<DlqRecord>, _out: &mut Vec<()>| {
                batch.sort();
                // A rejected message's tick depends on when it arrived; its input position does not.
                let lines = batch.iter().map(|r| {
                    let Position { source, partition, offset } = r.position;
                    OutputLine::plain(OutputPosition::Input { source, partition, offset }, r.to_json())
                });
                write_lines(&writer, &sink_error, lines);
            },
        )
        .probe_with(&probe);

        fresh.inner.clone().probe_with(&probe);
        let pool = snapshot(pool, horizon.clone());
        let fresh = snapshot(fresh, horizon.clone());
        (pool, fresh, events_in, dlq_in)
    });

    // Drive the input from the log or the topics.
    let drive = match mode {
        Mode::File => {
            drive_file(worker, config, options, shared, &counters, &mut events_in, &mut dlq_in, &probe, index, peers)
                .map_err(RunError::from)
        }
        Mode::Live(live) => drive_kafka(
            worker,
            live,
            options,
            &counters,
            &registry,
            &mut events_in,
            &mut dlq_in,
            &probe,
            &shared.lines,
            local_workers,
        ),
    };
    let last_tick = match drive {
        Ok(t) => t,
        Err(e) => {
            error.borrow_mut().get_or_insert(e.to_string());
            0
        }
    };
    // Outputs stop at the highest tick any worker read, whatever the worker
    // count: each worker adds its last tick, closes its inputs, waits (stepping)
    // for the others, and only then publishes the horizon.
    shared.max_read.fetch_max(last_tick, Ordering::SeqCst);
    shared.finished.fetch_add(1, Ordering::SeqCst);
    // This worker reads nothing more: its inputs stop holding time back, so that the others,
    // still reading (and waiting for the graph to come within `MAX_LAG_TICKS` of their input),
    // are not left waiting for it.
    events_in.close();
    dlq_in.close();
    while shared.finished.load(Ordering::SeqCst) < local_workers {
        worker.step_or_park(Some(Duration::from_millis(1)));
    }
    let horizon = shared.max_read.load(Ordering::SeqCst);
    shared.horizon.store(horizon, Ordering::SeqCst);
    // Every tick up to the horizon is computed, and the run stops there: outputs end at the horizon, and what
    // the windows would still do after it (expiries up to `baseline_window` later, each at its
    // own tick) is work for nothing, a long one with short ticks.
    let end = horizon.saturating_add(1);
    while probe.less_than(&end) {
        worker.step_or_park(None);
    }
    worker.drop_dataflow(main_dataflow);

    for writer in [&trending_writer, &dlq_writer, &responses_writer, &impressions_writer] {
        if let Err(e) = flush_writer(writer) {
            error.borrow_mut().get_or_insert(e);
        }
    }
    // The popular list is the registry's own decayed popularity (a post's engagements and its
    // recommendability live on the same worker), as of the end of the last tick.
    let reg = registry.borrow();
    let users_state = users.borrow();
    let users = &users_state.interests;
    let rank = ranker.borrow();
    let mut c = counters.borrow().clone();
    c.rank = rank.stats.clone();
    c.model = rank.model_id();
    c.fallback_reason = rank.fallback_reason().map(str::to_string);
    c.first_stage = rank.first_stage_note();
    c.registry = reg.stats.clone();
    c.index_size = reg.index_len() as u64;
    c.users = users.users.len() as u64;
    let popular_list: Vec<(u64, f64)> = reg
        .serving
        .popular
        .best(horizon)
        .filter(|(post, _)| reg.posts.get(post).is_some_and(PostState::recommendable))
        .take(config.pools.popular_top_n)
        .collect();
    let snapshot = options.snapshot.then(|| {
        let at_ts = ((horizon + 1) * tick_ms) as i64;
        collect_snapshot(&reg, users, &pool, &fresh, popular_list.clone(), horizon, at_ts)
    });
    let totals = WorkerTotals {
        counters: c,
        trending_changes: *trending_changes.borrow(),
        trending_pool: pool.borrow().len() as u64,
        fresh_pool: fresh.borrow().len() as u64,
        popular: popular_list.len() as u64,
        error: error.borrow().clone(),
    };
    drop((reg, users_state, rank));
    let cluster = if peers > local_workers { gather_at_first(worker, totals.clone()) } else { Vec::new() };
    WorkerResult { totals, snapshot, cluster }
}

/// Every worker's `part`, gathered at worker 0 of the cluster (empty at the others): a small
/// dataflow built after the main one, in the same order on every worker.
fn gather_at_first<T: timely::ExchangeData>(worker: &mut timely::worker::Worker, part: T) -> Vec<T> {
    let gathered = Rc::new(RefCell::new(Vec::new()));
    let sink = gathered.clone();
    worker.dataflow::<u64, _, _>(move |scope| {
        vec![part].to_stream(scope).container::<Vec<T>>().sink(
            exchange(|_: &T| 0),
            "Gather",
            move |(input, _frontier)| {
                input.for_each(|_, data| sink.borrow_mut().append(data));
            },
        );
    });
    while worker.step_or_park(None) {}
    gathered.take()
}

fn collect_snapshot(
    reg: &Registry,
    users: &Interests,
    pool: &Contents<(String, TrendEntry)>,
    fresh: &Contents<PostInfo>,
    popular: Vec<(u64, f64)>,
    last_tick: u64,
    at_ts: i64,
) -> Snapshot {
    let mut s = Snapshot { last_tick, at_ts, ..Snapshot::default() };
    for (number, shard) in &reg.shards {
        let mut members: Vec<u64> = reg.posts.keys().copied().filter(|p| shard.contains(*p)).collect();
        members.sort();
        for p in &members {
            if let Some(v) = shard.get(*p) {
                s.index.insert(*p, v);
            }
        }
        s.shard_members.insert(*number, members);
    }
    for user_id in users.users.keys() {
        if let Some(v) = users.vectors_at(*user_id, at_ts) {
            s.users.insert(*user_id, v);
        }
    }
    for ((category, entry), _) in pool.borrow().iter() {
        s.trending.entry(category.clone()).or_default().push(entry.clone());
    }
    s.fresh = fresh.borrow().keys().map(|p| p.post_id).collect();
    s.popular = popular;
    for counts in reg.serving.related.values() {
        s.related.extend(counts.counts().into_iter().map(|(anchor, item, n)| ((anchor, item), n)));
    }
    s
}

/// Sends each deduplicated event to the sides that need it, in one operator: requests and
/// engagements to the user side, uploads' metadata to every worker's user side, uploads,
/// engagements and moderation to the post registry. (A partition by type followed by a map,
/// clone and concat per stream cost a dozen operators, each run once per tick.) The event id
/// has done its work once deduplicated; dropping it spares a string copy further on.
fn split_by_side<'scope>(
    events: StreamVec<'scope, u64, Event>,
    peers: u64,
) -> (StreamVec<'scope, u64, UserInput>, StreamVec<'scope, u64, ShardInput>) {
    events.split2("SplitBySide", move |mut event: Event, user: &mut Vec<UserInput>, shard: &mut Vec<ShardInput>| {
        event.event_id = None;
        match &event.body {
            EventBody::Request(_) => user.push(UserInput::Request(event)),
            EventBody::Engagement(_) => {
                user.push(UserInput::Engagement(event.clone()));
                shard.push(ShardInput::Event(event));
            }
            EventBody::Upload(_) => {
                if let Some(meta) = PostMeta::of(&event) {
                    user.extend((0..peers).map(|w| UserInput::Post(w, meta.clone())));
                }
                shard.push(ShardInput::Event(event));
            }
            EventBody::Moderation(_) => shard.push(ShardInput::Event(event)),
        }
    })
}

/// In an as-fast-as-possible replay the input frontier advances this many ticks at a time.
const REPLAY_STEP_TICKS: u64 = 600;
/// How far the input may run ahead of the slowest stage, in ticks.
const MAX_LAG_TICKS: u64 = 3600;

/// Reads this worker's share of the log into the inputs; returns the last tick read.
#[allow(clippy::too_many_arguments)]
fn drive_file(
    worker: &mut timely::worker::Worker,
    config: &Config,
    options: &RunOptions,
    shared: &Shared,
    counters: &Rc<RefCell<Counters>>,
    events_in: &mut TickedInput<Event>,
    dlq_in: &mut TickedInput<DlqRecord>,
    probe: &ProbeHandle<u64>,
    index: usize,
    peers: usize,
) -> Result<u64, FileError> {
    let limits = DecodeLimits::from_config(config);
    let tick_ms = config.engine.tick_ms;
    let lateness = config.ticks(config.engine.allowed_lateness_ms);
    let source = format!("file:{}", options.log.display());
    let mut reader = LineReader::open(&options.log, index, peers)?;
    let total_bytes = reader.file_len();
    let mut pacer = Pacer::new(options.speed);
    let mut max_tick = 0u64;
    let mut frontier = 0u64;
    // The input frontier moves in steps of `step` ticks when replaying as fast
    // as possible (fewer, larger batches downstream; same results), tick by
    // tick when paced.
    let step = if options.speed > 0.0 { 1 } else { REPLAY_STEP_TICKS };
    let mut since_step = 0usize;
    let progress_every = Duration::from_millis(config.input.progress_interval_ms);
    let started = Instant::now();
    let mut last_progress = Instant::now();
    // Lines and events read since the shared counts were last updated: every worker adding to
    // one atomic per line would bounce its cache line between cores.
    let mut unreported_lines = 0u64;
    let mut unreported_events: BTreeMap<(&'static str, bool), u64> = BTreeMap::new();
    let report = |lines: &mut u64, events: &mut BTreeMap<(&'static str, bool), u64>| {
        shared.lines.fetch_add(std::mem::take(lines), Ordering::Relaxed);
        for ((type_name, late), n) in std::mem::take(events) {
            shared.metrics.events_by(type_name, if late { "late" } else { "applied" }, n);
        }
    };
    // A rejected line is written to the DLQ at the highest tick of the log's lines up to it,
    // *every* reader's lines (their `ts` peeked at, not decoded): the same tick whatever the
    // split, so the DLQ file is the same for any worker or process count.
    let log_tick = std::cell::Cell::new(0u64);
    let mut peek = |bytes: &[u8]| {
        if let Some(ts) = peek_ts(bytes) {
            log_tick.set(log_tick.get().max(tick_of(ts, tick_ms)));
        }
    };
    while let Some((line_no, bytes)) = reader.next_line_seeing(&mut peek)? {
        peek(bytes);
        let position = Position { source: 0, partition: 0, offset: line_no };
        counters.borrow_mut().lines += 1;
        unreported_lines += 1;
        match decode(bytes, position, &limits) {
            Ok(event) => {
                pacer.wait_for(event.ts);
                let tick = tick_of(event.ts, tick_ms);
                let type_name = event.body.type_name();
                let effective = counters.borrow_mut().admit_unreported(type_name, tick, frontier);
                *unreported_events.entry((type_name, effective > tick)).or_default() += 1;
                if tick > max_tick {
                    max_tick = tick;
                    let next = max_tick.saturating_sub(lateness);
                    if next > frontier {
                        frontier = next;
                        if frontier >= events_in.frontier().unwrap_or(0) + step {
                            events_in.advance_to(frontier);
                            dlq_in.advance_to(frontier);
                            while probe.less_than(&frontier.saturating_sub(MAX_LAG_TICKS)) {
                                worker.step();
                            }
                        }
                    }
                }
                events_in.push(effective, event);
            }
            Err(rejection) => {
                counters.borrow_mut().reject(rejection.reason, &shared.metrics);
                dlq_in.push(log_tick.get().max(frontier), DlqRecord::new(&source, position, rejection, bytes));
            }
        }
        since_step += 1;
        if since_step >= 1024 {
            since_step = 0;
            report(&mut unreported_lines, &mut unreported_events);
            worker.step();
            if options.progress && index == 0 && !progress_every.is_zero() && last_progress.elapsed() >= progress_every
            {
                last_progress = Instant::now();
                let lines = shared.lines.load(Ordering::Relaxed);
                let share = reader.bytes_read() as f64 / total_bytes.max(1) as f64;
                eprintln!(
                    "[feedflow] {:>5.1}%  {} messages  {:.0}/s  tick {}",
                    100.0 * share,
                    lines,
                    lines as f64 / started.elapsed().as_secs_f64().max(1e-9),
                    frontier
                );
            }
        }
    }
    report(&mut unreported_lines, &mut unreported_events);
    events_in.flush();
    dlq_in.flush();
    Ok(max_tick)
}
