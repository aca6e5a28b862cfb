//! restic's lock protocol: shared locks for backups and reads, exclusive locks for prune and key
//! changes; stale locks (dead process on this host, or not refreshed for 30 minutes) are removed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use lifeboat_backend::{Backend, FileType};
use lifeboat_format::{Id, Lock};

use crate::{util, RepoError, Repository, Result};

/// A lock not refreshed for this long is stale (restic: 30 minutes).
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Held locks are refreshed this often (restic: 5 minutes).
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// A held lock; removed when dropped.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    name: Arc<Mutex<String>>,
    /// Dropping this wakes the refresher at once.
    stop: Option<crossbeam_channel::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

/// A lock file found in the repository.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LockInfo {
    /// File name.
    pub id: String,
    /// Content.
    pub lock: Lock,
    /// Whether it is stale.
    pub stale: bool,
}

fn describe(l: &Lock) -> String {
    format!("PID {} on {} by {} since {}", l.pid, l.hostname, l.username, l.time.format("%Y-%m-%d %H:%M:%S UTC"))
}

/// Whether a lock is stale: older than [`STALE_AFTER`], or held by a dead process on this host.
pub fn is_stale(l: &Lock) -> bool {
    let age = Utc::now().signed_duration_since(l.time);
    if age.to_std().map(|a| a > STALE_AFTER).unwrap_or(false) {
        return true;
    }
    l.hostname == util::hostname() && !util::process_alive(l.pid)
}

/// List the lock files.
pub fn list(repo: &Repository) -> Result<Vec<LockInfo>> {
    let mut out = Vec::new();
    for (name, _) in repo.backend().list(FileType::Lock)? {
        match repo.load_json::<Lock>(FileType::Lock, &name) {
            Ok(lock) => out.push(LockInfo { stale: is_stale(&lock), id: name, lock }),
            // Removed between list and load: it is gone, which is what we wanted to know.
            Err(RepoError::Backend(e)) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Remove stale locks (or all locks with `all`); returns how many were removed.
pub fn remove_stale(repo: &Repository, all: bool) -> Result<usize> {
    let mut n = 0;
    for l in list(repo)? {
        if all || l.stale {
            repo.backend().remove(FileType::Lock, &l.id)?;
            n += 1;
        }
    }
    Ok(n)
}

fn conflict(repo: &Repository, exclusive: bool, own: Option<&str>) -> Result<Option<RepoError>> {
    for l in list(repo)? {
        if Some(l.id.as_str()) == own {
            continue;
        }
        if l.stale {
            let _ = repo.backend().remove(FileType::Lock, &l.id);
            continue;
        }
        if exclusive || l.lock.exclusive {
            let kind = if l.lock.exclusive { "exclusively" } else { "non-exclusively" };
            return Ok(Some(RepoError::LockHeld { kind, holder: describe(&l.lock) }));
        }
    }
    Ok(None)
}

fn new_lock(exclusive: bool) -> Lock {
    Lock {
        time: Utc::now(),
        exclusive,
        hostname: util::hostname(),
        username: util::username(),
        pid: std::process::id() as i64,
        uid: util::current_uid(),
        gid: util::current_gid(),
    }
}

fn save_lock(repo_key: &lifeboat_crypto::Key, backend: &dyn Backend, lock: &Lock) -> Result<String> {
    let json = serde_json::to_vec(lock).map_err(|e| RepoError::Invalid(e.to_string()))?;
    let data = repo_key.encrypt(&json);
    let id = Id(lifeboat_crypto::sha256(&data)).to_hex();
    backend.save(FileType::Lock, &id, &data)?;
    Ok(id)
}

/// Take a lock. Fails with [`RepoError::LockHeld`] when a conflicting live lock exists.
pub fn acquire(repo: &Repository, exclusive: bool) -> Result<LockGuard> {
    if let Some(e) = conflict(repo, exclusive, None)? {
        return Err(e);
    }
    let backend = repo.backend().clone();
    let key = repo.key().clone();
    let name = save_lock(&key, backend.as_ref(), &new_lock(exclusive))?;
    // Two processes may have passed the first check at the same time: check again now that our
    // lock is visible, and back off if someone else holds a conflicting one.
    if let Some(e) = conflict(repo, exclusive, Some(&name))? {
        let _ = backend.remove(FileType::Lock, &name);
        return Err(e);
    }
    let name = Arc::new(Mutex::new(name));
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let refresher = {
        let (backend, name) = (backend.clone(), name.clone());
        std::thread::spawn(move || {
            // Wakes every REFRESH_EVERY, or at once when the guard drops its sender.
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH_EVERY) {
                if let Ok(new) = save_lock(&key, backend.as_ref(), &new_lock(exclusive)) {
                    if let Ok(mut n) = name.lock() {
                        let old = std::mem::replace(&mut *n, new);
                        let _ = backend.remove(FileType::Lock, &old);
                    }
                }
            }
        })
    };
    Ok(LockGuard { backend, name, stop: Some(stop), refresher: Some(refresher) })
}

/// [`acquire`], retrying while a conflicting lock is held, for up to `wait` (backing off from
/// 200 ms to 5 s between attempts); stops early when `interrupt` is set.
pub fn acquire_waiting(
    repo: &Repository,
    exclusive: bool,
    wait: Duration,
    interrupt: Option<&std::sync::atomic::AtomicBool>,
) -> Result<LockGuard> {
    let deadline = std::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(200);
    loop {
        match acquire(repo, exclusive) {
            Err(RepoError::LockHeld { .. }) if std::time::Instant::now() + pause < deadline => {
                if interrupt.is_some_and(|i| i.load(std::sync::atomic::Ordering::Relaxed)) {
                    return Err(RepoError::Interrupted);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            r => return r,
        }
    }
}

impl LockGuard {
    /// Release the lock now.
    pub fn release(mut self) -> Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<()> {
        self.stop = None;
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        let name = self.name.lock().map(|n| n.clone()).unwrap_or_default();
        match self.backend.remove(FileType::Lock, &name) {
            Err(e) if !e.is_not_found() => Err(e.into()),
            _ => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.refresher.is_some() {
            let _ = self.release_inner();
        }
    }
}
