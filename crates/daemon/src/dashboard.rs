//! The web dashboard, served by the daemon on the `[server]` address beside `/metrics` and the
//! API: server-rendered HTML (maud), charts as inline SVG, one small embedded script for live
//! progress (server-sent events) and copy-to-clipboard, one stylesheet — everything embedded in
//! the binary, nothing loaded from elsewhere.
//!
//! - [`live`]: the running jobs and their progress, fed by the daemon's progress events, and
//!   the `/events` stream;
//! - [`auth`]: sessions (loopback without a token, else a token login), roles (read-only and
//!   admin), CSRF tokens and the Origin check on every form;
//! - [`pages`]: the handlers and the HTML; [`charts`]: the SVG charts (shared with
//!   `lifeboat report --html`, so they live in the service layer).
//!
//! The data comes from the service layer ([`lifeboat_service::overview`]) over a
//! [`Catalog`] kept in memory and refreshed in the background (at start, when a job starts or
//! ends, when a page is viewed and the catalog is older than [`STALE`], and every minute), so a
//! page never waits for the repository.

pub mod auth;
pub mod live;
pub mod pages;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use lifeboat_service::config::Config;
use lifeboat_service::overview::Catalog;
use lifeboat_service::Session;

pub use lifeboat_service::charts;
pub use live::Hub;

use crate::http::Shared;
use crate::log::Log;

/// A page viewed when the catalog is older than this asks for a refresh (the page itself is
/// rendered from what is there).
pub const STALE: Duration = Duration::from_secs(10);

/// Without a poke, the catalog is refreshed this often.
const IDLE_REFRESH: Duration = Duration::from_secs(60);

/// What the dashboard's handlers share (one per daemon).
pub struct Dash {
    /// The repository's records, as last refreshed (replaced whole, so a page holds one
    /// consistent version while the next is loaded).
    pub catalog: Arc<RwLock<Arc<Catalog>>>,
    /// When the last refresh ended (Unix milliseconds; 0: none yet), changed or not.
    pub checked: Arc<AtomicI64>,
    /// Running jobs and progress events.
    pub hub: Hub,
    /// Logged-in sessions.
    pub sessions: auth::Sessions,
    /// Whether cookies get the `Secure` attribute (`[server] tls_cert` is set).
    pub secure: bool,
    /// The repository's URL (for the storage page).
    pub repo_url: String,
    /// For login refusals and actions.
    pub log: Log,
}

impl Dash {
    /// Start the background refresh of the catalog (the first one now) and return the shared
    /// dashboard state.
    pub fn start(session: &Session, cfg: &Arc<Config>, hub: Hub, log: Log) -> Arc<Dash> {
        let catalog = Arc::new(RwLock::new(Arc::new(Catalog::default())));
        let checked = Arc::new(AtomicI64::new(0));
        let (poke, poked) = channel::<()>();
        hub.set_poke(poke);
        let dash = Arc::new(Dash {
            catalog: catalog.clone(),
            checked: checked.clone(),
            hub: hub.clone(),
            sessions: auth::Sessions::default(),
            secure: cfg.server.as_ref().is_some_and(|s| s.tls_cert.is_some()),
            repo_url: session.repo_url().unwrap_or_default(),
            log,
        });
        let session = session.clone();
        std::thread::spawn(move || refresher(session, catalog, checked, hub, poked, log));
        dash
    }

    /// The catalog as last refreshed; asks for a refresh when the last one is older than
    /// [`STALE`] (without waiting for it).
    pub fn catalog(&self) -> Arc<Catalog> {
        let age = chrono::Utc::now().timestamp_millis() - self.checked.load(Ordering::Relaxed);
        if u128::try_from(age).unwrap_or(0) > STALE.as_millis() {
            self.hub.poke();
        }
        self.catalog.read().map(|c| c.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }
}

/// Keep the catalog fresh: refresh now, then whenever poked (pokes that pile up during a
/// refresh count once) or every [`IDLE_REFRESH`].
fn refresher(
    session: Session,
    published: Arc<RwLock<Arc<Catalog>>>,
    checked: Arc<AtomicI64>,
    hub: Hub,
    poked: Receiver<()>,
    log: Log,
) {
    let mut repo = None;
    let mut catalog = Catalog::default();
    let publish = |c: &Catalog| *published.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(c.clone());
    loop {
        if repo.is_none() {
            match session.open() {
                Ok(r) => repo = Some(r),
                Err(e) => {
                    let why = lifeboat_service::one_line(&e);
                    log.warn("dashboard_refresh_failed", &[("error", why.clone())]);
                    catalog.error = Some(why);
                    publish(&catalog);
                }
            }
        }
        if let Some(r) = repo.as_mut() {
            let first = catalog.refreshed.is_none();
            let had_error = catalog.error.is_some();
            let mut changed = catalog.refresh(r);
            // Point-in-time sources: their recovery point is their newest archived WAL.
            if let Ok(Some(cfg)) = session.config() {
                let pitr: Vec<&str> = cfg
                    .sources()
                    .filter(|s| s.kind() == "postgres" || s.source.continuous(&s.name).ok().flatten().is_some())
                    .map(|s| s.name.as_str())
                    .collect();
                if !pitr.is_empty() {
                    if let (Ok(c), Ok(w)) = (&changed, catalog.refresh_wal(r, &pitr)) {
                        changed = Ok(*c || w);
                    }
                }
            }
            if let Err(e) = &changed {
                log.warn("dashboard_refresh_failed", &[("error", lifeboat_service::one_line(e))]);
            }
            // Only a change is published (a copy: pages keep the version they hold).
            if first || had_error || !matches!(changed, Ok(false)) {
                publish(&catalog);
            }
            if matches!(changed, Ok(true)) {
                hub.refreshed();
            }
        }
        checked.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        match poked.recv_timeout(IDLE_REFRESH) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => while poked.try_recv().is_ok() {},
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Adds `Server-Timing: app;dur=MS` (from the request to the response's headers) to every
/// dashboard response, for bench/dashboard.sh and the browser's developer tools.
async fn server_timing(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let t = std::time::Instant::now();
    let mut r = next.run(req).await;
    let v = format!("app;dur={:.2}", t.elapsed().as_secs_f64() * 1000.0);
    if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
        r.headers_mut().insert("server-timing", v);
    }
    r
}

/// The dashboard's routes (merged into the daemon's router).
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/sources/{name}", get(pages::source))
        .route("/sources/{name}/{action}", post(pages::action))
        .route("/probes", get(pages::probes))
        .route("/drills", get(pages::drills))
        .route("/drills/{id}", get(pages::drill_report))
        .route("/audit", get(pages::audit))
        .route("/storage", get(pages::storage))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/events", get(live::events))
        .route("/assets/app.css", get(pages::css))
        .route("/assets/app.js", get(pages::js))
        .route("/assets/icon.svg", get(pages::icon))
        .route("/favicon.ico", get(pages::icon))
        .layer(axum::middleware::from_fn(server_timing))
}
