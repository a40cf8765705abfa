//! One usearch HNSW index holding a shard of the vectors, with validation in front of it.
//!
//! Vectors are checked (length, finite, non-zero) before they reach usearch,
//! and capacity grows geometrically so inserts never hit a full index.
//!
//! ```
//! use feedflow_operators::vector_shard::{ShardSettings, VectorShard};
//! let mut shard = VectorShard::new(&ShardSettings { dimensions: 2, ..ShardSettings::default() }).unwrap();
//! shard.insert(1, &[1.0, 0.0]).unwrap();
//! shard.insert(2, &[0.0, 1.0]).unwrap();
//! assert_eq!(shard.search(&[0.9, 0.1], 1).unwrap()[0].0, 1);
//! ```

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// How a shard's index is built.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardSettings {
    /// Vector length.
    pub dimensions: usize,
    /// HNSW graph degree.
    pub connectivity: usize,
    /// Candidate list size while inserting.
    pub expansion_add: usize,
    /// Candidate list size while searching.
    pub expansion_search: usize,
    /// Stored scalar type: "f32", "f16" or "i8".
    pub quantization: String,
}

impl Default for ShardSettings {
    fn default() -> Self {
        Self { dimensions: 64, connectivity: 16, expansion_add: 64, expansion_search: 128, quantization: "f32".into() }
    }
}

