//! `lifeboat daemon`: a front end over the service layer that runs each source's `schedule` and
//! the `[jobs]` of the config (retention, check, verify, drill, copy) in the foreground, for
//! systemd or Kubernetes.
//!
//! - never two runs of one job at once (a run still going when the next is due is skipped and
//!   recorded), at most `[jobs] max_concurrent` runs together;
//! - runs missed while the daemon was down run once at start;
//! - SIGTERM/SIGINT: no new runs; running work may finish within `[jobs] grace`, then it is
//!   interrupted cleanly (no partial snapshot, no stale lock); exit 0. SIGHUP: reload the config;
//!   an invalid config keeps the old one and raises `config_invalid`;
//! - every run is recorded in the repository by the service layer (trigger `daemon`); a run a
//!   killed daemon left behind is recorded as failed at the next start;
//! - alerts through `[[notify]]`, metrics and the API through `[server]`; one log line per
//!   event.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_ops::records::{self, Run, RunKind, RunOutcome};
use lifeboat_repository::Repository;
use lifeboat_service::config::Config;
use lifeboat_service::progress::{Event, Observer};
use lifeboat_service::session::Loaded;
use lifeboat_service::{one_line, Session};

pub mod dashboard;
pub mod http;
pub mod jobs;
pub mod log;
pub mod notify;
pub mod probes;
pub mod state;
pub mod units;

use jobs::{Job, Work};
use log::Log;
use notify::{Alert, Retry};
use state::State;

/// What can go wrong before the daemon runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// From the service layer (config, repository).
    #[error(transparent)]
    Service(#[from] lifeboat_service::ServiceError),
    /// The server could not start.
    #[error("{0}")]
    Server(String),
}

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Log line format.
    pub log: log::Format,
    /// Listen address instead of `[server] listen` (e.g. `127.0.0.1:0` in tests).
    pub listen: Option<String>,
}

/// Messages to the scheduler.
#[derive(Debug)]
pub enum Msg {
    /// SIGTERM, SIGINT or SIGHUP.
    Signal(i32),
    /// A run ended.
    Done(Box<Finished>),
    /// Run this job now (API).
    RunNow(String),
    /// A probe's sample, stored.
    Probe(Box<lifeboat_ops::probe::Sample>),
    /// Continuous replication of a sqlite source reported something.
    Replica(Box<lifeboat_service::replicate::ReplicaEvent>),
}

/// A run that ended.
#[derive(Debug)]
pub struct Finished {
    /// Job name.
    pub job: String,
    /// Alerts it raised.
    pub alerts: Vec<Alert>,
    /// State changes: per source.
    pub updates: Vec<(String, Update)>,
    /// Runs it made, by kind and outcome.
    pub counted: Vec<(RunKind, RunOutcome)>,
    /// `[[copy]]` destinations copied to successfully.
    pub copied: Vec<String>,
}

/// A change to one source's state.
#[derive(Debug)]
pub enum Update {
    /// A backup ended.
    Backup {
        /// Succeeded.
        ok: bool,
        /// Its error.
        error: Option<String>,
        /// Seconds.
        seconds: f64,
        /// Bytes stored.
        added: Option<u64>,
    },
    /// A verification ended.
    Verified(bool),
    /// A drill measured this recovery time.
    Drilled(f64),
}

