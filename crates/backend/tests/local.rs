//! The local backend: conformance suite plus layout details.

use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

use lifeboat_backend::{conformance, Backend, BackendError, FileType, LocalBackend};

fn fresh_dirs() -> (tempfile::TempDir, impl Fn() -> Box<dyn Backend>) {
    let root = tempfile::tempdir().expect("tempdir");
    let base = root.path().to_path_buf();
    let n = AtomicUsize::new(0);
    let make = move || {
        let dir = base.join(format!("repo{}", n.fetch_add(1, Ordering::SeqCst)));
        Box::new(LocalBackend::new(dir)) as Box<dyn Backend>
    };
    (root, make)
}

#[test]
fn local_backend_conforms() {
    let (_root, make) = fresh_dirs();
    conformance::run_all(&make);
}

#[test]
fn create_makes_restic_layout() {
    let root = tempfile::tempdir().expect("tempdir");
    let repo = root.path().join("nested/repo");
    let b = LocalBackend::new(&repo);
    assert_eq!(b.path(), repo);
    assert_eq!(b.location(), repo.display().to_string());
    b.create().expect("create");
    for dir in ["keys", "snapshots", "index", "locks", "data"] {
        assert!(repo.join(dir).is_dir(), "{dir}");
    }
    for i in 0..=255u8 {
        assert!(repo.join(format!("data/{i:02x}")).is_dir());
    }
    assert!(!repo.join("config").exists());
}

#[test]
fn objects_land_at_restic_paths() {
    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path());
    b.create().expect("create");
    let id = "ab".repeat(32);
    for ft in FileType::ALL {
        let name = if ft == FileType::Lifeboat { format!("verifications/{id}") } else { id.clone() };
        b.save(ft, &name, ft.as_str().as_bytes()).expect("save");
    }
    let read = |p: &str| fs::read(root.path().join(p)).expect(p);
    assert_eq!(read("config"), b"config");
    assert_eq!(read(&format!("keys/{id}")), b"key");
    assert_eq!(read(&format!("snapshots/{id}")), b"snapshot");
    assert_eq!(read(&format!("index/{id}")), b"index");
    assert_eq!(read(&format!("locks/{id}")), b"lock");
    assert_eq!(read(&format!("data/ab/{id}")), b"pack");
    assert_eq!(read(&format!("lifeboat/verifications/{id}")), b"lifeboat");
}

/// A listing gives each file's size; a file that is a symbolic link (a repository assembled by
/// hand, a snapshot linked in from elsewhere) is listed with its target's size, and a dangling
/// link is left out.
#[test]
fn listings_give_sizes_and_follow_symbolic_links() {
    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path().join("repo"));
    b.create().expect("create");
    let (a, linked, dangling) = ("aa".repeat(32), "bb".repeat(32), "cc".repeat(32));
    b.save(FileType::Snapshot, &a, &[7u8; 1234]).expect("save");
    let elsewhere = root.path().join("elsewhere");
    fs::write(&elsewhere, [1u8; 4321]).expect("write");
    std::os::unix::fs::symlink(&elsewhere, root.path().join("repo/snapshots").join(&linked)).expect("link");
    std::os::unix::fs::symlink(root.path().join("gone"), root.path().join("repo/snapshots").join(&dangling))
        .expect("link");
    let listed = b.list(FileType::Snapshot).expect("list");
    assert_eq!(listed, vec![(a, 1234), (linked, 4321)]);
}

#[test]
fn save_creates_missing_dirs_lazily() {
    let root = tempfile::tempdir().expect("tempdir");
    // A repository created by another tool might lack data/xx or lifeboat/.
    let b = LocalBackend::new(root.path());
    b.save(FileType::Pack, "cdef", b"p").expect("save pack");
    b.save(FileType::Lifeboat, "x/y/z", b"l").expect("save nested");
    assert_eq!(fs::read(root.path().join("data/cd/cdef")).expect("read"), b"p");
    assert_eq!(b.list(FileType::Lifeboat).expect("list"), vec![("x/y/z".to_owned(), 1)]);
}

