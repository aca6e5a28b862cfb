//! The S3-compatible object-storage backend, through OpenDAL.
//!
//! Objects use the same keys as the local backend (restic's layout, see the crate docs) below
//! an optional prefix inside one bucket, so restic reads a repository Lifeboat wrote to S3 and
//! the other way round.
//!
//! # Repository URLs
//!
//! * `s3:http://HOST:PORT/BUCKET/PREFIX` (restic's form): the endpoint is given, requests are
//!   path-style (`http://HOST:PORT/BUCKET/KEY`), as MinIO, SeaweedFS, Ceph and Garage expect.
//!   `s3:HOST/BUCKET/PREFIX` means `https://HOST`.
//! * `s3://BUCKET/PREFIX`: the endpoint comes from `?endpoint=URL`, [`S3Options::endpoint`] or
//!   `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`; with an endpoint requests are path-style,
//!   without one they go to AWS (`https://BUCKET.s3.REGION.amazonaws.com`).
//!
//! Both forms accept `?region=REGION` (else [`S3Options::region`], `AWS_REGION`,
//! `AWS_DEFAULT_REGION`, then `us-east-1`), and the `s3://` form `?endpoint=URL`.
//!
//! # Credentials
//!
//! [`S3Options`] (from the config file) or the standard variables `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. Without either, OpenDAL's loader looks at
//! the shared AWS files (`~/.aws/credentials`, `AWS_PROFILE`) and web-identity tokens
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as on Kubernetes); the EC2 instance
//! metadata service is never asked. Credentials never appear in [`Backend::location`] or in
//! error messages, and a URL carrying them (`s3://KEY:SECRET@…`) is rejected.
//!
//! # Transport
//!
//! HTTP(S) with rustls and Mozilla's root certificates; for an `https` endpoint the
//! certificates in the file named by `AWS_CA_BUNDLE` are trusted as well (a private CA). Plain
//! `http` endpoints never read `AWS_CA_BUNDLE`. Connections time out after 10 s, single
//! requests after 120 s without progress.
//!
//! # Semantics
//!
//! * `save` is one `PUT` (atomic: readers see the old or the new object) up to
//!   [`MULTIPART_CHUNK`] bytes; larger objects are uploaded in parts of that size (the object
//!   appears only when the upload completes; a failed upload is aborted).
//! * Ranged reads use HTTP `Range`; listing pages through any number of objects.
//! * A missing object is [`BackendError::NotFound`]; `remove` checks existence first because
//!   S3 `DELETE` succeeds on missing keys.
//! * Server errors (5xx), throttling, timeouts and connection failures are retryable
//!   ([`BackendError::is_retryable`]), so [`crate::RetryBackend`] retries them with backoff.
//! * `create` writes nothing (S3 has no directories) and does not create the bucket: it only
//!   checks that the bucket is reachable and holds no repository.
//!
//! The [`Backend`] trait is synchronous; each backend owns a small tokio runtime (two worker
//! threads driving the sockets) and every call blocks on OpenDAL's async API, so any number of
//! threads may call it concurrently.

mod lock;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opendal::layers::{HttpClientLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions, WriteOptions};
use opendal::raw::{BytesRange, HttpClient};
use opendal::{Buffer, ErrorKind, Operator};

use crate::error::{BackendError, ErrorContext, Op};
use crate::{Backend, FileType, Result};

pub use lock::{DefaultRetention, ExtendReport, LockMode, ObjectLockStatus, ObjectVersion, Versioning};

/// Objects larger than this are uploaded in parts of this size (multipart upload); smaller
/// ones (every pack at the default pack size) in a single `PUT`.
pub const MULTIPART_CHUNK: usize = 16 * 1024 * 1024;

/// Parts of one multipart upload sent at the same time.
const MULTIPART_CONCURRENCY: usize = 4;

/// Region used when none is configured (what S3-compatible servers expect).
const DEFAULT_REGION: &str = "us-east-1";

/// Time allowed to open a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request without data (stat, delete, list page).
const OP_TIMEOUT: Duration = Duration::from_secs(120);
/// Time allowed for one read or write of data (a whole pack in one `PUT`).
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// Settings that do not belong in the URL: credentials, and the endpoint and region when the
/// URL does not give them. Fields left `None` are taken from the environment by
/// [`S3Options::with_env`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// Access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret access key (`AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials (`AWS_SESSION_TOKEN`).
    pub session_token: Option<String>,
    /// Endpoint URL such as `http://127.0.0.1:9000`, for `s3://` URLs (`AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region (`AWS_REGION`, `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
}

