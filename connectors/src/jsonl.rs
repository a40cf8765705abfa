//! JSONL files: a source that replays a recorded log, and line sinks.
//!
//! The source only splits bytes into lines; decoding is the codec's job.
//! With several readers, reader `i` of `n` takes lines `i, i+n, …`, so every
//! line is read exactly once and each reader keeps the log's order.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Failure of a file transport (the event itself is never the error).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening or reading failed; retrying may help if the file appears.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Creating or writing failed (disk full, permissions); not retryable here.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Reads the lines of one JSONL log that belong to one reader.
pub struct LineReader {
    path: PathBuf,
    reader: BufReader<File>,
    line_no: u64,
    reader_index: u64,
    readers: u64,
    buffer: Vec<u8>,
    bytes_read: u64,
}

impl LineReader {
    /// Opens `path` as reader `reader_index` of `readers`.
    pub fn open(path: &Path, reader_index: usize, readers: usize) -> Result<Self, FileError> {
        let file = File::open(path).map_err(|source| FileError::Read { path: path.to_path_buf(), source })?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            line_no: 0,
            reader_index: reader_index as u64,
            readers: readers.max(1) as u64,
            buffer: Vec::with_capacity(4096),
            bytes_read: 0,
        })
    }

    /// Total size of the file in bytes (for progress).
    pub fn file_len(&self) -> u64 {
        self.reader.get_ref().metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// Bytes consumed so far by this reader (all lines, its own or not).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next line of this reader: its 1-based line number and its bytes
    /// without the line break. Blank lines are skipped.
    pub fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, FileError> {
        self.next_line_seeing(&mut |_| {})
    }

    /// [`LineReader::next_line`], showing `others` every line that belongs to another reader
    /// on the way (readers that must agree on a function of the whole log use it).
    pub fn next_line_seeing(&mut self, others: &mut impl FnMut(&[u8])) -> Result<Option<(u64, &[u8])>, FileError> {
        loop {
            self.buffer.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buffer)
                .map_err(|source| FileError::Read { path: self.path.clone(), source })?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes_read += n as u64;
            self.line_no += 1;
            if (self.line_no - 1) % self.readers != self.reader_index {
                others(&self.buffer);
                continue;
            }
            let mut end = self.buffer.len();
            while end > 0 && (self.buffer[end - 1] == b'\n' || self.buffer[end - 1] == b'\r') {
                end -= 1;
            }
            if self.buffer[..end].iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Ok(Some((self.line_no, &self.buffer[..end])));
        }
    }
}

/// Paces a replay by event time: `speed` times faster than real time.
pub struct Pacer {
    speed: f64,
    start: Option<(Instant, i64)>,
}

impl Pacer {
    /// `speed` 0 (or less) means as fast as possible.
    pub fn new(speed: f64) -> Self {
        Self { speed, start: None }
    }

    /// Sleeps until the event at `ts` is due.
    pub fn wait_for(&mut self, ts: i64) {
        if self.speed <= 0.0 {
            return;
        }
        let (wall, first) = *self.start.get_or_insert((Instant::now(), ts));
        let due = wall + Duration::from_secs_f64((ts - first).max(0) as f64 / 1000.0 / self.speed);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// Appends JSON lines to a file.
pub struct LineSink {
    path: PathBuf,
    writer: BufWriter<File>,
    lines: u64,
}

impl LineSink {
    /// Creates (truncates) `path`, creating its folder.
    pub fn create(path: &Path) -> Result<Self, FileError> {
        let err = |source| FileError::Write { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
        }
        let file = File::create(path).map_err(err)?;
        Ok(Self { path: path.to_path_buf(), writer: BufWriter::with_capacity(1 << 16, file), lines: 0 })
    }

    /// Writes one line (a newline is added).
    pub fn write_line(&mut self, line: &str) -> Result<(), FileError> {
        self.lines += 1;
        self.writer
            .write_all(line.as_bytes())
            .and_then(|_| self.writer.write_all(b"\n"))
            .map_err(|source| FileError::Write { path: self.path.clone(), source })
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&mut self) -> Result<(), FileError> {
        self.writer.flush().map_err(|source| FileError::Write { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_split_lines_and_keep_numbers() {
        let dir = std::env::temp_dir().join(format!("ff-jsonl-{}", std::process::id()));
        let path = dir.join("log.jsonl");
        let mut sink = LineSink::create(&path).unwrap();
        for line in ["a", "b", "", "c\r", "d"] {
            sink.write_line(line).unwrap();
        }
        sink.flush().unwrap();
        let mut all = Vec::new();
        for r in 0..2 {
            let mut reader = LineReader::open(&path, r, 2).unwrap();
            while let Some((n, bytes)) = reader.next_line().unwrap() {
                all.push((n, String::from_utf8(bytes.to_vec()).unwrap()));
            }
        }
        all.sort();
        assert_eq!(all, vec![(1, "a".into()), (2, "b".into()), (4, "c".into()), (5, "d".into())]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_file_is_a_read_error() {
        assert!(matches!(LineReader::open(Path::new("/nonexistent/x.jsonl"), 0, 1), Err(FileError::Read { .. })));
    }
}
