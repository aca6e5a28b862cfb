//! The backend for restic's REST protocol (version 2): restic's `rest-server`, `rclone serve
//! restic`, and anything else that speaks it.
//!
//! # Repository URLs
//!
//! `rest:http://HOST:PORT/PATH/` or `rest:https://USER:PASSWORD@HOST/PATH/`, as restic writes
//! them. The user and password may also come from [`RestOptions`] (`[repository] rest` in the
//! config) or from restic's variables `RESTIC_REST_USERNAME` and `RESTIC_REST_PASSWORD`; the
//! URL wins. They are sent as HTTP basic authentication and never shown: [`Backend::location`]
//! and every error message carry the URL without them.
//!
//! # Protocol
//!
//! `POST /?create=true` creates the repository; `HEAD`, `GET`, `POST` and `DELETE` on
//! `/config` and `/TYPE/NAME` (`keys`, `snapshots`, `index`, `locks`, `data`) read, write and
//! delete objects; `GET /TYPE/` with `Accept: application/vnd.x.restic.rest.v2` lists them
//! with their sizes. Packs are addressed as `/data/NAME` (the server keeps them in
//! `data/XX/`). Ranged reads use HTTP `Range`.
//!
//! Lifeboat's own records ([`FileType::Lifeboat`], names with `/`) live in `/lifeboat/`, one
//! level deep: a `/` in a name is stored as `%2F` (and `%` as `%25`), because listings on the
//! REST protocol are flat. `rclone serve restic` stores them; restic's `rest-server` only knows
//! restic's own types and refuses them (the repository's data stays usable, Lifeboat's run
//! records and settings cannot be kept there).
//!
//! # Append-only servers
//!
//! `rest-server --append-only` and `rclone serve restic --append-only` answer `DELETE` (and
//! overwrites) with 403: that becomes [`BackendError::AppendOnly`], so `forget` and `prune`
//! fail with one clear line ("the REST server is append-only: …"). Locks can still be deleted.
//!
//! # Errors
//!
//! 404 is [`BackendError::NotFound`]; 401 names the credentials; 5xx, timeouts and connection
//! failures are retryable (so [`crate::RetryBackend`] retries them).

use std::fmt;
use std::time::Duration;

use reqwest::{header, Method, StatusCode};
use serde::Deserialize;

use crate::bridge::Bridge;
use crate::error::{BackendError, ErrorContext, Op};
use crate::{Backend, FileType, Result};

/// Time allowed to open a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for one request, body included (a whole pack).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The media type of version 2 listings (names with sizes).
const LIST_V2: &str = "application/vnd.x.restic.rest.v2";

/// Settings that do not belong in the URL: the user and password for basic authentication.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RestOptions {
    /// User name (`RESTIC_REST_USERNAME`).
    pub username: Option<String>,
    /// Password (`RESTIC_REST_PASSWORD`).
    pub password: Option<String>,
}

impl fmt::Debug for RestOptions {
    /// Never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestOptions")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl RestOptions {
    /// The options restic's variables give: `RESTIC_REST_USERNAME`, `RESTIC_REST_PASSWORD`.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`RestOptions::from_env`], reading variables through `var` (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        RestOptions { username: get("RESTIC_REST_USERNAME"), password: get("RESTIC_REST_PASSWORD") }
    }

    /// These options, or `fallback`'s when these name no user (never mixed).
    pub fn or(self, fallback: RestOptions) -> Self {
        if self.username.is_some() {
            self
        } else {
            fallback
        }
    }
}

/// Whether `url` names a REST repository (`rest:http://…`, `rest:https://…`).
pub fn is_rest_url(url: &str) -> bool {
    url.starts_with("rest:")
}

/// A URL without its `user:password@` (any scheme), for messages.
pub fn redact(url: &str) -> String {
    let Some(i) = url.find("://") else { return url.to_owned() };
    let (head, rest) = url.split_at(i + 3);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{head}***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Decodes `%XX` escapes.
pub(crate) fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| "bad %-escape".to_owned())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape".to_owned())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 after decoding".to_owned())
}

