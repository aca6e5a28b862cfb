//! The [`Backend`] over an OpenDAL operator, for Azure Blob Storage and Google Cloud Storage:
//! the service's module builds the operator from its URL and options.
//!
//! Objects use restic's layout below the operator's root, so restic reads what Lifeboat
//! writes. Semantics: a missing object is [`BackendError::NotFound`]; `remove` checks
//! existence first (object stores delete missing keys silently); transient errors
//! (OpenDAL's "temporary" ones, rate limits) are retryable. A save is one upload, which the
//! stores make visible atomically.

use std::fmt;

use opendal::options::{ListOptions, ReadOptions};
use opendal::raw::BytesRange;
use opendal::{Buffer, ErrorKind, Operator};

use crate::bridge::Bridge;
use crate::error::{BackendError, ErrorContext, Op};
use crate::{Backend, FileType, Result};

/// Which store an [`OpendalBackend`] talks to: names it in messages and decides the details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Azure Blob Storage (or Azurite).
    Azure,
    /// Google Cloud Storage (or an emulator).
    Gcs,
}

impl Service {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Service::Azure => "Azure Blob",
            Service::Gcs => "GCS",
        }
    }
}

/// A repository on an OpenDAL service (Azure Blob, GCS). Built by [`crate::azure::open`] and
/// [`crate::gcs::open`].
pub struct OpendalBackend {
    op: Operator,
    bridge: Bridge,
    location: String,
    service: Service,
    /// The container or bucket, for messages.
    container: String,
    /// A hook run before the first request, e.g. creating an Azure container on `create`.
    create_hook: Option<Box<dyn Fn() -> std::result::Result<(), String> + Send + Sync>>,
}

impl fmt::Debug for OpendalBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpendalBackend").field("location", &self.location).finish_non_exhaustive()
    }
}

impl OpendalBackend {
    /// Wraps an operator (already configured with its root) for `location`.
    pub(crate) fn new(op: Operator, location: String, service: Service, container: String) -> Result<Self> {
        let bridge = Bridge::new(match service {
            Service::Azure => "azure",
            Service::Gcs => "gcs",
        })
        .map_err(|m| BackendError::other(ErrorContext::new(location.clone(), Op::Open, None, ""), m, false))?;
        Ok(OpendalBackend { op, bridge, location, service, container, create_hook: None })
    }

    /// Runs `hook` at the start of [`Backend::create`] (e.g. creating a missing container).
    pub(crate) fn on_create(
        mut self,
        hook: impl Fn() -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.create_hook = Some(Box::new(hook));
        self
    }

    /// The service this backend talks to.
    pub fn service(&self) -> Service {
        self.service
    }

    fn ctx(&self, op: Op, ft: Option<FileType>, path: impl Into<String>) -> ErrorContext {
        ErrorContext::new(self.location.clone(), op, ft, path)
    }

    fn key(&self, op: Op, ft: FileType, name: &str) -> Result<String> {
        ft.object_key(name).map_err(|reason| BackendError::InvalidName { ctx: self.ctx(op, Some(ft), name), reason })
    }

    /// Maps an OpenDAL error to one clear, secret-free line naming the service.
    fn error(&self, op: Op, ft: Option<FileType>, path: &str, e: &opendal::Error) -> BackendError {
        let ctx = self.ctx(op, ft, path);
        if e.kind() == ErrorKind::NotFound && !self.container_missing(e) {
            return BackendError::NotFound { ctx };
        }
        let retryable = e.is_temporary() || e.kind() == ErrorKind::RateLimited;
        BackendError::other(ctx, self.explain(e), retryable)
    }

    /// Whether `e` says the container or bucket itself is missing.
    fn container_missing(&self, e: &opendal::Error) -> bool {
        let text = e.to_string();
        text.contains("ContainerNotFound")
            || (self.service == Service::Gcs && text.contains("bucket") && text.contains("not found"))
    }

    /// What went wrong, in the service's terms.
    fn explain(&self, e: &opendal::Error) -> String {
        let text = e.to_string();
        let root = root_cause(e);
        let detail = describe(e);
        let name = self.service.name();
        match self.service {
            Service::Azure if self.container_missing(e) => {
                format!("the container {:?} does not exist (`lifeboat init` creates it)", self.container)
            }
            Service::Gcs if self.container_missing(e) => {
                format!("the bucket {:?} does not exist (create it first)", self.container)
            }
            _ if e.kind() == ErrorKind::PermissionDenied
                || text.contains("status: 403")
                || text.contains("status: 401") =>
            {
                let creds = match self.service {
                    Service::Azure => "AZURE_ACCOUNT_NAME and AZURE_ACCOUNT_KEY",
                    _ => "GOOGLE_APPLICATION_CREDENTIALS",
                };
                format!("{name} refused access ({detail}): check the credentials ({creds})")
            }
            _ if text.contains("send http request") || text.contains("error sending request") => {
                format!("cannot reach the {name} endpoint: {}", root.unwrap_or(detail))
            }
            _ if e.kind() == ErrorKind::RateLimited => format!("{name} asks to slow down ({detail})"),
            _ => format!("{name}: {detail}"),
        }
    }

    async fn stat_file(&self, key: &str) -> opendal::Result<u64> {
        let meta = self.op.stat(key).await?;
        if meta.mode().is_file() {
            Ok(meta.content_length())
        } else {
            Err(opendal::Error::new(ErrorKind::NotFound, "not a file"))
        }
    }

    fn size_of(&self, op: Op, ft: FileType, key: &str) -> Result<u64> {
        self.bridge.block_on(self.stat_file(key)).map_err(|e| self.error(op, Some(ft), key, &e))
    }

