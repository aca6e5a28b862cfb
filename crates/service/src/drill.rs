//! Disaster-recovery drills: per config source, restore the latest snapshot into a scratch
//! target, verify it natively, measure the time to that verified restore against the source's
//! RTO, and write a signed report (JSON + one self-contained HTML page) into a directory and
//! into the repository.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::Utc;
use lifeboat_ops::drill::{self, html, sign, Report, SourceResult};
use lifeboat_ops::records::{self, Outcome, RunKind, RunOutcome, Verification};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::{RepoError, Repository};

use crate::config::{substitute, Config, SourceConfig};
use crate::error::{Context as _, Result, ServiceError};
use crate::progress::Observer;
use crate::session::Session;

/// What to drill.
#[derive(Clone, Debug, Default)]
pub struct DrillRequest {
    /// One source (default: every source of the config).
    pub source: Option<String>,
    /// A snapshot of that source instead of its latest.
    pub snapshot: Option<String>,
    /// Signing key file (else `[drill] signing_key`; none: unsigned).
    pub signing_key: Option<PathBuf>,
    /// Report directory (else `[drill] report_dir`/lifeboat-drill-TIME, else ./lifeboat-drill-TIME).
    pub report_dir: Option<PathBuf>,
    /// A random snapshot of each source instead of its newest (old snapshots must restore too).
    pub random: bool,
}

/// What a drill produced.
#[derive(Debug)]
pub struct Drilled {
    /// The report.
    pub report: Report,
    /// The signed report as stored.
    pub signed: sign::SignedReport,
    /// Whether it is signed.
    pub is_signed: bool,
    /// Where report.json and report.html were written.
    pub dir: PathBuf,
    /// Its name under `lifeboat/` in the repository.
    pub stored_as: String,
}

/// Run a drill.
pub fn drill(
    session: &Session,
    req: &DrillRequest,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<Drilled> {
    let cfg = session.require_config("a drill needs a config file (its sources and their RTOs)")?;
    let selected: Vec<&SourceConfig> = match &req.source {
        Some(s) => vec![cfg.find(s)?],
        None => cfg.select(&[], true)?,
    };
    let key = signing_key(req, &cfg)?;
    let repo = session.open_uncached()?;
    let _lock = session.lock(&repo, false)?;
    // A damaged snapshot file may be a source's newest: the drill stops instead of picking an older one.
    let all = snapshots::list_intact(&repo)?;
    let started = Utc::now();
    let mut results = Vec::new();
    for src in selected {
        if interrupt.load(Ordering::Relaxed) {
            return Err(RepoError::Interrupted.into());
        }
        let run = crate::runs::begin(&repo, session, RunKind::Drill, Some(&src.name), observer.as_ref());
        let result = one(&cfg, req, &repo, &all, src, observer.as_ref());
        let (outcome, error) = match &result {
            Ok(r) if r.outcome == Outcome::Ok => (RunOutcome::Ok, None),
            Ok(r) if r.outcome == Outcome::Partial => (RunOutcome::Partial, r.findings.first().cloned()),
            Ok(r) => {
                (RunOutcome::Failed, Some(r.findings.first().cloned().unwrap_or_else(|| "the drill failed".into())))
            }
            Err(e) => (RunOutcome::Failed, Some(crate::session::one_line(e))),
        };
        let details = serde_json::json!({ "outcome": outcome.name(), "error": error, "trigger": session.trigger });
        let snapshot = result.as_ref().ok().and_then(|r| r.snapshot.map(|id| id.to_hex()));
        let event = lifeboat_ops::audit::Event::new("drill", details).about(Some(&src.name), snapshot);
        crate::audit::record(&repo, Some(session), event, observer.as_ref());
        crate::runs::end(&repo, run, outcome, error, observer.as_ref());
        results.push(result?);
    }
    let report = Report::new(started, repo.config().id.clone(), results);
    let signed = sign::sign(&report, key.as_ref())?;
    let json = serde_json::to_vec_pretty(&signed)?;
    let page = html::render(&report, signed.signature.as_ref().map(|s| s.public_key.as_str()));
    let dir = report_dir(req, &cfg, &report);
    std::fs::create_dir_all(&dir)
        .map_err(|e| ServiceError::io(format!("cannot create the report directory {}", dir.display()), e))?;
    for (name, data) in [("report.json", json.as_slice()), ("report.html", page.as_bytes())] {
        let path = dir.join(name);
        std::fs::write(&path, data).map_err(|e| ServiceError::io(format!("cannot write {}", path.display()), e))?;
    }
    let stored = drill::store_report(&repo, &report.id, &json, &page)?;
    records::record_drill(&repo, &report.summary(Some(stored.clone())))?;
    // The report, then a checkpoint of the audit log signed with the drill's key.
    let details = serde_json::json!({ "report": stored, "outcome": report.outcome, "signed": key.is_some() });
    let event = lifeboat_ops::audit::Event::new("drill report", details);
    crate::audit::append(&repo, &event, key.as_ref(), true, observer.as_ref());
    Ok(Drilled { report, signed, is_signed: key.is_some(), dir, stored_as: format!("lifeboat/{stored}") })
}

/// Drill one source: its snapshot restored into scratch, verified, timed; recorded as a
/// verification of that snapshot too.
fn one(
    cfg: &Config,
    req: &DrillRequest,
    repo: &Repository,
    all: &[SnapshotEntry],
    src: &SourceConfig,
    observer: &Observer,
) -> Result<SourceResult> {
    let rto = src.rto.as_ref().map(|r| r.duration.as_secs_f64());
    let snap = match &req.snapshot {
        Some(id) => {
            let f = snapshots::Filter { source: Some(src.name.clone()), ..Default::default() };
            Some(snapshots::find(repo, id, &f).with_context(|| format!("source {}", src.name))?)
        }
        None => {
            let own: Vec<&SnapshotEntry> =
                all.iter().filter(|s| s.snapshot.source.as_ref().is_some_and(|x| x.name == src.name)).collect();
            let pick = if req.random && !own.is_empty() {
                let r = u64::from_le_bytes(lifeboat_crypto::random_bytes::<8>());
                own.get((r % own.len() as u64) as usize).copied()
            } else {
                own.last().copied()
            };
            pick.cloned()
        }
    };
    let Some(snap) = snap else {
        return Ok(SourceResult::failed(&src.name, src.kind(), "no snapshot of this source to restore".into(), rto));
    };
    let test = crate::verify::restore_test(Some(cfg), repo, &snap, observer);
    // A slow restore is still a good backup: the verification records the test's own outcome.
    let v = Verification {
        time: Utc::now(),
        host: records::host(),
        snapshot: snap.id,
        source: Some(src.name.clone()),
        checks: vec!["restore-test".into(), "drill".into()],
        outcome: test.outcome(),
        findings: test.problems.iter().chain(&test.skipped).cloned().collect(),
        duration_seconds: test.seconds,
        verify_command: test.verify_command.clone(),
    };
    let result = SourceResult::judge(&src.name, &snap, test, rto);
    records::record_verification(repo, &v)?;
    Ok(result)
}

/// The request's key, else `[drill] signing_key`; none means unsigned.
fn signing_key(req: &DrillRequest, cfg: &Config) -> Result<Option<sign::SigningKey>> {
    let path = match (&req.signing_key, cfg.drill.as_ref().and_then(|d| d.signing_key.as_deref())) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => PathBuf::from(substitute(p, "[drill] signing_key")?),
        (None, None) => return Ok(None),
    };
    Ok(Some(sign::read_signing_key(&path)?))
}

