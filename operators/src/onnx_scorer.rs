//! A batch scorer on ONNX Runtime (via `ort`): one checked session, f32 rows in, f32 heads out.
//!
//! A model is an `.onnx` file plus a JSON sidecar ([`ModelMetadata`]) naming its input and output
//! tensors, its feature and head columns and the sha256 of the model bytes. [`OnnxScorer::load`]
//! verifies all of it up front (checksum, tensor names, element types, shapes, column names in
//! order) so that a wrong or damaged model is a typed [`ScorerError`] at load time, never a crash
//! or silently misaligned scores later. The runtime library is loaded dynamically, once per
//! process; each scorer owns one session with explicit thread settings and scores a whole batch
//! in one run.
//!
//! ```no_run
//! use feedflow_operators::onnx_scorer::{OnnxScorer, ScorerSettings};
//!
//! let settings = ScorerSettings {
//!     library: ".venv/lib/libonnxruntime.so".into(),
//!     model: "models/ranker.onnx".into(),
//!     metadata: "models/ranker.json".into(),
//!     intra_threads: 1,
//! };
//! let mut scorer = OnnxScorer::load(&settings, &["f0", "f1", "f2"], &["like", "share"])?;
//! // Two rows of three features each, row-major.
//! let scores = scorer.score(&[0.1, 0.2, 0.3, 1.0, 0.0, -1.0])?;
//! assert_eq!(scores.len(), 2 * 2); // two rows of two heads
//! println!("{} scored the batch", scorer.model_id());
//! # Ok::<(), feedflow_operators::onnx_scorer::ScorerError>(())
//! ```

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{Outlet, TensorElementType, TensorRef, ValueType};
use sha2::{Digest, Sha256};

/// Sidecar metadata of a model (a JSON file next to it), written by the training script.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq)]
pub struct ModelMetadata {
    /// Model name, e.g. `"ranker"`.
    pub name: String,
    /// Model version, free-form.
    pub version: String,
    /// Name of the input tensor, shape `[batch, features.len()]`, f32.
    pub input: String,
    /// Name of the output tensor, shape `[batch, heads.len()]`, f32.
    pub output: String,
    /// Feature names in column order.
    pub features: Vec<String>,
    /// Head names in column order.
    pub heads: Vec<String>,
    /// Hex sha256 of the `.onnx` file.
    pub sha256: String,
    /// Free-form training details (seed, data, metrics).
    #[serde(default)]
    pub training: serde_json::Value,
}

/// Where the runtime, the model and its metadata are, and how many threads a session may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScorerSettings {
    /// Path of the ONNX Runtime shared library (`libonnxruntime.so`).
    pub library: PathBuf,
    /// Path of the `.onnx` model.
    pub model: PathBuf,
    /// Path of the model's JSON metadata.
    pub metadata: PathBuf,
    /// Threads used inside one operator (at least 1). Inter-op threads are always 1: nodes run sequentially.
    pub intra_threads: usize,
}

