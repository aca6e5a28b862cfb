//! Conformance suite every [`Backend`] implementation must pass.
//!
//! Call [`run_all`] from a test with a factory returning a fresh backend on an
//! empty, not yet created location each time (a new temporary directory, a new
//! bucket prefix, …). Each check panics with a descriptive message on failure.
//! The checks are also available one by one in [`CHECKS`].
//!
//! ```no_run
//! # use lifeboat_backend::{conformance, Backend, LocalBackend};
//! # use std::sync::atomic::{AtomicUsize, Ordering};
//! let root = std::env::temp_dir().join("lifeboat-conformance");
//! let n = AtomicUsize::new(0);
//! conformance::run_all(&|| {
//!     let dir = root.join(n.fetch_add(1, Ordering::SeqCst).to_string());
//!     Box::new(LocalBackend::new(dir)) as Box<dyn Backend>
//! });
//! ```

use std::collections::HashMap;

use crate::{Backend, BackendError, FileType, Result};

/// One conformance check, run on a fresh backend that has not been created yet.
pub type Check = fn(&dyn Backend);

/// All checks, with their names, in the order [`run_all`] runs them.
pub const CHECKS: &[(&str, Check)] = &[
    ("create_and_has_config", create_and_has_config),
    ("round_trip_each_type", round_trip_each_type),
    ("large_object", large_object),
    ("load_range", load_range),
    ("size", size),
    ("list", list),
    ("remove", remove),
    ("missing_objects", missing_objects),
    ("overwrite_replaces", overwrite_replaces),
    ("concurrent_saves", concurrent_saves),
    ("racing_saves_leave_one_version", racing_saves_leave_one_version),
    ("lifeboat_nested_names", lifeboat_nested_names),
    ("prefix_listings", prefix_listings),
    ("interrupted_save_is_invisible", interrupted_save_is_invisible),
    ("invalid_names", invalid_names),
    ("remove_many", remove_many),
];

/// Runs every check in [`CHECKS`], each on a new backend from `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn Backend>) {
    run_all_but(make, &[]);
}

/// Runs every check in [`CHECKS`] but those named in `skip` (for a store that cannot give a
/// guarantee, with the reason beside the call).
pub fn run_all_but(make: &dyn Fn() -> Box<dyn Backend>, skip: &[&str]) {
    for (name, check) in CHECKS.iter().filter(|(n, _)| !skip.contains(n)) {
        let backend = make();
        eprintln!("conformance: {name} on {}", backend.location());
        check(&*backend);
    }
}

fn ok<T>(r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e}"),
    }
}

