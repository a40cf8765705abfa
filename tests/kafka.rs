//! Live mode against a real broker (nisshi or Tansu, started by the test on a free port):
//! responses equal file mode's (with the log in the topics before the engine
//! starts, and produced while it runs by `feedflow replay`, as fast as possible
//! or at `--speed 60`, or by an outside client, fast or paced, with no event late; and by a
//! client stamping `ts` with the wall clock, answered without waiting `idle_ms`), bad messages reach the `dlq`
//! topic, metrics move, a client outside the project reads the outputs, a
//! broker restart loses nothing, and the command-line tools work end to end.

mod common;

use common::broker::{random_prefix, Broker};
use common::{lines, malformed, replay, small_world};
use feedflow::connectors::config::{Config, SourceKind};
use feedflow::connectors::kafka::create_topics;
use feedflow::dataflows::metrics::{serve, Metrics};
use feedflow::dataflows::{run_live, LiveControl, RunOptions, RunReport};
use feedflow::kafka_tools;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A live config on `broker` with its own topics. Partitions go idle only after
/// seconds, so a busy machine cannot make the live run differ from file mode.
fn live_config(broker: &Broker) -> Config {
    let mut c = Config::default();
    c.input.source = SourceKind::Kafka;
    c.kafka.bootstrap_servers = broker.bootstrap();
    c.kafka.topic_prefix = random_prefix();
    c.kafka.idle_ms = 2_000;
    c.kafka.max_request_wait_ms = 300_000;
    create_topics(&c.kafka, &c.kafka.all_topics(), Duration::from_secs(30)).expect("create topics");
    c
}

