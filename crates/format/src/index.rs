//! Index files (`index/<id>`): which blob lives in which pack at which offset.

use serde::{Deserialize, Serialize};

use crate::{BlobType, Id};

/// Plaintext of an index file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Index files this one replaces (written by prune/rebuild).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<Vec<Id>>,
    /// The packs described.
    pub packs: Vec<IndexPack>,
}

/// One pack and its blobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// Pack id (SHA-256 of the pack file).
    pub id: Id,
    /// Blobs in the pack, in file order.
    pub blobs: Vec<IndexBlob>,
}

/// One blob's location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBlob {
    /// Blob id (SHA-256 of the plaintext).
    pub id: Id,
    /// Data or tree.
    #[serde(rename = "type")]
    pub blob_type: BlobType,
    /// Offset of the encrypted blob in the pack.
    pub offset: u32,
    /// Length of the encrypted blob in the pack.
    pub length: u32,
    /// Plaintext length when the blob is compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_length: Option<u32>,
}

impl IndexBlob {
    /// Plaintext length of the blob.
    pub fn data_length(&self) -> u32 {
        match self.uncompressed_length {
            Some(n) => n,
            None => self.length.saturating_sub(32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blob() -> impl Strategy<Value = IndexBlob> {
        (any::<[u8; 32]>(), any::<bool>(), any::<u32>(), 32u32.., proptest::option::of(any::<u32>())).prop_map(
            |(id, tree, offset, length, ul)| IndexBlob {
                id: Id(id),
                blob_type: if tree { BlobType::Tree } else { BlobType::Data },
                offset,
                length,
                uncompressed_length: ul,
            },
        )
    }

    proptest! {
        #[test]
        fn json_round_trip(packs in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec(blob(), 0..5)), 0..4)) {
            let file = IndexFile {
                supersedes: None,
                packs: packs.into_iter().map(|(id, blobs)| IndexPack { id: Id(id), blobs }).collect(),
            };
            let json = serde_json::to_vec(&file).expect("json");
            let back: IndexFile = serde_json::from_slice(&json).expect("parse");
            prop_assert_eq!(back, file);
        }
    }

    #[test]
    fn parses_restic_index() {
        let text = r#"{"packs":[{"id":"73d04e6125cf3c28a299cc2f3cca3b78ceac396e4fcf9575e34536b26782413c","blobs":[{"id":"3ec79977ef0cf5de7b08cd12b874cd0f62bbaf7f07f3497a5b1bbcc8cb39b1ce","type":"data","offset":0,"length":38,"uncompressed_length":59}]}]}"#;
        let idx: IndexFile = serde_json::from_str(text).expect("parse");
        assert_eq!(idx.packs[0].blobs[0].data_length(), 59);
        assert_eq!(idx.packs[0].blobs[0].blob_type, BlobType::Data);
    }
}
