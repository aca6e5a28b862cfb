//! A decorator for remote stores: fetches a small pack whole once it is read piecemeal, and
//! serves further ranged reads of it from memory.
//!
//! On S3 every [`Backend::load_range`] is a request, so loading a snapshot's trees (one small
//! blob at a time, often hundreds from the same tree pack) is bound by round trips. Packs are
//! content-addressed and never change under their name, so a pack that has seen
//! [`PackCache::SMALL_READS_BEFORE_FETCH`] small ranged reads is fetched whole (if it is at most
//! [`PackCache::MAX_PACK`] bytes) and kept in a byte-bounded LRU. Big sequential reads (restore
//! spans, `check --read-data`'s whole-pack loads) never populate it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{BackendError, ErrorContext, Op};
use crate::{Backend, FileType, Result};

/// Cache state behind one mutex (held only for bookkeeping, never during I/O).
#[derive(Default)]
struct State {
    /// Whole packs by name.
    packs: HashMap<String, Arc<Vec<u8>>>,
    /// Cached names, least recently used first.
    order: VecDeque<String>,
    /// Bytes held in `packs`.
    bytes: u64,
    /// Small reads seen per uncached pack; `u32::MAX` marks packs too big to cache.
    reads: HashMap<String, u32>,
}

impl State {
    fn touch(&mut self, name: &str) {
        if let Some(i) = self.order.iter().position(|n| n == name) {
            if let Some(n) = self.order.remove(i) {
                self.order.push_back(n);
            }
        }
    }

    fn forget(&mut self, name: &str) {
        if let Some(data) = self.packs.remove(name) {
            self.bytes -= data.len() as u64;
            self.order.retain(|n| n != name);
        }
        self.reads.remove(name);
    }
}

/// Wraps a backend and caches whole small packs that are read in small pieces (see the
/// [module docs](self)). Everything else is passed through unchanged.
pub struct PackCache<B> {
    inner: B,
    capacity: u64,
    state: Mutex<State>,
}

impl<B: Backend> PackCache<B> {
    /// Packs larger than this are never fetched whole.
    pub const MAX_PACK: u64 = 32 * 1024 * 1024;
    /// A ranged read of at most this many bytes counts as small.
    pub const SMALL_READ: u32 = 256 * 1024;
    /// Small reads of one pack after which it is fetched whole.
    pub const SMALL_READS_BEFORE_FETCH: u32 = 2;
    /// Default total size of the cached packs.
    pub const DEFAULT_CAPACITY: u64 = 64 * 1024 * 1024;

    /// Wraps `inner` with a cache of [`PackCache::DEFAULT_CAPACITY`] bytes.
    pub fn new(inner: B) -> Self {
        Self::with_capacity(inner, Self::DEFAULT_CAPACITY)
    }

