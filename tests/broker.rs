//! Kafka round trips against a real broker (nisshi or Tansu): exactly-once delivery, restarts, latency.
//!
//! Needs the broker of `scripts/setup --broker` under `.tools/`; the fixture panics without it.

mod common;

use common::broker::{random_prefix, Broker};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts delivery reports and records client errors.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicUsize,
    failed: Mutex<Vec<String>>,
    errors: Mutex<Vec<String>>,
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.lock().unwrap().push(format!("{error}: {reason}"));
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => self.failed.lock().unwrap().push(error.to_string()),
        }
    }
}

/// An idempotent producer (Tansu 0.6.0 supports InitProducerId) with `extra` settings on top.
fn make_producer(broker: &Broker, extra: &[(&str, &str)]) -> BaseProducer<Deliveries> {
    let mut config = broker.client_config();
    config.set("enable.idempotence", "true").set("linger.ms", "5");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create_with_context(Deliveries::default()).expect("producer")
}

/// Produces `key{i}` → `value{i}` for `i` in `range`, then flushes; panics on failed deliveries.
fn produce(producer: &BaseProducer<Deliveries>, topic: &str, range: std::ops::Range<usize>) {
    let before = producer.context().delivered.load(Ordering::Relaxed);
    for i in range.clone() {
        let (key, value) = (format!("key{i}"), format!("value{i}"));
        let mut record = BaseRecord::to(topic).key(&key).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("send: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let failed = producer.context().failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "failed deliveries: {failed:?}");
    assert_eq!(producer.context().delivered.load(Ordering::Relaxed) - before, range.len());
}

/// A consumer with `partitions` of `topic` assigned from the beginning (no group join).
fn assigned_consumer(broker: &Broker, topic: &str, partitions: i32, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = broker.client_config();
    config
        .set("group.id", random_prefix())
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "20");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// Reads every partition up to its end (partition EOF); returns key → (partition, value) and the count.
fn read_to_end(consumer: &BaseConsumer, partitions: i32) -> (BTreeMap<String, Vec<(i32, String)>>, usize) {
    let mut seen: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    let mut at_end = HashMap::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions as usize {
        assert!(Instant::now() < deadline, "partitions did not reach their end within 60 s: {at_end:?}");
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition, true);
            }
            Some(Err(e)) => panic!("consume: {e}"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let key = String::from_utf8(m.key().expect("key").to_vec()).unwrap();
                let value = String::from_utf8(m.payload().expect("payload").to_vec()).unwrap();
                seen.entry(key).or_default().push((m.partition(), value));
                count += 1;
            }
        }
    }
    (seen, count)
}

/// Checks that `key0..key{n}` each arrived exactly once with the matching value.
fn assert_exactly_once(seen: &BTreeMap<String, Vec<(i32, String)>>, count: usize, n: usize) {
    for i in 0..n {
        let copies = seen.get(&format!("key{i}")).unwrap_or_else(|| panic!("key{i} is missing"));
        assert_eq!(copies.len(), 1, "key{i} arrived {} times", copies.len());
        assert_eq!(copies[0].1, format!("value{i}"));
    }
    assert_eq!(count, n, "unexpected extra messages");
}

#[test]
fn produced_messages_arrive_exactly_once_with_their_keys() {
    let broker = Broker::new();
    let topic = format!("{}events", random_prefix());
    broker.create_topics(&[(&topic, 2)]);
    assert!(broker.topic_names().contains(&topic));

    let n = 2000;
    let producer = make_producer(&broker, &[]);
    produce(&producer, &topic, 0..n);
    assert!(producer.context().errors.lock().unwrap().is_empty());

    let consumer = assigned_consumer(&broker, &topic, 2, &[]);
    let (seen, count) = read_to_end(&consumer, 2);
    assert_exactly_once(&seen, count, n);

    // The keys are spread over both partitions.
    let per_partition = |p| seen.values().filter(|copies| copies[0].0 == p).count();
    assert!(per_partition(0) > 0 && per_partition(1) > 0);

    // High watermarks (what consumer lag is computed from) add up to what was produced.
    let high: i64 =
        (0..2).map(|p| consumer.fetch_watermarks(&topic, p, Duration::from_secs(5)).expect("watermarks").1).sum();
    assert_eq!(high, n as i64);
}

