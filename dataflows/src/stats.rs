//! Counters of a run and the summary printed at its end.

use crate::metrics::Metrics;
use crate::posts::RegistryStats;
use crate::rank::RankStats;
use feedflow_connectors::codec::RejectReason;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Counters kept by one worker; summed over workers at the end.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Input lines (messages) read.
    pub lines: u64,
    /// Valid events by type name.
    pub events: BTreeMap<String, u64>,
    /// Valid events dropped as duplicates of an earlier `event_id`.
    pub duplicates: u64,
    /// Valid events older than the frontier by more than the allowed lateness.
    pub late: u64,
    /// Rejected messages by DLQ reason.
    pub rejected: BTreeMap<String, u64>,
    /// The post registry's counters.
    pub registry: RegistryStats,
    /// Vectors in the index at the end.
    pub index_size: u64,
    /// Users with interest state.
    pub users: u64,
    /// The ranking stage's counters.
    pub rank: RankStats,
    /// Why the fallback scorer answered (first worker's reason), if it did.
    pub fallback_reason: Option<String>,
    /// The model id responses carry.
    pub model: String,
    /// The ranking cascade's first stage, or why the configured one is off (first worker's).
    pub first_stage: Option<String>,
}

impl Counters {
    /// Adds another worker's counters.
    pub fn merge(&mut self, other: &Counters) {
        self.lines += other.lines;
        for (k, v) in &other.events {
            *self.events.entry(k.clone()).or_default() += v;
        }
        self.duplicates += other.duplicates;
        self.late += other.late;
        for (k, v) in &other.rejected {
            *self.rejected.entry(k.clone()).or_default() += v;
        }
        self.registry.merge(&other.registry);
        self.index_size += other.index_size;
        self.users += other.users;
        self.rank.merge(&other.rank);
        if self.fallback_reason.is_none() {
            self.fallback_reason = other.fallback_reason.clone();
        }
        if self.model.is_empty() {
            self.model = other.model.clone();
        }
        if self.first_stage.is_none() {
            self.first_stage = other.first_stage.clone();
        }
    }

    /// Counts one rejection (here and in `metrics`).
    pub fn reject(&mut self, reason: RejectReason, metrics: &Metrics) {
        *self.rejected.entry(reason.name().to_string()).or_default() += 1;
        metrics.dlq.with_label_values(&[reason.name()]).inc();
    }

    /// Counts a valid event of `tick` read while the input frontier is `frontier`
    /// (here and in `metrics`); returns the tick it enters at: its own, or the
    /// frontier when it is late.
    pub fn admit(&mut self, type_name: &str, tick: u64, frontier: u64, metrics: &Metrics) -> u64 {
        let effective = self.admit_unreported(type_name, tick, frontier);
        metrics.event(type_name, if effective > tick { "late" } else { "applied" });
        effective
    }

    /// As [`Self::admit`], leaving the metric to the caller (who may count a batch at once).
    pub fn admit_unreported(&mut self, type_name: &str, tick: u64, frontier: u64) -> u64 {
        match self.events.get_mut(type_name) {
            Some(n) => *n += 1,
            None => {
                self.events.insert(type_name.to_string(), 1);
            }
        }
        let late = tick < frontier;
        self.late += late as u64;
        tick.max(frontier)
    }

    /// Valid events of every type.
    pub fn valid_events(&self) -> u64 {
        self.events.values().sum()
    }

    /// Rejected messages of every reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// What a run reports at its end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Summed counters.
    pub counters: Counters,
    /// Wall time of the replay.
    pub elapsed: Duration,
    /// Worker threads.
    pub workers: usize,
    /// Posts in the trending pool at the end.
    pub trending_pool: u64,
    /// Records written to the trending output.
    pub trending_changes: u64,
    /// Posts in the fresh pool at the end.
    pub fresh_pool: u64,
    /// Posts in the popular list at the end.
    pub popular: u64,
    /// Last tick of the log.
    pub last_tick: u64,
    /// Extra lines of the summary (live mode: deliveries and latency).
    pub notes: Vec<String>,
}

impl Summary {
    /// Input messages per second of wall time.
    pub fn events_per_second(&self) -> f64 {
        self.counters.lines as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        writeln!(
            f,
            "feedflow: {} messages in {:.2} s on {} worker(s): {:.0} events/s",
            c.lines,
            self.elapsed.as_secs_f64(),
            self.workers,
            self.events_per_second()
        )?;
        let types: Vec<String> = c.events.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(f, "  accepted  {} ({})", c.valid_events(), types.join(", "))?;
        writeln!(f, "  dropped   {} duplicate event_id, {} late (applied at the frontier)", c.duplicates, c.late)?;
        let reasons: Vec<String> = c.rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            f,
            "  dlq       {}{}",
            c.rejected_total(),
            if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) }
        )?;
        writeln!(
            f,
            "  posts     {} stored, {} in the index, {} duplicate uploads, {} refused by the index",
            c.registry.uploads, c.index_size, c.registry.duplicate_uploads, c.registry.index_rejects
        )?;
        writeln!(
            f,
            "  engagements {} joined ({} waited for their upload, {} expired waiting); {} users",
            c.registry.engagements_joined, c.registry.engagements_waited, c.registry.engagements_expired, c.users
        )?;
        writeln!(
            f,
            "  pools     trending {} ({} changes written), fresh {}, popular {}",
            self.trending_pool, self.trending_changes, self.fresh_pool, self.popular
        )?;
        let r = &c.rank;
        let stages = r.mean_stage_us();
        write!(
            f,
            "  requests  {} answered ({} shadow), ranked by {}{}; service time P50 {} µs, P99 {} µs, P99.9 {} µs; {:.0} candidates per request of {:.0} rows received (mean µs: context {:.0}, slowest worker's candidates {:.0}, ranking {:.0})",
            r.responses,
            r.shadow,
            c.model,
            match (r.fallback - r.guarded, r.guarded) {
                (0, 0) => String::new(),
                (0, guarded) => format!(" ({guarded} by the fallback: the model guard's choice)"),
                (failed, 0) => format!(
                    " ({failed} by the fallback: {})",
                    c.fallback_reason.as_deref().unwrap_or("model batch failed")
                ),
                (failed, guarded) => format!(
                    " ({} by the fallback: {guarded} the model guard's choice, {failed} {})",
                    r.fallback,
                    c.fallback_reason.as_deref().unwrap_or("model batch failed")
                ),
            },
            r.percentile_us(0.50),
            r.percentile_us(0.99),
            r.percentile_us(0.999),
            r.mean_candidates(),
            r.mean_rows_received(),
            stages[0],
            stages[1],
            stages[2],
        )?;
        if r.probes > 0 {
            write!(f, "\n  guard     {} probes scored by the model and the fallback", r.probes)?;
        }
        if let Some(first) = &c.first_stage {
            write!(f, "\n  cascade   {first}; {} requests cut by it", r.first_stage)?;
            if r.first_stage_errors > 0 {
                write!(f, ", {} first-stage batches failed (the model scored every candidate)", r.first_stage_errors)?;
            }
        }
        for note in &self.notes {
            write!(f, "\n{note}")?;
        }
        Ok(())
    }
}
