//! Model hot reload (live runs): a new model where the config points is validated in the background and swapped in at a tick boundary.
//!
//! A watcher thread looks at the model and metadata files every
//! `ranking.reload_check_ms`. Once they have changed and then stayed the same
//! for one more look (a copy in progress is not read half-written), it copies
//! both into a private folder, so what the workers load later is exactly what
//! was checked, and validates the copy: sha256 against the metadata, input and
//! output names and shapes, feature and head lists (all of
//! [`OnnxScorer::load`]'s checks), then scores golden rows, which must give
//! finite scores with every probability head in `[0, 1]`. A good model is
//! published with the tick it serves from: the input frontier at that moment,
//! a tick no worker has started, so every worker swaps at the same boundary
//! and no response mixes two models. A bad file is logged and counted
//! (`feedflow_model_reloads_total{outcome="rejected"}`) and the old model keeps
//! serving. Responses name the model that answered them.

use crate::features::{FEATURES, HEADS};
use crate::metrics::Metrics;
use feedflow_operators::onnx_scorer::{OnnxScorer, ScorerSettings};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A validated model: where its checked copy is and from which tick it serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    /// Increases with every accepted model.
    pub generation: u64,
    /// Requests of this tick and later are ranked by it.
    pub from_tick: u64,
    /// The checked copy.
    pub settings: ScorerSettings,
    /// `name@sha256-prefix`, as responses report it.
    pub model_id: String,
}

/// The newest validated model, shared by the watcher and the workers of a process.
#[derive(Debug, Default)]
pub struct ModelWatch {
    generation: AtomicU64,
    published: Mutex<Option<Published>>,
}

/// Why a new model was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Copying the files failed (retried when they change again).
    #[error("copying {path}: {source}")]
    Copy {
        /// The file that could not be copied.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The model failed a load-time check (checksum, signature, features, heads).
    #[error("{0}")]
    Load(String),
    /// The model loads but its scores on the golden rows are not valid.
    #[error("golden rows: {0}")]
    Golden(String),
}

impl ModelWatch {
    /// No model published yet: workers keep what they opened at start.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The generation of the newest published model (0: none).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The newest published model.
    pub fn published(&self) -> Option<Published> {
        self.published.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Copies `settings`' model and metadata into `folder/<generation>/`, validates the copy and,
    /// when it passes, publishes it to serve from `from_tick`. Returns the new model's id.
    pub fn validate_and_publish(
        &self,
        settings: &ScorerSettings,
        folder: &Path,
        from_tick: impl FnOnce() -> u64,
    ) -> Result<String, ReloadError> {
        let generation = self.generation() + 1;
        let dir = folder.join(generation.to_string());
        let copy = |from: &Path| -> Result<PathBuf, ReloadError> {
            let name = from.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("model"));
            let to = dir.join(name);
            std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::copy(from, &to))
                .map_err(|source| ReloadError::Copy { path: from.to_path_buf(), source })?;
            Ok(to)
        };
        let checked =
            ScorerSettings { model: copy(&settings.model)?, metadata: copy(&settings.metadata)?, ..settings.clone() };
        let mut scorer = OnnxScorer::load(&checked, &FEATURES, &HEADS).map_err(|e| ReloadError::Load(e.to_string()))?;
        check_golden(&mut scorer)?;
        let model_id = scorer.model_id().to_string();
        let published = Published { generation, from_tick: from_tick(), settings: checked, model_id: model_id.clone() };
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = Some(published);
        self.generation.store(generation, Ordering::Release);
        Ok(model_id)
    }
}

/// Scores a few fixed rows: every score finite, every head but `dwell` a probability.
fn check_golden(scorer: &mut OnnxScorer) -> Result<(), ReloadError> {
    let width = FEATURES.len();
    let mut rows = vec![0.0f32; width]; // all zero
    rows.extend(std::iter::repeat_n(1.0f32, width)); // all one
                                                     // Deterministic values in [-1, 3), the range most features take.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..6 * width {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        rows.push((state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 1.0);
    }
    let scores = scorer.score(&rows).map_err(|e| ReloadError::Golden(e.to_string()))?;
    let n = rows.len() / width;
    if scores.len() != n * HEADS.len() {
        return Err(ReloadError::Golden(format!("{} scores for {n} rows of {} heads", scores.len(), HEADS.len())));
    }
    for (i, score) in scores.iter().enumerate() {
        let head = HEADS[i % HEADS.len()];
        if !score.is_finite() || (head != "dwell" && !(0.0..=1.0).contains(score)) {
            return Err(ReloadError::Golden(format!("row {} head {head} scored {score}", i / HEADS.len())));
        }
    }
    Ok(())
}

/// What a look at the files saw: (length, modification time) of the model and the metadata.
type Stamp = Option<[(u64, SystemTime); 2]>;

fn stamp(settings: &ScorerSettings) -> Stamp {
    let one = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.len(), m.modified().ok()?)));
    Some([one(&settings.model)?, one(&settings.metadata)?])
}

