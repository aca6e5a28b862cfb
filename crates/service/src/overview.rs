//! What the dashboard shows, gathered here so that the daemon's pages only render: the
//! overview of every source (graded like `health`), one source in detail (snapshots, size and
//! dedup trends, runs, verifications, drills, the restore command), drill reports with their
//! signature status, storage with the 3-2-1 rule, and probes (none exist yet).
//!
//! Everything but the drill report is computed from a [`Catalog`] held in memory, so a page
//! costs no repository read; the daemon refreshes the catalog in the background.

pub mod catalog;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use lifeboat_format::Id;
use lifeboat_ops::drill::sign;
use lifeboat_ops::health::{SourceHealth, Status, Thresholds};
use lifeboat_ops::records::{DrillSource, Run, RunKind, RunOutcome, Verification};
use lifeboat_ops::usage::Usage;
use serde::Serialize;

pub use catalog::Catalog;

use crate::config::{substitute, Config, SourceConfig};
use crate::error::{Result, ServiceError};
use crate::health::{assess, Records};
use crate::session::Session;

/// One source on the overview.
#[derive(Clone, Debug, Serialize)]
pub struct SourceRow {
    /// Name.
    pub name: String,
    /// Kind (`postgres`, `files`, …).
    pub kind: &'static str,
    /// Schedule as written (`None`: runs only when started).
    pub schedule: Option<String>,
    /// RPO as written.
    pub rpo: Option<String>,
    /// RTO as written.
    pub rto: Option<String>,
    /// The grades of `health` (backup against the RPO, verification, drill).
    pub health: SourceHealth,
    /// What is wrong, in words (empty when all is well).
    pub problems: Vec<String>,
    /// The newest finished backup run (to show a failure even while the RPO still holds).
    pub last_run: Option<Run>,
    /// When the daemon runs its backup next.
    pub next_run: Option<DateTime<Utc>>,
    /// Snapshots kept.
    pub snapshots: usize,
    /// Size of the newest snapshot as backed up.
    pub latest_bytes: Option<u64>,
    /// Stored bytes the kept snapshots added (after dedup and compression).
    pub stored_bytes: u64,
}

/// The overview page.
#[derive(Clone, Debug, Serialize)]
pub struct Overview {
    /// When it was computed.
    pub time: DateTime<Utc>,
    /// The worst status of the sources.
    pub status: Status,
    /// Every config source, in config order.
    pub sources: Vec<SourceRow>,
    /// Runs that failed in the last 24 hours, newest first.
    pub failures: Vec<Run>,
    /// Snapshots in the repository.
    pub snapshots: usize,
    /// When the records were last read from the repository.
    pub refreshed: Option<DateTime<Utc>>,
    /// Why the last read failed, if it did.
    pub error: Option<String>,
}

/// Per source: snapshots, newest logical size, stored bytes added.
fn sizes(cat: &Catalog) -> HashMap<&str, (usize, u64, u64)> {
    let mut m: HashMap<&str, (usize, u64, u64)> = HashMap::new();
    for s in &cat.snapshots {
        let Some(src) = &s.snapshot.source else { continue };
        let e = m.entry(src.name.as_str()).or_default();
        e.0 += 1;
        if let Some(sum) = &s.snapshot.summary {
            // Oldest first: the last one seen is the newest.
            e.1 = sum.total_bytes_processed;
            e.2 += sum.data_added_packed;
        }
    }
    m
}

