//! The sections the daemon runs on: `[jobs]` (repository jobs and scheduling limits),
//! `[server]` (metrics and API) and `[[notify]]` (where alerts go). Read and checked with the
//! rest of the file, so `config check` rejects a bad schedule or an unknown event name.

use std::time::Duration;

use serde::Deserialize;

use super::schedule::Schedule;

/// A repository job's settings: a schedule alone (`check = "@weekly"`) or a table.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum JobSpec {
    /// Just the schedule.
    Schedule(String),
    /// Schedule and options.
    Table(JobTable),
}

/// `{ schedule = "…", … }` of a repository job.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTable {
    /// When it runs.
    pub schedule: String,
    /// check: the share of packs read back each run (0–100; default 0 = structure only).
    pub read_data_percent: Option<u8>,
    /// verify: also restore into a scratch target (default true).
    pub restore_test: Option<bool>,
    /// drill: a random snapshot of each source instead of the newest.
    #[serde(default)]
    pub random_snapshot: bool,
    /// copy: the `[[copy]]` destination (default: every one).
    pub to: Option<String>,
}

impl JobSpec {
    /// The options, with the schedule.
    pub fn table(&self) -> JobTable {
        match self {
            JobSpec::Schedule(s) => JobTable { schedule: s.clone(), ..JobTable::default() },
            JobSpec::Table(t) => t.clone(),
        }
    }
}

/// `[jobs] storage_low_percent` when unset: `storage_low` below 10 % free.
pub const DEFAULT_STORAGE_LOW_PERCENT: u8 = 10;

/// `[jobs]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSection {
    /// Time zone of cron schedules: `local` (default), `UTC`, an offset like `+02:00`, or a
    /// name like `Europe/Berlin` (daylight saving time included).
    pub timezone: Option<String>,
    /// A random delay up to this long before each scheduled run (`5m`), so that many machines
    /// do not hit the storage at the same second.
    pub jitter: Option<String>,
    /// Runs at the same time, all jobs together (default 2).
    pub max_concurrent: Option<usize>,
    /// After SIGTERM, how long running work may go on before it is interrupted (default 60s).
    pub grace: Option<String>,
    /// `storage_low` when a local repository's file system has less than this share free
    /// (percent, default 10; checked every minute).
    pub storage_low_percent: Option<u8>,
    /// `apply-retention`.
    pub apply_retention: Option<JobSpec>,
    /// `check`.
    pub check: Option<JobSpec>,
    /// `verify` of the newest snapshot of each source.
    pub verify: Option<JobSpec>,
    /// `drill`.
    pub drill: Option<JobSpec>,
    /// `copy` to the `[[copy]]` destinations.
    pub copy: Option<JobSpec>,
}

/// The repository jobs a `[jobs]` section can hold.
pub const JOB_NAMES: &[&str] = &["apply_retention", "check", "verify", "drill", "copy"];

impl JobsSection {
    /// Each configured job with its name.
    pub fn jobs(&self) -> Vec<(&'static str, &JobSpec)> {
        let all = [
            ("apply_retention", &self.apply_retention),
            ("check", &self.check),
            ("verify", &self.verify),
            ("drill", &self.drill),
            ("copy", &self.copy),
        ];
        all.into_iter().filter_map(|(n, j)| j.as_ref().map(|j| (n, j))).collect()
    }

    /// Check every schedule, duration and the time zone.
    pub fn validate(&self) -> Result<(), String> {
        for (name, job) in self.jobs() {
            let t = job.table();
            t.schedule.parse::<Schedule>().map_err(|e| format!("[jobs] {name}: {e}"))?;
            if t.read_data_percent.is_some_and(|p| p > 100) {
                return Err(format!("[jobs] {name}: read_data_percent must be 0 to 100"));
            }
        }
        for (field, v) in [("jitter", &self.jitter), ("grace", &self.grace)] {
            if let Some(v) = v {
                lifeboat_ops::duration::parse(v).map_err(|e| format!("[jobs] {field}: {e}"))?;
            }
        }
        if self.storage_low_percent.is_some_and(|p| p > 100) {
            return Err("[jobs] storage_low_percent must be 0 to 100".into());
        }
        if self.max_concurrent == Some(0) {
            return Err("[jobs] max_concurrent must be at least 1".into());
        }
        if let Some(tz) = &self.timezone {
            parse_timezone(tz).map_err(|e| format!("[jobs] timezone: {e}"))?;
        }
        Ok(())
    }

    /// The jitter (zero when unset).
    pub fn jitter(&self) -> Duration {
        self.jitter.as_deref().and_then(|j| lifeboat_ops::duration::parse(j).ok()).unwrap_or(Duration::ZERO)
    }

    /// The shutdown grace period (default 60 s).
    pub fn grace(&self) -> Duration {
        self.grace.as_deref().and_then(|j| lifeboat_ops::duration::parse(j).ok()).unwrap_or(Duration::from_secs(60))
    }

    /// Below this share of free space (percent) a local repository's storage is low (default
    /// [`DEFAULT_STORAGE_LOW_PERCENT`]).
    pub fn storage_low_percent(&self) -> u8 {
        self.storage_low_percent.unwrap_or(DEFAULT_STORAGE_LOW_PERCENT)
    }

