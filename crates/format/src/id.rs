//! Content identifiers: SHA-256 digests, written as 64 lowercase hex characters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::FormatError;

/// The SHA-256 id of a blob (of its plaintext) or of a stored file (of its bytes as stored).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// Wrap a raw digest.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Id(bytes)
    }
    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Full 64-character hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// The 8-character short form shown in listings (as restic does).
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
    /// Whether this is the all-zero id (never a real object).
    pub fn is_null(&self) -> bool {
        self.0 == [0; 32]
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

/// Value of each ASCII hex digit (either case); 255 for every other byte.
const HEX: [u8; 256] = {
    let mut t = [255u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

impl FromStr for Id {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(FormatError::InvalidId {
                text: s.to_string(),
                reason: format!("expected 64 hex characters, got {}", s.len()),
            });
        }
        // Ids are parsed by the hundred thousand when trees are read: a table beats `hex`.
        let b = s.as_bytes();
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            let (hi, lo) = (HEX[b[2 * i] as usize], HEX[b[2 * i + 1] as usize]);
            if hi > 15 || lo > 15 {
                return Err(FormatError::InvalidId { text: s.to_string(), reason: "not a hex digit".into() });
            }
            *o = (hi << 4) | lo;
        }
        Ok(Id(out))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trip(bytes in any::<[u8; 32]>()) {
            let id = Id(bytes);
            let parsed: Id = id.to_hex().parse().expect("parse");
            prop_assert_eq!(parsed, id);
            let json = serde_json::to_string(&id).expect("json");
            prop_assert_eq!(serde_json::from_str::<Id>(&json).expect("json back"), id);
        }
    }

    #[test]
    fn rejects_bad_ids() {
        assert!("abc".parse::<Id>().is_err());
        assert!("zz".repeat(32).parse::<Id>().is_err());
    }
}