/// Escapes everything but unreserved characters and `/` for a URL path.
fn percent_encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A parsed `rest:` URL: the base URL (ending in `/`, without credentials) and the
/// credentials it carried.
fn parse_url(url: &str) -> std::result::Result<(String, Option<(String, String)>), String> {
    let rest = url.strip_prefix("rest:").ok_or("not a REST URL (expected rest:http://HOST:PORT/PATH)")?;
    let (scheme, after) = if let Some(a) = rest.strip_prefix("http://") {
        ("http://", a)
    } else if let Some(a) = rest.strip_prefix("https://") {
        ("https://", a)
    } else {
        return Err("a REST URL is rest:http://HOST:PORT/PATH or rest:https://HOST/PATH".to_owned());
    };
    if after.contains(['?', '#']) {
        return Err("a REST URL takes no query or fragment".to_owned());
    }
    let (authority, path) = after.split_once('/').unwrap_or((after, ""));
    let (creds, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let user = percent_decode(user).map_err(|e| format!("user name in the URL: {e}"))?;
            let password = percent_decode(password).map_err(|e| format!("password in the URL: {e}"))?;
            (Some((user, password)), host)
        }
        None => (None, authority),
    };
    if host.is_empty() || host.contains(' ') {
        return Err("missing host: use rest:http://HOST:PORT/PATH".to_owned());
    }
    let path = path.trim_matches('/');
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err("the path must not contain '.' or '..' components".to_owned());
    }
    let base = if path.is_empty() { format!("{scheme}{host}/") } else { format!("{scheme}{host}/{path}/") };
    Ok((base, creds))
}

/// Escapes a Lifeboat name into one path component (`/` → `%2F`, `%` → `%25`).
fn flatten(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

/// The inverse of [`flatten`].
fn unflatten(name: &str) -> String {
    name.replace("%2F", "/").replace("%2f", "/").replace("%25", "%")
}

/// One entry of a version 2 listing.
#[derive(Deserialize)]
struct Entry {
    name: String,
    size: u64,
}

/// A repository on a server speaking restic's REST protocol.
///
/// See the [module docs](self) for URLs, credentials and semantics.
pub struct RestBackend {
    bridge: Bridge,
    http: reqwest::Client,
    /// Base URL ending in `/`, without credentials.
    base: String,
    auth: Option<(String, String)>,
    location: String,
}

impl fmt::Debug for RestBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestBackend").field("location", &self.location).finish_non_exhaustive()
    }
}

/// A finished request: status, and the body for successful `GET`s.
struct Reply {
    status: StatusCode,
    length: Option<u64>,
    body: Vec<u8>,
}

impl RestBackend {
    /// A backend for `rest:http(s)://[USER:PASSWORD@]HOST[:PORT]/PATH`, with credentials from
    /// the URL, else from `options` (combine them with [`RestOptions::from_env`] first to
    /// honour restic's variables). Does not contact the server; fails ([`Op::Open`]) for a
    /// malformed URL or a password without a user.
    pub fn new(url: &str, options: &RestOptions) -> Result<Self> {
        let fail = |location: String, message: String| {
            BackendError::other(ErrorContext::new(location, Op::Open, None, ""), message, false)
        };
        let (base, url_creds) = parse_url(url).map_err(|m| fail(redact(url), m))?;
        let location = format!("rest:{}", base.trim_end_matches('/'));
        let auth = match (url_creds, &options.username, &options.password) {
            (Some(c), _, _) => Some(c),
            (None, Some(u), p) => Some((u.clone(), p.clone().unwrap_or_default())),
            (None, None, Some(_)) => {
                return Err(fail(
                    location,
                    "a REST password is set but no user name (RESTIC_REST_USERNAME or [repository] rest username)"
                        .into(),
                ))
            }
            (None, None, None) => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| fail(location.clone(), format!("cannot set up the HTTP client: {e}")))?;
        let bridge = Bridge::new("rest").map_err(|m| fail(location.clone(), m))?;
        Ok(RestBackend { bridge, http, base, auth, location })
    }

    fn ctx(&self, op: Op, ft: Option<FileType>, path: impl Into<String>) -> ErrorContext {
        ErrorContext::new(self.location.clone(), op, ft, path)
    }

    /// Validates `name` and returns (the object's key for messages, its path on the server).
    fn paths(&self, op: Op, ft: FileType, name: &str) -> Result<(String, String)> {
        let key = ft
            .object_key(name)
            .map_err(|reason| BackendError::InvalidName { ctx: self.ctx(op, Some(ft), name), reason })?;
        let path = match ft {
            FileType::Config => "config".to_owned(),
            FileType::Pack => format!("data/{}", percent_encode_path(name)),
            FileType::Lifeboat => format!("lifeboat/{}", percent_encode_path(&flatten(name))),
            _ => format!("{}/{}", ft.dir().unwrap_or_default(), percent_encode_path(name)),
        };
        Ok((key, path))
    }

