//! `lifeboat report`: what happened to the backups over a period (a week, a month, since a
//! time), per source — backups that succeeded and failed, RPO compliance, sizes and growth,
//! deduplication and storage, verifications, drills with their measured RTO, probes — as one
//! plain [`Report`] that front ends print as a table ([`text_lines`]), as JSON, or as one
//! self-contained HTML file ([`html::render`]).
//!
//! **RPO compliance** of a source is the fraction of the period during which the age of its
//! newest successful backup was within its `rpo`. Each successful backup at time `t` (a snapshot
//! of the source, or a successful backup run whose snapshot was forgotten since) covers
//! `[t, t + rpo]`; compliance is the length of the union of those intervals inside the period
//! divided by the period's length, in percent. Time before a source's first backup counts as
//! not covered. A source without an `rpo` has none.

pub mod html;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use lifeboat_format::Id;
use lifeboat_ops::probe::{ProbeStatus, Sample};
use lifeboat_ops::records::{self, DrillSummary, Outcome, Run, RunKind, RunOutcome, Verification};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use serde::Serialize;

use crate::error::{Result, ServiceError};
use crate::human;
use crate::session::Session;

/// The period a report covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    /// Start (inclusive).
    pub from: DateTime<Utc>,
    /// End (the time of the report).
    pub to: DateTime<Utc>,
    /// In words: `last 7 days`, `since 2026-11-01 00:00 UTC`.
    pub label: String,
}

/// Which period the command line asked for.
#[derive(Clone, Debug, Default)]
pub struct PeriodSpec {
    /// The last 7 days.
    pub week: bool,
    /// The last 30 days.
    pub month: bool,
    /// Since this time (a duration ago such as `30d`, or a date).
    pub since: Option<String>,
}

impl PeriodSpec {
    /// The period ending at `now` (the last 7 days when nothing is asked); a usage error for
    /// more than one choice, an unreadable `--since` or one in the future.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Period> {
        let chosen = [self.week, self.month, self.since.is_some()].iter().filter(|b| **b).count();
        if chosen > 1 {
            return Err(ServiceError::usage("choose one period: --week, --month or --since TIME"));
        }
        if self.month {
            return Ok(Period { from: now - Duration::days(30), to: now, label: "last 30 days".into() });
        }
        let Some(text) = &self.since else {
            return Ok(Period { from: now - Duration::days(7), to: now, label: "last 7 days".into() });
        };
        let from =
            lifeboat_ops::duration::parse_time(text, now).map_err(|e| ServiceError::usage(format!("--since: {e}")))?;
        if from >= now {
            return Err(ServiceError::usage(format!("--since: {text:?} is not in the past")));
        }
        let relative = lifeboat_ops::duration::parse(text).is_ok();
        let label = if relative {
            format!("last {}", text.trim())
        } else {
            format!("since {}", from.format("%Y-%m-%d %H:%M UTC"))
        };
        Ok(Period { from, to: now, label })
    }
}

/// What to report on.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The period.
    pub period: PeriodSpec,
    /// Only these sources (default: every config source, and any other source with snapshots).
    pub sources: Vec<String>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// When it was made (the end of the period).
    pub generated: DateTime<Utc>,
    /// The period.
    pub period: Period,
    /// The host that made it.
    pub host: String,
    /// The repository, without credentials or query.
    pub repository: String,
    /// Totals over the sources.
    pub summary: Summary,
    /// Per source, config order first.
    pub sources: Vec<SourceReport>,
    /// The repository's storage.
    pub storage: Storage,
    /// Verifications made in the period, oldest first.
    pub verifications: Vec<Verification>,
    /// Drills made in the period, oldest first.
    pub drills: Vec<DrillSummary>,
    /// The config's probes with their samples in the period.
    pub probes: Vec<ProbeReport>,
    /// The HTML file written (by [`make`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html_file: Option<String>,
}

