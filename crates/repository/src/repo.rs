//! Opening and creating repositories, and reading/writing their encrypted objects.

use std::sync::{Arc, OnceLock};

use chrono::Utc;
use lifeboat_backend::{Backend, FileType};
use lifeboat_crypto::{derive_key, random_bytes, random_polynomial, sha256, KdfParams, Key};
use lifeboat_format::key::MacKeyJson;
use lifeboat_format::{BlobType, Config, Id, IndexFile, KeyFile, MasterKeyJson, Tree, UNPACKED_ZSTD_PREFIX};

use crate::cache::Cache;
use crate::compress::{compress, decompress};
use crate::index::{BlobLocation, Index};
use crate::{util, Compression, RepoError, Result};

/// Options for [`Repository::init`].
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// scrypt parameters of the first key.
    pub kdf: KdfParams,
    /// Chunker polynomial (hex) to use instead of a random one: a copy destination created with
    /// its source's polynomial chunks new backups the same way, so copied data deduplicates.
    pub chunker_polynomial: Option<String>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions { kdf: KdfParams::default_restic(), chunker_polynomial: None }
    }
}

/// An open repository: backend, master key and config.
pub struct Repository {
    backend: Arc<dyn Backend>,
    key: Key,
    key_name: String,
    config: Config,
    compression: Compression,
    index: OnceLock<Arc<Index>>,
    /// The index a backup loads when the master index is not loaded: data blobs without their
    /// locations (see [`Index::for_backup`]).
    backup_index: OnceLock<Arc<Index>>,
    /// The local metadata cache, when one is used (see [`crate::cache`]).
    cache: std::sync::Mutex<Option<Arc<Cache>>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository").field("location", &self.backend.location()).field("id", &self.config.id).finish()
    }
}

/// Encrypt the master key with a password into a new key file.
pub(crate) fn make_key_file(master: &Key, password: &[u8], kdf: KdfParams) -> Result<(String, Vec<u8>)> {
    let salt: [u8; 64] = random_bytes();
    let user_key = derive_key(password, &salt, kdf).map_err(|e| RepoError::Invalid(e.to_string()))?;
    let mk = MasterKeyJson {
        mac: MacKeyJson { k: master.mac_k().to_vec(), r: master.mac_r().to_vec() },
        encrypt: master.encrypt_part().to_vec(),
    };
    let plain = serde_json::to_vec(&mk).map_err(|e| RepoError::Invalid(e.to_string()))?;
    let file = KeyFile {
        created: Utc::now(),
        username: util::username(),
        hostname: util::hostname(),
        kdf: "scrypt".into(),
        n: kdf.n,
        r: kdf.r,
        p: kdf.p,
        salt: salt.to_vec(),
        data: user_key.encrypt(&plain),
    };
    let json = serde_json::to_vec(&file).map_err(|e| RepoError::Invalid(e.to_string()))?;
    Ok((Id(sha256(&json)).to_hex(), json))
}

/// Try to open a key file with a password; `Ok(None)` when the password does not fit.
pub(crate) fn open_key_file(data: &[u8], name: &str, password: &[u8]) -> Result<Option<Key>> {
    let file: KeyFile = lifeboat_format::parse_json("key file", data)
        .map_err(|e| RepoError::corrupt(format!("key {}", short(name)), e))?;
    if file.kdf != "scrypt" {
        return Err(RepoError::corrupt(format!("key {}", short(name)), format!("unknown kdf {:?}", file.kdf)));
    }
    let params = KdfParams { n: file.n, r: file.r, p: file.p };
    let user_key =
        derive_key(password, &file.salt, params).map_err(|e| RepoError::corrupt(format!("key {}", short(name)), e))?;
    let Ok(plain) = user_key.decrypt(&file.data) else { return Ok(None) };
    let mk: MasterKeyJson = lifeboat_format::parse_json("master key", &plain)
        .map_err(|e| RepoError::corrupt(format!("key {}", short(name)), e))?;
    let (Ok(e), Ok(k), Ok(r)) = (
        <[u8; 32]>::try_from(mk.encrypt.as_slice()),
        <[u8; 16]>::try_from(mk.mac.k.as_slice()),
        <[u8; 16]>::try_from(mk.mac.r.as_slice()),
    ) else {
        return Err(RepoError::corrupt(format!("key {}", short(name)), "master key has wrong lengths"));
    };
    Ok(Some(Key::from_parts(e, k, r)))
}