    /// Sends one request and reads the whole answer.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(header::HeaderName, &str)],
    ) -> std::result::Result<Reply, reqwest::Error> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, Some(password));
        }
        for (name, value) in headers {
            req = req.header(name, *value);
        }
        if let Some(b) = body {
            req = req.header(header::CONTENT_TYPE, "application/octet-stream").body(b.to_vec());
        }
        self.bridge.block_on(async move {
            let resp = req.send().await?;
            let status = resp.status();
            // The header itself: the body of a HEAD answer is empty.
            let length = resp
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body = if method == Method::HEAD { Vec::new() } else { resp.bytes().await?.to_vec() };
            Ok(Reply { status, length, body })
        })
    }

    /// A failed request or an unexpected status as one clear line.
    fn error(
        &self,
        op: Op,
        ft: Option<FileType>,
        key: &str,
        r: std::result::Result<Reply, reqwest::Error>,
    ) -> BackendError {
        let ctx = self.ctx(op, ft, key);
        match r {
            Err(e) => {
                let retryable = e.is_timeout() || e.is_connect() || e.is_request() || e.is_body();
                let what = if e.is_connect() {
                    "cannot reach the REST server"
                } else if e.is_timeout() {
                    "the REST server did not answer in time"
                } else {
                    "request to the REST server failed"
                };
                let root = root_cause(&e);
                BackendError::other(ctx, format!("{what}: {}", redact(&root)), retryable)
            }
            Ok(reply) => {
                let status = reply.status;
                let text = String::from_utf8_lossy(&reply.body);
                let detail = text.split_whitespace().collect::<Vec<_>>().join(" ");
                let detail: String = detail.chars().take(200).collect();
                let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
                match status {
                    StatusCode::NOT_FOUND => BackendError::NotFound { ctx },
                    StatusCode::UNAUTHORIZED => BackendError::other(
                        ctx,
                        "the REST server refused the credentials (HTTP 401): check the user and password (in the URL, [repository] rest, or RESTIC_REST_USERNAME / RESTIC_REST_PASSWORD)",
                        false,
                    ),
                    StatusCode::FORBIDDEN if op == Op::Remove => BackendError::AppendOnly { ctx },
                    StatusCode::FORBIDDEN if op == Op::Save => BackendError::other(
                        ctx,
                        "the REST server refused the write (HTTP 403): the object exists on an append-only server, or the user may not write here",
                        false,
                    ),
                    StatusCode::FORBIDDEN => BackendError::other(ctx, format!("access denied by the REST server (HTTP 403){detail}"), false),
                    s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT => {
                        BackendError::other(ctx, format!("the REST server answered HTTP {}{detail}", s.as_u16()), true)
                    }
                    s => BackendError::other(ctx, format!("the REST server answered HTTP {}{detail}", s.as_u16()), false),
                }
            }
        }
    }

    /// Size of the object at `path` (a `HEAD`).
    fn head(&self, op: Op, ft: FileType, key: &str, path: &str) -> Result<u64> {
        match self.request(Method::HEAD, path, None, &[]) {
            Ok(r) if r.status.is_success() => r.length.ok_or_else(|| {
                BackendError::other(self.ctx(op, Some(ft), key), "the REST server sent no Content-Length", false)
            }),
            other => Err(self.error(op, Some(ft), key, other)),
        }
    }

    /// The version 2 listing of `dir` (`keys/`, `data/`…); a missing directory is empty.
    fn list_dir(&self, ft: FileType, dir: &str) -> Result<Vec<Entry>> {
        match self.request(Method::GET, dir, None, &[(header::ACCEPT, LIST_V2)]) {
            Ok(r) if r.status.is_success() => serde_json::from_slice::<Vec<Entry>>(&r.body).map_err(|e| {
                BackendError::other(
                    self.ctx(Op::List, Some(ft), dir),
                    format!(
                        "the REST server's listing is not a version 2 listing ({e}): is this a restic REST server?"
                    ),
                    false,
                )
            }),
            Ok(r) if r.status == StatusCode::NOT_FOUND => Ok(Vec::new()),
            other => Err(self.error(Op::List, Some(ft), dir, other)),
        }
    }
}