    /// The concurrency limit (default 2).
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent.unwrap_or(2).max(1)
    }

    /// The time zone of cron schedules (`None` = the machine's local time).
    pub fn zone(&self) -> Option<Zone> {
        self.timezone.as_deref().and_then(|t| parse_timezone(t).ok()).flatten()
    }
}

/// A time zone for cron schedules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Zone {
    /// A fixed offset from UTC.
    Fixed(chrono::FixedOffset),
    /// A named zone of the tz database (its offset changes with daylight saving time).
    Named(chrono_tz::Tz),
}

/// `local` → `None`; `UTC`/`Z` → +00:00; `+02:00`, `-0530` → that offset; `Europe/Berlin` →
/// that zone.
pub fn parse_timezone(text: &str) -> Result<Option<Zone>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("local") {
        return Ok(None);
    }
    if t.eq_ignore_ascii_case("utc") || t == "Z" {
        return Ok(chrono::FixedOffset::east_opt(0).map(Zone::Fixed));
    }
    if let Ok(tz) = t.parse::<chrono_tz::Tz>() {
        return Ok(Some(Zone::Named(tz)));
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(format!("{text:?} is not local, UTC, an offset like +02:00 or a zone like Europe/Berlin")),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok(), Some(0)),
        4 => (digits[..2].parse::<i32>().ok(), digits[2..].parse::<i32>().ok()),
        _ => (None, None),
    };
    match (h, m) {
        (Some(h), Some(m)) if h <= 14 && m < 60 => {
            Ok(chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60)).map(Zone::Fixed))
        }
        _ => Err(format!("{text:?} is not local, UTC, an offset like +02:00 or a zone like Europe/Berlin")),
    }
}

/// `[server]`: the daemon's HTTP server (metrics, health, API, dashboard).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `HOST:PORT` (default `127.0.0.1:9848`).
    pub listen: Option<String>,
    /// File holding the bearer token for the API (required off loopback).
    pub token_file: Option<String>,
    /// File holding the admin token (actions: start a backup); default: the token.
    pub admin_token_file: Option<String>,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<String>,
    /// TLS private key (PEM).
    pub tls_key: Option<String>,
}

/// One `[[notify]]` target.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// Name for `notify test NAME` and logs (default: the kind).
    pub name: Option<String>,
    /// `webhook`, `slack`, `ntfy`, `healthchecks` or `command`.
    pub kind: String,
    /// Where to send (`${VAR}` allowed; a secret: never logged).
    pub url: Option<String>,
    /// webhook: HMAC-SHA256 key for the `X-Lifeboat-Signature` header (`${VAR}`).
    pub secret: Option<String>,
    /// ntfy: bearer token (`${VAR}`).
    pub token: Option<String>,
    /// command: argv; the event JSON arrives on stdin.
    pub command: Option<Vec<String>>,
    /// Which events (default: see [`NotifySection::wants`]).
    #[serde(default)]
    pub events: Vec<String>,
}

/// The kinds of notifier.
pub const NOTIFY_KINDS: &[&str] = &["webhook", "slack", "ntfy", "healthchecks", "command"];

/// Every event a notifier can receive.
pub const EVENTS: &[&str] = &[
    "backup_started",
    "backup_failed",
    "backup_ok",
    "rpo_breached",
    "rpo_recovered",
    "verify_failed",
    "restore_test_failed",
    "drill_failed",
    "rto_exceeded",
    "copy_behind",
    "storage_low",
    "size_anomaly",
    "config_invalid",
    "probe_warning",
    "probe_critical",
    "probe_recovered",
];

impl NotifySection {
    /// The name used in messages.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.kind)
    }

    /// Whether this target wants `event`. Without an `events` list: a `healthchecks` target gets
    /// each backup's start, success and failure pings (healthchecks.io's model of a job); the
    /// others get every event but `backup_started` and `backup_ok`.
    pub fn wants(&self, event: &str) -> bool {
        if self.events.is_empty() {
            if self.kind == "healthchecks" {
                return matches!(event, "backup_started" | "backup_ok" | "backup_failed");
            }
            return event != "backup_ok" && event != "backup_started";
        }
        self.events.iter().any(|e| e == event)
    }

    /// Check the kind, what it needs, and the event names.
    pub fn validate(&self) -> Result<(), String> {
        if !NOTIFY_KINDS.contains(&self.kind.as_str()) {
            return Err(format!("unknown notify kind {:?} (expected one of: {})", self.kind, NOTIFY_KINDS.join(", ")));
        }
        match (self.kind.as_str(), &self.url, &self.command) {
            ("command", _, None) => return Err("a command notifier needs `command = [\"prog\", \"arg\"]`".into()),
            ("command", _, Some(c)) if c.is_empty() => return Err("empty command".into()),
            ("command", _, _) => {}
            (k, None, _) => return Err(format!("a {k} notifier needs `url`")),
            _ => {}
        }
        for e in &self.events {
            if !EVENTS.contains(&e.as_str()) {
                return Err(format!("unknown event {e:?} (events: {})", EVENTS.join(", ")));
            }
        }
        Ok(())
    }
}
