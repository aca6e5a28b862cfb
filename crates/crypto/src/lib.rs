//! Cryptographic primitives and content-defined chunking for Lifeboat.
//!
//! Everything here is a pure function of its inputs (apart from the OS random
//! number generator and reading from a [`std::io::Read`] in the [`Chunker`]):
//!
//! - [`Key`]: restic's master key and its authenticated encryption,
//!   `IV (16) || AES-256-CTR(plaintext) || Poly1305-AES MAC (16)`.
//! - [`derive_key`]: restic's scrypt user-key derivation used to unlock key files.
//! - [`sha256`] / [`hasher`]: SHA-256, the id function of the restic repository format.
//! - [`Chunker`]: content-defined chunking (FastCDC 2020), seeded per repository.
//! - [`random_polynomial`] / [`is_irreducible`]: the irreducible polynomial
//!   stored as `chunker_polynomial` in restic's `config` file.

pub mod chunker;
mod error;
pub mod key;

pub use chunker::{is_irreducible, random_polynomial, Chunker, ChunkerParams};
pub use error::CryptoError;
pub use key::{derive_key, KdfParams, Key, OVERHEAD};
pub use sha2::{Digest, Sha256};

use rand::RngCore;

/// SHA-256 of `data` (hardware-accelerated where the CPU supports it).
///
/// This is the id function of the restic repository format: blob ids, pack ids,
/// snapshot ids, … are all SHA-256 hashes.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A fresh incremental SHA-256 hasher (e.g. for pack ids computed while writing).
///
/// Feed it with [`Digest::update`] and finish with [`Digest::finalize`].
#[must_use]
pub fn hasher() -> Sha256 {
    Sha256::new()
}

/// `N` bytes from the operating system's cryptographically secure RNG.
///
/// # Panics
///
/// Panics if the operating system RNG fails, which only happens on badly broken
/// systems; there is no safe way to continue without randomness.
#[must_use]
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_known_answers() {
        assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn incremental_hasher_matches_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut h = hasher();
        for part in data.chunks(777) {
            h.update(part);
        }
        let incremental: [u8; 32] = h.finalize().into();
        assert_eq!(incremental, sha256(&data));
    }

    #[test]
    fn random_bytes_differ() {
        let a: [u8; 32] = random_bytes();
        let b: [u8; 32] = random_bytes();
        assert_ne!(a, b);
        let empty: [u8; 0] = random_bytes();
        assert!(empty.is_empty());
    }
}