/// What went wrong with a shard operation; none of these is retryable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShardError {
    /// The vector has the wrong length.
    #[error("vector has {got} values, the index expects {expected}")]
    Dimensions {
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// NaN, infinity, or a zero vector (no direction for cosine).
    #[error("vector is not usable for cosine search: {0}")]
    Degenerate(&'static str),
    /// usearch itself refused.
    #[error("usearch: {0}")]
    Index(String),
}

/// A usearch index over cosine distance.
pub struct VectorShard {
    index: Index,
    dimensions: usize,
}

impl VectorShard {
    /// Creates an empty shard.
    pub fn new(settings: &ShardSettings) -> Result<Self, ShardError> {
        let quantization = match settings.quantization.as_str() {
            "f16" => ScalarKind::F16,
            "i8" => ScalarKind::I8,
            _ => ScalarKind::F32,
        };
        let options = IndexOptions {
            dimensions: settings.dimensions,
            metric: MetricKind::Cos,
            quantization,
            connectivity: settings.connectivity,
            expansion_add: settings.expansion_add,
            expansion_search: settings.expansion_search,
            multi: false,
        };
        let index = Index::new(&options).map_err(|e| ShardError::Index(e.to_string()))?;
        index.reserve(1024).map_err(|e| ShardError::Index(e.to_string()))?;
        Ok(Self { index, dimensions: settings.dimensions })
    }

    /// Checks that a vector can be indexed or used as a query.
    pub fn validate(&self, vector: &[f32]) -> Result<(), ShardError> {
        if vector.len() != self.dimensions {
            return Err(ShardError::Dimensions { expected: self.dimensions, got: vector.len() });
        }
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(ShardError::Degenerate("non-finite value"));
        }
        if vector.iter().all(|v| *v == 0.0) {
            return Err(ShardError::Degenerate("all zeros"));
        }
        Ok(())
    }

    /// Inserts or replaces the vector of `key`.
    pub fn insert(&mut self, key: u64, vector: &[f32]) -> Result<(), ShardError> {
        self.validate(vector)?;
        if self.index.contains(key) {
            self.remove(key)?;
        }
        if self.index.size() + 1 >= self.index.capacity() {
            let grown = (self.index.capacity() * 2).max(1024);
            self.index.reserve(grown).map_err(|e| ShardError::Index(e.to_string()))?;
        }
        self.index.add(key, vector).map_err(|e| ShardError::Index(e.to_string()))
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: u64) -> Result<bool, ShardError> {
        self.index.remove(key).map(|n| n > 0).map_err(|e| ShardError::Index(e.to_string()))
    }

    /// Whether `key` is indexed.
    pub fn contains(&self, key: u64) -> bool {
        self.index.contains(key)
    }

    /// Number of indexed vectors.
    pub fn len(&self) -> usize {
        self.index.size()
    }

    /// Whether the shard is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored vector of `key` (after quantization), if present.
    pub fn get(&self, key: u64) -> Option<Vec<f32>> {
        let mut buffer = vec![0.0f32; self.dimensions];
        match self.index.get(key, &mut buffer) {
            Ok(n) if n > 0 => Some(buffer),
            _ => None,
        }
    }

    /// Changes the candidate list size of later searches (recall against search time), without rebuilding.
    pub fn set_expansion_search(&self, expansion: usize) {
        self.index.change_expansion_search(expansion);
    }

    /// Bytes the index holds (graph and vectors), as usearch reports them.
    pub fn memory_usage(&self) -> usize {
        self.index.memory_usage()
    }

    /// Approximate nearest neighbours: `(key, cosine distance)`, nearest first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>, ShardError> {
        self.validate(query)?;
        let m = self.index.search(query, k).map_err(|e| ShardError::Index(e.to_string()))?;
        Ok(m.keys.into_iter().zip(m.distances).collect())
    }

    /// Approximate nearest neighbours among the keys `accept` lets through, nearest first.
    pub fn filtered_search(
        &self,
        query: &[f32],
        k: usize,
        accept: impl Fn(u64) -> bool,
    ) -> Result<Vec<(u64, f32)>, ShardError> {
        self.validate(query)?;
        let m = self.index.filtered_search(query, k, accept).map_err(|e| ShardError::Index(e.to_string()))?;
        Ok(m.keys.into_iter().zip(m.distances).collect())
    }

    /// Exact nearest neighbours by brute force over the shard (the reference for recall).
    pub fn exact_search(&self, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>, ShardError> {
        self.validate(query)?;
        let m = self.index.exact_search(query, k).map_err(|e| ShardError::Index(e.to_string()))?;
        Ok(m.keys.into_iter().zip(m.distances).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> VectorShard {
        VectorShard::new(&ShardSettings { dimensions: 3, ..ShardSettings::default() }).unwrap()
    }

    #[test]
    fn rejects_bad_vectors_before_usearch() {
        let mut s = shard();
        assert!(matches!(s.insert(1, &[1.0, 2.0]), Err(ShardError::Dimensions { .. })));
        assert!(matches!(s.insert(1, &[1.0, f32::NAN, 0.0]), Err(ShardError::Degenerate(_))));
        assert!(matches!(s.insert(1, &[0.0, 0.0, 0.0]), Err(ShardError::Degenerate(_))));
        assert!(s.is_empty());
    }

    #[test]
    fn a_larger_search_list_finds_at_least_as_much_and_memory_is_reported() {
        let mut s = shard();
        for k in 0..2000u64 {
            let x = k as f32 * 0.01;
            s.insert(k, &[x.sin() + 1.5, x.cos(), 0.3]).unwrap();
        }
        assert!(s.memory_usage() > 2000 * 3 * 2);
        let query = [1.5, 1.0, 0.3];
        let exact: Vec<u64> = s.exact_search(&query, 50).unwrap().into_iter().map(|(k, _)| k).collect();
        let found = |s: &VectorShard| s.search(&query, 50).unwrap().iter().filter(|(k, _)| exact.contains(k)).count();
        s.set_expansion_search(16);
        let narrow = found(&s);
        s.set_expansion_search(1024);
        let wide = found(&s);
        assert!(wide >= narrow && wide >= 45, "recall with 1024 candidates: {wide}/50, with 16: {narrow}/50");
    }

    #[test]
    fn insert_remove_reinsert_and_grow() {
        let mut s = shard();
        for k in 0..3000u64 {
            let x = k as f32;
            s.insert(k, &[x.sin() + 1.5, x.cos(), 0.3]).unwrap();
        }
        assert_eq!(s.len(), 3000);
        assert!(s.remove(7).unwrap());
        assert!(!s.contains(7));
        assert!(!s.remove(7).unwrap());
        s.insert(7, &[1.0, 0.0, 0.0]).unwrap();
        assert_eq!(s.get(7).unwrap(), vec![1.0, 0.0, 0.0]);
        s.insert(7, &[0.0, 1.0, 0.0]).unwrap();
        assert_eq!(s.get(7).unwrap(), vec![0.0, 1.0, 0.0]);
        assert_eq!(s.len(), 3000);
        let exact = s.exact_search(&[0.0, 1.0, 0.0], 1).unwrap();
        assert_eq!(exact[0].0, 7);
        let filtered = s.filtered_search(&[0.0, 1.0, 0.0], 5, |k| k != 7).unwrap();
        assert_eq!(filtered.len(), 5);
        assert!(filtered.iter().all(|(k, _)| *k != 7));
    }
}
