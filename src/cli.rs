//! The command line of DESIGN.md: `run`, `gen`, `eval`, and the Kafka tools `replay`, `record`, `tail`, `topics`.

use crate::eval::{evaluate, table, EvalOptions};
use crate::gen::{generate, GenOptions};
use crate::kafka_tools;
use crate::train::{train, TrainOptions};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use feedflow_connectors::config::{Config, SourceKind};
use feedflow_dataflows::metrics::{address_for_process, serve, Metrics};
use feedflow_dataflows::{run_file, run_live, LiveControl, RunOptions, RunReport};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The embedded default configuration (`config/local.toml`).
pub const EMBEDDED_CONFIG: &str = include_str!("../config/local.toml");
/// The embedded default of the Kafka-facing commands (`config/kafka.toml`).
pub const EMBEDDED_KAFKA_CONFIG: &str = include_str!("../config/kafka.toml");

#[derive(Parser, Debug)]
#[command(name = "feedflow", version, about = "Real-time recommendations on timely/differential dataflow")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay a recorded log through the dataflows and write the outputs.
    Run(RunArgs),
    /// Generate a synthetic world: an event log and its ground truth.
    Gen(GenArgs),
    /// Prequential evaluation: shadow requests before each sampled positive engagement.
    Eval(EvalArgs),
    /// Train the ranker on a log, with the features as served; writes DIR/ranker.onnx and DIR/ranker.json.
    Train(TrainArgs),
    /// Produce a recorded log into the input topics (uploads, engagements, requests).
    Replay(ReplayArgs),
    /// Capture a topic to a JSONL file, from its start to its current end.
    Record(RecordArgs),
    /// Follow a topic and pretty-print its messages.
    Tail(TailArgs),
    /// Manage the topics of the config.
    Topics(TopicsArgs),
}

/// The config and broker of a Kafka-facing command.
#[derive(Args, Debug)]
struct KafkaArgs {
    /// Configuration file (default: the embedded config/kafka.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Bootstrap servers HOST:PORT[,…], overriding the config's `kafka.bootstrap_servers`.
    #[arg(long)]
    brokers: Option<String>,
}

impl KafkaArgs {
    fn load(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(p) => Config::from_file(p)?,
            None => Config::from_toml_str(EMBEDDED_KAFKA_CONFIG, "embedded config/kafka.toml")?,
        };
        if let Some(b) = &self.brokers {
            config.kafka.bootstrap_servers = b.clone();
        }
        Ok(config)
    }
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// The JSONL log to produce.
    log: PathBuf,
    /// Destination (only `kafka`).
    #[arg(long, default_value = "kafka")]
    to: String,
    /// Pace: 0 as fast as possible, N times real time (by the events' `ts`).
    #[arg(long, default_value_t = 0.0)]
    speed: f64,
    #[command(flatten)]
    kafka: KafkaArgs,
}

#[derive(Args, Debug)]
struct RecordArgs {
    /// Topic: a role of the config (responses, trending, impressions, dlq, uploads, …) or a topic name.
    topic: String,
    /// Output JSONL file, one message per line.
    #[arg(long)]
    out: PathBuf,
    /// Keep recording new messages until interrupted.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    kafka: KafkaArgs,
}

#[derive(Args, Debug)]
struct TailArgs {
    /// Topic: a role of the config (responses, trending, …) or a topic name.
    topic: String,
    /// Show only messages whose `user_id` is this.
    #[arg(long)]
    user: Option<u64>,
    /// Start from the oldest message instead of the end.
    #[arg(long)]
    from_beginning: bool,
    /// Stop after this many messages.
    #[arg(long)]
    max: Option<u64>,
    #[command(flatten)]
    kafka: KafkaArgs,
}

#[derive(Args, Debug)]
struct TopicsArgs {
    #[command(subcommand)]
    action: TopicsAction,
}

#[derive(Subcommand, Debug)]
enum TopicsAction {
    /// Create every topic of the config (existing ones are left as they are).
    Create(KafkaArgs),
}

#[derive(Args, Debug)]
struct ModelArgs {
    /// Ranking model (default: the config's `ranking.model`); its metadata is the same path with `.json`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Rank with the linear fallback scorer only.
    #[arg(long, conflicts_with = "model")]
    no_model: bool,
}