/// Totals over the reported sources.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Sources reported.
    pub sources: usize,
    /// Backup runs that succeeded.
    pub backups_ok: usize,
    /// Backup runs that finished with some files unreadable.
    pub backups_partial: usize,
    /// Backup runs that failed (a run whose process died counts as failed).
    pub backups_failed: usize,
    /// The mean RPO compliance of the sources that have an `rpo`, percent.
    pub rpo_compliance_percent: Option<f64>,
    /// Sources with an `rpo` that were not covered for the whole period.
    pub sources_below_rpo: usize,
    /// Verifications that passed.
    pub verifications_ok: usize,
    /// Verifications that failed or were partial.
    pub verifications_failed: usize,
    /// Drills whose every source passed.
    pub drills_ok: usize,
    /// Drills with a failed or partial source.
    pub drills_failed: usize,
    /// Stored bytes added by the period's snapshots (after dedup and compression).
    pub added_bytes: u64,
}

/// A failed backup run.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// When it started.
    pub time: DateTime<Utc>,
    /// Why (one line).
    pub error: String,
}

/// The size of one snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct SizePoint {
    /// Snapshot id.
    pub snapshot: Id,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Size as backed up.
    pub bytes: u64,
    /// Stored bytes it added.
    pub added_bytes: u64,
}

/// A time the newest successful backup was older than the RPO.
#[derive(Clone, Debug, Serialize)]
pub struct Gap {
    /// Start of the breach.
    pub from: DateTime<Utc>,
    /// End of it (the next backup, or the end of the period).
    pub to: DateTime<Utc>,
    /// Length in seconds.
    pub seconds: f64,
}

/// A source's part in one drill.
#[derive(Clone, Debug, Serialize)]
pub struct DrillPart {
    /// When the drill finished.
    pub time: DateTime<Utc>,
    /// The source's result.
    pub outcome: Outcome,
    /// Measured recovery time, seconds.
    pub rto_seconds: f64,
    /// The objective, seconds.
    pub rto_target_seconds: Option<f64>,
    /// Whether the measured time was within the objective (`None` without one).
    pub within_rto: Option<bool>,
}

/// One source over the period.
#[derive(Clone, Debug, Serialize)]
pub struct SourceReport {
    /// Name.
    pub name: String,
    /// Kind (from the config, else from its snapshots).
    pub kind: String,
    /// Whether it is in the config file.
    pub configured: bool,
    /// RPO as written.
    pub rpo: Option<String>,
    /// RTO as written.
    pub rto: Option<String>,
    /// Backup runs that succeeded.
    pub backups_ok: usize,
    /// Backup runs that finished with some files unreadable.
    pub backups_partial: usize,
    /// Backup runs that failed.
    pub backups_failed: usize,
    /// The failed runs, newest first (at most 10).
    pub failures: Vec<Failure>,
    /// Percent of the period within the RPO (see the module documentation).
    pub rpo_compliance_percent: Option<f64>,
    /// The times outside the RPO, oldest first (at most 20).
    pub rpo_gaps: Vec<Gap>,
    /// Snapshots taken in the period and still kept.
    pub snapshots: usize,
    /// Size of the period's first snapshot as backed up.
    pub first_bytes: Option<u64>,
    /// Size of the period's last snapshot as backed up.
    pub last_bytes: Option<u64>,
    /// `last_bytes - first_bytes`.
    pub growth_bytes: Option<i64>,
    /// Stored bytes the period's snapshots added (after dedup and compression).
    pub added_bytes: u64,
    /// Stored bytes all its kept snapshots added when they were taken.
    pub stored_bytes: u64,
    /// Bytes backed up per byte stored, over all its kept snapshots.
    pub dedup_ratio: f64,
    /// The period's snapshots' sizes, oldest first.
    pub sizes: Vec<SizePoint>,
    /// Verifications that passed in the period.
    pub verifications_ok: usize,
    /// Verifications that failed in the period.
    pub verifications_failed: usize,
    /// Verifications that were partial in the period.
    pub verifications_partial: usize,
    /// The newest verification in the period.
    pub last_verification: Option<Verification>,
    /// Its part in the period's drills, oldest first.
    pub drills: Vec<DrillPart>,
}

