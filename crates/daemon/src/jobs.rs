//! What the daemon runs and when: a backup job per source with a `schedule`, and the
//! repository jobs of `[jobs]`; next times in the configured time zone with jitter; catch-up of
//! runs missed while the daemon was down (once, not once per missed slot).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_ops::records::{Run, RunKind, RunOutcome};
use lifeboat_service::config::{Config, JobTable, Schedule, Zone};

/// What a job does.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// Back up one source.
    Backup(String),
    /// `apply-retention`.
    ApplyRetention,
    /// `check` (with `--read-data` when a share is asked for).
    Check {
        /// Share of packs to read back (0 = structure only), a different random part each run.
        read_data_percent: u8,
    },
    /// `verify` of the newest snapshot of each source.
    Verify {
        /// With a restore test.
        restore_test: bool,
        /// Only this source (the dashboard's "verify now").
        source: Option<String>,
    },
    /// `drill` of every source.
    Drill {
        /// A random snapshot of each source instead of the newest.
        random: bool,
        /// Only this source (the dashboard's "start a drill").
        source: Option<String>,
    },
    /// `copy` to one or every `[[copy]]` destination.
    Copy {
        /// One destination.
        to: Option<String>,
    },
}

/// A scheduled job.
#[derive(Clone, Debug)]
pub struct Job {
    /// `backup:NAME`, `apply_retention`, `check`, …
    pub name: String,
    /// What it runs.
    pub work: Work,
    /// When.
    pub schedule: Schedule,
}

impl Job {
    /// The run kind it records.
    pub fn kind(&self) -> RunKind {
        match self.work {
            Work::Backup(_) => RunKind::Backup,
            Work::ApplyRetention => RunKind::ApplyRetention,
            Work::Check { .. } => RunKind::Check,
            Work::Verify { restore_test: true, .. } => RunKind::RestoreTest,
            Work::Verify { restore_test: false, .. } => RunKind::Verify,
            Work::Drill { .. } => RunKind::Drill,
            Work::Copy { .. } => RunKind::Copy,
        }
    }

    /// The source it is about, if any.
    pub fn source(&self) -> Option<&str> {
        match &self.work {
            Work::Backup(s) => Some(s),
            Work::Verify { source, .. } | Work::Drill { source, .. } => source.as_deref(),
            _ => None,
        }
    }
}

/// Every job of a config: sources with a schedule (not `continuous`), then `[jobs]`.
pub fn jobs(cfg: &Config) -> Vec<Job> {
    let mut out = Vec::new();
    for s in cfg.sources() {
        if let Some(schedule) = s.schedule.clone().filter(|x| !matches!(x, Schedule::Continuous)) {
            out.push(Job { name: format!("backup:{}", s.name), work: Work::Backup(s.name.clone()), schedule });
        }
    }
    for (name, spec) in cfg.jobs.jobs() {
        let t: JobTable = spec.table();
        let Ok(schedule) = t.schedule.parse::<Schedule>() else { continue };
        let work = match name {
            "apply_retention" => Work::ApplyRetention,
            "check" => Work::Check { read_data_percent: t.read_data_percent.unwrap_or(0) },
            "verify" => Work::Verify { restore_test: t.restore_test.unwrap_or(true), source: None },
            "drill" => Work::Drill { random: t.random_snapshot, source: None },
            _ if t.to.is_none() => {
                // A copy job per destination, so each is scheduled, skipped and reported alone.
                for c in &cfg.copies {
                    let to = c.label().to_string();
                    out.push(Job {
                        name: format!("copy:{to}"),
                        work: Work::Copy { to: Some(to) },
                        schedule: schedule.clone(),
                    });
                }
                continue;
            }
            _ => Work::Copy { to: t.to.clone() },
        };
        out.push(Job { name: name.to_string(), work, schedule });
    }
    out
}