/// What deriving a key file's key costs (scrypt's N·r·p); unreadable files last.
fn key_cost(data: &[u8]) -> u64 {
    match lifeboat_format::parse_json::<KeyFile>("key file", data) {
        Ok(f) => u64::from(f.n) * u64::from(f.r) * u64::from(f.p),
        Err(_) => u64::MAX,
    }
}

fn short(name: &str) -> &str {
    name.get(..8).unwrap_or(name)
}

/// How errors name unpacked file `name`: `index 1a2b3c4d`.
fn file_label(ft: FileType, name: &str) -> String {
    format!("{} {}", ft.as_str(), short(name))
}

/// Parse a decoded unpacked file as JSON, a failure naming the file.
fn parse<T: serde::de::DeserializeOwned>(ft: FileType, name: &str, plain: &[u8]) -> Result<T> {
    lifeboat_format::parse_json(ft.as_str(), plain).map_err(|e| RepoError::corrupt(file_label(ft, name), e))
}

impl Repository {
    fn with(backend: Arc<dyn Backend>, key: Key, key_name: String, config: Config) -> Repository {
        Repository {
            backend,
            key,
            key_name,
            config,
            compression: Compression::Auto,
            index: OnceLock::new(),
            backup_index: OnceLock::new(),
            cache: Default::default(),
        }
    }

    /// Create a new repository (format version 2) protected by `password`.
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<Repository> {
        if backend.has_config()? {
            return Err(RepoError::AlreadyExists { location: backend.location() });
        }
        backend.create()?;
        let key = Key::random();
        let id: [u8; 32] = random_bytes();
        let config = Config {
            version: lifeboat_format::REPO_VERSION,
            id: hex::encode(id),
            chunker_polynomial: opts.chunker_polynomial.clone().unwrap_or_else(|| format!("{:x}", random_polynomial())),
        };
        let (key_name, key_json) = make_key_file(&key, password, opts.kdf)?;
        backend.save(FileType::Key, &key_name, &key_json)?;
        let plain = serde_json::to_vec(&config).map_err(|e| RepoError::Invalid(e.to_string()))?;
        // The config is written last: a repository "exists" only once it is complete.
        backend.save(FileType::Config, "config", &key.encrypt(&plain))?;
        Ok(Repository::with(backend, key, key_name, config))
    }

