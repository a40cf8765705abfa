//! Exactly-once outputs by determinism: each output record's position, and what a restart skips.
//!
//! The engine's outputs are a function of its input (DESIGN.md §1): a run over
//! the same topics writes the same records in the same order. So every output
//! record carries its position in that order in the `feedflow-position`
//! header — `t:{tick}:{seq}` for responses, impressions and trending changes
//! (the tick and the record's index in that tick's sorted batch), and
//! `i:{source}:{partition}:{offset}` for DLQ records (the rejected input's
//! position: a rejected message enters at the frontier of its arrival, so its
//! tick is not a function of the input) — and goes to a partition chosen from
//! its key alone. Each partition then receives its records in increasing
//! position (the producer is idempotent, so retries keep the order), and on
//! start the engine reads back what each output partition holds — the last
//! record of the ticked streams, every DLQ record — and skips every record at
//! or before it: after a crash and a rebuild from the topics, nothing already
//! delivered is sent again and nothing is lost. Answers marked `degraded` are
//! the exception: they depend on arrival timing, so the run after a restart
//! may order that tick differently.

use feedflow_connectors::kafka::{read_headers, KafkaError, Records, POSITION_HEADER};
use feedflow_connectors::kafka_config::KafkaConfig;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where an output record stands in the engine's output order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutputPosition {
    /// The `seq`-th record of its stream written for `tick`.
    Tick {
        /// The tick.
        tick: u64,
        /// Its index among the stream's records of that tick.
        seq: u64,
    },
    /// The record about the input message at this position (the DLQ).
    Input {
        /// Input topic index.
        source: u32,
        /// Input partition.
        partition: u32,
        /// Offset in that partition.
        offset: u64,
    },
}

impl OutputPosition {
    /// The header value.
    pub fn encode(&self) -> String {
        match self {
            OutputPosition::Tick { tick, seq } => format!("t:{tick}:{seq}"),
            OutputPosition::Input { source, partition, offset } => format!("i:{source}:{partition}:{offset}"),
        }
    }

    /// Reads a header value; none for anything else.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split(':');
        let kind = parts.next()?;
        let numbers: Vec<u64> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
        match (kind, numbers.as_slice()) {
            ("t", [tick, seq]) => Some(OutputPosition::Tick { tick: *tick, seq: *seq }),
            ("i", [source, partition, offset]) => Some(OutputPosition::Input {
                source: u32::try_from(*source).ok()?,
                partition: u32::try_from(*partition).ok()?,
                offset: *offset,
            }),
            _ => None,
        }
    }
}

/// The output partition of a record: FNV-1a of its key, or partition 0 for unkeyed records, so
/// that the same record goes to the same partition in every run.
pub fn output_partition(key: Option<&[u8]>, partitions: usize) -> i32 {
    let Some(key) = key else { return 0 };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % partitions.max(1) as u64) as i32
}

/// What one output topic already holds.
#[derive(Debug, Default)]
struct TopicDelivered {
    /// Per partition, the position of its last ticked record.
    last_tick: Vec<Option<(u64, u64)>>,
    /// Per input (source, partition), the highest offset recorded.
    inputs: BTreeMap<(u32, u32), u64>,
}

/// What the output topics held when the engine started, and how much it skipped since.
#[derive(Debug, Default)]
pub struct Delivered {
    topics: BTreeMap<String, TopicDelivered>,
    /// Records skipped because a run before this one had delivered them.
    pub skipped: AtomicU64,
}