#[test]
fn topics_and_messages_survive_a_broker_restart_and_the_producer_reconnects() {
    let mut broker = Broker::new();
    let topic = format!("{}restart", random_prefix());
    broker.create_topics(&[(&topic, 2)]);
    let producer = make_producer(&broker, &[("message.timeout.ms", "0")]);
    produce(&producer, &topic, 0..300);

    broker.stop();
    // Messages sent while the broker is down wait in the producer's queue.
    for i in 300..400 {
        producer.send(BaseRecord::to(&topic).key(&format!("key{i}")).payload(&format!("value{i}"))).expect("send");
    }
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(3) {
        producer.poll(Duration::from_millis(100));
    }
    assert_eq!(producer.context().delivered.load(Ordering::Relaxed), 300);
    broker.start();

    assert!(broker.topic_names().contains(&topic), "the topic is gone after the restart");
    producer.flush(Duration::from_secs(60)).expect("the queued messages are delivered after the restart");
    produce(&producer, &topic, 400..500);
    assert!(producer.context().failed.lock().unwrap().is_empty());

    let consumer = assigned_consumer(&broker, &topic, 2, &[]);
    let (seen, count) = read_to_end(&consumer, 2);
    assert_exactly_once(&seen, count, 500);
}

/// Percentile `q` (0–1) of sorted `values`.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Produce → consume latency of single small messages, one at a time, with the given
/// `fetch.wait.max.ms`: (median, p99, max) in milliseconds.
fn round_trip_latency(broker: &Broker, fetch_wait_ms: u32, n: usize) -> (f64, f64, f64) {
    let topic = format!("{}latency", random_prefix());
    broker.create_topics(&[(&topic, 1)]);
    let producer = make_producer(broker, &[("linger.ms", "0")]);
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", random_prefix())
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&assignment).expect("assign");
    let origin = Instant::now();
    let mut latencies = Vec::with_capacity(n);
    // Ten warm-up messages establish connections and the producer id; they are not counted.
    for i in 0..n + 10 {
        let sent = origin.elapsed().as_micros().to_string();
        producer.send(BaseRecord::to(&topic).key("k").payload(&sent)).expect("send");
        producer.poll(Duration::ZERO);
        let message = match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(m)) => m,
            Some(Err(e)) => panic!("consume: {e}"),
            None => panic!("no message within 5 s"),
        };
        let sent: u128 = std::str::from_utf8(message.payload().unwrap()).unwrap().parse().unwrap();
        if i >= 10 {
            latencies.push((origin.elapsed().as_micros() - sent) as f64 / 1000.0);
        }
        producer.poll(Duration::from_millis(5));
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    latencies.sort_by(f64::total_cmp);
    (percentile(&latencies, 0.5), percentile(&latencies, 0.99), *latencies.last().unwrap())
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().map(|x| x.parse::<f64>().unwrap_or(0.0)).sum());
    ticks / 100.0
}

