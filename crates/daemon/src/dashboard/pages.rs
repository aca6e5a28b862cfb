//! The dashboard's pages: each handler takes the request's access, asks the service layer for
//! its data ([`lifeboat_service::overview`]) and renders it; the HTML is here, in maud.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State as Axum};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use lifeboat_ops::health::{short_duration, Status};
use lifeboat_ops::records::{Outcome, Run, RunOutcome};
use lifeboat_service::human;
use lifeboat_service::overview::{self, SourceDetail, SourceRow};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::auth::{self, Access, Role};
use super::charts;
use super::live::Running;
use crate::http::Shared;
use crate::Msg;

const CSS: &str = include_str!("../../assets/app.css");
const JS: &str = include_str!("../../assets/app.js");
const ICON: &str = include_str!("../../assets/icon.svg");

/// Pages in the navigation: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/probes", "Probes"),
    ("/drills", "Drill reports"),
    ("/audit", "Audit log"),
    ("/storage", "Storage"),
];

/// `GET /assets/app.css`.
pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /assets/app.js`.
pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// `GET /assets/icon.svg` (also answers `/favicon.ico`).
pub async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `5m ago` with the exact time as a tooltip, or `never`.
fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match t {
        Some(t) => {
            let secs = (now - t).num_seconds();
            let words = if secs >= 0 {
                format!("{} ago", short_duration(secs.unsigned_abs()))
            } else {
                format!("in {}", short_duration(secs.unsigned_abs()))
            };
            html! { time datetime=(t.to_rfc3339()) title=(when(t)) { (words) } }
        }
        None => html! { span.muted { "never" } },
    }
}

fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{s:.2}s")
    } else if s < 10.0 {
        format!("{s:.1}s")
    } else {
        short_duration(s.round() as u64)
    }
}

fn status_badge(s: Status) -> Markup {
    let class = match s {
        Status::Ok => "ok",
        Status::Warning => "warning",
        Status::Critical => "critical",
    };
    html! { span class={"badge " (class)} { (s.label()) } }
}

fn outcome_badge(o: Outcome) -> Markup {
    match o {
        Outcome::Ok => html! { span.badge.ok { "ok" } },
        Outcome::Partial => html! { span.badge.warning { "partial" } },
        Outcome::Failed => html! { span.badge.critical { "failed" } },
    }
}

fn run_badge(o: RunOutcome) -> Markup {
    let class = match o {
        RunOutcome::Ok => "ok",
        RunOutcome::Partial | RunOutcome::Skipped => "warning",
        RunOutcome::Failed => "critical",
        RunOutcome::Running => "running",
    };
    html! { span class={"badge " (class)} { (o.name()) } }
}

/// Percent-encode a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The page around `body`, with the security headers and the session cookie when one was made.
fn page(title: &str, path: &str, a: Option<&Access>, body: Markup) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Lifeboat" }
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header.top {
                    span.brand { "Lifeboat" }
                    @if a.is_some() {
                        nav aria-label="Main" {
                            ul {
                                @for (href, label) in NAV {
                                    li {
                                        @if *href == path {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(a) = a {
                        div.who {
                            span { @if a.role == Role::Admin { "Admin" } @else { "Read-only" } }
                            @if a.logged_in {
                                form method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(a.csrf);
                                    button.link type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    };
    let mut r = (StatusCode::OK, html.into_string()).into_response();
    let h = r.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (k, v) in fixed {
        h.insert(k, HeaderValue::from_static(v));
    }
    if let Some(c) = a.and_then(|a| a.set_cookie.as_deref()).and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert(header::SET_COOKIE, c);
    }
    r
}

fn with_status(mut r: Response, code: StatusCode) -> Response {
    *r.status_mut() = code;
    r
}

/// The login page (with why the last attempt failed).
pub fn login_form(error: Option<&str>, code: StatusCode) -> Response {
    let body = html! {
        h1 { "Log in" }
        p { "This dashboard needs an access token: the read-only token shows every page, the admin token also starts backups, verifications and drills." }
        @if let Some(e) = error {
            p.alert role="alert" { (e) }
        }
        form.login method="post" action="/login" {
            label for="token" { "Access token" }
            input #token type="password" name="token" required autocomplete="current-password";
            button type="submit" { "Log in" }
        }
    };
    with_status(page("Log in", "/login", None, body), code)
}

fn error_page(a: &Access, code: StatusCode, title: &str, message: &str) -> Response {
    let body = html! { h1 { (title) } p.alert role="alert" { (message) } p { a href="/" { "Back to the overview" } } };
    with_status(page(title, "", Some(a), body), code)
}

/// Buttons that start a job for a source (admin only).
fn actions(a: &Access, name: &str, back: &str, all: bool) -> Markup {
    if a.role != Role::Admin {
        return html! {};
    }
    let list: &[(&str, &str)] = if all {
        &[("backup", "Back up now"), ("verify", "Verify now"), ("drill", "Start a drill")]
    } else {
        &[("backup", "Back up now")]
    };
    html! {
        div.actions {
            @for (what, label) in list {
                form method="post" action=(format!("/sources/{}/{what}", encode(name))) {
                    input type="hidden" name="csrf" value=(a.csrf);
                    input type="hidden" name="back" value=(back);
                    button type="submit" data-action=(what) aria-label=(format!("{label}: {name}")) { (label) }
                }
            }
        }
    }
}

/// The running jobs (updated live by the script); only those of `source` when given.
fn running_list(running: &[Running], source: Option<&str>) -> Markup {
    let shown: Vec<&Running> =
        running.iter().filter(|r| source.is_none_or(|s| r.source.as_deref() == Some(s))).collect();
    html! {
        section aria-labelledby="running-h" {
            h2 #running-h { "Running now" }
            p #running-empty hidden[!shown.is_empty()] { "Nothing is running." }
            ul #running data-source=[source] aria-live="polite" {
                @for r in shown {
                    li data-job=(r.job) {
                        span.label { (r.label()) }
                        progress max="100" value=[r.percent()] aria-label=(format!("Progress of {}", r.label())) {}
                        span.detail { (r.text()) }
                    }
                }
            }
        }
    }
}

fn notice(q: &Notice) -> Markup {
    match q.queued.as_deref() {
        Some(job) => {
            let words = match job.split_once(':') {
                Some(("backup", s)) => format!("A backup of {s} was started."),
                Some(("verify", s)) => format!("A verification of {s} was started."),
                Some(("drill", s)) => format!("A drill of {s} was started."),
                _ => format!("{job} was started."),
            };
            html! { p.notice role="status" { (words) " Its progress shows below." } }
        }
        None => html! {},
    }
}

/// A page's query: what was just started.
#[derive(Deserialize, Default)]
pub struct Notice {
    queued: Option<String>,
}

fn loading(cat: &overview::Catalog) -> Markup {
    html! {
        @if cat.refreshed.is_none() {
            p.notice role="status" { "Reading the repository… this page shows what is known so far; reload in a moment." }
        }
        @if let Some(e) = &cat.error {
            p.alert role="alert" { "The repository could not be read: " (e) }
        }
    }
}

macro_rules! access_or_return {
    ($s:expr, $h:expr) => {
        match auth::access(&$s, &$h) {
            Ok(a) => a,
            Err(r) => return r.into_response(),
        }
    };
}

macro_rules! config_or_return {
    ($s:expr, $a:expr) => {
        match config(&$s) {
            Some(c) => c,
            None => return error_page(&$a, StatusCode::SERVICE_UNAVAILABLE, "No config", "The daemon has no config."),
        }
    };
}

/// The config in use (the reloaded one after SIGHUP).
fn config(s: &Shared) -> Option<std::sync::Arc<lifeboat_service::config::Config>> {
    s.session.lock().ok().and_then(|x| x.config().ok().flatten())
}

fn next_runs(s: &Shared) -> BTreeMap<String, DateTime<Utc>> {
    s.state.lock().map(|st| st.next.clone()).unwrap_or_default()
}

fn size_cell(r: &SourceRow) -> Markup {
    match r.latest_bytes {
        Some(b) => html! {
            (human::size(b))
            span.muted { " · " (human::count(r.snapshots, "snapshot")) ", " (human::size(r.stored_bytes)) " stored" }
        },
        None => html! { span.muted { "no snapshot" } },
    }
}

fn drill_cell(r: &SourceRow, now: DateTime<Utc>) -> Markup {
    let d = &r.health.drill;
    match (d.last, d.rto_seconds) {
        (Some(t), Some(took)) => html! {
            (ago(Some(t), now)) ": " (seconds(took))
            @if let Some(target) = d.rto_target_seconds {
                " (RTO " (seconds(target)) ")"
            }
        },
        _ => html! { span.muted { "never" } },
    }
}

fn verification_cell(r: &SourceRow, now: DateTime<Utc>) -> Markup {
    let v = &r.health.verification;
    match (v.last, v.outcome) {
        (Some(t), Some(o)) => html! { (ago(Some(t), now)) " " (outcome_badge(o)) },
        _ => html! { span.muted { "never" } },
    }
}

/// `GET /`.
pub async fn overview(Axum(s): Axum<Shared>, headers: HeaderMap, Query(q): Query<Notice>) -> Response {
    let a = access_or_return!(s, headers);
    let cfg = config_or_return!(s, a);
    let cat = s.dash.catalog();
    let now = Utc::now();
    let ov = overview::overview(&cfg, &cat, &next_runs(&s), now);
    let count = |st: Status| ov.sources.iter().filter(|r| r.health.status == st).count();
    let body = html! {
        h1 { "Overview" }
        (loading(&cat))
        (notice(&q))
        p.summary {
            (status_badge(ov.status)) " "
            (human::count(ov.sources.len(), "source")) ": "
            (count(Status::Ok)) " ok, " (count(Status::Warning)) " warning, " (count(Status::Critical)) " critical · "
            (human::count(ov.snapshots, "snapshot")) " in the repository"
        }
        (running_list(&s.dash.hub.running(), None))
        section aria-labelledby="sources-h" {
            h2 #sources-h { "Sources" }
            div.scroll {
                table.sources {
                    thead {
                        tr {
                            th scope="col" { "Source" }
                            th scope="col" { "Status" }
                            th scope="col" { "Last backup" }
                            th scope="col" { "RPO" }
                            th scope="col" { "Next run" }
                            th scope="col" { "Last verification" }
                            th scope="col" { "Last drill (RTO)" }
                            th scope="col" { "Size" }
                            @if a.role == Role::Admin { th scope="col" { "Action" } }
                        }
                    }
                    tbody {
                        @for r in &ov.sources {
                            tr data-source=(r.name) data-status=(r.health.status.label().to_lowercase()) {
                                th scope="row" {
                                    a href=(format!("/sources/{}", encode(&r.name))) { (r.name) }
                                    span.muted { " " (r.kind) }
                                }
                                td {
                                    (status_badge(r.health.status))
                                    @if let Some(p) = r.problems.first() { div.problem { (p) } }
                                    @if let Some(run) = r.last_run.as_ref().filter(|x| x.outcome == RunOutcome::Failed) {
                                        div.problem { "last run failed: " (run.error.as_deref().unwrap_or("")) }
                                    }
                                }
                                td { (ago(r.health.backup.last, now)) }
                                td { (r.rpo.as_deref().unwrap_or("—")) }
                                td {
                                    @match (&r.next_run, &r.schedule) {
                                        (Some(t), _) => (ago(Some(*t), now)),
                                        (None, Some(sch)) => (sch),
                                        (None, None) => span.muted { "not scheduled" },
                                    }
                                }
                                td { (verification_cell(r, now)) }
                                td { (drill_cell(r, now)) }
                                td { (size_cell(r)) }
                                @if a.role == Role::Admin { td { (actions(&a, &r.name, "/", false)) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="failures-h" {
            h2 #failures-h { "Failed in the last 24 hours" }
            @if ov.failures.is_empty() {
                p { "No run failed in the last 24 hours." }
            } @else {
                (runs_table(&ov.failures, true, now))
            }
        }
        (footer(&cat, now))
    };
    page("Overview", "/", Some(&a), body)
}

fn footer(cat: &overview::Catalog, now: DateTime<Utc>) -> Markup {
    html! {
        p.muted.footer {
            "Repository read " (ago(cat.refreshed, now)) "; this page was made at " (when(now)) "."
        }
    }
}

fn runs_table(runs: &[Run], with_source: bool, now: DateTime<Utc>) -> Markup {
    html! {
        div.scroll {
            table.runs {
                thead {
                    tr {
                        th scope="col" { "Started" }
                        @if with_source { th scope="col" { "Source" } }
                        th scope="col" { "Kind" }
                        th scope="col" { "Outcome" }
                        th scope="col" { "Took" }
                        th scope="col" { "Data" }
                        th scope="col" { "By" }
                        th scope="col" { "Error" }
                    }
                }
                tbody {
                    @for r in runs {
                        tr data-run=(r.id) data-outcome=(r.outcome.name()) {
                            td { (ago(Some(r.started), now)) }
                            @if with_source {
                                td {
                                    @if let Some(src) = &r.source { a href=(format!("/sources/{}", encode(src))) { (src) } } @else { "—" }
                                }
                            }
                            td { (r.kind.name().replace('_', " ")) }
                            td { (run_badge(r.outcome)) }
                            td { @if r.finished.is_some() { (seconds(r.seconds)) } }
                            td { @if let Some(b) = r.bytes { (human::size(b)) } }
                            td { (r.trigger) }
                            td.error { (r.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

fn source_body(d: &SourceDetail, a: &Access, q: &Notice, running: &[Running], now: DateTime<Utc>) -> Markup {
    let r = &d.row;
    let mut marks: Vec<(DateTime<Utc>, bool)> = d.snapshots.iter().map(|s| (s.time, true)).collect();
    marks.extend(
        d.runs
            .iter()
            .filter(|x| x.kind.name() == "backup" && x.outcome == RunOutcome::Failed)
            .map(|x| (x.started, false)),
    );
    // From the first mark, at most 90 days back.
    let t0 = marks.iter().map(|m| m.0).min().unwrap_or(now).max(now - chrono::Duration::days(90));
    let sizes: Vec<(DateTime<Utc>, f64)> = d.snapshots.iter().map(|s| (s.time, s.logical_bytes as f64)).collect();
    let dedup: Vec<(DateTime<Utc>, f64)> = d.snapshots.iter().map(|s| (s.time, s.dedup_ratio)).collect();
    let size_fmt = |v: f64| human::size(v as u64);
    html! {
        h1 { "Source " (r.name) }
        (notice(q))
        p.summary { (status_badge(r.health.status)) " " (r.kind) }
        @if !r.problems.is_empty() {
            ul.problems { @for p in &r.problems { li { (p) } } }
        }
        (actions(a, &r.name, "source", true))
        dl.facts {
            dt { "Schedule" } dd { (r.schedule.as_deref().unwrap_or("none (runs when started)")) }
            dt { "Next run" } dd { (ago(r.next_run, now)) }
            dt { "RPO" } dd { (r.rpo.as_deref().unwrap_or("not set")) }
            dt { "RTO" } dd { (r.rto.as_deref().unwrap_or("not set")) }
            dt { "Last backup" } dd { (ago(r.health.backup.last, now)) }
            dt { "Last verification" } dd { (verification_cell(r, now)) }
            dt { "Last drill" } dd { (drill_cell(r, now)) }
            dt { "Size" } dd { (size_cell(r)) }
        }
        (running_list(running, Some(&r.name)))
        section aria-labelledby="restore-h" {
            h2 #restore-h { "Restore" }
            p hidden[d.snapshots.is_empty()] { "Restores the newest snapshot; change the target (see " code { "lifeboat restore --help" } ") and add " code { "--dry-run" } " to see the plan first." }
            @if d.snapshots.is_empty() {
                p { "There is no snapshot to restore yet." }
            } @else {
                div.copyable {
                    pre #restore-cmd { code { (d.restore_command) } }
                    button type="button" data-copy="restore-cmd" { "Copy the command" }
                }
            }
        }
        section aria-labelledby="snapshots-h" {
            h2 #snapshots-h { "Snapshots" }
            (charts::timeline("Backups (failed runs in red)", &marks, t0, now))
            (charts::line("Size as backed up", &sizes, size_fmt))
            (charts::line("Deduplication (bytes backed up per byte stored)", &dedup, |v| format!("{v:.1}×")))
            @if !d.snapshots.is_empty() {
                h3 { "Newest snapshots" }
                div.scroll {
                    table {
                        thead { tr { th scope="col" { "Snapshot" } th scope="col" { "Taken" } th scope="col" { "Size" } th scope="col" { "Stored" } th scope="col" { "Files" } th scope="col" { "Tags" } } }
                        tbody {
                            @for sn in d.snapshots.iter().rev().take(20) {
                                tr {
                                    td { code { (sn.id.short()) } }
                                    td { (ago(Some(sn.time), now)) }
                                    td { (human::size(sn.logical_bytes)) }
                                    td { (human::size(sn.added_bytes)) }
                                    td { (sn.files) }
                                    td { (sn.tags.join(", ")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="runs-h" {
            h2 #runs-h { "Runs" }
            @if d.runs.is_empty() { p { "No runs recorded yet." } } @else { (runs_table(&d.runs, false, now)) }
        }
        section aria-labelledby="verify-h" {
            h2 #verify-h { "Verifications" }
            @if d.verifications.is_empty() {
                p { "Never verified." }
            } @else {
                div.scroll {
                    table {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Snapshot" } th scope="col" { "Checks" } th scope="col" { "Outcome" } th scope="col" { "Took" } th scope="col" { "Findings" } } }
                        tbody {
                            @for v in &d.verifications {
                                tr {
                                    td { (ago(Some(v.time), now)) }
                                    td { code { (v.snapshot.short()) } }
                                    td { (v.checks.join(", ")) }
                                    td { (outcome_badge(v.outcome)) }
                                    td { (seconds(v.duration_seconds)) }
                                    td.error { (v.findings.join("; ")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="drills-h" {
            h2 #drills-h { "Drills" }
            @if d.drills.is_empty() {
                p { "Never drilled." }
            } @else {
                div.scroll {
                    table {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Outcome" } th scope="col" { "Recovery time" } th scope="col" { "RTO" } th scope="col" { "Findings" } th scope="col" { "Report" } } }
                        tbody {
                            @for dr in &d.drills {
                                tr {
                                    td { (ago(Some(dr.time), now)) }
                                    td { (outcome_badge(dr.part.outcome)) }
                                    td { (seconds(dr.part.rto_seconds)) }
                                    td {
                                        @match dr.part.rto_target_seconds {
                                            Some(t) if dr.part.rto_seconds > t => { (seconds(t)) " " span.badge.critical { "exceeded" } }
                                            Some(t) => { (seconds(t)) " " span.badge.ok { "met" } }
                                            None => span.muted { "not set" },
                                        }
                                    }
                                    td.error { (dr.part.findings.join("; ")) }
                                    td { @if let Some(id) = &dr.report { a href=(format!("/drills/{id}")) { "report" } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /sources/NAME`.
