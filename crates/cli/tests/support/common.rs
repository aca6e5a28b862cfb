//! Helpers for the end-to-end tests (`tests/e2e.rs`): running `lifeboat` and real `restic`,
//! building source trees with known metadata, and comparing a restored tree with its source.
//!
//! Included with `#[path = "support/common.rs"] mod common;` — not a `mod.rs`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

/// Password of every test repository (passed through the environment, never argv).
pub const PASSWORD: &str = "e2e correct horse battery staple";

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

/// Environment variables that would change what the binary or restic does.
const SCRUB: &[&str] = &[
    "LIFEBOAT_REPOSITORY",
    "LIFEBOAT_PASSWORD",
    "LIFEBOAT_PASSWORD_FILE",
    "LIFEBOAT_PASSWORD_COMMAND",
    "LIFEBOAT_NEW_PASSWORD",
    "LIFEBOAT_COMPRESSION",
    "LIFEBOAT_FAULTS",
    "LIFEBOAT_CONFIG",
    "LIFEBOAT_CACHE_DIR",
    "RESTIC_REPOSITORY",
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_COMPRESSION",
];

/// Result of one process run.
#[derive(Debug)]
pub struct Run {
    /// What was run (for messages).
    pub what: String,
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Assert exit code 0 and return self.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{} failed:\nstdout:\n{}\nstderr:\n{}", self.what, self.stdout, self.stderr);
        self
    }

    /// Assert a specific exit code and return self.
    #[track_caller]
    pub fn code(self, want: i32) -> Self {
        assert_eq!(
            self.code, want,
            "{}: exit code {} (want {want})\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Parse stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON ({e}):\n{}", self.what, self.stdout))
    }

    /// Assert the error output is exactly one non-empty line, with no panic or backtrace, and
    /// return that line.
    #[track_caller]
    pub fn one_error_line(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{}: want exactly one line on stderr, got:\n{}", self.what, self.stderr);
        let l = lines[0];
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("backtrace") && !self.stderr.contains("RUST_"),
            "{}: stderr looks like a panic:\n{}",
            self.what,
            self.stderr
        );
        l.to_string()
    }
}

/// Run a prepared command (stdin closed) and collect its output.
pub fn run(cmd: &mut Command) -> Run {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    Run {
        what,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A `lifeboat` command with a clean environment, no repository and no password.
pub fn bare() -> Command {
    let mut c = Command::new(BIN);
    for v in SCRUB {
        c.env_remove(v);
    }
    c
}

/// A `lifeboat --repo REPO` command with `password` in `LIFEBOAT_PASSWORD`.
pub fn lifeboat_pw(repo: &Path, password: &str) -> Command {
    let mut c = bare();
    c.env("LIFEBOAT_PASSWORD", password).arg("--repo").arg(repo);
    c
}

/// A `lifeboat --repo REPO` command with the test password.
pub fn lifeboat(repo: &Path) -> Command {
    lifeboat_pw(repo, PASSWORD)
}

/// Run `lifeboat --repo REPO ARGS…` with the test password.
pub fn lb(repo: &Path, args: &[&str]) -> Run {
    run(lifeboat(repo).args(args))
}

/// Run `lifeboat --repo REPO ARGS…` with another password.
pub fn lb_pw(repo: &Path, password: &str, args: &[&str]) -> Run {
    run(lifeboat_pw(repo, password).args(args))
}

/// `lifeboat init --kdf-n 1024` at `repo` (cheap key derivation for tests not about keys).
pub fn init(repo: &Path) {
    lb(repo, &["init", "--kdf-n", "1024"]).ok();
}

/// `lifeboat backup --json ARGS…`; asserts success and returns the JSON summary.
#[track_caller]
pub fn backup_json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["backup", "--json"];
    all.extend_from_slice(args);
    lb(repo, &all).ok().json()
}

/// A `restic -r REPO --no-cache` command with the test password.
pub fn restic(repo: &Path) -> Command {
    let mut c = Command::new("/usr/bin/restic");
    for v in SCRUB {
        c.env_remove(v);
    }
    c.env("RESTIC_PASSWORD", PASSWORD).arg("--no-cache").arg("-r").arg(repo);
    c
}

/// Run `restic -r REPO ARGS…`.
pub fn rs(repo: &Path, args: &[&str]) -> Run {
    run(restic(repo).args(args))
}

/// A u64 field of a JSON object.
#[track_caller]
pub fn num(v: &serde_json::Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or_else(|| panic!("no number {field:?} in {v:#}"))
}

/// `p` as a `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Where a backed-up absolute path ends up below a restore target.
pub fn under(target: &Path, abs: &Path) -> PathBuf {
    target.join(abs.strip_prefix("/").expect("absolute path"))
}

/// A tempdir that other users may traverse (for tests that run the binary as `nobody`).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("lifeboat-e2e-").tempdir().expect("tempdir")
}