impl ModelArgs {
    fn apply(&self, config: &mut Config) {
        if self.no_model {
            config.ranking.model = PathBuf::new();
        } else if let Some(m) = &self.model {
            config.ranking.model = m.clone();
            config.ranking.metadata = m.with_extension("json");
        }
    }
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Configuration file (default: the embedded config/local.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The log to evaluate on (a generated log's truth file enables the oracle).
    #[arg(long)]
    log: PathBuf,
    /// Output folder: eval.json, eval.png, the augmented log and the engine's outputs.
    #[arg(long, default_value = "out/eval")]
    out: PathBuf,
    /// Worker threads (default: the config's `engine.workers`).
    #[arg(long)]
    workers: Option<usize>,
    /// Evaluate at most this many positive engagements (a deterministic sample of the period's).
    #[arg(long, default_value_t = 20_000)]
    sample: usize,
    /// The evaluation period starts at this fraction of the log's time span (0.8: its last 20 %).
    #[arg(long, default_value_t = 0.8)]
    from: f64,
    /// Page size of the shadow requests.
    #[arg(long, default_value_t = 50)]
    k: usize,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// The log to learn from (any feedflow event log; its own requests are left out).
    #[arg(long)]
    log: PathBuf,
    /// Output folder: ranker.onnx, ranker.json, and the training run under work/.
    #[arg(long)]
    out: PathBuf,
    /// Configuration file (default: the embedded config/local.toml); its head weights combine the heads.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed of the request sample and of the learner.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads of the replay (default: the config's `engine.workers`).
    #[arg(long)]
    workers: Option<usize>,
    /// At most this many shadow requests (a deterministic sample of the log's positive engagements).
    #[arg(long, default_value_t = 8000)]
    requests: usize,
    /// Labels: the user's engagements with a candidate within this many ms after the request
    /// (60 s: what the user did next, in the same sitting).
    #[arg(long, default_value_t = 60_000)]
    horizon_ms: u64,
    /// Write the model even if it ranks worse than the fallback on the validation period.
    #[arg(long)]
    allow_worse: bool,
    /// Boosting rounds (trees) per head: the serving cost grows with them.
    #[arg(long, default_value_t = 150)]
    rounds: usize,
    /// The learner's learning rate (fewer rounds want a larger one).
    #[arg(long, default_value_t = 0.05)]
    learning_rate: f64,
    /// Validate on the requests at or after this event time (ms; default: the last 20 % of their span).
    #[arg(long)]
    validation_from_ts: Option<i64>,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
struct RunArgs {
    /// Configuration file (default: the embedded config/local.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log to replay (default: the config's `input.log`, generated if missing).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Output folder (default: the config's `output.dir`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: the config's `engine.workers`).
    #[arg(long)]
    workers: Option<usize>,
    /// Replay pace: 0 as fast as possible, N times real time.
    #[arg(long)]
    speed: Option<f64>,
    #[command(flatten)]
    model: ModelArgs,
    /// Live mode: bootstrap servers HOST:PORT[,…], overriding `kafka.bootstrap_servers`.
    #[arg(long)]
    brokers: Option<String>,
    /// Live mode: stop once every input partition has been idle this many ms (drain the topics and exit).
    #[arg(long)]
    exit_when_idle_ms: Option<u64>,
    /// Timely: worker threads per process (multi-process runs).
    #[arg(short = 'w')]
    timely_workers: Option<usize>,
    /// Timely: number of processes.
    #[arg(short = 'n')]
    processes: Option<usize>,
    /// Timely: this process's index.
    #[arg(short = 'p')]
    process: Option<usize>,
    /// Timely: file of host:port addresses, one per process.
    #[arg(short = 'h')]
    hostfile: Option<PathBuf>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

#[derive(Args, Debug)]
struct GenArgs {
    /// Random seed.
    #[arg(long)]
    seed: u64,
    /// Number of users.
    #[arg(long, default_value_t = GenOptions::default().users)]
    users: usize,
    /// Number of uploads.
    #[arg(long, default_value_t = GenOptions::default().posts)]
    posts: usize,
    /// Span of event time in hours.
    #[arg(long, default_value_t = GenOptions::default().hours)]
    hours: f64,
    /// Embedding length (must match the engine's `index.dimensions`).
    #[arg(long, default_value_t = 64)]
    dimensions: usize,
    /// Noise in the published embeddings (0: the true ones; 1: cosine ≈ 0.7 to the truth), for
    /// worlds where content vectors are weak.
    #[arg(long, default_value_t = 0.0)]
    embedding_noise: f64,
    /// Output log; the ground truth is written beside it as `<name>.truth.json`.
    #[arg(long)]
    out: PathBuf,
}

/// Loads `--config` or the embedded default.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::from_file(p)?,
        None => Config::from_toml_str(EMBEDDED_CONFIG, "embedded config/local.toml")?,
    })
}

fn timely_args(a: &RunArgs) -> Result<Vec<String>> {
    let mut args = Vec::new();
    if let Some(w) = a.timely_workers {
        args.extend(["-w".to_string(), w.to_string()]);
    }
    if let Some(n) = a.processes {
        args.extend(["-n".to_string(), n.to_string()]);
    }
    if let Some(p) = a.process {
        args.extend(["-p".to_string(), p.to_string()]);
    }
    if let Some(h) = &a.hostfile {
        args.extend(["-h".to_string(), h.display().to_string()]);
    }
    if !args.is_empty() && a.timely_workers.is_none() {
        bail!("-n/-p/-h need -w (worker threads per process)");
    }
    Ok(args)
}

/// Stops `flag` on the first SIGINT or SIGTERM; a second one exits at once.
fn stop_on_signal(flag: Arc<AtomicBool>, what: &'static str) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async move {
            let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                return;
            };
            for n in 0.. {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                if n > 0 {
                    eprintln!("[feedflow] second signal: exiting now");
                    std::process::exit(130);
                }
                eprintln!("[feedflow] stopping: {what} (a second signal exits at once)");
                flag.store(true, Ordering::SeqCst);
            }
        });
    });
}