pub async fn source(
    Axum(s): Axum<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<Notice>,
) -> Response {
    let a = access_or_return!(s, headers);
    let cfg = config_or_return!(s, a);
    let cat = s.dash.catalog();
    let now = Utc::now();
    let d = match overview::source(&cfg, &cat, &next_runs(&s), &name, now) {
        Ok(d) => d,
        Err(e) => return error_page(&a, StatusCode::NOT_FOUND, "No such source", &lifeboat_service::one_line(&e)),
    };
    let body = html! { (loading(&cat)) (source_body(&d, &a, &q, &s.dash.hub.running(), now)) (footer(&cat, now)) };
    page(&format!("Source {name}"), "", Some(&a), body)
}

/// An action form's fields.
#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
}

/// `POST /sources/NAME/backup|verify|drill` (admin, CSRF): start the job now.
pub async fn action(
    Axum(s): Axum<Shared>,
    headers: HeaderMap,
    Path((name, what)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    let a = match auth::check_post(&s, &headers, &f.csrf, Role::Admin) {
        Ok(a) => a,
        Err(r) => {
            s.dash.log.warn("dashboard_action_refused", &[("job", format!("{what}:{name}"))]);
            return r.into_response();
        }
    };
    if !matches!(what.as_str(), "backup" | "verify" | "drill") {
        return error_page(&a, StatusCode::NOT_FOUND, "No such action", "Actions are backup, verify and drill.");
    }
    if config(&s).is_none_or(|c| c.find(&name).is_err()) {
        return error_page(&a, StatusCode::NOT_FOUND, "No such source", &format!("No source is named {name:?}."));
    }
    let job = format!("{what}:{name}");
    let sent = s.tx.lock().map(|tx| tx.send(Msg::RunNow(job.clone())).is_ok()).unwrap_or(false);
    if !sent {
        return error_page(&a, StatusCode::SERVICE_UNAVAILABLE, "Not started", "The daemon is stopping.");
    }
    s.dash.log.info("dashboard_action", &[("job", job.clone())]);
    let back = if f.back == "/" { "/".to_string() } else { format!("/sources/{}", encode(&name)) };
    Redirect::to(&format!("{back}?queued={}", encode(&job))).into_response()
}

/// `GET /probes`.
pub async fn probes(Axum(s): Axum<Shared>, headers: HeaderMap) -> Response {
    let a = access_or_return!(s, headers);
    let Ok(session) = s.session.lock().map(|x| x.clone()) else {
        return error_page(&a, StatusCode::INTERNAL_SERVER_ERROR, "Error", "state poisoned");
    };
    let list = match tokio::task::spawn_blocking(move || overview::probes(&session)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            return error_page(&a, StatusCode::INTERNAL_SERVER_ERROR, "Probes", &lifeboat_service::one_line(&e))
        }
        Err(_) => return error_page(&a, StatusCode::INTERNAL_SERVER_ERROR, "Probes", "could not be read"),
    };
    let body = html! {
        h1 { "Probes" }
        @if list.is_empty() {
            p { "No probes are configured. Probes (" code { "[[probe]]" } " in the config) measure something about a service on a schedule — a balance, a queue depth, a certificate's expiry — and alert on thresholds; their values and history will show here." }
        } @else {
            @for p in &list {
                section {
                    h2 { (p.name) " " (status_badge(p.status)) }
                    p { "Now: " (p.value.as_deref().unwrap_or("—")) }
                    (charts::line(&format!("History of {}", p.name), &p.history, charts::short_number))
                }
            }
        }
    };
    page("Probes", "/probes", Some(&a), body)
}

