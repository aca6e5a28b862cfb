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

/// A set of ids for sets that grow with the repository (the blobs a backup claims, the blobs
/// prune finds in use): each id once in a list, and a 4-byte slot per id in an open-addressing
/// table over it, about 40 bytes an id where an [`IdSet`] takes 38 to 75.
#[derive(Default)]
pub struct CompactIdSet {
    ids: Vec<Id>,
    table: hashbrown::HashTable<u32>,
}

impl CompactIdSet {
    fn hash(id: &Id) -> u64 {
        // A SHA-256 digest: its first 8 bytes are a fine hash.
        let mut b = [0u8; 8];
        b.copy_from_slice(&id.0[..8]);
        u64::from_le_bytes(b)
    }

    /// Add `id`; `true` if it was not in the set.
    pub fn insert(&mut self, id: Id) -> bool {
        let Ok(n) = u32::try_from(self.ids.len()) else {
            // Four billion ids: beyond what a slot can name. Saying "new" is safe (a blob stored
            // twice is only space), saying "known" would not be.
            return true;
        };
        let ids = &self.ids;
        match self.table.entry(Self::hash(&id), |&i| ids[i as usize] == id, |&i| Self::hash(&ids[i as usize])) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(n);
                self.ids.push(id);
                true
            }
        }
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &Id) -> bool {
        self.table.find(Self::hash(id), |&i| self.ids[i as usize] == *id).is_some()
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &Id> {
        self.ids.iter()
    }
}

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

impl Entry {
    fn of(pack: u32, b: &IndexBlob) -> Entry {
        Entry { pack, offset: b.offset, length: b.length, uncompressed_length: b.uncompressed_length.unwrap_or(0) }
    }

    fn blob(&self, id: Id, blob_type: BlobType) -> IndexBlob {
        IndexBlob {
            id,
            blob_type,
            offset: self.offset,
            length: self.length,
            uncompressed_length: (self.uncompressed_length != 0).then_some(self.uncompressed_length),
        }
    }
}

/// The blobs of one type: a table sorted by id (48 bytes per blob with its location `E =
/// Entry`, 32 with none, `E = ()`: what loading a repository's index builds, see
/// [`Index::add_files_compact`]) and a map for blobs added one pack at a time afterwards. A blob
/// is in one of the two, never both; the first location added wins.
struct Table<E = Entry> {
    sorted: Vec<(Id, E)>,
    /// Where each run of ids sharing their first `prefix_bits` bits starts in `sorted` (one
    /// more entry at the end: its length), so a lookup searches about eight entries, not the
    /// whole table: each step of a search over tens of MB is a cache miss, and `check` spent a
    /// quarter of its time there. Built by [`Index::sort`]; empty while `sorted` is filled.
    starts: Vec<u32>,
    prefix_bits: u32,
    extra: IdMap<E>,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Table { sorted: Vec::new(), starts: Vec::new(), prefix_bits: 0, extra: IdMap::default() }
    }
}

