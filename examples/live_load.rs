//! Load generator for the live benchmark: preloads posts, then produces requests and engagements at fixed rates
//! and measures end-to-end latency (request produced → its response consumed from the `responses` topic).
//!
//! Used by `scripts/bench live`, which starts the broker and the engine:
//!
//! ```text
//! cargo run --release --example live_load -- preload --brokers 127.0.0.1:9092 --config config/kafka.toml --posts 100000 [--log history.jsonl]
//! cargo run --release --example live_load -- load --brokers 127.0.0.1:9092 --config config/kafka.toml --seconds 60
//! cargo run --release --example live_load -- drain --brokers 127.0.0.1:9092 --config config/kafka.toml
//! cargo run --release --example live_load -- script --config config/kafka.toml --seconds 60 --log live.jsonl
//! ```
//!
//! `drain` reads the input topics from their start to their end with one plain
//! consumer: the broker's own delivery rate, the reference for the engine's ingest rate.

use anyhow::{bail, Context, Result};
use feedflow::connectors::config::Config;
use feedflow::connectors::kafka::{partition_count, tool_consumer, ErrorLog, OutputProducer};
use feedflow::gen::Rng;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DIMENSIONS: usize = 64;
const TOPICS: u64 = 24;
const CATEGORIES: [&str; 8] = ["food", "travel", "music", "sports", "tech", "art", "pets", "fashion"];
const KINDS: [&str; 6] = ["view", "like", "view", "comment", "save", "share"];

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// An upload whose embedding clusters around one of `TOPICS` centres.
fn upload(rng: &mut Rng, post_id: u64, ts: i64) -> String {
    let topic = post_id % TOPICS;
    let mut centre = Rng::new(topic, 1);
    let embedding: Vec<String> =
        (0..DIMENSIONS).map(|_| format!("{:.4}", (centre.f64() - 0.5) * 2.0 + (rng.f64() - 0.5) * 0.6)).collect();
    format!(
        r#"{{"type":"upload","ts":{ts},"post_id":{post_id},"creator_id":{},"embedding":[{}],"category":"{}","content_type":"reel","is_public":true,"safety":{{"nudity":0.0,"violence":0.0,"hate":0.0,"borderline":{:.2}}}}}"#,
        1 + post_id % 5000,
        embedding.join(","),
        CATEGORIES[(topic % CATEGORIES.len() as u64) as usize],
        rng.f64() * 0.2
    )
}

fn engagement(rng: &mut Rng, users: u64, posts: u64, ts: i64) -> (u64, String) {
    let user = 1 + rng.below(users as usize) as u64;
    // Users prefer posts of "their" topic; popular posts (low ids) get more.
    let post = if rng.f64() < 0.7 {
        let k = rng.below((posts / TOPICS) as usize) as u64;
        (k * TOPICS + user % TOPICS).min(posts - 1) + 1
    } else {
        1 + (rng.f64().powi(3) * posts as f64) as u64
    };
    let kind = KINDS[rng.below(KINDS.len())];
    let dwell = 1000 + rng.below(9000) as u64;
    (
        user,
        format!(
            r#"{{"type":"engagement","ts":{ts},"user_id":{user},"post_id":{post},"kind":"{kind}","dwell_ms":{dwell}}}"#
        ),
    )
}

struct Args {
    command: String,
    config: Config,
    posts: u64,
    users: u64,
    history_engagements: u64,
    seconds: f64,
    warmup: f64,
    request_rate: f64,
    engagement_rate: f64,
    upload_rate: f64,
    out: Option<String>,
    /// preload: also write the history as a JSONL log (the file-mode reference for the ingest rate).
    log: Option<String>,
}