    /// Open an existing repository with `password`.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        if !backend.has_config()? {
            return Err(RepoError::NotARepository { location: backend.location() });
        }
        let mut found = None;
        // A damaged key file must not lock out the others: try every key, and only if none
        // opens say which ones are damaged (one of them may be the password's).
        let mut damaged = Vec::new();
        let mut files = Vec::new();
        for (name, _) in backend.list(FileType::Key)? {
            let data = backend.load(FileType::Key, &name)?;
            files.push((key_cost(&data), name, data));
        }
        // The cheapest key derivation first: a repository with a key for an archiver (a long
        // random password with a cheap KDF, `key add --kdf-n`) opens for it without first
        // paying for the user's expensive derivation, and costs the user a few milliseconds.
        files.sort_by_key(|(cost, _, _)| *cost);
        for (_, name, data) in files {
            match open_key_file(&data, &name, password) {
                Ok(Some(key)) => {
                    found = Some((name, key));
                    break;
                }
                Ok(None) => {}
                Err(RepoError::Corrupt { what, reason }) => damaged.push((what, reason)),
                Err(e) => return Err(e),
            }
        }
        let Some((key_name, key)) = found else {
            if !damaged.is_empty() {
                let what: Vec<String> = damaged.iter().map(|(w, _)| w.clone()).collect();
                let why: Vec<String> = damaged.into_iter().map(|(_, r)| r).collect();
                return Err(RepoError::corrupt(
                    what.join(", "),
                    format!(
                        "{}; no other key opens with this password (it may be the damaged key's password; \
                         another key's password still opens the repository)",
                        why.join("; ")
                    ),
                ));
            }
            return Err(RepoError::WrongPassword { location: backend.location() });
        };
        let raw = backend.load(FileType::Config, "config")?;
        let plain = key.decrypt(&raw).map_err(|e| RepoError::corrupt("config", e))?;
        let config: Config =
            lifeboat_format::parse_json("config", &plain).map_err(|e| RepoError::corrupt("config", e))?;
        if !(1..=2).contains(&config.version) {
            return Err(RepoError::UnsupportedVersion { version: config.version });
        }
        Ok(Repository::with(backend, key, key_name, config))
    }

    /// Set the compression used for new data.
    pub fn set_compression(&mut self, c: Compression) {
        self.compression = if self.config.version < 2 { Compression::Off } else { c };
    }

    /// Compression used for new data.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The storage backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The master key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Name of the key file that opened the repository.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The repository config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Use `cache` for index files, snapshot files and tree packs (or none). `check`, `repair`
    /// and drills turn it off: they must read the repository itself.
    pub fn set_cache(&self, cache: Option<Arc<Cache>>) {
        if let Ok(mut c) = self.cache.lock() {
            *c = cache;
        }
    }

    /// The metadata cache in use, if any.
    pub fn cache(&self) -> Option<Arc<Cache>> {
        self.cache.lock().ok().and_then(|c| c.clone())
    }

    /// Encrypt, optionally compress, and store an unpacked file (index, snapshot, lock, lifeboat
    /// object); returns its id (SHA-256 of the stored bytes).
    pub fn save_unpacked(&self, ft: FileType, plaintext: &[u8]) -> Result<Id> {
        let data = self.encode_unpacked(plaintext);
        let id = Id(sha256(&data));
        self.backend.save(ft, &id.to_hex(), &data)?;
        if let Some(c) = self.cache().filter(|_| matches!(ft, FileType::Index | FileType::Snapshot)) {
            c.put(ft, &id.to_hex(), &data);
        }
        Ok(id)
    }

    /// Encode an unpacked file: compression prefix (v2) and encryption.
    pub fn encode_unpacked(&self, plaintext: &[u8]) -> Vec<u8> {
        let body = match (self.config.version >= 2, self.compression.level()) {
            (true, Some(level)) => match compress(plaintext, level) {
                Some(c) => {
                    let mut b = Vec::with_capacity(c.len() + 1);
                    b.push(UNPACKED_ZSTD_PREFIX);
                    b.extend_from_slice(&c);
                    b
                }
                None => plaintext.to_vec(),
            },
            _ => plaintext.to_vec(),
        };
        self.key.encrypt(&body)
    }

    /// [`Repository::encode_unpacked`] for a large file that must be stored fast (a WAL
    /// segment the archiver is waiting for): compressed in `parts` pieces on as many threads,
    /// stored as consecutive zstd frames, which [`Repository::decode_unpacked`] reads as one.
    pub fn encode_unpacked_parallel(&self, plaintext: &[u8], parts: usize) -> Vec<u8> {
        let level = match (self.config.version >= 2, self.compression.level()) {
            (true, Some(level)) if parts > 1 && plaintext.len() >= 1 << 20 => level,
            _ => return self.encode_unpacked(plaintext),
        };
        let piece = plaintext.len().div_ceil(parts);
        let frames: Vec<Option<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> =
                plaintext.chunks(piece).map(|c| s.spawn(move || zstd::bulk::compress(c, level).ok())).collect();
            handles.into_iter().map(|h| h.join().ok().flatten()).collect()
        });
        let total: usize = frames.iter().map(|f| f.as_ref().map_or(usize::MAX / 4, Vec::len)).sum();
        if frames.iter().any(Option::is_none) || total >= plaintext.len() {
            return self.key.encrypt(plaintext);
        }
        let mut body = Vec::with_capacity(total + 1);
        body.push(UNPACKED_ZSTD_PREFIX);
        for f in frames.into_iter().flatten() {
            body.extend_from_slice(&f);
        }
        self.key.encrypt(&body)
    }

    /// Load, authenticate and decode an unpacked file stored under its id.
    pub fn load_unpacked(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        let data = self.load_stored(ft, name)?;
        self.decode_stored(ft, name, &data)
    }

    /// The stored bytes of unpacked file `name`, checked against its id (Lifeboat's own objects
    /// are not named by their hash).
    fn load_stored(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        let data = self.backend.load(ft, name)?;
        if ft != FileType::Lifeboat && Id(sha256(&data)).to_hex() != name {
            return Err(RepoError::corrupt(file_label(ft, name), "content does not match its id (file damaged)"));
        }
        Ok(data)
    }

    /// [`Repository::decode_unpacked`], a failure naming the file.
    fn decode_stored(&self, ft: FileType, name: &str, data: &[u8]) -> Result<Vec<u8>> {
        self.decode_unpacked(data).map_err(|reason| RepoError::corrupt(file_label(ft, name), reason))
    }

    /// [`Repository::load_unpacked`] through the metadata cache, for an index or snapshot file
    /// whose name a listing of the repository just returned (so the repository still has it): a
    /// cached copy that matches its name and decodes is used, else the file is read from the
    /// repository and cached.
    pub fn load_unpacked_listed(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        let Some(cache) = self.cache().filter(|_| matches!(ft, FileType::Index | FileType::Snapshot)) else {
            return self.load_unpacked(ft, name);
        };
        if let Some(data) = cache.get(ft, name) {
            match self.decode_unpacked(&data) {
                Ok(plain) => return Ok(plain),
                Err(_) => cache.discard(ft, name),
            }
        }
        let data = self.load_stored(ft, name)?;
        let plain = self.decode_stored(ft, name, &data)?;
        cache.put(ft, name, &data);
        Ok(plain)
    }

    /// [`Repository::load_json`] through the metadata cache (see
    /// [`Repository::load_unpacked_listed`]).
    pub fn load_json_listed<T: serde::de::DeserializeOwned>(&self, ft: FileType, name: &str) -> Result<T> {
        parse(ft, name, &self.load_unpacked_listed(ft, name)?)
    }

    /// Delete cached files of type `ft` that a listing of the repository (`listed`) no longer
    /// has.
    pub fn cache_retain(&self, ft: FileType, listed: &std::collections::HashSet<String>) {
        if let Some(c) = self.cache() {
            c.retain(ft, listed);
        }
    }

    /// Decrypt and decompress an unpacked file's bytes.
    pub fn decode_unpacked(&self, data: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let plain = self.key.decrypt(data).map_err(|e| e.to_string())?;
        match plain.first() {
            Some(&UNPACKED_ZSTD_PREFIX) => {
                decompress(&plain[1..], None).map_err(|e| format!("decompression failed: {e}"))
            }
            _ => Ok(plain),
        }
    }

    /// Load and parse a JSON unpacked file.
    pub fn load_json<T: serde::de::DeserializeOwned>(&self, ft: FileType, name: &str) -> Result<T> {
        parse(ft, name, &self.load_unpacked(ft, name)?)
    }

    /// The master index, loaded from all index files on first use.
    pub fn index(&self) -> Result<Arc<Index>> {
        if let Some(i) = self.index.get() {
            return Ok(i.clone());
        }
        let idx = Arc::new(self.load_index()?);
        Ok(self.index.get_or_init(|| idx).clone())
    }

    /// The index a backup dedups against: the master index when it is loaded already, else one
    /// loaded [`Index::for_backup`] (a third less memory: it knows which data blobs are stored,
    /// not where). Tree blobs load through it too, so a backup never loads both.
    pub fn backup_index(&self) -> Result<Arc<Index>> {
        if let Some(i) = self.index.get() {
            return Ok(i.clone());
        }
        if let Some(i) = self.backup_index.get() {
            return Ok(i.clone());
        }
        let idx = Arc::new(self.load_index_into(Index::for_backup())?);
        Ok(self.backup_index.get_or_init(|| idx).clone())
    }

    /// The index tree blobs are looked up in: the master index, or a backup's when only that
    /// one is loaded (both have every tree).
    fn tree_index(&self) -> Result<Arc<Index>> {
        match (self.index.get(), self.backup_index.get()) {
            (Some(i), _) | (None, Some(i)) => Ok(i.clone()),
            (None, None) => self.index(),
        }
    }

    /// Use a shared index as the master index unless one is loaded already (prune keeps its
    /// own handle on the index it built).
    pub fn set_index_shared(&self, index: Arc<Index>) {
        let _ = self.index.set(index);
    }

    /// Install an index built elsewhere (the checker builds one that skips damaged files).
    pub fn set_index(&self, index: Index) -> Arc<Index> {
        let idx = Arc::new(index);
        let _ = self.index.set(idx.clone());
        self.index.get().cloned().unwrap_or(idx)
    }

    /// Drop the cached index (after writing new index files).
    pub fn reset_index(&mut self) {
        self.index = OnceLock::new();
        self.backup_index = OnceLock::new();
    }

    fn load_index(&self) -> Result<Index> {
        self.load_index_into(Index::new())
    }

    /// Load every index file into `idx` (empty: [`Index::new`] or [`Index::for_backup`]).
    fn load_index_into(&self, mut idx: Index) -> Result<Index> {
        let listed = self.backend.list(FileType::Index)?;
        self.cache_retain(FileType::Index, &listed.iter().map(|(n, _)| n.clone()).collect());
        // A few files at a time: the parsed files (about 60 bytes a blob) are dropped as soon as
        // their blobs are in the compact tables (48 bytes a blob). A group is up to 16 files or
        // 8 MiB stored (four of the 50,000-blob files a big backup writes).
        for group in groups(&listed, 16, 8 << 20) {
            let files = crate::util::parallel_map(group.to_vec(), 4, |name| {
                let file: IndexFile = self.load_json_listed(FileType::Index, &name)?;
                Ok((name, file))
            })?;
            let (group_names, files): (Vec<String>, Vec<IndexFile>) = files.into_iter().unzip();
            idx.add_files_compact(&files);
            idx.files.extend(group_names.iter().filter_map(|n| n.parse::<Id>().ok()));
        }
        idx.sort();
        // Tree packs the index no longer names were pruned.
        self.cache_retain(FileType::Pack, &idx.packs().iter().map(Id::to_hex).collect());
        Ok(idx)
    }

    /// Decrypt, decompress and hash-check one blob given its stored bytes.
    pub fn decode_blob(&self, id: &Id, loc: &BlobLocation, stored: &[u8]) -> Result<Vec<u8>> {
        let what = || format!("blob {} in pack {}", id.short(), loc.pack.short());
        let plain = self.key.decrypt(stored).map_err(|e| RepoError::corrupt(what(), e))?;
        let data = match loc.uncompressed_length {
            Some(n) => decompress(&plain, Some(n as usize)).map_err(|e| RepoError::corrupt(what(), e))?,
            None => plain,
        };
        if Id(sha256(&data)) != *id {
            return Err(RepoError::corrupt(what(), "content does not match its id"));
        }
        Ok(data)
    }

    /// Load one blob by id. Trees come through the metadata cache when one is used: their
    /// whole pack is fetched once and kept.
    pub fn load_blob(&self, t: BlobType, id: &Id) -> Result<Vec<u8>> {
        let index = match t {
            BlobType::Tree => self.tree_index()?,
            BlobType::Data => self.index()?,
        };
        let loc = index.get(t, id).ok_or(RepoError::BlobNotFound { id: *id, blob_type: t })?;
        let pack = loc.pack.to_hex();
        if let Some(cache) = self.cache().filter(|_| t == BlobType::Tree) {
            let cached = |cache: &Cache| {
                let stored = cache.get_range(&pack, loc.offset as u64, loc.length)?;
                let r = self.decode_blob(id, &loc, &stored);
                if r.is_err() {
                    cache.discard(FileType::Pack, &pack);
                }
                r.ok()
            };
            if let Some(data) = cached(&cache) {
                return Ok(data);
            }
            let _fetching = cache.fetch_guard(&pack);
            // Another thread may have fetched it meanwhile.
            if let Some(data) = cached(&cache) {
                return Ok(data);
            }
            // A pack is fetched whole once (trees are packed apart from data: it is a tree
            // pack); a pack that does not match its name is not kept, and the blob is then
            // read on its own so damage is reported as it would be without a cache.
            if let Ok(whole) = self.backend.load(FileType::Pack, &pack) {
                let (start, end) = (loc.offset as usize, loc.offset as usize + loc.length as usize);
                if end <= whole.len() && Id(sha256(&whole)) == loc.pack {
                    cache.put(FileType::Pack, &pack, &whole);
                    return self.decode_blob(id, &loc, &whole[start..end]);
                }
            }
        }
        let stored = self.backend.load_range(FileType::Pack, &pack, loc.offset as u64, loc.length)?;
        self.decode_blob(id, &loc, &stored)
    }

    /// Load and parse a tree blob.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let data = self.load_blob(BlobType::Tree, id)?;
        lifeboat_format::parse_json("tree", &data).map_err(|e| RepoError::corrupt(format!("tree {}", id.short()), e))
    }
}

