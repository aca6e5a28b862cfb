//! `restore --all`: whole-service recovery. Every configured source (or those named), in the
//! order their `after = [...]` gives, each from its newest snapshot to its `restore_target`, its
//! own live data, or a place of its own under `--target-root`; each with its hooks and
//! healthcheck; timed against its RTO; one summary at the end.
//!
//! Every plan is made first: a dry run stops there. A guarded restore (a `protected` source, or
//! one onto its own live data) needs `--force` and the source's name in `--confirm a,b`; when one
//! is not confirmed nothing at all is restored (exit 4). A plan that cannot be made (no
//! snapshot, no target for the kind, a non-empty target without `--overwrite`) stops the run
//! before anything is restored, and a failing source stops it before the next one (later ones
//! are `not started`), unless `--keep-going`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lifeboat_ops::records::HookRun;
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::RepoError;
use serde::Serialize;

use crate::config::SourceConfig;
use crate::error::{Result, ServiceError};
use crate::guard;
use crate::kinds::{PreparedRestore, RestoreRequest, RunContext};
use crate::progress::{Event, Observer};
use crate::session::{one_line, Session};

/// What `restore --all` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct AllRequest {
    /// Only these sources (default: every source of the config).
    pub sources: Vec<String>,
    /// Restore each source to a place of its own below this directory (databases: a database
    /// named `<source>_restored` on the source's server) instead of its configured target.
    pub target_root: Option<PathBuf>,
    /// Replace what is at the targets.
    pub overwrite: bool,
    /// Check the restored data against the manifest.
    pub verify: bool,
    /// Print the plans only.
    pub dry_run: bool,
    /// Go on after a source failed.
    pub keep_going: bool,
    /// Allow guarded restores (with each one's name in `confirm`).
    pub force: bool,
    /// The names of the guarded sources, confirming them.
    pub confirm: Vec<String>,
}

/// How a source's restore ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Dry run: the plan was made.
    Planned,
    /// Dry run: the plan was made, but a real run would fail (e.g. a non-empty target without
    /// `--overwrite`; the row's error says why).
    Blocked,
    /// Restored (and its hooks and healthcheck passed).
    Ok,
    /// It failed (or its plan could not be made).
    Failed,
    /// Guarded and not confirmed.
    Refused,
    /// Not started: an earlier source failed or was refused.
    NotStarted,
}

impl Status {
    /// `ok`, `failed`, `not started`, … for the table.
    pub fn word(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Blocked => "blocked",
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Refused => "refused",
            Status::NotStarted => "not started",
        }
    }
}

/// One source's row of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Source name.
    pub source: String,
    /// Kind.
    pub kind: String,
    /// The snapshot restored (full id).
    pub snapshot: Option<String>,
    /// When it was taken.
    pub snapshot_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Where it goes.
    pub target: Option<String>,
    /// Estimated size (bytes of backed-up data restored).
    pub bytes: u64,
    /// Why the restore is guarded, when it is.
    pub guarded: Option<String>,
    /// How long the restore took (with hooks and healthcheck).
    pub seconds: Option<f64>,
    /// The source's RTO as configured (`15m`).
    pub rto: Option<String>,
    /// The source's RTO in seconds.
    pub rto_seconds: Option<f64>,
    /// Whether it was within the RTO (`None`: no RTO, or not run).
    pub within_rto: Option<bool>,
    /// How it ended.
    pub status: Status,
    /// Why it failed, one line.
    pub error: Option<String>,
    /// The hooks that ran (and the healthcheck).
    pub hooks: Vec<HookRun>,
    /// The plan's lines for people (dry runs).
    #[serde(skip)]
    pub plan: Vec<String>,
    /// What blocks a real run (a dry run reports them without failing).
    #[serde(skip)]
    blocked: bool,
}

/// What `restore --all` did (or would do).
#[derive(Debug, Serialize)]
pub struct AllReport {
    /// Only planned.
    pub dry_run: bool,
    /// Refused: a guarded restore was not confirmed; nothing was restored.
    pub refused: bool,
    /// Every selected source, in restore order.
    pub sources: Vec<Row>,
}

impl AllReport {
    /// 0 every source ok (or planned, blocked ones too: a dry run only reports them), 1 a
    /// source failed or could not be planned, 4 refused.
    pub fn exit_code(&self) -> i32 {
        if self.refused {
            4
        } else if self.sources.iter().any(|r| r.status == Status::Failed) {
            1
        } else {
            0
        }
    }

