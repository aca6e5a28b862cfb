//! Key files (`keys/<id>`): a password-derived key wrapping the repository master key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A key file, stored as plain JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyFile {
    /// When the key was added. Optional, as in restic (Go reads a missing field as empty).
    #[serde(default)]
    pub created: DateTime<Utc>,
    /// User who added it. Optional, as in restic (Go reads a missing field as empty).
    #[serde(default)]
    pub username: String,
    /// Host it was added on. Optional, as in restic (Go reads a missing field as empty).
    #[serde(default)]
    pub hostname: String,
    /// Key derivation function; always "scrypt".
    pub kdf: String,
    /// scrypt cost parameter N.
    #[serde(rename = "N")]
    pub n: u32,
    /// scrypt block size r.
    pub r: u32,
    /// scrypt parallelism p.
    pub p: u32,
    /// Salt, base64.
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    /// The encrypted master key (JSON of [`MasterKeyJson`]), base64.
    #[serde(with = "b64")]
    pub data: Vec<u8>,
}

/// The MAC half of the master key.
#[derive(Clone, Serialize, Deserialize)]
pub struct MacKeyJson {
    /// Poly1305-AES AES key, base64 of 16 bytes.
    #[serde(with = "b64")]
    pub k: Vec<u8>,
    /// Poly1305 r, base64 of 16 bytes.
    #[serde(with = "b64")]
    pub r: Vec<u8>,
}

/// Plaintext of a key file's `data`: the master key.
#[derive(Clone, Serialize, Deserialize)]
pub struct MasterKeyJson {
    /// MAC key.
    pub mac: MacKeyJson,
    /// AES-256 key, base64 of 32 bytes.
    #[serde(with = "b64")]
    pub encrypt: Vec<u8>,
}

impl std::fmt::Debug for MasterKeyJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKeyJson(..)")
    }
}

/// serde helper for standard base64 byte strings.
pub mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize bytes as standard base64.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    /// Deserialize standard base64 into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_without_the_optional_fields_parses() {
        // What another restic implementation may write: no created, username or hostname.
        let text = r#"{"kdf":"scrypt","N":16384,"r":8,"p":1,"salt":"AAEC","data":"AwQF"}"#;
        let k: KeyFile = crate::parse_json("key file", text.as_bytes()).expect("parses");
        assert_eq!((k.n, k.username.as_str(), k.hostname.as_str()), (16384, "", ""));
        assert_eq!((k.salt, k.data), (vec![0, 1, 2], vec![3, 4, 5]));
    }
}
