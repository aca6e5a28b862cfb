//! The repository `config` file: format version, repository id and chunker polynomial.

use serde::{Deserialize, Serialize};

/// Plaintext of the `config` file (stored encrypted with the master key, never compressed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Repository format version (1 or 2).
    pub version: u32,
    /// Random 32-byte repository id, hex.
    pub id: String,
    /// Degree-53 irreducible polynomial used by restic's Rabin chunker, hex.
    pub chunker_polynomial: String,
}

impl Config {
    /// The chunker polynomial as a number, if well-formed.
    pub fn polynomial(&self) -> Option<u64> {
        u64::from_str_radix(&self.chunker_polynomial, 16).ok()
    }
}
