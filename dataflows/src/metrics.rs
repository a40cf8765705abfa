//! Prometheus metrics of a run (DESIGN.md §9) and the HTTP endpoint that serves them.
//!
//! One [`Metrics`] per process, shared by its workers. Names and labels are
//! listed in the README; every name starts with `feedflow_`.

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// The wire types of valid events.
const EVENT_TYPES: [&str; 4] = ["upload", "engagement", "moderation", "request"];
/// What happened to a valid event.
pub const EVENT_OUTCOMES: [&str; 3] = ["applied", "late", "duplicate"];

/// Every metric of a run.
pub struct Metrics {
    /// The registry the endpoint encodes.
    pub registry: Registry,
    /// Valid events read, by type and outcome (`applied`, `late`, `duplicate`); count with [`Metrics::event`].
    pub events: IntCounterVec,
    /// `events` resolved once per (type, outcome): counting an event is then one atomic add, not a label lookup.
    event_counters: Vec<IntCounter>,
    /// Rejected messages by DLQ reason.
    pub dlq: IntCounterVec,
    /// Responses by what was degraded (`none`, `ranker_fallback`, `partial_prefix`, …).
    pub responses: IntCounterVec,
    /// Request latency: arrival at the consumer → the response's delivery report (live mode).
    pub request_latency: Histogram,
    /// Where a request's latency goes: read → its tick closed at the input (`input_closed`),
    /// read → its response handed to the producer (`answered`).
    pub request_stage: HistogramVec,
    /// Event time of the input frontier (ms since the epoch).
    pub frontier_ts: IntGauge,
    /// Newest event time read minus the frontier, in ms: how far time is held back.
    pub frontier_lag: IntGauge,
    /// Event time every output is complete up to (ms): the input frontier minus the graph's backlog.
    pub processed_ts: IntGauge,
    /// Vectors in the index, per worker.
    pub index_size: IntGaugeVec,
    /// Wall time from reading an upload to the end of its tick (searchable from then on).
    pub insert_to_searchable: Histogram,
    /// Posts in the trending pool.
    pub trending_pool: IntGauge,
    /// Time to score one request's candidates with the model.
    pub ranker_batch: Histogram,
    /// Responses scored by the fallback (a failed model, or the model guard's choice).
    pub ranker_fallback: IntCounter,
    /// 1 while the model guard hands the answers to the fallback, else 0.
    pub ranker_guard_fallback: IntGauge,
    /// New models seen by the hot-reload watcher, by outcome (`accepted`, `rejected`).
    pub model_reloads: IntCounterVec,
    /// Messages not yet consumed, per input topic and partition (librdkafka statistics).
    pub consumer_lag: IntGaugeVec,
    /// Output messages by topic and outcome (`delivered`, `failed`; failed ones are sent again).
    pub output: IntCounterVec,
    /// Client errors reported by librdkafka (broker unreachable, timeouts…).
    pub kafka_errors: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry.register(Box::new(metric.clone())).expect("metric names are unique");
    metric
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let r = Registry::new();
        let latency_buckets = exponential_buckets(0.0005, 2.0, 16).expect("valid buckets");
        let m = Metrics {
            events: register(
                &r,
                IntCounterVec::new(
                    Opts::new("feedflow_events_total", "Valid events read, by type and outcome"),
                    &["type", "outcome"],
                )
                .expect("valid"),
            ),
            dlq: register(
                &r,
                IntCounterVec::new(Opts::new("feedflow_dlq_total", "Rejected messages by reason"), &["reason"])
                    .expect("valid"),
            ),
            responses: register(
                &r,
                IntCounterVec::new(Opts::new("feedflow_responses_total", "Responses by degradation"), &["degraded"])
                    .expect("valid"),
            ),
            request_latency: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "feedflow_request_latency_seconds",
                        "Request arrival at the consumer to the response's delivery report",
                    )
                    .buckets(latency_buckets.clone()),
                )
                .expect("valid"),
            ),
            request_stage: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "feedflow_request_stage_seconds",
                        "Request arrival at the consumer to a stage: input_closed (its tick complete), answered (response sent)",
                    )
                    .buckets(latency_buckets.clone()),
                    &["stage"],
                )
                .expect("valid"),
            ),
            frontier_ts: register(
                &r,
                IntGauge::new("feedflow_frontier_ts_ms", "Event time of the input frontier (ms)").expect("valid"),
            ),
            frontier_lag: register(
                &r,
                IntGauge::new("feedflow_frontier_lag_ms", "Newest event time read minus the frontier (ms)")
                    .expect("valid"),
            ),
            processed_ts: register(
                &r,
                IntGauge::new("feedflow_processed_ts_ms", "Event time every output is complete up to (ms)")
                    .expect("valid"),
            ),
            index_size: register(
                &r,
                IntGaugeVec::new(Opts::new("feedflow_index_size", "Vectors in the index, per worker"), &["worker"])
                    .expect("valid"),
            ),
            insert_to_searchable: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "feedflow_insert_to_searchable_seconds",
                        "Reading an upload to the end of its tick, when it becomes searchable",
                    )
                    .buckets(latency_buckets.clone()),
                )
                .expect("valid"),
            ),
            trending_pool: register(
                &r,
                IntGauge::new("feedflow_trending_pool_size", "Posts in the trending pool").expect("valid"),
            ),
            ranker_batch: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("feedflow_ranker_batch_seconds", "Model scoring time of one request's batch")
                        .buckets(exponential_buckets(0.00005, 2.0, 16).expect("valid buckets")),
                )
                .expect("valid"),
            ),
            ranker_fallback: register(
                &r,
                IntCounter::new("feedflow_ranker_fallback_total", "Responses scored by the fallback").expect("valid"),
            ),
            ranker_guard_fallback: register(
                &r,
                IntGauge::new(
                    "feedflow_ranker_guard_fallback",
                    "1 while the model guard hands the answers to the fallback (this log's probes favour it)",
                )
                .expect("valid"),
            ),
            model_reloads: register(
                &r,
                IntCounterVec::new(
                    Opts::new("feedflow_model_reloads_total", "New model files seen by the hot-reload watcher"),
                    &["outcome"],
                )
                .expect("valid"),
            ),
            consumer_lag: register(
                &r,
                IntGaugeVec::new(
                    Opts::new("feedflow_consumer_lag", "Messages not yet consumed"),
                    &["topic", "partition"],
                )
                .expect("valid"),
            ),
            output: register(
                &r,
                IntCounterVec::new(
                    Opts::new("feedflow_output_messages_total", "Output messages by outcome"),
                    &["topic", "outcome"],
                )
                .expect("valid"),
            ),
            kafka_errors: register(
                &r,
                IntCounter::new("feedflow_kafka_client_errors_total", "Client errors reported by librdkafka")
                    .expect("valid"),
            ),
            event_counters: Vec::new(),
            registry: r,
        };
        let mut m = m;
        m.event_counters = EVENT_TYPES
            .iter()
            .flat_map(|t| EVENT_OUTCOMES.iter().map(move |o| (t, o)))
            .map(|(t, o)| m.events.with_label_values(&[t, o]))
            .collect();
        Arc::new(m)
    }

    /// Counts one valid event of `type_name` (a wire type name) with `outcome` (one of [`EVENT_OUTCOMES`]).
    pub fn event(&self, type_name: &str, outcome: &str) {
        self.events_by(type_name, outcome, 1);
    }

    /// Counts `n` events of a type with an outcome at once.
    pub fn events_by(&self, type_name: &str, outcome: &str, n: u64) {
        let t = EVENT_TYPES.iter().position(|x| *x == type_name);
        let o = EVENT_OUTCOMES.iter().position(|x| *x == outcome);
        match (t, o) {
            (Some(t), Some(o)) => self.event_counters[t * EVENT_OUTCOMES.len() + o].inc_by(n),
            _ => self.events.with_label_values(&[type_name, outcome]).inc_by(n),
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Vec<u8> {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        buffer
    }
}

/// The metrics address of process `process` of a cluster: the configured port plus the process
/// index, so the processes of one machine do not collide (port 0, a free port, stays 0).
pub fn address_for_process(address: &str, process: usize) -> Result<String, String> {
    if process == 0 {
        return Ok(address.to_string());
    }
    let (host, port) = address.rsplit_once(':').ok_or_else(|| format!("metrics address {address} has no port"))?;
    let port: u16 = port.parse().map_err(|_| format!("metrics address {address}: bad port"))?;
    if port == 0 {
        return Ok(address.to_string());
    }
    let shifted = u16::try_from(process)
        .ok()
        .and_then(|p| port.checked_add(p))
        .ok_or_else(|| format!("metrics address {address}: port {port} + process {process} is past 65535"))?;
    Ok(format!("{host}:{shifted}"))
}

/// Serves `GET /metrics` on `address` from a background thread; returns the bound address
/// (port 0 picks a free one).
pub fn serve(metrics: Arc<Metrics>, address: &str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("feedflow-metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            // Read the whole request head: closing with unread bytes would reset the connection.
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request);
            let (status, body) = if line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?") {
                ("200 OK", metrics.encode())
            } else {
                ("404 Not Found", b"feedflow serves GET /metrics\n".to_vec())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
        }
    })?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_of_a_cluster_gets_its_own_metrics_port() {
        assert_eq!(address_for_process("127.0.0.1:9464", 0).unwrap(), "127.0.0.1:9464");
        assert_eq!(address_for_process("127.0.0.1:9464", 2).unwrap(), "127.0.0.1:9466");
        assert_eq!(address_for_process("[::1]:9464", 1).unwrap(), "[::1]:9465");
        assert_eq!(address_for_process("127.0.0.1:0", 3).unwrap(), "127.0.0.1:0", "a free port stays free");
        assert!(address_for_process("127.0.0.1:65535", 1).is_err());
        assert!(address_for_process("localhost", 1).is_err());
    }

    /// The Grafana dashboard under `config/` queries only metrics the engine registers, and
    /// covers what an operator watches first.
    #[test]
    fn the_grafana_dashboard_queries_registered_metrics() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../config/grafana-dashboard.json")).expect("the dashboard is JSON");
        let m = Metrics::new();
        // Vectors appear in a scrape once they have a child.
        m.dlq.with_label_values(&["x"]).inc();
        m.responses.with_label_values(&["none"]).inc();
        m.request_stage.with_label_values(&["answered"]).observe(0.001);
        m.index_size.with_label_values(&["0"]).set(1);
        m.consumer_lag.with_label_values(&["t", "0"]).set(0);
        m.output.with_label_values(&["t", "delivered"]).inc();
        m.model_reloads.with_label_values(&["accepted"]).inc();
        let registered: Vec<String> = m.registry.gather().iter().map(|f| f.name().to_string()).collect();
        let mut queried = std::collections::BTreeSet::new();
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                for (at, _) in expr.match_indices("feedflow_") {
                    let name: String =
                        expr[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    let family = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|suffix| name.strip_suffix(suffix).filter(|f| registered.iter().any(|r| r == f)))
                        .unwrap_or(&name)
                        .to_string();
                    assert!(registered.contains(&family), "the dashboard queries {name}, which is not registered");
                    queried.insert(family);
                }
            }
        }
        for wanted in [
            "feedflow_request_latency_seconds",
            "feedflow_frontier_lag_ms",
            "feedflow_consumer_lag",
            "feedflow_events_total",
            "feedflow_dlq_total",
            "feedflow_index_size",
            "feedflow_ranker_fallback_total",
        ] {
            assert!(queried.contains(wanted), "the dashboard has no panel on {wanted}");
        }
    }

    #[test]
    fn the_endpoint_serves_the_text_format() {
        let m = Metrics::new();
        (0..3).for_each(|_| m.event("upload", "applied"));
        m.request_latency.observe(0.004);
        let addr = serve(m.clone(), "127.0.0.1:0").unwrap();
        let get = |path: &str| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            body
        };
        let body = get("/metrics");
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("feedflow_events_total{outcome=\"applied\",type=\"upload\"} 3"), "{body}");
        assert!(body.contains("feedflow_request_latency_seconds_count 1"), "{body}");
        assert!(get("/other").starts_with("HTTP/1.1 404"));
    }
}
