//! Live mode after `kill -9` (issue 18): the engine is killed at several points of a run while the
//! log is still arriving, and restarted each time with the same command; a client outside the
//! project (Python's confluent-kafka) then finds every response, trending change and impression
//! exactly once, equal to file mode's for the same log.

mod common;

use common::broker::{random_prefix, Broker};
use common::replay;
use feedflow::connectors::config::{Config, SourceKind};
use feedflow::connectors::kafka::tool_consumer;
use rdkafka::consumer::Consumer;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> =
        std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Messages in a topic now: the sum of its partitions' high watermarks (nothing is deleted).
fn topic_size(config: &Config, topic: &str) -> i64 {
    let consumer = tool_consumer(&config.kafka).unwrap();
    (0..config.kafka.partitions.outputs)
        .map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).map_or(0, |(_, high)| high))
        .sum()
}

fn engine(config_path: &Path, exit_when_idle: bool) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_feedflow"));
    command.args(["run", "--workers", "2", "--config"]).arg(config_path);
    if exit_when_idle {
        command.args(["--exit-when-idle-ms", "8000"]);
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the engine")
}

#[test]
fn an_engine_killed_three_times_mid_run_delivers_every_output_exactly_once() {
    // 30 minutes of a world replayed at 120×: the log arrives over 15 s while the engine answers.
    let world = common::world(feedflow::gen::GenOptions {
        seed: 31,
        users: 1000,
        posts: 1500,
        hours: 0.5,
        ..feedflow::gen::GenOptions::default()
    });
    let requests = world.text.lines().filter(|l| l.contains("\"type\":\"request\"")).count();
    assert!(requests > 40, "the world has requests: {requests}");
    let mut broker = Broker::new();
    let dir = world.dir.path();
    let config_path = dir.join("live.toml");
    std::fs::write(
        &config_path,
        format!(
            "[input]\nsource = \"kafka\"\n[kafka]\nbootstrap_servers = \"{}\"\ntopic_prefix = \"{}\"\nidle_ms = 3000\nmax_request_wait_ms = 300000\n",
            broker.bootstrap(),
            random_prefix()
        ),
    )
    .unwrap();
    let config = Config::from_file(&config_path).expect("the live config");
    let created = Command::new(env!("CARGO_BIN_EXE_feedflow"))
        .args(["topics", "create", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    // File mode on the same log and config: what the topics must hold in the end.
    let mut file_config = config.clone();
    file_config.input.source = SourceKind::File;
    let file_out = dir.join("file");
    replay(&file_config, &world.log, &file_out, 1);

    let producer = Command::new(env!("CARGO_BIN_EXE_feedflow"))
        .arg("replay")
        .arg(&world.log)
        .args(["--to", "kafka", "--speed", "120", "--config"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut producer = producer;

    // Killed once a quarter, a half and three quarters of the responses are on the topic, each
    // time at a point of the run that a SIGKILL makes arbitrary (sends in flight, a tick half written).
    let responses = config.kafka.topic("responses");
    let started = Instant::now();
    let mut restarts = 0;
    for quarter in 1..=3 {
        let mut run = engine(&config_path, false);
        let goal = (requests * quarter / 4) as i64;
        while topic_size(&config, &responses) < goal {
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "only {} responses of {goal}",
                topic_size(&config, &responses)
            );
            assert!(run.try_wait().unwrap().is_none(), "the engine exited before it was killed");
            std::thread::sleep(Duration::from_millis(50));
        }
        run.kill().unwrap();
        run.wait().unwrap();
        restarts += 1;
    }
    assert!(producer.wait().unwrap().success(), "the replay into the topics");

    // The last run drains what is left and exits once every partition has been idle.
    let last = engine(&config_path, true).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&last.stdout);
    let stderr = String::from_utf8_lossy(&last.stderr);
    assert!(last.status.success(), "{stderr}");
    assert_eq!(restarts, 3);
    assert!(stderr.contains("already delivered by an earlier run, not sent again: "), "{stderr}");
    assert!(stdout.contains("skipped: an earlier run had delivered them"), "{stdout}");

    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing; run scripts/setup", python.display());
    let dump = dir.join("topics");
    std::fs::create_dir_all(&dump).unwrap();
    let mut read = Command::new(&python);
    read.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_outputs.py"))
        .args(["--brokers", &config.kafka.bootstrap_servers, "--dump"])
        .arg(&dump);
    for role in ["responses", "trending", "impressions"] {
        read.args(["--topic", &config.kafka.topic(role)]);
    }
    let read = read.output().unwrap();
    assert!(read.status.success(), "python client failed: {}", String::from_utf8_lossy(&read.stderr));

    for role in ["responses", "trending", "impressions"] {
        let want = sorted_lines(&file_out.join(format!("{role}.jsonl")));
        let got = sorted_lines(&dump.join(format!("{}.jsonl", config.kafka.topic(role))));
        assert!(!want.is_empty(), "file mode wrote {role}");
        assert_eq!(got.len(), want.len(), "{role}: each record exactly once");
        assert!(
            got == want,
            "{role}: equal to file mode's (first difference: {:?})",
            got.iter().zip(&want).find(|(a, b)| a != b)
        );
    }
    let ids: std::collections::BTreeSet<String> = sorted_lines(&dump.join(format!("{responses}.jsonl")))
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"].to_string())
        .collect();
    assert_eq!(ids.len(), requests, "one response per request");
    broker.stop();
}