/// A job started once from the API or the dashboard, for a source of the config:
/// `backup:NAME`, `verify:NAME` (with a restore test) or `drill:NAME`.
pub fn once(name: &str, cfg: &Config) -> Option<Job> {
    let (what, source) = name.split_once(':')?;
    let source = cfg.find(source).ok()?.name.clone();
    let work = match what {
        "backup" => Work::Backup(source),
        "verify" => Work::Verify { restore_test: true, source: Some(source) },
        "drill" => Work::Drill { random: false, source: Some(source) },
        _ => return None,
    };
    Some(Job { name: name.to_string(), work, schedule: Schedule::Continuous })
}

/// The next time after `after` in the time zone `offset` (`None`: local), plus a random jitter
/// below `jitter`.
pub fn next(schedule: &Schedule, after: DateTime<Utc>, zone: Option<Zone>, jitter: Duration) -> Option<DateTime<Utc>> {
    let base = match (schedule, zone) {
        (Schedule::Cron { cron, .. }, Some(Zone::Fixed(tz))) => {
            cron.find_next_occurrence(&after.with_timezone(&tz), false).ok().map(|t| t.with_timezone(&Utc))
        }
        (Schedule::Cron { cron, .. }, Some(Zone::Named(tz))) => {
            cron.find_next_occurrence(&after.with_timezone(&tz), false).ok().map(|t| t.with_timezone(&Utc))
        }
        _ => schedule.next_after(after),
    }?;
    let jitter_ms = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    let extra = if jitter_ms == 0 { 0 } else { rand::random::<u64>() % jitter_ms };
    Some(base + chrono::Duration::milliseconds(i64::try_from(extra).unwrap_or(0)))
}

/// The slot before `now`, if the schedule has one (cron: the previous occurrence; interval:
/// `now` minus the interval).
fn previous(schedule: &Schedule, now: DateTime<Utc>, zone: Option<Zone>) -> Option<DateTime<Utc>> {
    match schedule {
        Schedule::Cron { cron, .. } => match zone {
            Some(Zone::Fixed(tz)) => {
                cron.find_previous_occurrence(&now.with_timezone(&tz), true).ok().map(|t| t.with_timezone(&Utc))
            }
            Some(Zone::Named(tz)) => {
                cron.find_previous_occurrence(&now.with_timezone(&tz), true).ok().map(|t| t.with_timezone(&Utc))
            }
            None => cron
                .find_previous_occurrence(&now.with_timezone(&chrono::Local), true)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        },
        Schedule::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| now - d),
        _ => None,
    }
}

/// What the start needs from the run history, which it reads newest first and stops reading
/// once every need is met (a long history is not read whole):
/// - per job, its newest successful run; a backup job also stops looking past its previous slot
///   (no success since then means "due now" either way);
/// - per source, its newest ended backup run, looking back to a little before its newest snapshot
///   (a backup that made it is a success) or 30 days when it has none.
pub struct Needs {
    jobs: Vec<JobNeed>,
    sources: HashMap<String, DateTime<Utc>>,
}

/// One job's need: its kind and source, where a backup job stops looking, and whether it is met.
type JobNeed = (RunKind, Option<String>, Option<DateTime<Utc>>, bool);

impl Needs {
    /// The needs of `jobs` and `sources`, with each source's newest snapshot time.
    pub fn new(
        jobs: &[Job],
        sources: &[String],
        newest: &HashMap<String, DateTime<Utc>>,
        now: DateTime<Utc>,
        zone: Option<Zone>,
    ) -> Needs {
        let margin = chrono::Duration::minutes(5);
        Needs {
            jobs: jobs
                .iter()
                .map(|j| {
                    let stop = match j.work {
                        Work::Backup(_) => previous(&j.schedule, now, zone),
                        _ => None,
                    };
                    (j.kind(), j.source().map(String::from), stop, false)
                })
                .collect(),
            sources: sources
                .iter()
                .map(|s| {
                    let back = newest.get(s).map(|t| *t - margin).unwrap_or(now - chrono::Duration::days(30));
                    (s.clone(), back)
                })
                .collect(),
        }
    }