fn rows(
    cfg: &Config,
    cat: &Catalog,
    selected: &[&SourceConfig],
    next: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<SourceRow> {
    let records = Records {
        snapshots: &cat.snapshots,
        verifications: &cat.verifications,
        drills: &cat.drills,
        runs: &cat.runs,
        wal: Some(&cat.wal),
    };
    let report = assess(selected, &records, now, &Thresholds::default());
    let sizes = sizes(cat);
    let mut last_runs: HashMap<&str, &Run> = HashMap::new();
    for r in cat.runs.iter().filter(|r| r.kind == RunKind::Backup && r.finished.is_some()) {
        if let Some(s) = &r.source {
            last_runs.insert(s.as_str(), r);
        }
    }
    report
        .sources
        .into_iter()
        .map(|r| {
            let src = cfg.find(&r.name).ok();
            let (snapshots, latest, stored) = sizes.get(r.name.as_str()).copied().unwrap_or_default();
            SourceRow {
                kind: r.kind,
                schedule: src.and_then(|s| s.schedule.as_ref()).map(|s| s.text()),
                rpo: r.rpo,
                rto: r.rto,
                problems: r.problems,
                last_run: last_runs.get(r.name.as_str()).map(|x| (*x).clone()),
                next_run: next.get(&format!("backup:{}", r.name)).copied(),
                snapshots,
                latest_bytes: (snapshots > 0).then_some(latest),
                stored_bytes: stored,
                health: r.health,
                name: r.name,
            }
        })
        .collect()
}

/// The overview: every config source with its grades, sizes and next run (`next` holds the
/// daemon's next run per job, `backup:NAME`), and the failures of the last 24 hours.
pub fn overview(cfg: &Config, cat: &Catalog, next: &BTreeMap<String, DateTime<Utc>>, now: DateTime<Utc>) -> Overview {
    let selected: Vec<&SourceConfig> = cfg.sources().collect();
    let sources = rows(cfg, cat, &selected, next, now);
    let day_ago = now - chrono::Duration::hours(24);
    let failures = cat
        .runs
        .iter()
        .rev()
        .take_while(|r| r.started >= day_ago)
        .filter(|r| r.outcome == RunOutcome::Failed)
        .cloned()
        .collect();
    Overview {
        time: now,
        status: sources.iter().map(|r| r.health.status).max().unwrap_or(Status::Ok),
        sources,
        failures,
        snapshots: cat.snapshots.len(),
        refreshed: cat.refreshed,
        error: cat.error.clone(),
    }
}

/// One snapshot on a source's timeline.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotPoint {
    /// Id.
    pub id: Id,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Size as backed up.
    pub logical_bytes: u64,
    /// Stored bytes it added.
    pub added_bytes: u64,
    /// Files in it.
    pub files: u64,
    /// Tags.
    pub tags: Vec<String>,
    /// Cumulative dedup ratio up to it: bytes backed up per byte stored.
    pub dedup_ratio: f64,
}

/// A drill that included a source.
#[derive(Clone, Debug, Serialize)]
pub struct DrillRow {
    /// When it finished.
    pub time: DateTime<Utc>,
    /// The stored report's id (for its page), if one was stored.
    pub report: Option<String>,
    /// The source's part in it (measured RTO, target, outcome, findings).
    pub part: DrillSource,
}

/// One source in detail.
#[derive(Clone, Debug, Serialize)]
pub struct SourceDetail {
    /// Its overview row.
    pub row: SourceRow,
    /// Snapshots, oldest first.
    pub snapshots: Vec<SnapshotPoint>,
    /// Its runs of every kind, newest first (at most 100).
    pub runs: Vec<Run>,
    /// Its verifications, newest first (at most 50).
    pub verifications: Vec<Verification>,
    /// Drills that included it, newest first (at most 50).
    pub drills: Vec<DrillRow>,
    /// The command that restores its newest snapshot.
    pub restore_command: String,
}

/// One source in detail; an error when the config has no source of that name.
pub fn source(
    cfg: &Config,
    cat: &Catalog,
    next: &BTreeMap<String, DateTime<Utc>>,
    name: &str,
    now: DateTime<Utc>,
) -> Result<SourceDetail> {
    let src = cfg.find(name)?;
    let row = rows(cfg, cat, &[src], next, now).into_iter().next().ok_or_else(|| ServiceError::msg("no row"))?;
    let (mut logical, mut stored) = (0u64, 0u64);
    let mut snapshots = Vec::new();
    for s in cat.snapshots.iter().filter(|s| s.snapshot.source.as_ref().is_some_and(|x| x.name == name)) {
        let sum = s.snapshot.summary.as_ref();
        let (l, a) = sum.map(|x| (x.total_bytes_processed, x.data_added_packed)).unwrap_or_default();
        logical += l;
        stored += a;
        snapshots.push(SnapshotPoint {
            id: s.id,
            time: s.snapshot.time,
            logical_bytes: l,
            added_bytes: a,
            files: sum.map(|x| x.total_files_processed).unwrap_or_default(),
            tags: s.snapshot.tags.clone(),
            dedup_ratio: if stored == 0 { 0.0 } else { logical as f64 / stored as f64 },
        });
    }
    let mine = |r: &&Run| r.source.as_deref() == Some(name);
    let runs = cat.runs.iter().rev().filter(mine).take(100).cloned().collect();
    let ids: Vec<Id> = snapshots.iter().map(|s| s.id).collect();
    let verifications = cat
        .verifications
        .iter()
        .rev()
        .filter(|v| v.source.as_deref().map_or_else(|| ids.contains(&v.snapshot), |s| s == name))
        .take(50)
        .cloned()
        .collect();
    let drills = cat
        .drills
        .iter()
        .rev()
        .filter_map(|d| {
            let part = d.sources.iter().find(|s| s.source == name)?;
            Some(DrillRow { time: d.time, report: d.report.as_deref().and_then(report_id), part: part.clone() })
        })
        .take(50)
        .collect();
    Ok(SourceDetail { restore_command: restore_command(cfg, src), row, snapshots, runs, verifications, drills })
}

