//! Packs: assembling encrypted blobs into pack files, and the concurrent [`BlobSaver`] that
//! compresses, encrypts, packs and uploads blobs for the backup pipeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};
use lifeboat_backend::{Backend, FileType};
use lifeboat_crypto::{sha256, Key};
use lifeboat_format::pack::encode_header;
use lifeboat_format::{BlobType, Id, IndexBlob, IndexPack, PackHeaderEntry};

use crate::compress::Scratch;
use crate::index::{CompactIdSet, Index};
use crate::{RepoError, Repository, Result};

/// Packs are cut once they reach this size (restic ≥ 0.17 uses 16 MiB as well).
pub const TARGET_PACK_SIZE: usize = 16 * 1024 * 1024;

/// Room a new pack buffer gets beyond [`TARGET_PACK_SIZE`]: an average chunk (1 MiB) plus IV and
/// MAC, with some slack. A larger last blob grows the buffer to exactly what it needs (at most
/// once per pack: the pack is full after it).
const PACK_SLACK: usize = 1024 * 1024 + 4096;

/// Compression buffers larger than this are freed after use instead of kept for the next blob.
const SCRATCH_KEPT: usize = 2 << 20;

/// Data pack buffers in use at once: filling, waiting for a writer, or being written (a writer
/// hands its buffer back once the pack is written, before the fsync). Storing threads wait for
/// one rather than start another 17 MiB buffer.
const DATA_PACKS_IN_MEMORY: usize = 2;

/// A pack being assembled.
#[derive(Default)]
pub struct Packer {
    buf: Vec<u8>,
    entries: Vec<PackHeaderEntry>,
}

/// A finished pack, ready to store.
pub struct FinishedPack {
    /// SHA-256 of `data`.
    pub id: Id,
    /// The pack file.
    pub data: Vec<u8>,
    /// Its index entry.
    pub index: IndexPack,
}

impl Packer {
    /// An empty packer.
    pub fn new() -> Self {
        Packer::default()
    }

    /// An empty packer writing into a recycled buffer.
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        Packer { buf, entries: Vec::new() }
    }

    /// Make room for `more` bytes: a new buffer gets a pack's worth, a full one exactly what it
    /// needs (no doubling: a pack buffer is as large as the pack).
    fn room(&mut self, more: usize) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(TARGET_PACK_SIZE + PACK_SLACK);
        }
        self.buf.reserve_exact(more);
    }

    /// Append an already encrypted blob.
    pub fn add(&mut self, blob_type: BlobType, id: Id, encrypted: &[u8], uncompressed_length: Option<u32>) {
        self.room(encrypted.len());
        self.entries.push(PackHeaderEntry { blob_type, length: encrypted.len() as u32, uncompressed_length, id });
        self.buf.extend_from_slice(encrypted);
    }

    /// Encrypt a blob straight into the pack (no intermediate copy).
    pub fn add_encrypting(
        &mut self,
        key: &Key,
        blob_type: BlobType,
        id: Id,
        plain: &[u8],
        uncompressed_length: Option<u32>,
    ) -> u32 {
        // IV and MAC.
        self.room(plain.len() + 32);
        let before = self.buf.len();
        key.encrypt_into(plain, &mut self.buf);
        let length = (self.buf.len() - before) as u32;
        self.entries.push(PackHeaderEntry { blob_type, length, uncompressed_length, id });
        length
    }

    /// Bytes so far.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encrypt the header, append it and its length, and compute the pack id.
    pub fn finish(self, key: &Key) -> FinishedPack {
        let mut data = self.buf;
        let header = key.encrypt(&encode_header(&self.entries));
        data.extend_from_slice(&header);
        data.extend_from_slice(&(header.len() as u32).to_le_bytes());
        let id = Id(sha256(&data));
        let mut offset = 0u32;
        let blobs = self
            .entries
            .iter()
            .map(|e| {
                let b = IndexBlob {
                    id: e.id,
                    blob_type: e.blob_type,
                    offset,
                    length: e.length,
                    uncompressed_length: e.uncompressed_length,
                };
                offset += e.length;
                b
            })
            .collect();
        FinishedPack { id, data, index: IndexPack { id, blobs } }
    }
}

/// Counters of what a [`BlobSaver`] stored.
#[derive(Default, Debug)]
pub struct SaverStats {
    /// New data blobs.
    pub data_blobs: AtomicU64,
    /// New tree blobs.
    pub tree_blobs: AtomicU64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: AtomicU64,
    /// Stored bytes of new blobs.
    pub bytes_stored: AtomicU64,
    /// Packs written.
    pub packs: AtomicU64,
}