/// Measures how the broker behaves for the Kafka connectors and prints a report; run with
/// `cargo test --release --test broker -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_broker() {
    let mut broker = Broker::new();
    let mut starts = vec![broker.last_start.as_secs_f64() * 1000.0];
    for _ in 0..4 {
        broker.stop();
        broker.start();
        starts.push(broker.last_start.as_secs_f64() * 1000.0);
    }
    println!("start-up until the port accepts (ms): {starts:.0?}");
    let asked = Instant::now();
    broker.topic_names();
    println!("first metadata request after start: {:.1} ms", asked.elapsed().as_secs_f64() * 1000.0);

    // Acknowledged produce round trip of single messages. (BaseProducer::flush and poll with a
    // timeout in rdkafka 0.39 block in 100 ms steps / until the timeout, so this spins on poll(0).)
    for idempotence in ["true", "false"] {
        let topic = format!("{}ack", random_prefix());
        broker.create_topics(&[(&topic, 1)]);
        let producer = make_producer(&broker, &[("linger.ms", "0"), ("enable.idempotence", idempotence)]);
        produce(&producer, &topic, 0..10);
        let mut acks: Vec<f64> = (0..200)
            .map(|i| {
                let delivered = producer.context().delivered.load(Ordering::Relaxed);
                let started = Instant::now();
                producer.send(BaseRecord::to(&topic).key("k").payload(&format!("{i}"))).unwrap();
                while producer.context().delivered.load(Ordering::Relaxed) == delivered {
                    producer.poll(Duration::ZERO);
                    std::thread::sleep(Duration::from_micros(100));
                }
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        acks.sort_by(f64::total_cmp);
        println!(
            "produce ack (idempotence={idempotence}): median {:.1} ms, p99 {:.1} ms",
            percentile(&acks, 0.5),
            percentile(&acks, 0.99)
        );
    }

    // Bulk produce and catch-up consumption of a backlog.
    let topic = format!("{}bulk", random_prefix());
    broker.create_topics(&[(&topic, 1)]);
    let producer = make_producer(&broker, &[]);
    let n = 50_000;
    let started = Instant::now();
    produce(&producer, &topic, 0..n);
    println!("bulk produce (idempotent, linger 5 ms, ~20 B): {:.0} msg/s", n as f64 / started.elapsed().as_secs_f64());
    for wait in ["500", "10"] {
        let consumer: BaseConsumer = broker
            .client_config()
            .set("group.id", random_prefix())
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", wait)
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&topic, 0, Offset::Beginning).unwrap();
        consumer.assign(&assignment).unwrap();
        let started = Instant::now();
        let (_, count) = read_to_end(&consumer, 1);
        assert_eq!(count, n);
        println!(
            "catch-up read of {n} messages, fetch.wait.max.ms={wait}: {:.0} msg/s",
            n as f64 / started.elapsed().as_secs_f64()
        );
    }

    for (wait, n) in [(1, 500), (10, 500), (50, 200), (500, 40)] {
        let (median, p99, max) = round_trip_latency(&broker, wait, n);
        println!("produce → consume, fetch.wait.max.ms={wait}, {n} messages: median {median:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
    }

    // Broker CPU while one idle consumer long-polls an empty partition.
    let topic = format!("{}idle", random_prefix());
    broker.create_topics(&[(&topic, 1)]);
    for wait in ["1", "10", "100", "500"] {
        let consumer: BaseConsumer =
            broker.client_config().set("group.id", random_prefix()).set("fetch.wait.max.ms", wait).create().unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&topic, 0, Offset::End).unwrap();
        consumer.assign(&assignment).unwrap();
        consumer.poll(Duration::from_secs(1));
        let before = cpu_seconds(broker.pid().unwrap());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            consumer.poll(Duration::from_millis(100));
        }
        let used = cpu_seconds(broker.pid().unwrap()) - before;
        println!("broker CPU with one idle consumer, fetch.wait.max.ms={wait}: {:.0} %", used / 5.0 * 100.0);
    }

    // A producer and a consumer across a 5 s broker outage.
    for backoff in [None, Some("500")] {
        restart_recovery(&mut broker, backoff);
    }

    // DeleteTopics of one topic (the last step: on SQLite storage it takes the others along).
    let (doomed, bystander) = (format!("{}doomed", random_prefix()), format!("{}bystander", random_prefix()));
    broker.create_topics(&[(&doomed, 1), (&bystander, 1)]);
    let before = broker.topic_names().len();
    let result = broker.delete_topics(&[&doomed]);
    let after = broker.topic_names();
    println!(
        "delete_topics([one of {before}]): {result:?}; afterwards {} topics remain, the other new one {}",
        after.len(),
        if after.contains(&bystander) { "survived" } else { "is gone too" }
    );
}

/// Stops the broker for 5 s under a producer (message.timeout.ms=0) and an assigned consumer and
/// prints what they report and how soon they recover, optionally with `reconnect.backoff.max.ms`.
fn restart_recovery(broker: &mut Broker, reconnect_backoff_max_ms: Option<&str>) {
    let topic = format!("{}resume", random_prefix());
    broker.create_topics(&[(&topic, 1)]);
    let mut settings = vec![("message.timeout.ms", "0")];
    settings.extend(reconnect_backoff_max_ms.map(|ms| ("reconnect.backoff.max.ms", ms)));
    let producer = make_producer(broker, &settings);
    let consumer = assigned_consumer(broker, &topic, 1, &settings[1..]);
    produce(&producer, &topic, 0..10);
    assert_eq!(read_to_end(&consumer, 1).1, 10);

    broker.stop();
    let down = Instant::now();
    for i in 10..20 {
        producer.send(BaseRecord::to(&topic).key(&format!("key{i}")).payload(&format!("value{i}"))).unwrap();
    }
    let mut consumer_errors = Vec::new();
    while down.elapsed() < Duration::from_secs(5) {
        producer.poll(Duration::from_millis(50));
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(50)) {
            consumer_errors.push(e.to_string());
        }
    }
    let errors = producer.context().errors.lock().unwrap().clone();
    println!(
        "outage 5 s (reconnect.backoff.max.ms={}): {} producer error callbacks (first: {:?}), {} failed deliveries, \
         {} consumer poll errors (first: {:?})",
        reconnect_backoff_max_ms.unwrap_or("default"),
        errors.len(),
        errors.first(),
        producer.context().failed.lock().unwrap().len(),
        consumer_errors.len(),
        consumer_errors.first()
    );
    broker.start();
    let restarted = Instant::now();
    while producer.context().delivered.load(Ordering::Relaxed) < 20 {
        assert!(restarted.elapsed() < Duration::from_secs(60), "queued messages not delivered");
        producer.poll(Duration::from_millis(10));
    }
    let delivered = restarted.elapsed().as_secs_f64();
    let (_, count) = read_to_end(&consumer, 1);
    println!(
        "  after the restart: the 10 queued messages delivered in {delivered:.2} s, the consumer read {count} of \
         them by {:.2} s",
        restarted.elapsed().as_secs_f64()
    );
}
