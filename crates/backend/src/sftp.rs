//! The SFTP backend: a repository in a directory of an SSH server, reached the way restic
//! reaches it — the system's `ssh` client started with `-s sftp`, speaking SFTP over its
//! standard input and output (through the `openssh-sftp-client` crate).
//!
//! # Repository URLs
//!
//! * `sftp:[USER@]HOST:PATH` — `PATH` is absolute when it starts with `/`, else relative to
//!   the user's home directory.
//! * `sftp://[USER@]HOST[:PORT]/PATH` (relative to the home directory) and
//!   `sftp://[USER@]HOST[:PORT]//PATH` (absolute).
//!
//! # Keys and host keys
//!
//! Everything `ssh` itself uses: `~/.ssh/config`, the user's keys and agent, and
//! `~/.ssh/known_hosts`. `ssh` runs with `-o BatchMode=yes`, so it never asks for a password or
//! to accept an unknown host key: an unknown host key is an error (add it with `ssh-keyscan` or
//! one interactive `ssh` first). [`SftpOptions::args`] adds arguments (e.g.
//! `-i /etc/lifeboat/id_ed25519 -o UserKnownHostsFile=/etc/lifeboat/known_hosts`);
//! [`SftpOptions::command`] replaces the whole command (restic's `-o sftp.command=`), e.g.
//! `ssh -F /etc/lifeboat/ssh_config nas -s sftp`.
//!
//! # Semantics
//!
//! * One `ssh` connection per backend, opened on first use and shared by every thread (SFTP
//!   pipelines requests); when it breaks it is reopened by the next call (errors of a broken
//!   connection are retryable).
//! * `save` writes `.tmp-…` beside the object and renames it into place (atomic with
//!   OpenSSH's `posix-rename`), creating missing directories; what a killed process leaves is
//!   never listed.
//! * `create` makes restic's directories (`keys/`, `snapshots/`, `index/`, `locks/`,
//!   `data/00`..`data/ff`).
//! * Errors say what `ssh` said, in one line: host unreachable, authentication refused, host
//!   key unknown.

use std::fmt;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::{Error as SftpError, Sftp};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::bridge::Bridge;
use crate::error::{BackendError, ErrorContext, Op};
use crate::file_type::LAYOUT_DIRS;
use crate::{Backend, FileType, Result};

/// Settings that do not belong in the URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SftpOptions {
    /// Extra arguments for `ssh`, split at white space (`LIFEBOAT_SFTP_ARGS`).
    pub args: Option<String>,
    /// The whole command to run instead of `ssh … HOST -s sftp`, split at white space
    /// (`LIFEBOAT_SFTP_COMMAND`).
    pub command: Option<String>,
}

impl SftpOptions {
    /// The options the environment gives: `LIFEBOAT_SFTP_ARGS`, `LIFEBOAT_SFTP_COMMAND`.
    pub fn from_env() -> Self {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        SftpOptions { args: get("LIFEBOAT_SFTP_ARGS"), command: get("LIFEBOAT_SFTP_COMMAND") }
    }

    /// These options, with unset fields taken from `fallback`.
    pub fn or(self, fallback: SftpOptions) -> Self {
        SftpOptions { args: self.args.or(fallback.args), command: self.command.or(fallback.command) }
    }
}

/// Whether `url` names an SFTP repository.
pub fn is_sftp_url(url: &str) -> bool {
    url.starts_with("sftp:")
}

/// A parsed `sftp:` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SftpUrl {
    user: Option<String>,
    host: String,
    port: Option<u16>,
    /// The repository's directory: absolute, or relative to the home directory.
    path: String,
}

impl SftpUrl {
    fn display(&self) -> String {
        let user = self.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
        match self.port {
            Some(p) => format!("sftp://{user}{}:{p}/{}", self.host, self.path),
            None => format!("sftp:{user}{}:{}", self.host, self.path),
        }
    }
}

