//! Helpers for `tests/crash.rs`: running `lifeboat` and `restic`, building reproducible
//! corpora, comparing restored trees, and inspecting a repository directory after a crash.
//!
//! Included with `#[path = "support/crash_common.rs"] mod crash_common;`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

/// Password of every test repository (given to lifeboat and restic through the environment).
pub const PASSWORD: &str = "crash-test-password";
/// The binary under test.
pub const LIFEBOAT: &str = env!("CARGO_BIN_EXE_lifeboat");
/// The interop oracle.
pub const RESTIC: &str = "/usr/bin/restic";

/// xorshift64* — reproducible pseudo-random bytes (incompressible for zstd).
pub struct Rng(u64);

impl Rng {
    /// A generator; a zero seed is replaced (xorshift must not start at 0).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Write `len` pseudo-random bytes (from `seed`) to `path`, creating parent directories.
pub fn write_random(path: &Path, len: usize, seed: u64) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create corpus dir");
    }
    let mut rng = Rng::new(seed);
    let mut f = std::io::BufWriter::new(fs::File::create(path).expect("create random file"));
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).expect("write random file");
        left -= n;
    }
    f.flush().expect("flush random file");
}

/// Write `content` to `path` as a *new inode* (unlink first), so that hard-linked copies of the
/// old file (see [`clone_tree_hardlinked`]) keep the old content.
pub fn replace_file(path: &Path, content: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create dir");
    }
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot remove {}: {e}", path.display()),
    }
    fs::write(path, content).expect("write file");
}

/// A fresh scratch directory with an absolute, canonical path and no leading dot in its name
/// (paths under it are recorded in snapshots and mirrored by restores).
pub fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("lifeboat-crash-{tag}-")).tempdir().expect("tempdir")
}

/// Canonical absolute path of a directory.
pub fn canonical(p: &Path) -> PathBuf {
    fs::canonicalize(p).expect("canonicalize")
}

/// `lifeboat --repo REPO` with the password set and no fault injection.
pub fn lifeboat(repo: &Path) -> Command {
    let mut c = Command::new(LIFEBOAT);
    c.arg("--repo")
        .arg(repo)
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env_remove("LIFEBOAT_FAULTS")
        .env_remove("LIFEBOAT_REPOSITORY")
        .env_remove("LIFEBOAT_PASSWORD_FILE")
        .env_remove("LIFEBOAT_PASSWORD_COMMAND")
        .env_remove("LIFEBOAT_COMPRESSION");
    c
}

/// `restic -r REPO --no-cache` with the password set.
pub fn restic(repo: &Path) -> Command {
    let mut c = Command::new(RESTIC);
    c.arg("-r")
        .arg(repo)
        .arg("--no-cache")
        .env("RESTIC_PASSWORD", PASSWORD)
        .env_remove("RESTIC_REPOSITORY")
        .env_remove("RESTIC_PASSWORD_FILE")
        .env_remove("RESTIC_PASSWORD_COMMAND");
    c
}

/// Human summary of a finished process, for assertion messages.
pub fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run a command to completion.
pub fn run(cmd: &mut Command, what: &str) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

/// Run a command and require exit status 0.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = run(cmd, what);
    assert!(out.status.success(), "{}", describe(what, &out));
    out
}

/// Require that a process died from SIGKILL.
pub fn assert_sigkilled(status: ExitStatus, context: &str) {
    assert_eq!(status.signal(), Some(9), "{context}: expected death by SIGKILL, got {status}");
}

/// `lifeboat init --kdf-n 1024` (fast key derivation).
pub fn init_repo(repo: &Path) {
    run_ok(lifeboat(repo).args(["init", "--kdf-n", "1024"]), "lifeboat init");
}

/// `lifeboat backup --json PATH`; returns the new snapshot id and the JSON summary.
pub fn backup(repo: &Path, corpus: &Path) -> (String, serde_json::Value) {
    let out = run_ok(lifeboat(repo).arg("--json").arg("backup").arg(corpus), "lifeboat backup");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("backup --json output");
    let id = v["snapshot_id"].as_str().expect("snapshot_id in backup --json").to_owned();
    (id, v)
}