/// The repository's storage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Storage {
    /// Bytes of all pack files.
    pub pack_bytes: u64,
    /// Bytes of everything else (index, snapshots, keys, records).
    pub metadata_bytes: u64,
    /// Plaintext bytes of all unique blobs.
    pub unique_bytes: u64,
    /// Stored bytes of all blobs.
    pub stored_bytes: u64,
    /// Sum of every kept snapshot's size as backed up.
    pub logical_bytes: u64,
    /// `logical_bytes / unique_bytes`.
    pub dedup_ratio: f64,
    /// `unique_bytes / stored_bytes`.
    pub compression_ratio: f64,
    /// Snapshots kept.
    pub snapshots: usize,
    /// Stored bytes added per day in the period, oldest first.
    pub growth: Vec<lifeboat_ops::usage::Growth>,
}

/// A probe over the period.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    /// Name.
    pub name: String,
    /// What the number counts.
    pub unit: Option<String>,
    /// Samples in the period.
    pub samples: usize,
    /// Samples graded warning.
    pub warnings: usize,
    /// Samples graded critical.
    pub criticals: usize,
    /// Samples without a value.
    pub unknown: usize,
    /// The smallest value.
    pub min: Option<f64>,
    /// The largest value.
    pub max: Option<f64>,
    /// The newest sample.
    pub last: Option<Sample>,
    /// Change per day (least squares).
    pub per_day: Option<f64>,
    /// Values over time, oldest first.
    pub history: Vec<(DateTime<Utc>, f64)>,
}

/// Make the report.
pub fn report(session: &Session, req: &Request) -> Result<Report> {
    let now = Utc::now();
    let period = req.period.resolve(now)?;
    let cfg = session.config()?;
    let repo = session.open()?;
    let (snaps, _) = snapshots::list(&repo)?;
    let usage = lifeboat_ops::usage::usage_of(&repo, &snaps)?;
    let runs = crate::runs::list_in(
        &repo,
        &crate::runs::RunFilter {
            kind: Some(RunKind::Backup),
            since: Some(period.from.to_rfc3339()),
            ..Default::default()
        },
    )?;
    let verifications = records::verifications(&repo)?;
    let drills = records::drills(&repo)?;
    let mut probes = Vec::new();
    if let Some(c) = &cfg {
        for p in &c.probes {
            let samples = lifeboat_ops::probe::samples(&repo, &p.name, Some(period.from))?;
            probes.push(probe_report(&p.name, p.unit.clone(), &samples));
        }
    }
    let mut wanted: Vec<Wanted> = Vec::new();
    if let Some(c) = &cfg {
        for s in c.sources() {
            wanted.push(Wanted {
                name: s.name.clone(),
                kind: s.kind().to_string(),
                configured: true,
                rpo: s.rpo.as_ref().map(|o| (o.text.clone(), o.duration)),
                rto: s.rto.as_ref().map(|o| o.text.clone()),
            });
        }
    }
    for s in &snaps {
        let Some(src) = &s.snapshot.source else { continue };
        if !wanted.iter().any(|w| w.name == src.name) {
            wanted.push(Wanted {
                name: src.name.clone(),
                kind: src.kind.clone(),
                configured: false,
                rpo: None,
                rto: None,
            });
        }
    }
    if !req.sources.is_empty() {
        for n in &req.sources {
            if !wanted.iter().any(|w| &w.name == n) {
                return Err(ServiceError::usage(format!("no source named {n:?} in the config or the repository")));
            }
        }
        wanted.retain(|w| req.sources.contains(&w.name));
    }
    let inputs = Inputs { snaps: &snaps, runs: &runs, verifications: &verifications, drills: &drills };
    let sources: Vec<SourceReport> = wanted.iter().map(|w| source_report(w, &inputs, &period)).collect();
    let in_period = |t: DateTime<Utc>| t >= period.from && t <= period.to;
    let names: HashSet<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    let verifications: Vec<Verification> = verifications
        .into_iter()
        .filter(|v| {
            in_period(v.time) && (req.sources.is_empty() || v.source.as_deref().is_some_and(|s| names.contains(s)))
        })
        .collect();
    let drills: Vec<DrillSummary> = drills
        .into_iter()
        .filter(|d| {
            in_period(d.time) && (req.sources.is_empty() || d.sources.iter().any(|s| names.contains(s.source.as_str())))
        })
        .collect();
    let from_day = period.from.with_timezone(&chrono::Local).format("%Y-%m-%d").to_string();
    let storage = Storage {
        pack_bytes: usage.pack_bytes,
        metadata_bytes: usage.metadata_bytes,
        unique_bytes: usage.unique_bytes,
        stored_bytes: usage.stored_bytes,
        logical_bytes: usage.logical_bytes,
        dedup_ratio: usage.dedup_ratio,
        compression_ratio: usage.compression_ratio,
        snapshots: usage.snapshots,
        growth: usage.growth.iter().filter(|g| g.day >= from_day).cloned().collect(),
    };
    let summary = summarize(&sources, &verifications, &drills);
    let repository = session.repo_url().map(|u| crate::overview::safe_location(&u)).unwrap_or_default();
    Ok(Report {
        generated: now,
        period,
        host: records::host(),
        repository,
        summary,
        sources,
        storage,
        verifications,
        drills,
        probes,
        html_file: None,
    })
}