// ---------------------------------------------------------------------------------------------
// Building source data.

/// Deterministic pseudo-random bytes (xorshift64*), incompressible.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Write `len` pseudo-random bytes to `path`.
pub fn write_random(path: &Path, len: usize, seed: u64) {
    fs::write(path, random_bytes(len, seed)).expect("write random file");
}

/// Write `len` bytes of highly compressible text to `path`.
pub fn write_compressible(path: &Path, len: usize) {
    write_text(path, len, "the quick brown fox jumps over the lazy lifeboat 0123456789");
}

/// Write `len` bytes of numbered lines ending in `tag` (compressible; a different tag gives
/// data that does not deduplicate against other tags).
pub fn write_text(path: &Path, len: usize, tag: &str) {
    let line = format!("{tag}\n");
    let line = line.as_bytes();
    let mut f = std::io::BufWriter::new(fs::File::create(path).expect("create"));
    let mut n = 0;
    let mut i = 0u64;
    while n < len {
        let chunk = format!("{i:08} ");
        let mut rec = chunk.into_bytes();
        rec.extend_from_slice(line);
        let take = rec.len().min(len - n);
        f.write_all(&rec[..take]).expect("write");
        n += take;
        i += 1;
    }
    f.flush().expect("flush");
}

/// Set permissions (including setuid/setgid/sticky bits).
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Set atime and mtime of a file or directory (not following symlinks for symlinks).
pub fn set_mtime(path: &Path, secs: u64, nanos: u32) {
    let t = UNIX_EPOCH + Duration::new(secs, nanos);
    let m = fs::symlink_metadata(path).expect("stat");
    if m.file_type().is_symlink() {
        let st = run(Command::new("touch").arg("-h").arg("-d").arg(format!("@{secs}.{nanos:09}")).arg(path));
        assert_eq!(st.code, 0, "touch -h failed: {}", st.stderr);
    } else {
        let f = fs::File::open(path).expect("open for set_times");
        f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t)).expect("set_times");
    }
}

/// Set an extended attribute with python3 (no xattr crate among the test dependencies).
/// Returns false (and prints why) when not possible here.
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    let r = run(Command::new("python3").args([
        "-c",
        "import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), follow_symlinks=False)",
        s(path),
        name,
        &hex,
    ]));
    if r.code != 0 {
        println!("note: cannot set xattr {name} on {} ({}): xattr checks skipped", path.display(), r.stderr.trim());
        return false;
    }
    true
}

/// The extended attributes of a file (name → value), read with python3.
pub fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let r = run(Command::new("python3").args([
        "-c",
        "import os,sys\n\
         p=sys.argv[1]\n\
         for n in sorted(os.listxattr(p, follow_symlinks=False)):\n\
         \x20   print(n, os.getxattr(p, n, follow_symlinks=False).hex())",
        s(path),
    ]))
    .ok();
    r.stdout
        .lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(' ')?;
            let bytes: Option<Vec<u8>> =
                (0..v.len()).step_by(2).map(|i| u8::from_str_radix(&v[i..i + 2], 16).ok()).collect();
            Some((n.to_string(), bytes?))
        })
        .collect()
}

/// Every path below `root` (relative), sorted.
pub fn list_tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let p = e.path();
            out.push(p.strip_prefix(root).expect("below root").to_path_buf());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Restore temporaries left anywhere below `root`.