impl fmt::Debug for S3Options {
    /// Shows which fields are set, never the secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("S3Options")
            .field("access_key_id", &set(&self.access_key_id))
            .field("secret_access_key", &set(&self.secret_access_key))
            .field("session_token", &set(&self.session_token))
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish()
    }
}

impl S3Options {
    /// The options the standard AWS environment variables give: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL_S3` (else
    /// `AWS_ENDPOINT_URL`) and `AWS_REGION` (else `AWS_DEFAULT_REGION`). Empty values count as
    /// unset.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`S3Options::from_env`], reading variables through `var` (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        S3Options {
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
            session_token: get("AWS_SESSION_TOKEN"),
            endpoint: get("AWS_ENDPOINT_URL_S3").or_else(|| get("AWS_ENDPOINT_URL")),
            region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
        }
    }

    /// These options, with unset fields taken from `fallback`. The credentials (key id,
    /// secret, session token) are taken as a group: from `self` if it has an access key id,
    /// else all from `fallback`, so that two sources are never mixed.
    pub fn or(self, fallback: S3Options) -> Self {
        let (access_key_id, secret_access_key, session_token) = if self.access_key_id.is_some() {
            (self.access_key_id, self.secret_access_key, self.session_token)
        } else {
            (fallback.access_key_id, fallback.secret_access_key, fallback.session_token)
        };
        S3Options {
            access_key_id,
            secret_access_key,
            session_token,
            endpoint: self.endpoint.or(fallback.endpoint),
            region: self.region.or(fallback.region),
        }
    }

    /// These options, with unset fields taken from the environment ([`S3Options::from_env`]).
    pub fn with_env(self) -> Self {
        self.or(S3Options::from_env())
    }
}

/// Whether `url` names an S3 repository (`s3:…` or `s3://…`).
pub fn is_s3_url(url: &str) -> bool {
    url.starts_with("s3:")
}

/// A parsed repository URL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct S3Url {
    /// `scheme://host[:port]`, if the URL gives it.
    endpoint: Option<String>,
    bucket: String,
    /// Key prefix without leading or trailing `/` (empty: the bucket's root).
    prefix: String,
    region: Option<String>,
    /// `s3:http://…` (restic's form) rather than `s3://…`.
    restic_form: bool,
}

impl S3Url {
    /// The URL as shown in messages (no query, no credentials).
    fn display(&self) -> String {
        let prefix = if self.prefix.is_empty() { String::new() } else { format!("/{}", self.prefix) };
        match (&self.endpoint, self.restic_form) {
            (Some(endpoint), true) => format!("s3:{endpoint}/{}{prefix}", self.bucket),
            _ => format!("s3://{}{prefix}", self.bucket),
        }
    }
}

/// Removes `user:password@` from a URL (also from URLs inside its query) so that messages
/// never show it.
fn redact(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    // Authorities start after `//`, or right after `s3:` in restic's scheme-less form.
    if let Some(after) = url.strip_prefix("s3:").filter(|a| !a.starts_with("//") && !a.contains("://")) {
        out.push_str("s3:");
        rest = after;
        redact_authority(&mut out, &mut rest);
    }
    while let Some(i) = rest.find("//") {
        out.push_str(&rest[..i + 2]);
        rest = &rest[i + 2..];
        redact_authority(&mut out, &mut rest);
    }
    out.push_str(rest);
    out
}

/// Copies the authority at the start of `rest` to `out`, with any `userinfo@` replaced by
/// `***@`, and advances `rest` past it.
fn redact_authority(out: &mut String, rest: &mut &str) {
    let end = rest.find(['/', '?', '&', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    match authority.rfind('@') {
        Some(at) => {
            out.push_str("***@");
            out.push_str(&authority[at + 1..]);
        }
        None => out.push_str(authority),
    }
    *rest = &rest[end..];
}

/// Decodes `%XX` escapes (query values like `endpoint=http%3A%2F%2Fhost`).
fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("bad %-escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape in {s:?}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 after decoding"))
}

const CREDENTIALS_IN_URL: &str = "credentials in the repository URL are not supported: \
     set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or [repository] s3 in the config)";

/// Checks that an endpoint is `http(s)://host[:port]` and returns it without a trailing `/`.
fn check_endpoint(endpoint: &str) -> std::result::Result<String, String> {
    let e = endpoint.trim_end_matches('/');
    let Some(host) = e.strip_prefix("http://").or_else(|| e.strip_prefix("https://")) else {
        return Err(format!("endpoint {:?} must start with http:// or https://", redact(endpoint)));
    };
    if host.contains('@') {
        return Err(CREDENTIALS_IN_URL.to_owned());
    }
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return Err(format!("endpoint {e:?} must be scheme://host[:port], without a path"));
    }
    Ok(e.to_owned())
}