/// `drill-reports/ID.json` → `ID`.
fn report_id(stored: &str) -> Option<String> {
    stored.strip_prefix("drill-reports/").and_then(|s| s.strip_suffix(".json")).map(String::from)
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_./:-=@%+,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The restore command for a source's newest snapshot, with an example target of its kind.
pub fn restore_command(cfg: &Config, src: &SourceConfig) -> String {
    let n = &src.name;
    let target = match src.kind() {
        "postgres" | "mariadb" => format!("{}_restored", n.replace(|c: char| !c.is_ascii_alphanumeric(), "_")),
        "sqlite" => format!("/tmp/{n}-restored.db"),
        "redis" => "redis://127.0.0.1:6379/15".into(),
        "nats" => format!("nats://127.0.0.1:4222/{n}-restored"),
        _ => format!("/tmp/restore-{n}"),
    };
    format!(
        "lifeboat --config {} restore latest --source {} --target {}",
        quote(&cfg.path.display().to_string()),
        quote(n),
        quote(&target)
    )
}

/// A drill on the drill page.
#[derive(Clone, Debug, Serialize)]
pub struct DrillListItem {
    /// When it finished.
    pub time: DateTime<Utc>,
    /// Its stored report's id, if one was stored.
    pub report: Option<String>,
    /// Overall outcome.
    pub outcome: lifeboat_ops::records::Outcome,
    /// Per source.
    pub sources: Vec<DrillSource>,
}

/// Every drill, newest first.
pub fn drills(cat: &Catalog) -> Vec<DrillListItem> {
    cat.drills
        .iter()
        .rev()
        .map(|d| DrillListItem {
            time: d.time,
            report: d.report.as_deref().and_then(report_id),
            outcome: d.outcome,
            sources: d.sources.clone(),
        })
        .collect()
}

/// A stored drill report and what checking its signature found.
#[derive(Clone, Debug, Serialize)]
pub struct DrillReportView {
    /// The report as stored (it may have been altered: see `check`).
    pub report: lifeboat_ops::drill::Report,
    /// Signature and field check.
    pub check: sign::Check,
    /// Whether the check was made against the config's `[drill] signing_key` (else only
    /// against the key embedded in the report).
    pub against_configured_key: bool,
}

/// Load a stored drill report by id and check its signature (against the configured signing
/// key's public half when there is one).
pub fn drill_report(session: &Session, id: &str) -> Result<DrillReportView> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') || id.contains("..") {
        return Err(ServiceError::usage(format!("not a drill report id: {id:?}")));
    }
    let cfg = session.config()?;
    let key = match cfg.as_ref().and_then(|c| c.drill.as_ref()).and_then(|d| d.signing_key.as_deref()) {
        Some(p) => {
            let path = substitute(p, "[drill] signing_key")?;
            Some(sign::read_signing_key(std::path::Path::new(&path))?.verifying_key())
        }
        None => None,
    };
    let repo = session.open()?;
    let data = lifeboat_ops::drill::load_stored(&repo, &format!("drill-reports/{id}.json"))?;
    let check = sign::check(&data, key.as_ref())?;
    let signed: sign::SignedReport = serde_json::from_slice(&data)?;
    let report = serde_json::from_value(signed.report)?;
    Ok(DrillReportView { report, check, against_configured_key: key.is_some() })
}

/// A `[[copy]]` destination.
#[derive(Clone, Debug, Serialize)]
pub struct CopyView {
    /// Its name (or URL).
    pub label: String,
    /// Where it is, without credentials or query.
    pub location: String,
    /// Start of the last successful copy to it.
    pub last_ok: Option<DateTime<Utc>>,
    /// The last copy run to it, if it failed after the last success.
    pub last_failure: Option<Run>,
}

