//! What the daemon knows, kept in memory and updated by runs, so that a scrape of `/metrics`
//! never reads the repository: per source the last backup, RPO, verification and drill; the
//! repository's size; the jobs' next runs; runs by outcome.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use lifeboat_ops::records::{DrillSummary, Run, RunKind, RunOutcome, Verification};
use lifeboat_repository::snapshots::SnapshotEntry;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One source.
#[derive(Clone, Debug, Default)]
pub struct SourceState {
    /// End of the last successful backup.
    pub last_success: Option<DateTime<Utc>>,
    /// Whether the last backup run succeeded (`None`: no run recorded).
    pub last_run_ok: Option<bool>,
    /// Its error, if it failed.
    pub last_error: Option<String>,
    /// Duration of the last backup, seconds.
    pub duration: Option<f64>,
    /// Bytes stored by the last backup.
    pub added: Option<u64>,
    /// Snapshots of the source.
    pub snapshots: u64,
    /// RPO, seconds.
    pub rpo: Option<f64>,
    /// RTO, seconds.
    pub rto: Option<f64>,
    /// Whether the RPO is breached (as last evaluated; alerts fire on changes).
    pub rpo_breached: bool,
    /// Last verification time and whether it passed.
    pub verification: Option<(DateTime<Utc>, bool)>,
    /// Measured RTO of the last drill.
    pub drill_rto: Option<f64>,
    /// Bytes added by recent backups (newest last, at most 10), for size anomalies.
    pub recent_added: Vec<u64>,
    /// Point-in-time sources: when the newest WAL file (postgres) or segment (sqlite with
    /// `continuous = true`) was archived.
    pub wal_last: Option<DateTime<Utc>>,
    /// A continuously replicated source's last shipped transaction id.
    pub txid: Option<u64>,
}

/// Everything `/metrics` shows.
#[derive(Debug, Default)]
pub struct State {
    /// Per source, by name.
    pub sources: BTreeMap<String, SourceState>,
    /// Repository size, packs, dedup and compression ratios.
    pub repository: Option<(u64, u64, f64, f64)>,
    /// Free and total bytes of a local repository's file system.
    pub free: Option<(u64, u64)>,
    /// Next run per job.
    pub next: BTreeMap<String, DateTime<Utc>>,
    /// Start of the last successful copy per `[[copy]]` destination (`None`: never).
    pub copies: BTreeMap<String, Option<DateTime<Utc>>>,
    /// Runs by (kind, outcome).
    pub runs: HashMap<(String, String), u64>,
    /// Each probe's last value and status.
    pub probes: BTreeMap<String, (Option<f64>, lifeboat_ops::probe::ProbeStatus)>,
    /// When the daemon started.
    pub started: DateTime<Utc>,
    /// Set once the first load from the repository is done.
    pub ready: bool,
    /// Whether the running config is the file on disk (false after a rejected reload).
    pub config_ok: bool,
}

