//! Live mode's input: each worker consumes its Kafka partitions and feeds the graph at event time.
//!
//! Partition `p` of every input topic is read by worker `p mod workers`
//! (assigned explicitly: no consumer-group rebalancing inside the dataflow),
//! from the start of the topic by default so the state is rebuilt from its
//! history. Each message is decoded at the edge: a valid event enters at its
//! tick, a rejected one goes to the DLQ with its topic, partition and offset.
//! The input frontier follows the [`LiveClock`] shared by the process's workers.

use crate::delivered::Delivered;
use crate::live::{LiveClock, WallClock};
use crate::metrics::Metrics;
use crate::model::tick_of;
use crate::posts::Registry;
use crate::runner::{RunError, RunOptions};
use crate::stats::Counters;
use feedflow_connectors::config::Config;
use feedflow_connectors::event::{Event, EventBody, Position};
use feedflow_connectors::kafka::{
    assign, assignment, input_consumer, partition_count, ErrorLog, InputContext, KafkaError, LagTable, OutputProducer,
};
use feedflow_connectors::kafka_config::{KafkaConfig, INPUT_TOPICS};
use feedflow_connectors::{decode, DecodeLimits, DlqRecord};
use feedflow_operators::ticked_input::TickedInput;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timely::dataflow::ProbeHandle;

/// How a live run is stopped and observed.
#[derive(Clone)]
pub struct LiveControl {
    /// Set (by a signal handler or a test) to stop consuming; what was read is still answered.
    pub shutdown: Arc<AtomicBool>,
    /// Stop by itself once every partition has been idle this long (draining a topic; tests).
    pub exit_when_idle: Option<Duration>,
    /// The process's metrics (serve them with [`crate::metrics::serve`]).
    pub metrics: Arc<Metrics>,
}

/// What the workers of a live run share.
pub struct Live {
    pub(crate) config: KafkaConfig,
    engine: Config,
    pub(crate) clock: Arc<LiveClock>,
    pub(crate) producer: Arc<OutputProducer>,
    /// Partitions of uploads, engagements, requests.
    counts: [usize; 3],
    lag: Arc<LagTable>,
    errors: Arc<ErrorLog>,
    /// When each request still unanswered was read (latency is measured from there).
    arrivals: Mutex<HashMap<Position, Instant>>,
    /// Workers that have registered their partitions with the clock.
    registered: AtomicUsize,
    /// Models validated by the hot-reload watcher, swapped in by every worker's ranker.
    pub(crate) models: Arc<crate::model_reload::ModelWatch>,
    pub(crate) control: LiveControl,
    /// Request latencies (µs, arrival → delivery report) for the summary.
    latencies_us: Arc<Mutex<Vec<u32>>>,
    /// Stage latencies (µs) for the summary, in the order of [`RequestStage`].
    stages_us: Mutex<[Vec<u32>; 2]>,
    /// Partitions of each output topic.
    output_partitions: BTreeMap<String, usize>,
    /// What the output topics already held at start (exactly-once outputs; `delivered`).
    pub(crate) delivered: Delivered,
}

/// A point on a request's way from the consumer to the producer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RequestStage {
    /// Its tick closed at the input (timed for the earliest request of each tick).
    InputClosed = 0,
    /// Its response was handed to the producer.
    Answered = 1,
}

impl RequestStage {
    fn label(self) -> &'static str {
        match self {
            RequestStage::InputClosed => "input_closed",
            RequestStage::Answered => "answered",
        }
    }
}

/// How long to keep trying to reach the broker at start before giving up.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);
/// How often metrics are refreshed from the clients and progress is printed.
const SYNC_EVERY: Duration = Duration::from_millis(500);
/// Arrival times older than this belong to requests answered in another process; forget them.
const ARRIVAL_MEMORY: Duration = Duration::from_secs(120);
/// How far the input may run ahead of the slowest stage, in ticks.
const MAX_LAG_TICKS: u64 = 3600;
/// At most this many messages are read from one consumer before the dataflow steps.
const POLL_BATCH: usize = 1024;

