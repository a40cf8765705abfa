//! A real Kafka-protocol broker for tests: nisshi (or Tansu) as a child process on a free loopback port.
//!
//! Each [`Broker`] owns a temporary directory that is the child's working
//! directory and holds its SQLite storage (`sqlite://broker.db`, which the broker
//! resolves against its working directory) and its log, so [`Broker::stop`]
//! followed by [`Broker::start`] brings back the same broker, topics and
//! messages on the same port. `scripts/setup --broker` installs nisshi 0.8.1 under
//! `.tools/nisshi`, or Tansu 0.6.0 under `.tools/tansu` where no toolchain can build
//! nisshi; the fixture runs the one installed (nisshi first; `FEEDFLOW_BROKER=tansu`
//! picks Tansu) and panics when there is none rather than letting tests pass.
//!
//! Notes that the tests rely on: topics are not auto-created; consumer-group
//! joins are slow (~20 s on Tansu), so consumers `assign` partitions.
//! DeleteTopics on Tansu 0.6.0's SQLite engine deletes *every* topic of the cluster
//! (its `topic_delete_by.sql` matches on the cluster, not the topic), so the
//! fixture cleans up by dropping the whole storage directory instead.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the broker may take to accept connections after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an admin request (create or delete topics) may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// A broker child process with its own storage; on drop it is killed and its storage
/// (with every topic it created) removed.
pub struct Broker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// How long the last [`Broker::start`] took until the port accepted connections.
    pub last_start: Duration,
}

impl Broker {
    /// Starts a broker on a free loopback port with fresh storage and waits until it is ready.
    pub fn new() -> Broker {
        let binary = binary();
        assert!(
            binary.is_file(),
            "the broker {} is missing; run scripts/setup --broker to install it",
            binary.display()
        );
        let dir = tempfile::Builder::new().prefix("feedflow-broker-").tempdir().expect("temp dir");
        let mut broker = Broker { dir, port: free_port(), child: None, last_start: Duration::ZERO };
        broker.start();
        broker
    }

    /// The bootstrap address for `bootstrap.servers`, `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client configuration pointing at this broker.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }

    /// Whether the child process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The child's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// (Re)starts the broker on the same port and storage and waits until it accepts connections.
    /// Does nothing if it is running.
    pub fn start(&mut self) {
        if self.is_running() {
            return;
        }
        let log = File::options().create(true).append(true).open(self.log_path()).expect("broker log");
        let address = format!("tcp://{}", self.bootstrap());
        let started = Instant::now();
        let child = Command::new(binary())
            .arg("broker")
            .args(["--cluster-id", "feedflow-test"])
            .args(["--listener-url", &address])
            .args(["--advertised-listener-url", &address])
            .args(["--storage-engine", "sqlite://broker.db"])
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("broker log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        self.child = Some(child);
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                break;
            }
            if !self.is_running() {
                panic!("the broker exited during start-up; its log:\n{}", self.log_tail());
            }
            if started.elapsed() > START_TIMEOUT {
                self.stop();
                panic!("the broker did not listen on {target} within {START_TIMEOUT:?}; its log:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.last_start = started.elapsed();
    }

    /// Kills the broker and waits for it to exit; storage and port are kept for [`Broker::start`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Creates topics with the given partition counts (replication 1); panics if any fails.
    pub fn create_topics(&self, topics: &[(&str, i32)]) {
        let admin = self.admin();
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|&(name, partitions)| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(ADMIN_TIMEOUT));
        let results = block_on(admin.create_topics(&new, &options)).expect("create topics request");
        for result in results {
            if let Err((name, code)) = result {
                panic!("cannot create topic {name}: {code}");
            }
        }
    }

    /// Deletes topics; returns the per-topic error, if any, by name.
    /// Beware: Tansu 0.6.0 with SQLite storage then deletes all other topics too.
    pub fn delete_topics(&self, topics: &[&str]) -> Vec<(String, Option<String>)> {
        let admin = self.admin();
        let options = AdminOptions::new().request_timeout(Some(ADMIN_TIMEOUT));
        let results = block_on(admin.delete_topics(topics, &options)).expect("delete topics request");
        results
            .into_iter()
            .map(|r| match r {
                Ok(name) => (name, None),
                Err((name, code)) => (name, Some(code.to_string())),
            })
            .collect()
    }

    /// The topics the broker's metadata lists.
    pub fn topic_names(&self) -> Vec<String> {
        let admin = self.admin();
        let metadata = admin.inner().fetch_metadata(None, ADMIN_TIMEOUT).expect("metadata");
        metadata.topics().iter().map(|t| t.name().to_string()).collect()
    }

    /// The last lines of the broker's log (stdout and stderr), for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().expect("admin client")
    }
}

impl Drop for Broker {
    /// Kills the child; the `TempDir` field then removes its storage, topics included.
    fn drop(&mut self) {
        self.stop();
    }
}

/// A prefix for topic names that no other test (or earlier run) uses: `t<time><counter>-`.
pub fn random_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("t{:x}{}{}-", nanos, std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The broker binary installed by scripts/setup --broker: nisshi's unless only Tansu's is
/// there or `FEEDFLOW_BROKER=tansu` asks for it.
fn binary() -> PathBuf {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools");
    let nisshi = tools.join("nisshi/bin/nisshi");
    match std::env::var("FEEDFLOW_BROKER").as_deref() {
        Ok("tansu") => tools.join("tansu/bin/tansu"),
        Ok("nisshi") => nisshi,
        _ if nisshi.is_file() => nisshi,
        _ => tools.join("tansu/bin/tansu"),
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("free port").port()
}

/// Runs an rdkafka admin future to completion (they need no particular runtime).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(future)
}