struct Shared {
    key: Key,
    level: Option<i32>,
    index: Arc<Index>,
    claimed: [Mutex<CompactIdSet>; 2],
    packers: [Mutex<Packer>; 2],
    written: Mutex<Vec<IndexPack>>,
    /// Blobs in `written`.
    written_blobs: std::sync::atomic::AtomicUsize,
    error: Mutex<Option<RepoError>>,
    stats: SaverStats,
    /// Data pack buffers handed back by the writers, reused for new packs: a backup allocates
    /// [`DATA_PACKS_IN_MEMORY`] 17 MiB buffers instead of one per pack.
    buffers: Mutex<Vec<Vec<u8>>>,
    /// Data pack buffers in use, at most [`DATA_PACKS_IN_MEMORY`].
    data_packs: Mutex<usize>,
    data_pack_done: std::sync::Condvar,
    /// zstd contexts and buffers for compressed blobs, shared by the storing threads (a thread
    /// holds one only while it compresses and packs a blob)…
    scratch: Mutex<Vec<Scratch>>,
    /// …and at most this many threads compress at once (as many as there are cores), so the
    /// buffers are few however many threads store.
    compressing: crate::util::Semaphore,
    /// The metadata cache: tree packs are kept there as they are written.
    cache: Option<Arc<crate::cache::Cache>>,
}

/// Deduplicates, compresses, encrypts and packs blobs from many threads, and stores full packs
/// on background writer threads. `finish` flushes and returns the index entries of every pack
/// written; only then are the blobs durable.
pub struct BlobSaver {
    shared: Arc<Shared>,
    /// Finished packs for the writers, and whether each counts in [`Shared::data_packs`].
    tx: Option<Sender<(FinishedPack, bool)>>,
    writers: Vec<JoinHandle<()>>,
}

fn slot(t: BlobType) -> usize {
    match t {
        BlobType::Data => 0,
        BlobType::Tree => 1,
    }
}