fn err<T: std::fmt::Debug>(r: Result<T>, what: &str) -> BackendError {
    match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

fn created(b: &dyn Backend) {
    ok(b.create(), "create");
}

/// Deterministic test content.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

/// A 64-hex-digit name whose first two digits vary with `i`.
fn hex_name(i: usize) -> String {
    format!("{:02x}{:062x}", (i * 37 + 5) % 256, i)
}

/// A valid name for `ft`, distinct per `i`.
fn name_for(ft: FileType, i: usize) -> String {
    match ft {
        FileType::Config => "config".to_owned(),
        FileType::Lifeboat => format!("dir{}/{}", i % 2, hex_name(i)),
        _ => hex_name(i),
    }
}

fn sorted(mut v: Vec<(String, u64)>) -> Vec<(String, u64)> {
    v.sort();
    v
}

/// `has_config` is false before and after `create`, true once a config is
/// saved; a second `create` then fails with `AlreadyExists`.
pub fn create_and_has_config(b: &dyn Backend) {
    assert!(!ok(b.has_config(), "has_config before create"));
    for ft in FileType::ALL {
        assert_eq!(ok(b.list(ft), "list before create"), vec![], "{ft}");
    }
    created(b);
    assert!(!ok(b.has_config(), "has_config after create"));
    for ft in FileType::ALL {
        assert_eq!(ok(b.list(ft), "list on empty repo"), vec![], "{ft}");
    }
    created(b); // creating over a layout without config is fine
    ok(b.save(FileType::Config, "config", b"cfg"), "save config");
    assert!(ok(b.has_config(), "has_config after saving config"));
    let e = err(b.create(), "create over existing repo");
    assert!(e.is_already_exists(), "create over existing repo: {e}");
    assert!(!e.is_retryable());
    assert_eq!(ok(b.load(FileType::Config, "config"), "load config"), b"cfg");
    assert_eq!(ok(b.list(FileType::Config), "list config"), vec![("config".to_owned(), 3)]);
}

/// Save then load returns the same bytes for every file type, including
/// empty objects.
pub fn round_trip_each_type(b: &dyn Backend) {
    created(b);
    for ft in FileType::ALL {
        let count = if ft == FileType::Config { 1 } else { 3 };
        for i in 0..count {
            let data = content([0, 1, 1000][i], i as u8);
            let name = name_for(ft, i);
            ok(b.save(ft, &name, &data), "save");
            assert_eq!(ok(b.load(ft, &name), "load"), data, "{ft} {name}");
            assert_eq!(ok(b.size(ft, &name), "size"), data.len() as u64);
        }
    }
}

/// A multi-megabyte object survives a round trip and ranged reads.
pub fn large_object(b: &dyn Backend) {
    created(b);
    let data = content(3 * 1024 * 1024 + 17, 9);
    let name = hex_name(1);
    ok(b.save(FileType::Pack, &name, &data), "save large pack");
    assert!(ok(b.load(FileType::Pack, &name), "load large pack") == data);
    let off = 2 * 1024 * 1024 + 3;
    let got = ok(b.load_range(FileType::Pack, &name, off as u64, 100_000), "load_range large pack");
    assert!(got == data[off..off + 100_000]);
}

/// Ranged reads at start, middle and end; zero-length reads; errors for
/// ranges past the end and for missing objects.
pub fn load_range(b: &dyn Backend) {
    created(b);
    let data = content(1000, 3);
    let name = hex_name(2);
    ok(b.save(FileType::Pack, &name, &data), "save");
    for (off, len) in [(0, 10), (500, 100), (990, 10), (0, 1000), (1000, 0), (0, 0)] {
        let got = ok(b.load_range(FileType::Pack, &name, off, len), "load_range");
        assert_eq!(got, &data[off as usize..off as usize + len as usize], "range {off}+{len}");
    }
    for (off, len) in [(995, 10), (0, 1001), (1001, 0), (2000, 1), (u64::MAX, 1)] {
        let e = err(b.load_range(FileType::Pack, &name, off, len), "load_range past the end");
        assert!(matches!(e, BackendError::ShortRead { .. }), "range {off}+{len}: expected ShortRead, got {e}");
        assert!(!e.is_retryable() && !e.is_not_found());
    }
    let e = err(b.load_range(FileType::Pack, &hex_name(3), 0, 1), "load_range of a missing object");
    assert!(e.is_not_found(), "{e}");
}

/// `size` reports object sizes and not-found for missing objects.
pub fn size(b: &dyn Backend) {
    created(b);
    for (i, len) in [0usize, 1, 4096, 65537].into_iter().enumerate() {
        let name = name_for(FileType::Index, i);
        ok(b.save(FileType::Index, &name, &content(len, 1)), "save");
        assert_eq!(ok(b.size(FileType::Index, &name), "size"), len as u64);
    }
    let e = err(b.size(FileType::Index, &hex_name(99)), "size of missing");
    assert!(e.is_not_found(), "{e}");
}

/// `list` returns exactly the saved names and sizes of the asked type; packs
/// are listed across their `data/xx` directories.
pub fn list(b: &dyn Backend) {
    created(b);
    let mut expected: HashMap<FileType, Vec<(String, u64)>> = HashMap::new();
    for ft in FileType::ALL {
        let count = match ft {
            FileType::Config => 1,
            FileType::Pack => 20,
            _ => 4,
        };
        for i in 0..count {
            let name = name_for(ft, i + 10);
            let data = content(i * 7 + 1, i as u8);
            ok(b.save(ft, &name, &data), "save");
            expected.entry(ft).or_default().push((name, data.len() as u64));
        }
    }
    let prefixes: std::collections::BTreeSet<String> =
        expected[&FileType::Pack].iter().map(|(n, _)| n[..2].to_owned()).collect();
    assert!(prefixes.len() > 10, "test packs should spread over data/xx");
    for ft in FileType::ALL {
        let got = sorted(ok(b.list(ft), "list"));
        assert_eq!(got, sorted(expected[&ft].clone()), "list({ft})");
    }
}

/// After `remove`, the object is gone from `load`, `size` and `list`, and a
/// second `remove` is a not-found error.
pub fn remove(b: &dyn Backend) {
    created(b);
    for ft in FileType::ALL {
        let keep = name_for(ft, 1);
        let gone = name_for(ft, 2);
        if ft != FileType::Config {
            ok(b.save(ft, &keep, b"keep"), "save");
        }
        ok(b.save(ft, &gone, b"gone"), "save");
        ok(b.remove(ft, &gone), "remove");
        assert!(err(b.load(ft, &gone), "load removed").is_not_found());
        assert!(err(b.size(ft, &gone), "size removed").is_not_found());
        let e = err(b.remove(ft, &gone), "remove twice");
        assert!(e.is_not_found(), "{e}");
        let names: Vec<String> = ok(b.list(ft), "list").into_iter().map(|e| e.0).collect();
        assert!(!names.contains(&gone) || ft == FileType::Config, "{ft}");
        if ft == FileType::Config {
            assert!(names.is_empty());
            assert!(!ok(b.has_config(), "has_config after remove"));
        } else {
            assert_eq!(names, vec![keep.clone()]);
            assert_eq!(ok(b.load(ft, &keep), "load kept"), b"keep");
        }
    }
}

/// Loading objects that were never saved is a not-found error for every type.
pub fn missing_objects(b: &dyn Backend) {
    created(b);
    for ft in FileType::ALL {
        let name = name_for(ft, 42);
        let e = err(b.load(ft, &name), "load missing");
        assert!(e.is_not_found(), "{ft}: {e}");
        assert!(!e.is_retryable());
        assert!(e.to_string().contains(&b.location()), "context in {e}");
    }
}

/// Saving an existing name replaces its content (documented semantics).
pub fn overwrite_replaces(b: &dyn Backend) {
    created(b);
    for ft in FileType::ALL {
        let name = name_for(ft, 5);
        ok(b.save(ft, &name, b"first version"), "save");
        ok(b.save(ft, &name, b"second"), "save again");
        assert_eq!(ok(b.load(ft, &name), "load"), b"second", "{ft}");
        assert_eq!(ok(b.size(ft, &name), "size"), 6);
        assert_eq!(ok(b.list(ft), "list"), vec![(name, 6)], "{ft}");
    }
}

/// Four threads saving concurrently: distinct names all land intact; no temporary file is
/// listed.
pub fn concurrent_saves(b: &dyn Backend) {
    created(b);
    const THREADS: usize = 4;
    const PER_THREAD: usize = 16;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let n = t * PER_THREAD + i;
                    let data = content(10_000 + n, n as u8);
                    ok(b.save(FileType::Pack, &hex_name(n), &data), "concurrent save");
                    let lb = format!("t{t}/{i}");
                    ok(b.save(FileType::Lifeboat, &lb, &data), "concurrent nested save");
                }
            });
        }
    });
    for n in 0..THREADS * PER_THREAD {
        let data = content(10_000 + n, n as u8);
        assert!(ok(b.load(FileType::Pack, &hex_name(n)), "load") == data, "pack {n}");
    }
    let packs = ok(b.list(FileType::Pack), "list");
    assert_eq!(packs.len(), THREADS * PER_THREAD, "listed packs");
    let nested = ok(b.list(FileType::Lifeboat), "list");
    assert_eq!(nested.len(), THREADS * PER_THREAD, "listed lifeboat objects");
}