    /// The kinds and sources of the runs wanted (the others need not be read).
    pub fn wanted(&self) -> Vec<(RunKind, Option<&str>)> {
        let mut v: Vec<(RunKind, Option<&str>)> = self.jobs.iter().map(|j| (j.0, j.1.as_deref())).collect();
        v.extend(self.sources.keys().map(|s| (RunKind::Backup, Some(s.as_str()))));
        v
    }

    /// Take in the next older run; `false` once nothing more is needed.
    pub fn more(&mut self, r: &Run) -> bool {
        for (kind, source, stop, met) in self.jobs.iter_mut().filter(|j| !j.3) {
            let success = matches!(r.outcome, RunOutcome::Ok | RunOutcome::Partial);
            if (*kind == r.kind && source.as_deref() == r.source.as_deref() && success)
                || stop.is_some_and(|t| r.started < t)
            {
                *met = true;
            }
        }
        let ended_backup = r.kind == RunKind::Backup && r.finished.is_some() && r.outcome != RunOutcome::Skipped;
        self.sources.retain(|name, back| {
            let found = ended_backup && r.source.as_deref() == Some(name.as_str());
            !found && r.started >= *back
        });
        !self.sources.is_empty() || self.jobs.iter().any(|j| !j.3)
    }
}

/// When a job first runs after the daemon starts: now when a slot passed since its last
/// successful run (once, however many were missed; a run that failed or died does not count)
/// or when a backup never succeeded; else its next slot.
pub fn first_due(
    job: &Job,
    history: &[Run],
    now: DateTime<Utc>,
    offset: Option<Zone>,
    jitter: Duration,
) -> Option<DateTime<Utc>> {
    let last = history
        .iter()
        .filter(|r| r.kind == job.kind() && r.source.as_deref() == job.source())
        .filter(|r| matches!(r.outcome, RunOutcome::Ok | RunOutcome::Partial))
        .map(|r| r.started)
        .max();
    match (last, previous(&job.schedule, now, offset)) {
        (Some(last), Some(prev)) if last < prev => Some(now),
        (None, _) if matches!(job.work, Work::Backup(_)) => Some(now),
        _ => next(&job.schedule, now, offset, jitter),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(kind: RunKind, source: Option<&str>, started: DateTime<Utc>) -> Run {
        let mut r = Run::start(kind, source.map(String::from), "daemon");
        r.started = started;
        r.outcome = RunOutcome::Ok;
        r
    }

    #[test]
    fn missed_slots_run_once_at_start_and_jitter_stays_below_its_bound() {
        let now = Utc::now();
        let job =
            Job { name: "backup:a".into(), work: Work::Backup("a".into()), schedule: "every 1h".parse().unwrap() };
        // Never ran: now.
        assert_eq!(first_due(&job, &[], now, None, Duration::ZERO), Some(now));
        // Ran 3 h ago (three slots missed): once, now.
        let h = [run(RunKind::Backup, Some("a"), now - chrono::Duration::hours(3))];
        assert_eq!(first_due(&job, &h, now, None, Duration::ZERO), Some(now));
        // Ran 10 min ago: the next slot.
        let h = [run(RunKind::Backup, Some("a"), now - chrono::Duration::minutes(10))];
        let due = first_due(&job, &h, now, None, Duration::ZERO).unwrap();
        assert!(due > now, "{due}");
        // Another source's run does not count.
        let h = [run(RunKind::Backup, Some("b"), now)];
        assert_eq!(first_due(&job, &h, now, None, Duration::ZERO), Some(now));
        let s: Schedule = "every 10s".parse().unwrap();
        for _ in 0..50 {
            let t = next(&s, now, None, Duration::from_secs(2)).unwrap();
            assert!(t >= now + chrono::Duration::seconds(10) && t < now + chrono::Duration::seconds(12));
        }
    }

    #[test]
    fn one_off_jobs_name_a_known_source_and_an_action() {
        let dir = std::env::temp_dir();
        let text = format!(
            "[repository]\nurl = \"/tmp/x\"\n[[source]]\nname = \"db\"\nkind = \"files\"\npath = \"{}\"\n",
            dir.display()
        );
        let cfg = Config::parse(&text, std::path::Path::new("lifeboat.toml")).unwrap();
        let v = once("verify:db", &cfg).unwrap();
        assert_eq!(v.work, Work::Verify { restore_test: true, source: Some("db".into()) });
        assert_eq!((v.kind(), v.source()), (RunKind::RestoreTest, Some("db")));
        assert_eq!(once("drill:db", &cfg).unwrap().work, Work::Drill { random: false, source: Some("db".into()) });
        assert_eq!(once("backup:db", &cfg).unwrap().work, Work::Backup("db".into()));
        assert!(once("backup:nope", &cfg).is_none());
        assert!(once("prune:db", &cfg).is_none());
        assert!(once("check", &cfg).is_none());
    }

    #[test]
    fn cron_in_a_fixed_time_zone() {
        let s: Schedule = "0 3 * * *".parse().unwrap();
        let tz = chrono::FixedOffset::east_opt(2 * 3600).map(Zone::Fixed);
        let after = DateTime::parse_from_rfc3339("2026-01-01T00:30:00Z").unwrap().with_timezone(&Utc);
        let t = next(&s, after, tz, Duration::ZERO).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-01T01:00:00+00:00");
        // A named zone follows daylight saving time: 03:00 in Berlin is 02:00 UTC in winter,
        // 01:00 UTC in summer.
        let berlin = Some(Zone::Named(chrono_tz::Europe::Berlin));
        let winter = DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(next(&s, winter, berlin, Duration::ZERO).unwrap().to_rfc3339(), "2026-01-10T02:00:00+00:00");
        let summer = DateTime::parse_from_rfc3339("2026-07-10T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(next(&s, summer, berlin, Duration::ZERO).unwrap().to_rfc3339(), "2026-07-10T01:00:00+00:00");
    }

    #[test]
    fn the_start_reads_history_only_as_far_as_the_jobs_and_sources_need() {
        let now = Utc::now();
        let ago = |m: i64| now - chrono::Duration::minutes(m);
        let backup =
            Job { name: "backup:a".into(), work: Work::Backup("a".into()), schedule: "every 1h".parse().unwrap() };
        let verify = Job {
            name: "verify".into(),
            work: Work::Verify { restore_test: false, source: None },
            schedule: "every 1d".parse().unwrap(),
        };
        let newest: HashMap<String, DateTime<Utc>> = [("a".to_string(), ago(30))].into();
        let names = ["a".to_string()];
        let mut failed = run(RunKind::Backup, Some("a"), ago(10));
        failed.outcome = RunOutcome::Failed;
        failed.finished = Some(ago(9));
        // Newest first: a's failed backup (the source's newest ended backup), then a's success of
        // 30 minutes ago (the backup job's), then the verify success: everything is met there.
        let mut n = Needs::new(&[backup.clone(), verify.clone()], &names, &newest, now, None);
        assert!(n.more(&failed));
        assert!(n.more(&run(RunKind::Backup, Some("a"), ago(30))));
        assert!(!n.more(&run(RunKind::Verify, None, ago(600))));
        // A backup job with no success since its previous slot (an hour ago) stops looking there.
        let mut n = Needs::new(std::slice::from_ref(&backup), &names, &newest, now, None);
        assert!(n.more(&failed));
        assert!(!n.more(&run(RunKind::Copy, None, ago(61))));
        // A verify job that never succeeded needs the whole history.
        let mut n = Needs::new(std::slice::from_ref(&verify), &[], &HashMap::new(), now, None);
        assert!(n.more(&run(RunKind::Backup, Some("a"), ago(60 * 24 * 400))));
        // A source with no ended backup run since a little before its newest snapshot: met there.
        let mut n = Needs::new(&[], &names, &newest, now, None);
        assert!(n.more(&run(RunKind::Verify, None, ago(31))));
        assert!(!n.more(&run(RunKind::Verify, None, ago(36))));
    }
}
