//! Who may see and do what on the dashboard.
//!
//! - No token configured (the daemon then listens on loopback only): everyone who reaches the
//!   port is admin; a session is still made, to bind the CSRF token of the action forms to.
//! - Only `admin_token_file`: pages are open, actions need a login with the admin token.
//! - `token_file`: every page needs a login; the token gives read-only access when an admin
//!   token is configured too (and admin access when it is not, as on the API).
//!
//! A login sets a random session id in an `HttpOnly; SameSite=Strict` cookie (`Secure` with
//! TLS); the token itself is never stored in the cookie, the page or a log. Sessions end after
//! [`IDLE`] without a request. Every POST must come from the dashboard itself (its `Origin`, or
//! else its `Referer`, names the `Host` it was sent to), and actions and logout carry the
//! session's CSRF token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State as Axum;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use crate::http::Shared;

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);

/// At most this many sessions are kept (the least recently used go first).
const MAX_SESSIONS: usize = 10_000;

const COOKIE: &str = "lifeboat_session";

/// What a session may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// See every page.
    Read,
    /// Also start backups, verifications and drills.
    Admin,
}

#[derive(Clone, Debug)]
struct Sess {
    role: Role,
    csrf: String,
    last: Instant,
}

/// The logged-in sessions, by id.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Sess>>);

/// A request's access: its role, its session's CSRF token, and the cookie to set when the
/// session was made for this request.
#[derive(Clone, Debug)]
pub struct Access {
    /// What it may do.
    pub role: Role,
    /// The CSRF token for forms.
    pub csrf: String,
    /// Whether a login is possible and useful (shows "log in" / "log out").
    pub logged_in: bool,
    /// `Set-Cookie` value for a session made now.
    pub set_cookie: Option<String>,
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Equal strings, compared in constant time for equal lengths.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    fn create(&self, role: Role) -> (String, Sess) {
        let id = random_hex();
        let s = Sess { role, csrf: random_hex(), last: Instant::now() };
        if let Ok(mut m) = self.0.lock() {
            m.retain(|_, v| v.last.elapsed() < IDLE);
            if m.len() >= MAX_SESSIONS {
                if let Some(oldest) = m.iter().min_by_key(|(_, v)| v.last).map(|(k, _)| k.clone()) {
                    m.remove(&oldest);
                }
            }
            m.insert(id.clone(), s.clone());
        }
        (id, s)
    }

    fn get(&self, id: &str) -> Option<Sess> {
        let mut m = self.0.lock().ok()?;
        match m.get_mut(id) {
            Some(s) if s.last.elapsed() < IDLE => {
                s.last = Instant::now();
                Some(s.clone())
            }
            Some(_) => {
                m.remove(id);
                None
            }
            None => None,
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(id);
        }
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(s: &Shared, id: &str) -> String {
    let secure = if s.dash.secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// The role of a request without a login (`None`: a login is required).
fn anonymous(s: &Shared) -> Option<Role> {
    match (&s.token, &s.admin) {
        (None, None) => Some(Role::Admin),
        (None, Some(_)) => Some(Role::Read),
        (Some(_), _) => None,
    }
}

/// The role a token gives (`None`: not a token of this daemon).
fn role_of(s: &Shared, given: &str) -> Option<Role> {
    if s.admin.as_deref().is_some_and(|a| same(given, a)) {
        return Some(Role::Admin);
    }
    match (&s.token, &s.admin) {
        (Some(t), None) if same(given, t) => Some(Role::Admin),
        (Some(t), Some(_)) if same(given, t) => Some(Role::Read),
        _ => None,
    }
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No session and no anonymous access: to the login page.
    Login,
    /// A POST that fails a check (403), with why.
    Forbidden(&'static str),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Login => Redirect::to("/login").into_response(),
            Denied::Forbidden(why) => (StatusCode::FORBIDDEN, format!("refused: {why}\n")).into_response(),
        }
    }
}

/// The request's access, or why not.
pub fn access(s: &Shared, headers: &HeaderMap) -> Result<Access, Denied> {
    let login_possible = s.token.is_some() || s.admin.is_some();
    if let Some(sess) = cookie_value(headers).and_then(|id| s.dash.sessions.get(&id)) {
        let logged_in = login_possible && Some(sess.role) != anonymous(s);
        return Ok(Access { role: sess.role, csrf: sess.csrf, logged_in, set_cookie: None });
    }
    match anonymous(s) {
        Some(role) => {
            let (id, sess) = s.dash.sessions.create(role);
            Ok(Access { role, csrf: sess.csrf, logged_in: false, set_cookie: Some(set_cookie(s, &id)) })
        }
        None => Err(Denied::Login),
    }
}

/// Whether a POST comes from a page of this dashboard: its `Origin` (or, without one, its
/// `Referer`) is `http(s)://HOST` of the `Host` header. Clients that send neither (scripts) pass
/// on their CSRF token alone; browsers always send `Origin` on a POST.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let matches = |url: &str| {
        let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
        rest.is_some_and(|r| r.split('/').next() == Some(host))
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().is_ok_and(matches);
    }
    match headers.get(header::REFERER) {
        Some(r) => r.to_str().is_ok_and(matches),
        None => true,
    }
}