    /// The summary table for people, then the refusal or the plans' details.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.dry_run {
            out.push(format!(
                "restore --all would restore {} in this order:",
                crate::human::count(self.sources.len(), "source")
            ));
        }
        out.push(format!(
            "{:<3} {:<18} {:<9} {:<9} {:>10} {:>8} {:>8}  {:<11} TARGET",
            "#", "SOURCE", "KIND", "SNAPSHOT", "SIZE", "SECONDS", "RTO", "STATUS"
        ));
        for (i, r) in self.sources.iter().enumerate() {
            let rto = match (&r.rto, r.within_rto) {
                (Some(t), Some(false)) => format!("{t} OVER"),
                (Some(t), _) => t.clone(),
                (None, _) => "-".into(),
            };
            out.push(format!(
                "{:<3} {:<18} {:<9} {:<9} {:>10} {:>8} {:>8}  {:<11} {}",
                i + 1,
                r.source,
                r.kind,
                r.snapshot.as_deref().map(|s| &s[..s.len().min(8)]).unwrap_or("-"),
                crate::human::size(r.bytes),
                r.seconds.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-".into()),
                rto,
                r.status.word(),
                r.target.as_deref().unwrap_or("-"),
            ));
        }
        for r in &self.sources {
            if let Some(g) = &r.guarded {
                out.push(format!("  {}: guarded because {g}", r.source));
            }
            for h in r.hooks.iter() {
                out.push(format!("  {}: hook {}", r.source, h.line()));
            }
            if let Some(e) = &r.error {
                out.push(format!("  {}: {e}", r.source));
            }
        }
        if self.dry_run {
            for r in self.sources.iter().filter(|r| !r.plan.is_empty()) {
                out.push(String::new());
                out.extend(r.plan.iter().cloned());
            }
        }
        out
    }

    /// The one-line refusal when guarded restores were not confirmed.
    pub fn refusal(&self) -> Option<String> {
        if !self.refused {
            return None;
        }
        let names: Vec<&str> =
            self.sources.iter().filter(|r| r.status == Status::Refused).map(|r| r.source.as_str()).collect();
        let why: Vec<String> = self
            .sources
            .iter()
            .filter(|r| r.status == Status::Refused)
            .map(|r| format!("{} ({})", r.source, r.guarded.as_deref().unwrap_or("guarded")))
            .collect();
        Some(format!(
            "refused: restore --all includes guarded restores: {}; nothing was changed; rerun with --force --confirm {}",
            why.join(", "),
            names.join(",")
        ))
    }
}

/// A planned source: its row, and the snapshot and request its restore needs.
struct Planned {
    row: Row,
    snap: Option<SnapshotEntry>,
    req: Option<RestoreRequest>,
}