/// The innermost source of `e` (e.g. "Connection refused").
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl Backend for RestBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
        if self.has_config()? {
            return Err(BackendError::AlreadyExists { ctx: self.ctx(Op::Create, Some(FileType::Config), "config") });
        }
        match self.request(Method::POST, "?create=true", Some(&[]), &[]) {
            Ok(r) if r.status.is_success() => Ok(()),
            other => Err(self.error(Op::Create, None, "", other)),
        }
    }

    fn has_config(&self) -> Result<bool> {
        match self.head(Op::HasConfig, FileType::Config, "config", "config") {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        let (key, path) = self.paths(Op::Save, ft, name)?;
        match self.request(Method::POST, &path, Some(data), &[]) {
            Ok(r) if r.status.is_success() => Ok(()),
            other => Err(self.error(Op::Save, Some(ft), &key, other)),
        }
    }

    fn load(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        let (key, path) = self.paths(Op::Load, ft, name)?;
        match self.request(Method::GET, &path, None, &[]) {
            Ok(r) if r.status.is_success() => Ok(r.body),
            other => Err(self.error(Op::Load, Some(ft), &key, other)),
        }
    }

    fn load_range(&self, ft: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        let (key, path) = self.paths(Op::LoadRange, ft, name)?;
        let short = |size| BackendError::ShortRead {
            ctx: self.ctx(Op::LoadRange, Some(ft), key.as_str()),
            offset,
            length,
            size,
        };
        let end = offset.checked_add(u64::from(length));
        let Some(end) = end.filter(|_| length > 0) else {
            let size = self.head(Op::LoadRange, ft, &key, &path)?;
            return match end {
                Some(end) if end <= size => Ok(Vec::new()),
                _ => Err(short(size)),
            };
        };
        let range = format!("bytes={offset}-{}", end - 1);
        match self.request(Method::GET, &path, None, &[(header::RANGE, &range)]) {
            Ok(r) if r.status == StatusCode::PARTIAL_CONTENT && r.body.len() == length as usize => Ok(r.body),
            // A server that ignores Range sends the whole object.
            Ok(r) if r.status == StatusCode::OK => match r.body.get(offset as usize..end as usize) {
                Some(part) => Ok(part.to_vec()),
                None => Err(short(r.body.len() as u64)),
            },
            Ok(r) if r.status.is_success() || r.status == StatusCode::RANGE_NOT_SATISFIABLE => {
                Err(short(self.head(Op::LoadRange, ft, &key, &path)?))
            }
            other => Err(self.error(Op::LoadRange, Some(ft), &key, other)),
        }
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        let (key, path) = self.paths(Op::Size, ft, name)?;
        self.head(Op::Size, ft, &key, &path)
    }

    fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        match ft {
            FileType::Config => match self.head(Op::List, ft, "config", "config") {
                Ok(size) => out.push(("config".to_owned(), size)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            },
            FileType::Lifeboat => {
                for e in self.list_dir(ft, "lifeboat/")? {
                    let name = unflatten(&e.name);
                    if ft.validate_name(&name).is_ok() {
                        out.push((name, e.size));
                    }
                }
            }
            _ => {
                let dir = format!("{}/", ft.dir().unwrap_or_default());
                for e in self.list_dir(ft, &dir)? {
                    if ft.validate_name(&e.name).is_ok() {
                        out.push((e.name, e.size));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        let (key, path) = self.paths(Op::Remove, ft, name)?;
        match self.request(Method::DELETE, &path, None, &[]) {
            Ok(r) if r.status.is_success() => Ok(()),
            other => Err(self.error(Op::Remove, Some(ft), &key, other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_hides_passwords() {
        let (base, creds) = parse_url("rest:http://127.0.0.1:8000/repo/").expect("url");
        assert_eq!((base.as_str(), creds), ("http://127.0.0.1:8000/repo/", None));
        let (base, creds) = parse_url("rest:https://al%40ice:p%3Ass@h/").expect("url");
        assert_eq!(base, "https://h/");
        assert_eq!(creds, Some(("al@ice".to_owned(), "p:ss".to_owned())));
        for (url, want) in [
            ("rest:h:8000/x", "rest:http://"),
            ("rest:http:///x", "missing host"),
            ("rest:http://h/a/../b", "'..'"),
            ("rest:http://h/x?y=1", "no query"),
        ] {
            let e = parse_url(url).expect_err(url);
            assert!(e.contains(want), "{url}: {e}");
        }
        assert_eq!(redact("rest:http://u:SeCrEt@h:1/x@y"), "rest:http://***@h:1/x@y");
        let b = RestBackend::new("rest:http://u:SeCrEt@h:1/x/", &RestOptions::default()).expect("backend");
        assert_eq!(b.location(), "rest:http://h:1/x");
        let e = RestBackend::new("rest:http://u:SeCrEt@/x", &RestOptions::default()).expect_err("no host");
        assert!(!e.to_string().contains("SeCrEt"), "{e}");
    }

    #[test]
    fn options_come_from_one_source() {
        let env = RestOptions::from_vars(|n| match n {
            "RESTIC_REST_USERNAME" => Some("env-user".into()),
            "RESTIC_REST_PASSWORD" => Some("env-secret".into()),
            _ => None,
        });
        let cfg = RestOptions { username: Some("cfg".into()), password: None };
        assert_eq!(cfg.clone().or(env.clone()), cfg);
        assert_eq!(RestOptions::default().or(env.clone()), env);
        assert!(!format!("{env:?}").contains("env-secret"));
        let half = RestOptions { username: None, password: Some("p".into()) };
        let e = RestBackend::new("rest:http://h/x", &half).expect_err("password without user");
        assert!(e.to_string().contains("no user name"), "{e}");
    }

    #[test]
    fn lifeboat_names_flatten_and_back() {
        for name in ["top", "a/b/c", "x%2Fy", "100%/z"] {
            assert!(!flatten(name).contains('/'));
            assert_eq!(unflatten(&flatten(name)), name);
        }
    }
}
