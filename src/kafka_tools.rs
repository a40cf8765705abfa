//! The Kafka-facing tools of the command line: `replay`, `record`, `tail` and `topics create`.

use anyhow::{bail, Context, Result};
use feedflow_connectors::config::Config;
use feedflow_connectors::jsonl::{LineReader, LineSink, Pacer};
use feedflow_connectors::kafka::{
    create_topics, partition_count, tool_consumer, ErrorLog, OutputProducer, TopicOutcome,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The fields a replay needs to route a line: its type, its key and its time.
#[derive(Deserialize)]
struct Routing {
    #[serde(rename = "type")]
    kind: Option<String>,
    ts: Option<i64>,
    post_id: Option<serde_json::Value>,
    user_id: Option<serde_json::Value>,
}

/// The topic role and key of a log line. Lines that cannot be routed (invalid
/// JSON, unknown type) go to `uploads` unkeyed, so the engine's DLQ reports them.
fn route(line: &[u8]) -> (&'static str, Option<String>, Option<i64>) {
    let Ok(r) = serde_json::from_slice::<Routing>(line) else { return ("uploads", None, None) };
    let key = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    match r.kind.as_deref() {
        Some("upload") | Some("moderation") => ("uploads", key(&r.post_id), r.ts),
        Some("engagement") => ("engagements", key(&r.user_id), r.ts),
        Some("request") => ("requests", key(&r.user_id), r.ts),
        _ => ("uploads", None, r.ts),
    }
}

/// `feedflow replay FILE --to kafka`: produces a recorded log into the input topics,
/// in log order (so each partition stays ordered by event time), paced or as fast as possible.
pub fn replay(config: &Config, log: &Path, speed: f64, progress: bool) -> Result<()> {
    let kafka = &config.kafka;
    let errors = Arc::new(ErrorLog::default());
    let producer = OutputProducer::new(kafka, errors, None)?;
    let mut reader = LineReader::open(log, 0, 1)?;
    let total_bytes = reader.file_len();
    let mut pacer = Pacer::new(speed);
    let topics: Vec<(&str, String)> =
        ["uploads", "engagements", "requests"].iter().map(|r| (*r, kafka.topic(r))).collect();
    let mut sent = [0u64; 3];
    let mut unrouted = 0u64;
    let started = Instant::now();
    let mut last_progress = Instant::now();
    while let Some((_, line)) = reader.next_line()? {
        let (role, key, ts) = route(line);
        if key.is_none() {
            unrouted += 1;
        }
        if let Some(ts) = ts {
            pacer.wait_for(ts);
        }
        let slot = topics.iter().position(|(r, _)| *r == role).unwrap_or(0);
        producer.send(&topics[slot].1, key.as_deref().map(str::as_bytes), line, None);
        sent[slot] += 1;
        if progress && last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            let n: u64 = sent.iter().sum();
            eprintln!(
                "[feedflow] replay {:>5.1}%  {} messages  {:.0}/s",
                100.0 * reader.bytes_read() as f64 / total_bytes.max(1) as f64,
                n,
                n as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    let undelivered = producer.flush(Duration::from_millis(kafka.flush_timeout_ms));
    let n: u64 = sent.iter().sum();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "replayed {} messages in {:.1} s ({:.0}/s) to {}: {} {}, {} {}, {} {}{}",
        n,
        secs,
        n as f64 / secs.max(1e-9),
        kafka.bootstrap_servers,
        sent[0],
        topics[0].1,
        sent[1],
        topics[1].1,
        sent[2],
        topics[2].1,
        if unrouted > 0 {
            format!(" ({unrouted} without a type or key, sent to {} for the DLQ)", topics[0].1)
        } else {
            String::new()
        }
    );
    if undelivered > 0 {
        bail!("{undelivered} message(s) were not delivered within kafka.flush_timeout_ms");
    }
    Ok(())
}

/// A consumer of every partition of `topic`, from its start or its end.
fn consume_all(config: &Config, topic: &str, from_start: bool) -> Result<(BaseConsumer, usize)> {
    let consumer = tool_consumer(&config.kafka)?;
    let partitions = partition_count(&consumer, topic, Duration::from_secs(10))?;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p as i32, if from_start { Offset::Beginning } else { Offset::End })?;
    }
    consumer.assign(&list).with_context(|| format!("assigning the partitions of {topic}"))?;
    Ok((consumer, partitions))
}