impl BlobSaver {
    /// A saver for `repo` that dedups against `index`, with `writers` upload threads.
    pub fn new(repo: &Repository, index: Arc<Index>, writers: usize) -> Self {
        let shared = Arc::new(Shared {
            key: repo.key().clone(),
            level: repo.compression().level(),
            index,
            claimed: Default::default(),
            packers: Default::default(),
            written: Mutex::new(Vec::new()),
            written_blobs: Default::default(),
            error: Mutex::new(None),
            stats: SaverStats::default(),
            buffers: Mutex::new(Vec::new()),
            data_packs: Mutex::new(0),
            data_pack_done: std::sync::Condvar::new(),
            scratch: Mutex::new(Vec::new()),
            compressing: crate::util::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            cache: repo.cache(),
        });
        // Hand-over without a queue: at most one pack filling plus one per writer in memory.
        let (tx, rx) = bounded::<(FinishedPack, bool)>(0);
        let handles = (0..writers.max(1))
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                let backend: Arc<dyn Backend> = repo.backend().clone();
                std::thread::spawn(move || {
                    for (pack, counted) in rx {
                        let mut done = counted.then(|| DataPackDone(&shared));
                        if shared.failed() {
                            continue;
                        }
                        let FinishedPack { id, data, index } = pack;
                        if let Some(c) = shared.cache.as_ref().filter(|_| !counted) {
                            c.put(FileType::Pack, &id.to_hex(), &data);
                        }
                        // The buffer goes back to the pool once written, before the fsync: the
                        // next pack may start filling it meanwhile.
                        let mut release = |buf: Vec<u8>| {
                            if counted {
                                if let Ok(mut b) = shared.buffers.lock() {
                                    if b.len() < DATA_PACKS_IN_MEMORY {
                                        b.push(buf);
                                    }
                                }
                            }
                            drop(done.take());
                        };
                        match backend.save_releasing(FileType::Pack, &id.to_hex(), data, &mut release) {
                            Ok(()) => {
                                shared.stats.packs.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut w) = shared.written.lock() {
                                    shared.written_blobs.fetch_add(index.blobs.len(), Ordering::Relaxed);
                                    w.push(index);
                                }
                            }
                            Err(failed) => shared.fail(failed.0.into()),
                        }
                    }
                })
            })
            .collect();
        BlobSaver { shared, tx: Some(tx), writers: handles }
    }

    /// Whether a blob is already stored or claimed by another thread.
    pub fn known(&self, t: BlobType, id: &Id) -> bool {
        self.shared.index.contains(t, id)
            || self.shared.claimed[slot(t)].lock().map(|c| c.contains(id)).unwrap_or(false)
    }

    /// Claim a blob for storing: `true` if the caller must store it (not known, not claimed).
    pub fn claim(&self, t: BlobType, id: &Id) -> bool {
        if self.shared.index.contains(t, id) {
            return false;
        }
        self.shared.claimed[slot(t)].lock().map(|mut c| c.insert(*id)).unwrap_or(false)
    }

    /// Compress, encrypt and pack a claimed blob.
    pub fn store(&self, t: BlobType, id: Id, data: &[u8]) -> Result<()> {
        self.check()?;
        let sh = &self.shared;
        let full = {
            let _compressing = sh.compressing.acquire();
            let mut scratch = sh.scratch.lock().ok().and_then(|mut v| v.pop()).unwrap_or_default();
            let full = self.pack(t, id, data, &mut scratch);
            // A buffer grown for a large chunk (up to 8 MiB) is not kept.
            scratch.shrink(SCRATCH_KEPT);
            if let Ok(mut v) = sh.scratch.lock() {
                v.push(scratch);
            }
            full?
        };
        if let Some(p) = full {
            self.send(p, t == BlobType::Data)?;
        }
        Ok(())
    }

    /// Compress `data` with `scratch` (when that saves space), encrypt it into the pack of its
    /// type, and return the pack when that made it full.
    fn pack(&self, t: BlobType, id: Id, data: &[u8], scratch: &mut Scratch) -> Result<Option<Packer>> {
        let sh = &self.shared;
        let (plain, ul) = match sh.level.filter(|l| scratch.compress(data, *l)) {
            Some(_) => (scratch.out.as_slice(), Some(data.len() as u32)),
            None => (data, None),
        };
        let mut p = sh.packers[slot(t)].lock().map_err(|_| RepoError::Invalid("packer poisoned".into()))?;
        if p.is_empty() {
            if t == BlobType::Data {
                // Wait (holding the packer: the other storing threads wait too) until a writer
                // is done with a pack, then count this one.
                let mut n = sh.data_packs.lock().map_err(|_| RepoError::Invalid("packer poisoned".into()))?;
                while *n >= DATA_PACKS_IN_MEMORY && !sh.failed() {
                    n = sh.data_pack_done.wait(n).map_err(|_| RepoError::Invalid("packer poisoned".into()))?;
                }
                *n += 1;
            }
            if let Some(buf) = (t == BlobType::Data).then(|| sh.buffers.lock().ok().and_then(|mut b| b.pop())).flatten()
            {
                *p = Packer::with_buffer(buf);
            }
        }
        // Encrypting under the lock costs ~0.5 ms per MiB and saves a copy of every blob.
        let stored = p.add_encrypting(&sh.key, t, id, plain, ul);
        let full = (p.size() >= TARGET_PACK_SIZE).then(|| std::mem::take(&mut *p));
        drop(p);
        let st = &sh.stats;
        match t {
            BlobType::Data => st.data_blobs.fetch_add(1, Ordering::Relaxed),
            BlobType::Tree => st.tree_blobs.fetch_add(1, Ordering::Relaxed),
        };
        st.bytes_added.fetch_add(data.len() as u64, Ordering::Relaxed);
        st.bytes_stored.fetch_add(stored as u64, Ordering::Relaxed);
        Ok(full)
    }

    /// Claim and store in one step; returns whether the blob was new.
    pub fn save(&self, t: BlobType, data: &[u8]) -> Result<(Id, bool)> {
        let id = Id(sha256(data));
        if !self.claim(t, &id) {
            return Ok((id, false));
        }
        self.store(t, id, data)?;
        Ok((id, true))
    }

    /// Hand a full pack to a writer; `counted` when it counts in [`Shared::data_packs`].
    fn send(&self, p: Packer, counted: bool) -> Result<()> {
        let finished = p.finish(&self.shared.key);
        let sent = match self.tx.as_ref() {
            Some(tx) => tx.send((finished, counted)).map_err(|_| RepoError::Invalid("pack writer stopped".into())),
            None => Err(RepoError::Invalid("saver finished".into())),
        };
        if sent.is_err() && counted {
            drop(DataPackDone(&self.shared));
        }
        sent?;
        self.check()
    }

    /// Fail fast once a writer hit an error; the error itself is returned by [`Self::finish`].
    pub fn check(&self) -> Result<()> {
        if self.shared.failed() {
            return Err(RepoError::Invalid("storing a pack failed".into()));
        }
        Ok(())
    }

    /// The index entries of the packs written so far, once they hold at least `at_least` blobs
    /// (taken out of the saver: [`BlobSaver::finish`] returns only the rest). A long backup
    /// writes them as index files as it goes, so memory does not grow with every blob stored.
    pub fn take_written(&self, at_least: usize) -> Option<Vec<IndexPack>> {
        let sh = &self.shared;
        if sh.written_blobs.load(Ordering::Relaxed) < at_least {
            return None;
        }
        let taken = std::mem::take(&mut *sh.written.lock().ok()?);
        sh.written_blobs.fetch_sub(taken.iter().map(|p| p.blobs.len()).sum(), Ordering::Relaxed);
        Some(taken)
    }

    /// The first error a writer hit, if any (taken out of the saver).
    pub fn take_error(&self) -> Option<RepoError> {
        self.shared.error.lock().ok().and_then(|mut e| e.take())
    }

    /// Counters so far.
    pub fn stats(&self) -> &SaverStats {
        &self.shared.stats
    }

    /// Flush partial packs, wait for all uploads, and return the index entries of the packs.
    pub fn finish(mut self) -> Result<Vec<IndexPack>> {
        for t in [BlobType::Data, BlobType::Tree] {
            let p = self.shared.packers[slot(t)].lock().map(|mut p| std::mem::take(&mut *p)).ok();
            if let Some(p) = p.filter(|p| !p.is_empty()) {
                if let Err(e) = self.send(p, t == BlobType::Data) {
                    return Err(self.take_error().unwrap_or(e));
                }
            }
        }
        self.tx = None;
        for h in self.writers.drain(..) {
            h.join().map_err(|_| RepoError::Invalid("pack writer panicked".into()))?;
        }
        if let Some(e) = self.shared.error.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        let written = self.shared.written.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default();
        Ok(written)
    }
}