fn parse_url(url: &str) -> std::result::Result<SftpUrl, String> {
    const FORMS: &str = "use sftp:USER@HOST:/PATH or sftp://USER@HOST:PORT//PATH";
    let (user_host, port, path) = if let Some(rest) = url.strip_prefix("sftp://") {
        let (authority, path) = rest.split_once('/').ok_or_else(|| format!("missing path: {FORMS}"))?;
        if authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':')) {
            return Err("passwords in SFTP URLs are not supported: use an SSH key".to_owned());
        }
        let (user_host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                let port = p.parse::<u16>().map_err(|_| format!("invalid port {p:?}"))?;
                (h, Some(port))
            }
            _ => (authority, None),
        };
        (user_host, port, path.to_owned())
    } else if let Some(rest) = url.strip_prefix("sftp:") {
        let (user_host, path) = rest.split_once(':').ok_or_else(|| format!("missing ':PATH': {FORMS}"))?;
        (user_host, None, path.to_owned())
    } else {
        return Err(format!("not an SFTP URL: {FORMS}"));
    };
    let (user, host) = match user_host.rsplit_once('@') {
        Some((u, h)) => {
            if u.contains(':') {
                return Err("passwords in SFTP URLs are not supported: use an SSH key".to_owned());
            }
            (Some(u.to_owned()).filter(|u| !u.is_empty()), h)
        }
        None => (None, user_host),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.starts_with('-') || host.contains([' ', '/']) {
        return Err(format!("missing or invalid host: {FORMS}"));
    }
    if user.as_deref().is_some_and(|u| u.starts_with('-') || u.contains(' ')) {
        return Err("invalid user name".to_owned());
    }
    let trimmed = path.trim_end_matches('/');
    let path = if trimmed.is_empty() && path.starts_with('/') { "/".to_owned() } else { trimmed.to_owned() };
    if path.is_empty() {
        return Err(format!("missing path: {FORMS}"));
    }
    if path.split('/').any(|s| s == "..") {
        return Err("the path must not contain '..' components".to_owned());
    }
    Ok(SftpUrl { user, host: host.to_owned(), port, path })
}

/// One `ssh` process and the SFTP session over it.
struct Conn {
    sftp: Sftp,
    child: tokio::sync::Mutex<tokio::process::Child>,
    /// What `ssh` wrote on its standard error (the reason when it fails).
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// A repository in a directory reached over SFTP.
///
/// See the [module docs](self) for URLs, keys and semantics.
pub struct SftpBackend {
    bridge: Bridge,
    location: String,
    /// The repository's directory on the server (no trailing `/`).
    root: String,
    /// The command: program and arguments.
    command: Vec<String>,
    conn: Mutex<Option<Arc<Conn>>>,
}

impl fmt::Debug for SftpBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpBackend").field("location", &self.location).finish_non_exhaustive()
    }
}

/// Unique part of temporary names within this process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Time allowed for `ssh` to connect and start the SFTP subsystem.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What failed, before it becomes a [`BackendError`].
enum Failure {
    /// An SFTP or connection error.
    Sftp(SftpError),
    /// The connection could not be made: `ssh`'s reason, already in words.
    Connect(String, bool),
    /// The object is shorter than a ranged read wanted.
    Short(u64),
}

impl From<SftpError> for Failure {
    fn from(e: SftpError) -> Self {
        Failure::Sftp(e)
    }
}

type Res<T> = std::result::Result<T, Failure>;

/// The work of one backend call on the connection.
type Task<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Res<T>> + Send + 'a>>;

impl SftpBackend {
    /// A backend for `url` (see the module docs) with `options`. Does not connect; fails
    /// ([`Op::Open`]) for a malformed URL or command.
    pub fn new(url: &str, options: &SftpOptions) -> Result<Self> {
        let fail = |location: String, message: String| {
            BackendError::other(ErrorContext::new(location, Op::Open, None, ""), message, false)
        };
        let parsed = parse_url(url).map_err(|m| fail(url.to_owned(), m))?;
        let location = parsed.display();
        let command: Vec<String> = match &options.command {
            Some(c) => c.split_whitespace().map(str::to_owned).collect(),
            None => {
                let mut c: Vec<String> = vec!["ssh".into(), "-o".into(), "BatchMode=yes".into()];
                if let Some(args) = &options.args {
                    c.extend(args.split_whitespace().map(str::to_owned));
                }
                if let Some(p) = parsed.port {
                    c.extend(["-p".to_owned(), p.to_string()]);
                }
                if let Some(u) = &parsed.user {
                    c.extend(["-l".to_owned(), u.clone()]);
                }
                c.extend([parsed.host.clone(), "-s".into(), "sftp".into()]);
                c
            }
        };
        if command.is_empty() {
            return Err(fail(location, "the SFTP command is empty".into()));
        }
        let bridge = Bridge::new_without_sigpipe("sftp").map_err(|m| fail(location.clone(), m))?;
        Ok(SftpBackend { bridge, location, root: parsed.path, command, conn: Mutex::new(None) })
    }