    /// Wraps `inner` with a cache of at most `capacity` bytes of packs.
    pub fn with_capacity(inner: B, capacity: u64) -> Self {
        Self { inner, capacity, state: Mutex::new(State::default()) }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Names of the packs held now (for tests and diagnostics).
    pub fn cached(&self) -> Vec<String> {
        self.lock().order.iter().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain bookkeeping: a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn slice(&self, name: &str, data: &[u8], offset: u64, length: u32) -> Result<Vec<u8>> {
        let size = data.len() as u64;
        match offset.checked_add(u64::from(length)) {
            Some(end) if end <= size => Ok(data[offset as usize..end as usize].to_vec()),
            _ => {
                let key = FileType::Pack.object_key(name).unwrap_or_else(|_| name.to_owned());
                let ctx = ErrorContext::new(self.inner.location(), Op::LoadRange, Some(FileType::Pack), key);
                Err(BackendError::ShortRead { ctx, offset, length, size })
            }
        }
    }

    /// Fetches a pack whole and caches it; `None` if it is too big or cannot be fetched now
    /// (the caller then reads the range directly, which reports any error).
    fn fetch(&self, name: &str) -> Option<Arc<Vec<u8>>> {
        match self.inner.size(FileType::Pack, name) {
            Ok(size) if size <= Self::MAX_PACK && size <= self.capacity => {}
            Ok(_) => {
                self.lock().reads.insert(name.to_owned(), u32::MAX);
                return None;
            }
            Err(_) => return None,
        }
        let data = Arc::new(self.inner.load(FileType::Pack, name).ok()?);
        let mut st = self.lock();
        st.reads.remove(name);
        if let Some(existing) = st.packs.get(name) {
            return Some(existing.clone());
        }
        while st.bytes + data.len() as u64 > self.capacity {
            let Some(old) = st.order.pop_front() else { break };
            if let Some(d) = st.packs.remove(&old) {
                st.bytes -= d.len() as u64;
            }
        }
        st.bytes += data.len() as u64;
        st.packs.insert(name.to_owned(), data.clone());
        st.order.push_back(name.to_owned());
        Some(data)
    }
}

impl<B: Backend> Backend for PackCache<B> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn appender(&self, ft: FileType, name: &str) -> Result<Option<Box<dyn crate::Appender>>> {
        self.inner.appender(ft, name)
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn has_config(&self) -> Result<bool> {
        self.inner.has_config()
    }

    fn save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        if ft == FileType::Pack {
            self.lock().forget(name);
        }
        self.inner.save(ft, name, data)
    }

    fn load(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        if ft == FileType::Pack {
            let cached = self.lock().packs.get(name).cloned();
            if let Some(data) = cached {
                return Ok(data.to_vec());
            }
        }
        self.inner.load(ft, name)
    }

    fn load_range(&self, ft: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        if ft != FileType::Pack {
            return self.inner.load_range(ft, name, offset, length);
        }
        let fetch_now = {
            let mut st = self.lock();
            if let Some(data) = st.packs.get(name).cloned() {
                st.touch(name);
                drop(st);
                return self.slice(name, &data, offset, length);
            }
            if length > Self::SMALL_READ || FileType::Pack.validate_name(name).is_err() {
                false
            } else {
                // Bound the bookkeeping for packs read only once or twice.
                if st.reads.len() > 65_536 {
                    st.reads.clear();
                }
                let n = st.reads.entry(name.to_owned()).or_insert(0);
                *n = n.saturating_add(1);
                *n != u32::MAX && *n >= Self::SMALL_READS_BEFORE_FETCH
            }
        };
        if fetch_now {
            if let Some(data) = self.fetch(name) {
                return self.slice(name, &data, offset, length);
            }
        }
        self.inner.load_range(ft, name, offset, length)
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        if ft == FileType::Pack {
            let cached = self.lock().packs.get(name).map(|d| d.len() as u64);
            if let Some(size) = cached {
                return Ok(size);
            }
        }
        self.inner.size(ft, name)
    }

    fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        self.inner.list(ft)
    }

    fn list_prefix(&self, ft: FileType, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.inner.list_prefix(ft, prefix)
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        if ft == FileType::Pack {
            self.lock().forget(name);
        }
        self.inner.remove(ft, name)
    }

    fn remove_many(&self, ft: FileType, names: &[String]) -> Result<()> {
        if ft == FileType::Pack {
            let mut st = self.lock();
            for name in names {
                st.forget(name);
            }
        }
        self.inner.remove_many(ft, names)
    }

    fn simulate_interrupted_save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.inner.simulate_interrupted_save(ft, name, data)
    }
    fn list_temporary(&self) -> Result<Vec<crate::TemporaryFile>> {
        self.inner.list_temporary()
    }

    fn remove_temporary(&self, name: &str) -> Result<()> {
        self.inner.remove_temporary(name)
    }

    fn readable_by_others(&self, ft: FileType) -> Result<Vec<(String, u32)>> {
        self.inner.readable_by_others(ft)
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for PackCache<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackCache").field("inner", &self.inner).field("capacity", &self.capacity).finish()
    }
}
