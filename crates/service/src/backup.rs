//! Backing up: the config's sources (each into its own snapshot, a failing source reported and
//! the others still run, then the `after_backup` copies), or paths given directly.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lifeboat_format::SourceInfo;
use lifeboat_repository::archiver::{backup as run_backup, BackupOptions, BackupStats, Entry};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::{util, RepoError, Repository};
use lifeboat_sources::files::{walk, FilesOptions};
use serde::Serialize;

use crate::config::{Config, SourceConfig};
use crate::copy::{self, Destination};
use crate::error::{Result, ServiceError};
use crate::hooks::{self, HookEnv};
use crate::kinds::Generated;
use crate::progress::{Event, Observer, Ticker};
use crate::runs;
use crate::session::{one_line, Session};
use lifeboat_ops::records::{HookRun, Run, RunKind, RunOutcome};

/// Options of a backup of config sources.
#[derive(Clone, Debug, Default)]
pub struct SourcesRequest {
    /// Extra tags for every snapshot.
    pub tags: Vec<String>,
    /// Read every file even when unchanged since the parent snapshot.
    pub force: bool,
}

/// One source's outcome.
#[derive(Debug)]
pub struct SourceBackup {
    /// Source name.
    pub source: String,
    /// Source kind.
    pub kind: &'static str,
    /// The new snapshot, or why there is none.
    pub result: std::result::Result<BackupStats, String>,
    /// Wall time.
    pub seconds: f64,
    /// The copy destinations that received the snapshot.
    pub copied_to: Vec<String>,
    /// The source's hooks that ran (`before_backup`, `after_backup`, `on_failure`).
    pub hooks: Vec<HookRun>,
}

impl SourceBackup {
    /// The outcome as one JSON object (the shape of `backup --all --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = match &self.result {
            Ok(stats) => serde_json::json!({
                "source": self.source, "kind": self.kind, "ok": true, "snapshot_id": stats.snapshot_id,
                "summary": stats.summary, "manifest": stats.snapshot.source.as_ref().and_then(|s| s.manifest.clone()),
                "errors": stats.errors, "duration_seconds": self.seconds,
            }),
            Err(e) => serde_json::json!({ "source": self.source, "kind": self.kind, "ok": false, "error": e }),
        };
        if !self.copied_to.is_empty() {
            v["copied_to"] = serde_json::json!(self.copied_to);
        }
        if !self.hooks.is_empty() {
            v["hooks"] = serde_json::json!(self.hooks);
        }
        v
    }
}

/// A copy after the backup that failed (the snapshots are kept).
#[derive(Debug, Serialize)]
pub struct CopyFailure {
    /// The destination's label.
    pub destination: String,
    /// Why.
    pub error: String,
}

/// What a backup of config sources did.
#[derive(Debug, Default)]
pub struct SourcesReport {
    /// Each source, in order.
    pub sources: Vec<SourceBackup>,
    /// Copies made after the backup (destination label and what was copied).
    pub copies: Vec<(String, lifeboat_repository::copy::CopyStats)>,
    /// Copies that failed.
    pub copy_failures: Vec<CopyFailure>,
}

impl SourcesReport {
    /// Whether any source failed or any copy failed.
    pub fn failed(&self) -> bool {
        self.sources.iter().any(|s| s.result.is_err()) || !self.copy_failures.is_empty()
    }

    /// Whether some snapshot misses entries that could not be read.
    pub fn partial(&self) -> bool {
        self.sources.iter().any(|s| s.result.as_ref().is_ok_and(|st| !st.errors.is_empty()))
    }
}

