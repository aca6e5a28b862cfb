//! The daemon's probes: each `[[probe]]` every `interval` (never two of one probe at once), its
//! sample kept in the repository and shown in `/metrics`; `probe_warning`, `probe_critical` and
//! `probe_recovered` are sent when a probe's status changes (a probe that yields no value counts
//! as a warning). Probes are light and do not take a job slot.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifeboat_ops::probe::{ProbeStatus, Sample};
use lifeboat_repository::Repository;
use lifeboat_service::config::Config;

use crate::log::Log;
use crate::notify::Alert;
use crate::Msg;

/// When each probe is due, which are running, and their last status.
#[derive(Default)]
pub struct Probes {
    due: HashMap<String, Instant>,
    running: HashSet<String>,
    status: HashMap<String, ProbeStatus>,
}

impl Probes {
    /// Start every due probe of `cfg` on its own thread; the sample comes back as
    /// [`Msg::Probe`] once it is stored.
    pub fn start_due(&mut self, cfg: &Config, repo: &Arc<Repository>, tx: &Sender<Msg>, log: Log) {
        let now = Instant::now();
        self.due.retain(|name, _| cfg.probes.iter().any(|p| &p.name == name));
        for p in &cfg.probes {
            let due = *self.due.entry(p.name.clone()).or_insert(now);
            if due > now || self.running.contains(&p.name) {
                continue;
            }
            self.due.insert(p.name.clone(), now + p.every());
            self.running.insert(p.name.clone());
            let (p, repo, tx) = (p.clone(), repo.clone(), tx.clone());
            std::thread::spawn(move || {
                let s = lifeboat_service::probe::measure(&p);
                if let Err(e) = lifeboat_ops::probe::record(&repo, &s) {
                    log.warn(
                        "probe_not_recorded",
                        &[("probe", p.name.clone()), ("error", lifeboat_service::one_line(&e))],
                    );
                }
                let _ = tx.send(Msg::Probe(Box::new(s)));
            });
        }
    }

    /// The time until the next probe is due (at most `cap`).
    pub fn wait(&self, cap: Duration) -> Duration {
        let now = Instant::now();
        self.due.values().map(|t| t.saturating_duration_since(now)).min().unwrap_or(cap).min(cap)
    }

    /// A sample came back: the alert for a change of status, if any.
    pub fn finished(&mut self, s: &Sample) -> Option<Alert> {
        self.running.remove(&s.probe);
        // Unknown (no value) is alerted as a warning, with its reason.
        let level = |st: ProbeStatus| match st {
            ProbeStatus::Ok => 0,
            ProbeStatus::Warning | ProbeStatus::Unknown => 1,
            ProbeStatus::Critical => 2,
        };
        let before = self.status.insert(s.probe.clone(), s.status);
        let was = before.map(level).unwrap_or(0);
        let now = level(s.status);
        if now == was && before.is_none_or(|b| b == s.status) {
            return None;
        }
        let event = match now {
            0 if was > 0 => "probe_recovered",
            0 => return None,
            1 => "probe_warning",
            _ => "probe_critical",
        };
        let why = s.message.clone().unwrap_or_else(|| "back inside its thresholds".into());
        let value = s.value.map(lifeboat_service::probe::human_number).unwrap_or_else(|| "no value".into());
        Some(Alert::new(
            event,
            None,
            format!("probe {} is {} ({value}): {why}", s.probe, s.status.label()),
            serde_json::json!({"probe": s.probe, "value": s.value, "status": s.status}),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(status: ProbeStatus) -> Sample {
        Sample { probe: "c".into(), time: chrono::Utc::now(), value: Some(1.0), status, message: None, seconds: 0.0 }
    }

    #[test]
    fn alerts_on_changes_of_status_only() {
        let mut p = Probes::default();
        let events: Vec<Option<String>> = [
            ProbeStatus::Ok,
            ProbeStatus::Ok,
            ProbeStatus::Warning,
            ProbeStatus::Warning,
            ProbeStatus::Critical,
            ProbeStatus::Unknown,
            ProbeStatus::Ok,
        ]
        .into_iter()
        .map(|s| p.finished(&sample(s)).map(|a| a.event))
        .collect();
        let want = [
            None,
            None,
            Some("probe_warning"),
            None,
            Some("probe_critical"),
            Some("probe_warning"),
            Some("probe_recovered"),
        ];
        assert_eq!(events, want.map(|w| w.map(String::from)));
    }
}
