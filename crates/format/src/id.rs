//! Content identifiers: SHA-256 digests, written as 64 lowercase hex characters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::FormatError;

/// The SHA-256 id of a blob (of its plaintext) or of a stored file (of its bytes as stored).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Id(pub [u8; 32]);

/// Byte order (as the derived order of the array), compared as four 64-bit words: the derived
/// order called `memcmp` for each comparison, which was a fifth of `check`'s CPU (sorting and
/// searching the index of a million blobs).
impl Ord for Id {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        for i in 0..4 {
            match self.word(i).cmp(&other.word(i)) {
                std::cmp::Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        std::cmp::Ordering::Equal
    }
}

impl PartialOrd for Id {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

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

    /// Bytes `8 i .. 8 i + 8` as a big-endian number: comparing these in order is comparing the
    /// bytes in order.
    #[inline]
    fn word(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[i * 8..i * 8 + 8]);
        u64::from_be_bytes(w)
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

        #[test]
        fn order_is_byte_order(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), shared in 0usize..32) {
            // Ids sharing a prefix of any length, so every word decides some cases.
            let mut b = b;
            b[..shared].copy_from_slice(&a[..shared]);
            prop_assert_eq!(Id(a).cmp(&Id(b)), a.as_slice().cmp(b.as_slice()));
            prop_assert_eq!(Id(a).cmp(&Id(a)), std::cmp::Ordering::Equal);
            prop_assert_eq!(Id(a).partial_cmp(&Id(b)), Some(a.as_slice().cmp(b.as_slice())));
        }
    }

    #[test]
    fn rejects_bad_ids() {
        assert!("abc".parse::<Id>().is_err());
        assert!("zz".repeat(32).parse::<Id>().is_err());
    }
}
