//! Small host facts the engine records: host name, user name, uid/gid, and name lookups for
//! file owners. Read from `/proc` and `/etc` so the crate needs no `unsafe` libc calls.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// This machine's host name.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn proc_status_id(field: &str) -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Effective uid of this process (0 when unknown). Read once: a restore asks for every file.
pub fn current_uid() -> u32 {
    static UID: OnceLock<u32> = OnceLock::new();
    *UID.get_or_init(|| proc_status_id("Uid:").unwrap_or(0))
}

/// Effective gid of this process (0 when unknown).
pub fn current_gid() -> u32 {
    static GID: OnceLock<u32> = OnceLock::new();
    *GID.get_or_init(|| proc_status_id("Gid:").unwrap_or(0))
}

/// Open `p` for reading with `flags` added, without updating its access time (`O_NOATIME`, as
/// restic does): what a backup reads must not change the node it records, or the next backup
/// would find the file or directory changed and store its parent's tree again. The kernel allows
/// `O_NOATIME` only to the owner (or with `CAP_FOWNER`): anybody else's file is opened without.
pub fn open_noatime(p: &std::path::Path, flags: nix::fcntl::OFlag) -> std::io::Result<std::fs::File> {
    use nix::fcntl::OFlag;
    use std::os::unix::fs::OpenOptionsExt;
    let open = |f: OFlag| std::fs::OpenOptions::new().read(true).custom_flags(f.bits()).open(p);
    match open(flags | OFlag::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EPERM as i32) => open(flags),
        r => r,
    }
}

/// Name of the user running this process.
pub fn username() -> String {
    user_name(current_uid()).or_else(|| std::env::var("USER").ok()).unwrap_or_default()
}

fn lookup(
    file: &'static str,
    cache: &'static OnceLock<Mutex<HashMap<u32, Option<String>>>>,
    id: u32,
) -> Option<String> {
    // A walk asks twice per file from several threads: each thread keeps its own answers, so
    // they do not queue on the shared lock.
    thread_local! {
        static MINE: std::cell::RefCell<HashMap<(&'static str, u32), Option<String>>> = Default::default();
    }
    if let Some(hit) = MINE.with(|m| m.borrow().get(&(file, id)).cloned()) {
        return hit;
    }
    let found = lookup_shared(file, cache, id);
    MINE.with(|m| m.borrow_mut().insert((file, id), found.clone()));
    found
}

fn lookup_shared(file: &str, cache: &'static OnceLock<Mutex<HashMap<u32, Option<String>>>>, id: u32) -> Option<String> {
    let cache = cache.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache.lock().ok()?;
    guard
        .entry(id)
        .or_insert_with(|| {
            let text = std::fs::read_to_string(file).ok()?;
            text.lines().find_map(|l| {
                let mut it = l.split(':');
                let name = it.next()?;
                let _pw = it.next()?;
                (it.next()?.parse::<u32>().ok()? == id).then(|| name.to_string())
            })
        })
        .clone()
}

/// Name of uid from /etc/passwd.
pub fn user_name(uid: u32) -> Option<String> {
    static CACHE: OnceLock<Mutex<HashMap<u32, Option<String>>>> = OnceLock::new();
    lookup("/etc/passwd", &CACHE, uid)
}

/// Name of gid from /etc/group.
pub fn group_name(gid: u32) -> Option<String> {
    static CACHE: OnceLock<Mutex<HashMap<u32, Option<String>>>> = OnceLock::new();
    lookup("/etc/group", &CACHE, gid)
}

/// Whether a process with this pid is alive on this host.
pub fn process_alive(pid: i64) -> bool {
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A counting semaphore: bounds how many threads do a memory-hungry thing at once.
pub struct Semaphore {
    free: Mutex<usize>,
    cv: std::sync::Condvar,
}

/// A held permit; released on drop.
pub struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    /// A semaphore with `n` permits.
    pub fn new(n: usize) -> Self {
        Semaphore { free: Mutex::new(n.max(1)), cv: std::sync::Condvar::new() }
    }

    /// Wait for a permit.
    pub fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.0.cv.notify_one();
    }
}

/// Apply `f` to every item on up to `threads` threads, keeping input order; stops at the first
/// error.
pub fn parallel_map<T, R, F>(items: Vec<T>, threads: usize, f: F) -> crate::Result<Vec<R>>
where
    T: Send,
    R: Send,
    F: Fn(T) -> crate::Result<R> + Sync,
{
    let n = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..n).map(|_| None).collect());
    let error: Mutex<Option<crate::RepoError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            s.spawn(|| loop {
                if error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some((i, item)) = next else { return };
                match f(item) {
                    Ok(r) => {
                        if let Ok(mut res) = results.lock() {
                            res[i] = Some(r);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut slot) = error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().ok().flatten() {
        return Err(e);
    }
    let results = results.into_inner().map_err(|_| crate::RepoError::Invalid("worker panicked".into()))?;
    results.into_iter().map(|r| r.ok_or_else(|| crate::RepoError::Invalid("worker panicked".into()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_facts() {
        assert!(!hostname().is_empty());
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert!(process_alive(std::process::id() as i64));
        assert!(!process_alive(-1));
    }
}
