//! The command line as a user meets it.

use std::process::Command;

fn feedflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_feedflow"))
}

#[test]
fn run_without_arguments_generates_the_sample_and_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = feedflow().arg("run").current_dir(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(dir.path().join("data/sample.jsonl").exists());
    assert!(dir.path().join("data/sample.truth.json").exists());
    for file in ["trending.jsonl", "dlq.jsonl"] {
        assert!(dir.path().join("out").join(file).exists(), "{file} missing");
    }
    assert!(stdout.contains("events/s") && stdout.contains("dlq") && stdout.contains("in the index"), "{stdout}");
    assert!(stderr.contains("generating a sample world"), "{stderr}");
    let trending = std::fs::read_to_string(dir.path().join("out/trending.jsonl")).unwrap();
    assert!(trending.lines().count() > 10, "the sample world has trending posts");

    // A second run reuses the sample and gives the same outputs.
    let again = feedflow().args(["run", "--out", "out2", "--workers", "1"]).current_dir(dir.path()).output().unwrap();
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("generating"));
    assert_eq!(trending, std::fs::read_to_string(dir.path().join("out2/trending.jsonl")).unwrap());
}

#[test]
fn invalid_configuration_is_reported_whole_with_a_failure_status() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[engine]\ntick_ms = 0\n[index]\ndimensions = 0\n").unwrap();
    let output = feedflow().args(["run", "--config"]).arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tick_ms") && stderr.contains("dimensions"), "{stderr}");
}

#[test]
fn a_missing_log_fails_cleanly() {
    let output = feedflow().args(["run", "--log", "/nonexistent/x.jsonl"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/x.jsonl"));
}

#[test]
fn gen_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.jsonl", "b.jsonl"] {
        let status = feedflow()
            .args(["gen", "--seed", "5", "--users", "50", "--posts", "100", "--hours", "1", "--out"])
            .arg(dir.path().join(name))
            .status()
            .unwrap();
        assert!(status.success());
    }
    assert_eq!(std::fs::read(dir.path().join("a.jsonl")).unwrap(), std::fs::read(dir.path().join("b.jsonl")).unwrap());
    assert_eq!(
        std::fs::read(dir.path().join("a.truth.json")).unwrap(),
        std::fs::read(dir.path().join("b.truth.json")).unwrap()
    );
}

/// Two free loopback ports, written as a timely host file.
fn hostfile(dir: &std::path::Path, processes: usize) -> std::path::PathBuf {
    let listeners: Vec<std::net::TcpListener> =
        (0..processes).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let hosts: String = listeners.iter().map(|l| format!("{}\n", l.local_addr().unwrap())).collect();
    drop(listeners);
    let path = dir.join("hosts.txt");
    std::fs::write(&path, hosts).unwrap();
    path
}

#[test]
fn two_processes_give_the_outputs_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("world.jsonl");
    let gen = feedflow()
        .args(["gen", "--seed", "31", "--users", "300", "--posts", "900", "--hours", "2", "--out"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(gen.status.success(), "{}", String::from_utf8_lossy(&gen.stderr));
    // A few malformed lines, so the DLQ is compared too.
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("not json\n{\"type\":\"engagement\",\"ts\":5}\n{\"type\":\"poke\",\"ts\":1}\n");
    std::fs::write(&log, text).unwrap();
    let files = ["responses.jsonl", "impressions.jsonl", "trending.jsonl", "dlq.jsonl"];
    let read = |out: &str| -> Vec<String> {
        files.iter().map(|f| std::fs::read_to_string(dir.path().join(out).join(f)).unwrap_or_default()).collect()
    };
    let mut single = Vec::new();
    for (out, workers) in [("one-by-one", "1"), ("one-by-two", "2")] {
        let output = feedflow()
            .args(["run", "--log"])
            .arg(&log)
            .arg("--out")
            .arg(dir.path().join(out))
            .args(["--workers", workers])
            .output()
            .unwrap();
        assert!(output.status.success());
        single.push(String::from_utf8_lossy(&output.stdout).to_string());
    }
    let hosts = hostfile(dir.path(), 2);
    let hosts = hosts.to_str().unwrap();
    let cluster: Vec<std::process::Child> = (0..2)
        .map(|p| {
            let p = p.to_string();
            feedflow()
                .args(["run", "--log"])
                .arg(&log)
                .arg("--out")
                .arg(dir.path().join("two-by-one"))
                .args(["-w", "1", "-n", "2", "-p", &p, "-h", hosts])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<std::process::Output> = cluster.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for (p, o) in outputs.iter().enumerate() {
        assert!(o.status.success(), "process {p} failed");
    }
    let one = read("one-by-one");
    assert!(one[0].lines().count() > 50 && one[3].lines().count() == 3, "the log has requests and 3 bad lines");
    for (name, other) in [("1 process x 2 workers", read("one-by-two")), ("2 processes x 1 worker", read("two-by-one"))]
    {
        for (f, (a, b)) in files.iter().zip(one.iter().zip(&other)) {
            assert!(a == b, "{name}: {f} differs from 1 process x 1 worker");
        }
    }
    // Process 1 writes nothing and says so; process 0 names the outputs and reports the whole
    // cluster: the counts of one process of two workers.
    let said = |p: usize| String::from_utf8_lossy(&outputs[p].stdout).to_string();
    assert!(said(0).contains("responses.jsonl") && said(0).contains("the whole cluster's"), "{}", said(0));
    assert!(!said(1).contains("responses.jsonl") && said(1).contains("process 1 of 2"), "{}", said(1));
    let counts = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| ["  accepted", "  dlq", "  posts", "  engagements", "  pools"].iter().any(|p| l.starts_with(p)))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(counts(&single[1]).len(), 5, "{}", single[1]);
    assert_eq!(counts(&said(0)), counts(&single[1]), "process 0 prints the cluster's totals");
    assert!(said(0).contains("on 2 worker(s)"), "{}", said(0));
}

#[test]
fn a_process_whose_peers_never_come_gives_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("world.jsonl");
    std::fs::write(&log, "").unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, "[engine]\npeer_wait_ms = 1500\n").unwrap();
    let hosts = hostfile(dir.path(), 2);
    let started = std::time::Instant::now();
    let output = feedflow()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--log")
        .arg(&log)
        .arg("--out")
        .arg(dir.path().join("out"))
        .args(["-w", "1", "-n", "2", "-p", "0", "-h"])
        .arg(&hosts)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "alone, process 0 must not succeed: {stderr}");
    assert!(stderr.contains("could not reach its peers within engine.peer_wait_ms"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "gave up after {:?}", started.elapsed());
}