impl Shared {
    fn failed(&self) -> bool {
        self.error.lock().map(|e| e.is_some()).unwrap_or(true)
    }
    fn fail(&self, e: RepoError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
        // Threads waiting to start a pack give up.
        self.data_pack_done.notify_all();
    }
}

/// A data pack is out of memory (written, or given up): the next one may start.
struct DataPackDone<'a>(&'a Shared);

impl Drop for DataPackDone<'_> {
    fn drop(&mut self) {
        if let Ok(mut n) = self.0.data_packs.lock() {
            *n = n.saturating_sub(1);
        }
        self.0.data_pack_done.notify_all();
    }
}

impl Drop for BlobSaver {
    fn drop(&mut self) {
        self.tx = None;
        for h in self.writers.drain(..) {
            let _ = h.join();
        }
    }
}

/// Write index entries as index files (at most `per_file` blobs each); returns their ids.
pub fn write_index(repo: &Repository, packs: Vec<IndexPack>, per_file: usize) -> Result<Vec<Id>> {
    let mut w = IndexWriter::new(per_file);
    for p in packs {
        w.push(repo, p)?;
    }
    w.finish(repo)
}

/// Writes index entries as they come, as index files of at most `per_file` blobs: only one
/// file's worth is held at a time (prune rewrites the entries of every pack it keeps while it
/// reads them again, without holding them all).
pub struct IndexWriter {
    current: lifeboat_format::IndexFile,
    count: usize,
    per_file: usize,
    written: Vec<Id>,
}

impl IndexWriter {
    /// A writer of files of at most `per_file` blobs (a pack is never split).
    pub fn new(per_file: usize) -> Self {
        IndexWriter { current: lifeboat_format::IndexFile::default(), count: 0, per_file, written: Vec::new() }
    }

    /// Add one pack's entries; writes a file when it is full.
    pub fn push(&mut self, repo: &Repository, pack: IndexPack) -> Result<()> {
        self.count += pack.blobs.len();
        self.current.packs.push(pack);
        if self.count >= self.per_file {
            self.written.push(save_index_file(repo, &self.current)?);
            self.current.packs.clear();
            self.count = 0;
        }
        Ok(())
    }

    /// Write what is left; returns the ids of every file written.
    pub fn finish(mut self, repo: &Repository) -> Result<Vec<Id>> {
        if !self.current.packs.is_empty() {
            self.written.push(save_index_file(repo, &self.current)?);
        }
        Ok(self.written)
    }
}

fn save_index_file(repo: &Repository, f: &lifeboat_format::IndexFile) -> Result<Id> {
    let json = serde_json::to_vec(f).map_err(|e| RepoError::Invalid(e.to_string()))?;
    repo.save_unpacked(FileType::Index, &json)
}