/// What `lifeboat report` does: check that `html` can be written (before any work), make the
/// report, and write the HTML page there.
pub fn make(session: &Session, req: &Request, html: Option<&Path>) -> Result<Report> {
    if let Some(path) = html {
        check_html_path(path)?;
    }
    let mut r = report(session, req)?;
    if let Some(path) = html {
        write_html(&r, path)?;
        r.html_file = Some(path.display().to_string());
    }
    Ok(r)
}

struct Wanted {
    name: String,
    kind: String,
    configured: bool,
    rpo: Option<(String, std::time::Duration)>,
    rto: Option<String>,
}

struct Inputs<'a> {
    snaps: &'a [SnapshotEntry],
    runs: &'a [Run],
    verifications: &'a [Verification],
    drills: &'a [DrillSummary],
}

fn source_report(w: &Wanted, inp: &Inputs<'_>, period: &Period) -> SourceReport {
    let in_period = |t: DateTime<Utc>| t >= period.from && t <= period.to;
    let own: Vec<&SnapshotEntry> =
        inp.snaps.iter().filter(|s| s.snapshot.source.as_ref().is_some_and(|x| x.name == w.name)).collect();
    let ids: HashSet<Id> = own.iter().map(|s| s.id).collect();
    let runs: Vec<&Run> =
        inp.runs.iter().filter(|r| r.source.as_deref() == Some(w.name.as_str()) && in_period(r.started)).collect();
    let count = |o: RunOutcome| runs.iter().filter(|r| r.outcome == o).count();
    let failures = runs
        .iter()
        .rev()
        .filter(|r| r.outcome == RunOutcome::Failed)
        .take(10)
        .map(|r| Failure { time: r.started, error: r.error.clone().unwrap_or_default() })
        .collect();
    // Successful backups: the kept snapshots, and successful runs whose snapshot is gone.
    let mut times: Vec<DateTime<Utc>> = own.iter().map(|s| s.snapshot.time).collect();
    for r in &runs {
        let done = matches!(r.outcome, RunOutcome::Ok | RunOutcome::Partial);
        if done && r.snapshot.is_some_and(|id| !ids.contains(&id)) {
            times.push(r.started);
        }
    }
    let (rpo_compliance_percent, rpo_gaps) = match &w.rpo {
        Some((_, rpo)) => {
            let rpo = Duration::from_std(*rpo).unwrap_or(Duration::MAX);
            let (pct, gaps) = rpo_compliance(&times, rpo, period.from, period.to);
            (Some(pct), gaps.into_iter().take(20).collect())
        }
        None => (None, Vec::new()),
    };
    let sizes: Vec<SizePoint> = own
        .iter()
        .filter(|s| in_period(s.snapshot.time))
        .map(|s| {
            let (bytes, added) =
                s.snapshot.summary.as_ref().map(|x| (x.total_bytes_processed, x.data_added_packed)).unwrap_or_default();
            SizePoint { snapshot: s.id, time: s.snapshot.time, bytes, added_bytes: added }
        })
        .collect();
    let (mut logical, mut stored) = (0u64, 0u64);
    for s in &own {
        if let Some(x) = &s.snapshot.summary {
            logical += x.total_bytes_processed;
            stored += x.data_added_packed;
        }
    }
    let first_bytes = sizes.first().map(|s| s.bytes);
    let last_bytes = sizes.last().map(|s| s.bytes);
    let verifs: Vec<&Verification> = inp
        .verifications
        .iter()
        .filter(|v| in_period(v.time))
        .filter(|v| v.source.as_deref().map_or_else(|| ids.contains(&v.snapshot), |s| s == w.name))
        .collect();
    let vcount = |o: Outcome| verifs.iter().filter(|v| v.outcome == o).count();
    let drills = inp
        .drills
        .iter()
        .filter(|d| in_period(d.time))
        .filter_map(|d| {
            let part = d.sources.iter().find(|s| s.source == w.name)?;
            Some(DrillPart {
                time: d.time,
                outcome: part.outcome,
                rto_seconds: part.rto_seconds,
                rto_target_seconds: part.rto_target_seconds,
                within_rto: part.rto_target_seconds.map(|t| part.rto_seconds <= t),
            })
        })
        .collect();
    SourceReport {
        name: w.name.clone(),
        kind: w.kind.clone(),
        configured: w.configured,
        rpo: w.rpo.as_ref().map(|r| r.0.clone()),
        rto: w.rto.clone(),
        backups_ok: count(RunOutcome::Ok),
        backups_partial: count(RunOutcome::Partial),
        backups_failed: count(RunOutcome::Failed),
        failures,
        rpo_compliance_percent,
        rpo_gaps,
        snapshots: sizes.len(),
        first_bytes,
        last_bytes,
        growth_bytes: first_bytes.zip(last_bytes).map(|(a, b)| b as i64 - a as i64),
        added_bytes: sizes.iter().map(|s| s.added_bytes).sum(),
        stored_bytes: stored,
        dedup_ratio: if stored == 0 { 0.0 } else { logical as f64 / stored as f64 },
        sizes,
        verifications_ok: vcount(Outcome::Ok),
        verifications_failed: vcount(Outcome::Failed),
        verifications_partial: vcount(Outcome::Partial),
        last_verification: verifs.last().map(|v| (*v).clone()),
        drills,
    }
}