#[test]
fn save_without_repository_dir_is_not_found() {
    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path().join("missing"));
    let e = b.save(FileType::Index, "abcd", b"x").expect_err("no repo dir");
    assert!(e.is_not_found(), "{e}");
    assert!(!root.path().join("missing").exists());
    assert!(!b.has_config().expect("has_config"));
    assert_eq!(b.list(FileType::Pack).expect("list"), vec![]);
}

#[test]
fn interrupted_save_leaves_only_a_temp_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path());
    b.create().expect("create");
    b.simulate_interrupted_save(FileType::Pack, "abcd", b"half").expect("simulate");
    let entries: Vec<String> = fs::read_dir(root.path().join("data/ab"))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].starts_with(".tmp-"), "{entries:?}");
    assert_eq!(b.list(FileType::Pack).expect("list"), vec![]);
    // A later complete save of the same object works and is the only one listed.
    b.save(FileType::Pack, "abcd", b"whole").expect("save");
    assert_eq!(b.list(FileType::Pack).expect("list"), vec![("abcd".to_owned(), 5)]);
}

#[test]
fn stray_files_are_not_listed() {
    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path());
    b.create().expect("create");
    fs::write(root.path().join("data/.DS_Store"), b"x").expect("write");
    fs::write(root.path().join("data/loose"), b"x").expect("write");
    fs::create_dir(root.path().join("index/subdir")).expect("mkdir");
    fs::write(root.path().join("index/.tmp-123"), b"x").expect("write");
    assert_eq!(b.list(FileType::Pack).expect("list"), vec![]);
    assert_eq!(b.list(FileType::Index).expect("list"), vec![]);
}

#[test]
fn errors_carry_context() {
    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path());
    b.create().expect("create");
    let e = b.load(FileType::Pack, "abcdef").expect_err("missing");
    let ctx = e.context();
    assert_eq!(ctx.location, root.path().display().to_string());
    assert_eq!(ctx.ft, Some(FileType::Pack));
    assert_eq!(ctx.path, "data/ab/abcdef");
    assert_eq!(e.to_string(), format!("{}: loading data/ab/abcdef: not found", root.path().display()));
    let e = b.save(FileType::Index, "../x", b"").expect_err("invalid");
    assert!(matches!(e, BackendError::InvalidName { .. }));
}

#[cfg(unix)]
#[test]
fn permission_errors_are_classified() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path());
    b.create().expect("create");
    let index = root.path().join("index");
    fs::set_permissions(&index, fs::Permissions::from_mode(0o500)).expect("chmod");
    let result = b.save(FileType::Index, "abcd", b"x");
    fs::set_permissions(&index, fs::Permissions::from_mode(0o755)).expect("chmod back");
    match result {
        // root ignores directory permissions
        Ok(()) => eprintln!("running as root: permission check skipped"),
        Err(e) => {
            assert!(e.is_permission_denied(), "{e}");
            assert!(!e.is_retryable());
            assert!(e.to_string().ends_with("permission denied"), "{e}");
        }
    }
}

#[test]
fn temporary_files_of_interrupted_saves_are_listed_and_removed() {
    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path());
    b.create().expect("create");
    assert!(b.list_temporary().expect("list").is_empty());
    let id = "cd".repeat(32);
    b.simulate_interrupted_save(FileType::Pack, &id, &[7u8; 1000]).expect("interrupted pack");
    b.simulate_interrupted_save(FileType::Index, &id, &[7u8; 10]).expect("interrupted index");
    b.save(FileType::Snapshot, &id, b"complete").expect("save");
    let temps = b.list_temporary().expect("list");
    assert_eq!(temps.len(), 2, "{temps:?}");
    let pack_tmp = temps.iter().find(|t| t.name.starts_with("data/cd/.tmp-")).expect("pack temporary");
    assert_eq!(pack_tmp.size, 1000);
    assert!(temps.iter().any(|t| t.name.starts_with("index/.tmp-") && t.size == 10), "{temps:?}");
    // Objects are never temporary files, and names that are not temporaries are refused.
    assert!(b.remove_temporary(&format!("snapshots/{id}")).is_err());
    assert!(b.remove_temporary("data/../../.tmp-1").is_err());
    for t in &temps {
        b.remove_temporary(&t.name).expect("remove");
        b.remove_temporary(&t.name).expect("a second removal is not an error");
    }
    assert!(b.list_temporary().expect("list").is_empty());
    assert_eq!(b.load(FileType::Snapshot, &id).expect("load"), b"complete");
}

