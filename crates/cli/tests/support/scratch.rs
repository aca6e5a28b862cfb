//! For tests of commands that restore into scratch targets (`verify --restore-test`, `drill`): a
//! config-driven repository, runs with TMPDIR pointed at a directory of the test's own so that
//! leftovers show, and opening the repository through the library.
//!
//! Included after `common` with `#[path = "support/scratch.rs"] mod scratch;`.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lifeboat_backend::{Backend, LocalBackend};
use lifeboat_repository::Repository;

use crate::common::{bare, lbc, run, Run, PASSWORD};

/// `lifeboat --config CFG ARGS…` with scratch files under `tmp` (TMPDIR), so leftovers show.
pub fn lbt(cfg: &Path, tmp: &Path, args: &[&str]) -> Run {
    run(bare().env("LIFEBOAT_PASSWORD", PASSWORD).env("TMPDIR", tmp).arg("--config").arg(cfg).args(args))
}

/// A repository (`DIR/repo`) and a config with `body` as its sources; returns (config, scratch TMPDIR).
pub fn setup(dir: &Path, body: &str) -> (PathBuf, PathBuf) {
    let cfg = dir.join("lifeboat.toml");
    fs::write(&cfg, format!("[repository]\nurl = \"{}\"\n\n{body}", dir.join("repo").display())).expect("config");
    let tmp = dir.join("scratch-tmp");
    fs::create_dir_all(&tmp).expect("scratch dir");
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    (cfg, tmp)
}

/// Nothing may be left in the scratch TMPDIR.
#[track_caller]
pub fn assert_clean(tmp: &Path) {
    let left: Vec<_> = fs::read_dir(tmp).expect("scratch dir").map(|e| e.expect("entry").file_name()).collect();
    assert!(left.is_empty(), "scratch leftovers in {}: {left:?}", tmp.display());
}

/// Open the local repository at `repo` with the test password, through the library.
pub fn open_repo(repo: &Path) -> Repository {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(repo));
    Repository::open(backend, PASSWORD.as_bytes()).expect("open repository")
}
