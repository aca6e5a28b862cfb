//! The daemon's HTTP server (`[server] listen`, default 127.0.0.1:9848): `/metrics` from the
//! in-memory state (a scrape never reads the repository), `/healthz`, `/readyz`, and the API the
//! dashboard will use — `GET /api/v1/status`, `GET /api/v1/runs`, `POST
//! /api/v1/sources/NAME/backup`. Off loopback a bearer token is required for everything but
//! `/healthz`; starting a backup always needs the admin token when one is configured. With
//! `tls_cert` and `tls_key` it speaks HTTPS only ([`tls`]).

use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State as Axum};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lifeboat_service::Session;

use crate::state::State;
use crate::Msg;

pub mod tls;

/// What the handlers share.
#[derive(Clone)]
pub struct Shared {
    /// The metrics state.
    pub state: Arc<Mutex<State>>,
    /// For the API's repository reads.
    pub session: Arc<Mutex<Session>>,
    /// To the scheduler.
    pub tx: Arc<Mutex<Sender<Msg>>>,
    /// Read token (`None`: none needed).
    pub token: Option<String>,
    /// Admin token (actions).
    pub admin: Option<String>,
    /// The dashboard: the repository's records in memory, sessions, live progress.
    pub dash: Arc<crate::dashboard::Dash>,
}

/// Serve until the process ends, over TLS when `tls` is given. Returns the bound address (port 0
/// picks a free one).
pub fn serve(addr: SocketAddr, shared: Shared, tls: Option<Arc<tls::CertFiles>>) -> std::io::Result<SocketAddr> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/api/v1/status", get(status))
        .route("/api/v1/runs", get(runs))
        .route("/api/v1/sources/{name}/backup", post(backup))
        .merge(crate::dashboard::routes())
        .with_state(shared);
    // The TLS listener's accept task is spawned on the runtime, so it is built inside it.
    enum Accept {
        Plain(tokio::net::TcpListener),
        Tls(tls::Listener),
    }
    let accept = match tls {
        Some(files) => {
            let _inside = rt.enter();
            Accept::Tls(tls::Listener::new(listener, files)?)
        }
        None => Accept::Plain(listener),
    };
    std::thread::spawn(move || {
        rt.block_on(async move {
            let _ = match accept {
                Accept::Plain(l) => axum::serve(l, app).await,
                Accept::Tls(l) => axum::serve(l, app).await,
            };
        })
    });
    Ok(bound)
}

fn authorized(headers: &HeaderMap, want: Option<&str>) -> bool {
    let Some(want) = want else { return true };
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token's length is not a secret worth protecting.
    given.is_some_and(|g| {
        g.len() == want.len() && g.bytes().zip(want.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

fn refused() -> Response {
    (StatusCode::UNAUTHORIZED, "a bearer token is required (Authorization: Bearer …)\n").into_response()
}

async fn metrics(Axum(s): Axum<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&headers, s.token.as_deref()) {
        return refused();
    }
    let text = match s.state.lock() {
        Ok(st) => st.encode(chrono::Utc::now()),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

async fn ready(Axum(s): Axum<Shared>) -> Response {
    match s.state.lock().map(|st| st.ready) {
        Ok(true) => "ready\n".into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "loading\n").into_response(),
    }
}

/// Run a blocking service call off the async threads and answer with its JSON.
async fn blocking_json<F>(f: F) -> Response
where
    F: FnOnce() -> Result<serde_json::Value, String> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(serde_json::json!({"error": e}))).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn status(Axum(s): Axum<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&headers, s.token.as_deref()) {
        return refused();
    }
    let session = s.session.lock().map(|x| x.clone()).map_err(|_| ());
    blocking_json(move || {
        let session = session.map_err(|_| "state poisoned".to_string())?;
        let th = lifeboat_ops::health::Thresholds {
            rpo_warning_percent: 80,
            verification_max_age: std::time::Duration::from_secs(30 * 86_400),
        };
        let r = lifeboat_service::health::health(&session, &[], &th).map_err(|e| lifeboat_service::one_line(&e))?;
        Ok(serde_json::json!({
            "status": r.status, "exit_code": r.status.exit_code(), "time": r.time, "thresholds": r.thresholds,
            "sources": r.sources, "free_space": r.free_space, "probes": r.probes,
        }))
    })
    .await
}

#[derive(serde::Deserialize)]
struct RunsQuery {
    source: Option<String>,
    since: Option<String>,
    #[serde(default)]
    failed: bool,
}

async fn runs(Axum(s): Axum<Shared>, headers: HeaderMap, Query(q): Query<RunsQuery>) -> Response {
    if !authorized(&headers, s.token.as_deref()) {
        return refused();
    }
    let session = s.session.lock().map(|x| x.clone()).map_err(|_| ());
    blocking_json(move || {
        let session = session.map_err(|_| "state poisoned".to_string())?;
        let f = lifeboat_service::runs::RunFilter { source: q.source, failed: q.failed, since: q.since, kind: None };
        let list = lifeboat_service::runs::list(&session, &f).map_err(|e| lifeboat_service::one_line(&e))?;
        serde_json::to_value(list).map_err(|e| e.to_string())
    })
    .await
}

async fn backup(Axum(s): Axum<Shared>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if !authorized(&headers, s.admin.as_deref().or(s.token.as_deref())) {
        return refused();
    }
    let known = s.session.lock().ok().and_then(|x| x.config().ok().flatten()).is_some_and(|c| c.find(&name).is_ok());
    if !known {
        return (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"error": format!("no source named {name:?}")})))
            .into_response();
    }
    let sent = s.tx.lock().map(|tx| tx.send(Msg::RunNow(format!("backup:{name}"))).is_ok());
    match sent {
        Ok(true) => {
            (StatusCode::ACCEPTED, axum::Json(serde_json::json!({"queued": format!("backup:{name}")}))).into_response()
        }
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