/// RPO compliance over `[from, to]` of successful backups at `times` (any order, any time):
/// the percentage of the period during which the newest backup was at most `rpo` old, and the
/// gaps when it was older (see the module documentation).
pub fn rpo_compliance(
    times: &[DateTime<Utc>],
    rpo: Duration,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (f64, Vec<Gap>) {
    if to <= from {
        return (100.0, Vec::new());
    }
    let mut sorted: Vec<DateTime<Utc>> = times.iter().copied().filter(|t| *t <= to).collect();
    sorted.sort();
    let mut gaps = Vec::new();
    let mut covered_until = from;
    let mut covered = Duration::zero();
    for t in sorted {
        let end = t.checked_add_signed(rpo).unwrap_or(DateTime::<Utc>::MAX_UTC).min(to);
        if end <= covered_until {
            continue;
        }
        let start = t.max(covered_until);
        if start > covered_until {
            gaps.push(gap(covered_until, start));
        }
        covered += end - start;
        covered_until = end;
    }
    if covered_until < to {
        gaps.push(gap(covered_until, to));
    }
    let total = (to - from).num_milliseconds() as f64;
    let pct = (covered.num_milliseconds() as f64 / total * 100.0).clamp(0.0, 100.0);
    (pct, gaps)
}

fn gap(from: DateTime<Utc>, to: DateTime<Utc>) -> Gap {
    Gap { from, to, seconds: (to - from).num_milliseconds() as f64 / 1000.0 }
}

fn probe_report(name: &str, unit: Option<String>, samples: &[Sample]) -> ProbeReport {
    let values: Vec<f64> = samples.iter().filter_map(|s| s.value).collect();
    let status = |st: ProbeStatus| samples.iter().filter(|s| s.status == st).count();
    ProbeReport {
        name: name.to_string(),
        unit,
        samples: samples.len(),
        warnings: status(ProbeStatus::Warning),
        criticals: status(ProbeStatus::Critical),
        unknown: status(ProbeStatus::Unknown),
        min: values.iter().copied().reduce(f64::min),
        max: values.iter().copied().reduce(f64::max),
        last: samples.last().cloned(),
        per_day: lifeboat_ops::probe::burn_per_day(samples),
        history: samples.iter().filter_map(|s| s.value.map(|v| (s.time, v))).collect(),
    }
}

fn summarize(sources: &[SourceReport], verifications: &[Verification], drills: &[DrillSummary]) -> Summary {
    let with_rpo: Vec<f64> = sources.iter().filter_map(|s| s.rpo_compliance_percent).collect();
    Summary {
        sources: sources.len(),
        backups_ok: sources.iter().map(|s| s.backups_ok).sum(),
        backups_partial: sources.iter().map(|s| s.backups_partial).sum(),
        backups_failed: sources.iter().map(|s| s.backups_failed).sum(),
        rpo_compliance_percent: (!with_rpo.is_empty()).then(|| with_rpo.iter().sum::<f64>() / with_rpo.len() as f64),
        sources_below_rpo: with_rpo.iter().filter(|p| **p < 100.0).count(),
        verifications_ok: verifications.iter().filter(|v| v.outcome == Outcome::Ok).count(),
        verifications_failed: verifications.iter().filter(|v| v.outcome != Outcome::Ok).count(),
        drills_ok: drills.iter().filter(|d| d.outcome == Outcome::Ok).count(),
        drills_failed: drills.iter().filter(|d| d.outcome != Outcome::Ok).count(),
        added_bytes: sources.iter().map(|s| s.added_bytes).sum(),
    }
}

/// A percentage for people: `100 %`, `99.7 %`, `-`.
pub fn percent(p: Option<f64>) -> String {
    match p {
        None => "-".into(),
        Some(p) if p > 0.0 && p < 0.05 => "<0.1 %".into(),
        Some(p) if (99.95..100.0).contains(&p) => "99.9 %".into(),
        Some(p) if (p - p.round()).abs() < 0.05 => format!("{:.0} %", p.round()),
        Some(p) => format!("{p:.1} %"),
    }
}

fn signed_size(b: i64) -> String {
    let s = human::size(b.unsigned_abs());
    if b < 0 {
        format!("-{s}")
    } else {
        format!("+{s}")
    }
}

/// Seconds for people: `40 ms`, `4.2s` under 10 seconds, else `2m 5s`-style.
fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s.max(0.0) * 1000.0)
    } else if s < 10.0 {
        format!("{s:.1}s")
    } else {
        lifeboat_ops::health::short_duration(s.round() as u64)
    }
}

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Failed => "failed",
        Outcome::Partial => "partial",
    }
}