/// Four threads saving one name over and over with different content leave one complete
/// version of it, and one listed object.
pub fn racing_saves_leave_one_version(b: &dyn Backend) {
    created(b);
    const THREADS: usize = 4;
    const ROUNDS: usize = 16;
    let shared = hex_name(1000);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let shared = &shared;
            s.spawn(move || {
                for _ in 0..ROUNDS {
                    ok(b.save(FileType::Pack, shared, &content(5000, t as u8)), "racing save");
                }
            });
        }
    });
    let racing = ok(b.load(FileType::Pack, &shared), "load raced object");
    assert!((0..THREADS).any(|t| racing == content(5000, t as u8)), "raced object is not one complete version");
    assert_eq!(ok(b.list(FileType::Pack), "list").len(), 1, "listed packs");
}

/// Lifeboat names may contain `/`; they round-trip and are listed as relative
/// paths.
pub fn lifeboat_nested_names(b: &dyn Backend) {
    created(b);
    let names = ["top", "verifications/abcd", "a/b/c/d", "a/b/e", "a-b"];
    for (i, name) in names.iter().enumerate() {
        ok(b.save(FileType::Lifeboat, name, &content(i + 1, 0)), "save nested");
    }
    for (i, name) in names.iter().enumerate() {
        assert_eq!(ok(b.load(FileType::Lifeboat, name), "load nested"), content(i + 1, 0));
        assert_eq!(ok(b.load_range(FileType::Lifeboat, name, 0, 1), "range nested"), content(1, 0));
    }
    let mut expected: Vec<(String, u64)> =
        names.iter().enumerate().map(|(i, n)| (n.to_string(), i as u64 + 1)).collect();
    expected.sort();
    assert_eq!(sorted(ok(b.list(FileType::Lifeboat), "list nested")), expected);
    ok(b.remove(FileType::Lifeboat, "a/b/c/d"), "remove nested");
    assert!(err(b.load(FileType::Lifeboat, "a/b/c/d"), "load removed").is_not_found());
    assert_eq!(ok(b.list(FileType::Lifeboat), "list").len(), names.len() - 1);
    // Nested objects are not confused with other types.
    assert_eq!(ok(b.list(FileType::Index), "list index"), vec![]);
}