#[test]
fn appended_objects_are_listed_while_written_and_renamed_whole() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("local backend");
    let b = LocalBackend::new(root.path());
    b.create().expect("local backend");
    let mut a = b.appender(FileType::Lifeboat, "wal/t/g/1.open").expect("local backend").expect("local files append");
    assert!(a.is_empty());
    // Listed from its creation on, and read back after each append.
    assert_eq!(b.list(FileType::Lifeboat).expect("local backend"), vec![("wal/t/g/1.open".to_string(), 0)]);
    a.append(b"first ").expect("local backend");
    a.append(b"second").expect("local backend");
    assert_eq!(a.len(), 12);
    assert_eq!(b.load(FileType::Lifeboat, "wal/t/g/1.open").expect("local backend"), b"first second");
    let path = root.path().join("lifeboat/wal/t/g/1.open");
    assert_eq!(
        std::fs::metadata(&path).expect("local backend").permissions().mode() & 0o777,
        0o400,
        "read-only like every object"
    );
    // A second appender of the same name is refused (a writer never appends to a tail it did
    // not write).
    assert!(b.appender(FileType::Lifeboat, "wal/t/g/1.open").is_err());
    a.finish("wal/t/g/1-2.frames").expect("local backend");
    assert_eq!(b.list(FileType::Lifeboat).expect("local backend"), vec![("wal/t/g/1-2.frames".to_string(), 12)]);
    assert_eq!(b.load(FileType::Lifeboat, "wal/t/g/1-2.frames").expect("local backend"), b"first second");
    // Names are checked as for every object.
    assert!(b.appender(FileType::Lifeboat, "../escape").is_err());
}

#[test]
fn a_save_releasing_its_buffer_releases_it_before_the_object_is_durable_and_saves_it_whole() {
    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path());
    b.create().expect("create");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut released = Vec::new();
    b.save_releasing(FileType::Pack, "ab12", data.clone(), &mut |buf| {
        // Released once written: the object is not under its final name yet.
        assert!(b.list(FileType::Pack).expect("list").is_empty());
        released.push(buf);
    })
    .map_err(|f| f.0)
    .expect("save");
    assert_eq!(released, vec![data.clone()]);
    assert_eq!(b.load(FileType::Pack, "ab12").expect("load"), data);
    assert!(b.list_temporary().expect("temporary").is_empty());
    // A bad name fails before anything is written, with the buffer handed back.
    let failed =
        b.save_releasing(FileType::Pack, "../x", vec![1, 2, 3], &mut |_| panic!("not released")).expect_err("bad name");
    assert_eq!(failed.1, Some(vec![1, 2, 3]));
}

#[test]
fn big_objects_written_around_the_page_cache_read_back_whole_at_every_length() {
    // Packs of 1 MiB and more take the direct-I/O path: aligned pieces, then the tail through
    // the page cache. Lengths around the alignment and the piece size must all come back
    // byte for byte (and the path falls back to the page cache where direct I/O is refused,
    // e.g. on tmpfs).
    let root = tempfile::tempdir().expect("tempdir");
    let b = LocalBackend::new(root.path().join("repo"));
    b.create().expect("create");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    for (i, len) in
        [(1 << 20) - 1, 1 << 20, (1 << 20) + 1, (1 << 20) + 4096, 3 * (1 << 20) + 4095, 17 * (1 << 20) + 123]
            .into_iter()
            .enumerate()
    {
        let data = noise(len);
        let name = format!("{:02x}{}", i, "ab".repeat(31));
        b.save(FileType::Pack, &name, &data).expect("save");
        assert_eq!(b.load(FileType::Pack, &name).expect("load"), data, "length {len}");
        let mut released = None;
        let name2 = format!("{:02x}{}", i + 16, "cd".repeat(31));
        b.save_releasing(FileType::Pack, &name2, data.clone(), &mut |buf| released = Some(buf.len()))
            .map_err(|e| e.0)
            .expect("save_releasing");
        assert_eq!(released, Some(len));
        assert_eq!(b.load(FileType::Pack, &name2).expect("load"), data, "length {len}, releasing");
    }
}
