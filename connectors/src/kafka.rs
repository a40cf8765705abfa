//! Kafka clients: settings, topic admin, deterministic partition assignment and the output producer.
//!
//! Transport only: messages are bytes here; `codec` interprets them. Consumers
//! are assigned partitions explicitly (no consumer-group rebalancing inside the
//! dataflow), and the producer never drops a message silently: a failed delivery
//! is counted and sent again.

use crate::kafka_config::{KafkaConfig, StartFrom, INPUT_TOPICS};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What went wrong talking to Kafka, tagged with whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The configuration cannot make a client (bad setting, unreadable secret).
    #[error("kafka configuration: {0}")]
    Config(String),
    /// A client call failed.
    #[error("kafka: {what}: {source}")]
    Client {
        /// What was being done.
        what: String,
        /// librdkafka's error.
        source: RdError,
    },
    /// An input topic does not exist on the broker.
    #[error("kafka: topic {0:?} does not exist (create it with `feedflow topics create`)")]
    MissingTopic(String),
    /// A topic could not be read to its end in time.
    #[error("kafka: {0}")]
    Incomplete(String),
}

impl KafkaError {
    /// Whether the same call may succeed later (broker unreachable, timeouts).
    pub fn retryable(&self) -> bool {
        match self {
            KafkaError::Config(_) | KafkaError::MissingTopic(_) => false,
            KafkaError::Incomplete(_) => true,
            KafkaError::Client { source, .. } => matches!(
                source.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::BrokerTransportFailure
                        | RDKafkaErrorCode::AllBrokersDown
                        | RDKafkaErrorCode::OperationTimedOut
                        | RDKafkaErrorCode::RequestTimedOut
                        | RDKafkaErrorCode::QueueFull
                        | RDKafkaErrorCode::LeaderNotAvailable
                        | RDKafkaErrorCode::NotLeaderForPartition
                )
            ),
        }
    }
}

fn client_error(what: &str) -> impl FnOnce(RdError) -> KafkaError + '_ {
    move |source| KafkaError::Client { what: what.to_string(), source }
}

/// librdkafka errors and logs, printed to stderr at most once per second per kind
/// (a broker that is down would otherwise print a line per reconnect attempt).
#[derive(Default)]
pub struct ErrorLog {
    last: Mutex<BTreeMap<String, Instant>>,
    /// Client errors reported by librdkafka (broker down, timeouts…); it retries them itself.
    pub errors: AtomicU64,
}

impl ErrorLog {
    /// Counts an error and prints it unless the same kind was printed within the last second.
    pub fn report(&self, who: &str, kind: String, message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.get(&kind).is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            last.insert(kind, now);
            eprintln!("[feedflow] kafka {who}: {message} (librdkafka retries)");
        }
    }
}

/// Consumer lag per (topic, partition), from librdkafka's statistics.
pub type LagTable = Mutex<BTreeMap<(String, i32), i64>>;

/// The context of the engine's input consumers: error reporting and consumer lag.
pub struct InputContext {
    /// Lag of every assigned partition, updated every `statistics.interval.ms`.
    pub lag: Arc<LagTable>,
    /// Shared error reporting.
    pub errors: Arc<ErrorLog>,
}

impl ClientContext for InputContext {
    fn stats(&self, statistics: Statistics) {
        let mut lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        for (name, topic) in statistics.topics {
            for (partition, p) in topic.partitions {
                // librdkafka's own `consumer_lag` counts from committed offsets, and this
                // consumer commits none: the lag is the high watermark minus the next
                // offset handed to the engine (or the low watermark before the first).
                // Partition -1 is librdkafka's internal one; negative offsets are unknown.
                if partition < 0 || p.hi_offset < 0 {
                    continue;
                }
                let next = if p.app_offset >= 0 { p.app_offset } else { p.lo_offset.max(0) };
                lag.insert((name.clone(), partition), (p.hi_offset - next).max(0));
            }
        }
    }
    fn error(&self, error: RdError, reason: &str) {
        self.errors.report("consumer", format!("{:?}", error.rdkafka_error_code()), reason);
    }
}
impl ConsumerContext for InputContext {}

/// Every client's base settings: the config's (secrets resolved) and `extra`.
pub fn client_config(kafka: &KafkaConfig, extra: &[(&str, &str)]) -> Result<ClientConfig, KafkaError> {
    let mut c = ClientConfig::new();
    for (k, v) in kafka.client_settings().map_err(KafkaError::Config)? {
        c.set(k, v);
    }
    // librdkafka backs off up to 10 s between reconnects; a broker back after a
    // restart is found within a second with this (measured on Tansu: 0.2 s vs 1.5–5.7 s).
    let defaults = [("reconnect.backoff.max.ms", "1000")];
    for (k, v) in defaults.iter().chain(extra) {
        // The config's own settings win, so an operator can override any default here.
        if !kafka.client.contains_key(*k) {
            c.set(*k, *v);
        }
    }
    Ok(c)
}