/// Check a POST: same origin, a session with at least `need`, and its CSRF token.
pub fn check_post(s: &Shared, headers: &HeaderMap, csrf: &str, need: Role) -> Result<Access, Denied> {
    if !same_origin(headers) {
        return Err(Denied::Forbidden("the request does not come from this dashboard"));
    }
    let Some(sess) = cookie_value(headers).and_then(|id| s.dash.sessions.get(&id)) else {
        return Err(Denied::Forbidden("no session (reload the page, or log in)"));
    };
    if !same(csrf, &sess.csrf) {
        return Err(Denied::Forbidden("missing or stale form token (reload the page)"));
    }
    if sess.role < need {
        return Err(Denied::Forbidden("this needs the admin token (log in with it)"));
    }
    Ok(Access { role: sess.role, csrf: sess.csrf, logged_in: true, set_cookie: None })
}

/// `GET /login`.
pub async fn login_page(Axum(s): Axum<Shared>) -> Response {
    if s.token.is_none() && s.admin.is_none() {
        return Redirect::to("/").into_response();
    }
    super::pages::login_form(None, StatusCode::OK)
}

/// The login form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /login`: a valid token makes a session; a wrong one is refused (after a short delay,
/// and logged without the token).
pub async fn login(Axum(s): Axum<Shared>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "refused: the request does not come from this dashboard\n").into_response();
    }
    let Some(role) = role_of(&s, f.token.trim()) else {
        s.dash.log.warn("dashboard_login_refused", &[("reason", "unknown token".into())]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        return super::pages::login_form(Some("That token was not accepted."), StatusCode::UNAUTHORIZED);
    };
    if let Some(old) = cookie_value(&headers) {
        s.dash.sessions.remove(&old);
    }
    let (id, _) = s.dash.sessions.create(role);
    let who = if role == Role::Admin { "admin" } else { "read-only" };
    s.dash.log.info("dashboard_login", &[("role", who.into())]);
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(&s, &id)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The logout form's fields.
#[derive(Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// `POST /logout`.
pub async fn logout(Axum(s): Axum<Shared>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    if let Err(r) = check_post(&s, &headers, &f.csrf, Role::Read) {
        return r.into_response();
    }
    if let Some(id) = cookie_value(&headers) {
        s.dash.sessions.remove(&id);
    }
    let mut r = Redirect::to("/login").into_response();
    let secure = if s.dash.secure { "; Secure" } else { "" };
    let gone = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        assert!(same_origin(&headers(&[("host", "10.0.0.5:9848"), ("origin", "http://10.0.0.5:9848")])));
        assert!(!same_origin(&headers(&[("host", "10.0.0.5:9848"), ("origin", "http://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "10.0.0.5:9848"), ("origin", "null")])));
        assert!(same_origin(&headers(&[("host", "h:1"), ("referer", "https://h:1/sources/db")])));
        assert!(!same_origin(&headers(&[("host", "h:1"), ("referer", "https://h:10/")])));
        assert!(same_origin(&headers(&[("host", "h:1")])));
        assert!(!same_origin(&headers(&[])));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; lifeboat_session=xyz; b=2")]);
        assert_eq!(cookie_value(&h).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&headers(&[("cookie", "lifeboat_sessionx=1")])), None);
    }
}