    fn ctx(&self, op: Op, ft: Option<FileType>, path: impl Into<String>) -> ErrorContext {
        ErrorContext::new(self.location.clone(), op, ft, path)
    }

    fn key(&self, op: Op, ft: FileType, name: &str) -> Result<String> {
        ft.object_key(name).map_err(|reason| BackendError::InvalidName { ctx: self.ctx(op, Some(ft), name), reason })
    }

    /// The path on the server of a key relative to the repository.
    fn path(&self, key: &str) -> String {
        match self.root.as_str() {
            "/" => format!("/{key}"),
            root if key.is_empty() => root.to_owned(),
            root => format!("{root}/{key}"),
        }
    }

    /// The open connection, or a new one.
    async fn conn(&self) -> Res<Arc<Conn>> {
        if let Some(c) = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() {
            return Ok(c);
        }
        // On a runtime thread (SIGPIPE blocked there): the SFTP hello is written to ssh, which
        // may already have exited. The session's own tasks run there too.
        let command = self.command.clone();
        let c = match tokio::spawn(connect(command)).await {
            Ok(c) => Arc::new(c?),
            Err(e) => return Err(Failure::Connect(format!("the SSH connection task failed: {e}"), true)),
        };
        let mut slot = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*slot {
            // Another thread connected meanwhile: use its connection (this one closes).
            Some(existing) => Ok(existing.clone()),
            None => {
                *slot = Some(c.clone());
                Ok(c)
            }
        }
    }

