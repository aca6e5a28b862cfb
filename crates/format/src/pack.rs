//! Pack files: encrypted blobs followed by an encrypted header and its length.
//!
//! ```text
//! EncryptedBlob1 || … || EncryptedBlobN || EncryptedHeader || Header_Length (u32 LE)
//! ```
//! The header plaintext is a list of entries; compressed blobs (repository version 2) carry
//! their uncompressed length as well. This module encodes and decodes the header plaintext.

use serde::{Deserialize, Serialize};

use crate::{FormatError, Id};

/// Kind of a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobType {
    /// File content.
    Data,
    /// A directory listing (JSON [`crate::Tree`]).
    Tree,
}

impl std::fmt::Display for BlobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        })
    }
}

/// One entry of a pack header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackHeaderEntry {
    /// Data or tree.
    pub blob_type: BlobType,
    /// Length of the encrypted blob in the pack.
    pub length: u32,
    /// Plaintext length if the blob is zstd-compressed.
    pub uncompressed_length: Option<u32>,
    /// Blob id.
    pub id: Id,
}

/// Size of an uncompressed header entry.
pub const ENTRY_SIZE_PLAIN: usize = 1 + 4 + 32;
/// Size of a compressed header entry.
pub const ENTRY_SIZE_COMPRESSED: usize = 1 + 4 + 4 + 32;

impl PackHeaderEntry {
    fn type_byte(&self) -> u8 {
        match (self.blob_type, self.uncompressed_length.is_some()) {
            (BlobType::Data, false) => 0,
            (BlobType::Tree, false) => 1,
            (BlobType::Data, true) => 2,
            (BlobType::Tree, true) => 3,
        }
    }

    /// Encoded size of this entry.
    pub fn encoded_len(&self) -> usize {
        if self.uncompressed_length.is_some() {
            ENTRY_SIZE_COMPRESSED
        } else {
            ENTRY_SIZE_PLAIN
        }
    }
}

/// Encode header entries into the header plaintext.
pub fn encode_header(entries: &[PackHeaderEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(PackHeaderEntry::encoded_len).sum());
    for e in entries {
        out.push(e.type_byte());
        out.extend_from_slice(&e.length.to_le_bytes());
        if let Some(ul) = e.uncompressed_length {
            out.extend_from_slice(&ul.to_le_bytes());
        }
        out.extend_from_slice(e.id.as_bytes());
    }
    out
}

/// Decode the header plaintext into entries.
pub fn decode_header(mut data: &[u8]) -> Result<Vec<PackHeaderEntry>, FormatError> {
    let mut out = Vec::with_capacity(data.len() / ENTRY_SIZE_PLAIN);
    while !data.is_empty() {
        let (blob_type, compressed) = match data[0] {
            0 => (BlobType::Data, false),
            1 => (BlobType::Tree, false),
            2 => (BlobType::Data, true),
            3 => (BlobType::Tree, true),
            t => return Err(FormatError::PackHeader(format!("unknown blob type {t}"))),
        };
        let need = if compressed { ENTRY_SIZE_COMPRESSED } else { ENTRY_SIZE_PLAIN };
        if data.len() < need {
            return Err(FormatError::PackHeader(format!("truncated entry: {} bytes left, need {need}", data.len())));
        }
        let length = u32::from_le_bytes([data[1], data[2], data[3], data[4]]);
        let (uncompressed_length, id_at) =
            if compressed { (Some(u32::from_le_bytes([data[5], data[6], data[7], data[8]])), 9) } else { (None, 5) };
        let mut id = [0u8; 32];
        id.copy_from_slice(&data[id_at..id_at + 32]);
        out.push(PackHeaderEntry { blob_type, length, uncompressed_length, id: Id(id) });
        data = &data[need..];
    }
    Ok(out)
}

/// Upper bound of the encrypted header size for `count` blobs, used to read a pack's tail in
/// one request: restic's readers fetch this much and retry with the exact size if needed.
pub fn max_header_size(count: usize) -> usize {
    count * ENTRY_SIZE_COMPRESSED + 32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = PackHeaderEntry> {
        (any::<bool>(), any::<u32>(), proptest::option::of(any::<u32>()), any::<[u8; 32]>()).prop_map(
            |(tree, length, ul, id)| PackHeaderEntry {
                blob_type: if tree { BlobType::Tree } else { BlobType::Data },
                length,
                uncompressed_length: ul,
                id: Id(id),
            },
        )
    }

    proptest! {
        #[test]
        fn header_round_trip(entries in proptest::collection::vec(entry(), 0..20)) {
            let bytes = encode_header(&entries);
            prop_assert_eq!(bytes.len(), entries.iter().map(PackHeaderEntry::encoded_len).sum::<usize>());
            prop_assert_eq!(decode_header(&bytes).expect("decode"), entries);
        }

        #[test]
        fn truncated_header_is_an_error(entries in proptest::collection::vec(entry(), 1..5), cut in 1usize..36) {
            let bytes = encode_header(&entries);
            prop_assert!(decode_header(&bytes[..bytes.len() - cut]).is_err());
        }
    }

    #[test]
    fn type_bytes_follow_the_spec() {
        let e = PackHeaderEntry { blob_type: BlobType::Tree, length: 7, uncompressed_length: Some(9), id: Id([1; 32]) };
        let bytes = encode_header(&[e]);
        assert_eq!(bytes[0], 3);
        assert_eq!(&bytes[1..5], &7u32.to_le_bytes());
        assert_eq!(&bytes[5..9], &9u32.to_le_bytes());
        assert!(decode_header(&[9u8; 37]).is_err());
    }
}