impl State {
    /// Fill from the repository's records (at start).
    pub fn load(
        &mut self,
        snaps: &[SnapshotEntry],
        verifications: &[Verification],
        drills: &[DrillSummary],
        runs: &[Run],
    ) {
        // Oldest first, so that each source's recent sizes (for size anomalies) end with the newest.
        let mut ordered: Vec<&SnapshotEntry> = snaps.iter().collect();
        ordered.sort_by_key(|s| s.snapshot.time);
        for s in ordered {
            let Some(src) = &s.snapshot.source else { continue };
            let st = self.sources.entry(src.name.clone()).or_default();
            st.snapshots += 1;
            if let Some(sum) = &s.snapshot.summary {
                st.recent_added.push(sum.data_added_packed);
            }
            let end = s.snapshot.summary.as_ref().and_then(|x| x.backup_end).unwrap_or(s.snapshot.time);
            if st.last_success.is_none_or(|t| t < end) {
                st.last_success = Some(end);
                if let Some(sum) = &s.snapshot.summary {
                    st.added = Some(sum.data_added_packed);
                    if let (Some(a), Some(b)) = (sum.backup_start, sum.backup_end) {
                        st.duration = Some((b - a).num_milliseconds() as f64 / 1000.0);
                    }
                }
            }
        }
        for v in verifications {
            if let Some(name) = &v.source {
                if let Some(st) = self.sources.get_mut(name) {
                    st.verification = Some((v.time, v.outcome == lifeboat_ops::records::Outcome::Ok));
                }
            }
        }
        for d in drills {
            for s in &d.sources {
                if let Some(st) = self.sources.get_mut(&s.source) {
                    st.drill_rto = Some(s.rto_seconds);
                }
            }
        }
        // A skipped run did not back up anything: it says nothing about the last backup.
        let ended = |r: &&Run| r.kind == RunKind::Backup && r.finished.is_some() && r.outcome != RunOutcome::Skipped;
        for r in runs.iter().filter(ended) {
            if let Some(st) = r.source.as_ref().and_then(|n| self.sources.get_mut(n)) {
                st.last_run_ok = Some(r.outcome != RunOutcome::Failed);
                st.last_error = r.error.clone();
            }
        }
        for r in runs.iter().filter(|r| r.kind == RunKind::Copy && r.outcome == RunOutcome::Ok) {
            for m in &r.messages {
                if let Some(dest) = m.text.strip_prefix("to ") {
                    self.copies.insert(dest.to_string(), Some(r.started));
                }
            }
        }
        for st in self.sources.values_mut() {
            let n = st.recent_added.len();
            st.recent_added.drain(..n.saturating_sub(10));
        }
        self.ready = true;
    }

    /// Count a finished run.
    pub fn count(&mut self, kind: RunKind, outcome: RunOutcome) {
        *self.runs.entry((kind.name().to_string(), outcome.name().to_string())).or_default() += 1;
    }