/// How long reading an output topic back may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Delivered {
    /// Nothing delivered: every record is sent.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads back each output topic of `outputs` (name, partitions, whether records are placed by
    /// input position): the last record of each partition, or every record for the latter.
    pub fn read(kafka: &KafkaConfig, outputs: &[(String, usize, bool)]) -> Result<Self, KafkaError> {
        let mut topics = BTreeMap::new();
        for (topic, partitions, by_input) in outputs {
            let which = if *by_input { Records::All } else { Records::Last };
            let headers = read_headers(kafka, topic, *partitions, POSITION_HEADER, which, READ_TIMEOUT)?;
            let mut held = TopicDelivered { last_tick: vec![None; *partitions], inputs: BTreeMap::new() };
            for (p, values) in headers.iter().enumerate() {
                for position in values.iter().filter_map(|v| OutputPosition::parse(v)) {
                    held.record(p, position);
                }
            }
            topics.insert(topic.clone(), held);
        }
        Ok(Self { topics, skipped: AtomicU64::new(0) })
    }

    /// Whether a record of `topic` at `position` bound for `partition` was already delivered; counts it if so.
    pub fn skip(&self, topic: &str, partition: i32, position: &OutputPosition) -> bool {
        let Some(held) = self.topics.get(topic) else { return false };
        let delivered = match *position {
            OutputPosition::Tick { tick, seq } => {
                held.last_tick.get(partition as usize).copied().flatten().is_some_and(|last| (tick, seq) <= last)
            }
            OutputPosition::Input { source, partition, offset } => {
                held.inputs.get(&(source, partition)).is_some_and(|last| offset <= *last)
            }
        };
        if delivered {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        delivered
    }

    /// One line per topic that held records of an earlier run, for the start-up log.
    pub fn describe(&self) -> Vec<String> {
        self.topics
            .iter()
            .filter_map(|(topic, held)| {
                let ticks: Vec<u64> = held.last_tick.iter().flatten().map(|(t, _)| *t).collect();
                let newest = ticks.iter().max();
                match (newest, held.inputs.len()) {
                    (Some(tick), _) => Some(format!(
                        "{topic}: {} of {} partitions hold records up to tick {tick}",
                        ticks.len(),
                        held.last_tick.len()
                    )),
                    (None, 0) => None,
                    (None, n) => Some(format!("{topic}: records of {n} input partitions")),
                }
            })
            .collect()
    }
}

impl TopicDelivered {
    fn record(&mut self, partition: usize, position: OutputPosition) {
        match position {
            OutputPosition::Tick { tick, seq } => {
                if let Some(slot) = self.last_tick.get_mut(partition) {
                    *slot = Some(slot.map_or((tick, seq), |old| old.max((tick, seq))));
                }
            }
            OutputPosition::Input { source, partition, offset } => {
                let last = self.inputs.entry((source, partition)).or_insert(offset);
                *last = (*last).max(offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_garbage_is_no_position() {
        for p in [
            OutputPosition::Tick { tick: 17, seq: 0 },
            OutputPosition::Tick { tick: u64::MAX, seq: 3 },
            OutputPosition::Input { source: 2, partition: 1, offset: 99 },
        ] {
            assert_eq!(OutputPosition::parse(p.encode().as_bytes()), Some(p));
        }
        for bad in ["", "t", "t:1", "t:1:2:3", "i:1:2", "x:1:2", "t:-1:2", "t:1:a", "i:99999999999:0:0"] {
            assert_eq!(OutputPosition::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn partitions_depend_on_the_key_alone() {
        assert_eq!(output_partition(None, 4), 0);
        assert_eq!(output_partition(Some(b"42"), 1), 0);
        let spread: std::collections::BTreeSet<i32> =
            (0..100u32).map(|u| output_partition(Some(u.to_string().as_bytes()), 4)).collect();
        assert_eq!(spread, (0..4).collect());
        assert_eq!(output_partition(Some(b"7"), 3), output_partition(Some(b"7"), 3));
    }

    #[test]
    fn a_record_at_or_before_what_its_partition_holds_is_skipped() {
        let mut held = TopicDelivered { last_tick: vec![None, None], inputs: BTreeMap::new() };
        held.record(0, OutputPosition::Tick { tick: 5, seq: 2 });
        held.record(0, OutputPosition::Tick { tick: 4, seq: 9 });
        held.record(1, OutputPosition::Input { source: 0, partition: 3, offset: 10 });
        let delivered = Delivered { topics: [("r".to_string(), held)].into(), skipped: AtomicU64::new(0) };
        let tick = |tick, seq| OutputPosition::Tick { tick, seq };
        assert!(delivered.skip("r", 0, &tick(5, 2)));
        assert!(delivered.skip("r", 0, &tick(4, 100)));
        assert!(!delivered.skip("r", 0, &tick(5, 3)));
        assert!(!delivered.skip("r", 1, &tick(0, 0)), "partition 1 holds no ticked record");
        assert!(!delivered.skip("other", 0, &tick(0, 0)));
        let input = |partition, offset| OutputPosition::Input { source: 0, partition, offset };
        assert!(delivered.skip("r", 0, &input(3, 10)));
        assert!(!delivered.skip("r", 0, &input(3, 11)));
        assert!(!delivered.skip("r", 0, &input(2, 1)));
        assert_eq!(delivered.skipped.load(Ordering::Relaxed), 3);
        assert_eq!(delivered.describe(), vec!["r: 1 of 2 partitions hold records up to tick 5".to_string()]);
    }
}
