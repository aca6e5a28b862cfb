//! Retention policies: which snapshots to keep, and by which rule.
//!
//! Semantics follow restic's `forget` so that users moving between the tools get the same
//! answer: snapshots are grouped (per host and source; per host and path set for plain file
//! backups), each group is walked newest first, and a `daily = 7` rule keeps the newest
//! snapshot of each of the 7 most recent days that have one. `within` keeps everything younger
//! than the duration, measured from the group's newest snapshot (not from now, so a source that
//! stopped backing up does not lose its last backups to the clock). `keep_tags` keeps every
//! snapshot carrying one of the tags, forever. Calendar buckets use the local time zone.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Local, Timelike, Utc};
use lifeboat_format::{Id, Snapshot};
use lifeboat_repository::snapshots::SnapshotEntry;
use serde::{Deserialize, Serialize};

use crate::OpsError;

/// A retention policy (`retention = { daily = 30, weekly = 13, keep_tags = ["pre-upgrade"] }`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Keep the newest N snapshots.
    #[serde(default, alias = "keep_last", skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[serde(default, alias = "keep_hourly", skip_serializing_if = "Option::is_none")]
    pub hourly: Option<u32>,
    /// … days.
    #[serde(default, alias = "keep_daily", skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    /// … ISO weeks.
    #[serde(default, alias = "keep_weekly", skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    /// … months.
    #[serde(default, alias = "keep_monthly", skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    /// … years.
    #[serde(default, alias = "keep_yearly", skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
    /// Keep every snapshot younger than this (e.g. `30d`), relative to the group's newest.
    #[serde(default, alias = "keep_within", skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// Keep every snapshot with one of these tags, forever.
    #[serde(default, alias = "keep_tag", skip_serializing_if = "Vec::is_empty")]
    pub keep_tags: Vec<String>,
}

impl Policy {
    /// Whether no rule is set (such a policy would remove everything, so it is refused).
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
            && self.hourly.is_none()
            && self.daily.is_none()
            && self.weekly.is_none()
            && self.monthly.is_none()
            && self.yearly.is_none()
            && self.within.is_none()
            && self.keep_tags.is_empty()
    }

    /// Check the policy: not empty, `within` parses.
    pub fn validate(&self) -> Result<(), OpsError> {
        if self.is_empty() {
            return Err(OpsError::EmptyPolicy);
        }
        if let Some(w) = &self.within {
            crate::duration::parse(w)?;
        }
        Ok(())
    }

    /// One line such as `last 3, daily 7, tags pre-upgrade`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, v) in self.counted() {
            parts.push(format!("{name} {v}"));
        }
        if let Some(w) = &self.within {
            parts.push(format!("within {w}"));
        }
        if !self.keep_tags.is_empty() {
            parts.push(format!("tags {}", self.keep_tags.join(",")));
        }
        parts.join(", ")
    }

    fn counted(&self) -> Vec<(&'static str, u32)> {
        [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ]
        .into_iter()
        .filter_map(|(n, v)| Some((n, v?)))
        .collect()
    }
}

/// The verdict for one snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// Snapshot id.
    pub id: Id,
    /// Snapshot time.
    pub time: DateTime<Utc>,
    /// The group it was judged in (`host / source` or `host / paths`).
    pub group: String,
    /// Whether it is kept.
    pub keep: bool,
    /// The rules that keep it (`daily`, `tag pre-upgrade`, …); empty when removed.
    pub reasons: Vec<String>,
}

/// The group of a snapshot: host plus source name, or host plus sorted paths.
pub fn group_of(s: &Snapshot) -> String {
    match &s.source {
        Some(src) => format!("{} / {}", s.hostname, src.name),
        None => {
            let mut p = s.paths.clone();
            p.sort();
            format!("{} / {}", s.hostname, p.join(","))
        }
    }
}

/// Apply a policy to snapshots (any order). Returns one decision per snapshot, grouped, newest
/// first within each group.
pub fn apply(snapshots: &[SnapshotEntry], policy: &Policy) -> Result<Vec<Decision>, OpsError> {
    policy.validate()?;
    let within = policy.within.as_deref().map(crate::duration::parse).transpose()?;
    let mut groups: BTreeMap<String, Vec<&SnapshotEntry>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(group_of(&s.snapshot)).or_default().push(s);
    }
    let mut out = Vec::with_capacity(snapshots.len());
    for (group, mut snaps) in groups {
        snaps.sort_by(|a, b| b.snapshot.time.cmp(&a.snapshot.time).then(b.id.cmp(&a.id)));
        let newest = snaps.first().map(|s| s.snapshot.time);
        let mut rules: Vec<Rule> =
            policy.counted().into_iter().map(|(name, left)| Rule { name, left, last: None }).collect();
        for (i, s) in snaps.iter().enumerate() {
            let mut reasons = Vec::new();
            for r in &mut rules {
                let b = bucket(r.name, i, s.snapshot.time);
                if r.left > 0 && r.last != Some(b) {
                    r.last = Some(b);
                    r.left -= 1;
                    reasons.push(r.name.to_string());
                }
            }
            if let (Some(d), Some(newest)) = (within, newest) {
                let age = newest.signed_duration_since(s.snapshot.time);
                if age.to_std().map(|a| a <= d).unwrap_or(true) {
                    reasons.push(format!("within {}", policy.within.as_deref().unwrap_or_default()));
                }
            }
            for t in policy.keep_tags.iter().filter(|t| s.snapshot.tags.contains(t)) {
                reasons.push(format!("tag {t}"));
            }
            out.push(Decision {
                id: s.id,
                time: s.snapshot.time,
                group: group.clone(),
                keep: !reasons.is_empty(),
                reasons,
            });
        }
    }
    Ok(out)
}