    /// Forgets a broken connection so that the next call opens a new one.
    fn drop_conn(&self) {
        *self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Runs `f` on the connection; a broken connection is dropped (to be reopened).
    fn run<'a, T: Send + 'a>(&'a self, f: impl FnOnce(Arc<Conn>) -> Task<'a, T> + Send + 'a) -> Res<T> {
        self.bridge.block_on(async {
            let c = self.conn().await?;
            let r = f(c.clone()).await;
            match r {
                Err(Failure::Sftp(e)) if !matches!(e, SftpError::SftpError(..)) => {
                    // The connection broke: reopen it next time, and say what ssh said.
                    self.drop_conn();
                    let _ = c.child.lock().await.start_kill();
                    let said =
                        String::from_utf8_lossy(&c.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
                            .into_owned();
                    Err(explain_ssh(&said, &e.to_string()))
                }
                r => r,
            }
        })
    }

    fn error(&self, op: Op, ft: Option<FileType>, key: &str, f: Failure) -> BackendError {
        let ctx = self.ctx(op, ft, key);
        match f {
            Failure::Short(size) => BackendError::other(ctx, format!("short object ({size} bytes)"), false),
            Failure::Connect(message, retryable) => BackendError::other(ctx, message, retryable),
            Failure::Sftp(SftpError::SftpError(SftpErrorKind::NoSuchFile, _)) => BackendError::NotFound { ctx },
            Failure::Sftp(SftpError::SftpError(SftpErrorKind::PermDenied, msg)) => BackendError::PermissionDenied {
                ctx,
                error: std::io::Error::new(std::io::ErrorKind::PermissionDenied, msg.to_string()),
            },
            Failure::Sftp(SftpError::SftpError(kind, msg)) => {
                BackendError::other(ctx, format!("the SFTP server answered {kind:?}: {msg}"), false)
            }
            Failure::Sftp(e) => {
                BackendError::other(ctx, format!("the SSH connection failed: {}", one_line(&e.to_string())), true)
            }
        }
    }

    /// Creates `dir` and its parents (existing ones are fine).
    async fn mkdir_all(c: &Conn, dir: &str) -> Res<()> {
        let mut fs = c.sftp.fs();
        if fs.metadata(dir).await.is_ok() {
            return Ok(());
        }
        let mut cur = String::new();
        for (i, part) in dir.split('/').enumerate() {
            if i > 0 || part.is_empty() {
                cur.push('/');
            }
            cur.push_str(part);
            if part.is_empty() {
                continue;
            }
            if let Err(e) = fs.create_dir(&cur).await {
                // Exists already (SFTP says only "failure"): fine if it is a directory now.
                if fs.metadata(&cur).await.is_err() {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    async fn write(c: &Conn, path: &str, data: &[u8]) -> Res<()> {
        let (dir, name) = path.rsplit_once('/').unwrap_or((".", path));
        let dir = if dir.is_empty() { "/" } else { dir };
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let short: String = name.chars().take(16).collect();
        let tmp = format!("{}/.tmp-{}-{n}-{short}", dir.trim_end_matches('/'), std::process::id());
        let mut options = c.sftp.options();
        options.write(true).create(true).truncate(true);
        let mut file = match options.open(&tmp).await {
            Ok(f) => f,
            Err(SftpError::SftpError(SftpErrorKind::NoSuchFile, _)) => {
                Self::mkdir_all(c, dir).await?;
                options.open(&tmp).await?
            }
            Err(e) => return Err(e.into()),
        };
        let written = async {
            file.write_all(data).await?;
            file.close().await
        }
        .await;
        let renamed = match written {
            Ok(()) => c.sftp.fs().rename(&tmp, path).await,
            Err(e) => Err(e),
        };
        if let Err(e) = renamed {
            let _ = c.sftp.fs().remove_file(&tmp).await;
            return Err(e.into());
        }
        Ok(())
    }

    async fn read_range(c: &Conn, path: &str, offset: u64, length: u32) -> Res<Vec<u8>> {
        let mut file = c.sftp.open(path).await?;
        let size = file.metadata().await?.len().unwrap_or(0);
        if offset.saturating_add(u64::from(length)) > size {
            return Err(Failure::Short(size));
        }
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(SftpError::from)?;
        let buf = file.read_all(length as usize, BytesMut::new()).await?;
        let _ = file.close().await;
        Ok(buf.to_vec())
    }

    /// Files in `dir` (not below), as (name, size); a missing directory is empty.
    async fn read_dir(c: &Conn, dir: &str) -> Res<Vec<(String, u64, bool)>> {
        use futures_util::StreamExt;
        let mut fs = c.sftp.fs();
        let d = match fs.open_dir(dir).await {
            Ok(d) => d,
            Err(SftpError::SftpError(SftpErrorKind::NoSuchFile, _)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        let mut entries = std::pin::pin!(d.read_dir());
        while let Some(entry) = entries.next().await {
            let entry = entry?;
            let name = entry.filename().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            let meta = entry.metadata();
            let is_dir = meta.file_type().is_some_and(|t| t.is_dir());
            out.push((name, meta.len().unwrap_or(0), is_dir));
        }
        Ok(out)
    }

    /// Files below `dir`, recursively, as (path relative to `dir`, size).
    async fn walk(c: &Conn, dir: &str) -> Res<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let mut todo = vec![String::new()];
        while let Some(rel) = todo.pop() {
            let full = if rel.is_empty() { dir.to_owned() } else { format!("{dir}/{rel}") };
            for (name, size, is_dir) in Self::read_dir(c, &full).await? {
                let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                if is_dir {
                    todo.push(path);
                } else {
                    out.push((path, size));
                }
            }
        }
        Ok(out)
    }
}

/// Starts `command` (ssh) and the SFTP session over its pipes.
async fn connect(command: Vec<String>) -> Res<Conn> {
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        Failure::Connect(format!("cannot run {:?}: {e} (is the OpenSSH client installed?)", command[0]), false)
    })?;
    let (Some(stdin), Some(stdout), Some(mut err)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Failure::Connect("cannot talk to ssh".into(), false));
    };
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let sink = stderr.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = err.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let mut s = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if s.len() < 16 * 1024 {
                s.extend_from_slice(&buf[..n]);
            }
        }
    });
    let opts = openssh_sftp_client::SftpOptions::new();
    let started = tokio::time::timeout(CONNECT_TIMEOUT, Sftp::new(stdin, stdout, opts)).await;
    match started {
        Ok(Ok(sftp)) => Ok(Conn { sftp, child: tokio::sync::Mutex::new(child), stderr }),
        Ok(Err(e)) => {
            // ssh exits when it cannot connect; give it a moment to say why.
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let said =
                String::from_utf8_lossy(&stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned();
            Err(explain_ssh(&said, &e.to_string()))
        }
        Err(_) => {
            let _ = child.kill().await;
            Err(Failure::Connect(format!("ssh did not start SFTP within {} s", CONNECT_TIMEOUT.as_secs()), true))
        }
    }
}

/// Turns what `ssh` said when it failed into one line naming the cause.
fn explain_ssh(said: &str, sftp_error: &str) -> Failure {
    let lines: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added") && !l.starts_with("**"))
        .collect();
    let all = lines.join(" ");
    let last = lines.last().copied().unwrap_or_default();
    let (what, retryable) = if all.contains("Host key verification failed")
        || all.contains("No ") && all.contains("host key is known")
    {
        ("the host key is unknown or has changed: add it to ~/.ssh/known_hosts (ssh-keyscan), or name a known_hosts file in the SFTP args", false)
    } else if all.contains("Permission denied") || all.contains("Too many authentication failures") {
        ("authentication refused: check the SSH key (ssh-agent, ~/.ssh/config or -i in the SFTP args) and the user name", false)
    } else if all.contains("Connection refused")
        || all.contains("No route to host")
        || all.contains("Could not resolve hostname")
        || all.contains("Connection timed out")
        || all.contains("Network is unreachable")
    {
        ("host unreachable", true)
    } else if all.contains("subsystem request failed") {
        ("the server offers no SFTP subsystem", false)
    } else {
        ("ssh failed", true)
    };
    let detail = if last.is_empty() { one_line(sftp_error) } else { one_line(last) };
    Failure::Connect(format!("{what} ({detail})"), retryable)
}

fn one_line(s: &str) -> String {
    let l = s.split_whitespace().collect::<Vec<_>>().join(" ");
    l.chars().take(300).collect()
}

impl Backend for SftpBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<()> {
        if self.has_config()? {
            return Err(BackendError::AlreadyExists { ctx: self.ctx(Op::Create, Some(FileType::Config), "config") });
        }
        let mut dirs: Vec<String> = LAYOUT_DIRS.iter().map(|d| self.path(d)).collect();
        dirs.extend((0..=255u8).map(|i| self.path(&format!("data/{i:02x}"))));
        let root = self.root.clone();
        self.run(|c| {
            Box::pin(async move {
                Self::mkdir_all(&c, &root).await?;
                let mut fs = c.sftp.fs();
                for d in &dirs {
                    if let Err(e) = fs.create_dir(d).await {
                        if fs.metadata(d).await.is_err() {
                            return Err(e.into());
                        }
                    }
                }
                Ok(())
            })
        })
        .map_err(|f| self.error(Op::Create, None, "", f))
    }

    fn has_config(&self) -> Result<bool> {
        let path = self.path("config");
        match self.run(|c| Box::pin(async move { Ok(c.sftp.fs().metadata(&path).await?) })) {
            Ok(_) => Ok(true),
            Err(f) => match self.error(Op::HasConfig, Some(FileType::Config), "config", f) {
                e if e.is_not_found() => Ok(false),
                e => Err(e),
            },
        }
    }

    fn save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        let key = self.key(Op::Save, ft, name)?;
        let path = self.path(&key);
        self.run(|c| Box::pin(async move { Self::write(&c, &path, data).await }))
            .map_err(|f| self.error(Op::Save, Some(ft), &key, f))
    }