/// Snapshot ids from `lifeboat snapshots --json` (takes no lock), sorted.
pub fn snapshot_ids(repo: &Path) -> Vec<String> {
    let out = run_ok(lifeboat(repo).args(["--json", "snapshots"]), "lifeboat snapshots");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("snapshots --json output");
    let mut ids: Vec<String> = v
        .as_array()
        .expect("snapshots --json is an array")
        .iter()
        .map(|s| s["id"].as_str().expect("snapshot id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Sorted copy of a list of ids.
pub fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// What `lifeboat check --read-data --json` reported.
pub struct CheckReport {
    /// Notices (e.g. unreferenced packs).
    pub notices: Vec<String>,
    /// Number of packs whose data was read.
    pub packs_read: u64,
}

/// `lifeboat check --read-data --json`: requires exit 0 and no errors; returns the notices.
pub fn lifeboat_check(repo: &Path, context: &str) -> CheckReport {
    let what = format!("{context}: lifeboat check --read-data");
    let out = run(lifeboat(repo).args(["--json", "check", "--read-data"]), &what);
    assert!(out.status.success(), "{}", describe(&what, &out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: bad JSON ({e})"));
    let errors = v["errors"].as_array().map(Vec::len).unwrap_or(usize::MAX);
    assert_eq!(errors, 0, "{}", describe(&what, &out));
    let notices = v["notices"]
        .as_array()
        .expect("notices array")
        .iter()
        .map(|n| format!("{} {}: {}", n["kind"], n["id"], n["message"]))
        .collect();
    CheckReport { notices, packs_read: v["packs_read"].as_u64().unwrap_or(0) }
}

/// `restic check --read-data` (optionally `--no-lock`, to look at a repository that still
/// holds the stale lock of a killed process): requires exit 0.
pub fn restic_check(repo: &Path, no_lock: bool, context: &str) {
    let mut cmd = restic(repo);
    cmd.args(["check", "--read-data"]);
    if no_lock {
        cmd.arg("--no-lock");
    }
    let what = format!("{context}: restic check --read-data{}", if no_lock { " --no-lock" } else { "" });
    run_ok(&mut cmd, &what);
}

/// Where a restore into `target` puts the snapshot of the absolute path `source`.
fn restored_root(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").expect("absolute corpus path"))
}

/// `lifeboat restore ID --target T`, then compare `T/<source>` with `expected` byte for byte.
pub fn lifeboat_restore_matches(repo: &Path, id: &str, source: &Path, expected: &Path, work: &Path, context: &str) {
    let target = work.join(format!("restore-lifeboat-{}", &id[..12]));
    let _ = fs::remove_dir_all(&target);
    let what = format!("{context}: lifeboat restore {}", &id[..8]);
    run_ok(lifeboat(repo).arg("restore").arg(id).arg("--target").arg(&target), &what);
    assert_same_tree(expected, &restored_root(&target, source), &what);
    fs::remove_dir_all(&target).expect("remove restore target");
}

/// `restic restore ID --target T`, then compare `T/<source>` with `expected` byte for byte.
pub fn restic_restore_matches(repo: &Path, id: &str, source: &Path, expected: &Path, work: &Path, context: &str) {
    let target = work.join(format!("restore-restic-{}", &id[..12]));
    let _ = fs::remove_dir_all(&target);
    let what = format!("{context}: restic restore {}", &id[..8]);
    run_ok(restic(repo).arg("restore").arg(id).arg("--target").arg(&target), &what);
    assert_same_tree(expected, &restored_root(&target, source), &what);
    fs::remove_dir_all(&target).expect("remove restore target");
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File(u64),
    Other,
}

fn tree_listing(root: &Path) -> BTreeMap<PathBuf, Kind> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Kind>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            let rel = path.strip_prefix(root).expect("below root").to_path_buf();
            if meta.is_dir() {
                out.insert(rel, Kind::Dir);
                walk(root, &path, out);
            } else if meta.is_file() {
                out.insert(rel, Kind::File(meta.len()));
            } else {
                out.insert(rel, Kind::Other);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Require the same directories and files, with byte-identical contents.
pub fn assert_same_tree(expected: &Path, actual: &Path, context: &str) {
    assert!(actual.is_dir(), "{context}: restored tree {} is missing", actual.display());
    let want = tree_listing(expected);
    let got = tree_listing(actual);
    assert_eq!(got, want, "{context}: restored entries differ from {}", expected.display());
    assert!(want.values().any(|k| matches!(k, Kind::File(_))), "{context}: empty corpus?");
    for (rel, kind) in &want {
        if let Kind::File(_) = kind {
            let a = fs::read(expected.join(rel)).expect("read expected file");
            let b = fs::read(actual.join(rel)).expect("read restored file");
            assert!(a == b, "{context}: restored {} differs from the original", rel.display());
        }
    }
}

/// Copy a directory tree, hard-linking files. Repository files are immutable (written to a
/// temporary name, then renamed), so the copy is an independent snapshot of the repository
/// that costs no data copying; removing a file in one copy does not remove it in the other.
pub fn clone_tree_hardlinked(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("create clone dir");
    for entry in fs::read_dir(src).expect("read dir") {
        let entry = entry.expect("dir entry");
        let meta = fs::symlink_metadata(entry.path()).expect("metadata");
        let to = dst.join(entry.file_name());
        if meta.is_dir() {
            clone_tree_hardlinked(&entry.path(), &to);
        } else {
            fs::hard_link(entry.path(), &to).expect("hard link");
        }
    }
}

/// Every file below `dir`, relative to it.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    tree_listing(dir).into_iter().filter(|(_, k)| !matches!(k, Kind::Dir)).map(|(p, _)| p).collect()
}

/// Temporary files (`.tmp-…`) left in the repository by interrupted saves, relative paths.
pub fn temp_files(repo: &Path) -> Vec<PathBuf> {
    all_files(repo)
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".tmp-")))
        .collect()
}

/// Lock files (not temporary ones) in `locks/`.
pub fn lock_files(repo: &Path) -> Vec<String> {
    object_names(&repo.join("locks"))
}

/// Index files (not temporary ones) in `index/`.
pub fn index_files(repo: &Path) -> Vec<String> {
    object_names(&repo.join("index"))
}

/// Pack files (not temporary ones) below `data/`.
pub fn pack_count(repo: &Path) -> usize {
    let Ok(subdirs) = fs::read_dir(repo.join("data")) else { return 0 };
    subdirs.filter_map(Result::ok).map(|d| object_names(&d.path()).len()).sum()
}

fn object_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

fn is_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every file in the repository is either a restic object with a valid name in its proper
/// place (`config`, `keys/ID`, `snapshots/ID`, `index/ID`, `locks/ID`, `data/XX/XX…`) or a
/// dot-prefixed temporary file in one of those directories, which restic's listing skips
/// because its name does not parse as an id. Returns the number of temporary files.
pub fn assert_repo_names_valid(repo: &Path, context: &str) -> usize {
    let mut temps = 0;
    for rel in all_files(repo) {
        let parts: Vec<&str> = rel.iter().map(|c| c.to_str().expect("utf-8 name")).collect();
        let name = parts[parts.len() - 1];
        let dir_ok = match parts.as_slice() {
            ["config"] => continue,
            ["keys" | "snapshots" | "index" | "locks", _] => true,
            ["data", sub, _] => sub.len() == 2 && sub.bytes().all(|b| b.is_ascii_hexdigit()),
            ["lifeboat", ..] => continue,
            _ => false,
        };
        assert!(dir_ok, "{context}: unexpected file {} in the repository", rel.display());
        if name.starts_with(".tmp-") {
            temps += 1;
            continue;
        }
        assert!(is_id(name), "{context}: file {} in the repository is not named by an id", rel.display());
        if let ["data", sub, _] = parts.as_slice() {
            assert!(name.starts_with(sub), "{context}: pack {} is in the wrong directory", rel.display());
        }
    }
    temps
}