impl<E: Copy> Table<E> {
    /// The first `bits` bits of an id (ids are SHA-256 digests: evenly spread).
    fn prefix(id: &Id, bits: u32) -> usize {
        if bits == 0 {
            return 0;
        }
        (u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]) >> (32 - bits)) as usize
    }

    /// Build [`Table::starts`] for the sorted table: a run of about eight ids per prefix.
    fn build_starts(&mut self) {
        self.starts = Vec::new();
        self.prefix_bits = 0;
        let n = self.sorted.len();
        if n < 64 || u32::try_from(n).is_err() {
            return;
        }
        let bits = (usize::BITS - (n / 8).leading_zeros() - 1).min(24);
        let runs = 1usize << bits;
        let mut starts = Vec::with_capacity(runs + 1);
        let mut i = 0;
        for run in 0..=runs {
            while i < n && Self::prefix(&self.sorted[i].0, bits) < run {
                i += 1;
            }
            starts.push(i as u32);
        }
        self.starts = starts;
        self.prefix_bits = bits;
    }

    /// Binary search of the sorted table, narrowed to the id's run when the starts are built.
    fn search(&self, id: &Id) -> std::result::Result<usize, usize> {
        let p = Self::prefix(id, self.prefix_bits);
        let (lo, hi) = match (self.starts.get(p), self.starts.get(p + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => (0, self.sorted.len()),
        };
        match self.sorted.get(lo..hi).map(|run| run.binary_search_by(|(k, _)| k.cmp(id))) {
            Some(Ok(i)) => Ok(lo + i),
            Some(Err(i)) => Err(lo + i),
            None => self.sorted.binary_search_by(|(k, _)| k.cmp(id)),
        }
    }

    fn find(&self, id: &Id) -> Option<&E> {
        match self.search(id) {
            Ok(i) => self.sorted.get(i).map(|(_, e)| e),
            Err(_) => self.extra.get(id),
        }
    }

    fn insert(&mut self, id: Id, e: E) {
        if self.search(&id).is_err() {
            self.extra.entry(id).or_insert(e);
        }
    }

    fn len(&self) -> usize {
        self.sorted.len() + self.extra.len()
    }

    /// Make room for `n` more blobs to be pushed unsorted (exactly: a doubling `reserve` could
    /// hold twice the table until it is sorted; growing a block this large moves its pages, not
    /// its bytes). Until [`Table::sort_by`] there are no runs to narrow a search to.
    fn reserve_unsorted(&mut self, n: usize) {
        self.sorted.reserve_exact(n);
        self.starts = Vec::new();
        self.prefix_bits = 0;
    }

    /// Sort by id (ties by `tie`), keep the first of each id, and release spare capacity.
    fn sort_by(&mut self, tie: impl Fn(&E, &E) -> std::cmp::Ordering) {
        self.sorted.sort_unstable_by(|(a, ea), (b, eb)| a.cmp(b).then_with(|| tie(ea, eb)));
        // The first of equal ids is the one kept.
        self.sorted.dedup_by(|later, first| later.0 == first.0);
        self.sorted.shrink_to_fit();
        self.build_starts();
        // Blobs added one at a time meanwhile that the table now has go.
        let table = &*self;
        let gone: Vec<Id> = table.extra.keys().filter(|id| table.search(id).is_ok()).copied().collect();
        for id in gone {
            self.extra.remove(&id);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&Id, &E)> {
        self.sorted.iter().map(|(k, e)| (k, e)).chain(self.extra.iter())
    }
}

/// The merged index of a repository.
#[derive(Default)]
pub struct Index {
    packs: Vec<Id>,
    pack_numbers: IdMap<u32>,
    data: Table,
    /// The data blobs without their locations, for an index loaded for a backup (see
    /// [`Index::for_backup`]): 32 bytes a blob instead of 48, and `data` stays empty.
    data_ids: Option<Table<()>>,
    tree: Table,
    /// Index files this index was loaded from.
    pub files: Vec<Id>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index for a backup, which asks only whether a data blob is stored, never where:
    /// data blobs are kept as their ids alone (32 bytes a blob, not 48: at ten million files a
    /// re-backup's largest table). [`Index::get`] finds no data blob in it; trees are complete.
    pub fn for_backup() -> Self {
        Index { data_ids: Some(Table::default()), ..Self::default() }
    }

    /// Whether [`Index::get`] locates data blobs (false for [`Index::for_backup`]).
    pub fn locates_data(&self) -> bool {
        self.data_ids.is_none()
    }

    fn map(&self, t: BlobType) -> &Table {
        match t {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.tree,
        }
    }

    /// Add every pack of `files` into the sorted tables, for an index being loaded (nothing
    /// looked up yet): a blob costs 48 bytes, not a hash map entry, and the same blob in two
    /// files keeps its first location. Call it once per group of files and finish with
    /// [`Index::sort`]; until then lookups miss the blobs added here.
    pub fn add_files_compact(&mut self, files: &[IndexFile]) {
        let packs: Vec<&IndexPack> = files.iter().flat_map(|f| &f.packs).collect();
        self.add_packs_compact(&packs);
    }

    fn add_packs_compact(&mut self, packs: &[&IndexPack]) {
        let blobs = |t: BlobType| packs.iter().flat_map(|p| &p.blobs).filter(|b| b.blob_type == t).count();
        match &mut self.data_ids {
            Some(ids) => ids.reserve_unsorted(blobs(BlobType::Data)),
            None => self.data.reserve_unsorted(blobs(BlobType::Data)),
        }
        self.tree.reserve_unsorted(blobs(BlobType::Tree));
        for p in packs {
            let n = self.pack_number(&p.id);
            for b in &p.blobs {
                match (b.blob_type, &mut self.data_ids) {
                    (BlobType::Data, Some(ids)) => ids.sorted.push((b.id, ())),
                    (t, _) => self.table(t).sorted.push((b.id, Entry::of(n, b))),
                }
            }
        }
    }

    /// Like [`Index::add_files_compact`], but a pack listed again (by a later index file, or a
    /// second time in one) is skipped: its first listing is its content, as prune sees it. A
    /// blob then sorts first at the first pack (in listing order) that has it.
    ///
    /// Called once per group of files, a pack an earlier group listed is skipped too. Returns
    /// the packs added, in the order they are numbered.
    pub fn add_first_listings_compact<'f>(&mut self, files: &'f [IndexFile]) -> Vec<&'f IndexPack> {
        let mut listed = IdSet::default();
        let packs: Vec<&IndexPack> = files
            .iter()
            .flat_map(|f| &f.packs)
            .filter(|p| !self.pack_numbers.contains_key(&p.id) && listed.insert(p.id))
            .collect();
        self.add_packs_compact(&packs);
        packs
    }

    /// Where `id` sits in the sorted table of its type: a number below
    /// [`Index::sorted_len`], for marking blobs in a bitmap. `None` when it is not there (not
    /// indexed, or added one pack at a time after the tables were sorted).
    pub fn position(&self, t: BlobType, id: &Id) -> Option<usize> {
        self.map(t).search(id).ok()
    }

    /// Number of blobs of a type in the sorted table.
    pub fn sorted_len(&self, t: BlobType) -> usize {
        self.map(t).sorted.len()
    }

    /// Sort the tables filled by [`Index::add_files_compact`] (keeping each blob's first
    /// location) and release their spare capacity.
    pub fn sort(&mut self) {
        for t in [&mut self.data, &mut self.tree] {
            // In place (a stable sort would take half the table again): packs are numbered in
            // the order they are added, with all their blobs, so of two locations of one blob
            // the first added has the lower pack number: it sorts first and is kept.
            t.sort_by(|a, b| a.pack.cmp(&b.pack));
        }
        if let Some(ids) = &mut self.data_ids {
            ids.sort_by(|_, _| std::cmp::Ordering::Equal);
        }
    }

    fn table(&mut self, t: BlobType) -> &mut Table {
        match t {
            BlobType::Data => &mut self.data,
            BlobType::Tree => &mut self.tree,
        }
    }

    fn pack_number(&mut self, id: &Id) -> u32 {
        match self.pack_numbers.get(id) {
            Some(n) => *n,
            None => {
                let n = self.packs.len() as u32;
                self.packs.push(*id);
                self.pack_numbers.insert(*id, n);
                n
            }
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
        let n = self.pack_number(&pack.id);
        for b in &pack.blobs {
            match (b.blob_type, &mut self.data_ids) {
                (BlobType::Data, Some(ids)) => ids.insert(b.id, ()),
                (t, _) => self.table(t).insert(b.id, Entry::of(n, b)),
            }
        }
    }

    /// Location of a blob (never of a data blob in an index [`Index::for_backup`]).
    pub fn get(&self, t: BlobType, id: &Id) -> Option<BlobLocation> {
        self.map(t).find(id).map(|e| BlobLocation {
            pack: self.packs[e.pack as usize],
            offset: e.offset,
            length: e.length,
            uncompressed_length: (e.uncompressed_length != 0).then_some(e.uncompressed_length),
        })
    }

    /// Whether a blob is indexed.
    pub fn contains(&self, t: BlobType, id: &Id) -> bool {
        match (t, &self.data_ids) {
            (BlobType::Data, Some(ids)) => ids.find(id).is_some(),
            _ => self.map(t).find(id).is_some(),
        }
    }

    /// Number of blobs of a type.
    pub fn len(&self, t: BlobType) -> usize {
        match (t, &self.data_ids) {
            (BlobType::Data, Some(ids)) => ids.len(),
            _ => self.map(t).len(),
        }
    }

    /// Whether there are no blobs at all.
    pub fn is_empty(&self) -> bool {
        self.len(BlobType::Data) == 0 && self.tree.len() == 0
    }

    /// Whether a pack is referenced.
    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_numbers.contains_key(id)
    }

    /// All packs referenced by the index.
    pub fn packs(&self) -> &[Id] {
        &self.packs
    }

    /// The number a pack has in this index (its place in [`Index::packs`]).
    pub fn pack_index(&self, id: &Id) -> Option<usize> {
        self.pack_numbers.get(id).map(|n| *n as usize)
    }

    /// The blob at `position` of a type's sorted table (see [`Index::position`]), with the
    /// number of its pack (see [`Index::pack_index`]).
    pub fn sorted_blob(&self, t: BlobType, position: usize) -> Option<(usize, IndexBlob)> {
        self.map(t).sorted.get(position).map(|(id, e)| (e.pack as usize, e.blob(*id, t)))
    }

    /// Every blob of a type's sorted table in order (so the n-th is at position n), with the
    /// number of its pack.
    pub fn sorted_blobs(&self, t: BlobType) -> impl Iterator<Item = (usize, IndexBlob)> + '_ {
        self.map(t).sorted.iter().map(move |(id, e)| (e.pack as usize, e.blob(*id, t)))
    }

    /// Blobs grouped per pack, sorted by offset (used by check and prune).
    pub fn blobs_by_pack(&self) -> IdMap<Vec<IndexBlob>> {
        let mut out: IdMap<Vec<IndexBlob>> = IdMap::default();
        for (t, map) in [(BlobType::Data, &self.data), (BlobType::Tree, &self.tree)] {
            for (id, e) in map.iter() {
                out.entry(self.packs[e.pack as usize]).or_default().push(e.blob(*id, t));
            }
        }
        for v in out.values_mut() {
            v.sort_by_key(|b| b.offset);
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn first_listings_skip_a_pack_listed_again_and_positions_are_dense() {
        let files = vec![
            IndexFile {
                packs: vec![IndexPack { id: Id([200; 32]), blobs: vec![blob(5, BlobType::Data, 0)] }],
                ..Default::default()
            },
            IndexFile {
                packs: vec![
                    // Pack 200 again, with another content: its first listing counts.
                    IndexPack { id: Id([200; 32]), blobs: vec![blob(6, BlobType::Data, 0)] },
                    IndexPack {
                        id: Id([201; 32]),
                        blobs: vec![blob(5, BlobType::Data, 0), blob(7, BlobType::Tree, 40)],
                    },
                ],
                ..Default::default()
            },
        ];
        let mut idx = Index::new();
        let added: Vec<Id> = idx.add_first_listings_compact(&files).iter().map(|p| p.id).collect();
        assert_eq!(added, vec![Id([200; 32]), Id([201; 32])]);
        // A later group listing pack 200 once more adds nothing.
        let again = vec![IndexFile {
            packs: vec![IndexPack { id: Id([200; 32]), blobs: vec![blob(8, BlobType::Data, 0)] }],
            ..Default::default()
        }];
        assert!(idx.add_first_listings_compact(&again).is_empty());
        idx.sort();
        assert!(!idx.contains(BlobType::Data, &Id([8; 32])), "a listing in a later group is not content");
        assert_eq!(idx.pack_index(&Id([201; 32])), Some(1));
        let tree = idx.sorted_blob(BlobType::Tree, 0).unwrap();
        assert_eq!((tree.0, tree.1.id, tree.1.offset), (1, Id([7; 32]), 40));
        assert_eq!(
            idx.sorted_blobs(BlobType::Data).map(|(p, b)| (p, b.id)).collect::<Vec<_>>(),
            vec![(0, Id([5; 32]))]
        );
        assert!(!idx.contains(BlobType::Data, &Id([6; 32])), "a second listing is not content");
        assert_eq!(idx.get(BlobType::Data, &Id([5; 32])).unwrap().pack, Id([200; 32]), "the first pack's copy");
        assert_eq!(idx.sorted_len(BlobType::Data), 1);
        assert_eq!(idx.position(BlobType::Data, &Id([5; 32])), Some(0));
        assert_eq!(idx.position(BlobType::Tree, &Id([7; 32])), Some(0));
        assert_eq!(idx.position(BlobType::Data, &Id([7; 32])), None);
    }

    #[test]
    fn lookups_narrowed_by_prefix_find_exactly_what_a_full_binary_search_finds() {
        // Ids from a counter through SHA-256, as real ids are; some with prefixes made equal or
        // extreme so runs are empty, long, first and last.
        let id = |n: u32| Id(lifeboat_crypto::sha256(&n.to_le_bytes()));
        for count in [0usize, 1, 63, 64, 65, 1000, 20_000] {
            let mut ids: Vec<Id> = (0..count as u32).map(id).collect();
            for (i, x) in ids.iter_mut().enumerate().take(count / 10) {
                x.0[..4].copy_from_slice(&[0, 0, 0, (i % 3) as u8]);
            }
            if let Some(last) = ids.last_mut() {
                last.0[..4].copy_from_slice(&[0xff; 4]);
            }
            let pack = IndexPack {
                id: Id([1; 32]),
                blobs: ids.iter().enumerate().map(|(i, b)| blob_of(*b, i as u32)).collect(),
            };
            let mut idx = Index::new();
            idx.add_packs_compact(&[&pack]);
            idx.sort();
            let mut sorted = ids.clone();
            sorted.sort();
            sorted.dedup();
            for (i, x) in sorted.iter().enumerate() {
                assert_eq!(idx.position(BlobType::Data, x), Some(i), "{count}: id {i}");
            }
            for n in count as u32..count as u32 + 2000 {
                let mut absent = id(n);
                if n % 2 == 0 {
                    absent.0[..4].copy_from_slice(&[0, 0, 0, 1]);
                }
                assert_eq!(idx.position(BlobType::Data, &absent), None);
                assert!(!idx.contains(BlobType::Data, &absent));
            }
            // A blob added one at a time after the sort is found beside the table.
            let extra = id(u32::MAX);
            idx.add_pack(&IndexPack { id: Id([2; 32]), blobs: vec![blob_of(extra, 0)] });
            assert_eq!(idx.get(BlobType::Data, &extra).unwrap().pack, Id([2; 32]));
        }
    }

    fn blob_of(id: Id, offset: u32) -> IndexBlob {
        IndexBlob { id, blob_type: BlobType::Data, offset, length: 40, uncompressed_length: None }
    }

    #[test]
    fn the_compact_id_set_keeps_every_id_once_and_finds_exactly_those() {
        let mut set = CompactIdSet::default();
        let id = |n: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&n.to_le_bytes());
            // Ids that share their first 8 bytes (the hash) must still be told apart.
            b[31] = (n % 7) as u8;
            Id(b)
        };
        for n in 0..50_000u32 {
            assert!(set.insert(id(n)), "{n} is new");
        }
        for n in 0..50_000u32 {
            assert!(!set.insert(id(n)), "{n} is known");
            assert!(set.contains(&id(n)));
        }
        let mut same_hash = id(3);
        same_hash.0[31] ^= 0xff;
        assert!(!set.contains(&same_hash));
        assert!(set.insert(same_hash));
        assert!(!set.contains(&id(50_000)));
        assert_eq!(set.len(), 50_001);
        assert_eq!(set.iter().next(), Some(&id(0)));
    }

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

    fn blob(id: u8, t: BlobType, offset: u32) -> IndexBlob {
        IndexBlob { id: Id([id; 32]), blob_type: t, offset, length: 40, uncompressed_length: None }
    }

    #[test]
    fn the_compact_tables_find_what_the_map_finds_and_keep_the_first_location() {
        let files = vec![
            IndexFile {
                packs: vec![IndexPack {
                    id: Id([200; 32]),
                    blobs: vec![blob(5, BlobType::Data, 0), blob(3, BlobType::Data, 40), blob(7, BlobType::Tree, 80)],
                }],
                ..Default::default()
            },
            IndexFile {
                packs: vec![IndexPack {
                    id: Id([201; 32]),
                    // Blob 3 again, in a later pack: the first location wins, as with add_pack.
                    blobs: vec![blob(3, BlobType::Data, 0), blob(1, BlobType::Data, 40)],
                }],
                ..Default::default()
            },
        ];
        let mut compact = Index::new();
        compact.add_files_compact(&files[..1]);
        compact.add_files_compact(&files[1..]);
        compact.sort();
        let mut mapped = Index::new();
        for f in &files {
            mapped.add_file(f);
        }
        for id in 0..=255u8 {
            for t in [BlobType::Data, BlobType::Tree] {
                assert_eq!(compact.get(t, &Id([id; 32])), mapped.get(t, &Id([id; 32])), "blob {id} {t:?}");
            }
        }
        assert_eq!(compact.get(BlobType::Data, &Id([3; 32])).unwrap().pack, Id([200; 32]));
        assert_eq!(compact.len(BlobType::Data), 3);
        assert_eq!(compact.len(BlobType::Tree), 1);
        assert_eq!(compact.packs(), mapped.packs());
        // A pack added afterwards goes to the map beside the table; a blob the table has stays.
        compact.add_pack(&IndexPack {
            id: Id([202; 32]),
            blobs: vec![blob(9, BlobType::Data, 0), blob(5, BlobType::Data, 40)],
        });
        assert!(compact.contains(BlobType::Data, &Id([9; 32])));
        assert_eq!(compact.get(BlobType::Data, &Id([5; 32])).unwrap().pack, Id([200; 32]));
        assert_eq!(compact.len(BlobType::Data), 4);
        let by_pack = compact.blobs_by_pack();
        assert_eq!(by_pack[&Id([202; 32])].len(), 1);
        assert_eq!(by_pack[&Id([200; 32])].len(), 3);
    }

    #[test]
    fn a_backup_index_knows_the_same_blobs_and_locates_only_trees() {
        // Many blobs (the sorted table's runs are built from 64 on) in several packs, some
        // data blobs listed twice, and a tree.
        let id = |n: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_be_bytes());
            b[31] = 1;
            Id(b)
        };
        let files: Vec<IndexFile> = (0..4u32)
            .map(|f| IndexFile {
                packs: vec![IndexPack {
                    id: Id([100 + f as u8; 32]),
                    blobs: (f * 300..f * 300 + 400)
                        .map(|n| IndexBlob {
                            id: id(n),
                            blob_type: if n % 50 == 0 { BlobType::Tree } else { BlobType::Data },
                            offset: n,
                            length: 40,
                            uncompressed_length: None,
                        })
                        .collect(),
                }],
                ..Default::default()
            })
            .collect();
        let mut full = Index::new();
        let mut light = Index::for_backup();
        for idx in [&mut full, &mut light] {
            idx.add_files_compact(&files[..2]);
            idx.add_files_compact(&files[2..]);
            idx.sort();
        }
        assert!(full.locates_data());
        assert!(!light.locates_data());
        for n in 0..1_400 {
            for t in [BlobType::Data, BlobType::Tree] {
                assert_eq!(light.contains(t, &id(n)), full.contains(t, &id(n)), "blob {n} {t:?}");
            }
            assert_eq!(light.get(BlobType::Tree, &id(n)), full.get(BlobType::Tree, &id(n)));
            assert_eq!(light.get(BlobType::Data, &id(n)), None);
        }
        assert!(full.contains(BlobType::Data, &id(1_299)) && !full.contains(BlobType::Data, &id(1_300)));
        for t in [BlobType::Data, BlobType::Tree] {
            assert_eq!(light.len(t), full.len(t));
        }
        assert_eq!(light.len(BlobType::Data), 1_300 - 26);
        // A pack added one at a time (what a backup writes) is found in both.
        let late = IndexPack { id: Id([7; 32]), blobs: vec![blob(3, BlobType::Data, 0), blob(4, BlobType::Tree, 40)] };
        light.add_pack(&late);
        assert!(light.contains(BlobType::Data, &Id([3; 32])));
        assert!(light.get(BlobType::Tree, &Id([4; 32])).is_some());
        assert!(!light.is_empty() && Index::for_backup().is_empty());
    }
}