    fn load(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        let key = self.key(Op::Load, ft, name)?;
        let path = self.path(&key);
        self.run(|c| Box::pin(async move { Ok(c.sftp.fs().read(&path).await?.to_vec()) }))
            .map_err(|f| self.error(Op::Load, Some(ft), &key, f))
    }

    fn load_range(&self, ft: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        let key = self.key(Op::LoadRange, ft, name)?;
        let path = self.path(&key);
        match self.run(|c| Box::pin(async move { Self::read_range(&c, &path, offset, length).await })) {
            Ok(v) => Ok(v),
            Err(Failure::Short(size)) => {
                Err(BackendError::ShortRead { ctx: self.ctx(Op::LoadRange, Some(ft), key), offset, length, size })
            }
            Err(f) => Err(self.error(Op::LoadRange, Some(ft), &key, f)),
        }
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        let key = self.key(Op::Size, ft, name)?;
        let path = self.path(&key);
        self.run(|c| Box::pin(async move { Ok(c.sftp.fs().metadata(&path).await?.len().unwrap_or(0)) }))
            .map_err(|f| self.error(Op::Size, Some(ft), &key, f))
    }

    fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        let dir = ft.dir().unwrap_or_default();
        let mut out = Vec::new();
        match ft {
            FileType::Config => match self.size(ft, "config") {
                Ok(size) => out.push(("config".to_owned(), size)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            },
            FileType::Pack | FileType::Lifeboat => {
                let full = self.path(dir);
                let files = self
                    .run(|c| Box::pin(async move { Self::walk(&c, &full).await }))
                    .map_err(|f| self.error(Op::List, Some(ft), dir, f))?;
                for (path, size) in files {
                    let name = if ft == FileType::Pack {
                        match path.split_once('/') {
                            Some((sub, name)) if sub.chars().count() == 2 && !name.contains('/') => name.to_owned(),
                            _ => continue,
                        }
                    } else {
                        path
                    };
                    if ft.validate_name(&name).is_ok() {
                        out.push((name, size));
                    }
                }
            }
            _ => {
                let full = self.path(dir);
                let files = self
                    .run(|c| Box::pin(async move { Self::read_dir(&c, &full).await }))
                    .map_err(|f| self.error(Op::List, Some(ft), dir, f))?;
                for (name, size, is_dir) in files {
                    if !is_dir && ft.validate_name(&name).is_ok() {
                        out.push((name, size));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        let key = self.key(Op::Remove, ft, name)?;
        let path = self.path(&key);
        self.run(|c| Box::pin(async move { Ok(c.sftp.fs().remove_file(&path).await?) }))
            .map_err(|f| self.error(Op::Remove, Some(ft), &key, f))
    }

    /// Writes `data` to a temporary file beside the object, as a killed `save` leaves it.
    fn simulate_interrupted_save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        let key = self.key(Op::Save, ft, name)?;
        let (dir, _) = key.rsplit_once('/').unwrap_or(("", ""));
        let tmp = self.path(&format!("{dir}/.tmp-{}-interrupted", std::process::id()));
        let dir_path = self.path(dir);
        self.run(|c| {
            Box::pin(async move {
                Self::mkdir_all(&c, &dir_path).await?;
                Ok(c.sftp.fs().write(&tmp, data).await?)
            })
        })
        .map_err(|f| self.error(Op::Save, Some(ft), &key, f))
    }
}

impl Drop for SftpBackend {
    fn drop(&mut self) {
        // Close the session before the runtime goes (its tasks live there).
        if let Some(c) = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            if let Ok(c) = Arc::try_unwrap(c) {
                self.bridge.block_on(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), c.sftp.close()).await;
                    let mut child = c.child.into_inner();
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_restic_forms() {
        let u = parse_url("sftp:backup@nas:/srv/repo/").expect("url");
        assert_eq!(
            u,
            SftpUrl { user: Some("backup".into()), host: "nas".into(), port: None, path: "/srv/repo".into() }
        );
        assert_eq!(u.display(), "sftp:backup@nas:/srv/repo");
        let u = parse_url("sftp:nas:repo").expect("url");
        assert_eq!((u.user, u.path.as_str()), (None, "repo"));
        let u = parse_url("sftp://backup@127.0.0.1:2222//srv/repo").expect("url");
        assert_eq!((u.port, u.path.as_str()), (Some(2222), "/srv/repo"));
        assert_eq!(u.display(), "sftp://backup@127.0.0.1:2222//srv/repo");
        let u = parse_url("sftp://nas/repo").expect("url");
        assert_eq!((u.port, u.path.as_str()), (None, "repo"));
        for (url, want) in [
            ("sftp:nas", "missing ':PATH'"),
            ("sftp://nas", "missing path"),
            ("sftp://u:pw@nas/x", "passwords"),
            ("sftp://nas:99999/x", "invalid port"),
            ("sftp:-oProxyCommand=x:/p", "invalid host"),
            ("sftp:nas:/a/../b", "'..'"),
        ] {
            let e = parse_url(url).expect_err(url);
            assert!(e.contains(want), "{url}: {e}");
        }
    }

    #[test]
    fn explains_ssh_failures() {
        let text = |f: Failure| match f {
            Failure::Connect(m, r) => (m, r),
            _ => panic!("not a connect failure"),
        };
        let (m, r) = text(explain_ssh("ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n", "eof"));
        assert!(m.starts_with("host unreachable (ssh: connect to host") && r, "{m}");
        let (m, r) = text(explain_ssh("Host key verification failed.\n", "eof"));
        assert!(m.starts_with("the host key is unknown") && !r, "{m}");
        let (m, _) = text(explain_ssh("u@127.0.0.1: Permission denied (publickey).\n", "eof"));
        assert!(m.starts_with("authentication refused"), "{m}");
    }
}