/// The names of `listed` (name, stored size) in order, in groups of at most `files` files and,
/// unless one file alone is bigger, `bytes` stored bytes.
pub(crate) fn groups(listed: &[(String, u64)], files: usize, bytes: u64) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut size = 0;
    for (name, len) in listed {
        match out.last_mut() {
            Some(g) if g.len() < files && size + len <= bytes => {
                g.push(name.clone());
                size += len;
            }
            _ => {
                out.push(vec![name.clone()]);
                size = *len;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::groups;

    #[test]
    fn index_files_are_loaded_in_groups_bounded_by_count_and_stored_size() {
        let listed: Vec<(String, u64)> = (0..40).map(|i| (format!("f{i}"), if i < 20 { 1 } else { 3 << 20 })).collect();
        let g = groups(&listed, 16, 8 << 20);
        // 20 small files: 16, then 4 with two of the 20 big ones (8 MiB at most), then 9 pairs.
        let sizes: Vec<usize> = g.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![16, 6, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(g.concat(), listed.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
        // A file bigger than the limit still gets a group of its own.
        assert_eq!(groups(&[("huge".into(), 100 << 20), ("next".into(), 1)], 16, 8 << 20).len(), 2);
        assert!(groups(&[], 16, 8).is_empty());
    }
}
