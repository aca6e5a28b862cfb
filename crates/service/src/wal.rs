//! `wal-push` and `wal-fetch`: PostgreSQL's `archive_command` and `restore_command` for a
//! `pitr = true` source (see [`lifeboat_ops::wal`] for where the WAL lives).

use std::io::Write;
use std::path::Path;

use lifeboat_ops::wal::{self, Pushed};

use crate::error::{Result, ServiceError};
use crate::session::Session;

/// What a push did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PushReport {
    /// The WAL file's name.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// `false` when it was already archived with the same content.
    pub stored: bool,
}

/// Archive the WAL file at `path` for `source`: durable when this returns `Ok`, idempotent, and
/// refused when a file of the same name with other content is archived already.
pub fn push(session: &Session, source: &str, path: &Path) -> Result<PushReport> {
    let name = file_name(path)?;
    let data = std::fs::read(path).map_err(|e| ServiceError::msg(format!("cannot read {}: {e}", path.display())))?;
    let repo = session.open()?;
    let pushed = wal::push(&repo, source, &name, &data)?;
    Ok(PushReport { name, bytes: data.len() as u64, stored: pushed == Pushed::Stored })
}

/// Fetch the archived WAL file `name` of `source` into `dest` (written to a temporary name in
/// the same directory, then renamed); `Ok(false)` when it was never archived, which recovery
/// asks for routinely (the next timeline's history, the segment after the last).
pub fn fetch(session: &Session, source: &str, name: &str, dest: &Path) -> Result<bool> {
    let repo = session.open()?;
    let Some(data) = wal::fetch(&repo, source, name)? else { return Ok(false) };
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| ServiceError::msg(format!("cannot write into {}: {e}", dir.display())))?;
    tmp.write_all(&data)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| ServiceError::msg(format!("cannot write {}: {e}", dest.display())))?;
    tmp.persist(dest).map_err(|e| ServiceError::msg(format!("cannot write {}: {}", dest.display(), e.error)))?;
    Ok(true)
}

/// The names archived for `source` with their stored sizes.
pub fn list(session: &Session, source: &str) -> Result<Vec<(String, u64)>> {
    let repo = session.open()?;
    Ok(wal::list(&repo, source)?)
}

fn file_name(path: &Path) -> Result<String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    if !wal::valid_name(&name) {
        return Err(ServiceError::usage(format!(
            "{}: not a WAL file name (expected %p of archive_command: pg_wal/000000010000000000000001 or a .history/.backup/.partial file)",
            path.display()
        )));
    }
    Ok(name)
}