fn parse_url(url: &str) -> std::result::Result<S3Url, String> {
    let (rest, restic_form) = if let Some(rest) = url.strip_prefix("s3://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("s3:") {
        (rest, true)
    } else {
        return Err("not an S3 URL (expected s3://BUCKET/PREFIX or s3:http://HOST:PORT/BUCKET/PREFIX)".to_owned());
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (endpoint, path) = if restic_form {
        let (scheme, after) = if let Some(a) = rest.strip_prefix("http://") {
            ("http://", a)
        } else if let Some(a) = rest.strip_prefix("https://") {
            ("https://", a)
        } else {
            ("https://", rest)
        };
        let (host, path) = after.split_once('/').unwrap_or((after, ""));
        if host.contains('@') {
            return Err(CREDENTIALS_IN_URL.to_owned());
        }
        if host.is_empty() {
            return Err("missing host: use s3:http://HOST:PORT/BUCKET/PREFIX".to_owned());
        }
        (Some(check_endpoint(&format!("{scheme}{host}"))?), path)
    } else {
        (None, rest)
    };
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let bucket = parts.next().unwrap_or_default().to_owned();
    if bucket.contains('@') || bucket.contains(':') {
        return Err(CREDENTIALS_IN_URL.to_owned());
    }
    if bucket.is_empty() {
        return Err("missing bucket name".to_owned());
    }
    if !bucket.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
        return Err(format!("invalid bucket name {bucket:?}"));
    }
    let segments: Vec<&str> = parts.collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err("the prefix must not contain '.' or '..' components".to_owned());
    }
    let mut parsed = S3Url { endpoint, bucket, prefix: segments.join("/"), region: None, restic_form };
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        match k {
            "region" if !v.is_empty() => parsed.region = Some(v),
            "endpoint" if !restic_form && !v.is_empty() => parsed.endpoint = Some(check_endpoint(&v)?),
            "endpoint" if restic_form => {
                return Err("the s3:http://HOST/… form already names the endpoint; drop ?endpoint=".to_owned())
            }
            "region" | "endpoint" => return Err(format!("empty value for ?{k}=")),
            _ => return Err(format!("unknown URL option {k:?} (known: region, endpoint)")),
        }
    }
    Ok(parsed)
}

/// A repository in an S3 bucket (AWS or any S3-compatible server), through OpenDAL.
///
/// See the [module docs](self) for URL forms, credentials and semantics.
pub struct S3Backend {
    op: Operator,
    runtime: tokio::runtime::Runtime,
    location: String,
    bucket: String,
    /// Key prefix without leading or trailing `/`.
    prefix: String,
    /// Endpoint (`None`: AWS, virtual-hosted style).
    endpoint: Option<String>,
    region: String,
    /// Credentials for the signed requests of [`lock`] (OpenDAL keeps its own copy).
    options: S3Options,
    /// The HTTP client OpenDAL uses too.
    http: reqwest::Client,
    /// Set by [`S3Backend::as_of`]: a read-only view of the bucket at a past time.
    as_of: Option<AsOf>,
}

/// The objects of an as-of view: key (relative to the prefix) → (version id, size).
type VersionMap = Arc<HashMap<String, (String, u64)>>;

/// A point-in-time view: each key resolves to its newest version written at or before
/// `time` (absent if that is a delete marker or there is none).
struct AsOf {
    time: SystemTime,
    /// Listed on first use.
    objects: Mutex<Option<VersionMap>>,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend").field("location", &self.location).finish_non_exhaustive()
    }
}