/// Settings of a consumer that is assigned partitions explicitly and commits nothing.
pub fn consumer_settings(kafka: &KafkaConfig, group: &str) -> Result<ClientConfig, KafkaError> {
    let reset = match kafka.start_from {
        StartFrom::Earliest => "earliest",
        StartFrom::Latest => "latest",
    };
    client_config(
        kafka,
        &[
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            ("auto.offset.reset", reset),
            ("fetch.wait.max.ms", "10"),
            ("statistics.interval.ms", "1000"),
        ],
    )
}

/// A consumer of the engine's input topics, with lag statistics.
pub fn input_consumer(
    kafka: &KafkaConfig,
    lag: Arc<LagTable>,
    errors: Arc<ErrorLog>,
) -> Result<BaseConsumer<InputContext>, KafkaError> {
    let group = format!("{}-engine", kafka.client_id);
    consumer_settings(kafka, &group)?
        .create_with_context(InputContext { lag, errors })
        .map_err(client_error("creating the input consumer"))
}

/// A plain consumer for the command-line tools (`record`, `tail`).
pub fn tool_consumer(kafka: &KafkaConfig) -> Result<BaseConsumer, KafkaError> {
    let group = format!("{}-tools", kafka.client_id);
    consumer_settings(kafka, &group)?.create().map_err(client_error("creating a consumer"))
}

/// The number of partitions of `topic`; `MissingTopic` when the broker does not know it.
pub fn partition_count<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<usize, KafkaError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(client_error(&format!("reading the metadata of {topic}")))?;
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
        _ => Err(KafkaError::MissingTopic(topic.to_string())),
    }
}

/// Which records of a partition [`read_headers`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Records {
    /// Only the last one.
    Last,
    /// Every one.
    All,
}

/// The value of header `name` on the last (or every) record of each of `partitions` partitions of
/// `topic`, in offset order; records without it are left out. Gives up after `timeout`.
pub fn read_headers(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: usize,
    name: &str,
    which: Records,
    timeout: Duration,
) -> Result<Vec<Vec<Vec<u8>>>, KafkaError> {
    let consumer: BaseConsumer = consumer_settings(kafka, &format!("{}-delivered", kafka.client_id))?
        .create()
        .map_err(client_error("creating the consumer of the outputs"))?;
    let mut found = vec![Vec::new(); partitions];
    // Partition → the offset of its last record, while it is still to be read up to.
    let mut last = BTreeMap::new();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(client_error(&format!("reading the offsets of {topic}/{p}")))?;
        if high > low {
            let from = if which == Records::Last { high - 1 } else { low };
            list.add_partition_offset(topic, p, Offset::Offset(from))
                .map_err(client_error(&format!("seeking {topic}/{p}")))?;
            last.insert(p, high - 1);
        }
    }
    if last.is_empty() {
        return Ok(found);
    }
    consumer.assign(&list).map_err(client_error(&format!("assigning the partitions of {topic}")))?;
    let deadline = Instant::now() + timeout;
    while !last.is_empty() {
        if Instant::now() >= deadline {
            return Err(KafkaError::Incomplete(format!(
                "{topic}: partitions {:?} not read to their end within {timeout:?}",
                last.keys().collect::<Vec<_>>()
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let p = m.partition();
                if let Some(value) = header_value(&m, name) {
                    found[p as usize].push(value.to_vec());
                }
                if last.get(&p).is_some_and(|end| m.offset() >= *end) {
                    last.remove(&p);
                }
            }
            Some(Err(RdError::PartitionEOF(p))) => {
                last.remove(&p);
            }
            Some(Err(e)) => return Err(client_error(&format!("reading {topic}"))(e)),
            None => {}
        }
    }
    Ok(found)
}

/// The input partitions one worker reads: partition `p` of every input topic
/// goes to worker `p mod workers`. Returns (source index, topic, partition).
pub fn assignment(kafka: &KafkaConfig, counts: &[usize; 3], worker: usize, workers: usize) -> Vec<(u32, String, i32)> {
    let mut mine = Vec::new();
    for (source, role) in INPUT_TOPICS.iter().enumerate() {
        for p in 0..counts[source] {
            if p % workers.max(1) == worker {
                mine.push((source as u32, kafka.topic(role), p as i32));
            }
        }
    }
    mine
}

/// Assigns `partitions` to `consumer`, each from the start or the end (`kafka.start_from`).
pub fn assign<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[(u32, String, i32)],
    start: StartFrom,
) -> Result<(), KafkaError> {
    let mut list = TopicPartitionList::new();
    let offset = match start {
        StartFrom::Earliest => Offset::Beginning,
        StartFrom::Latest => Offset::End,
    };
    for (_, topic, p) in partitions {
        list.add_partition_offset(topic, *p, offset).map_err(client_error("building the assignment"))?;
    }
    consumer.assign(&list).map_err(client_error("assigning partitions"))
}