    /// The size of `key` after a ranged read of it failed, or `None` when it cannot be had.
    /// The connection the read used may just have been dropped by the server, and the stat
    /// can land on a pooled connection in the same state: a few attempts, a short pause apart.
    fn size_after_failed_read(&self, key: &str) -> Option<u64> {
        for attempt in 0..3u64 {
            match self.bridge.block_on(self.stat_file(key)) {
                Ok(size) => return Some(size),
                Err(e) if e.kind() == ErrorKind::NotFound => return None,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50 * (attempt + 1))),
            }
        }
        None
    }

    /// Files below `dir` as (path relative to the root, size).
    fn list_dir(&self, ft: FileType, dir: &str, recursive: bool) -> Result<Vec<(String, u64)>> {
        let opts = ListOptions { recursive, ..Default::default() };
        let entries = match self.bridge.block_on(self.op.list_options(dir, opts)) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound && !self.container_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(self.error(Op::List, Some(ft), dir, &e)),
        };
        let mut out = Vec::new();
        for e in entries.into_iter().filter(|e| e.metadata().mode().is_file()) {
            out.push((e.path().to_owned(), e.metadata().content_length()));
        }
        Ok(out)
    }
}

/// The innermost source of `e` (e.g. "Connection refused"), if it has any.
fn root_cause(e: &dyn std::error::Error) -> Option<String> {
    let mut cur: &dyn std::error::Error = e.source()?;
    while let Some(next) = cur.source() {
        cur = next;
    }
    Some(cur.to_string())
}

/// A short, one-line description of an OpenDAL error: the service's message or the HTTP
/// status, without request details.
pub(crate) fn describe(e: &opendal::Error) -> String {
    let text = e.to_string();
    let status = text
        .find("status: ")
        .map(|i| text[i + 8..].chars().take_while(char::is_ascii_digit).collect::<String>())
        .filter(|s| !s.is_empty());
    let message = text.split_once(" => ").map(|(_, m)| m).unwrap_or_default();
    let message = message.split(", source: ").next().unwrap_or(message).trim();
    let message = if message.is_empty() || message.starts_with('<') || message.starts_with('{') {
        root_cause(e).unwrap_or_default()
    } else {
        message.to_owned()
    };
    let out = match status {
        Some(s) if message.is_empty() => format!("HTTP {s}"),
        Some(s) => format!("HTTP {s}: {message}"),
        None if message.is_empty() => format!("{} error", e.kind()),
        None => message,
    };
    let one_line = out.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

impl Backend for OpendalBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    /// Creates the container when the service can (Azure) and checks that a repository is not
    /// there yet; writes nothing (object stores have no directories).
    fn create(&self) -> Result<()> {
        if let Some(hook) = &self.create_hook {
            hook().map_err(|m| BackendError::other(self.ctx(Op::Create, None, ""), m, false))?;
        }
        if self.has_config()? {
            return Err(BackendError::AlreadyExists { ctx: self.ctx(Op::Create, Some(FileType::Config), "config") });
        }
        Ok(())
    }

    /// Also checks the container when there is no config, so that wrong credentials give an
    /// error rather than "no repository". A missing container holds no repository (and
    /// `create` makes it).
    fn has_config(&self) -> Result<bool> {
        match self.bridge.block_on(self.stat_file("config")) {
            Ok(_) => Ok(true),
            Err(e) if self.container_missing(&e) => Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound && !self.container_missing(&e) => {
                let opts = ListOptions { limit: Some(1), ..Default::default() };
                match self.bridge.block_on(self.op.list_options("locks/", opts)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(self.error(Op::HasConfig, Some(FileType::Config), "config", &e)),
                }
                Ok(false)
            }
            Err(e) => Err(self.error(Op::HasConfig, Some(FileType::Config), "config", &e)),
        }
    }

    fn save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        let key = self.key(Op::Save, ft, name)?;
        let buffer = Buffer::from(data.to_vec());
        self.bridge
            .block_on(self.op.write(&key, buffer))
            .map(|_| ())
            .map_err(|e| self.error(Op::Save, Some(ft), &key, &e))
    }

    fn load(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        let key = self.key(Op::Load, ft, name)?;
        match self.bridge.block_on(self.op.read(&key)) {
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
        let Some(end) = end.filter(|_| length > 0) else {
            let size = self.size_of(Op::LoadRange, ft, &key)?;
            return match end {
                Some(end) if end <= size => Ok(Vec::new()),
                _ => Err(short(size)),
            };
        };
        let opts = ReadOptions { range: BytesRange::new(offset, Some(u64::from(length))), ..Default::default() };
        match self.bridge.block_on(self.op.read_options(&key, opts)) {
            Ok(buf) if buf.len() == length as usize => Ok(buf.to_vec()),
            Ok(_) => Err(short(self.size_of(Op::LoadRange, ft, &key)?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(self.error(Op::LoadRange, Some(ft), &key, &e)),
            // "Range not satisfiable", or a server that answers a range past the end by
            // dropping the connection (fake-gcs-server): the size tells whether the read can
            // ever succeed. A read that cannot is a short read, not worth retrying.
            Err(e) => match self.size_after_failed_read(&key) {
                Some(size) if end > size => Err(short(size)),
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
        // Object stores delete missing keys silently; the contract wants not-found.
        self.size_of(Op::Remove, ft, &key)?;
        self.bridge.block_on(self.op.delete(&key)).map_err(|e| self.error(Op::Remove, Some(ft), &key, &e))
    }
}