/// Back up `selected` sources of `cfg`, each into its own snapshot.
///
/// The repository opens (key derivation, lock, snapshot listing) on a thread while the first
/// source starts: `pg_dump` connecting, Redis writing its RDB. A source with a `before_backup`
/// hook, and every source under `--retry-lock`, waits for the repository first, so a hook never
/// runs and a source never waits on a lock for a backup that cannot be stored.
pub fn sources(
    session: &Session,
    cfg: &Config,
    selected: &[&SourceConfig],
    req: &SourcesRequest,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<SourcesReport> {
    std::thread::scope(|scope| {
        let opening = Opening::start(scope, session);
        let mut report = SourcesReport::default();
        let mut new = Vec::new();
        for src in selected {
            let started = Instant::now();
            observer(&Event::Started {
                step: "backup",
                source: src.name.clone(),
                kind: src.kind().into(),
                detail: String::new(),
            });
            let mut run = Run::start(RunKind::Backup, Some(src.name.clone()), &session.trigger);
            let mut run_saved = false;
            if src.hooks.before_backup.is_some() || session.retry_lock.is_some() || opening.is_done() {
                runs::save(&opening.get()?.repo, &run, observer.as_ref());
                run_saved = true;
            }
            // The source's hooks around it: a failing before_backup skips the backup; a failing
            // after_backup fails the run but keeps the snapshot; on_failure runs when it failed.
            let mut env = HookEnv::new(&src.name, "backup");
            let mut hook_runs = Vec::new();
            let result = hooks::run_named(&src.hooks, "before_backup", &env, &mut hook_runs)
                .map_err(|e| ServiceError::msg(format!("{e}; the backup did not run")))
                .and_then(|()| {
                    // Called by the source once it has something to store: from here on the
                    // repository is needed, and the run is recorded as running.
                    let mut archive = |mut g: Generated| {
                        // Why it could not be opened is told once the source has stopped.
                        let Some(opened) = opening.wait() else {
                            return Err(ServiceError::msg("the repository could not be opened"));
                        };
                        if !run_saved {
                            runs::save(&opened.repo, &run, observer.as_ref());
                            run_saved = true;
                        }
                        if session.no_totals {
                            g.scan = None;
                        }
                        archive_generated(&opened.repo, &opened.known, src, req, g, interrupt, observer)
                    };
                    src.source.backup(&src.name, &mut archive)
                });
            // A source that failed before storing anything still needs the repository, to
            // record its run; and when the repository cannot be opened, that is the error.
            let opened = opening.get()?;
            let repo = &opened.repo;
            if !run_saved {
                runs::save(repo, &run, observer.as_ref());
            }
            if interrupt.load(Ordering::Relaxed) {
                hooks::say(&mut run, &hook_runs);
                runs::end(repo, run, RunOutcome::Failed, Some("interrupted".into()), observer.as_ref());
                return Err(RepoError::Interrupted.into());
            }
            let mut after_error = None;
            if let Ok(stats) = &result {
                env.snapshot = Some(stats.snapshot_id.to_hex());
                if let Err(e) = hooks::run_named(&src.hooks, "after_backup", &env, &mut hook_runs) {
                    after_error = Some(format!("{e} (snapshot {} was saved)", stats.snapshot_id.short()));
                }
            }
            let failure = match (&result, &after_error) {
                (Err(e), _) => Some(one_line(e)),
                (Ok(_), Some(e)) => Some(e.clone()),
                _ => None,
            };
            if let Some(f) = &failure {
                hooks::on_failure(&src.hooks, &env, f, &mut hook_runs);
            }
            hooks::say(&mut run, &hook_runs);
            record(repo, session, run, &result, after_error.as_deref(), observer.as_ref());
            let seconds = started.elapsed().as_secs_f64();
            let detail = match (&result, &failure) {
                (_, Some(f)) => f.clone(),
                (Ok(s), None) => format!("snapshot {}", s.snapshot_id.short()),
                (Err(e), None) => one_line(e),
            };
            let ok = failure.is_none();
            observer(&Event::Finished { step: "backup", source: src.name.clone(), ok, seconds, detail });
            if let Ok(stats) = &result {
                new.push(SnapshotEntry { id: stats.snapshot_id, snapshot: stats.snapshot.clone() });
            }
            report.sources.push(SourceBackup {
                source: src.name.clone(),
                kind: src.kind(),
                result: match after_error {
                    Some(e) => Err(e),
                    None => result.map_err(|e| one_line(&e)),
                },
                seconds,
                copied_to: Vec::new(),
                hooks: hook_runs,
            });
        }
        // Even with nothing selected, a repository that cannot be opened is an error.
        let Opened { mut repo, lock, .. } = opening.finish()?;
        if !new.is_empty() && cfg.copies.iter().any(|c| c.after_backup) {
            // The index cached at the start does not know the blobs just written.
            repo.reset_index();
            copy_after_backup(session, cfg, &repo, &new, &mut report, interrupt, observer.as_ref());
        }
        drop(lock);
        Ok(report)
    })
}

/// The repository a backup of sources writes to: open, locked, its snapshots listed once for
/// every source's parent lookup.
struct Opened {
    /// The repository.
    repo: Repository,
    /// Its shared lock, held until the backups (and the copies after them) are done.
    lock: Option<lifeboat_repository::lock::LockGuard>,
    /// Its snapshots when it was opened (what a parent lookup needs of them).
    known: Vec<snapshots::Brief>,
}

/// A repository opening on its own thread, waited for where it is first needed.
struct Opening<'scope> {
    /// The thread, until joined.
    thread: std::cell::RefCell<Option<std::thread::ScopedJoinHandle<'scope, Result<Opened>>>>,
    /// What it gave: the repository, or (once) why it could not be opened.
    done: std::cell::OnceCell<std::result::Result<Opened, std::cell::Cell<Option<ServiceError>>>>,
}