impl Live {
    /// Checks that every topic exists (waiting up to 30 s for the broker) and makes the producer.
    pub fn connect(config: &Config, control: LiveControl) -> Result<Self, RunError> {
        let kafka = &config.kafka;
        let errors = Arc::new(ErrorLog::default());
        let lag = Arc::new(LagTable::default());
        let metadata = input_consumer(kafka, lag.clone(), errors.clone())?;
        let started = Instant::now();
        let mut counts = [0usize; 3];
        let mut output_partitions = BTreeMap::new();
        for (topic, _) in kafka.all_topics() {
            let n = loop {
                match partition_count(&metadata, &topic, Duration::from_secs(5)) {
                    Ok(n) => break n,
                    Err(e) if e.retryable() && started.elapsed() < CONNECT_PATIENCE => {
                        eprintln!("[feedflow] waiting for the broker at {}: {e}", kafka.bootstrap_servers);
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            match INPUT_TOPICS.iter().position(|r| kafka.topic(r) == topic) {
                Some(i) => counts[i] = n,
                None => {
                    output_partitions.insert(topic, n);
                }
            }
        }
        drop(metadata);
        let delivered = if kafka.skip_delivered_outputs {
            let dlq = kafka.topic("dlq");
            let outputs: Vec<_> = output_partitions.iter().map(|(t, n)| (t.clone(), *n, *t == dlq)).collect();
            let delivered = Delivered::read(kafka, &outputs)?;
            for line in delivered.describe() {
                eprintln!("[feedflow] already delivered by an earlier run, not sent again: {line}");
            }
            delivered
        } else {
            Delivered::none()
        };
        let metrics = control.metrics.clone();
        let latencies_us = Arc::new(Mutex::new(Vec::new()));
        let latencies = latencies_us.clone();
        let on_delivered = Box::new(move |topic: &str, ok: bool, arrival: Option<Instant>| {
            metrics.output.with_label_values(&[topic, if ok { "delivered" } else { "failed" }]).inc();
            if let Some(at) = arrival {
                let elapsed = at.elapsed();
                metrics.request_latency.observe(elapsed.as_secs_f64());
                let us = elapsed.as_micros().min(u32::MAX as u128) as u32;
                latencies.lock().unwrap_or_else(|e| e.into_inner()).push(us);
            }
        });
        let producer = Arc::new(OutputProducer::new(kafka, errors.clone(), Some(on_delivered))?);
        let mut clock = LiveClock::new(
            Duration::from_millis(kafka.idle_ms),
            Duration::from_millis(kafka.max_request_wait_ms),
            config.ticks(config.engine.allowed_lateness_ms),
        );
        if kafka.wall_clock_lateness_ms > 0 {
            clock = clock.with_wall_clock(WallClock::system(
                Duration::from_millis(kafka.wall_clock_lateness_ms),
                config.engine.tick_ms,
            ));
        }
        Ok(Self {
            config: kafka.clone(),
            engine: config.clone(),
            clock: Arc::new(clock),
            producer,
            counts,
            lag,
            errors,
            arrivals: Mutex::new(HashMap::new()),
            registered: AtomicUsize::new(0),
            models: crate::model_reload::ModelWatch::new(),
            control,
            latencies_us,
            stages_us: Mutex::new([Vec::new(), Vec::new()]),
            output_partitions,
            delivered,
        })
    }

    /// The summary line of the outputs (after a complete flush): deliveries, resends, request latency.
    pub(crate) fn output_summary(&self) -> String {
        let c = self.producer.counters();
        let mut l = self.latencies_us.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let [mut closed, mut answered] = self.stages_us.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let pct = |l: &mut Vec<u32>, q: f64| {
            l.sort_unstable();
            if l.is_empty() {
                0.0
            } else {
                l[((l.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
            }
        };
        format!(
            "  outputs   {} messages delivered{}, {} failed deliveries sent again; request latency (arrival → delivered) P50 {:.1} ms, P99 {:.1} ms over {} requests (tick closed at the input P50 {:.1} ms, answered P50 {:.1} ms)",
            c.delivered.load(Ordering::Relaxed),
            match self.delivered.skipped.load(Ordering::Relaxed) {
                0 => String::new(),
                n => format!(" ({n} skipped: an earlier run had delivered them)"),
            },
            c.failed.load(Ordering::Relaxed),
            pct(&mut l, 0.5),
            pct(&mut l, 0.99),
            l.len(),
            pct(&mut closed, 0.5),
            pct(&mut answered, 0.5),
        )
    }

    /// The number of partitions of an output topic.
    pub(crate) fn output_partitions(&self, topic: &str) -> usize {
        self.output_partitions.get(topic).copied().unwrap_or(1)
    }

    /// The arrival time of the request read at `position`, forgotten once taken.
    pub(crate) fn take_arrival(&self, position: &Position) -> Option<Instant> {
        self.arrivals.lock().unwrap_or_else(|e| e.into_inner()).remove(position)
    }

    /// Records how long after its arrival a request reached `stage`.
    pub(crate) fn record_stage(&self, stage: RequestStage, since_arrival: Duration) {
        self.metrics().request_stage.with_label_values(&[stage.label()]).observe(since_arrival.as_secs_f64());
        let us = since_arrival.as_micros().min(u32::MAX as u128) as u32;
        self.stages_us.lock().unwrap_or_else(|e| e.into_inner())[stage as usize].push(us);
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.control.metrics
    }
}

/// One partition of an input topic, read through its own queue so that its end is reported unambiguously.
struct PartitionReader {
    source: u32,
    partition: i32,
    topic: String,
    dlq_source: String,
    queue: PartitionQueue<InputContext>,
}

/// A worker's consumer: one client (one fetch session with the broker) and a queue per assigned partition.
struct WorkerConsumer {
    consumer: Arc<BaseConsumer<InputContext>>,
    partitions: Vec<PartitionReader>,
}

/// Consumes this worker's partitions until stopped; returns the newest tick read in the process.
#[allow(clippy::too_many_arguments)]
pub(crate) fn drive_kafka(
    worker: &mut timely::worker::Worker,
    live: &Live,
    options: &RunOptions,
    counters: &Rc<RefCell<Counters>>,
    registry: &Rc<RefCell<Registry>>,
    events_in: &mut TickedInput<Event>,
    dlq_in: &mut TickedInput<DlqRecord>,
    probe: &ProbeHandle<u64>,
    lines: &AtomicU64,
    local_workers: usize,
) -> Result<u64, RunError> {
    let index = worker.index();
    let kafka = &live.config;
    let config = &live.engine;
    let tick_ms = config.engine.tick_ms;
    let limits = DecodeLimits::from_config(config);
    let mine = assignment(kafka, &live.counts, index, worker.peers());
    let consumer = open_consumer(live, &mine);
    // Every local worker registers its partitions before any of them reads the clock;
    // one that cannot stops the others.
    live.registered.fetch_add(1, Ordering::SeqCst);
    let consumer = consumer.inspect_err(|_| live.control.shutdown.store(true, Ordering::SeqCst))?;
    while live.registered.load(Ordering::SeqCst) < local_workers {
        worker.step_or_park(Some(Duration::from_millis(1)));
    }
    if index == 0 {
        let parts: usize = live.counts.iter().sum();
        eprintln!(
            "[feedflow] consuming {} input partition(s) from {} on {} worker(s); outputs to {}, {}, {}, {}",
            parts,
            kafka.bootstrap_servers,
            worker.peers(),
            kafka.topic("responses"),
            kafka.topic("trending"),
            kafka.topic("impressions"),
            kafka.topic("dlq"),
        );
    }

    let metrics = live.metrics();
    let poll_wait = Duration::from_millis(kafka.poll_ms);
    let progress_every = Duration::from_millis(config.input.progress_interval_ms);
    let started = Instant::now();
    let mut last_sync = Instant::now();
    let mut last_progress = Instant::now();
    let mut uploads: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut errors_seen = 0u64;
    loop {
        let now = Instant::now();
        let stop = live.control.shutdown.load(Ordering::SeqCst)
            || live
                .control
                .exit_when_idle
                .is_some_and(|d| live.clock.idle_for(now) >= d && !probe.less_than(&events_in.frontier().unwrap_or(0)));
        if stop {
            break;
        }
        let mut read = 0usize;
        if let Some(c) = &consumer {
            for r in &c.partitions {
                for _ in 0..POLL_BATCH {
                    match r.queue.poll(Duration::ZERO) {
                        None => break,
                        Some(Ok(message)) => {
                            read += 1;
                            let position = Position {
                                source: r.source,
                                partition: r.partition as u32,
                                offset: message.offset().max(0) as u64,
                            };
                            let bytes = message.payload().unwrap_or_default();
                            accept(live, r, position, bytes, counters, events_in, dlq_in, &limits, &mut uploads);
                        }
                        Some(Err(RdError::PartitionEOF(_))) => {
                            live.clock.reached_end(r.source, r.partition, Instant::now())
                        }
                        Some(Err(e)) => live.errors.report("consumer", format!("{e:?}"), &format!("{}: {e}", r.topic)),
                    }
                }
            }
            // Serves the client's callbacks (statistics, errors); messages come through the partition queues.
            while let Some(event) = c.consumer.poll(Duration::ZERO) {
                if let Err(e) = event {
                    live.errors.report("consumer", format!("{e:?}"), &e.to_string());
                }
            }
        }
        lines.fetch_add(read as u64, Ordering::Relaxed);
        events_in.flush();
        dlq_in.flush();
        let frontier = live.clock.frontier(Instant::now());
        for waited in live.clock.take_input_waits() {
            live.record_stage(RequestStage::InputClosed, waited);
        }
        if frontier.tick > events_in.frontier().unwrap_or(0) {
            events_in.advance_to(frontier.tick);
            dlq_in.advance_to(frontier.tick);
        }
        let input_frontier = events_in.frontier().unwrap_or(0);
        while probe.less_than(&input_frontier.saturating_sub(MAX_LAG_TICKS)) {
            worker.step();
        }
        // Nothing read: step, or park until the graph has work (timely wakes a parked
        // worker when data or progress arrives) or the next poll is due. Spinning here
        // would burn a core while the frontier waits for partitions.
        if read == 0 {
            worker.step_or_park(Some(poll_wait));
        } else {
            worker.step();
        }
        while let Some((tick, at)) = uploads.front() {
            if probe.less_than(&(tick + 1)) {
                break;
            }
            metrics.insert_to_searchable.observe(at.elapsed().as_secs_f64());
            uploads.pop_front();
        }
        if last_sync.elapsed() >= SYNC_EVERY {
            last_sync = Instant::now();
            metrics.index_size.with_label_values(&[&index.to_string()]).set(registry.borrow().index_len() as i64);
            if index == 0 {
                let processed = probe.with_frontier(|f| f.first().copied()).unwrap_or(frontier.tick);
                sync_shared_metrics(live, frontier, processed, tick_ms, &mut errors_seen);
            }
            if options.progress && index == 0 && !progress_every.is_zero() && last_progress.elapsed() >= progress_every
            {
                last_progress = Instant::now();
                let total = lines.load(Ordering::Relaxed);
                let lag: i64 = live.lag.lock().unwrap_or_else(|e| e.into_inner()).values().sum();
                // How far the graph trails the input frontier: the wait a request read now has ahead.
                let processed = probe.with_frontier(|f| f.first().copied()).unwrap_or(frontier.tick);
                eprintln!(
                    "[feedflow] live  {} messages  {:.0}/s  frontier {}  processed {} ms behind  consumer lag {}  responses delivered {}",
                    total,
                    total as f64 / started.elapsed().as_secs_f64().max(1e-9),
                    frontier.tick.saturating_mul(tick_ms),
                    frontier.tick.saturating_sub(processed).saturating_mul(tick_ms),
                    lag,
                    live.producer.counters().delivered.load(Ordering::Relaxed),
                );
            }
        }
    }
    events_in.flush();
    dlq_in.flush();
    Ok(live.clock.frontier(Instant::now()).newest.unwrap_or(0))
}

/// This worker's consumer, assigned, with its partitions registered on the clock.
fn open_consumer(live: &Live, mine: &[(u32, String, i32)]) -> Result<Option<WorkerConsumer>, KafkaError> {
    if mine.is_empty() {
        return Ok(None);
    }
    let consumer = Arc::new(input_consumer(&live.config, live.lag.clone(), live.errors.clone())?);
    assign(&consumer, mine, live.config.start_from)?;
    let now = Instant::now();
    let mut partitions = Vec::new();
    for (source, topic, p) in mine {
        let queue = consumer
            .split_partition_queue(topic, *p)
            .ok_or_else(|| KafkaError::Config(format!("cannot read partition {p} of {topic} through its own queue")))?;
        live.clock.add_partition(*source, *p, now);
        partitions.push(PartitionReader {
            source: *source,
            partition: *p,
            topic: topic.clone(),
            dlq_source: format!("kafka:{topic}"),
            queue,
        });
    }
    Ok(Some(WorkerConsumer { consumer, partitions }))
}

/// Decodes one message and feeds it to the graph (or the DLQ).
#[allow(clippy::too_many_arguments)]
fn accept(
    live: &Live,
    from: &PartitionReader,
    position: Position,
    bytes: &[u8],
    counters: &Rc<RefCell<Counters>>,
    events_in: &mut TickedInput<Event>,
    dlq_in: &mut TickedInput<DlqRecord>,
    limits: &DecodeLimits,
    uploads: &mut VecDeque<(u64, Instant)>,
) {
    let now = Instant::now();
    let frontier = events_in.frontier().unwrap_or(0);
    let metrics = live.metrics();
    let mut c = counters.borrow_mut();
    c.lines += 1;
    match decode(bytes, position, limits) {
        Ok(event) => {
            let tick = tick_of(event.ts, live.engine.engine.tick_ms);
            live.clock.observe(from.source, from.partition, Some(tick), now);
            let at = c.admit(event.body.type_name(), tick, frontier, metrics);
            if at > tick {
                live.clock.late_event(tick, at);
            }
            match &event.body {
                EventBody::Request(_) => {
                    live.arrivals.lock().unwrap_or_else(|e| e.into_inner()).insert(position, now);
                    live.clock.request_read(at, now);
                }
                EventBody::Upload(_) => uploads.push_back((at, now)),
                _ => {}
            }
            events_in.push(at, event);
        }
        Err(rejection) => {
            live.clock.observe(from.source, from.partition, None, now);
            c.reject(rejection.reason, metrics);
            dlq_in.push(frontier, DlqRecord::new(&from.dlq_source, position, rejection, bytes));
        }
    }
}

/// Copies the clients' figures into the metrics (worker 0, every [`SYNC_EVERY`]).
fn sync_shared_metrics(
    live: &Live,
    frontier: crate::live::Frontier,
    processed: u64,
    tick_ms: u64,
    errors_seen: &mut u64,
) {
    let m = live.metrics();
    let frontier_ts = frontier.tick.saturating_mul(tick_ms) as i64;
    m.frontier_ts.set(frontier_ts);
    m.processed_ts.set(processed.saturating_mul(tick_ms) as i64);
    let newest_ts = frontier.newest.map_or(frontier_ts, |t| ((t + 1) * tick_ms) as i64);
    m.frontier_lag.set((newest_ts - frontier_ts).max(0));
    for ((topic, partition), lag) in live.lag.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        m.consumer_lag.with_label_values(&[topic, &partition.to_string()]).set(*lag);
    }
    let errors = live.errors.errors.load(Ordering::Relaxed);
    m.kafka_errors.inc_by(errors.saturating_sub(*errors_seen));
    *errors_seen = errors;
    live.arrivals.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, at| at.elapsed() < ARRIVAL_MEMORY);
}
