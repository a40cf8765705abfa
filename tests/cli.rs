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