fn parse() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let command = it.next().context("usage: live_load preload|load|drain|script [--brokers B] [--config F] …")?;
    let mut config_path = None;
    let mut brokers = None;
    let mut a = Args {
        command,
        config: Config::default(),
        posts: 100_000,
        users: 20_000,
        history_engagements: 300_000,
        seconds: 60.0,
        warmup: 10.0,
        request_rate: 200.0,
        engagement_rate: 2000.0,
        upload_rate: 20.0,
        out: None,
        log: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--config" => config_path = Some(value),
            "--brokers" => brokers = Some(value),
            "--posts" => a.posts = value.parse()?,
            "--users" => a.users = value.parse()?,
            "--history-engagements" => a.history_engagements = value.parse()?,
            "--seconds" => a.seconds = value.parse()?,
            "--warmup" => a.warmup = value.parse()?,
            "--request-rate" => a.request_rate = value.parse()?,
            "--engagement-rate" => a.engagement_rate = value.parse()?,
            "--upload-rate" => a.upload_rate = value.parse()?,
            "--out" => a.out = Some(value),
            "--log" => a.log = Some(value),
            other => bail!("unknown flag {other}"),
        }
    }
    let path = config_path.context("--config is required")?;
    a.config = Config::from_file(std::path::Path::new(&path))?;
    if let Some(b) = brokers {
        a.config.kafka.bootstrap_servers = b;
    }
    Ok(a)
}

/// The history before the engine starts: `a.posts` posts uploaded over the 30 minutes before
/// `end`, interleaved in time order with the engagements on them; `emit(is_upload, key, line)`
/// for each. Returns `end`.
fn history(a: &Args, end: i64, mut emit: impl FnMut(bool, u64, &str) -> Result<()>) -> Result<i64> {
    let mut rng = Rng::new(42, 0);
    let span = 30 * 60 * 1000;
    // Post i is uploaded at its share of the span, engagements follow.
    let mut e = 0u64;
    for i in 0..a.posts {
        let ts = end - span + (i as i64 * span / a.posts as i64);
        emit(true, i + 1, &upload(&mut rng, i + 1, ts))?;
        while e * a.posts < (i + 1) * a.history_engagements {
            let (user, line) = engagement(&mut rng, a.users, i + 1, ts);
            emit(false, user, &line)?;
            e += 1;
        }
    }
    Ok(end)
}

