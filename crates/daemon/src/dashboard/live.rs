//! Live progress: the daemon reports each job's start, its progress events and its end to the
//! [`Hub`], which keeps the running jobs (for pages rendered meanwhile) and broadcasts one JSON
//! message per change to the `/events` stream (server-sent events) of every open page.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use axum::extract::State as Axum;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lifeboat_service::human;
use lifeboat_service::progress::Event;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::http::Shared;

/// A running job as the dashboard shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Running {
    /// Job name (`backup:db`, `verify:db`, `check`, …).
    pub job: String,
    /// Its source, if it is about one.
    pub source: Option<String>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// The current step (`backup`, `restore test`, …) and its source.
    pub step: Option<String>,
    /// Files and bytes done.
    pub files: u64,
    /// Bytes done.
    pub bytes: u64,
    /// New bytes stored.
    pub bytes_new: u64,
    /// The size of the work, once known (0: unknown).
    pub total_bytes: u64,
}

impl Running {
    /// `Backup of db`, `Verification of db`, `check`.
    pub fn label(&self) -> String {
        match self.job.split_once(':') {
            Some(("backup", s)) => format!("Backup of {s}"),
            Some(("verify", s)) => format!("Verification of {s}"),
            Some(("drill", s)) => format!("Drill of {s}"),
            Some(("copy", s)) => format!("Copy to {s}"),
            _ => self.job.replace('_', " "),
        }
    }

    /// Percent done, when the total is known.
    pub fn percent(&self) -> Option<u64> {
        (self.total_bytes > 0).then(|| (self.bytes.saturating_mul(100) / self.total_bytes).min(100))
    }

    /// What it is doing, in words: `backup: 1.2 MiB read, 3 files, 200 KiB new`.
    pub fn text(&self) -> String {
        let step = self.step.clone().unwrap_or_else(|| "starting".into());
        if self.bytes == 0 && self.files == 0 {
            return step;
        }
        let mut t = format!("{step}: {} read", human::size(self.bytes));
        if self.total_bytes > 0 {
            t.push_str(&format!(" of {}", human::size(self.total_bytes)));
        }
        if self.files > 0 {
            t.push_str(&format!(", {}", human::count(self.files as usize, "file")));
        }
        if self.bytes_new > 0 {
            t.push_str(&format!(", {} new", human::size(self.bytes_new)));
        }
        t
    }

    fn message(&self, kind: &str, ok: Option<bool>) -> String {
        serde_json::json!({
            "type": kind, "job": self.job, "source": self.source, "label": self.label(),
            "text": self.text(), "percent": self.percent(), "ok": ok,
        })
        .to_string()
    }
}

#[derive(Default)]
struct Inner {
    running: Mutex<BTreeMap<String, Running>>,
    poke: Mutex<Option<Sender<()>>>,
    tx: Mutex<Option<broadcast::Sender<String>>>,
}

/// Where the daemon reports its jobs and the dashboard reads them (cheap to clone).
#[derive(Clone, Default)]
pub struct Hub(Arc<Inner>);

impl Hub {
    fn send(&self, msg: String) {
        let tx = self.0.tx.lock().ok().and_then(|t| t.clone());
        if let Some(tx) = tx {
            // No page open: nobody listens, which is fine.
            let _ = tx.send(msg);
        }
    }

    /// A receiver of every message from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        let mut g = self.0.tx.lock().unwrap_or_else(|e| e.into_inner());
        g.get_or_insert_with(|| broadcast::channel(256).0).subscribe()
    }

    /// A job started.
    pub fn started(&self, job: &str, source: Option<&str>) {
        let r = Running {
            job: job.to_string(),
            source: source.map(String::from),
            started: Utc::now(),
            step: None,
            files: 0,
            bytes: 0,
            bytes_new: 0,
            total_bytes: 0,
        };
        self.send(r.message("started", None));
        if let Ok(mut m) = self.0.running.lock() {
            m.insert(job.to_string(), r);
        }
        self.poke();
    }

    /// A progress event of a running job.
    pub fn event(&self, job: &str, e: &Event) {
        let msg = {
            let Ok(mut m) = self.0.running.lock() else { return };
            let Some(r) = m.get_mut(job) else { return };
            match e {
                Event::Started { step, source, .. } => {
                    r.step = Some(format!("{step} of {source}"));
                    (r.files, r.bytes, r.bytes_new, r.total_bytes) = (0, 0, 0, 0);
                }
                Event::Totals { bytes, .. } => r.total_bytes = *bytes,
                Event::Progress { files, bytes, bytes_new } => {
                    (r.files, r.bytes, r.bytes_new) = (*files, *bytes, *bytes_new);
                }
                _ => return,
            }
            r.message("progress", None)
        };
        self.send(msg);
    }

    /// A job ended.
    pub fn finished(&self, job: &str, ok: bool) {
        let r = self.0.running.lock().ok().and_then(|mut m| m.remove(job));
        if let Some(r) = r {
            self.send(r.message("finished", Some(ok)));
        }
        self.poke();
    }

    /// The catalog was refreshed with something new (open pages reload once a job they showed
    /// has ended).
    pub fn refreshed(&self) {
        self.send(serde_json::json!({"type": "refreshed"}).to_string());
    }

    /// The running jobs, by name.
    pub fn running(&self) -> Vec<Running> {
        self.0.running.lock().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Ask the catalog refresher for a refresh.
    pub fn poke(&self) {
        if let Some(p) = self.0.poke.lock().ok().and_then(|p| p.clone()) {
            let _ = p.send(());
        }
    }

    pub(crate) fn set_poke(&self, tx: Sender<()>) {
        if let Ok(mut p) = self.0.poke.lock() {
            *p = Some(tx);
        }
    }
}

/// `GET /events`: server-sent events, one JSON message per change (`started`, `progress`,
/// `finished`, `refreshed`), the running jobs first.
pub async fn events(Axum(s): Axum<Shared>, headers: HeaderMap) -> Response {
    if super::auth::access(&s, &headers).is_err() {
        return (StatusCode::UNAUTHORIZED, "log in first\n").into_response();
    }
    let rx = s.dash.hub.subscribe();
    let now: Vec<Result<Sse, Infallible>> =
        s.dash.hub.running().iter().map(|r| Ok(Sse::default().data(r.message("progress", None)))).collect();
    let later = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(msg) => return Some((Ok::<_, Infallible>(Sse::default().data(msg)), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures_util::StreamExt as _;
    let stream = futures_util::stream::iter(now).chain(later);
    axum::response::Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}