impl<'scope> Opening<'scope> {
    /// Start opening the repository of `session` on a thread of `scope`.
    fn start<'env>(scope: &'scope std::thread::Scope<'scope, 'env>, session: &'env Session) -> Self {
        let thread = scope.spawn(move || -> Result<Opened> {
            let repo = session.open()?;
            let lock = session.lock(&repo, false)?;
            let known = snapshots::briefs(&repo)?;
            Ok(Opened { repo, lock, known })
        });
        Opening { thread: std::cell::RefCell::new(Some(thread)), done: std::cell::OnceCell::new() }
    }

    /// Whether the thread has been waited for.
    fn is_done(&self) -> bool {
        self.done.get().is_some()
    }

    /// The opened repository, waiting for it; `None` when it could not be opened.
    fn wait(&self) -> Option<&Opened> {
        let done = self.done.get_or_init(|| {
            let joined = self.thread.borrow_mut().take().map(|t| t.join());
            match joined {
                Some(Ok(Ok(opened))) => Ok(opened),
                Some(Ok(Err(e))) => Err(std::cell::Cell::new(Some(e))),
                _ => Err(std::cell::Cell::new(Some(ServiceError::msg("opening the repository failed unexpectedly")))),
            }
        });
        done.as_ref().ok()
    }

    /// The opened repository, waiting for it, or why it could not be opened (the error itself
    /// to the first caller that asks, a one-line reminder of it after that).
    fn get(&self) -> Result<&Opened> {
        if let Some(opened) = self.wait() {
            return Ok(opened);
        }
        let error = match self.done.get() {
            Some(Err(e)) => e.take(),
            _ => None,
        };
        Err(error.unwrap_or_else(|| ServiceError::msg("the repository could not be opened")))
    }

    /// The opened repository, owned.
    fn finish(self) -> Result<Opened> {
        self.get()?;
        match self.done.into_inner() {
            Some(Ok(opened)) => Ok(opened),
            _ => Err(ServiceError::msg("the repository could not be opened")),
        }
    }
}