/// The size column: `first → last (+growth)`.
pub fn size_text(s: &SourceReport) -> String {
    match (s.first_bytes, s.last_bytes, s.growth_bytes) {
        (Some(a), Some(b), Some(g)) if s.snapshots > 1 => {
            format!("{} → {} ({})", human::size(a), human::size(b), signed_size(g))
        }
        (_, Some(b), _) => human::size(b),
        _ => "-".into(),
    }
}

/// The drill column: the newest drill's outcome and measured RTO against the objective.
pub fn drill_text(s: &SourceReport) -> String {
    let Some(d) = s.drills.last() else { return "-".into() };
    let target = d.rto_target_seconds.map(|t| format!(" / {}", secs(t))).unwrap_or_default();
    format!("{} {}{target}", outcome(d.outcome), secs(d.rto_seconds))
}

/// The verification column: passed / failed.
pub fn verification_text(s: &SourceReport) -> String {
    let n = s.verifications_ok + s.verifications_failed + s.verifications_partial;
    if n == 0 {
        return "-".into();
    }
    let bad = s.verifications_failed + s.verifications_partial;
    if bad == 0 {
        format!("{n} ok")
    } else {
        format!("{} ok, {bad} failed", s.verifications_ok)
    }
}

/// The report as a table for people.
pub fn text_lines(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let p = &r.period;
    out.push(format!(
        "Lifeboat report, {} ({} to {}), repository {}",
        p.label,
        p.from.format("%Y-%m-%d %H:%M"),
        p.to.format("%Y-%m-%d %H:%M UTC"),
        r.repository
    ));
    let s = &r.summary;
    out.push(format!(
        "backups: {} ok, {} partial, {} failed; RPO compliance {} ({} of {} sources below 100 %); verifications {} ok, {} failed; drills {} ok, {} failed",
        s.backups_ok,
        s.backups_partial,
        s.backups_failed,
        percent(s.rpo_compliance_percent),
        s.sources_below_rpo,
        r.sources.iter().filter(|x| x.rpo_compliance_percent.is_some()).count(),
        s.verifications_ok,
        s.verifications_failed,
        s.drills_ok,
        s.drills_failed
    ));
    out.push(String::new());
    let w = r.sources.iter().map(|x| x.name.len()).max().unwrap_or(6).max(6);
    let rows: Vec<[String; 9]> = r
        .sources
        .iter()
        .map(|x| {
            [
                x.name.clone(),
                x.kind.clone(),
                format!("{}/{}", x.backups_ok + x.backups_partial, x.backups_failed),
                x.rpo.clone().unwrap_or_else(|| "-".into()),
                percent(x.rpo_compliance_percent),
                size_text(x),
                human::size(x.added_bytes),
                if x.dedup_ratio > 0.0 { format!("{:.1}×", x.dedup_ratio) } else { "-".into() },
                format!("{}; drill {}", verification_text(x), drill_text(x)),
            ]
        })
        .collect();
    let head =
        ["SOURCE", "KIND", "OK/FAILED", "RPO", "IN RPO", "SIZE", "ADDED", "DEDUP", "VERIFIED; DRILL (RTO / TARGET)"];
    let mut widths = [w, 8, 9, 5, 6, 4, 5, 5, 0];
    for row in &rows {
        for (i, c) in row.iter().enumerate().take(8) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == cells.len() - 1 {
                l.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count());
                l.push_str(c);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        l.trim_end().to_string()
    };
    out.push(line(&head.map(String::from)));
    for row in &rows {
        out.push(line(row));
    }
    for x in &r.sources {
        for f in &x.failures {
            out.push(format!("  {} failed {}: {}", x.name, f.time.format("%Y-%m-%d %H:%M UTC"), f.error));
        }
    }
    out.push(String::new());
    let st = &r.storage;
    out.push(format!(
        "storage: {} in packs for {} backed up in {} snapshots (dedup {:.1}×, compression {:.1}×); {} added in the period",
        human::size(st.pack_bytes),
        human::size(st.logical_bytes),
        st.snapshots,
        st.dedup_ratio,
        st.compression_ratio,
        human::size(s.added_bytes)
    ));
    for d in &r.drills {
        let parts: Vec<String> = d
            .sources
            .iter()
            .map(|x| {
                let target = x.rto_target_seconds.map(|t| format!(" / {}", secs(t))).unwrap_or_default();
                format!("{} {} {}{target}", x.source, outcome(x.outcome), secs(x.rto_seconds))
            })
            .collect();
        out.push(format!(
            "drill {}: {} ({})",
            d.time.format("%Y-%m-%d %H:%M UTC"),
            outcome(d.outcome),
            parts.join(", ")
        ));
    }
    for pr in &r.probes {
        let unit = pr.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
        let num = |v: Option<f64>| v.map(crate::probe::human_number).unwrap_or_else(|| "-".into());
        let trend = pr.per_day.map(|d| format!(", {}{unit}/day", crate::probe::human_number(d))).unwrap_or_default();
        out.push(format!(
            "probe {}: {} samples, last {}{unit} ({}), min {}, max {}{trend}; {} warning, {} critical",
            pr.name,
            pr.samples,
            num(pr.last.as_ref().and_then(|l| l.value)),
            pr.last.as_ref().map(|l| l.status.label()).unwrap_or("-"),
            num(pr.min),
            num(pr.max),
            pr.warnings,
            pr.criticals
        ));
    }
    if let Some(f) = &r.html_file {
        out.push(format!("wrote {f}"));
    }
    out
}