/// Every message of a topic (by role), from its start to its end.
fn read_topic(config: &Config, role: &str, dir: &Path) -> Vec<String> {
    let file = dir.join(format!("{role}.topic.jsonl"));
    kafka_tools::record(config, &config.kafka.topic(role), &file, false, Arc::new(AtomicBool::new(false)))
        .expect("record");
    std::fs::read_to_string(&file).unwrap().lines().map(str::to_string).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The sum of a metric's samples (every label set) in a scrape.
fn metric(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn requests_in(text: &str) -> usize {
    text.lines().filter(|l| l.contains("\"type\":\"request\"")).count()
}

/// Runs the engine live on its own thread.
fn start_engine(config: &Config, workers: usize, control: LiveControl) -> std::thread::JoinHandle<RunReport> {
    let config = config.clone();
    std::thread::spawn(move || {
        let options = RunOptions::new(Path::new(""), workers);
        run_live(&config, &options, control).expect("live run")
    })
}

/// Waits until `done` holds, or panics after `limit`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The log cut after `numerator / denominator` of its lines, written as two files; with the
/// number of requests in all of it and in the first part.
fn split_world(world: &common::World, numerator: usize, denominator: usize) -> (PathBuf, PathBuf, usize, usize) {
    let all: Vec<&str> = world.text.lines().collect();
    let cut = all.len() * numerator / denominator;
    let (first, second) = (world.dir.path().join("first.jsonl"), world.dir.path().join("second.jsonl"));
    std::fs::write(&first, all[..cut].join("\n") + "\n").unwrap();
    std::fs::write(&second, all[cut..].join("\n") + "\n").unwrap();
    let in_first = requests_in(&std::fs::read_to_string(&first).unwrap());
    (first, second, requests_in(&world.text), in_first)
}

/// Starts the engine live until its shutdown flag is set; returns it with its metrics and flag.
fn start_until_shutdown(config: &Config) -> (std::thread::JoinHandle<RunReport>, Arc<Metrics>, Arc<AtomicBool>) {
    let metrics = Metrics::new();
    let shutdown = Arc::new(AtomicBool::new(false));
    let control = LiveControl { shutdown: shutdown.clone(), exit_when_idle: None, metrics: metrics.clone() };
    (start_engine(config, 2, control), metrics, shutdown)
}

/// Responses answered without degradation so far.
fn answered(metrics: &Metrics) -> usize {
    metrics.responses.with_label_values(&["none"]).get() as usize
}

#[test]
fn live_responses_equal_file_mode_and_bad_messages_reach_the_dlq() {
    let world = small_world(21);
    let mut broker = Broker::new();
    let config = live_config(&broker);
    let mut file_config = config.clone();
    file_config.input.source = SourceKind::File;
    let file_out = world.dir.path().join("file");
    replay(&file_config, &world.log, &file_out, 1);

    kafka_tools::replay(&config, &world.log, 0.0, false).expect("replay into the topics");
    // Malformed messages produced straight into the input topics.
    let producer: BaseProducer = broker.client_config().create().unwrap();
    let mut expected_dlq: BTreeMap<(String, String), usize> = BTreeMap::new();
    for i in 0..22 {
        let (bad, reason) = malformed(i);
        let topic = config.kafka.topic(["uploads", "engagements", "requests"][i % 3]);
        producer.send(BaseRecord::<(), _>::to(&topic).payload(bad.as_bytes())).unwrap();
        *expected_dlq.entry((format!("kafka:{topic}"), reason.to_string())).or_default() += 1;
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let metrics = Metrics::new();
    let addr = serve(metrics.clone(), "127.0.0.1:0").unwrap();
    let before = scrape(addr);
    let control = LiveControl {
        shutdown: Arc::new(AtomicBool::new(false)),
        exit_when_idle: Some(Duration::from_secs(3)),
        metrics,
    };
    let report = start_engine(&config, 2, control).join().expect("engine thread");
    let after = scrape(addr);

    // Responses: the same bytes as file mode, each exactly once.
    let want = sorted(file_lines(&file_out.join("responses.jsonl")));
    let got = sorted(read_topic(&config, "responses", world.dir.path()));
    assert_eq!(want.len(), requests_in(&world.text), "file mode answers every request");
    assert_eq!(got.len(), want.len(), "one response per request on the responses topic");
    assert!(
        got == want,
        "live responses must equal file mode's (first difference: {:?})",
        got.iter().zip(&want).find(|(a, b)| a != b)
    );
    assert_eq!(report.summary.counters.rank.responses as usize, want.len());
    assert_eq!(report.summary.counters.late, 0);
    // Trending changes and impressions: the same records (partitions interleave them).
    assert_eq!(
        sorted(read_topic(&config, "trending", world.dir.path())),
        sorted(file_lines(&file_out.join("trending.jsonl")))
    );
    assert_eq!(
        sorted(read_topic(&config, "impressions", world.dir.path())),
        sorted(file_lines(&file_out.join("impressions.jsonl")))
    );

    // The DLQ topic: every malformed message, with its source topic, partition, offset and reason.
    let dlq: Vec<serde_json::Value> =
        read_topic(&config, "dlq", world.dir.path()).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut got_dlq: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &dlq {
        assert!(r["partition"].is_u64() && r["offset"].is_u64(), "{r}");
        assert!(r["original"].is_string() || r["original_base64"].is_string(), "{r}");
        *got_dlq.entry((r["source"].as_str().unwrap().into(), r["reason"].as_str().unwrap().into())).or_default() += 1;
    }
    assert_eq!(got_dlq, expected_dlq);

    // Metrics: the documented names are there and moved during the run.
    for name in [
        "feedflow_events_total",
        "feedflow_dlq_total",
        "feedflow_responses_total",
        "feedflow_request_latency_seconds_count",
        "feedflow_request_stage_seconds_count{stage=\"input_closed\"}",
        "feedflow_request_stage_seconds_count{stage=\"answered\"}",
        "feedflow_frontier_ts_ms",
        "feedflow_frontier_lag_ms",
        "feedflow_processed_ts_ms",
        "feedflow_index_size",
        "feedflow_insert_to_searchable_seconds_count",
        "feedflow_trending_pool_size",
        "feedflow_ranker_batch_seconds_count",
        "feedflow_consumer_lag",
        "feedflow_output_messages_total",
    ] {
        assert!(after.contains(name), "{name} missing from /metrics:\n{after}");
    }
    for name in [
        "feedflow_events_total",
        "feedflow_dlq_total",
        "feedflow_responses_total",
        "feedflow_request_latency_seconds_count",
        "feedflow_index_size",
        "feedflow_frontier_ts_ms",
        "feedflow_processed_ts_ms",
        "feedflow_output_messages_total",
    ] {
        assert!(metric(&after, name) > metric(&before, name), "{name} did not move");
    }
    assert_eq!(metric(&after, "feedflow_dlq_total") as usize, 22);
    assert_eq!(metric(&after, "feedflow_request_latency_seconds_count") as usize, want.len());

    // A client written outside the project (Python's confluent-kafka) reads the output topics.
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing; run scripts/setup", python.display());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_outputs.py");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .args(["--brokers", &config.kafka.bootstrap_servers])
        .args(["--topic", &config.kafka.topic("responses"), "--topic", &config.kafka.topic("trending")])
        .output()
        .expect("run the Python client");
    assert!(output.status.success(), "python client failed: {}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the client prints JSON");
    let responses = &seen[config.kafka.topic("responses")];
    assert_eq!(responses["messages"].as_u64().unwrap() as usize, want.len(), "{seen}");
    assert_eq!(responses["valid_responses"].as_u64().unwrap() as usize, want.len(), "{seen}");
    assert_eq!(responses["keyed_by_user"].as_u64().unwrap() as usize, want.len(), "{seen}");
    let trending = &seen[config.kafka.topic("trending")];
    assert_eq!(trending["messages"].as_u64().unwrap() as usize, file_lines(&file_out.join("trending.jsonl")).len());
    broker.stop();
}

#[test]
fn the_engine_keeps_running_across_a_broker_restart_and_loses_no_response() {
    let world = small_world(22);
    let mut broker = Broker::new();
    let mut config = live_config(&broker);
    config.kafka.idle_ms = 500;
    let (first, second, total, in_first) = split_world(&world, 6, 10);

    kafka_tools::replay(&config, &first, 0.0, false).unwrap();
    let (engine, metrics, shutdown) = start_until_shutdown(&config);
    wait_for("the first part's responses", Duration::from_secs(180), || answered(&metrics) >= in_first);

    broker.stop();
    std::thread::sleep(Duration::from_secs(4));
    assert!(!engine.is_finished(), "the engine keeps running while the broker is away");
    broker.start();
    kafka_tools::replay(&config, &second, 0.0, false).unwrap();
    wait_for("every response", Duration::from_secs(180), || answered(&metrics) >= total);
    shutdown.store(true, Ordering::SeqCst);
    let report = engine.join().expect("engine thread");
    assert_eq!(report.summary.counters.rank.responses as usize, total);

    let responses = read_topic(&config, "responses", world.dir.path());
    let mut by_request: BTreeMap<String, usize> = BTreeMap::new();
    for line in &responses {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *by_request.entry(v["request_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let expected: Vec<String> = world
        .text
        .lines()
        .filter(|l| l.contains("\"type\":\"request\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<&String> = expected.iter().filter(|r| !by_request.contains_key(*r)).collect();
    assert!(missing.is_empty(), "{} response(s) lost, e.g. {:?}", missing.len(), missing.first());
    let duplicated = by_request.values().filter(|n| **n > 1).count();
    assert_eq!(duplicated, 0, "no response is delivered twice");
    assert_eq!(responses.len(), total);
}

/// How the log reaches the topics while the engine is already consuming them.
#[derive(Clone, Copy, Debug)]
enum Arrival {
    /// `feedflow replay --to kafka`, as fast as possible.
    Replay,
    /// `feedflow replay --to kafka --speed N`: event time N times faster than real time.
    ReplayPaced(f64),
    /// A client outside the project (Python's confluent-kafka), as fast as it can.
    OutsideFast,
    /// The same client paced at this many messages a second.
    OutsidePaced(u32),
}

fn produce(config: &Config, log: &Path, how: Arrival) {
    match how {
        Arrival::Replay => kafka_tools::replay(config, log, 0.0, false).expect("replay into the topics"),
        Arrival::ReplayPaced(speed) => kafka_tools::replay(config, log, speed, false).expect("paced replay"),
        Arrival::OutsideFast | Arrival::OutsidePaced(_) => {
            let rate = match how {
                Arrival::OutsidePaced(rate) => rate,
                _ => 0,
            };
            python_producer(config, log, &["--rate".into(), rate.to_string().into()]);
        }
    }
}

/// Runs the outside client (tests/python/produce_log.py, confluent-kafka) on `log` with `extra` arguments.
fn python_producer(config: &Config, log: &Path, extra: &[std::ffi::OsString]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing; run scripts/setup", python.display());
    let output = std::process::Command::new(&python)
        .arg(root.join("tests/python/produce_log.py"))
        .args(["--brokers", &config.kafka.bootstrap_servers, "--log"])
        .arg(log)
        .args(extra)
        .args(["--uploads", &config.kafka.topic("uploads")])
        .args(["--engagements", &config.kafka.topic("engagements")])
        .args(["--requests", &config.kafka.topic("requests")])
        .output()
        .expect("run the Python producer");
    assert!(output.status.success(), "python producer failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A world of 15 minutes (200 users, 800 posts).
fn short_world(seed: u64) -> common::World {
    common::world(feedflow::gen::GenOptions {
        seed,
        users: 200,
        posts: 800,
        hours: 0.25,
        ..feedflow::gen::GenOptions::default()
    })
}

#[test]
fn a_log_produced_while_the_engine_runs_gets_file_mode_answers() {
    let mut broker = Broker::new();
    produced_while_running(
        &mut broker,
        &small_world(24),
        &[Arrival::Replay, Arrival::OutsideFast, Arrival::OutsidePaced(1_500)],
    );
    // `replay --speed 60` on a world of 15 minutes: 15 s of real time.
    produced_while_running(&mut broker, &short_world(25), &[Arrival::ReplayPaced(60.0)]);
    broker.stop();
}

/// Produces `world`'s log in each way `hows` while the engine consumes, and checks the answers.
fn produced_while_running(broker: &mut Broker, world: &common::World, hows: &[Arrival]) {
    let total = requests_in(&world.text);
    assert!(total > 20, "the world has requests: {total}");
    let mut file_out = None;
    for &how in hows {
        // Partitions reach their end again and again while the log arrives; an idle one may let
        // time pass only up to what was read `idle_ms` earlier. A burst of the whole log through
        // Tansu 0.6.0 left partitions up to ~1 s behind one another here (late events at
        // idle_ms 200 and 500, none at 1,000): 3 s leaves a margin for a busy machine.
        let mut config = live_config(broker);
        config.kafka.idle_ms = 3_000;
        let want = file_out.get_or_insert_with(|| {
            let mut file_config = config.clone();
            file_config.input.source = SourceKind::File;
            let out = world.dir.path().join("file");
            replay(&file_config, &world.log, &out, 1);
            sorted(file_lines(&out.join("responses.jsonl")))
        });
        assert_eq!(want.len(), total);
        let (engine, metrics, shutdown) = start_until_shutdown(&config);
        // Consuming, every partition idle, before the first record arrives.
        std::thread::sleep(Duration::from_millis(config.kafka.idle_ms + 500));
        produce(&config, &world.log, how);
        wait_for("every response", Duration::from_secs(180), || answered(&metrics) >= total);
        shutdown.store(true, Ordering::SeqCst);
        let report = engine.join().expect("engine thread");

        assert_eq!(report.summary.counters.late, 0, "{how:?}: no event arrives behind the frontier");
        assert_eq!(report.summary.counters.rank.responses as usize, total, "{how:?}: one answer per request");
        let got = sorted(read_topic(&config, "responses", world.dir.path()));
        assert_eq!(got.len(), total, "{how:?}: one response per request on the topic");
        assert!(
            got == *want,
            "{how:?}: live responses must equal file mode's (first difference: {:?})",
            got.iter().zip(want.iter()).find(|(a, b)| a != b)
        );
    }
}

#[test]
fn a_service_on_the_wall_clock_is_answered_without_waiting_for_quiet_partitions() {
    let mut broker = Broker::new();
    // 15 minutes of log time played 60× faster, each event stamped with the wall clock as it is sent.
    let world = short_world(26);
    let total = requests_in(&world.text);
    let mut config = live_config(&broker);
    // Without the wall clock, the last requests would wait for quiet partitions to be idle 20 s.
    config.kafka.idle_ms = 20_000;
    // Room for a busy machine: the producer sends each event when its `ts` comes, give or take a stall.
    config.kafka.wall_clock_lateness_ms = 2_000;
    let (engine, metrics, shutdown) = start_until_shutdown(&config);
    std::thread::sleep(Duration::from_millis(1_000));
    let rebased = world.dir.path().join("rebased.jsonl");
    python_producer(
        &config,
        &world.log,
        &["--now-speed".into(), "60".into(), "--rebased-log".into(), rebased.clone().into()],
    );
    let sent_at = Instant::now();
    wait_for("every response", Duration::from_secs(60), || answered(&metrics) >= total);
    let last_answered_after = sent_at.elapsed();
    shutdown.store(true, Ordering::SeqCst);
    let report = engine.join().expect("engine thread");
    assert!(
        last_answered_after < Duration::from_secs(10),
        "the last requests were answered {last_answered_after:?} after the last event was sent: \
         the partitions at their end followed the wall clock, not the 20 s idle rule"
    );
    assert_eq!(report.summary.counters.late, 0, "every event reached the engine within 2 s of its ts");
    assert_eq!(report.summary.counters.rank.responses as usize, total, "one answer per request");

    let mut file_config = config.clone();
    file_config.input.source = SourceKind::File;
    let out = world.dir.path().join("file-rebased");
    replay(&file_config, &rebased, &out, 1);
    let want = sorted(file_lines(&out.join("responses.jsonl")));
    let got = sorted(read_topic(&config, "responses", world.dir.path()));
    assert_eq!(got.len(), total, "one response per request on the topic");
    assert!(
        got == want,
        "live responses must equal file mode's for the log as sent (first difference: {:?})",
        got.iter().zip(want.iter()).find(|(a, b)| a != b)
    );
    broker.stop();
}

/// Writes `bytes` to `path` through a temporary file and a rename (what a deploy should do).
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_new_model_is_swapped_in_live_and_a_bad_one_is_refused() {
    let world = small_world(25);
    let mut broker = Broker::new();
    let mut config = live_config(&broker);
    config.kafka.idle_ms = 500;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = world.dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let (model, metadata) = (models.join("ranker.onnx"), models.join("ranker.json"));
    std::fs::copy(root.join("models/ranker.onnx"), &model).unwrap();
    std::fs::copy(root.join("models/ranker.json"), &metadata).unwrap();
    config.ranking.model = model.clone();
    config.ranking.metadata = metadata.clone();
    config.ranking.onnxruntime_lib = root.join(".venv/lib/libonnxruntime.so");
    config.ranking.reload_check_ms = 100;

    let (first, second, total, in_first) = split_world(&world, 1, 2);

    kafka_tools::replay(&config, &first, 0.0, false).unwrap();
    let (engine, metrics, shutdown) = start_until_shutdown(&config);
    wait_for("the first half's responses", Duration::from_secs(180), || answered(&metrics) >= in_first);

    // A broken file: refused, counted; the model in use keeps serving.
    let good_bytes = std::fs::read(&model).unwrap();
    replace_file(&model, b"not an onnx model");
    let reloads = |outcome: &str| metrics.model_reloads.with_label_values(&[outcome]).get();
    wait_for("the rejection", Duration::from_secs(30), || reloads("rejected") == 1);
    // A good new model (the same trees under another name, so another id): validated, swapped in.
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    meta["name"] = "ranker-v2".into();
    replace_file(&metadata, &serde_json::to_vec_pretty(&meta).unwrap());
    replace_file(&model, &good_bytes);
    wait_for("the new model", Duration::from_secs(30), || reloads("accepted") == 1);

    kafka_tools::replay(&config, &second, 0.0, false).unwrap();
    wait_for("every response", Duration::from_secs(180), || answered(&metrics) >= total);
    shutdown.store(true, Ordering::SeqCst);
    engine.join().expect("engine thread");
    assert_eq!((reloads("accepted"), reloads("rejected")), (1, 1));

    // Responses name the model that answered them: the old one before the swap, the new one after.
    let first_ids: std::collections::BTreeSet<String> = std::fs::read_to_string(&first)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"type\":\"request\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"].as_str().unwrap().to_string())
        .collect();
    let responses = read_topic(&config, "responses", world.dir.path());
    assert_eq!(responses.len(), total);
    for line in &responses {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let model = r["model"].as_str().unwrap();
        let before = first_ids.contains(r["request_id"].as_str().unwrap());
        let want = if before { "ranker@" } else { "ranker-v2@" };
        assert!(model.starts_with(want), "{} answered by {model}, expected {want}…", r["request_id"]);
    }
    broker.stop();
}

fn feedflow(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_feedflow")).args(args).output().expect("run feedflow")
}

#[test]
fn the_command_line_tools_work_against_the_broker() {
    let world = small_world(23);
    let broker = Broker::new();
    let prefix = random_prefix();
    let config_path = world.dir.path().join("live.toml");
    std::fs::write(
        &config_path,
        format!(
            "[input]\nsource = \"kafka\"\n[kafka]\nbootstrap_servers = \"{}\"\ntopic_prefix = \"{prefix}\"\nidle_ms = 500\n[metrics]\nenabled = true\naddress = \"127.0.0.1:0\"\n",
            broker.bootstrap()
        ),
    )
    .unwrap();
    let cfg = config_path.to_str().unwrap();
    let log = world.log.to_str().unwrap();

    let created = feedflow(&["topics", "create", "--config", cfg]);
    let text = String::from_utf8_lossy(&created.stdout);
    assert!(created.status.success() && text.matches("created").count() == 7, "{text}");
    let again = feedflow(&["topics", "create", "--config", cfg]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).matches("exists").count(), 7);

    let replayed = feedflow(&["replay", log, "--to", "kafka", "--config", cfg]);
    let text = String::from_utf8_lossy(&replayed.stdout);
    assert!(replayed.status.success(), "{}", String::from_utf8_lossy(&replayed.stderr));
    assert!(text.contains(&format!("replayed {} messages", world.text.lines().count())), "{text}");

    // The engine as operators run it; SIGTERM stops it cleanly with a summary.
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_feedflow"))
        .args(["run", "--config", cfg, "--workers", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let requests = requests_in(&world.text);
    let responses_file = world.dir.path().join("responses.jsonl");
    let record = || {
        let out = feedflow(&["record", "responses", "--out", responses_file.to_str().unwrap(), "--config", cfg]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        lines(&responses_file).len()
    };
    wait_for("the engine's responses", Duration::from_secs(240), || record() >= requests);
    let pid = run.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut stdout = String::new();
    let mut stderr = String::new();
    run.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    run.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = run.wait().unwrap();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(stdout.contains(&format!("requests  {requests} answered")), "{stdout}");
    assert!(stderr.contains("stopping:") && stderr.contains("metrics on http://127.0.0.1:"), "{stderr}");
    assert_eq!(record(), requests, "each response exactly once");

    // tail: pretty-printed, filtered by user.
    let first: serde_json::Value = lines(&responses_file)[0].clone();
    let user = first["user_id"].as_u64().unwrap().to_string();
    let tail = feedflow(&["tail", "responses", "--from-beginning", "--user", &user, "--max", "1", "--config", cfg]);
    let text = String::from_utf8_lossy(&tail.stdout);
    assert!(tail.status.success(), "{}", String::from_utf8_lossy(&tail.stderr));
    assert!(text.contains(&format!("\"user_id\": {user}")) && text.contains("\"request_id\""), "{text}");
    assert!(text.contains(&format!("key={user}")), "responses are keyed by user_id: {text}");

    // Errors are clear: a topic that does not exist.
    let missing = feedflow(&["record", "no-such-topic-here", "--out", "/dev/null", "--config", cfg]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
}