/// The request's directory, else `[drill] report_dir`/lifeboat-drill-TIME, else
/// ./lifeboat-drill-TIME; a second drill in the same second gets `-2`, `-3`, … instead of
/// overwriting the first one's report.
fn report_dir(req: &DrillRequest, cfg: &Config, r: &Report) -> PathBuf {
    let name = format!("lifeboat-drill-{}", r.time.format("%Y%m%dT%H%M%SZ"));
    let base = match (&req.report_dir, cfg.drill.as_ref().and_then(|d| d.report_dir.as_deref())) {
        (Some(d), _) => return d.clone(),
        (None, Some(parent)) => Path::new(parent).join(&name),
        (None, None) => PathBuf::from(&name),
    };
    unused(base)
}

/// `base`, or `base-2`, `base-3`, … whichever does not exist yet.
fn unused(base: PathBuf) -> PathBuf {
    if !base.exists() {
        return base;
    }
    (2..)
        .map(|n| {
            let mut s = base.clone().into_os_string();
            s.push(format!("-{n}"));
            PathBuf::from(s)
        })
        .find(|p| !p.exists())
        .unwrap_or(base)
}

/// `drill keygen`: write a new key pair (`out` and `out.pub`); returns the public key line.
pub fn keygen(out: &Path) -> Result<String> {
    Ok(sign::write_keypair(out)?)
}

/// `drill check-report`: check a report's signature and fields, optionally against a trusted
/// public key file.
pub fn check_report(file: &Path, public_key: Option<&Path>) -> Result<(sign::Check, serde_json::Value)> {
    let data = std::fs::read(file).map_err(|e| ServiceError::io(format!("cannot read {}", file.display()), e))?;
    let trusted = public_key.map(sign::read_public_key).transpose()?;
    let c = sign::check(&data, trusted.as_ref())?;
    let report = serde_json::from_slice::<serde_json::Value>(&data).map(|v| v["report"].clone()).unwrap_or_default();
    Ok((c, report))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_report_directory_in_the_same_second_does_not_overwrite_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("lifeboat-drill-20261203T101010Z");
        assert_eq!(unused(base.clone()), base);
        std::fs::create_dir(&base).unwrap();
        let second = unused(base.clone());
        assert_eq!(second, tmp.path().join("lifeboat-drill-20261203T101010Z-2"));
        std::fs::create_dir(&second).unwrap();
        assert_eq!(unused(base), tmp.path().join("lifeboat-drill-20261203T101010Z-3"));
    }
}
