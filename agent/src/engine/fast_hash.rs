//! A fast, non-cryptographic hasher for the exact-origin map.
//!
//! Why not the std `RandomState` (SipHash): hashing the `Origin` is a third
//! of an exact-origin decision, and HashDoS does not apply here. Only the
//! policy (trusted, from the control plane) inserts keys; a request can only
//! look one up, and a lookup's probe length is fixed by how the trusted keys
//! filled the table, whatever the attacker's key hashes to. Over-long
//! origins are refused before hashing, so a lookup is also bounded in bytes.
//!
//! The mixing is the multiply-rotate scheme of rustc's FxHasher, written here
//! (eight bytes per step) with a final rotate so that hashbrown's bucket
//! index, taken from the low bits, sees the well-mixed high bits.

use std::hash::{BuildHasherDefault, Hasher};

/// `BuildHasher` for maps keyed by trusted strings and queried with
/// untrusted ones.
pub(crate) type BuildFastHasher = BuildHasherDefault<FastHasher>;

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// See the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    #[test]
    fn similar_origins_spread_over_buckets() {
        let build = BuildFastHasher::default();
        // The low 14 bits pick the bucket in a 16k-slot table.
        let buckets: HashSet<u64> = (0..10_000)
            .map(|i| build.hash_one(format!("https://app{i}.example.com")) & 0x3fff)
            .collect();
        assert!(
            buckets.len() > 7_000,
            "only {} distinct buckets",
            buckets.len()
        );
    }
}