/// A prefix listing is the whole listing filtered by the prefix and sorted: a folder and what is
/// below it, a folder whose name only begins like the prefix's is left out, a prefix that ends
/// inside a name, one below an object, one that names nothing, and other types.
pub fn prefix_listings(b: &dyn Backend) {
    created(b);
    let names = ["audit/0002", "audit/0001", "audit2/x", "auditx", "runs/a/1", "runs/a/2", "runs/b", "top"];
    for (i, name) in names.iter().enumerate() {
        ok(b.save(FileType::Lifeboat, name, &content(i + 1, 0)), "save nested");
    }
    ok(b.save(FileType::Snapshot, &hex_name(1), &content(3, 0)), "save snapshot");
    ok(b.save(FileType::Snapshot, &hex_name(2), &content(4, 0)), "save snapshot");
    let all = sorted(ok(b.list(FileType::Lifeboat), "list"));
    for prefix in ["audit/", "audit", "audit/000", "runs/", "runs/a/", "runs/a/1", "runs/a", "top", "top/", "none/", ""]
    {
        let want: Vec<(String, u64)> = all.iter().filter(|(n, _)| n.starts_with(prefix)).cloned().collect();
        assert_eq!(ok(b.list_prefix(FileType::Lifeboat, prefix), "list_prefix"), want, "prefix {prefix:?}");
    }
    assert_eq!(ok(b.list_prefix(FileType::Lifeboat, "audit/"), "list_prefix").len(), 2);
    let snaps = sorted(ok(b.list(FileType::Snapshot), "list snapshots"));
    assert_eq!(ok(b.list_prefix(FileType::Snapshot, ""), "list_prefix snapshots"), snaps);
    let one = &hex_name(1)[..hex_name(1).len() - 1];
    let want: Vec<(String, u64)> = snaps.iter().filter(|(n, _)| n.starts_with(one)).cloned().collect();
    assert_eq!(ok(b.list_prefix(FileType::Snapshot, one), "list_prefix snapshots"), want);
}