/// Run the daemon until SIGTERM/SIGINT; returns the exit code (0).
pub fn run(mut session: Session, opts: Options) -> Result<i32, DaemonError> {
    let log = Log::new(opts.log);
    let began = Instant::now();
    session.trigger = "daemon".into();
    if session.retry_lock.is_none() {
        // Jobs wait for each other's locks (a prune waits for a backup) instead of failing.
        session.retry_lock = Some("30m".into());
    }
    let cfg = session.require_config("the daemon needs a config file")?;
    // Every job lists the snapshots (a backup for its parent): decode each snapshot file once.
    lifeboat_repository::snapshots::keep_in_memory();
    let repo = session.open()?;
    let quiet = lifeboat_service::progress::ignore();
    // Runs whose process died are ended first; then only as much history as the state and the
    // first due times need is read, newest first.
    let died = lifeboat_service::runs::reap(&repo, quiet.as_ref())?;
    for r in died {
        log.warn(
            "run_died",
            &[("run", r.id.clone()), ("kind", r.kind.name().into()), ("source", r.source.clone().unwrap_or_default())],
        );
    }
    let (snaps, _) = lifeboat_repository::snapshots::list(&repo).map_err(|e| DaemonError::Service(e.into()))?;
    let mut newest: HashMap<String, DateTime<Utc>> = HashMap::new();
    for s in &snaps {
        if let Some(src) = &s.snapshot.source {
            let t = newest.entry(src.name.clone()).or_insert(s.snapshot.time);
            *t = (*t).max(s.snapshot.time);
        }
    }
    let history = read_history(&repo, &cfg, &newest).map_err(|e| DaemonError::Service(e.into()))?;
    let (n_snaps, n_runs) = (snaps.len(), history.len());
    let state = Arc::new(Mutex::new(initial_state(&repo, &cfg, &snaps, &history)?));
    let (tx, rx) = channel::<Msg>();
    let hub = dashboard::Hub::default();
    // The HTTP server.
    let api_session = Arc::new(Mutex::new(session.clone()));
    let listen = opts.listen.clone().or_else(|| cfg.server.as_ref().and_then(|s| s.listen.clone()));
    if cfg.server.is_some() || opts.listen.is_some() {
        let addr: SocketAddr = listen
            .as_deref()
            .unwrap_or("127.0.0.1:9848")
            .parse()
            .map_err(|e| DaemonError::Server(format!("[server] listen: {e}")))?;
        let token = read_token(&cfg, |s| s.token_file.as_deref())?;
        let admin = read_token(&cfg, |s| s.admin_token_file.as_deref())?;
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(DaemonError::Server(format!(
                "[server] listen = {addr} is not a loopback address: set token_file (a bearer token is required off loopback)"
            )));
        }
        let dash = dashboard::Dash::start(&session, &cfg, hub.clone(), log);
        let shared = http::Shared {
            state: state.clone(),
            session: api_session.clone(),
            tx: Arc::new(Mutex::new(tx.clone())),
            token,
            admin,
            dash,
        };
        let tls = tls_files(&cfg)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let bound =
            http::serve(addr, shared, tls).map_err(|e| DaemonError::Server(format!("cannot listen on {addr}: {e}")))?;
        log.info("server_listening", &[("scheme", scheme.into()), ("address", bound.to_string())]);
    }
    // Signals.
    {
        let tx = tx.clone();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ])
        .map_err(|e| DaemonError::Server(format!("cannot install signal handlers: {e}")))?;
        std::thread::spawn(move || {
            for sig in signals.forever() {
                if tx.send(Msg::Signal(sig)).is_err() {
                    break;
                }
            }
        });
    }
    // Point-in-time sources: when each archived its newest WAL file or segment (its recovery
    // point, for the RPO and the metrics); refreshed every minute (PostgreSQL's archiver runs
    // `wal-push` outside the daemon).
    if let Ok(mut st) = state.lock() {
        refresh_wal(&mut st, &repo, &cfg);
    }
    let replication = start_replication(&session, &cfg, &tx, log);
    let mut d = Daemon {
        api_session,
        session,
        cfg,
        repo: Arc::new(repo),
        state,
        log,
        tx,
        jobs: Vec::new(),
        due: BTreeMap::new(),
        running: HashMap::new(),
        interrupt: Arc::new(AtomicBool::new(false)),
        alerted: HashMap::new(),
        probes: probes::Probes::default(),
        started: HashMap::new(),
        hub,
    };
    d.set_jobs(&history);
    let n = d.jobs.len();
    d.log.info(
        "daemon_started",
        &[
            ("jobs", n.to_string()),
            ("sources", d.cfg.sources.len().to_string()),
            ("snapshots", n_snaps.to_string()),
            ("runs_read", n_runs.to_string()),
            ("seconds", format!("{:.2}", began.elapsed().as_secs_f64())),
        ],
    );
    let mut last_rpo = Instant::now() - Duration::from_secs(3600);
    let mut last_space = Instant::now() - Duration::from_secs(3600);
    let mut stopping: Option<Instant> = None;
    loop {
        let now = Utc::now();
        if stopping.is_none() {
            d.start_due(now);
            d.probes.start_due(&d.cfg, &d.repo, &d.tx, d.log);
        }
        if last_rpo.elapsed() >= Duration::from_secs(10) {
            d.evaluate_rpo(now);
            last_rpo = Instant::now();
        }
        if last_space.elapsed() >= Duration::from_secs(60) {
            d.check_space();
            if let Ok(mut st) = d.state.lock() {
                refresh_wal(&mut st, &d.repo, &d.cfg);
            }
            last_space = Instant::now();
        }
        if let Some(since) = stopping {
            if d.running.is_empty() {
                break;
            }
            if since.elapsed() >= d.cfg.jobs.grace() && !d.interrupt.load(Ordering::Relaxed) {
                d.log.warn("grace_over", &[("interrupting", d.running.len().to_string())]);
                d.interrupt.store(true, Ordering::SeqCst);
            }
        }
        let wait = d
            .due
            .values()
            .min()
            .map(|t| (*t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(1))
            .min(d.probes.wait(Duration::from_secs(1)));
        match rx.recv_timeout(wait) {
            Ok(Msg::Signal(sig)) if sig == signal_hook::consts::SIGHUP => d.reload(),
            Ok(Msg::Signal(_)) => {
                if stopping.is_none() {
                    d.log.info("stopping", &[("running", d.running.len().to_string())]);
                    stopping = Some(Instant::now());
                    // Replication stops at once: what is shipped stays shipped.
                    if let Some((stop, _)) = &replication {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
            }
            Ok(Msg::Replica(e)) => d.replica_event(*e),
            Ok(Msg::Done(f)) => d.finished(*f),
            Ok(Msg::Probe(sample)) => {
                if let Ok(mut st) = d.state.lock() {
                    st.probes.insert(sample.probe.clone(), (sample.value, sample.status));
                }
                if let Some(a) = d.probes.finished(&sample) {
                    d.alert(a);
                }
            }
            Ok(Msg::RunNow(job)) => {
                if d.jobs.iter().any(|j| j.name == job) {
                    d.due.insert(job, Utc::now());
                } else if let (Some(once), false) = (jobs::once(&job, &d.cfg), d.running.contains_key(&job)) {
                    // Not a scheduled job: one run now (the API's and the dashboard's "back up
                    // now", "verify now", "start a drill").
                    d.spawn(once);
                } else {
                    d.log.warn("unknown_job", &[("job", job)]);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some((stop, handle)) = replication {
        stop.store(true, Ordering::SeqCst);
        let _ = handle.join();
        // Its last words (where each source stopped).
        while let Ok(m) = rx.try_recv() {
            if let Msg::Replica(e) = m {
                d.replica_event(*e);
            }
        }
    }
    d.log.info("daemon_stopped", &[]);
    Ok(0)
}

/// Read when each point-in-time source last archived WAL (one listing).
fn refresh_wal(st: &mut State, repo: &Repository, cfg: &Config) {
    let names: Vec<&str> = cfg
        .sources()
        .filter(|s| s.source.continuous(&s.name).ok().flatten().is_some() || s.kind() == "postgres")
        .map(|s| s.name.as_str())
        .collect();
    if names.is_empty() {
        return;
    }
    if let Ok(last) = lifeboat_ops::wal::last_pushes(repo, &names) {
        for (name, t) in last {
            if let Some(s) = st.sources.get_mut(&name) {
                s.wal_last = Some(s.wal_last.map_or(t, |old| old.max(t)));
            }
        }
    }
}

/// Continuous replication of the config's `continuous = true` sources in a thread of its own
/// (each source in its own thread below it), reporting to the main loop; `None` when there
/// are none.
fn start_replication(
    session: &Session,
    cfg: &Config,
    tx: &Sender<Msg>,
    log: Log,
) -> Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    let names: Vec<String> = lifeboat_service::replicate::continuous_sources(cfg, &[])
        .ok()?
        .into_iter()
        .map(|(s, _)| s.name.clone())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (session, flag, tx) = (session.clone(), stop.clone(), Mutex::new(tx.clone()));
    let handle = std::thread::spawn(move || {
        let on = move |e: &lifeboat_service::replicate::ReplicaEvent| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(Msg::Replica(Box::new(e.clone())));
            }
        };
        let opts = lifeboat_service::replicate::ReplicateOptions::default();
        if let Err(e) = lifeboat_service::replicate::replicate(&session, &names, &opts, &flag, &on) {
            log.error("replication_failed", &[("error", one_line(&e))]);
        }
    });
    Some((stop, handle))
}

fn read_token(
    cfg: &Config,
    pick: impl Fn(&lifeboat_service::config::ServerSection) -> Option<&str>,
) -> Result<Option<String>, DaemonError> {
    let Some(path) = cfg.server.as_ref().and_then(pick) else { return Ok(None) };
    let path = lifeboat_service::config::substitute(path, "[server] token_file")?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| DaemonError::Server(format!("cannot read the token file {path}: {e}")))?;
    let t = text.lines().next().unwrap_or_default().trim().to_string();
    if t.is_empty() {
        return Err(DaemonError::Server(format!("the token file {path} is empty")));
    }
    Ok(Some(t))
}

/// The run history the start needs (see [`jobs::Needs`]), oldest first.
fn read_history(
    repo: &Repository,
    cfg: &Config,
    newest: &HashMap<String, DateTime<Utc>>,
) -> Result<Vec<Run>, lifeboat_ops::OpsError> {
    let names: Vec<String> = cfg.sources().map(|s| s.name.clone()).collect();
    let mut needs = jobs::Needs::new(&jobs::jobs(cfg), &names, newest, Utc::now(), cfg.jobs.zone());
    let tags = needs.wanted().into_iter().map(|(kind, source)| records::run_tag(repo, kind, source)).collect();
    records::recent_runs(repo, &tags, |r| needs.more(r))
}

/// `[server] tls_cert` and `tls_key`: both or neither; the pair must load now.
fn tls_files(cfg: &Config) -> Result<Option<Arc<http::tls::CertFiles>>, DaemonError> {
    let Some(server) = cfg.server.as_ref() else { return Ok(None) };
    let (cert, key) = match (server.tls_cert.as_deref(), server.tls_key.as_deref()) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => return Err(DaemonError::Server("[server] tls_cert and tls_key go together: set both or neither".into())),
    };
    let cert = lifeboat_service::config::substitute(cert, "[server] tls_cert")?;
    let key = lifeboat_service::config::substitute(key, "[server] tls_key")?;
    let files = http::tls::CertFiles::open(cert.into(), key.into()).map_err(DaemonError::Server)?;
    Ok(Some(Arc::new(files)))
}

/// The state from the repository's records, with every config source (even never backed up).
fn initial_state(
    repo: &Repository,
    cfg: &Config,
    snaps: &[lifeboat_repository::snapshots::SnapshotEntry],
    history: &[Run],
) -> Result<State, DaemonError> {
    let svc = |e: lifeboat_ops::OpsError| DaemonError::Service(e.into());
    let mut st = State { started: Utc::now(), config_ok: true, ..State::default() };
    apply_objectives(&mut st, cfg);
    st.load(snaps, &records::verifications(repo).map_err(svc)?, &records::drills(repo).map_err(svc)?, history);
    if let Ok(u) = lifeboat_ops::usage::usage(repo) {
        st.repository = Some((u.pack_bytes + u.metadata_bytes, u.packs as u64, u.dedup_ratio, u.compression_ratio));
    }
    Ok(st)
}

fn apply_objectives(st: &mut State, cfg: &Config) {
    let labels: Vec<String> = cfg.copies.iter().map(|c| c.label().to_string()).collect();
    st.copies.retain(|k, _| labels.contains(k));
    for l in labels {
        st.copies.entry(l).or_insert(None);
    }
    for s in cfg.sources() {
        let e = st.sources.entry(s.name.clone()).or_default();
        e.rpo = s.rpo.as_ref().map(|o| o.duration.as_secs_f64());
        e.rto = s.rto.as_ref().map(|o| o.duration.as_secs_f64());
    }
    let names: Vec<&str> = cfg.sources().map(|s| s.name.as_str()).collect();
    st.sources.retain(|k, _| names.contains(&k.as_str()));
}

struct Daemon {
    /// The session the HTTP API reads with (replaced on reload).
    api_session: Arc<Mutex<Session>>,
    session: Session,
    cfg: Arc<Config>,
    repo: Arc<Repository>,
    state: Arc<Mutex<State>>,
    log: Log,
    tx: Sender<Msg>,
    jobs: Vec<Job>,
    due: BTreeMap<String, DateTime<Utc>>,
    running: HashMap<String, Instant>,
    interrupt: Arc<AtomicBool>,
    /// The probes' schedule and last status.
    probes: probes::Probes,
    /// Alerts sent per (event family, source), so repeats are not re-sent.
    alerted: HashMap<(String, String), bool>,
    /// Deliveries of `backup_started` per source, which the end of that backup waits for.
    started: HashMap<String, Vec<std::thread::JoinHandle<bool>>>,
    /// Running jobs and their progress, for the dashboard.
    hub: dashboard::Hub,
}

impl Daemon {
    fn set_jobs(&mut self, history: &[Run]) {
        let (offset, jitter) = (self.cfg.jobs.zone(), self.cfg.jobs.jitter());
        let old = std::mem::take(&mut self.due);
        self.jobs = jobs::jobs(&self.cfg);
        let now = Utc::now();
        for j in &self.jobs {
            let due = match old.get(&j.name) {
                Some(t) => Some(*t),
                None => jobs::first_due(j, history, now, offset, jitter),
            };
            if let Some(t) = due {
                self.due.insert(j.name.clone(), t);
            }
        }
        self.publish_next();
    }

    fn publish_next(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.next = self.due.clone();
        }
    }

    /// Start every due job that may start; skip (and record) those still running.
    fn start_due(&mut self, now: DateTime<Utc>) {
        let due: Vec<String> = self.due.iter().filter(|(_, t)| **t <= now).map(|(n, _)| n.clone()).collect();
        let mut changed = false;
        for name in due {
            let Some(job) = self.jobs.iter().find(|j| j.name == name).cloned() else {
                self.due.remove(&name);
                continue;
            };
            if self.running.contains_key(&name) {
                self.skip(&job);
            } else if self.running.len() >= self.cfg.jobs.max_concurrent() {
                continue; // waits for a free slot
            } else {
                self.spawn(job.clone());
            }
            changed = true;
            match jobs::next(&job.schedule, now, self.cfg.jobs.zone(), self.cfg.jobs.jitter()) {
                Some(t) => self.due.insert(name, t),
                None => self.due.remove(&name),
            };
        }
        if changed {
            self.publish_next();
        }
    }

    fn skip(&self, job: &Job) {
        self.log
            .warn("run_skipped", &[("job", job.name.clone()), ("reason", "the previous run is still going".into())]);
        let quiet = lifeboat_service::progress::ignore();
        let run = lifeboat_service::runs::begin(&self.repo, &self.session, job.kind(), job.source(), quiet.as_ref());
        lifeboat_service::runs::end(
            &self.repo,
            run,
            RunOutcome::Skipped,
            Some("the previous run of this job was still going".into()),
            quiet.as_ref(),
        );
        if let Ok(mut st) = self.state.lock() {
            st.count(job.kind(), RunOutcome::Skipped);
        }
    }

    fn spawn(&mut self, job: Job) {
        self.log.info("run_started", &[("job", job.name.clone())]);
        if let Work::Backup(name) = &job.work {
            // healthchecks-style start pings (and anyone who asked for backup_started).
            let a = Alert::new(
                "backup_started",
                Some(name),
                format!("backup of {name} started"),
                serde_json::json!({"job": job.name}),
            );
            let handles = notify::send(&self.cfg.notify, &a, self.log, Retry::default());
            if !handles.is_empty() {
                self.started.insert(name.clone(), handles);
            }
        }
        self.running.insert(job.name.clone(), Instant::now());
        self.hub.started(&job.name, job.source());
        let (session, cfg, tx, interrupt, log) =
            (self.session.clone(), self.cfg.clone(), self.tx.clone(), self.interrupt.clone(), self.log);
        let hub = self.hub.clone();
        std::thread::spawn(move || {
            let f = work(&session, &cfg, &job, &interrupt, log, &hub);
            let _ = tx.send(Msg::Done(Box::new(f)));
        });
    }

    fn finished(&mut self, f: Finished) {
        let took = self.running.remove(&f.job).map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
        self.log.info("run_finished", &[("job", f.job.clone()), ("seconds", format!("{took:.1}"))]);
        self.hub.finished(&f.job, f.counted.iter().all(|(_, o)| *o != RunOutcome::Failed));
        let mut alerts = f.alerts;
        if let Ok(mut st) = self.state.lock() {
            for (k, o) in &f.counted {
                st.count(*k, *o);
            }
            for d in &f.copied {
                st.copies.insert(d.clone(), Some(Utc::now()));
            }
            for (source, u) in f.updates {
                let s = st.sources.entry(source.clone()).or_default();
                match u {
                    Update::Backup { ok, error, seconds, added } => {
                        s.last_run_ok = Some(ok);
                        s.last_error = error;
                        if ok {
                            s.last_success = Some(Utc::now());
                            s.duration = Some(seconds);
                            s.added = added;
                            s.snapshots += 1;
                            if let Some(b) = added {
                                if let Some(median) = state::anomaly(&s.recent_added, b) {
                                    alerts.push(Alert::new(
                                        "size_anomaly",
                                        Some(&source),
                                        format!("backup of {source} stored {b} bytes; the median of its last backups is {median}"),
                                        serde_json::json!({"bytes": b, "median": median}),
                                    ));
                                }
                                s.recent_added.push(b);
                                let n = s.recent_added.len();
                                s.recent_added.drain(..n.saturating_sub(10));
                            }
                        }
                    }
                    Update::Verified(ok) => s.verification = Some((Utc::now(), ok)),
                    Update::Drilled(rto) => s.drill_rto = Some(rto),
                }
            }
        }
        for a in alerts {
            self.alert(a);
        }
        // A backup may have ended or caused an RPO breach: tell at once, not at the next tick.
        self.evaluate_rpo(Utc::now());
    }

    /// Send an alert unless the same condition was already reported (failures are sent once
    /// until the source recovers).
    fn alert(&mut self, a: Alert) {
        if a.event.starts_with("probe_") {
            // Probes alert on their own changes of status (see probes.rs): nothing to suppress.
            self.log.info("alert", &[("alert", a.event.clone()), ("message", a.message.clone())]);
            let _ = notify::send(&self.cfg.notify, &a, self.log, Retry::default());
            return;
        }
        let family = match a.event.as_str() {
            "backup_failed" | "backup_ok" => "backup",
            "rpo_breached" | "rpo_recovered" => "rpo",
            e => e,
        }
        .to_string();
        let key = (family, a.source.clone().unwrap_or_default());
        let bad = !matches!(a.event.as_str(), "backup_ok" | "rpo_recovered");
        let before = self.alerted.insert(key, bad).unwrap_or(false);
        // A backup's end ping goes out after its start ping, and to healthchecks targets every
        // time: a ping is the check's state, not a message to people.
        let after = match (a.event.as_str(), &a.source) {
            ("backup_ok" | "backup_failed", Some(s)) => self.started.remove(s).unwrap_or_default(),
            _ => Vec::new(),
        };
        if bad && before && a.event != "size_anomaly" && a.event != "config_invalid" {
            // Already reported, not recovered since.
            let pings: Vec<_> = self.cfg.notify.iter().filter(|t| t.kind == "healthchecks").cloned().collect();
            let _ = notify::send_after(&pings, &a, self.log, Retry::default(), after);
            return;
        }
        if a.event == "rpo_recovered" && !before {
            return;
        }
        self.log.info(
            "alert",
            &[
                ("alert", a.event.clone()),
                ("source", a.source.clone().unwrap_or_default()),
                ("message", a.message.clone()),
            ],
        );
        let _ = notify::send_after(&self.cfg.notify, &a, self.log, Retry::default(), after);
    }

    /// A replication event: the source's recovery point moves with every shipment; starts,
    /// new generations, errors and stops are logged (shipments are too many to log).
    fn replica_event(&mut self, e: lifeboat_service::replicate::ReplicaEvent) {
        use lifeboat_service::replicate::ReplicaEvent as E;
        match &e {
            E::Shipped { source, last, .. } => {
                if let Ok(mut st) = self.state.lock() {
                    if let Some(s) = st.sources.get_mut(source) {
                        s.wal_last = Some(Utc::now());
                        s.txid = Some(*last);
                    }
                }
            }
            E::Started { source, generation, txid, resumed } => self.log.info(
                "replication_started",
                &[
                    ("source", source.clone()),
                    ("generation", generation.clone()),
                    ("txid", txid.to_string()),
                    ("resumed", resumed.to_string()),
                ],
            ),
            E::Generation { source, generation, snapshot, txid, reason, seconds } => {
                if let Ok(mut st) = self.state.lock() {
                    if let Some(s) = st.sources.get_mut(source) {
                        s.wal_last = Some(Utc::now());
                        s.txid = Some(*txid);
                    }
                }
                self.log.info(
                    "replication_generation",
                    &[
                        ("source", source.clone()),
                        ("generation", generation.clone()),
                        ("snapshot", snapshot.clone()),
                        ("txid", txid.to_string()),
                        ("seconds", format!("{seconds:.2}")),
                        ("reason", reason.clone()),
                    ],
                );
            }
            E::Error { source, message, retry_seconds } => self.log.error(
                "replication_error",
                &[
                    ("source", source.clone()),
                    ("error", message.clone()),
                    ("retry_seconds", format!("{retry_seconds:.0}")),
                ],
            ),
            E::Stopped { source, txid } => {
                self.log.info("replication_stopped", &[("source", source.clone()), ("txid", txid.to_string())])
            }
        }
    }

    fn evaluate_rpo(&mut self, now: DateTime<Utc>) {
        let mut alerts = Vec::new();
        if let Ok(mut st) = self.state.lock() {
            for (name, s) in st.sources.iter_mut() {
                let Some(rpo) = s.rpo else { continue };
                // The recovery point: the newest backup, or the newest archived WAL of a
                // point-in-time source.
                let point = match (s.last_success, s.wal_last) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                let age = point.map(|t| (now - t).num_milliseconds() as f64 / 1000.0);
                let breached = age.is_none_or(|a| a > rpo);
                if breached != s.rpo_breached {
                    s.rpo_breached = breached;
                    let (event, message) = if breached {
                        (
                            "rpo_breached",
                            match age {
                                Some(a) => {
                                    format!("{name}: the newest backup is {a:.0}s old, beyond its RPO of {rpo:.0}s")
                                }
                                None => format!("{name}: no backup yet (RPO {rpo:.0}s)"),
                            },
                        )
                    } else {
                        ("rpo_recovered", format!("{name}: back within its RPO of {rpo:.0}s"))
                    };
                    alerts.push(Alert::new(
                        event,
                        Some(name),
                        message,
                        serde_json::json!({"rpo_seconds": rpo, "age_seconds": age}),
                    ));
                }
            }
        }
        for a in alerts {
            self.alert(a);
        }
    }

    /// Free space of a local repository's file system: metric, and `storage_low` below the
    /// configured share (once until it recovers).
    fn check_space(&mut self) {
        let Ok(url) = self.session.repo_url() else { return };
        let Ok(path) = lifeboat_service::session::local_path(&url) else { return };
        let Ok(space) = lifeboat_service::storage::FreeSpace::measure(path, self.cfg.jobs.storage_low_percent()) else {
            return;
        };
        let (free, total, pct) = (space.free_bytes, space.total_bytes, space.threshold_percent);
        if let Ok(mut s) = self.state.lock() {
            s.free = Some((free, total));
        }
        if space.low {
            let share = space.free_percent;
            self.alert(Alert::new(
                "storage_low",
                None,
                format!("the repository's file system has {share:.1} % free ({free} of {total} bytes), below {pct} %"),
                serde_json::json!({"free_bytes": free, "total_bytes": total, "threshold_percent": pct}),
            ));
        } else {
            self.alerted.remove(&("storage_low".to_string(), String::new()));
        }
    }

    fn reload(&mut self) {
        let fresh = Session { loaded: Loaded::default(), ..self.session.clone() };
        match fresh.require_config("reload") {
            Ok(cfg) => {
                self.session = fresh;
                if let Ok(mut api) = self.api_session.lock() {
                    *api = self.session.clone();
                }
                self.cfg = cfg;
                if let Ok(mut st) = self.state.lock() {
                    apply_objectives(&mut st, &self.cfg);
                    st.config_ok = true;
                }
                let newest: HashMap<String, DateTime<Utc>> = match self.state.lock() {
                    Ok(st) => st.sources.iter().filter_map(|(n, s)| Some((n.clone(), s.last_success?))).collect(),
                    Err(_) => HashMap::new(),
                };
                let history = read_history(&self.repo, &self.cfg, &newest).unwrap_or_default();
                self.set_jobs(&history);
                self.log.info("config_reloaded", &[("jobs", self.jobs.len().to_string())]);
            }
            Err(e) => {
                let msg = one_line(&e);
                self.log
                    .error("config_invalid", &[("error", msg.clone()), ("action", "kept the running config".into())]);
                if let Ok(mut st) = self.state.lock() {
                    st.config_ok = false;
                }
                self.alert(Alert::new(
                    "config_invalid",
                    None,
                    format!("reload refused, the old config stays: {msg}"),
                    serde_json::json!({}),
                ));
            }
        }
    }
}