/// Record how a backup run ended, in the run history and the audit log.
fn record(
    repo: &Repository,
    session: &Session,
    mut run: Run,
    result: &Result<BackupStats>,
    after_error: Option<&str>,
    o: &Observer,
) {
    let (snapshot, details) = match result {
        Ok(stats) => (
            Some(stats.snapshot_id.to_hex()),
            serde_json::json!({ "outcome": if stats.errors.is_empty() { "ok" } else { "partial" },
                "bytes_added": stats.summary.data_added_packed, "trigger": session.trigger }),
        ),
        Err(e) => (None, serde_json::json!({ "outcome": "failed", "error": one_line(e), "trigger": session.trigger })),
    };
    let event = lifeboat_ops::audit::Event::new("backup", details).about(run.source.as_deref(), snapshot);
    crate::audit::record(repo, Some(session), event, o);
    match result {
        Ok(stats) => {
            run.bytes = Some(stats.summary.data_added_packed);
            run.snapshot = Some(stats.snapshot_id);
            for e in &stats.errors {
                run.say("warning", format!("cannot read {}: {}", e.path, e.message));
            }
            run.say("info", format!("snapshot {} saved", stats.snapshot_id.short()));
            match after_error {
                Some(e) => {
                    runs::end(repo, run, RunOutcome::Failed, Some(e.to_string()), o);
                }
                None => {
                    let outcome = if stats.errors.is_empty() { RunOutcome::Ok } else { RunOutcome::Partial };
                    runs::end(repo, run, outcome, None, o);
                }
            }
        }
        Err(e) => {
            runs::end(repo, run, RunOutcome::Failed, Some(one_line(e)), o);
        }
    }
}