pub fn leftover_tmp(root: &Path) -> Vec<PathBuf> {
    list_tree(root)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains("lifeboat-tmp")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Comparing trees.

/// What [`compare_trees`] looks at besides names, types and contents.
#[derive(Clone, Copy, Debug)]
pub struct Compare {
    /// Permission bits including setuid/setgid/sticky.
    pub mode: bool,
    /// Modification times, to the nanosecond (symlinks included).
    pub mtime: bool,
    /// Owner uid/gid.
    pub owner: bool,
    /// Hard-linked source files must be hard-linked in the copy.
    pub hardlinks: bool,
}

impl Compare {
    /// Everything.
    pub const ALL: Compare = Compare { mode: true, mtime: true, owner: true, hardlinks: true };
    /// Names, types and contents only.
    pub const CONTENT: Compare = Compare { mode: false, mtime: false, owner: false, hardlinks: false };
}

fn files_equal(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (mut fa, mut fb) = (fs::File::open(a)?, fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn kind(m: &fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else {
        "special"
    }
}

/// Compare the tree at `copy` with the tree at `orig` (both roots included); returns every
/// difference found, as readable lines (empty = identical).
pub fn compare_trees(orig: &Path, copy: &Path, what: Compare) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut rels = vec![PathBuf::new()];
    rels.extend(list_tree(orig));
    let copy_rels: Vec<PathBuf> = list_tree(copy);
    for extra in copy_rels.iter().filter(|p| !rels.contains(p)) {
        diffs.push(format!("{}: only in the copy", extra.display()));
    }
    // source inode → (first relative path, copy inode of it)
    let mut links: BTreeMap<(u64, u64), (PathBuf, u64)> = BTreeMap::new();
    for rel in &rels {
        let (a, b) = (orig.join(rel), copy.join(rel));
        let show = if rel.as_os_str().is_empty() { PathBuf::from(".") } else { rel.clone() };
        let ma = fs::symlink_metadata(&a).expect("stat original");
        let mb = match fs::symlink_metadata(&b) {
            Ok(m) => m,
            Err(e) => {
                diffs.push(format!("{}: missing in the copy ({e})", show.display()));
                continue;
            }
        };
        if kind(&ma) != kind(&mb) {
            diffs.push(format!("{}: type {} became {}", show.display(), kind(&ma), kind(&mb)));
            continue;
        }
        match kind(&ma) {
            "file" => match files_equal(&a, &b) {
                Ok(true) => {}
                Ok(false) => {
                    diffs.push(format!("{}: content differs ({} vs {} bytes)", show.display(), ma.len(), mb.len()))
                }
                Err(e) => diffs.push(format!("{}: cannot compare: {e}", show.display())),
            },
            "symlink" => {
                let (ta, tb) = (fs::read_link(&a).ok(), fs::read_link(&b).ok());
                if ta != tb {
                    diffs.push(format!("{}: symlink target {ta:?} became {tb:?}", show.display()));
                }
            }
            _ => {}
        }
        if what.mode && kind(&ma) != "symlink" && ma.mode() & 0o7777 != mb.mode() & 0o7777 {
            diffs.push(format!("{}: mode {:o} became {:o}", show.display(), ma.mode() & 0o7777, mb.mode() & 0o7777));
        }
        if what.mtime && (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
            diffs.push(format!(
                "{}: mtime {}.{:09} became {}.{:09}",
                show.display(),
                ma.mtime(),
                ma.mtime_nsec(),
                mb.mtime(),
                mb.mtime_nsec()
            ));
        }
        if what.owner && (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            diffs.push(format!("{}: owner {}:{} became {}:{}", show.display(), ma.uid(), ma.gid(), mb.uid(), mb.gid()));
        }
        if what.hardlinks && kind(&ma) == "file" && ma.nlink() > 1 {
            match links.get(&(ma.dev(), ma.ino())) {
                Some((first, ino)) if *ino != mb.ino() => diffs.push(format!(
                    "{}: hard link to {} was not preserved (inode {} vs {})",
                    show.display(),
                    first.display(),
                    mb.ino(),
                    ino
                )),
                Some(_) => {}
                None => {
                    links.insert((ma.dev(), ma.ino()), (rel.clone(), mb.ino()));
                }
            }
        }
    }
    diffs
}

/// Assert two trees are identical in everything `what` selects.
#[track_caller]
pub fn assert_same_tree(orig: &Path, copy: &Path, what: Compare) {
    let d = compare_trees(orig, copy, what);
    assert!(d.is_empty(), "{} differs from {}:\n  {}", copy.display(), orig.display(), d.join("\n  "));
}

/// Wait until `f` returns Some, polling every few milliseconds, for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Run `lifeboat --config CFG ARGS…` with the test password in the environment.
pub fn lbc(cfg: &Path, args: &[&str]) -> Run {
    run(bare().env("LIFEBOAT_PASSWORD", PASSWORD).arg("--config").arg(cfg).args(args))
}

/// Whether a server a test needs answers `probe`. Outside CI a missing server skips the test
/// with a printed reason; in CI (`CI` set) it fails it.
pub fn service(what: &str, probe: &mut Command) -> bool {
    let ok = probe.stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{what} must be running in CI");
        eprintln!("skipping: {what} is not reachable");
    }
    ok
}

/// A name unique to this test run, for throwaway databases and key prefixes.
pub fn unique_tag() -> String {
    let nanos = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}_{nanos}", std::process::id())
}