/// Log the service's warnings; pass every event to the dashboard's live view.
fn observer(log: Log, job: String, hub: dashboard::Hub) -> Arc<Observer> {
    Arc::new(move |e: &Event| {
        if let Event::Warning { message } = e {
            log.warn("warning", &[("job", job.clone()), ("message", message.clone())]);
        }
        hub.event(&job, e);
    })
}

/// Run one job through the service layer.
fn work(
    session: &Session,
    cfg: &Config,
    job: &Job,
    interrupt: &Arc<AtomicBool>,
    log: Log,
    hub: &dashboard::Hub,
) -> Finished {
    use lifeboat_service::{backup, copy, drill, inventory, retention, verify};
    let o = observer(log, job.name.clone(), hub.clone());
    let mut f = Finished {
        job: job.name.clone(),
        alerts: Vec::new(),
        updates: Vec::new(),
        counted: Vec::new(),
        copied: Vec::new(),
    };
    let fail = |f: &mut Finished, event: &str, source: Option<&str>, e: String| {
        log.error("run_failed", &[("job", f.job.clone()), ("error", e.clone())]);
        f.alerts.push(Alert::new(event, source, e.clone(), serde_json::json!({"job": f.job, "error": e})));
    };
    match &job.work {
        Work::Backup(name) => {
            let Ok(src) = cfg.find(name) else { return f };
            let r = backup::sources(session, cfg, &[src], &backup::SourcesRequest::default(), interrupt, &o);
            let (ok, error, seconds, added) = match &r {
                Ok(rep) => match rep.sources.first().map(|s| (&s.result, s.seconds)) {
                    Some((Ok(st), secs)) => (true, None, secs, Some(st.summary.data_added_packed)),
                    Some((Err(e), secs)) => (false, Some(e.clone()), secs, None),
                    None => (false, Some("no result".into()), 0.0, None),
                },
                Err(e) => (false, Some(one_line(e)), 0.0, None),
            };
            f.counted.push((RunKind::Backup, if ok { RunOutcome::Ok } else { RunOutcome::Failed }));
            if ok {
                f.alerts.push(Alert::new(
                    "backup_ok",
                    Some(name),
                    format!("backup of {name} succeeded"),
                    serde_json::json!({"bytes": added}),
                ));
            } else {
                fail(
                    &mut f,
                    "backup_failed",
                    Some(name),
                    format!("backup of {name} failed: {}", error.clone().unwrap_or_default()),
                );
            }
            f.updates.push((name.clone(), Update::Backup { ok, error, seconds, added }));
        }
        Work::ApplyRetention => {
            let p = retention::PruneSettings { dry_run: false, repack_below: 0.8 };
            let r = retention::apply(session, false, Some(p), interrupt, &o);
            f.counted.push((RunKind::ApplyRetention, if r.is_ok() { RunOutcome::Ok } else { RunOutcome::Failed }));
            if let Err(e) = r {
                log.error("run_failed", &[("job", f.job.clone()), ("error", one_line(&e))]);
            }
        }
        Work::Check { read_data_percent } => {
            let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let r = inventory::check(
                session,
                (*read_data_percent > 0).then_some(*read_data_percent),
                interrupt,
                done,
                &mut |_| {},
                o.as_ref(),
            );
            let ok = r.as_ref().is_ok_and(|c| c.is_ok());
            f.counted.push((RunKind::Check, if ok { RunOutcome::Ok } else { RunOutcome::Failed }));
            if !ok {
                let e = match r {
                    Ok(c) => format!("check found {} errors", c.errors.len()),
                    Err(e) => one_line(&e),
                };
                log.error("run_failed", &[("job", f.job.clone()), ("error", e)]);
            }
        }
        Work::Verify { restore_test, source } => {
            let filter = lifeboat_service::FilterSpec { source: source.clone(), ..Default::default() };
            let req = verify::VerifyRequest { restore_test: *restore_test, filter, ..Default::default() };
            match verify::verify(session, &req, interrupt, &o, &mut |_| {}) {
                Ok(report) => {
                    for d in &report.damaged {
                        fail(&mut f, "verify_failed", None, format!("damaged snapshot file: {d}"));
                    }
                    for v in report.results {
                        let ok = v.record.outcome != lifeboat_ops::records::Outcome::Failed;
                        let kind = if *restore_test { RunKind::RestoreTest } else { RunKind::Verify };
                        f.counted.push((kind, if ok { RunOutcome::Ok } else { RunOutcome::Failed }));
                        if let Some(src) = &v.record.source {
                            f.updates.push((src.clone(), Update::Verified(ok)));
                            if !ok {
                                let event = if *restore_test { "restore_test_failed" } else { "verify_failed" };
                                let why = v.record.findings.first().cloned().unwrap_or_default();
                                fail(&mut f, event, Some(src), format!("verification of {src} failed: {why}"));
                            }
                        }
                    }
                }
                Err(e) => fail(&mut f, "verify_failed", None, one_line(&e)),
            }
        }
        Work::Drill { random, source } => {
            let req = drill::DrillRequest { random: *random, source: source.clone(), ..Default::default() };
            match drill::drill(session, &req, interrupt, &o) {
                Ok(d) => {
                    for s in &d.report.sources {
                        let ok = s.outcome != lifeboat_ops::records::Outcome::Failed;
                        f.counted.push((RunKind::Drill, if ok { RunOutcome::Ok } else { RunOutcome::Failed }));
                        f.updates.push((s.source.clone(), Update::Drilled(s.rto_seconds)));
                        if !ok {
                            fail(
                                &mut f,
                                "drill_failed",
                                Some(&s.source),
                                format!("drill of {} failed: {}", s.source, s.findings.join("; ")),
                            );
                        }
                        if let Some(target) = s.rto_target_seconds.filter(|t| s.rto_seconds > *t) {
                            fail(
                                &mut f,
                                "rto_exceeded",
                                Some(&s.source),
                                format!("drill of {}: recovery took {:.1}s, RTO {target:.0}s", s.source, s.rto_seconds),
                            );
                        }
                    }
                }
                Err(e) => fail(&mut f, "drill_failed", None, one_line(&e)),
            }
        }
        Work::Copy { to } => {
            let dests: Vec<String> = match to {
                Some(t) => vec![t.clone()],
                None => cfg.copies.iter().map(|c| c.label().to_string()).collect(),
            };
            for d in dests {
                let req = copy::CopyRequest { to: d.clone(), ..Default::default() };
                let r = copy::run(session, &req, interrupt, &o);
                f.counted.push((RunKind::Copy, if r.is_ok() { RunOutcome::Ok } else { RunOutcome::Failed }));
                if r.is_ok() {
                    f.copied.push(d.clone());
                }
                if let Err(e) = r {
                    fail(&mut f, "copy_behind", None, format!("copy to {d} failed: {}", one_line(&e)));
                }
            }
        }
    }
    f
}