/// Whether a topic was made by [`create_topics`] or was there already.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicOutcome {
    /// Created now.
    Created,
    /// It existed before.
    Exists,
}

/// Creates `topics` (name, partitions); a topic that exists already is not an error.
pub fn create_topics(
    kafka: &KafkaConfig,
    topics: &[(String, i32)],
    timeout: Duration,
) -> Result<Vec<(String, TopicOutcome)>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(kafka, &[])?.create().map_err(client_error("creating an admin client"))?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(kafka.replication_factor)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    let results = block_on(admin.create_topics(&new, &options)).map_err(client_error("creating topics"))?;
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(name) => out.push((name, TopicOutcome::Created)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => out.push((name, TopicOutcome::Exists)),
            Err((name, code)) => {
                return Err(KafkaError::Client {
                    what: format!("creating topic {name}"),
                    source: RdError::AdminOp(code),
                })
            }
        }
    }
    Ok(out)
}

/// Drives one admin future to completion (librdkafka's own thread does the I/O).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

/// The header that carries an output record's position in the engine's output order
/// (`dataflows::delivered`): what a restart reads back to skip what was already delivered.
pub const POSITION_HEADER: &str = "feedflow-position";

/// One output message.
#[derive(Clone, Copy, Debug)]
pub struct OutRecord<'a> {
    /// The topic.
    pub topic: &'a str,
    /// An explicit partition, or none for librdkafka's partitioner.
    pub partition: Option<i32>,
    /// The key (user_id for responses).
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub payload: &'a [u8],
    /// The value of the [`POSITION_HEADER`] header, if any.
    pub position: Option<&'a [u8]>,
    /// For responses: when the request arrived (delivery latency).
    pub arrival: Option<Instant>,
}

impl OutRecord<'_> {
    fn base(&self) -> BaseRecord<'_, [u8], [u8], Box<Delivery>> {
        let delivery = Delivery { arrival: self.arrival, partition: self.partition };
        let mut record = BaseRecord::with_opaque_to(self.topic, Box::new(delivery)).payload(self.payload);
        if let Some(k) = self.key {
            record = record.key(k);
        }
        if let Some(p) = self.partition {
            record = record.partition(p);
        }
        if let Some(position) = self.position {
            record = record.headers(OwnedHeaders::new().insert(Header { key: POSITION_HEADER, value: Some(position) }));
        }
        record
    }
}

/// What a delivery report needs back: the request's arrival, and the partition asked for
/// (a message sent again goes to the same one).
#[derive(Debug)]
pub struct Delivery {
    arrival: Option<Instant>,
    partition: Option<i32>,
}

/// A message whose delivery failed, kept to be sent again.
#[derive(Debug)]
struct Failed {
    topic: String,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    position: Option<Vec<u8>>,
    arrival: Option<Instant>,
}

impl Failed {
    fn record(&self) -> OutRecord<'_> {
        OutRecord {
            topic: &self.topic,
            partition: self.partition,
            key: self.key.as_deref(),
            payload: &self.payload,
            position: self.position.as_deref(),
            arrival: self.arrival,
        }
    }
}

/// The value of `name` among a message's headers.
pub fn header_value<'a, M: Message>(message: &'a M, name: &str) -> Option<&'a [u8]> {
    message.headers()?.iter().find(|h| h.key == name).and_then(|h| h.value)
}

/// Called for every delivery report: the topic, whether it succeeded (a failed
/// message is sent again), and for responses the request's arrival.
pub type OnDelivered = Box<dyn Fn(&str, bool, Option<Instant>) + Send + Sync>;

/// Counters of the output producer.
#[derive(Default, Debug)]
pub struct OutputCounters {
    /// Messages handed to the producer (a resend counts again).
    pub sent: AtomicU64,
    /// Delivery reports with success.
    pub delivered: AtomicU64,
    /// Delivery reports with an error (each is sent again).
    pub failed: AtomicU64,
}

/// The output producer's context: delivery reports, the resend queue, errors.
pub struct OutputContext {
    failed: Mutex<Vec<Failed>>,
    on_delivered: Option<OnDelivered>,
    /// Counters, shared with metrics.
    pub counters: OutputCounters,
    errors: Arc<ErrorLog>,
}

impl ClientContext for OutputContext {
    fn error(&self, error: RdError, reason: &str) {
        self.errors.report("producer", format!("{:?}", error.rdkafka_error_code()), reason);
    }
}