/// `feedflow record TOPIC --out FILE`: captures a topic to JSONL, from its start
/// to its current end (or on, with `follow`, until interrupted).
pub fn record(config: &Config, topic: &str, out: &Path, follow: bool, stop: Arc<AtomicBool>) -> Result<u64> {
    let (consumer, partitions) = consume_all(config, topic, true)?;
    let mut sink = LineSink::create(out)?;
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    let mut written = 0u64;
    while !stop.load(Ordering::SeqCst) && (follow || at_end.len() < partitions) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let text = String::from_utf8_lossy(m.payload().unwrap_or_default());
                // One message, one line: a payload's own line breaks would split it.
                sink.write_line(text.trim_end().replace('\n', " ").as_str())?;
                written += 1;
            }
            Some(Err(RdError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => eprintln!("[feedflow] record: {e} (retrying)"),
        }
    }
    sink.flush()?;
    Ok(written)
}

/// `feedflow tail TOPIC`: follows a topic and pretty-prints each message
/// (optionally only those whose `user_id` is `user`), until interrupted or `max` messages.
pub fn tail(
    config: &Config,
    topic: &str,
    user: Option<u64>,
    from_start: bool,
    max: Option<u64>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let (consumer, _) = consume_all(config, topic, from_start)?;
    eprintln!("[feedflow] tailing {topic} at {} (Ctrl-C stops)", config.kafka.bootstrap_servers);
    let mut shown = 0u64;
    while !stop.load(Ordering::SeqCst) && max.is_none_or(|m| shown < m) {
        match consumer.poll(Duration::from_millis(100)) {
            None | Some(Err(RdError::PartitionEOF(_))) => {}
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or_default();
                let value: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
                if let Some(u) = user {
                    if value.as_ref().and_then(|v| v.get("user_id")).and_then(|v| v.as_u64()) != Some(u) {
                        continue;
                    }
                }
                let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                println!("── {}[{}]@{} key={}", m.topic(), m.partition(), m.offset(), key);
                match value {
                    Some(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
                    None => println!("{}", String::from_utf8_lossy(payload)),
                }
                shown += 1;
            }
            Some(Err(e)) => eprintln!("[feedflow] tail: {e} (retrying)"),
        }
    }
    Ok(())
}

/// `feedflow topics create`: every topic of the config, with its partition count.
pub fn topics_create(config: &Config) -> Result<()> {
    let topics = config.kafka.all_topics();
    let outcome = create_topics(&config.kafka, &topics, Duration::from_secs(30))?;
    for (name, partitions) in &topics {
        let what = match outcome.iter().find(|(n, _)| n == name).map(|(_, r)| r) {
            Some(TopicOutcome::Created) => "created",
            Some(TopicOutcome::Exists) => "exists",
            None => "unknown",
        };
        println!("{what:>8}  {name} ({partitions} partition(s))");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_routed_by_type_and_keyed() {
        assert_eq!(route(br#"{"type":"upload","ts":5,"post_id":42}"#), ("uploads", Some("42".into()), Some(5)));
        assert_eq!(route(br#"{"type":"moderation","ts":5,"post_id":4}"#).0, "uploads");
        assert_eq!(route(br#"{"type":"engagement","ts":6,"user_id":3}"#), ("engagements", Some("3".into()), Some(6)));
        assert_eq!(route(br#"{"type":"request","ts":7,"user_id":3}"#).0, "requests");
        assert_eq!(route(b"{not json"), ("uploads", None, None));
        assert_eq!(route(br#"{"type":"bogus","ts":1}"#), ("uploads", None, Some(1)));
    }
}