/// `GET /drills`.
pub async fn drills(Axum(s): Axum<Shared>, headers: HeaderMap) -> Response {
    let a = access_or_return!(s, headers);
    let cat = s.dash.catalog();
    let now = Utc::now();
    let list = overview::drills(&cat);
    let body = html! {
        h1 { "Drill reports" }
        (loading(&cat))
        @if list.is_empty() {
            p { "No drill has run yet. Start one from a source's page, or schedule " code { "drill" } " in " code { "[jobs]" } "." }
        } @else {
            div.scroll {
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Outcome" } th scope="col" { "Sources (recovery time / RTO)" } th scope="col" { "Report" } } }
                    tbody {
                        @for d in &list {
                            tr {
                                td { (ago(Some(d.time), now)) }
                                td { (outcome_badge(d.outcome)) }
                                td {
                                    ul.plain {
                                        @for p in &d.sources {
                                            li {
                                                a href=(format!("/sources/{}", encode(&p.source))) { (p.source) } ": "
                                                (seconds(p.rto_seconds))
                                                @if let Some(t) = p.rto_target_seconds { " / " (seconds(t)) }
                                                " " (outcome_badge(p.outcome))
                                            }
                                        }
                                    }
                                }
                                td { @if let Some(id) = &d.report { a href=(format!("/drills/{id}")) { "signed report" } } @else { span.muted { "not stored" } } }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Drill reports", "/drills", Some(&a), body)
}

/// `GET /drills/ID`: the stored report, rendered, with its signature status.
pub async fn drill_report(Axum(s): Axum<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let a = access_or_return!(s, headers);
    let Ok(session) = s.session.lock().map(|x| x.clone()) else {
        return error_page(&a, StatusCode::INTERNAL_SERVER_ERROR, "Error", "state poisoned");
    };
    let loaded = {
        let id = id.clone();
        tokio::task::spawn_blocking(move || overview::drill_report(&session, &id)).await
    };
    let v = match loaded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return error_page(&a, StatusCode::NOT_FOUND, "No such report", &lifeboat_service::one_line(&e)),
        Err(_) => return error_page(&a, StatusCode::INTERNAL_SERVER_ERROR, "Error", "the report could not be read"),
    };
    let now = Utc::now();
    let (r, c) = (&v.report, &v.check);
    let body = html! {
        h1 { "Drill report " (r.id) }
        section aria-labelledby="sig-h" {
            h2 #sig-h { "Signature" }
            @if c.ok {
                p.good data-signature="valid" {
                    span.badge.ok { "valid" } " Signed with Ed25519 key " code { (c.public_key.as_deref().unwrap_or("")) }
                    @if v.against_configured_key { " — the key configured in " code { "[drill] signing_key" } "." } @else { " (no key is configured here to compare with)." }
                    " No field changed since signing."
                }
            } @else {
                div.alert data-signature=(if c.public_key.is_none() && c.changed.is_empty() { "unsigned" } else { "invalid" }) {
                    p { span.badge.critical { @if c.public_key.is_none() { "unsigned" } @else { "not valid" } } }
                    ul { @for p in &c.problems { li { (p) } } }
                }
            }
        }
        section aria-labelledby="summary-h" {
            h2 #summary-h { "Summary" }
            dl.facts {
                dt { "Outcome" } dd { (outcome_badge(r.outcome)) }
                dt { "Started" } dd { (when(r.started)) }
                dt { "Finished" } dd { (when(r.time)) " (" (ago(Some(r.time), now)) ")" }
                dt { "Host" } dd { (r.host) }
                dt { "Repository" } dd { code { (r.repository) } }
                dt { "Lifeboat" } dd { (r.lifeboat_version) }
            }
        }
        section aria-labelledby="sources-h" {
            h2 #sources-h { "Sources" }
            div.scroll {
                table {
                    thead { tr { th scope="col" { "Source" } th scope="col" { "Kind" } th scope="col" { "Snapshot" } th scope="col" { "Outcome" } th scope="col" { "Recovery time" } th scope="col" { "RTO" } th scope="col" { "Findings" } } }
                    tbody {
                        @for p in &r.sources {
                            tr {
                                th scope="row" { (p.source) }
                                td { (p.kind) }
                                td { @if let Some(id) = &p.snapshot { code { (id.short()) } } }
                                td { (outcome_badge(p.outcome)) }
                                td { (seconds(p.rto_seconds)) }
                                td { @if let Some(t) = p.rto_target_seconds { (seconds(t)) } @else { span.muted { "not set" } } }
                                td.error { (p.findings.join("; ")) }
                            }
                        }
                    }
                }
            }
            @for p in &r.sources {
                details {
                    summary { "What the verification of " (p.source) " found" }
                    pre { code { (serde_json::to_string_pretty(&p.details).unwrap_or_default()) } }
                }
            }
        }
    };
    page(&format!("Drill report {id}"), "/drills", Some(&a), body)
}

/// `GET /audit`: the newest 500 events of the last 90 days.
pub async fn audit(Axum(s): Axum<Shared>, headers: HeaderMap) -> Response {
    let a = access_or_return!(s, headers);
    let Ok(session) = s.session.lock().map(|x| x.clone()) else {
        return error_page(&a, StatusCode::INTERNAL_SERVER_ERROR, "Error", "state poisoned");
    };
    let loaded =
        tokio::task::spawn_blocking(move || lifeboat_service::retention::audit_log(&session, Some("90d"))).await;
    let (events, bad) = match loaded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            return error_page(&a, StatusCode::INTERNAL_SERVER_ERROR, "Audit log", &lifeboat_service::one_line(&e))
        }
        Err(_) => return error_page(&a, StatusCode::INTERNAL_SERVER_ERROR, "Audit log", "could not be read"),
    };
    let now = Utc::now();
    let body = html! {
        h1 { "Audit log" }
        p { "Who changed the repository, when and from where (the last 90 days, newest first, at most 500 events)." }
        @if !bad.is_empty() {
            div.alert role="alert" {
                p { (human::count(bad.len(), "audit record")) " cannot be read (damaged or altered):" }
                ul { @for (name, why) in &bad { li { code { (name) } ": " (why) } } }
            }
        }
        @if events.is_empty() {
            p { "No events yet." }
        } @else {
            div.scroll {
                table.audit {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "By" } th scope="col" { "Details" } } }
                    tbody {
                        @for e in events.iter().rev().take(500) {
                            tr {
                                td { (ago(Some(e.time), now)) }
                                td { (e.action) }
                                td { (e.user) "@" (e.host) }
                                td { code.wrap { (e.details.to_string()) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Audit log", "/audit", Some(&a), body)
}

/// `GET /storage`.
pub async fn storage(Axum(s): Axum<Shared>, headers: HeaderMap) -> Response {
    let a = access_or_return!(s, headers);
    let cfg = config_or_return!(s, a);
    let cat = s.dash.catalog();
    let now = Utc::now();
    let v = overview::storage(&cfg, &cat, &s.dash.repo_url);
    let free = s.state.lock().ok().and_then(|st| st.free);
    let check = |ok: bool| {
        if ok {
            html! { span.badge.ok { "yes" } }
        } else {
            html! { span.badge.critical { "no" } }
        }
    };
    let body = html! {
        h1 { "Storage" }
        (loading(&cat))
        section aria-labelledby="repo-h" {
            h2 #repo-h { "Repository" }
            dl.facts {
                dt { "Location" } dd { code { (v.repository) } }
                @if let Some(u) = &v.usage {
                    dt { "Size" } dd { (human::size(u.pack_bytes + u.metadata_bytes)) " in " (u.packs) " packs" }
                    dt { "Snapshots" } dd { (u.snapshots) }
                    dt { "Deduplication" } dd { (format!("{:.1}×", u.dedup_ratio)) " (" (human::size(u.logical_bytes)) " backed up, " (human::size(u.unique_bytes)) " unique)" }
                    dt { "Compression" } dd { (format!("{:.2}×", u.compression_ratio)) }
                }
                @if let Some((f, t)) = free {
                    dt { "Free space" } dd { (human::size(f)) " of " (human::size(t)) (format!(" ({:.1} %)", f as f64 * 100.0 / (t.max(1)) as f64)) }
                }
            }
        }
        @if let Some(u) = &v.usage {
            section aria-labelledby="growth-h" {
                h2 #growth-h { "Growth" }
                @let days: Vec<(String, f64)> = u.growth.iter().rev().take(60).rev().map(|g| (g.day.clone(), g.added_bytes as f64)).collect();
                (charts::bars("Data stored per day (last 60 days)", &days, |v| human::size(v as u64)))
                h3 { "Per source" }
                div.scroll {
                    table {
                        thead { tr { th scope="col" { "Source" } th scope="col" { "Snapshots" } th scope="col" { "Newest" } th scope="col" { "Newest size" } th scope="col" { "Stored" } } }
                        tbody {
                            @for p in &u.sources {
                                tr { th scope="row" { (p.source) } td { (p.snapshots) } td { (ago(p.latest, now)) } td { (human::size(p.latest_bytes)) } td { (human::size(p.added_bytes)) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="copies-h" {
            h2 #copies-h { "Copies" }
            @if v.copies.is_empty() {
                p { "No " code { "[[copy]]" } " destination is configured: the repository is the only copy of the backups." }
            } @else {
                div.scroll {
                    table {
                        thead { tr { th scope="col" { "Destination" } th scope="col" { "Location" } th scope="col" { "Last successful copy" } th scope="col" { "Last failure" } } }
                        tbody {
                            @for c in &v.copies {
                                tr {
                                    th scope="row" { (c.label) }
                                    td { code { (c.location) } }
                                    td { (ago(c.last_ok, now)) }
                                    td.error { @if let Some(f) = &c.last_failure { (ago(Some(f.started), now)) ": " (f.error.as_deref().unwrap_or("")) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="rule-h" {
            h2 #rule-h { "3-2-1 rule" }
            p { (check(v.rule.ok)) @if v.rule.ok { " The backups follow the 3-2-1 rule." } @else { " The backups do not follow the 3-2-1 rule yet." } }
            ul.plain {
                li { (check(v.rule.copies >= 3)) " Three copies of the data: " (v.rule.copies) " (the live source, the repository and " (human::count(v.copies.len(), "copy")) ")" }
                li { (check(v.rule.media >= 2)) " Two kinds of storage: " (v.rule.media) " (local disk and object storage count as two)" }
                li { (check(v.rule.offsite)) " One copy off site: " @if v.rule.offsite { "object storage (taken as off site)" } @else { "none (no copy is on object storage)" } }
            }
        }
    };
    page("Storage", "/storage", Some(&a), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("backup:db 1/ü"), "backup:db%201%2F%C3%BC");
    }
}