/// The 3-2-1 rule: three copies of the data, on two kinds of storage, one off site.
#[derive(Clone, Debug, Serialize)]
pub struct ThreeTwoOne {
    /// Copies of the data: the live source, the repository and each `[[copy]]`.
    pub copies: usize,
    /// Kinds of storage among the repository and its copies (local disk, S3, REST, …).
    pub media: usize,
    /// Whether one of them is a remote store (taken as off site).
    pub offsite: bool,
    /// Whether all three hold.
    pub ok: bool,
}

/// The storage page.
#[derive(Clone, Debug, Serialize)]
pub struct StorageView {
    /// The repository, without credentials or query.
    pub repository: String,
    /// What it holds.
    pub usage: Option<Usage>,
    /// The copies.
    pub copies: Vec<CopyView>,
    /// The 3-2-1 status.
    pub rule: ThreeTwoOne,
}

/// A URL without `user:password@` and without its query string.
pub fn safe_location(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or_default();
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            if path.is_empty() {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => no_query.to_string(),
    }
}

fn medium(url: &str) -> &'static str {
    lifeboat_backend::url_scheme(url)
}

/// Storage, copies and the 3-2-1 status (`repo_url`: the repository's URL).
pub fn storage(cfg: &Config, cat: &Catalog, repo_url: &str) -> StorageView {
    let copies: Vec<CopyView> = cfg
        .copies
        .iter()
        .map(|c| {
            let label = c.label().to_string();
            let to_it =
                |r: &&Run| r.kind == RunKind::Copy && r.messages.iter().any(|m| m.text == format!("to {label}"));
            let last_ok = cat.runs.iter().rev().filter(to_it).find(|r| r.outcome == RunOutcome::Ok).map(|r| r.started);
            let last_failure = cat
                .runs
                .iter()
                .rev()
                .filter(to_it)
                .find(|r| r.finished.is_some())
                .filter(|r| r.outcome == RunOutcome::Failed)
                .cloned();
            CopyView { location: safe_location(&c.url), label, last_ok, last_failure }
        })
        .collect();
    let mut media: Vec<&str> =
        std::iter::once(medium(repo_url)).chain(cfg.copies.iter().map(|c| medium(&c.url))).collect();
    media.sort_unstable();
    media.dedup();
    let offsite = media.iter().any(|m| *m != "local");
    let n = 2 + copies.len();
    let rule = ThreeTwoOne { copies: n, media: media.len(), offsite, ok: n >= 3 && media.len() >= 2 && offsite };
    StorageView { repository: safe_location(repo_url), usage: cat.usage.clone(), copies, rule }
}

/// A probe and its history.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeView {
    /// Name.
    pub name: String,
    /// Grade of the newest value.
    pub status: Status,
    /// Newest value, with its unit.
    pub value: Option<String>,
    /// Values over time, oldest first.
    pub history: Vec<(DateTime<Utc>, f64)>,
}

/// The config's probes with their kept values of the last 30 days (read from the repository).
pub fn probes(session: &Session) -> Result<Vec<ProbeView>> {
    let cfg = session.require_config("probes are defined in the config file")?;
    if cfg.probes.is_empty() {
        return Ok(Vec::new());
    }
    let repo = session.open()?;
    let since = Utc::now() - chrono::Duration::days(30);
    let mut out = Vec::new();
    for p in &cfg.probes {
        let samples = lifeboat_ops::probe::samples(&repo, &p.name, Some(since))?;
        let last = samples.last();
        let status = match last.map(|s| s.status) {
            Some(lifeboat_ops::probe::ProbeStatus::Ok) => Status::Ok,
            Some(lifeboat_ops::probe::ProbeStatus::Critical) => Status::Critical,
            Some(_) => Status::Warning,
            None => Status::Warning,
        };
        let unit = p.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
        let value = last.map(|s| match s.value {
            Some(v) => format!("{}{unit}", crate::probe::human_number(v)),
            None => format!("no value: {}", s.message.as_deref().unwrap_or("")),
        });
        let history = samples.iter().filter_map(|s| Some((s.time, s.value?))).collect();
        out.push(ProbeView { name: p.name.clone(), status, value, history });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn locations_lose_credentials_and_queries() {
        assert_eq!(safe_location("s3://key:secret@host:9000/bucket/p?region=x&secret=y"), "s3://host:9000/bucket/p");
        assert_eq!(safe_location("/var/backups/repo"), "/var/backups/repo");
        assert_eq!(safe_location("file:///var/b"), "file:///var/b");
        assert_eq!(quote("a b'c"), r"'a b'\''c'");
        assert_eq!(quote("db-1"), "db-1");
    }
}