/// Why a scorer could not be loaded or a batch not scored. Only [`ScorerError::Run`] is worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// The settings themselves are unusable (e.g. zero threads).
    #[error("invalid scorer settings: {0}")]
    Settings(String),
    /// The ONNX Runtime library is missing, unloadable, of an unsupported version, or another library is already
    /// loaded in this process.
    #[error("ONNX Runtime library {}: {reason}", path.display())]
    Library {
        /// The library path that was asked for.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The model file does not exist or cannot be read.
    #[error("model file {} is missing or unreadable: {source}", path.display())]
    ModelMissing {
        /// The model path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The metadata file is missing, unreadable, not valid JSON, or has unusable values.
    #[error("model metadata {}: {reason}", path.display())]
    Metadata {
        /// The metadata path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The model bytes do not have the sha256 the metadata promises.
    #[error("model file {}: sha256 is {actual}, the metadata says {expected}", path.display())]
    Checksum {
        /// The model path.
        path: PathBuf,
        /// sha256 from the metadata.
        expected: String,
        /// sha256 of the file.
        actual: String,
    },
    /// ONNX Runtime refused the model bytes (corrupt or truncated file, unsupported opset or operator) or the
    /// session options.
    #[error("ONNX Runtime cannot open model {}: {reason}", path.display())]
    Model {
        /// The model path.
        path: PathBuf,
        /// ONNX Runtime's message.
        reason: String,
    },
    /// The model's inputs/outputs (names, count, element type, shapes) differ from its metadata, or the metadata's
    /// features/heads differ from what the caller expects.
    #[error("signature mismatch for {}: {reason}", path.display())]
    Signature {
        /// The model or metadata path whose content disagrees.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// ONNX Runtime failed to score a batch.
    #[error("model {model} failed on a batch of {rows} rows: {reason}")]
    Run {
        /// The model id (`name@sha`).
        model: String,
        /// Rows in the batch.
        rows: usize,
        /// ONNX Runtime's message.
        reason: String,
    },
    /// The batch is not a whole number of rows, or not the number of rows a fixed-batch model takes.
    #[error("bad batch: {0}")]
    BadBatch(String),
}

impl ScorerError {
    /// Whether trying the same call again may succeed: true only for [`ScorerError::Run`]. Everything else is a
    /// property of the files, settings or input and fails the same way again.
    pub fn retryable(&self) -> bool {
        matches!(self, ScorerError::Run { .. })
    }
}

/// Hex (lowercase) sha256 of a file's contents, read in a streaming fashion.
pub fn sha256_hex(path: &Path) -> io::Result<String> {
    let mut file = io::BufReader::new(fs::File::open(path)?);
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// The process-wide runtime: the library path ort loaded (canonical) and the one environment built on it.
struct Runtime {
    library: PathBuf,
    environment: Option<Environment>,
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// Loads the library (first call) or checks that the same library is asked for again, and returns the environment.
fn runtime(library: &Path) -> Result<Environment, ScorerError> {
    let fail = |reason: String| ScorerError::Library { path: library.to_path_buf(), reason };
    let canonical = library.canonicalize().map_err(|e| fail(format!("cannot resolve the path: {e}")))?;
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let builder = match slot.as_ref() {
        Some(loaded) if loaded.library != canonical => {
            return Err(fail(format!(
                "ONNX Runtime is already loaded from {} in this process (one library per process)",
                loaded.library.display()
            )));
        }
        Some(Runtime { environment: Some(environment), .. }) => return Ok(environment.clone()),
        // Loaded, but building the environment failed last time.
        Some(_) => ort::init(),
        None => {
            let builder = ort::init_from(&canonical).map_err(|e| fail(e.to_string()))?;
            *slot = Some(Runtime { library: canonical, environment: None });
            builder
        }
    };
    let environment = builder
        .with_name("feedflow-onnx-scorer")
        .with_telemetry(false)
        .build()
        .map_err(|e| fail(format!("cannot create the ONNX Runtime environment: {e}")))?;
    if let Some(loaded) = slot.as_mut() {
        loaded.environment = Some(environment.clone());
    }
    Ok(environment)
}

fn read_metadata(path: &Path) -> Result<ModelMetadata, ScorerError> {
    let fail = |reason: String| ScorerError::Metadata { path: path.to_path_buf(), reason };
    let text = fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let metadata: ModelMetadata = serde_json::from_str(&text).map_err(|e| fail(format!("invalid JSON: {e}")))?;
    for (field, value) in [("name", &metadata.name), ("input", &metadata.input), ("output", &metadata.output)] {
        if value.is_empty() {
            return Err(fail(format!("`{field}` is empty")));
        }
    }
    for (field, names) in [("features", &metadata.features), ("heads", &metadata.heads)] {
        if names.is_empty() {
            return Err(fail(format!("`{field}` is empty")));
        }
        if let Some((i, name)) = names.iter().enumerate().find(|(i, name)| names[..*i].contains(name)) {
            return Err(fail(format!("`{field}` repeats {name:?} (column {i})")));
        }
    }
    if metadata.sha256.len() != 64 || !metadata.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail(format!("`sha256` is not 64 hex digits: {:?}", metadata.sha256)));
    }
    Ok(metadata)
}

/// Describes how two column lists differ, or `None` when they are equal (same names, same order).
fn column_mismatch(kind: &str, metadata: &[String], expected: &[&str]) -> Option<String> {
    if metadata.iter().map(String::as_str).eq(expected.iter().copied()) {
        return None;
    }
    let at = metadata.iter().zip(expected).position(|(m, e)| m != e).unwrap_or(metadata.len().min(expected.len()));
    Some(format!(
        "{kind} differ from column {at} on: metadata has {} {kind} {metadata:?}, the caller expects {} {expected:?}",
        metadata.len(),
        expected.len()
    ))
}

/// Checks that `outlets` is exactly one f32 rank-2 tensor called `name` with last dimension `width`; returns its
/// first (batch) dimension, negative when dynamic.
fn check_outlet(role: &str, outlets: &[Outlet], name: &str, width: usize) -> Result<i64, String> {
    let names: Vec<&str> = outlets.iter().map(Outlet::name).collect();
    let [outlet] = outlets else {
        return Err(format!("the model has {} {role}s {names:?}, expected exactly one named {name:?}", outlets.len()));
    };
    if outlet.name() != name {
        return Err(format!("the model's {role} is named {:?}, the metadata says {name:?}", outlet.name()));
    }
    let ValueType::Tensor { ty, shape, .. } = outlet.dtype() else {
        return Err(format!("{role} {name:?} is a {}, not a tensor", outlet.dtype()));
    };
    if *ty != TensorElementType::Float32 {
        return Err(format!("{role} {name:?} has element type {ty}, expected f32"));
    }
    match shape[..] {
        [batch, last] if last == width as i64 && batch != 0 => Ok(batch),
        _ => Err(format!("{role} {name:?} has shape {}, expected [batch, {width}]", outlet.dtype())),
    }
}

/// One session on `bytes`: `intra_threads` inside an operator, nodes run one at a time (one inter-op thread), and
/// idle threads block instead of spinning (the dataflow workers need the cores between batches).
fn open_session(environment: &Environment, bytes: &[u8], intra_threads: usize) -> ort::Result<Session> {
    Session::builder(environment)?
        .with_intra_threads(intra_threads)?
        .with_inter_threads(1)?
        .with_parallel_execution(false)?
        .with_intra_op_spinning(false)?
        .commit_from_memory(bytes)
}

/// A checked ONNX model with one session: scores row-major f32 batches.
pub struct OnnxScorer {
    session: Session,
    model_path: PathBuf,
    metadata: ModelMetadata,
    model_id: String,
    /// The input's batch dimension when the model fixes it.
    fixed_batch: Option<usize>,
}

impl fmt::Debug for OnnxScorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxScorer")
            .field("model_id", &self.model_id)
            .field("input", &self.metadata.input)
            .field("output", &self.metadata.output)
            .field("features", &self.metadata.features.len())
            .field("heads", &self.metadata.heads.len())
            .finish_non_exhaustive()
    }
}

impl OnnxScorer {
    /// Loads the runtime (once per process; a second call with another library path is an error, the same path is
    /// fine), checks the model file's sha256 against the metadata, opens one session with the thread settings and
    /// checks the model signature: one input named `metadata.input`, f32, rank 2, last dimension
    /// `features.len()` (any batch dimension); one output named `metadata.output`, f32, rank 2, last dimension
    /// `heads.len()`; and `metadata.features == expected_features`, `metadata.heads == expected_heads` (exact order).
    ///
    /// The session is built from the very bytes that were hashed, so a model with external data files is not
    /// supported.
    pub fn load(
        settings: &ScorerSettings,
        expected_features: &[&str],
        expected_heads: &[&str],
    ) -> Result<Self, ScorerError> {
        if settings.intra_threads == 0 {
            return Err(ScorerError::Settings("intra_threads must be at least 1".into()));
        }
        let environment = runtime(&settings.library)?;
        let metadata = read_metadata(&settings.metadata)?;

        let model_path = &settings.model;
        let bytes =
            fs::read(model_path).map_err(|source| ScorerError::ModelMissing { path: model_path.clone(), source })?;
        let actual = format!("{:x}", Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(&metadata.sha256) {
            return Err(ScorerError::Checksum { path: model_path.clone(), expected: metadata.sha256, actual });
        }

        let caller_mismatch = column_mismatch("features", &metadata.features, expected_features)
            .or_else(|| column_mismatch("heads", &metadata.heads, expected_heads));
        if let Some(reason) = caller_mismatch {
            return Err(ScorerError::Signature { path: settings.metadata.clone(), reason });
        }

        let session = open_session(&environment, &bytes, settings.intra_threads)
            .map_err(|e| ScorerError::Model { path: model_path.clone(), reason: e.to_string() })?;

        let signature_error = |reason: String| ScorerError::Signature { path: model_path.clone(), reason };
        let batch = check_outlet("input", session.inputs(), &metadata.input, metadata.features.len())
            .map_err(signature_error)?;
        check_outlet("output", session.outputs(), &metadata.output, metadata.heads.len()).map_err(signature_error)?;

        let model_id = format!("{}@{}", metadata.name, &actual[..12]);
        let fixed_batch = usize::try_from(batch).ok();
        Ok(OnnxScorer { session, model_path: model_path.clone(), metadata, model_id, fixed_batch })
    }

    /// Scores `rows` (row-major, n × `features.len()`) in one run and returns n × `heads.len()` scores, row-major.
    /// An empty batch returns an empty vector without calling the runtime.
    pub fn score(&mut self, rows: &[f32]) -> Result<Vec<f32>, ScorerError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let n_features = self.metadata.features.len();
        let n_heads = self.metadata.heads.len();
        let n = rows.len() / n_features;
        if n * n_features != rows.len() {
            return Err(ScorerError::BadBatch(format!(
                "{} values are not a whole number of rows of {n_features} features",
                rows.len()
            )));
        }
        if let Some(fixed) = self.fixed_batch.filter(|&fixed| fixed != n) {
            return Err(ScorerError::BadBatch(format!(
                "{} takes batches of exactly {fixed} rows, got {n}",
                self.model_id
            )));
        }
        let run_error = |reason: String| ScorerError::Run { model: self.model_id.clone(), rows: n, reason };

        let input = TensorRef::from_array_view(([n, n_features], rows)).map_err(|e| run_error(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.metadata.input.as_str() => input])
            .map_err(|e| run_error(e.to_string()))?;
        let output = outputs
            .get(&self.metadata.output)
            .ok_or_else(|| run_error(format!("no output named {:?}", self.metadata.output)))?;
        let (shape, scores) = output.try_extract_tensor::<f32>().map_err(|e| run_error(e.to_string()))?;
        if shape[..] != [n as i64, n_heads as i64] {
            return Err(ScorerError::Signature {
                path: self.model_path.clone(),
                reason: format!(
                    "output {:?} has shape {shape} for {n} rows, expected [{n}, {n_heads}]",
                    self.metadata.output
                ),
            });
        }
        Ok(scores.to_vec())
    }

    /// `"<name>@<first 12 hex chars of the sha256>"`, e.g. for logs and responses.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The model's metadata (as read and checked at load).
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const W: [[f32; 2]; 3] = [[0.5, -1.0], [0.25, 2.0], [-0.75, 0.125]];
    const B: [f32; 2] = [0.1, -0.2];
    const FEATURES: [&str; 3] = ["f0", "f1", "f2"];
    const HEADS: [&str; 2] = ["like", "share"];

    fn library() -> PathBuf {
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/lib/libonnxruntime.so")),
        }
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    fn settings(model: PathBuf, metadata: PathBuf) -> ScorerSettings {
        ScorerSettings { library: library(), model, metadata, intra_threads: 1 }
    }

    fn linear_settings() -> ScorerSettings {
        settings(fixture("linear.onnx"), fixture("linear.json"))
    }

    fn linear_metadata() -> ModelMetadata {
        serde_json::from_str(&fs::read_to_string(fixture("linear.json")).unwrap()).unwrap()
    }

    /// A file under the temp dir with a unique name, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(tag: &str, contents: &[u8]) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("feedflow-onnx-{}-{n}-{tag}", std::process::id()));
            fs::write(&path, contents).unwrap();
            TempFile(path)
        }

        fn json(tag: &str, metadata: &ModelMetadata) -> Self {
            Self::new(tag, serde_json::to_string(metadata).unwrap().as_bytes())
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    fn reference(rows: &[f32]) -> Vec<f32> {
        rows.chunks(3)
            .flat_map(|x| {
                (0..2).map(move |j| {
                    let z = x[0] * W[0][j] + x[1] * W[1][j] + x[2] * W[2][j] + B[j];
                    1.0 / (1.0 + (-z).exp())
                })
            })
            .collect()
    }

    fn load_err(settings: &ScorerSettings, features: &[&str], heads: &[&str]) -> ScorerError {
        match OnnxScorer::load(settings, features, heads) {
            Ok(scorer) => panic!("loaded {scorer:?}, expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn onnx_scores_match_reference() {
        let mut scorer = OnnxScorer::load(&linear_settings(), &FEATURES, &HEADS).unwrap();
        assert_eq!(scorer.model_id(), "linear@18b3fd5dec69");
        assert_eq!(scorer.metadata(), &linear_metadata());

        let rows: Vec<f32> = (0..7 * 3).map(|i| (i as f32 - 10.0) * 0.37).collect();
        for batch in [&rows[..], &rows[6..9]] {
            let scores = scorer.score(batch).unwrap();
            let expected = reference(batch);
            assert_eq!(scores.len(), batch.len() / 3 * 2);
            for (got, want) in scores.iter().zip(&expected) {
                assert!((got - want).abs() <= 1e-6, "{got} vs {want}");
            }
        }
        assert_eq!(scorer.score(&[]).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn onnx_scorer_is_send() {
        fn send<T: Send>() {}
        send::<OnnxScorer>();
    }

    #[test]
    fn onnx_sha256_hex_matches_metadata() {
        assert_eq!(sha256_hex(&fixture("linear.onnx")).unwrap(), linear_metadata().sha256);
        assert!(sha256_hex(&fixture("absent.onnx")).is_err());
    }

    #[test]
    fn onnx_bad_batch() {
        let mut scorer = OnnxScorer::load(&linear_settings(), &FEATURES, &HEADS).unwrap();
        for len in [1, 2, 4, 8] {
            let e = scorer.score(&vec![0.0; len]).unwrap_err();
            assert!(matches!(e, ScorerError::BadBatch(_)), "{e}");
            assert!(!e.retryable());
        }
        assert_eq!(scorer.score(&[0.0; 9]).unwrap().len(), 6);
    }

    #[test]
    fn onnx_missing_files() {
        let e = load_err(&settings(fixture("absent.onnx"), fixture("linear.json")), &FEATURES, &HEADS);
        assert!(matches!(e, ScorerError::ModelMissing { .. }), "{e}");
        let e = load_err(&settings(fixture("linear.onnx"), fixture("absent.json")), &FEATURES, &HEADS);
        assert!(matches!(e, ScorerError::Metadata { .. }), "{e}");
        let not_json = TempFile::new("not-json.json", b"{\"name\": ");
        let e = load_err(&settings(fixture("linear.onnx"), not_json.0.clone()), &FEATURES, &HEADS);
        assert!(matches!(e, ScorerError::Metadata { .. }), "{e}");
        assert!(!e.retryable());
    }

    #[test]
    fn onnx_library_errors() {
        let mut s = linear_settings();
        s.library = fixture("absent.so");
        let e = load_err(&s, &FEATURES, &HEADS);
        assert!(matches!(e, ScorerError::Library { .. }), "{e}");
        // Once the runtime is loaded, another library path is refused (even an existing file).
        OnnxScorer::load(&linear_settings(), &FEATURES, &HEADS).unwrap();
        s.library = fixture("linear.onnx");
        let e = load_err(&s, &FEATURES, &HEADS);
        assert!(matches!(e, ScorerError::Library { .. }), "{e}");
        assert!(e.to_string().contains("already loaded"), "{e}");
        s.intra_threads = 0;
        assert!(matches!(load_err(&s, &FEATURES, &HEADS), ScorerError::Settings(_)));
    }

    #[test]
    fn onnx_corrupt_model_is_an_error() {
        let original = fs::read(fixture("linear.onnx")).unwrap();
        let garbage: Vec<u8> = (0..512u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for (tag, bytes) in
            [("garbage", &garbage[..]), ("truncated", &original[..original.len() / 2]), ("empty", &[][..])]
        {
            let model = TempFile::new(&format!("{tag}.onnx"), bytes);
            let metadata = ModelMetadata { sha256: sha256_hex(&model.0).unwrap(), ..linear_metadata() };
            let metadata = TempFile::json(&format!("{tag}.json"), &metadata);
            let e = load_err(&settings(model.0.clone(), metadata.0.clone()), &FEATURES, &HEADS);
            assert!(matches!(e, ScorerError::Model { .. }), "{tag}: {e}");
            assert!(!e.retryable());
        }
    }

    #[test]
    fn onnx_checksum_mismatch() {
        let metadata = ModelMetadata { sha256: "0".repeat(64), ..linear_metadata() };
        let metadata = TempFile::json("bad-sha.json", &metadata);
        let e = load_err(&settings(fixture("linear.onnx"), metadata.0.clone()), &FEATURES, &HEADS);
        match e {
            ScorerError::Checksum { expected, actual, .. } => {
                assert_eq!(expected, "0".repeat(64));
                assert_eq!(actual, linear_metadata().sha256);
            }
            e => panic!("expected Checksum, got {e}"),
        }
        let metadata = TempFile::json("short-sha.json", &ModelMetadata { sha256: "abc".into(), ..linear_metadata() });
        let e = load_err(&settings(fixture("linear.onnx"), metadata.0.clone()), &FEATURES, &HEADS);
        assert!(matches!(e, ScorerError::Metadata { .. }), "{e}");
    }

    #[test]
    fn onnx_signature_mismatches() {
        let is_signature = |e: ScorerError| assert!(matches!(e, ScorerError::Signature { .. }), "{e}");
        // The caller expects other columns than the metadata lists.
        is_signature(load_err(&linear_settings(), &["f0", "f2", "f1"], &HEADS));
        is_signature(load_err(&linear_settings(), &["f0", "f1"], &HEADS));
        is_signature(load_err(&linear_settings(), &FEATURES, &["share", "like"]));

        // The metadata disagrees with the model itself.
        let cases = [
            ("input-name", ModelMetadata { input: "x".into(), ..linear_metadata() }),
            ("output-name", ModelMetadata { output: "y".into(), ..linear_metadata() }),
            (
                "four-features",
                ModelMetadata { features: vec!["a".into(), "b".into(), "c".into(), "d".into()], ..linear_metadata() },
            ),
            ("three-heads", ModelMetadata { heads: vec!["a".into(), "b".into(), "c".into()], ..linear_metadata() }),
        ];
        for (tag, metadata) in cases {
            let features: Vec<&str> = metadata.features.iter().map(String::as_str).collect();
            let heads: Vec<&str> = metadata.heads.iter().map(String::as_str).collect();
            let file = TempFile::json(&format!("{tag}.json"), &metadata);
            let e = load_err(&settings(fixture("linear.onnx"), file.0.clone()), &features, &heads);
            assert!(matches!(e, ScorerError::Signature { .. }), "{tag}: {e}");
            assert!(!e.retryable());
        }
    }

    #[test]
    fn onnx_only_run_is_retryable() {
        let run = ScorerError::Run { model: "m@0".into(), rows: 1, reason: "boom".into() };
        assert!(run.retryable());
        assert!(!ScorerError::BadBatch("x".into()).retryable());
    }
}
