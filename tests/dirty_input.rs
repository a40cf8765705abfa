//! Bad input is normal input: malformed messages of every kind go to the DLQ
//! with their reason, duplicates are dropped, and the valid events around
//! them give exactly the clean log's results.

mod common;

use common::{lines, malformed, replay, small_world};
use feedflow::connectors::config::Config;
use std::collections::BTreeMap;

#[test]
fn one_percent_malformed_goes_to_the_dlq_and_changes_nothing_else() {
    let world = small_world(11);
    let config = Config::default();
    let clean_out = world.dir.path().join("clean");
    let clean = replay(&config, &world.log, &clean_out, 2);

    // Insert a malformed line after every 100th line: 1 %.
    let mut dirty = String::new();
    let mut expected: BTreeMap<u64, &str> = BTreeMap::new();
    let mut line_no = 0u64;
    for (i, line) in world.text.lines().enumerate() {
        dirty.push_str(line);
        dirty.push('\n');
        line_no += 1;
        if i % 100 == 99 {
            let (bad, reason) = malformed(i / 100);
            dirty.push_str(&bad);
            dirty.push('\n');
            line_no += 1;
            expected.insert(line_no, reason);
        }
    }
    let dirty_log = world.dir.path().join("dirty.jsonl");
    std::fs::write(&dirty_log, dirty).unwrap();
    let dirty_out = world.dir.path().join("dirty");
    let report = replay(&config, &dirty_log, &dirty_out, 2);

    let dlq = lines(&dirty_out.join("dlq.jsonl"));
    let got: BTreeMap<u64, &str> =
        dlq.iter().map(|r| (r["offset"].as_u64().unwrap(), r["reason"].as_str().unwrap())).collect();
    assert_eq!(got, expected, "DLQ records must be exactly the injected lines, with their reasons");
    assert!(expected.len() >= 11 * 3, "every kind of defect is injected several times");
    for r in &dlq {
        assert!(r["source"].as_str().unwrap().starts_with("file:"));
        assert!(r["original"].is_string() || r["original_base64"].is_string());
    }
    assert_eq!(report.summary.counters.rejected_total(), expected.len() as u64);
    assert_eq!(
        report.summary.counters.rejected["oversized"],
        expected.values().filter(|r| **r == "oversized").count() as u64
    );

    assert_eq!(
        std::fs::read(clean_out.join("trending.jsonl")).unwrap(),
        std::fs::read(dirty_out.join("trending.jsonl")).unwrap(),
        "trending output must equal the clean log's"
    );
    let (a, b) = (clean.snapshot.unwrap(), report.snapshot.unwrap());
    assert_eq!(a.index.keys().collect::<Vec<_>>(), b.index.keys().collect::<Vec<_>>());
    assert_eq!(a.popular, b.popular);
    assert_eq!(a.users, b.users);
}

#[test]
fn duplicated_events_are_dropped_by_event_id() {
    let world = small_world(12);
    let config = Config::default();
    let clean_out = world.dir.path().join("clean");
    let clean = replay(&config, &world.log, &clean_out, 1);

    // At-least-once delivery: every 50th event arrives twice, the copy a few lines later.
    let all: Vec<&str> = world.text.lines().collect();
    let mut with_dups = String::new();
    let mut copies = 0;
    for (i, line) in all.iter().enumerate() {
        with_dups.push_str(line);
        with_dups.push('\n');
        if i >= 3 && i % 50 == 0 {
            with_dups.push_str(all[i - 3]);
            with_dups.push('\n');
            copies += 1;
        }
    }
    let log = world.dir.path().join("dups.jsonl");
    std::fs::write(&log, with_dups).unwrap();
    let out = world.dir.path().join("dups");
    let report = replay(&config, &log, &out, 2);
    assert_eq!(report.summary.counters.duplicates, copies);
    assert_eq!(
        std::fs::read(clean_out.join("trending.jsonl")).unwrap(),
        std::fs::read(out.join("trending.jsonl")).unwrap()
    );
    assert_eq!(clean.snapshot.unwrap().users, report.snapshot.unwrap().users);
}

#[test]
fn a_missing_log_is_an_error_not_a_panic() {
    let options = feedflow::dataflows::RunOptions::new(std::path::Path::new("/nonexistent/log.jsonl"), 1);
    let err = feedflow::dataflows::run_file(&Config::default(), &options).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/log.jsonl"), "{err}");
}