impl ProducerContext for OutputContext {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Self::DeliveryOpaque) {
        let arrival = delivery.arrival;
        match result {
            Ok(message) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = &self.on_delivered {
                    f(message.topic(), true, arrival);
                }
            }
            Err((error, message)) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = &self.on_delivered {
                    f(message.topic(), false, None);
                }
                self.errors.report(
                    "producer",
                    "delivery".into(),
                    &format!("delivery to {} failed: {error}; sending it again", message.topic()),
                );
                self.failed.lock().unwrap_or_else(|e| e.into_inner()).push(Failed {
                    topic: message.topic().to_string(),
                    partition: delivery.partition,
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    position: header_value(message, POSITION_HEADER).map(<[u8]>::to_vec),
                    arrival,
                });
            }
        }
    }
}

/// The producer of the output topics: idempotent when configured, messages
/// never time out in librdkafka, and failed deliveries are sent again.
pub struct OutputProducer {
    producer: ThreadedProducer<OutputContext>,
}

impl OutputProducer {
    /// Connects (lazily: librdkafka connects in the background).
    pub fn new(
        kafka: &KafkaConfig,
        errors: Arc<ErrorLog>,
        on_delivered: Option<OnDelivered>,
    ) -> Result<Self, KafkaError> {
        let idempotent = if kafka.idempotent { "true" } else { "false" };
        let settings = client_config(
            kafka,
            &[
                ("enable.idempotence", idempotent),
                // 0 = no limit: librdkafka keeps retrying while the broker is away.
                ("message.timeout.ms", "0"),
                ("linger.ms", "5"),
                ("queue.buffering.max.messages", "1000000"),
            ],
        )?;
        let context =
            OutputContext { failed: Mutex::new(Vec::new()), on_delivered, counters: OutputCounters::default(), errors };
        let producer = settings.create_with_context(context).map_err(client_error("creating the output producer"))?;
        Ok(Self { producer })
    }

    /// Queues one message; waits while librdkafka's queue is full.
    pub fn send(&self, topic: &str, key: Option<&[u8]>, payload: &[u8], arrival: Option<Instant>) {
        self.send_record(OutRecord { topic, partition: None, key, payload, position: None, arrival });
    }

    /// Queues one message with its partition and position; waits while librdkafka's queue is full.
    pub fn send_record(&self, record: OutRecord<'_>) {
        self.resend_failed();
        self.enqueue(record.base());
        self.producer.context().counters.sent.fetch_add(1, Ordering::Relaxed);
    }

    fn enqueue(&self, mut record: BaseRecord<'_, [u8], [u8], Box<Delivery>>) {
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((_, back)) => {
                    // Queue full (or a transient local error): let deliveries drain and try again.
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
            }
        }
    }

    fn resend_failed(&self) {
        let failed = std::mem::take(&mut *self.producer.context().failed.lock().unwrap_or_else(|e| e.into_inner()));
        for f in &failed {
            self.enqueue(f.record().base());
        }
    }

    /// Messages queued or in flight, plus failed ones waiting to be sent again.
    pub fn pending(&self) -> usize {
        self.producer.in_flight_count().max(0) as usize
            + self.producer.context().failed.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The producer's counters.
    pub fn counters(&self) -> &OutputCounters {
        &self.producer.context().counters
    }

    /// Waits until everything is delivered or `timeout` passes; returns what is still undelivered.
    pub fn flush(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            self.resend_failed();
            let _ = self.producer.flush(Duration::from_millis(100));
            let pending = self.pending();
            if pending == 0 || Instant::now() >= deadline {
                return pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_spread_over_workers_deterministically() {
        let k = KafkaConfig::default();
        let a = assignment(&k, &[2, 3, 1], 0, 2);
        let b = assignment(&k, &[2, 3, 1], 1, 2);
        assert_eq!(
            a,
            vec![
                (0, "uploads".to_string(), 0),
                (1, "engagements".to_string(), 0),
                (1, "engagements".to_string(), 2),
                (2, "requests".to_string(), 0)
            ]
        );
        assert_eq!(b, vec![(0, "uploads".to_string(), 1), (1, "engagements".to_string(), 1)]);
        assert_eq!(assignment(&k, &[2, 3, 1], 0, 1).len(), 6);
    }

    #[test]
    fn config_settings_override_the_defaults() {
        let mut k = KafkaConfig::default();
        k.client.insert("fetch.wait.max.ms".into(), "50".into());
        let c = consumer_settings(&k, "g").unwrap();
        assert_eq!(c.get("fetch.wait.max.ms"), Some("50"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:9092"));
    }

    #[test]
    fn errors_say_whether_a_retry_helps() {
        assert!(!KafkaError::MissingTopic("x".into()).retryable());
        let e =
            KafkaError::Client { what: "x".into(), source: RdError::MetadataFetch(RDKafkaErrorCode::AllBrokersDown) };
        assert!(e.retryable());
    }
}