impl S3Backend {
    /// A backend for the repository at `url` (`s3:http://HOST:PORT/BUCKET/PREFIX` or
    /// `s3://BUCKET/PREFIX?endpoint=…&region=…`), with credentials and defaults from
    /// `options`. Values in the URL win over `options`; combine `options` with the
    /// environment first ([`S3Options::with_env`]) to honour the `AWS_*` variables.
    ///
    /// Does not contact the server. Fails ([`Op::Open`]) for a malformed URL or endpoint, a
    /// secret key without key id or the other way round, or an unreadable `AWS_CA_BUNDLE`
    /// with an `https` endpoint.
    pub fn new(url: &str, options: &S3Options) -> Result<Self> {
        let fail = |location: String, message: String| {
            BackendError::other(ErrorContext::new(location, Op::Open, None, ""), message, false)
        };
        let parsed = parse_url(url).map_err(|m| fail(redact(url), m))?;
        let location = parsed.display();
        let fail = |m: String| fail(location.clone(), m);

        let endpoint = match (&parsed.endpoint, &options.endpoint) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(e)) => Some(check_endpoint(e).map_err(fail)?),
            (None, None) => None,
        };
        let region = parsed.region.clone().or_else(|| options.region.clone()).unwrap_or_else(|| DEFAULT_REGION.into());

        let mut builder = opendal::services::S3::default()
            .bucket(&parsed.bucket)
            .root(&format!("/{}", parsed.prefix))
            .region(&region)
            .disable_ec2_metadata();
        match &endpoint {
            Some(e) => builder = builder.endpoint(e),
            // AWS itself: virtual-hosted style, which every AWS region supports.
            None => builder = builder.enable_virtual_host_style(),
        }
        match (&options.access_key_id, &options.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder.access_key_id(id).secret_access_key(secret).disable_config_load();
                if let Some(token) = &options.session_token {
                    builder = builder.session_token(token);
                }
            }
            (Some(_), None) => {
                return Err(fail("an access key id is set but no secret access key (AWS_SECRET_ACCESS_KEY)".into()))
            }
            (None, Some(_)) => {
                return Err(fail("a secret access key is set but no access key id (AWS_ACCESS_KEY_ID)".into()))
            }
            // Shared AWS files and web identity, loaded by OpenDAL when a request needs them.
            (None, None) => {}
        }

        // Versions are only used when asked for (as-of views, object lock); enabling them
        // changes no other request.
        builder = builder.enable_versioning(true);
        let https = endpoint.as_deref().is_none_or(|e| e.starts_with("https://"));
        let http = http_client(https).map_err(fail)?;
        let op = Operator::new(builder)
            .map_err(|e| fail(format!("invalid S3 settings: {}", describe(&e))))?
            .layer(HttpClientLayer::new(HttpClient::with(http.clone())))
            .layer(TimeoutLayer::new().with_timeout(OP_TIMEOUT).with_io_timeout(IO_TIMEOUT))
            .finish();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lifeboat-s3")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the I/O runtime: {e}")))?;
        Ok(S3Backend {
            op,
            runtime,
            location,
            bucket: parsed.bucket,
            prefix: parsed.prefix,
            endpoint,
            region,
            options: options.clone(),
            http,
            as_of: None,
        })
    }

    /// This backend as a read-only view of the bucket at `time`: every object as it was then
    /// (older versions of overwritten objects, deleted objects brought back, later objects
    /// hidden). Needs a bucket with versioning; writing through the view is refused. This is
    /// how a repository is read after an attacker with the credentials deleted or overwrote
    /// objects in a bucket whose versions are kept (Object Lock).
    pub fn as_of(mut self, time: SystemTime) -> Self {
        let shown = chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.location = format!("{} (as of {shown})", self.location);
        self.as_of = Some(AsOf { time, objects: Mutex::new(None) });
        self
    }

    /// The objects of the as-of view (listed once), or `None` for a live backend.
    fn as_of_objects(&self, op: Op) -> Result<Option<VersionMap>> {
        let Some(as_of) = &self.as_of else { return Ok(None) };
        let mut cached = as_of.objects.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(map) = &*cached {
            return Ok(Some(map.clone()));
        }
        if self.versioning()? == Versioning::Off {
            return Err(BackendError::other(
                self.ctx(op, None, ""),
                format!(
                    "the bucket {:?} keeps no versions: a view as of a past time needs versioning (or Object Lock)",
                    self.bucket
                ),
                false,
            ));
        }
        // Per key the newest version at or before the time; listings are newest first per key,
        // so of two versions in the same second the first one listed wins.
        let mut newest: HashMap<String, ObjectVersion> = HashMap::new();
        for v in self.versions()?.into_iter().filter(|v| v.modified <= as_of.time) {
            if newest.get(&v.key).is_none_or(|old| old.modified < v.modified) {
                newest.insert(v.key.clone(), v);
            }
        }
        // A delete marker means the object did not exist then.
        let map: VersionMap =
            Arc::new(newest.into_iter().filter(|(_, v)| !v.deleted).map(|(k, v)| (k, (v.version, v.size))).collect());
        *cached = Some(map.clone());
        Ok(Some(map))
    }

    /// The version to read for `key` in an as-of view (`None` for a live backend); not found
    /// if the key did not exist at that time.
    fn version_of(&self, op: Op, ft: FileType, key: &str) -> Result<Option<(String, u64)>> {
        match self.as_of_objects(op)? {
            None => Ok(None),
            Some(map) => match map.get(key) {
                Some(v) => Ok(Some(v.clone())),
                None => Err(BackendError::NotFound { ctx: self.ctx(op, Some(ft), key) }),
            },
        }
    }

    /// Refuses writing through an as-of view.
    fn writable(&self, op: Op, ft: Option<FileType>, key: &str) -> Result<()> {
        match &self.as_of {
            None => Ok(()),
            Some(_) => Err(BackendError::other(
                self.ctx(op, ft, key),
                "this is a read-only view of the bucket at a past time: nothing can be written".to_owned(),
                false,
            )),
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Runs a future to completion on this backend's runtime, from any thread (also from
    /// inside another tokio runtime, where it blocks a helper thread instead).
    fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.runtime.block_on(fut);
        }
        std::thread::scope(|s| match s.spawn(|| self.runtime.block_on(fut)).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }

    fn ctx(&self, op: Op, ft: Option<FileType>, path: impl Into<String>) -> ErrorContext {
        ErrorContext::new(self.location.clone(), op, ft, path)
    }

    /// Validates `name` and returns its key relative to the prefix.
    fn key(&self, op: Op, ft: FileType, name: &str) -> Result<String> {
        ft.object_key(name).map_err(|reason| BackendError::InvalidName { ctx: self.ctx(op, Some(ft), name), reason })
    }

    /// Maps an OpenDAL error to a [`BackendError`] with one clear, secret-free line.
    fn error(&self, op: Op, ft: Option<FileType>, path: &str, e: &opendal::Error) -> BackendError {
        let ctx = self.ctx(op, ft, path);
        let text = e.to_string();
        let s3_code = field(&text, "code: \"");
        let message = match e.kind() {
            ErrorKind::NotFound => return BackendError::NotFound { ctx },
            ErrorKind::PermissionDenied if text.contains("no valid credential") => {
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or [repository] s3 in the config)"
                    .to_owned()
            }
            ErrorKind::PermissionDenied => format!(
                "access denied ({}): check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket's permissions",
                describe(e)
            ),
            ErrorKind::ConfigInvalid if s3_code.as_deref() == Some("NoSuchBucket") => {
                format!("the bucket {:?} does not exist (create it first)", self.bucket)
            }
            ErrorKind::RateLimited => format!("the server asks to slow down ({})", describe(e)),
            _ => describe(e),
        };
        let retryable = e.is_temporary() || e.kind() == ErrorKind::RateLimited;
        BackendError::other(ctx, message, retryable)
    }

    async fn stat_file(&self, key: &str) -> opendal::Result<u64> {
        let meta = self.op.stat(key).await?;
        if meta.mode().is_file() {
            Ok(meta.content_length())
        } else {
            Err(opendal::Error::new(ErrorKind::NotFound, "not a file"))
        }
    }

    /// Size of the object at `key`, with errors in terms of `op`.
    fn size_of(&self, op: Op, ft: FileType, key: &str) -> Result<u64> {
        if let Some((_, size)) = self.version_of(op, ft, key)? {
            return Ok(size);
        }
        self.block_on(self.stat_file(key)).map_err(|e| self.error(op, Some(ft), key, &e))
    }

    /// Lists files below `dir` (`keys/`, `data/`…), as (path relative to the prefix, size).
    fn list_dir(&self, ft: FileType, dir: &str, recursive: bool) -> Result<Vec<(String, u64)>> {
        if let Some(map) = self.as_of_objects(Op::List)? {
            return Ok(map
                .iter()
                .filter_map(|(k, (_, size))| Some((k, k.strip_prefix(dir)?, *size)))
                .filter(|(_, rest, _)| !rest.is_empty() && (recursive || !rest.contains('/')))
                .map(|(k, _, size)| (k.clone(), size))
                .collect());
        }
        let opts = ListOptions { recursive, ..Default::default() };
        let entries =
            self.block_on(self.op.list_options(dir, opts)).map_err(|e| self.error(Op::List, Some(ft), dir, &e))?;
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().mode().is_file())
            .map(|e| (e.path().to_owned(), e.metadata().content_length()))
            .collect())
    }
}