/// Write the HTML report to `path`; a path that cannot be written is a usage error (the
/// command line named it).
pub fn write_html(r: &Report, path: &Path) -> Result<()> {
    let text = html::render(r);
    std::fs::write(path, text).map_err(|e| ServiceError::usage(format!("--html {}: {e}", path.display())))
}

/// Check before any work that `path` can be written (its directory exists and is writable, and
/// it is not a directory): a usage error naming it otherwise.
pub fn check_html_path(path: &Path) -> Result<()> {
    let bad = |why: String| ServiceError::usage(format!("--html {}: {why}", path.display()));
    if path.is_dir() {
        return Err(bad("is a directory".into()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(bad(format!("directory {} does not exist", dir.display())));
    }
    // Open for append without truncating: proves write access and leaves an existing file as it is.
    let existed = path.exists();
    match std::fs::OpenOptions::new().append(true).create(true).open(path) {
        Ok(_) => {
            if !existed {
                let _ = std::fs::remove_file(path);
            }
            Ok(())
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Group the period's per-day growth for charts: `(day, bytes)`.
pub fn growth_bars(r: &Report) -> Vec<(String, f64)> {
    let mut m: BTreeMap<String, f64> = BTreeMap::new();
    for g in &r.storage.growth {
        *m.entry(g.day.clone()).or_default() += g.added_bytes as f64;
    }
    m.into_iter().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    #[test]
    fn rpo_compliance_is_the_covered_share_of_the_period() {
        let (from, to) = (t(0), t(10));
        // RPO 2h; backups at -1h (covers 0..1), 3h (3..5), 4h (4..6): covered 1 + 3 = 4 of 10.
        let (p, gaps) = rpo_compliance(&[t(4), t(-1), t(3)], Duration::hours(2), from, to);
        assert!((p - 40.0).abs() < 1e-9, "{p}");
        let g: Vec<(DateTime<Utc>, DateTime<Utc>)> = gaps.iter().map(|g| (g.from, g.to)).collect();
        assert_eq!(g, vec![(t(1), t(3)), (t(6), t(10))]);
        // No backup at all: 0 %; one before the period that covers it all: 100 %.
        assert_eq!(rpo_compliance(&[], Duration::hours(2), from, to).0, 0.0);
        assert_eq!(rpo_compliance(&[t(-1)], Duration::hours(24), from, to).0, 100.0);
        // A backup after the period does not count.
        assert_eq!(rpo_compliance(&[t(11)], Duration::hours(24), from, to).0, 0.0);
    }

    #[test]
    fn periods_from_the_command_line() {
        let now = t(1000);
        let week = PeriodSpec::default().resolve(now).unwrap();
        assert_eq!((week.from, week.label.as_str()), (now - Duration::days(7), "last 7 days"));
        let m = PeriodSpec { month: true, ..Default::default() }.resolve(now).unwrap();
        assert_eq!(m.from, now - Duration::days(30));
        let s = PeriodSpec { since: Some("36h".into()), ..Default::default() }.resolve(now).unwrap();
        assert_eq!((s.from, s.label.as_str()), (now - Duration::hours(36), "last 36h"));
        for bad in [
            PeriodSpec { since: Some("xyz".into()), ..Default::default() },
            PeriodSpec { week: true, month: true, ..Default::default() },
            PeriodSpec { since: Some("2999-01-01".into()), ..Default::default() },
        ] {
            assert!(bad.resolve(now).unwrap_err().is_usage());
        }
    }

    #[test]
    fn percentages_read_well() {
        assert_eq!(percent(Some(100.0)), "100 %");
        assert_eq!(percent(Some(99.97)), "99.9 %");
        assert_eq!(percent(Some(40.0)), "40 %");
        assert_eq!(percent(Some(12.34)), "12.3 %");
        assert_eq!(percent(None), "-");
    }
}
