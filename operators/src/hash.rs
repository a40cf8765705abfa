//! A fixed, seedless 64-bit hash, so routing is the same in every process and run.

/// Mixes a 64-bit value (the SplitMix64 finalizer): cheap and well spread.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Hashes bytes (FNV-1a, then mixed), stable across platforms and runs.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Routing must never change between builds: pin a few outputs.
        assert_eq!(mix64(0), 0xE220_A839_7B1D_CDAF);
        assert_ne!(hash_bytes(b"a"), hash_bytes(b"b"));
        assert_eq!(hash_bytes(b"abc"), hash_bytes(b"abc"));
    }
}

/// A fast hasher for the engine's in-memory maps (ids are mostly `u64`).
/// Seeded once per process so crafted ids cannot target its buckets; map
/// iteration order never reaches an output, so the seed does not affect results.
#[derive(Clone, Copy)]
pub struct FastHasher(u64);

fn process_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        h.finish()
    })
}

impl Default for FastHasher {
    fn default() -> Self {
        Self(process_seed())
    }
}

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // Every write already mixed the state.
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = mix64(self.0 ^ x);
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(x as u64);
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;