/// Store what a source generated as its snapshot.
fn archive_generated(
    repo: &Repository,
    known: &[snapshots::Brief],
    src: &SourceConfig,
    req: &SourcesRequest,
    g: Generated,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<BackupStats> {
    let host = util::hostname();
    let mut tags = src.tags.clone();
    tags.extend(req.tags.iter().cloned());
    let info = SourceInfo { name: src.name.clone(), kind: src.kind().into(), manifest: g.manifest };
    let parent = if req.force { None } else { snapshots::parent_in(known, &host, &g.paths, Some(&src.name)) };
    let opts = BackupOptions {
        paths: g.paths,
        tags,
        hostname: Some(host.clone()),
        excludes: g.excludes,
        parent,
        source: Some(info),
        finish: g.finish,
        chunk_sizes: g.chunk_sizes,
        interrupt: Some(interrupt.clone()),
        ..Default::default()
    };
    if let Some(scan) = g.scan {
        scan_totals(scan, observer.clone());
    }
    archive(repo, g.entries, &opts, observer)
}

/// Back up what was generated outside the source's own `backup` (the base of a generation of
/// continuous replication) as a snapshot of `src`, under a shared lock, with the same run
/// record and audit event as any backup of the source.
pub fn generated(
    session: &Session,
    repo: &Repository,
    src: &SourceConfig,
    g: Generated,
    tags: &[String],
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<BackupStats> {
    let _lock = session.lock(repo, false)?;
    let run = runs::begin(repo, session, RunKind::Backup, Some(&src.name), observer.as_ref());
    let req = SourcesRequest { tags: tags.to_vec(), force: true };
    let result = archive_generated(repo, &[], src, &req, g, interrupt, observer);
    record(repo, session, run, &result, None, observer.as_ref());
    result
}

/// Run the engine with progress events.
fn archive(
    repo: &Repository,
    entries: Box<dyn Iterator<Item = Entry>>,
    opts: &BackupOptions,
    observer: &Arc<Observer>,
) -> Result<BackupStats> {
    let counters = Arc::new(lifeboat_repository::archiver::Progress::default());
    let ticker = Ticker::counters(counters.clone(), observer.clone());
    let opts = BackupOptions { progress: Some(counters), ..opts.clone() };
    let r = run_backup(repo, entries, &opts);
    ticker.stop();
    Ok(r?)
}

/// Copy the snapshots just made to every `[[copy]]` destination with `after_backup = true`; a
/// failed copy fails the run but keeps the snapshots.
fn copy_after_backup(
    session: &Session,
    cfg: &Config,
    repo: &Repository,
    new: &[SnapshotEntry],
    report: &mut SourcesReport,
    interrupt: &Arc<AtomicBool>,
    observer: &Observer,
) {
    let mut copied_to = Vec::new();
    for c in cfg.copies.iter().filter(|c| c.after_backup) {
        let opts = lifeboat_repository::copy::CopyOptions { dry_run: false, interrupt: Some(interrupt.clone()) };
        let result = Destination::from_section(session, c)
            .and_then(|dest| copy::copy_to(session, repo, &dest, false, new, &opts, observer));
        match result {
            Ok(stats) => {
                report.copies.push((c.label().to_string(), stats));
                copied_to.push(c.label().to_string());
            }
            Err(e) => {
                report.copy_failures.push(CopyFailure { destination: c.label().to_string(), error: one_line(&e) })
            }
        }
    }
    for s in report.sources.iter_mut().filter(|s| s.result.is_ok()) {
        s.copied_to = copied_to.clone();
    }
}

/// A backup of paths given directly (no config source).
#[derive(Clone, Debug, Default)]
pub struct PathsRequest {
    /// Files and directories.
    pub paths: Vec<PathBuf>,
    /// Exclude globs.
    pub excludes: Vec<String>,
    /// Stay on one file system.
    pub one_file_system: bool,
    /// Tags.
    pub tags: Vec<String>,
    /// Host name to record (default: this host).
    pub host: Option<String>,
    /// Parent snapshot reference (default: the latest with the same host and paths).
    pub parent: Option<String>,
    /// Read every file, even unchanged ones.
    pub force: bool,
}

/// Back up paths into one snapshot. Emits [`Event::Totals`] once a second walk of the paths
/// (on its own thread) knows their size, and [`Event::Progress`] while the backup runs.
pub fn paths(
    session: &Session,
    req: &PathsRequest,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<BackupStats> {
    if session.as_of.is_some() {
        return Err(ServiceError::msg(
            "--as-of gives a read-only view of the past: back up into the live repository (without --as-of)",
        ));
    }
    let opts =
        FilesOptions { paths: req.paths.clone(), excludes: req.excludes.clone(), one_file_system: req.one_file_system };
    // The walk starts at once: it reads metadata while the repository opens and the parent's
    // trees load.
    let (paths, walker) = walk(&opts)?;
    let walker = walker.read_ahead();
    let repo = session.open()?;
    let _lock = session.lock(&repo, false)?;
    let host = req.host.clone().unwrap_or_else(util::hostname);
    let parent = match (&req.parent, req.force) {
        (_, true) => None,
        (Some(p), false) => Some(snapshots::find(&repo, p, &Default::default())?.id),
        (None, false) => snapshots::find_parent(&repo, &host, &paths, None)?,
    };
    if !session.no_totals {
        scan_totals(opts, observer.clone());
    }
    let run = runs::begin(&repo, session, RunKind::Backup, None, observer.as_ref());
    let bopts = BackupOptions {
        paths,
        tags: req.tags.clone(),
        hostname: Some(host),
        excludes: req.excludes.clone(),
        parent,
        interrupt: Some(interrupt.clone()),
        ..Default::default()
    };
    let result = archive(&repo, Box::new(walker), &bopts, observer);
    record(&repo, session, run, &result, None, observer.as_ref());
    result
}

/// Walk the paths a second time on a thread, summing file sizes, and report the totals (what
/// restic's scanner does): the front end can then show a percentage and an ETA.
fn scan_totals(opts: FilesOptions, observer: Arc<Observer>) {
    std::thread::spawn(move || {
        let Ok(walker) = lifeboat_sources::files::walk_sizes(&opts) else { return };
        let (mut files, mut bytes) = (0u64, 0u64);
        for e in walker {
            if let Entry::File { node, .. } = e {
                files += 1;
                bytes += node.size;
            }
        }
        observer(&Event::Totals { files, bytes });
    });
}