/// The HTTP client: rustls with Mozilla's roots, plus `AWS_CA_BUNDLE`'s certificates for
/// `https` endpoints, and a connect timeout.
fn http_client(https: bool) -> std::result::Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
    if https {
        if let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
            let shown = std::path::Path::new(&path).display().to_string();
            let pem = std::fs::read(&path).map_err(|e| format!("AWS_CA_BUNDLE: cannot read {shown}: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("AWS_CA_BUNDLE: {shown} is not a PEM certificate bundle: {e}"))?;
            if certs.is_empty() {
                return Err(format!("AWS_CA_BUNDLE: {shown} holds no certificate"));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
    }
    builder.build().map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// The text after `start` up to the next `"` in `text` (fields of OpenDAL's S3 error text,
/// e.g. `code: "NoSuchBucket"`).
fn field(text: &str, start: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find('"')?;
    Some(text[from..from + len].to_owned()).filter(|s| !s.is_empty())
}

/// A short description of an OpenDAL error: the S3 error code and message, the HTTP status,
/// or the root cause of a transport failure (e.g. `Connection refused`). One line, bounded
/// length, without request details.
fn describe(e: &opendal::Error) -> String {
    let text = e.to_string();
    let status = text
        .find("status: ")
        .map(|i| text[i + 8..].chars().take_while(char::is_ascii_digit).collect::<String>())
        .filter(|s| !s.is_empty());
    let out = if let Some(code) = field(&text, "code: \"") {
        let msg = field(&text, "message: \"").map(|m| format!(": {m}")).unwrap_or_default();
        let status = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
        format!("S3 error {code}{msg}{status}")
    } else if let Some(root) = root_cause(e) {
        if text.contains("send http request") {
            format!("cannot reach the server: {root}")
        } else {
            root
        }
    } else {
        // OpenDAL's text is `Kind (status) at op, context: { … } => message, source: …`.
        let message = text.split_once(" => ").map(|(_, m)| m).unwrap_or_default();
        let message = message.split(", source: ").next().unwrap_or(message).trim();
        match status {
            Some(s) if message.is_empty() || message.starts_with('<') => format!("HTTP {s}"),
            Some(s) => format!("HTTP {s}: {message}"),
            None if message.is_empty() => format!("{} error", e.kind()),
            None => message.to_owned(),
        }
    };
    let one_line = out.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// The innermost error below `e` (the `io::Error` of a failed connection, a TLS failure…).
/// The innermost source of `e` (e.g. "Connection refused"), if it has any.
fn root_cause(e: &dyn std::error::Error) -> Option<String> {
    let mut cur: &dyn std::error::Error = e.source()?;
    while let Some(next) = cur.source() {
        cur = next;
    }
    Some(cur.to_string())
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
        self.writable(Op::Create, Some(FileType::Config), "config")?;
        if self.has_config()? {
            return Err(BackendError::AlreadyExists { ctx: self.ctx(Op::Create, Some(FileType::Config), "config") });
        }
        Ok(())
    }

    /// Also checks the bucket when there is no config, so that a missing bucket or wrong
    /// credentials give an error rather than "no repository".
    fn has_config(&self) -> Result<bool> {
        if let Some(map) = self.as_of_objects(Op::HasConfig)? {
            return Ok(map.contains_key("config"));
        }
        match self.block_on(self.stat_file("config")) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // HEAD answers a missing bucket with a bare 404; a listing names the problem.
                self.block_on(self.op.list("locks/"))
                    .map_err(|e| self.error(Op::HasConfig, Some(FileType::Config), "config", &e))?;
                Ok(false)
            }
            Err(e) => Err(self.error(Op::HasConfig, Some(FileType::Config), "config", &e)),
        }
    }

    fn save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        let key = self.key(Op::Save, ft, name)?;
        self.writable(Op::Save, Some(ft), &key)?;
        let opts =
            WriteOptions { chunk: Some(MULTIPART_CHUNK), concurrent: MULTIPART_CONCURRENCY, ..Default::default() };
        let buffer = Buffer::from(data.to_vec());
        let upload = async {
            let mut w = self.op.writer_options(&key, opts).await?;
            let written = match w.write(buffer).await {
                Ok(()) => w.close().await.map(|_| ()),
                Err(e) => Err(e),
            };
            if written.is_err() {
                // Best effort: drop the parts of an unfinished multipart upload.
                let _ = w.abort().await;
            }
            written
        };
        self.block_on(upload).map_err(|e| self.error(Op::Save, Some(ft), &key, &e))
    }

    fn load(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        let key = self.key(Op::Load, ft, name)?;
        let version = self.version_of(Op::Load, ft, &key)?.map(|v| v.0);
        match self.block_on(self.op.read_options(&key, ReadOptions { version, ..Default::default() })) {
            Ok(buf) => Ok(buf.to_vec()),
            Err(e) => Err(self.error(Op::Load, Some(ft), &key, &e)),
        }
    }

    fn load_range(&self, ft: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        let key = self.key(Op::LoadRange, ft, name)?;
        let short = |size| BackendError::ShortRead {
            ctx: self.ctx(Op::LoadRange, Some(ft), key.as_str()),
            offset,
            length,
            size,
        };
        let end = offset.checked_add(u64::from(length));
        if length == 0 || end.is_none() {
            // Nothing to fetch (or an impossible range): only the size decides.
            let size = self.size_of(Op::LoadRange, ft, &key)?;
            return match end {
                Some(end) if end <= size => Ok(Vec::new()),
                _ => Err(short(size)),
            };
        }
        let version = self.version_of(Op::LoadRange, ft, &key)?.map(|v| v.0);
        let opts =
            ReadOptions { range: BytesRange::new(offset, Some(u64::from(length))), version, ..Default::default() };
        let result = self.block_on(self.op.read_options(&key, opts));
        let end = end.unwrap_or(u64::MAX);
        match result {
            Ok(buf) if buf.len() == length as usize => Ok(buf.to_vec()),
            Ok(_) => Err(short(self.size_of(Op::LoadRange, ft, &key)?)),
            Err(e) if e.kind() == ErrorKind::NotFound || e.is_temporary() => {
                Err(self.error(Op::LoadRange, Some(ft), &key, &e))
            }
            // Most likely "range not satisfiable": the size tells.
            Err(e) => match self.size_of(Op::LoadRange, ft, &key)? {
                size if end > size => Err(short(size)),
                _ => Err(self.error(Op::LoadRange, Some(ft), &key, &e)),
            },
        }
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        let key = self.key(Op::Size, ft, name)?;
        self.size_of(Op::Size, ft, &key)
    }

    fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        match ft {
            FileType::Config => match self.size_of(Op::List, ft, "config") {
                Ok(size) => out.push(("config".to_owned(), size)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            },
            FileType::Pack => {
                for (path, size) in self.list_dir(ft, "data/", true)? {
                    let rest = path.strip_prefix("data/").unwrap_or_default();
                    if let Some((sub, name)) = rest.split_once('/') {
                        if sub.chars().count() == 2 && ft.validate_name(name).is_ok() {
                            out.push((name.to_owned(), size));
                        }
                    }
                }
            }
            FileType::Lifeboat => {
                for (path, size) in self.list_dir(ft, "lifeboat/", true)? {
                    let name = path.strip_prefix("lifeboat/").unwrap_or_default();
                    if ft.validate_name(name).is_ok() {
                        out.push((name.to_owned(), size));
                    }
                }
            }
            _ => {
                let dir = format!("{}/", ft.dir().unwrap_or_default());
                for (path, size) in self.list_dir(ft, &dir, false)? {
                    let name = path.strip_prefix(dir.as_str()).unwrap_or_default();
                    if ft.validate_name(name).is_ok() {
                        out.push((name.to_owned(), size));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn list_prefix(&self, ft: FileType, prefix: &str) -> Result<Vec<(String, u64)>> {
        let Some(folder) = ft.prefix_folder(prefix) else {
            return Ok(crate::starting_with(self.list(ft)?, prefix));
        };
        Ok(crate::lifeboat_named(self.list_dir(ft, &format!("lifeboat/{folder}"), true)?, prefix))
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        let key = self.key(Op::Remove, ft, name)?;
        self.writable(Op::Remove, Some(ft), &key)?;
        // S3 DELETE succeeds for missing keys; the contract wants not-found.
        self.size_of(Op::Remove, ft, &key)?;
        self.block_on(self.op.delete(&key)).map_err(|e| self.error(Op::Remove, Some(ft), &key, &e))
    }

    /// Batched: one `DeleteObjects` request per 1000 keys, no existence checks (S3 ignores
    /// missing keys, which is what the contract wants here).
    fn remove_many(&self, ft: FileType, names: &[String]) -> Result<()> {
        let keys = names.iter().map(|n| self.key(Op::Remove, ft, n)).collect::<Result<Vec<_>>>()?;
        self.writable(Op::Remove, Some(ft), "")?;
        let dir = ft.dir().map_or_else(|| "config".to_owned(), |d| format!("{d}/"));
        self.block_on(self.op.delete_iter(keys)).map_err(|e| self.error(Op::Remove, Some(ft), &dir, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> S3Url {
        match parse_url(url) {
            Ok(u) => u,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn parses_restic_form() {
        let u = parsed("s3:http://127.0.0.1:8333/bucket/some/prefix/");
        assert_eq!(u.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("bucket", "some/prefix"));
        assert_eq!(u.display(), "s3:http://127.0.0.1:8333/bucket/some/prefix");
        let u = parsed("s3:s3.eu-west-1.amazonaws.com/b?region=eu-west-1");
        assert_eq!(u.endpoint.as_deref(), Some("https://s3.eu-west-1.amazonaws.com"));
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("b", ""));
        assert_eq!(u.region.as_deref(), Some("eu-west-1"));
        assert_eq!(u.display(), "s3:https://s3.eu-west-1.amazonaws.com/b");
    }

    #[test]
    fn parses_bucket_form() {
        let u = parsed("s3://offsite/lifeboat?endpoint=http%3A%2F%2Fminio%3A9000&region=eu");
        assert_eq!(u.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("offsite", "lifeboat"));
        assert_eq!(u.region.as_deref(), Some("eu"));
        assert_eq!(u.display(), "s3://offsite/lifeboat");
        let u = parsed("s3://offsite");
        assert_eq!((u.endpoint, u.prefix.as_str()), (None, ""));
    }

    #[test]
    fn rejects_bad_urls_without_echoing_secrets() {
        for (url, want) in [
            ("s3://", "missing bucket"),
            ("s3:http://127.0.0.1:8333/", "missing bucket"),
            ("s3:http:///b", "missing host"),
            ("s3://b/p?color=red", "unknown URL option"),
            ("s3://b/../x", "'..'"),
            ("s3://b/p?endpoint=minio:9000", "http://"),
            ("s3:http://h/b?endpoint=http://x", "already names"),
            ("s3://b/p?region=", "empty value"),
        ] {
            let e = parse_url(url).expect_err(url);
            assert!(e.contains(want), "{url}: {e}");
        }
        for url in [
            "s3:http://AKID:SeCrEt@127.0.0.1:8333/b/p",
            "s3://AKID:SeCrEt@b/p",
            "s3://b/p?endpoint=http://AKID:SeCrEt@h",
        ] {
            let e = parse_url(url).expect_err(url);
            assert!(e.contains("credentials in the repository URL"), "{url}: {e}");
            assert!(!e.contains("SeCrEt"));
            let e = S3Backend::new(url, &S3Options::default()).expect_err(url).to_string();
            assert!(!e.contains("SeCrEt"), "{e}");
        }
        assert_eq!(redact("s3:http://a:b@h:1/x"), "s3:http://***@h:1/x");
        assert_eq!(redact("s3://a:b@bucket/x@y"), "s3://***@bucket/x@y");
        assert_eq!(redact("s3://bucket/x@y"), "s3://bucket/x@y");
        assert_eq!(redact("s3:a:b@h/x"), "s3:***@h/x");
        assert_eq!(redact("s3://b/p?endpoint=http://a:b@h:1&region=x"), "s3://b/p?endpoint=http://***@h:1&region=x");
    }

    #[test]
    fn options_merge_and_hide_secrets() {
        let env = |name: &str| {
            match name {
                "AWS_ACCESS_KEY_ID" => Some("env-id"),
                "AWS_SECRET_ACCESS_KEY" => Some("env-secret"),
                "AWS_SESSION_TOKEN" => Some("env-token"),
                "AWS_ENDPOINT_URL" => Some("http://generic:1"),
                "AWS_ENDPOINT_URL_S3" => Some("http://s3-specific:1"),
                "AWS_DEFAULT_REGION" => Some("default-region"),
                "AWS_REGION" => Some(""),
                _ => None,
            }
            .map(str::to_owned)
        };
        let from_env = S3Options::from_vars(env);
        assert_eq!(from_env.endpoint.as_deref(), Some("http://s3-specific:1"));
        assert_eq!(from_env.region.as_deref(), Some("default-region"));
        let config = S3Options {
            access_key_id: Some("cfg-id".into()),
            secret_access_key: Some("cfg-secret".into()),
            region: Some("cfg-region".into()),
            ..Default::default()
        };
        let merged = config.clone().or(from_env.clone());
        assert_eq!(merged.access_key_id.as_deref(), Some("cfg-id"));
        assert_eq!(merged.session_token, None, "credentials are never mixed from two sources");
        assert_eq!(merged.region.as_deref(), Some("cfg-region"));
        assert_eq!(merged.endpoint.as_deref(), Some("http://s3-specific:1"));
        let merged = S3Options::default().or(from_env);
        assert_eq!(merged.session_token.as_deref(), Some("env-token"));
        let shown = format!("{merged:?}");
        assert!(!shown.contains("env-secret") && !shown.contains("env-token") && !shown.contains("env-id"), "{shown}");
    }

    #[test]
    fn open_checks_options() {
        let half = S3Options { access_key_id: Some("id".into()), ..Default::default() };
        let e = S3Backend::new("s3:http://127.0.0.1:1/b", &half).expect_err("half credentials");
        assert!(e.to_string().contains("no secret access key"), "{e}");
        assert_eq!(e.context().op, Op::Open);
        let b = S3Backend::new(
            "s3://b/p?region=x",
            &S3Options { endpoint: Some("http://h:1/".into()), ..Default::default() },
        )
        .expect("open");
        assert_eq!(b.location(), "s3://b/p");
        assert_eq!(b.bucket(), "b");
        let e = S3Backend::new("s3://b/p", &S3Options { endpoint: Some("h:1".into()), ..Default::default() })
            .expect_err("endpoint without scheme");
        assert!(e.to_string().starts_with("s3://b/p: opening the repository: endpoint"), "{e}");
    }
}
