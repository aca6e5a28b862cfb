//! Run history: every backup, verification, restore test, drill, retention, copy and check —
//! whether the CLI or the daemon started it — is recorded in the repository (encrypted, under
//! `lifeboat/runs/`), with a start record first so that a run whose process was killed shows up
//! as failed rather than vanishing.

use chrono::{DateTime, Utc};
use lifeboat_ops::records::{self, Run, RunKind, RunOutcome};
use lifeboat_repository::Repository;

use crate::error::{Result, ServiceError};
use crate::progress::{Event, Observer};
use crate::session::{one_line, Session};

/// What a run that died says.
pub const DIED: &str = "the process ended before the run finished (killed, or the machine stopped)";

/// Start a run and record its start (a failure to record is a warning: the work still runs).
pub fn begin(repo: &Repository, session: &Session, kind: RunKind, source: Option<&str>, o: &Observer) -> Run {
    let run = Run::start(kind, source.map(String::from), &session.trigger);
    save(repo, &run, o);
    run
}

/// End a run with `outcome` (and `error` when it failed) and record it.
pub fn end(repo: &Repository, mut run: Run, outcome: RunOutcome, error: Option<String>, o: &Observer) -> Run {
    if let Some(e) = &error {
        run.say("error", e.clone());
    }
    run.error = error;
    run.finish(outcome);
    save(repo, &run, o);
    run
}

/// Record `run` as it stands (a warning, not an error, when it cannot be written).
pub fn save(repo: &Repository, run: &Run, o: &Observer) {
    if let Err(e) = records::record_run(repo, run) {
        o(&Event::Warning { message: format!("the run could not be recorded in the repository: {}", one_line(&e)) });
    }
}

/// Which runs to list.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Only this source's.
    pub source: Option<String>,
    /// Only failed ones.
    pub failed: bool,
    /// Only those that started at or after this time (`24h`, a date).
    pub since: Option<String>,
    /// Only this kind.
    pub kind: Option<RunKind>,
}

/// Runs, oldest first. A run that is still `running` on this host but whose process is gone is
/// shown as failed.
pub fn list(session: &Session, f: &RunFilter) -> Result<Vec<Run>> {
    let repo = session.open()?;
    list_in(&repo, f)
}

/// [`list`] on an open repository.
pub fn list_in(repo: &Repository, f: &RunFilter) -> Result<Vec<Run>> {
    let since = since(f.since.as_deref())?;
    let mut runs = records::runs(repo, since)?;
    for r in runs.iter_mut() {
        if r.outcome == RunOutcome::Running && is_dead(r) {
            r.outcome = RunOutcome::Failed;
            r.error = Some(DIED.into());
        }
    }
    runs.retain(|r| {
        f.source.as_ref().is_none_or(|s| r.source.as_ref() == Some(s))
            && (!f.failed || r.outcome == RunOutcome::Failed)
            && f.kind.is_none_or(|k| r.kind == k)
    });
    Ok(runs)
}

/// Record every run of this host whose process died as failed (the daemon does this when it
/// starts); returns those runs. Only runs without an end record are read.
pub fn reap(repo: &Repository, o: &Observer) -> Result<Vec<Run>> {
    let mut died = Vec::new();
    for r in records::unfinished_runs(repo)? {
        if r.outcome == RunOutcome::Running && is_dead(&r) {
            died.push(end(repo, r, RunOutcome::Failed, Some(DIED.into()), o));
        }
    }
    Ok(died)
}

/// A `running` run of this host whose process no longer exists (or is another program now).
pub fn is_dead(r: &Run) -> bool {
    if r.host != records::host() {
        return false;
    }
    if r.pid == std::process::id() {
        return false;
    }
    match std::fs::read(format!("/proc/{}/cmdline", r.pid)) {
        Ok(cmd) => !String::from_utf8_lossy(&cmd).contains("lifeboat"),
        Err(_) => true,
    }
}

fn since(text: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    text.map(|t| lifeboat_ops::duration::parse_time(t, Utc::now()))
        .transpose()
        .map_err(|e| ServiceError::usage(format!("--since: {e}")))
}

/// The kind named `backup`, `restore_test`, … (for filters).
pub fn kind_named(name: &str) -> Result<RunKind> {
    [
        RunKind::Backup,
        RunKind::Verify,
        RunKind::RestoreTest,
        RunKind::Drill,
        RunKind::ApplyRetention,
        RunKind::Copy,
        RunKind::Check,
        RunKind::Restore,
    ]
    .into_iter()
    .find(|k| k.name() == name)
    .ok_or_else(|| ServiceError::usage(format!("unknown run kind {name:?}")))
}

/// One line of `lifeboat logs`: a run's message.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LogLine {
    /// When it was said.
    pub time: DateTime<Utc>,
    /// `error`, `warning` or `info`.
    pub level: String,
    /// The run's id.
    pub run: String,
    /// The run's kind.
    pub kind: RunKind,
    /// The run's source.
    pub source: Option<String>,
    /// The text.
    pub message: String,
}

fn rank(level: &str) -> u8 {
    match level {
        "error" => 2,
        "warning" => 1,
        _ => 0,
    }
}

/// The messages of the runs `f` selects at `level` or worse, oldest first, the last `tail` when
/// given. A run that died has no messages of its own: its error is its message.
pub fn logs(session: &Session, f: &RunFilter, level: &str, tail: Option<usize>) -> Result<Vec<LogLine>> {
    let min = rank(level);
    let mut lines = Vec::new();
    for r in list(session, f)? {
        let line = |time, level: &str, message: &str| LogLine {
            time,
            level: level.into(),
            run: r.id.clone(),
            kind: r.kind,
            source: r.source.clone(),
            message: message.into(),
        };
        lines.extend(r.messages.iter().filter(|m| rank(&m.level) >= min).map(|m| line(m.time, &m.level, &m.text)));
        if r.outcome == RunOutcome::Failed && r.messages.is_empty() {
            if let Some(e) = &r.error {
                lines.push(line(r.started, "error", e));
            }
        }
    }
    lines.sort_by_key(|l| l.time);
    if let Some(n) = tail {
        lines.drain(..lines.len().saturating_sub(n));
    }
    Ok(lines)
}