/// Produces the history to the input topics (and, with `--log`, writes it as a JSONL log: the
/// file-mode reference for the ingest rate).
fn preload(a: &Args) -> Result<()> {
    use std::io::Write;
    let k = &a.config.kafka;
    let producer = OutputProducer::new(k, Arc::new(ErrorLog::default()), None)?;
    let (uploads, engagements) = (k.topic("uploads"), k.topic("engagements"));
    let started = Instant::now();
    let mut log = match &a.log {
        Some(path) => {
            Some(std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("create {path}"))?))
        }
        None => None,
    };
    let end = history(a, now_ms() - 1_000, |is_upload, key, line| {
        let topic = if is_upload { &uploads } else { &engagements };
        producer.send(topic, Some(key.to_string().as_bytes()), line.as_bytes(), None);
        if let Some(log) = log.as_mut() {
            writeln!(log, "{line}")?;
        }
        Ok(())
    })?;
    if let Some(mut log) = log {
        log.flush()?;
    }
    let left = producer.flush(Duration::from_secs(120));
    if left > 0 {
        bail!("{left} preload messages undelivered");
    }
    println!(
        "{{\"preloaded_messages\": {}, \"seconds\": {:.1}, \"last_ts\": {end}}}",
        a.posts + a.history_engagements,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

enum Role {
    Engagement,
    Upload,
    /// A request, with its id.
    Request(String),
}

/// One event of the live load: its topic's role, its key and its JSON line.
struct LoadEvent {
    role: Role,
    key: u64,
    line: String,
}

/// The live load's event mix at fixed rates: `until(t, ts, emit)` emits every event due by
/// `t` seconds into the load, stamped `ts`. `load` stamps the wall clock; `script` a simulated one.
struct LoadMix {
    rng: Rng,
    users: u64,
    posts: u64,
    rates: (f64, f64, f64),
    requests: u64,
    engagements: u64,
    uploads: u64,
}

impl LoadMix {
    fn new(a: &Args) -> Self {
        Self {
            rng: Rng::new(7, 0),
            users: a.users,
            posts: a.posts,
            rates: (a.engagement_rate, a.upload_rate, a.request_rate),
            requests: 0,
            engagements: 0,
            uploads: 0,
        }
    }

    fn until(&mut self, t: f64, ts: i64, mut emit: impl FnMut(LoadEvent)) {
        let (engagement_rate, upload_rate, request_rate) = self.rates;
        while (self.engagements as f64) < t * engagement_rate {
            let (user, line) = engagement(&mut self.rng, self.users, self.posts, ts);
            emit(LoadEvent { role: Role::Engagement, key: user, line });
            self.engagements += 1;
        }
        while (self.uploads as f64) < t * upload_rate {
            let id = self.posts + 1 + self.uploads;
            emit(LoadEvent { role: Role::Upload, key: id, line: upload(&mut self.rng, id, ts) });
            self.uploads += 1;
        }
        while (self.requests as f64) < t * request_rate {
            let user = 1 + self.rng.below(self.users as usize) as u64;
            let id = format!("bench-{}", self.requests);
            let line = format!(r#"{{"type":"request","ts":{ts},"request_id":"{id}","user_id":{user},"k":50}}"#);
            emit(LoadEvent { role: Role::Request(id), key: user, line });
            self.requests += 1;
        }
    }
}

/// The live benchmark as a file-mode log, with no broker: the history `preload` produces, then
/// `--seconds` of the load in 1 ms steps of simulated time. Replayed with `config/kafka.toml`'s
/// funnel (`feedflow run --log`), it measures the engine's cost per request in the live world
/// apart from the broker and from arrival timing.
fn script(a: &Args) -> Result<()> {
    use std::io::Write;
    let path = a.log.as_deref().context("script needs --log FILE")?;
    let mut log = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("create {path}"))?);
    let end = history(a, now_ms() - 1_000, |_, _, line| writeln!(log, "{line}").map_err(Into::into))?;
    let mut mix = LoadMix::new(a);
    let mut failed = None;
    for step in 1..=(a.seconds * 1000.0) as i64 {
        mix.until(step as f64 / 1000.0, end + step, |event| {
            if let Err(e) = writeln!(log, "{}", event.line) {
                failed.get_or_insert(e);
            }
        });
    }
    if let Some(e) = failed {
        return Err(e).with_context(|| format!("write {path}"));
    }
    log.flush()?;
    println!(
        "{}",
        serde_json::json!({"log": path, "history": a.posts + a.history_engagements,
            "requests": mix.requests, "engagements": mix.engagements, "uploads": mix.uploads})
    );
    Ok(())
}

