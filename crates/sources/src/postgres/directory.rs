//! The directory format: `pg_dump --format=directory --jobs=N` dumps tables in parallel, one
//! file per table. It cannot write to a pipe, so the dump goes to a temporary directory (under
//! `tmp_dir`, default the system temp directory) that needs room for the whole uncompressed
//! dump; its files are backed up as the snapshot directory `DB.dir/` and the temporary directory
//! is deleted when the backup ends. Restore writes the files back to a temporary directory and
//! runs `pg_restore --format=directory --jobs=N` on it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use chrono::Utc;
use lifeboat_format::{Node, NodeType};
use lifeboat_repository::archiver::{Content, Entry};
use lifeboat_repository::{restorer, Repository};

use super::{collect_stderr, db_err, last_line, Connection, DumpOptions, Manifest, PgClients};
use crate::SourceError;

fn workdir(tmp_dir: Option<&Path>) -> Result<tempfile::TempDir, SourceError> {
    let base = tmp_dir.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("lifeboat-pgdump-")
        .tempdir_in(&base)
        .map_err(|e| SourceError::Path { path: base, source: e })
}

/// Run `pg_dump --format=directory` on the exported snapshot into a new temporary directory;
/// return the directory (delete it by dropping it once the backup is done) and the entries.
pub(super) fn dump(
    conn: &Connection,
    snapshot: &str,
    manifest: &Manifest,
    opts: &DumpOptions,
) -> Result<(tempfile::TempDir, Vec<Entry>), SourceError> {
    let work = workdir(opts.tmp_dir.as_deref())?;
    let out = work.path().join("dump");
    let mut c = conn.command("pg_dump");
    c.args(["--format=directory", &format!("--jobs={}", manifest.jobs), &format!("--compress={}", manifest.compress)])
        .args(["--no-sync", "--snapshot", snapshot, "--file"])
        .arg(&out)
        .args(["-d", &manifest.database])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = conn.spawn(c, "pg_dump", &manifest.database)?;
    let err = collect_stderr(&mut child);
    let target = conn.target(&manifest.database);
    let status = child.wait().map_err(|e| db_err(&target, e))?;
    if !status.success() {
        return Err(db_err(&target, format!("pg_dump failed ({status}): {}", last_line(&err))));
    }
    let entries = entries(&out, &manifest.file)?;
    Ok((work, entries))
}

/// The dump directory as entries named `name/…` (flat: pg_dump writes no subdirectories).
fn entries(dir: &Path, name: &str) -> Result<Vec<Entry>, SourceError> {
    let io = |path: &Path, e: std::io::Error| SourceError::Path { path: path.into(), source: e };
    let mut files: Vec<(String, PathBuf, u64)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let e = e.map_err(|e| io(dir, e))?;
        let len = e.metadata().map_err(|err| io(&e.path(), err))?.len();
        files.push((e.file_name().to_string_lossy().into_owned(), e.path(), len));
    }
    files.sort();
    let now = Utc::now();
    let mut out = vec![Entry::DirStart(crate::artifact::dir_node(name, now))];
    for (file, path, len) in files {
        let mut node = crate::artifact::node(&file, 0o600, now);
        node.size = len;
        out.push(Entry::File { node, content: Content::Path(path) });
    }
    out.push(Entry::DirEnd);
    Ok(out)
}

/// Write the snapshot's dump directory back to a temporary directory and `pg_restore` it with
/// `jobs` parallel jobs into the (existing, empty) `database`.
pub(super) fn restore(
    repo: &Repository,
    node: &Node,
    conn: &Connection,
    database: &str,
    jobs: u32,
    tmp_dir: Option<&Path>,
) -> Result<(), SourceError> {
    let target = conn.target(database);
    let subtree = node.subtree.filter(|_| node.node_type == NodeType::Dir);
    let subtree = subtree.ok_or_else(|| db_err(&target, "the snapshot's dump is not a directory"))?;
    let work = workdir(tmp_dir)?;
    let dir = work.path().join("dump");
    std::fs::create_dir(&dir).map_err(|e| SourceError::Path { path: dir.clone(), source: e })?;
    let index = repo.index().map_err(|e| db_err(&target, e))?;
    for n in repo.load_tree(&subtree).map_err(|e| db_err(&target, e))?.nodes {
        if n.node_type != NodeType::File {
            continue;
        }
        let path = dir.join(std::ffi::OsString::from(String::from_utf8_lossy(&n.name_bytes()).into_owned()));
        let mut f = std::fs::File::create(&path).map_err(|e| SourceError::Path { path: path.clone(), source: e })?;
        restorer::copy_content(repo, &index, &n, &mut f).map_err(|e| db_err(&target, e))?;
    }
    let mut c = conn.command("pg_restore");
    c.args(["--format=directory", &format!("--jobs={jobs}"), "--exit-on-error", "--no-owner", "-d", database])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = conn.spawn(c, "pg_restore", database)?;
    let err = collect_stderr(&mut child);
    let status = child.wait().map_err(|e| db_err(&target, e))?;
    if !status.success() {
        return Err(db_err(&target, format!("pg_restore failed ({status}): {}", last_line(&err))));
    }
    Ok(())
}