    /// The Prometheus text exposition of the state.
    pub fn encode(&self, now: DateTime<Utc>) -> String {
        let mut reg = Registry::default();
        type G = Family<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>;
        let mut gauge = |name: &str, help: &str| -> G {
            let f = G::default();
            reg.register(name, help, f.clone());
            f
        };
        let last_success = gauge("lifeboat_last_success_timestamp_seconds", "End of the last successful backup");
        let last_run = gauge("lifeboat_last_run_success", "1 if the last backup run succeeded");
        let duration = gauge("lifeboat_backup_duration_seconds", "Duration of the last backup");
        let added = gauge("lifeboat_backup_added_bytes", "Bytes stored by the last backup");
        let snapshots = gauge("lifeboat_snapshots", "Snapshots of the source");
        let rpo = gauge("lifeboat_rpo_seconds", "The source's RPO");
        let breached = gauge("lifeboat_rpo_breached", "1 when the newest backup is older than the RPO");
        let verified = gauge("lifeboat_last_verification_timestamp_seconds", "Time of the last verification");
        let verified_ok = gauge("lifeboat_last_verification_success", "1 if the last verification passed");
        let drill = gauge("lifeboat_drill_rto_seconds", "Measured recovery time of the last drill");
        let wal_age = gauge(
            "lifeboat_wal_archive_age_seconds",
            "Point-in-time sources: seconds since the newest WAL file or replication segment was archived",
        );
        let wal_last = gauge(
            "lifeboat_wal_last_archived_timestamp_seconds",
            "Point-in-time sources: when the newest WAL file or replication segment was archived",
        );
        let txid = gauge("lifeboat_replication_txid", "Continuous sqlite sources: the last shipped transaction id");
        let rto = gauge("lifeboat_rto_seconds", "The source's RTO");
        let size = gauge("lifeboat_repository_size_bytes", "Repository size");
        let packs = gauge("lifeboat_repository_packs", "Pack files in the repository");
        let dedup = gauge("lifeboat_repository_dedup_ratio", "Logical bytes per unique byte");
        let compression = gauge("lifeboat_repository_compression_ratio", "Unique bytes per stored byte");
        let up = gauge("lifeboat_up", "1 while the daemon runs");
        let start = gauge("lifeboat_daemon_start_time_seconds", "When the daemon started");
        let next = gauge("lifeboat_job_next_run_timestamp_seconds", "Next run of each job");
        let config_ok = gauge("lifeboat_config_valid", "0 after a config reload was rejected");
        let free = gauge("lifeboat_repository_free_bytes", "Free bytes on a local repository's file system");
        if let Some((f, _)) = self.free {
            free.get_or_create(&vec![]).set(f as f64);
        }
        let copy_lag = gauge("lifeboat_copy_lag_seconds", "Seconds since the last successful copy to each destination");
        let probe_value = gauge("lifeboat_probe_value", "Each probe's last value");
        let probe_status =
            gauge("lifeboat_probe_status", "Each probe's status: 0 ok, 1 warning, 2 critical, 3 unknown");
        for (name, (v, st)) in &self.probes {
            let l = vec![("probe".to_string(), name.clone())];
            if let Some(v) = v {
                probe_value.get_or_create(&l).set(*v);
            }
            probe_status.get_or_create(&l).set(f64::from(st.exit_code()));
        }
        let runs = Family::<Vec<(String, String)>, Counter>::default();
        reg.register("lifeboat_runs", "Runs by kind and outcome", runs.clone());
        let ts = |t: &DateTime<Utc>| t.timestamp_millis() as f64 / 1000.0;
        for (name, s) in &self.sources {
            let l = vec![("source".to_string(), name.clone())];
            let set = |g: &G, v: Option<f64>| {
                if let Some(v) = v {
                    g.get_or_create(&l).set(v);
                }
            };
            set(&last_success, s.last_success.as_ref().map(ts));
            set(&last_run, s.last_run_ok.map(|ok| if ok { 1.0 } else { 0.0 }));
            set(&duration, s.duration);
            set(&added, s.added.map(|b| b as f64));
            set(&snapshots, Some(s.snapshots as f64));
            set(&rpo, s.rpo);
            set(&breached, s.rpo.map(|_| if s.rpo_breached { 1.0 } else { 0.0 }));
            set(&verified, s.verification.as_ref().map(|(t, _)| ts(t)));
            set(&verified_ok, s.verification.as_ref().map(|(_, ok)| if *ok { 1.0 } else { 0.0 }));
            set(&drill, s.drill_rto);
            set(&rto, s.rto);
            set(&wal_last, s.wal_last.as_ref().map(ts));
            set(&wal_age, s.wal_last.map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0));
            set(&txid, s.txid.map(|t| t as f64));
        }
        if let Some((b, p, d, c)) = self.repository {
            size.get_or_create(&vec![]).set(b as f64);
            packs.get_or_create(&vec![]).set(p as f64);
            dedup.get_or_create(&vec![]).set(d);
            compression.get_or_create(&vec![]).set(c);
        }
        up.get_or_create(&vec![]).set(1.0);
        start.get_or_create(&vec![]).set(ts(&self.started));
        config_ok.get_or_create(&vec![]).set(if self.config_ok { 1.0 } else { 0.0 });
        for (job, t) in &self.next {
            next.get_or_create(&vec![("job".to_string(), job.clone())]).set(ts(t));
        }
        for (dest, last) in &self.copies {
            // Never copied: as old as the daemon's view goes (its start).
            let since = last.unwrap_or(self.started);
            let lag = (now - since).num_milliseconds().max(0) as f64 / 1000.0;
            copy_lag.get_or_create(&vec![("destination".to_string(), dest.clone())]).set(lag);
        }
        for ((kind, outcome), n) in &self.runs {
            runs.get_or_create(&vec![("kind".to_string(), kind.clone()), ("outcome".to_string(), outcome.clone())])
                .inc_by(*n);
        }
        let mut out = String::new();
        let _ = encode(&mut out, &reg);
        out
    }
}