/// Live load: requests, engagements and uploads at fixed rates with ts = now; latency of every response.
fn load(a: &Args) -> Result<()> {
    let k = &a.config.kafka;
    let responses = k.topic("responses");
    // Listen on the responses topic from its end before producing anything.
    let consumer = tool_consumer(k)?;
    let partitions = partition_count(&consumer, &responses, Duration::from_secs(10))?;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(&responses, p as i32, Offset::End)?;
    }
    consumer.assign(&list)?;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let latencies: Arc<Mutex<Vec<(f64, f64)>>> = Arc::new(Mutex::new(Vec::new()));
    let degraded = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let started = Instant::now();
    let reader = {
        let (sent, stop, latencies, degraded) = (sent.clone(), stop.clone(), latencies.clone(), degraded.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else { continue };
                let now = Instant::now();
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default()) else {
                    continue;
                };
                let Some(id) = v["request_id"].as_str() else { continue };
                if let Some(at) = sent.lock().unwrap().remove(id) {
                    let latency = now.duration_since(at).as_secs_f64() * 1000.0;
                    let since_start = at.duration_since(started).as_secs_f64();
                    latencies.lock().unwrap().push((since_start, latency));
                    let d = v["degraded"].as_str().unwrap_or("none").to_string();
                    *degraded.lock().unwrap().entry(d).or_default() += 1;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let producer = OutputProducer::new(k, Arc::new(ErrorLog::default()), None)?;
    let (uploads, engagements, requests) = (k.topic("uploads"), k.topic("engagements"), k.topic("requests"));
    let mut mix = LoadMix::new(a);
    let total = Duration::from_secs_f64(a.seconds);
    let load_started = Instant::now();
    while load_started.elapsed() < total {
        mix.until(load_started.elapsed().as_secs_f64(), now_ms(), |event| {
            let topic = match event.role {
                Role::Engagement => &engagements,
                Role::Upload => &uploads,
                Role::Request(ref id) => {
                    sent.lock().unwrap().insert(id.clone(), Instant::now());
                    &requests
                }
            };
            producer.send(topic, Some(event.key.to_string().as_bytes()), event.line.as_bytes(), None);
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    let (n_req, n_eng, n_up) = (mix.requests, mix.engagements, mix.uploads);
    producer.flush(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sent.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    reader.join().ok();
    let missing = sent.lock().unwrap().len();
    let all = latencies.lock().unwrap().clone();
    let mut measured: Vec<f64> = all.iter().filter(|(t, _)| *t >= a.warmup + 0.5).map(|(_, l)| *l).collect();
    measured.sort_by(f64::total_cmp);
    let result = serde_json::json!({
        "benchmark": "live",
        "seconds": a.seconds,
        "warmup_seconds": a.warmup,
        "request_rate": a.request_rate,
        "engagement_rate": a.engagement_rate,
        "upload_rate": a.upload_rate,
        "posts_preloaded": a.posts,
        "requests_sent": n_req,
        "engagements_sent": n_eng,
        "uploads_sent": n_up,
        "responses_received": all.len(),
        "responses_missing": missing,
        "measured_requests": measured.len(),
        "latency_ms": {
            "p50": percentile(&measured, 0.50),
            "p90": percentile(&measured, 0.90),
            "p99": percentile(&measured, 0.99),
            "p999": percentile(&measured, 0.999),
            "max": measured.last().copied().unwrap_or(f64::NAN),
        },
        "degraded": *degraded.lock().unwrap(),
    });
    let text = serde_json::to_string_pretty(&result)?;
    if let Some(out) = &a.out {
        std::fs::write(out, &text)?;
    }
    println!("{text}");
    Ok(())
}

/// Reads every input partition from its start to its end (the watermarks at the
/// start); prints messages and messages/s.
fn drain(a: &Args) -> Result<()> {
    let k = &a.config.kafka;
    let consumer = tool_consumer(k)?;
    let mut list = TopicPartitionList::new();
    let mut expected = 0i64;
    for role in ["uploads", "engagements", "requests"] {
        let topic = k.topic(role);
        for p in 0..partition_count(&consumer, &topic, Duration::from_secs(10))? {
            let (low, high) = consumer.fetch_watermarks(&topic, p as i32, Duration::from_secs(10))?;
            expected += high - low;
            list.add_partition_offset(&topic, p as i32, Offset::Beginning)?;
        }
    }
    consumer.assign(&list)?;
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut messages = 0i64;
    while messages < expected && started.elapsed() < Duration::from_secs(600) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            messages += 1;
        }
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    println!(
        "{}",
        serde_json::json!({"messages": messages, "seconds": secs, "messages_per_s": messages as f64 / secs.max(1e-9)})
    );
    Ok(())
}

fn main() -> Result<()> {
    let a = parse()?;
    match a.command.as_str() {
        "preload" => preload(&a),
        "load" => load(&a),
        "drain" => drain(&a),
        "script" => script(&a),
        other => bail!("unknown command {other}: preload, load, drain or script"),
    }
}