fn print_report(report: &RunReport) {
    println!("{}", report.summary);
}

fn run_kafka(a: &RunArgs, mut config: Config) -> Result<()> {
    if let Some(b) = &a.brokers {
        config.kafka.bootstrap_servers = b.clone();
    }
    let workers = a.workers.unwrap_or(config.engine.workers);
    if workers == 0 {
        bail!("--workers must be at least 1");
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    stop_on_signal(shutdown.clone(), "no more input is read; answering what was read and flushing the outputs");
    let metrics = Metrics::new();
    if config.metrics.enabled {
        // Each process of a cluster serves its own metrics: the port plus the process index.
        let address =
            address_for_process(&config.metrics.address, a.process.unwrap_or(0)).map_err(anyhow::Error::msg)?;
        let bound = serve(metrics.clone(), &address).with_context(|| format!("serving metrics on {address}"))?;
        eprintln!("[feedflow] metrics on http://{bound}/metrics");
    }
    let control = LiveControl { shutdown, exit_when_idle: a.exit_when_idle_ms.map(Duration::from_millis), metrics };
    let options = RunOptions {
        out_dir: None,
        progress: true,
        timely_args: timely_args(a)?,
        ..RunOptions::new(Path::new(""), workers)
    };
    let settings: Vec<String> = config.kafka.redacted_settings().iter().map(|(k, v)| format!("{k}={v}")).collect();
    eprintln!("[feedflow] live mode on {} worker(s); client settings: {}", workers, settings.join(" "));
    let report = run_live(&config, &options, control)?;
    print_report(&report);
    Ok(())
}

fn run(a: RunArgs) -> Result<()> {
    let mut config = load_config(a.config.as_deref())?;
    a.model.apply(&mut config);
    if config.input.source == SourceKind::Kafka {
        if a.log.is_some() || a.speed.is_some() {
            bail!("--log and --speed are for file mode; this config reads Kafka (input.source = \"kafka\")");
        }
        return run_kafka(&a, config);
    }
    if a.brokers.is_some() || a.exit_when_idle_ms.is_some() {
        bail!("--brokers and --exit-when-idle-ms are for live mode (input.source = \"kafka\", e.g. config/kafka.toml)");
    }
    let log = a.log.clone().unwrap_or_else(|| config.input.log.clone());
    if !log.exists() {
        match (&config.input.generate_if_missing, &a.log) {
            (Some(g), None) => {
                eprintln!("[feedflow] {} does not exist: generating a sample world (seed {})", log.display(), g.seed);
                let options = GenOptions {
                    seed: g.seed,
                    users: g.users,
                    posts: g.posts,
                    hours: g.hours,
                    dimensions: config.index.dimensions,
                    ..GenOptions::default()
                };
                let summary = generate(&options, &log).with_context(|| format!("generating {}", log.display()))?;
                eprintln!("[feedflow] {summary}");
            }
            _ => bail!("the log {} does not exist", log.display()),
        }
    }
    let out = a.out.clone().unwrap_or_else(|| config.output.dir.clone());
    let workers = a.workers.unwrap_or(config.engine.workers);
    if workers == 0 {
        bail!("--workers must be at least 1");
    }
    let options = RunOptions {
        log: log.clone(),
        out_dir: Some(out.clone()),
        workers,
        speed: a.speed.unwrap_or(config.input.speed),
        snapshot: false,
        progress: true,
        timely_args: timely_args(&a)?,
        log_shadow_candidates: false,
    };
    eprintln!("[feedflow] replaying {} on {} worker(s) into {}/", log.display(), workers, out.display());
    let report = run_file(&config, &options)?;
    print_report(&report);
    let d = out.display();
    match (a.process, a.processes) {
        (Some(p), Some(n)) if n > 1 => {
            if p == 0 {
                println!("  cluster   process 0 of {n}; the counts above are the whole cluster's");
                println!("  outputs   {d}/responses.jsonl, {d}/impressions.jsonl, {d}/trending.jsonl, {d}/dlq.jsonl");
            } else {
                println!(
                    "  cluster   process {p} of {n}; the counts above are this process's workers' (process 0 prints the cluster's)"
                );
                println!("  outputs   written by process 0 (its {d}/)");
            }
        }
        _ => println!("  outputs   {d}/responses.jsonl, {d}/impressions.jsonl, {d}/trending.jsonl, {d}/dlq.jsonl"),
    }
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    let mut config = load_config(a.config.as_deref())?;
    a.model.apply(&mut config);
    if !a.log.exists() {
        bail!("the log {} does not exist", a.log.display());
    }
    if a.sample == 0 || a.k == 0 || a.k > 200 {
        bail!("--sample must be at least 1 and --k in 1..=200");
    }
    if !(0.0..1.0).contains(&a.from) {
        bail!("--from must be in [0, 1): the evaluation period is the log's time span after that fraction");
    }
    let options = EvalOptions {
        log: a.log.clone(),
        out: a.out.clone(),
        workers: a.workers.unwrap_or(config.engine.workers).max(1),
        sample: a.sample,
        from: a.from,
        k: a.k,
    };
    let report = evaluate(&config, &options)?;
    println!("{}", table(&report));
    println!("engine HR@10 / popularity HR@10 = {:.2}", report["engine_vs_popularity_hr@10"].as_f64().unwrap_or(0.0));
    println!("report: {}/eval.json, {}/eval.png", a.out.display(), a.out.display());
    Ok(())
}

fn train_command(a: TrainArgs) -> Result<()> {
    let config = load_config(a.config.as_deref())?;
    if !a.log.exists() {
        bail!("the log {} does not exist", a.log.display());
    }
    if a.requests == 0 || a.horizon_ms == 0 || a.rounds == 0 {
        bail!("--requests, --horizon-ms and --rounds must be at least 1");
    }
    if !(a.learning_rate > 0.0 && a.learning_rate <= 1.0) {
        bail!("--learning-rate must be in (0, 1]");
    }
    let options = TrainOptions {
        log: a.log,
        out: a.out,
        seed: a.seed,
        workers: a.workers.unwrap_or(config.engine.workers).max(1),
        requests: a.requests,
        horizon_ms: a.horizon_ms,
        allow_worse: a.allow_worse,
        rounds: a.rounds,
        learning_rate: a.learning_rate,
        validation_from_ts: a.validation_from_ts,
        labels: None,
    };
    let model = train(&config, &options)?;
    println!("wrote {} and {}", model.display(), model.with_extension("json").display());
    println!("serve it: feedflow run --model {}", model.display());
    Ok(())
}

fn gen(a: GenArgs) -> Result<()> {
    let options = GenOptions {
        seed: a.seed,
        users: a.users,
        posts: a.posts,
        hours: a.hours,
        dimensions: a.dimensions,
        embedding_noise: a.embedding_noise,
        ..GenOptions::default()
    };
    let started = std::time::Instant::now();
    let summary = generate(&options, &a.out)?;
    println!("{summary}");
    println!(
        "wrote {} and {} in {:.1} s",
        a.out.display(),
        summary.truth_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn replay(a: ReplayArgs) -> Result<()> {
    if a.to != "kafka" {
        bail!("--to must be kafka");
    }
    if !(a.speed >= 0.0 && a.speed.is_finite()) {
        bail!("--speed must be a finite number ≥ 0");
    }
    let config = a.kafka.load()?;
    kafka_tools::replay(&config, &a.log, a.speed, true)
}

fn record(a: RecordArgs) -> Result<()> {
    let config = a.kafka.load()?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(stop.clone(), "closing the file");
    let topic = config.kafka.topic(&a.topic);
    let n = kafka_tools::record(&config, &topic, &a.out, a.follow, stop)?;
    println!("recorded {n} message(s) from {topic} into {}", a.out.display());
    Ok(())
}

fn tail(a: TailArgs) -> Result<()> {
    let config = a.kafka.load()?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(stop.clone(), "tail ends");
    kafka_tools::tail(&config, &config.kafka.topic(&a.topic), a.user, a.from_beginning, a.max, stop)
}

/// Parses the command line and runs the command; exit status 1 on unusable
/// configuration or I/O failure (never for bad events), 2 on usage errors.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(a) => run(a),
        Command::Gen(a) => gen(a),
        Command::Eval(a) => eval(a),
        Command::Train(a) => train_command(a),
        Command::Replay(a) => replay(a),
        Command::Record(a) => record(a),
        Command::Tail(a) => tail(a),
        Command::Topics(TopicsArgs { action: TopicsAction::Create(k) }) => {
            k.load().and_then(|config| kafka_tools::topics_create(&config))
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("feedflow: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