/// Restore the sources `req` selects, in order (see the module doc).
pub fn restore_all(
    session: &Session,
    req: &AllRequest,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<AllReport> {
    let cfg = session.require_config("restore --all restores the sources of a config")?;
    let mut names = Vec::new();
    for n in &req.sources {
        let s = cfg.find(n).map_err(|e| ServiceError::usage(format!("--sources: {}", one_line(&e))))?;
        names.push(s);
    }
    let selected = if req.sources.is_empty() { cfg.select(&[], true)? } else { names };
    let order = cfg.restore_order(&selected);
    let repo = session.open()?;
    let _lock = session.lock_read_only(&repo, observer.as_ref())?;
    let (all, _) = snapshots::list(&repo)?;

    // The snapshot and target of each source.
    let mut rows = Vec::new();
    let (mut snaps, mut reqs) = (Vec::new(), Vec::new());
    for mut p in order.iter().map(|src| plan_source(src, &all, req)) {
        // A PostgreSQL base backup (pitr = true) restores to the end of its WAL archive.
        if let (Some(s), Some(r)) = (&p.snap, p.req.as_mut()) {
            if crate::restore::base_end(s).is_some() {
                r.pitr =
                    Some(crate::kinds::Pitr { at: None, txid: None, fetch: crate::restore::fetch_command(session)? });
            }
        }
        rows.push(p.row);
        snaps.push(p.snap);
        reqs.push(p.req);
    }
    // The plans (kept until the run: a prepared restore borrows its snapshot and request).
    let mut prepared: Vec<Option<PreparedRestore<'_>>> = Vec::new();
    for (((row, src), snap), r) in rows.iter_mut().zip(&order).zip(&snaps).zip(&reqs) {
        let (Some(snap), Some(r)) = (snap, r) else {
            prepared.push(None);
            continue;
        };
        match prepare(src, &repo, snap, r, &cfg) {
            Ok(pr) => {
                row.bytes = pr.plan.bytes;
                row.guarded = pr.plan.guarded.as_ref().map(guard::reasons);
                row.plan = pr.plan.lines();
                if !pr.plan.blockers.is_empty() {
                    row.status = Status::Failed;
                    row.error = Some(pr.plan.blockers.join("; "));
                    row.blocked = true;
                }
                prepared.push(Some(pr));
            }
            Err(e) => {
                row.status = Status::Failed;
                row.error = Some(one_line(&e));
                prepared.push(None);
            }
        }
    }
    if req.dry_run {
        for r in rows.iter_mut() {
            r.status = match (r.status, r.blocked) {
                (_, true) => Status::Blocked,
                (Status::Failed, false) => Status::Failed,
                _ => Status::Planned,
            };
        }
        return Ok(AllReport { dry_run: true, refused: false, sources: rows });
    }
    // The gate: every guarded restore confirmed, or nothing happens.
    let mut refused = false;
    for r in rows.iter_mut().filter(|r| r.guarded.is_some() && r.status != Status::Failed) {
        let typed = req.confirm.iter().find(|c| c.trim() == r.source).map(String::as_str);
        if guard::confirm(&r.source, req.force, typed).is_err() {
            r.status = Status::Refused;
            refused = true;
        }
    }
    let plan_failed = rows.iter().any(|r| r.status == Status::Failed);
    if refused || (plan_failed && !req.keep_going) {
        return Ok(AllReport { dry_run: false, refused, sources: rows });
    }
    let ctx = RunContext { interrupt: Some(interrupt.clone()), observer: observer.clone() };
    let mut stop = false;
    for ((row, pr), src) in rows.iter_mut().zip(prepared).zip(&order) {
        if stop || row.status == Status::Failed {
            continue;
        }
        let Some(pr) = pr else { continue };
        observer(&Event::Started {
            step: "restore",
            source: row.source.clone(),
            kind: row.kind.clone(),
            detail: format!("snapshot {} to {}", pr.plan.snapshot.short(), pr.plan.target),
        });
        let started = Instant::now();
        let (result, hooks) = crate::restore::run_hooked(&repo, session, Some(src), &pr.plan, pr.run, &ctx);
        if interrupt.load(Ordering::Relaxed) {
            return Err(RepoError::Interrupted.into());
        }
        let seconds = started.elapsed().as_secs_f64();
        row.seconds = Some(seconds);
        row.within_rto = row.rto_seconds.map(|t| seconds <= t);
        row.hooks = hooks;
        let error = match result {
            Err(e) => Some(one_line(&e)),
            Ok(r) => r.check().err().map(|e| one_line(&e)).or_else(|| {
                (!r.failed.is_empty()).then(|| format!("{} files not restored (damaged data)", r.failed.len()))
            }),
        };
        row.status = if error.is_some() { Status::Failed } else { Status::Ok };
        observer(&Event::Finished {
            step: "restore",
            source: row.source.clone(),
            ok: error.is_none(),
            seconds,
            detail: error.clone().unwrap_or_else(|| "restored".into()),
        });
        row.error = error;
        if row.status == Status::Failed && !req.keep_going {
            stop = true;
        }
    }
    Ok(AllReport { dry_run: false, refused: false, sources: rows })
}

/// The source's newest snapshot and its target.
fn plan_source(src: &SourceConfig, all: &[SnapshotEntry], req: &AllRequest) -> Planned {
    let mut row = Row {
        source: src.name.clone(),
        kind: src.kind().into(),
        snapshot: None,
        snapshot_time: None,
        target: None,
        bytes: 0,
        guarded: None,
        seconds: None,
        rto: src.rto.as_ref().map(|r| r.text.clone()),
        rto_seconds: src.rto.as_ref().map(|r| r.duration.as_secs_f64()),
        within_rto: None,
        status: Status::NotStarted,
        error: None,
        hooks: Vec::new(),
        plan: Vec::new(),
        blocked: false,
    };
    let snap = all.iter().rev().find(|s| s.snapshot.source.as_ref().is_some_and(|x| x.name == src.name)).cloned();
    let target = target_of(src, req);
    let fail = |row: &mut Row, e: String| {
        row.status = Status::Failed;
        row.error = Some(e);
    };
    match &snap {
        Some(s) => {
            row.snapshot = Some(s.id.to_hex());
            row.snapshot_time = Some(s.snapshot.time);
        }
        None => fail(&mut row, "no snapshot of this source to restore".into()),
    }
    let req = match target {
        Ok(t) => {
            row.target = Some(t.clone());
            Some(RestoreRequest {
                target: t.into(),
                overwrite: req.overwrite,
                verify: req.verify,
                ..Default::default()
            })
        }
        Err(e) => {
            if row.error.is_none() {
                fail(&mut row, e);
            }
            None
        }
    };
    Planned { row, snap, req }
}

/// Where the source goes: under `--target-root`, else its `restore_target`, else its live data.
fn target_of(src: &SourceConfig, req: &AllRequest) -> std::result::Result<String, String> {
    let name = &src.name;
    if let Some(root) = &req.target_root {
        return match src.source.whole_restore_target(name, Some(root)) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => {
                Err(format!("a {} source has no place under --target-root; leave it out with --sources", src.kind()))
            }
            Err(e) => Err(one_line(&e)),
        };
    }
    if let Some(t) = &src.restore_target {
        return crate::vars::substitute(t, &format!("source {name}: restore_target")).map_err(|e| one_line(&e));
    }
    match src.source.whole_restore_target(name, None) {
        Ok(Some(t)) => Ok(t),
        Ok(None) => {
            Err(format!("a {} source has no target of its own: set `restore_target` in its [[source]]", src.kind()))
        }
        Err(e) => Err(one_line(&e)),
    }
}

/// The kind's plan for the source, assessed by the guard.
fn prepare<'a>(
    src: &'a SourceConfig,
    repo: &'a lifeboat_repository::Repository,
    snap: &'a SnapshotEntry,
    req: &'a RestoreRequest,
    cfg: &crate::config::Config,
) -> Result<PreparedRestore<'a>> {
    let mut pr = src.source.prepare_restore(&src.name, repo, snap, req)?;
    guard::assess(Some(cfg), &mut pr.plan)?;
    Ok(pr)
}