/// Whether `bytes` is far from the median of `recent` (ten times larger or smaller, and more
/// than [`ANOMALY_FLOOR`] apart), once there are at least five earlier backups to compare with.
pub fn anomaly(recent: &[u64], bytes: u64) -> Option<u64> {
    if recent.len() < 5 {
        return None;
    }
    let mut v = recent.to_vec();
    v.sort_unstable();
    let median = v[v.len() / 2];
    // Without the floor, an unchanged source (0 bytes added, all deduplicated) is "ten times
    // smaller" than a median of a few hundred bytes of metadata: an alert on every run.
    let far = bytes.abs_diff(median) > ANOMALY_FLOOR
        && (bytes > median.saturating_mul(10) || bytes.saturating_mul(10) < median);
    far.then_some(median)
}

/// Differences in bytes added smaller than this are never an anomaly (10 MiB).
pub const ANOMALY_FLOOR: u64 = 10 << 20;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn metrics_carry_the_documented_names_and_labels() {
        let mut s = State { started: Utc::now(), config_ok: true, ..State::default() };
        s.sources.insert(
            "db".into(),
            SourceState {
                last_run_ok: Some(false),
                rpo: Some(3600.0),
                rpo_breached: true,
                snapshots: 3,
                ..Default::default()
            },
        );
        s.count(RunKind::Backup, RunOutcome::Failed);
        s.next.insert("backup:db".into(), Utc::now());
        let text = s.encode(Utc::now());
        for line in [
            "lifeboat_last_run_success{source=\"db\"} 0",
            "lifeboat_rpo_breached{source=\"db\"} 1",
            "lifeboat_snapshots{source=\"db\"} 3",
            "lifeboat_runs_total{kind=\"backup\",outcome=\"failed\"} 1",
            "lifeboat_up 1",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(text.contains("lifeboat_job_next_run_timestamp_seconds{job=\"backup:db\"}"), "{text}");
    }

    #[test]
    fn size_anomalies_need_history_and_a_tenfold_difference() {
        const M: u64 = 1 << 20;
        assert_eq!(anomaly(&[100 * M, 100 * M], 5000 * M), None);
        let h = [100 * M, 110 * M, 90 * M, 105 * M, 95 * M, 100 * M];
        assert_eq!(anomaly(&h, 1000 * M), None);
        assert_eq!(anomaly(&h, 1100 * M), Some(100 * M));
        assert_eq!(anomaly(&h, 5 * M), Some(100 * M));
        assert_eq!(anomaly(&h, 0), Some(100 * M));
        // Nothing stored before: only a large backup is an anomaly.
        assert_eq!(anomaly(&[0; 6], 11 * M), Some(0));
        assert_eq!(anomaly(&[0; 6], 5 * M), None);
    }

    #[test]
    fn a_skipped_run_after_a_failed_one_leaves_the_source_failed() {
        let mut s = State::default();
        s.sources.insert("db".into(), SourceState::default());
        let mut failed = Run::start(RunKind::Backup, Some("db".into()), "daemon");
        failed.error = Some("exit status 7".into());
        failed.finish(RunOutcome::Failed);
        let mut skipped = Run::start(RunKind::Backup, Some("db".into()), "daemon");
        skipped.finish(RunOutcome::Skipped);
        s.load(&[], &[], &[], &[failed, skipped]);
        assert_eq!(s.sources["db"].last_run_ok, Some(false));
        assert_eq!(s.sources["db"].last_error.as_deref(), Some("exit status 7"));
        assert!(s.encode(Utc::now()).contains("lifeboat_last_run_success{source=\"db\"} 0"));
    }

    #[test]
    fn an_unchanged_small_source_is_no_size_anomaly() {
        // A few hundred bytes of metadata at first, then nothing new (all deduplicated).
        assert_eq!(anomaly(&[270, 270, 270, 270, 270, 0], 0), None);
        assert_eq!(anomaly(&[0, 0, 0, 0, 0, 270], 270), None);
        assert_eq!(anomaly(&[200 << 10; 6], 5 << 20), None);
    }
}