/// Watches `settings`' files every `every` until `stop`, validating and publishing new models
/// (see the module docs). `folder` receives the checked copies; `from_tick` reads the input frontier.
pub fn watch_model(
    settings: ScorerSettings,
    every: Duration,
    folder: PathBuf,
    watch: Arc<ModelWatch>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    from_tick: impl Fn() -> u64 + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // The files the workers opened at start are the baseline; only a change is a new model.
        let mut handled = stamp(&settings);
        let mut seen = handled;
        while !stop.load(Ordering::SeqCst) {
            sleep_unless_stopped(every, &stop);
            let now = stamp(&settings);
            // Act once a change has stayed put for one interval: a copy in progress is skipped.
            if now.is_some() && now == seen && now != handled {
                handled = now;
                match watch.validate_and_publish(&settings, &folder, &from_tick) {
                    Ok(id) => {
                        metrics.model_reloads.with_label_values(&["accepted"]).inc();
                        eprintln!("[feedflow] model: {id} validated; it ranks from the next tick on");
                    }
                    Err(e) => {
                        metrics.model_reloads.with_label_values(&["rejected"]).inc();
                        eprintln!(
                            "[feedflow] model: rejected the new {} ({e}); the current model keeps serving",
                            settings.model.display()
                        );
                    }
                }
            }
            seen = now;
        }
    })
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::SeqCst) {
        let nap = left.min(step);
        std::thread::sleep(nap);
        left -= nap;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary directory, removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("feedflow-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn committed() -> Option<ScorerSettings> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let library = root.join(".venv/lib/libonnxruntime.so");
        library.exists().then(|| ScorerSettings {
            library,
            model: root.join("models/ranker.onnx"),
            metadata: root.join("models/ranker.json"),
            intra_threads: 1,
        })
    }

    /// A folder with a copy of the committed model under another name (so another model id).
    fn renamed_copy(base: &ScorerSettings, dir: &Path, name: &str) -> ScorerSettings {
        std::fs::create_dir_all(dir).unwrap();
        let model = dir.join("ranker.onnx");
        std::fs::copy(&base.model, &model).unwrap();
        let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&base.metadata).unwrap()).unwrap();
        meta["name"] = name.into();
        let metadata = dir.join("ranker.json");
        std::fs::write(&metadata, serde_json::to_vec(&meta).unwrap()).unwrap();
        ScorerSettings { model, metadata, ..base.clone() }
    }

    #[test]
    fn a_valid_model_is_published_and_a_bad_one_refused() {
        let base = committed().expect("the ONNX Runtime library is missing: run scripts/setup");
        let dir = Scratch::new("reload-validate");
        let watch = ModelWatch::new();
        let next = renamed_copy(&base, &dir.path().join("next"), "ranker-next");
        let id = watch.validate_and_publish(&next, &dir.path().join("checked"), || 42).unwrap();
        assert!(id.starts_with("ranker-next@"), "{id}");
        let published = watch.published().unwrap();
        assert_eq!((watch.generation(), published.from_tick, published.model_id.as_str()), (1, 42, id.as_str()));
        assert!(published.settings.model.starts_with(dir.path().join("checked/1")), "workers load the checked copy");

        // A flipped byte: the checksum refuses it, and the published model stays.
        let mut bytes = std::fs::read(&next.model).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&next.model, &bytes).unwrap();
        let err = watch.validate_and_publish(&next, &dir.path().join("checked"), || 99).unwrap_err();
        assert!(err.to_string().contains("sha256") || err.to_string().contains("checksum"), "{err}");
        assert_eq!(watch.generation(), 1);
        assert_eq!(watch.published().unwrap().model_id, id);

        // Metadata listing other features: refused.
        let other = renamed_copy(&base, &dir.path().join("other"), "ranker-other");
        let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&other.metadata).unwrap()).unwrap();
        meta["features"][0] = "something_else".into();
        std::fs::write(&other.metadata, serde_json::to_vec(&meta).unwrap()).unwrap();
        assert!(matches!(
            watch.validate_and_publish(&other, &dir.path().join("checked"), || 99),
            Err(ReloadError::Load(_))
        ));
        assert_eq!(watch.generation(), 1);
    }

    #[test]
    fn the_watcher_publishes_a_replaced_model_once_it_has_settled() {
        let base = committed().expect("the ONNX Runtime library is missing: run scripts/setup");
        let dir = Scratch::new("reload-watch");
        let live = renamed_copy(&base, &dir.path().join("live"), "ranker");
        let (watch, metrics, stop) = (ModelWatch::new(), Metrics::new(), Arc::new(AtomicBool::new(false)));
        let watcher = watch_model(
            live.clone(),
            Duration::from_millis(100),
            dir.path().join("checked"),
            watch.clone(),
            metrics.clone(),
            stop.clone(),
            || 7,
        );
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(watch.generation(), 0, "the files the run started with are not a new model");
        // A bad replacement: rejected, counted, nothing published.
        std::fs::write(&live.model, b"not a model").unwrap();
        let wait = |what: &str, done: &dyn Fn() -> bool| {
            let started = std::time::Instant::now();
            while !done() {
                assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        wait("the rejection", &|| metrics.model_reloads.with_label_values(&["rejected"]).get() == 1);
        assert_eq!(watch.generation(), 0);
        // A good one (a renamed copy, written in place of the live files).
        let good = renamed_copy(&base, &dir.path().join("good"), "ranker-v2");
        std::fs::copy(&good.metadata, &live.metadata).unwrap();
        std::fs::copy(&good.model, &live.model).unwrap();
        // The watcher counts an acceptance after publishing it: wait for the count, not the generation.
        wait("the new model", &|| metrics.model_reloads.with_label_values(&["accepted"]).get() == 1);
        assert_eq!(watch.generation(), 1);
        assert!(watch.published().unwrap().model_id.starts_with("ranker-v2@"));
        assert_eq!(watch.published().unwrap().from_tick, 7);
        assert_eq!(metrics.model_reloads.with_label_values(&["accepted"]).get(), 1);
        stop.store(true, Ordering::SeqCst);
        watcher.join().unwrap();
    }
}
