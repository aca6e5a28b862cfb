//! The in-memory master index: blob id → (pack, offset, length), merged from all index files.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use lifeboat_format::{BlobType, Id, IndexBlob, IndexFile, IndexPack};

/// Hasher for ids: they are SHA-256 digests already, so the first 8 bytes are a fine hash.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Id hashes as its 32 bytes; fold the first 8 (length prefixes are not written for arrays).
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
}

/// A `HashMap` keyed by [`Id`].
pub type IdMap<V> = HashMap<Id, V, BuildHasherDefault<IdHasher>>;
/// A `HashSet` of [`Id`].
pub type IdSet = std::collections::HashSet<Id, BuildHasherDefault<IdHasher>>;

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// Pack holding it.
    pub pack: Id,
    /// Offset in the pack.
    pub offset: u32,
    /// Encrypted length in the pack.
    pub length: u32,
    /// Plaintext length if compressed.
    pub uncompressed_length: Option<u32>,
}

impl BlobLocation {
    /// Plaintext length.
    pub fn data_length(&self) -> u32 {
        self.uncompressed_length.unwrap_or(self.length.saturating_sub(32))
    }
}

#[derive(Clone, Copy)]
struct Entry {
    pack: u32,
    offset: u32,
    length: u32,
    uncompressed_length: u32,
}

/// The merged index of a repository.
#[derive(Default)]
pub struct Index {
    packs: Vec<Id>,
    pack_numbers: IdMap<u32>,
    data: IdMap<Entry>,
    tree: IdMap<Entry>,
    /// Index files this index was loaded from.
    pub files: Vec<Id>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self, t: BlobType) -> &IdMap<Entry> {
        match t {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.tree,
        }
    }

    /// Add every pack of an index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p);
        }
    }

    /// Add one pack and its blobs.
    pub fn add_pack(&mut self, pack: &IndexPack) {
        let n = match self.pack_numbers.get(&pack.id) {
            Some(n) => *n,
            None => {
                let n = self.packs.len() as u32;
                self.packs.push(pack.id);
                self.pack_numbers.insert(pack.id, n);
                n
            }
        };
        for b in &pack.blobs {
            let e = Entry {
                pack: n,
                offset: b.offset,
                length: b.length,
                uncompressed_length: b.uncompressed_length.unwrap_or(0),
            };
            let map = match b.blob_type {
                BlobType::Data => &mut self.data,
                BlobType::Tree => &mut self.tree,
            };
            map.entry(b.id).or_insert(e);
        }
    }

    /// Location of a blob.
    pub fn get(&self, t: BlobType, id: &Id) -> Option<BlobLocation> {
        self.map(t).get(id).map(|e| BlobLocation {
            pack: self.packs[e.pack as usize],
            offset: e.offset,
            length: e.length,
            uncompressed_length: (e.uncompressed_length != 0).then_some(e.uncompressed_length),
        })
    }

    /// Whether a blob is indexed.
    pub fn contains(&self, t: BlobType, id: &Id) -> bool {
        self.map(t).contains_key(id)
    }

    /// Number of blobs of a type.
    pub fn len(&self, t: BlobType) -> usize {
        self.map(t).len()
    }

    /// Whether there are no blobs at all.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.tree.is_empty()
    }

    /// Whether a pack is referenced.
    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_numbers.contains_key(id)
    }

    /// All packs referenced by the index.
    pub fn packs(&self) -> &[Id] {
        &self.packs
    }

    /// Blobs grouped per pack, sorted by offset (used by check and prune).
    pub fn blobs_by_pack(&self) -> IdMap<Vec<IndexBlob>> {
        let mut out: IdMap<Vec<IndexBlob>> = IdMap::default();
        for (t, map) in [(BlobType::Data, &self.data), (BlobType::Tree, &self.tree)] {
            for (id, e) in map {
                out.entry(self.packs[e.pack as usize]).or_default().push(IndexBlob {
                    id: *id,
                    blob_type: t,
                    offset: e.offset,
                    length: e.length,
                    uncompressed_length: (e.uncompressed_length != 0).then_some(e.uncompressed_length),
                });
            }
        }
        for v in out.values_mut() {
            v.sort_by_key(|b| b.offset);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_type() {
        let mut idx = Index::new();
        let pack = IndexPack {
            id: Id([9; 32]),
            blobs: vec![
                IndexBlob {
                    id: Id([1; 32]),
                    blob_type: BlobType::Data,
                    offset: 0,
                    length: 40,
                    uncompressed_length: None,
                },
                IndexBlob {
                    id: Id([2; 32]),
                    blob_type: BlobType::Tree,
                    offset: 40,
                    length: 50,
                    uncompressed_length: Some(90),
                },
            ],
        };
        idx.add_pack(&pack);
        assert!(idx.contains(BlobType::Data, &Id([1; 32])));
        assert!(!idx.contains(BlobType::Tree, &Id([1; 32])));
        let loc = idx.get(BlobType::Tree, &Id([2; 32])).expect("tree blob");
        assert_eq!((loc.pack, loc.offset, loc.data_length()), (Id([9; 32]), 40, 90));
        assert_eq!(idx.get(BlobType::Data, &Id([1; 32])).expect("data").data_length(), 8);
        assert_eq!(idx.blobs_by_pack()[&Id([9; 32])].len(), 2);
    }
}