/// What an interrupted save leaves behind is never visible: not listed, not
/// loadable, and an existing object of that name keeps its old content.
pub fn interrupted_save_is_invisible(b: &dyn Backend) {
    created(b);
    let old = hex_name(7);
    ok(b.save(FileType::Index, &old, b"old complete content"), "save");
    ok(b.simulate_interrupted_save(FileType::Index, &old, b"new but half"), "interrupted save over existing");
    let fresh = [
        (FileType::Index, hex_name(8)),
        (FileType::Pack, hex_name(9)),
        (FileType::Snapshot, hex_name(10)),
        (FileType::Lifeboat, "verifications/x".to_owned()),
        (FileType::Config, "config".to_owned()),
    ];
    for (ft, name) in &fresh {
        ok(b.simulate_interrupted_save(*ft, name, b"half"), "interrupted save");
        let e = err(b.load(*ft, name), "load interrupted");
        assert!(e.is_not_found(), "{ft} {name}: {e}");
    }
    assert_eq!(ok(b.load(FileType::Index, &old), "load"), b"old complete content");
    assert_eq!(ok(b.list(FileType::Index), "list"), vec![(old, 20)], "temporary files must not be listed");
    for ft in [FileType::Pack, FileType::Snapshot, FileType::Lifeboat, FileType::Config] {
        assert_eq!(ok(b.list(ft), "list"), vec![], "{ft}");
    }
    assert!(!ok(b.has_config(), "has_config"));
    created(b); // an interrupted config save does not make a repository
}

/// Names that could escape the layout or collide with temporary files are
/// rejected with `InvalidName`.
pub fn invalid_names(b: &dyn Backend) {
    created(b);
    let cases = [
        (FileType::Index, ""),
        (FileType::Index, "../escape"),
        (FileType::Index, "a/b"),
        (FileType::Index, ".hidden"),
        (FileType::Key, "a\\b"),
        (FileType::Pack, "a"),
        (FileType::Lifeboat, "../escape"),
        (FileType::Lifeboat, "a//b"),
        (FileType::Lifeboat, "/abs"),
        (FileType::Lifeboat, "a/.tmp-x"),
    ];
    for (ft, name) in cases {
        let e = err(b.save(ft, name, b"x"), "save with invalid name");
        assert!(matches!(e, BackendError::InvalidName { .. }), "{ft} {name:?}: {e}");
        let e = err(b.load(ft, name), "load with invalid name");
        assert!(matches!(e, BackendError::InvalidName { .. }), "{e}");
    }
    for ft in FileType::ALL {
        assert_eq!(ok(b.list(ft), "list"), vec![], "{ft}");
    }
}

/// `remove_many` deletes a batch across pack directories, ignores missing names, keeps the rest.
pub fn remove_many(b: &dyn Backend) {
    created(b);
    let names: Vec<String> = (0..6).map(|i| name_for(FileType::Pack, i * 37)).collect();
    for n in &names {
        ok(b.save(FileType::Pack, n, b"pack"), "save");
    }
    let mut doomed: Vec<String> = names[..4].to_vec();
    doomed.push(name_for(FileType::Pack, 999)); // never saved
    ok(b.remove_many(FileType::Pack, &doomed), "remove_many");
    let left: Vec<String> = sorted(ok(b.list(FileType::Pack), "list")).into_iter().map(|e| e.0).collect();
    let mut want = names[4..].to_vec();
    want.sort();
    assert_eq!(left, want);
    ok(b.remove_many(FileType::Pack, &doomed), "remove_many again");
}