struct Rule {
    name: &'static str,
    left: u32,
    last: Option<i64>,
}

/// The calendar bucket of a snapshot for a rule; `last` buckets by position.
fn bucket(rule: &str, position: usize, t: DateTime<Utc>) -> i64 {
    let l = t.with_timezone(&Local);
    let (y, m, d, h) = (l.year() as i64, l.month() as i64, l.day() as i64, l.hour() as i64);
    match rule {
        "hourly" => ((y * 100 + m) * 100 + d) * 100 + h,
        "daily" => (y * 100 + m) * 100 + d,
        "weekly" => {
            let w = l.iso_week();
            w.year() as i64 * 100 + w.week() as i64
        }
        "monthly" => y * 100 + m,
        "yearly" => y,
        _ => position as i64,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use lifeboat_format::SourceInfo;

    fn snap(n: u8, t: DateTime<Utc>, tags: &[&str], source: &str) -> SnapshotEntry {
        let json = format!(
            r#"{{"time":"{}","tree":"{}","paths":["/srv"],"hostname":"h","tags":{:?}}}"#,
            t.to_rfc3339(),
            "ab".repeat(32),
            tags
        );
        let mut s: Snapshot = serde_json::from_str(&json).unwrap();
        if !source.is_empty() {
            s.source = Some(SourceInfo { name: source.into(), kind: "files".into(), manifest: None });
        }
        SnapshotEntry { id: Id([n; 32]), snapshot: s }
    }

    /// 60 daily snapshots at noon, newest on 2026-03-01.
    fn daily_series() -> Vec<SnapshotEntry> {
        let newest = Local.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap().with_timezone(&Utc);
        (0..60u8)
            .map(|i| {
                let tags: &[&str] = if i == 45 { &["pre-upgrade"] } else { &[] };
                snap(i, newest - Duration::days(i as i64), tags, "db")
            })
            .collect()
    }

    fn kept(d: &[Decision]) -> Vec<u8> {
        let mut v: Vec<u8> = d.iter().filter(|d| d.keep).map(|d| d.id.0[0]).collect();
        v.sort();
        v
    }

    #[test]
    fn daily_weekly_monthly_and_tags() {
        let snaps = daily_series();
        let p = Policy { daily: Some(7), keep_tags: vec!["pre-upgrade".into()], ..Default::default() };
        let d = apply(&snaps, &p).unwrap();
        assert_eq!(kept(&d), vec![0, 1, 2, 3, 4, 5, 6, 45]);
        let tagged = d.iter().find(|d| d.id.0[0] == 45).unwrap();
        assert_eq!(tagged.reasons, vec!["tag pre-upgrade"]);

        // Monthly 3 keeps the newest snapshot of March, February and January.
        let p = Policy { monthly: Some(3), ..Default::default() };
        let d = apply(&snaps, &p).unwrap();
        let days: Vec<u32> = d
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.time.with_timezone(&Local).month() * 100 + d.time.with_timezone(&Local).day())
            .collect();
        assert_eq!(days, vec![301, 228, 131]);

        // Weekly 2: the newest snapshot of this ISO week and of the previous one.
        let p = Policy { weekly: Some(2), ..Default::default() };
        let d = apply(&snaps, &p).unwrap();
        let k = kept(&d);
        assert_eq!(k.len(), 2);
        // 2026-03-01 is a Sunday: the week before it ends on Sunday 2026-02-22, 7 days earlier.
        assert_eq!(k, vec![0, 7]);
    }

    #[test]
    fn last_within_and_groups() {
        let mut snaps = daily_series();
        let t = snaps[0].snapshot.time;
        snaps.push(snap(200, t - Duration::days(300), &[], "other"));
        let p = Policy { last: Some(2), within: Some("10d".into()), ..Default::default() };
        let d = apply(&snaps, &p).unwrap();
        // Group "db": within 10 days of its newest = 11 snapshots (days 0..=10); "other" keeps its
        // only snapshot by `last` although it is 300 days old.
        assert_eq!(kept(&d), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 200]);
        let first = d.iter().find(|d| d.id.0[0] == 0).unwrap();
        assert_eq!(first.reasons, vec!["last", "within 10d"]);
        assert!(d.iter().filter(|d| !d.keep).all(|d| d.reasons.is_empty()));
    }

    #[test]
    fn several_snapshots_per_day_keep_the_newest() {
        let base = Local.with_ymd_and_hms(2026, 5, 10, 1, 0, 0).unwrap().with_timezone(&Utc);
        let snaps: Vec<_> = (0..6u8).map(|i| snap(i, base + Duration::hours(i as i64 * 4), &[], "")).collect();
        let d = apply(&snaps, &Policy { daily: Some(1), hourly: Some(2), ..Default::default() }).unwrap();
        // Newest (21:00) is kept by daily and hourly; the one at 17:00 by hourly only.
        assert_eq!(kept(&d), vec![4, 5]);
    }

    #[test]
    fn empty_policy_and_bad_within_are_refused() {
        let snaps = daily_series();
        assert!(matches!(apply(&snaps, &Policy::default()), Err(OpsError::EmptyPolicy)));
        let p = Policy { within: Some("ten days".into()), ..Default::default() };
        assert!(matches!(apply(&snaps, &p), Err(OpsError::BadValue { .. })));
    }
}
