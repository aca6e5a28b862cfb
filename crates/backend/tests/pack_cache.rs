//! The pack cache: conformance, and that repeated small reads of a pack cost one fetch.

use std::sync::atomic::{AtomicUsize, Ordering};

use lifeboat_backend::{conformance, Backend, BackendError, FileType, LocalBackend, PackCache, Result};

/// Counts the requests that reach the wrapped backend.
#[derive(Default)]
struct Counts {
    loads: AtomicUsize,
    ranges: AtomicUsize,
    sizes: AtomicUsize,
}

struct Counting {
    inner: LocalBackend,
    counts: std::sync::Arc<Counts>,
}

impl Backend for Counting {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn has_config(&self) -> Result<bool> {
        self.inner.has_config()
    }
    fn save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.inner.save(ft, name, data)
    }
    fn load(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        self.counts.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(ft, name)
    }
    fn load_range(&self, ft: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        self.counts.ranges.fetch_add(1, Ordering::SeqCst);
        self.inner.load_range(ft, name, offset, length)
    }
    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        self.counts.sizes.fetch_add(1, Ordering::SeqCst);
        self.inner.size(ft, name)
    }
    fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        self.inner.list(ft)
    }
    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        self.inner.remove(ft, name)
    }
}

fn cached(dir: &std::path::Path, capacity: u64) -> (PackCache<Counting>, std::sync::Arc<Counts>) {
    let counts = std::sync::Arc::new(Counts::default());
    let b = Counting { inner: LocalBackend::new(dir), counts: counts.clone() };
    (PackCache::with_capacity(b, capacity), counts)
}

#[test]
fn pack_cache_conforms() {
    let root = tempfile::tempdir().expect("tempdir");
    let n = AtomicUsize::new(0);
    let make = || {
        let dir = root.path().join(format!("repo{}", n.fetch_add(1, Ordering::SeqCst)));
        // Small capacity: evictions happen within the suite too.
        Box::new(cached(&dir, 4 * 1024 * 1024).0) as Box<dyn Backend>
    };
    conformance::run_all(&make);
}

#[test]
fn repeated_small_reads_fetch_the_pack_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let (b, counts) = cached(root.path(), 1 << 20);
    b.create().expect("create");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    b.save(FileType::Pack, "aa01", &data).expect("save");
    for i in 0..50u64 {
        let got = b.load_range(FileType::Pack, "aa01", i * 1000, 100).expect("range");
        assert_eq!(got, &data[(i * 1000) as usize..(i * 1000 + 100) as usize]);
    }
    assert_eq!(counts.ranges.load(Ordering::SeqCst), 1, "only the first read goes out as a range");
    assert_eq!(counts.loads.load(Ordering::SeqCst), 1, "the second fetches the pack whole");
    assert_eq!(b.cached(), vec!["aa01".to_owned()]);
    // Served from memory with the same contract: sizes, whole loads, short reads.
    assert_eq!(b.size(FileType::Pack, "aa01").expect("size"), 100_000);
    assert!(b.load(FileType::Pack, "aa01").expect("load") == data);
    let e = b.load_range(FileType::Pack, "aa01", 99_990, 20).expect_err("past the end");
    assert!(matches!(e, BackendError::ShortRead { size: 100_000, .. }), "{e}");
    assert_eq!(e.context().path, "data/aa/aa01");
    assert_eq!(counts.loads.load(Ordering::SeqCst), 1);
    // Removal and re-saving drop the cached copy.
    b.remove(FileType::Pack, "aa01").expect("remove");
    assert!(b.cached().is_empty());
    assert!(b.load_range(FileType::Pack, "aa01", 0, 1).expect_err("removed").is_not_found());
}

#[test]
fn big_reads_and_big_packs_are_not_cached() {
    let root = tempfile::tempdir().expect("tempdir");
    let (b, counts) = cached(root.path(), 1 << 20);
    b.create().expect("create");
    let big = vec![7u8; 600_000];
    b.save(FileType::Pack, "bb01", &big).expect("save");
    for _ in 0..3 {
        b.load_range(FileType::Pack, "bb01", 0, 300_000).expect("big range");
    }
    assert!(b.cached().is_empty(), "spans above SMALL_READ never fill the cache");
    // A pack bigger than the capacity is never fetched whole, however often it is read.
    let huge = vec![9u8; 1_200_000];
    b.save(FileType::Pack, "cc01", &huge).expect("save");
    for i in 0..5 {
        b.load_range(FileType::Pack, "cc01", i * 10, 10).expect("small range");
    }
    assert!(b.cached().is_empty());
    assert_eq!(counts.loads.load(Ordering::SeqCst), 0);
    assert_eq!(counts.sizes.load(Ordering::SeqCst), 1, "its size is asked once, then remembered");
}

#[test]
fn least_recently_used_packs_are_evicted() {
    let root = tempfile::tempdir().expect("tempdir");
    let (b, _) = cached(root.path(), 250_000);
    b.create().expect("create");
    for name in ["dd01", "dd02", "dd03"] {
        b.save(FileType::Pack, name, &vec![1u8; 100_000]).expect("save");
    }
    for name in ["dd01", "dd02", "dd01", "dd03"] {
        b.load_range(FileType::Pack, name, 0, 10).expect("range");
        b.load_range(FileType::Pack, name, 10, 10).expect("range");
    }
    assert_eq!(b.cached(), vec!["dd01".to_owned(), "dd03".to_owned()]);
}
