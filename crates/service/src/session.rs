//! What every operation needs: the config file, the repository's location and password, the
//! storage backend, an open repository and its lock. Front ends fill a [`Session`] from their
//! flags and environment; the service never reads flags itself.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use lifeboat_backend::{
    url_scheme, AzureOptions, Backend, Fault, FaultyBackend, GcsOptions, LocalBackend, PackCache, RestBackend,
    RestOptions, RetryBackend, RetryPolicy, S3Backend, S3Options, SftpBackend, SftpOptions,
};
use lifeboat_repository::lock::LockGuard;
use lifeboat_repository::{Compression, RepoError, Repository};

use crate::config::{substitute, Config};
use crate::error::{Context as _, Result, ServiceError};

/// The default config file name (in the current directory).
pub const DEFAULT_CONFIG: &str = "lifeboat.toml";

/// Variables that name a file, a password or a config: set but empty means unset (a common
/// result of `VAR=$(cat missing-file)` or an empty line in an env file).
const UNSET_WHEN_EMPTY: &[&str] = &[
    "LIFEBOAT_PASSWORD",
    "LIFEBOAT_PASSWORD_FILE",
    "LIFEBOAT_PASSWORD_COMMAND",
    "LIFEBOAT_CONFIG",
    "LIFEBOAT_REPOSITORY",
    "LIFEBOAT_NEW_PASSWORD",
    "LIFEBOAT_NEW_PASSWORD_FILE",
    "LIFEBOAT_TO_PASSWORD",
    "LIFEBOAT_TO_PASSWORD_FILE",
];

/// Unset the [`UNSET_WHEN_EMPTY`] variables that are set but empty; their names, for a note.
/// Call first thing in `main`, before other threads exist.
pub fn unset_empty_variables() -> Vec<&'static str> {
    let empty: Vec<&'static str> =
        UNSET_WHEN_EMPTY.iter().copied().filter(|v| std::env::var_os(v).is_some_and(|x| x.is_empty())).collect();
    for var in &empty {
        std::env::remove_var(var);
    }
    empty
}

/// Asks a person for a secret: `(what, confirm)` → the secret. Front ends without a terminal
/// leave it unset and the operation fails with a hint instead.
pub type Prompt = dyn Fn(&str, bool) -> Result<Vec<u8>> + Send + Sync;

/// Where the repository's password comes from, besides the config file.
#[derive(Clone, Debug, Default)]
pub struct PasswordSource {
    /// A shell command printing it.
    pub command: Option<String>,
    /// A file holding it (first line).
    pub file: Option<PathBuf>,
    /// The password itself (from `LIFEBOAT_PASSWORD`).
    pub value: Option<Vec<u8>>,
}

/// The settings of one run of a front end.
#[derive(Clone, Default)]
pub struct Session {
    /// Config file given explicitly (else `./lifeboat.toml` when it exists).
    pub config_path: Option<PathBuf>,
    /// Repository URL given explicitly (else the config's).
    pub repo: Option<String>,
    /// The password, when given outside the config file.
    pub password: PasswordSource,
    /// Compression given explicitly (else the config's, else `auto`).
    pub compression: Option<String>,
    /// How long to wait for a conflicting lock (`30s`).
    pub retry_lock: Option<String>,
    /// A read-only view of the repository at this time (S3 with versioning).
    pub as_of: Option<String>,
    /// Asks for passwords on a terminal.
    pub prompt: Option<Arc<Prompt>>,
    /// Who runs the operations, for the run history: `cli` (the default), `daemon`, `api`.
    pub trigger: String,
    /// Take no lock (read-only commands on a repository this user cannot write).
    pub no_lock: bool,
    /// Read the repository without the local metadata cache.
    pub no_cache: bool,
    /// Nobody shows a percentage of this run's progress (output is piped or JSON): a backup of
    /// files skips the second walk that counts their total size.
    pub no_totals: bool,
    /// Where the metadata caches live (else [`lifeboat_repository::cache::Cache::default_base`]).
    pub cache_dir: Option<PathBuf>,
    /// The config file once read (filled on first use).
    pub loaded: Loaded,
}

/// The config file of a [`Session`] once read (shared by its clones).
#[derive(Clone, Default)]
pub struct Loaded(Arc<OnceLock<std::result::Result<Option<Arc<Config>>, String>>>);

impl Session {
    /// The config file: read and validated once (the repository URL, the password and the
    /// compression all consult it); `None` when none is given and `./lifeboat.toml` is absent.
    pub fn config(&self) -> Result<Option<Arc<Config>>> {
        let loaded = self.loaded.0.get_or_init(|| {
            let r = match &self.config_path {
                Some(p) => Config::load(p).map(Some),
                None if Path::new(DEFAULT_CONFIG).is_file() => Config::load(Path::new(DEFAULT_CONFIG)).map(Some),
                None => Ok(None),
            };
            r.map(|c| c.map(Arc::new)).map_err(|e| one_line(&e))
        });
        loaded.clone().map_err(ServiceError::Message)
    }

    /// The config file, or an error saying that this operation needs one.
    pub fn require_config(&self, why: &str) -> Result<Arc<Config>> {
        self.config()?.with_context(|| format!("{why}: create {DEFAULT_CONFIG} or pass --config FILE"))
    }

    /// The repository URL: the explicit one, else the config's `[repository] url`.
    pub fn repo_url(&self) -> Result<String> {
        if let Some(r) = &self.repo {
            return Ok(r.clone());
        }
        if let Some(url) = self.config()?.and_then(|c| c.repository.url.clone()) {
            return substitute(&url, "[repository] url");
        }
        Err(ServiceError::msg(format!(
            "no repository given: use --repo DIR, set LIFEBOAT_REPOSITORY, or set [repository] url in {DEFAULT_CONFIG}"
        )))
    }

    /// The time of `as_of`, if set.
    pub fn as_of_time(&self) -> Result<Option<SystemTime>> {
        let Some(text) = &self.as_of else { return Ok(None) };
        let t = lifeboat_ops::duration::parse_time(text, chrono::Utc::now())
            .map_err(|e| ServiceError::usage(format!("--as-of: {e}")))?;
        Ok(Some(t.into()))
    }

    /// S3 settings: the config's `[repository] s3` (with `${VAR}` substituted), then the
    /// standard `AWS_*` environment variables for whatever it leaves unset.
    pub fn s3_options(&self) -> Result<S3Options> {
        let mut o = S3Options::default();
        if let Some(cfg) = self.config()? {
            if let Some(s3) = &cfg.repository.s3 {
                let s = s3.get_ref();
                let sub = |v: &Option<String>, field: &str| {
                    v.as_deref().map(|v| substitute(v, &format!("[repository] s3 {field}"))).transpose()
                };
                o = S3Options {
                    access_key_id: sub(&s.access_key_id, "access_key_id")?,
                    secret_access_key: sub(&s.secret_access_key, "secret_access_key")?,
                    session_token: sub(&s.session_token, "session_token")?,
                    endpoint: sub(&s.endpoint, "endpoint")?,
                    region: sub(&s.region, "region")?,
                };
            }
        }
        Ok(o.or(S3Options::from_env()))
    }

    /// REST settings: the config's `[repository] rest` (with `${VAR}` substituted), else
    /// restic's `RESTIC_REST_USERNAME` / `RESTIC_REST_PASSWORD`.
    pub fn rest_options(&self) -> Result<RestOptions> {
        let mut o = RestOptions::default();
        if let Some(cfg) = self.config()? {
            if let Some(r) = cfg.repository.rest.as_ref().map(|r| r.get_ref()) {
                let sub = |v: &Option<String>, field: &str| {
                    v.as_deref().map(|v| substitute(v, &format!("[repository] rest {field}"))).transpose()
                };
                o = RestOptions { username: sub(&r.username, "username")?, password: sub(&r.password, "password")? };
            }
        }
        Ok(o.or(RestOptions::from_env()))
    }

    /// SFTP settings: the config's `[repository] sftp` (with `${VAR}` substituted), then
    /// `LIFEBOAT_SFTP_ARGS` / `LIFEBOAT_SFTP_COMMAND`.
    pub fn sftp_options(&self) -> Result<SftpOptions> {
        let mut o = SftpOptions::default();
        if let Some(cfg) = self.config()? {
            if let Some(r) = cfg.repository.sftp.as_ref().map(|r| r.get_ref()) {
                let sub = |v: &Option<String>, field: &str| {
                    v.as_deref().map(|v| substitute(v, &format!("[repository] sftp {field}"))).transpose()
                };
                o = SftpOptions { args: sub(&r.args, "args")?, command: sub(&r.command, "command")? };
            }
        }
        Ok(o.or(SftpOptions::from_env()))
    }

    /// Azure settings: the config's `[repository] azure` (with `${VAR}` substituted), then the
    /// `AZURE_*` variables.
    pub fn azure_options(&self) -> Result<AzureOptions> {
        let mut o = AzureOptions::default();
        if let Some(cfg) = self.config()? {
            if let Some(r) = cfg.repository.azure.as_ref().map(|r| r.get_ref()) {
                let sub = |v: &Option<String>, field: &str| {
                    v.as_deref().map(|v| substitute(v, &format!("[repository] azure {field}"))).transpose()
                };
                o = AzureOptions {
                    account_name: sub(&r.account_name, "account_name")?,
                    account_key: sub(&r.account_key, "account_key")?,
                    sas_token: sub(&r.sas_token, "sas_token")?,
                    endpoint: sub(&r.endpoint, "endpoint")?,
                    endpoint_suffix: sub(&r.endpoint_suffix, "endpoint_suffix")?,
                };
            }
        }
        Ok(o.or(AzureOptions::from_env()))
    }

    /// The settings of every kind of remote store, from the config and the environment.
    pub fn remote_options(&self) -> Result<RemoteOptions> {
        Ok(RemoteOptions {
            s3: self.s3_options()?,
            rest: self.rest_options()?,
            sftp: self.sftp_options()?,
            azure: self.azure_options()?,
            gcs: self.gcs_options()?,
        })
    }

    /// GCS settings: the config's `[repository] gcs` (with `${VAR}` substituted), then
    /// `GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_ACCESS_TOKEN` and `GCS_ENDPOINT`.
    pub fn gcs_options(&self) -> Result<GcsOptions> {
        let mut o = GcsOptions::default();
        if let Some(cfg) = self.config()? {
            if let Some(r) = cfg.repository.gcs.as_ref().map(|r| r.get_ref()) {
                let sub = |v: &Option<String>, field: &str| {
                    v.as_deref().map(|v| substitute(v, &format!("[repository] gcs {field}"))).transpose()
                };
                o = GcsOptions {
                    credentials: sub(&r.credentials, "credentials")?,
                    access_token: None,
                    endpoint: sub(&r.endpoint, "endpoint")?,
                };
            }
        }
        Ok(o.or(GcsOptions::from_env()))
    }

    /// The backend of the configured repository.
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        backend_with(&self.repo_url()?, &self.remote_options()?, self.as_of_time()?)
    }

    /// The password: the explicit command, file or value, else the config's command or file,
    /// else the prompt.
    pub fn password(&self, confirm: bool) -> Result<Vec<u8>> {
        if let Some(cmd) = &self.password.command {
            return run_password_command(cmd);
        }
        if let Some(f) = &self.password.file {
            return read_password_file(f);
        }
        if let Some(p) = &self.password.value {
            return Ok(p.clone());
        }
        if let Some(cfg) = self.config()? {
            let r = &cfg.repository;
            if let Some(cmd) = &r.password_command {
                return run_password_command(&substitute(cmd, "[repository] password_command")?);
            }
            if let Some(f) = &r.password_file {
                return read_password_file(Path::new(&substitute(f, "[repository] password_file")?));
            }
        }
        self.ask("repository password", confirm)
    }

    /// Ask for a secret with the front end's prompt, or fail with where it could come from.
    pub fn ask(&self, what: &str, confirm: bool) -> Result<Vec<u8>> {
        match &self.prompt {
            Some(p) => p(what, confirm),
            None => Err(ServiceError::msg(format!(
                "no {what}: set LIFEBOAT_PASSWORD, --password-file or --password-command"
            ))),
        }
    }

    /// The compression setting: explicit, else the config's, else `auto`.
    pub fn compression(&self) -> Result<Compression> {
        let text = match &self.compression {
            Some(c) => c.clone(),
            None => self.config()?.and_then(|c| c.repository.compression.clone()).unwrap_or_else(|| "auto".into()),
        };
        text.parse::<Compression>().map_err(ServiceError::msg)
    }

    /// Open the repository.
    pub fn open(&self) -> Result<Repository> {
        let backend = self.backend()?;
        if !backend.has_config()? {
            return Err(RepoError::NotARepository { location: backend.location() }.into());
        }
        let pw = self.password(false)?;
        let mut repo = Repository::open(backend, &pw)?;
        repo.set_compression(self.compression()?);
        repo.set_cache(self.cache(&repo.config().id));
        Ok(repo)
    }

    /// Open the repository to prove what it holds (drills, restore tests, probes): without the
    /// metadata cache, so damage in the repository is never hidden by a good cached copy.
    pub fn open_uncached(&self) -> Result<Repository> {
        let repo = self.open()?;
        repo.set_cache(None);
        Ok(repo)
    }

    /// The metadata cache of repository `repo_id`, unless turned off (`--no-cache`), reading a
    /// past view (`--as-of`: its listings are not the repository's), or no cache directory can
    /// be made.
    fn cache(&self, repo_id: &str) -> Option<Arc<lifeboat_repository::cache::Cache>> {
        use lifeboat_repository::cache::Cache;
        if self.no_cache || self.as_of.is_some() {
            return None;
        }
        let base = self.cache_dir.clone().or_else(Cache::default_base)?;
        Cache::open(&base, repo_id).map(Arc::new)
    }

    /// Lock the repository (shared, or exclusive for commands that delete), waiting up to
    /// `retry_lock` when another process holds a conflicting lock. A read-only `as_of` view
    /// takes no lock (it cannot write one, and nothing can change what it reads).
    pub fn lock(&self, repo: &Repository, exclusive: bool) -> Result<Option<LockGuard>> {
        if self.no_lock {
            return Err(ServiceError::msg(
                "--no-lock is only for commands that only read (restore, check): this command writes to the repository",
            ));
        }
        if self.as_of.is_some() {
            if exclusive {
                return Err(ServiceError::msg(
                    "--as-of gives a read-only view of the past: this command would change the repository",
                ));
            }
            return Ok(None);
        }
        let wait = match &self.retry_lock {
            Some(d) => {
                crate::config::parse_duration(d).map_err(|e| ServiceError::usage(format!("--retry-lock: {e}")))?
            }
            None => Duration::ZERO,
        };
        Ok(Some(lifeboat_repository::lock::acquire_waiting(repo, exclusive, wait, None)?))
    }

    /// The lock of an operation that only reads (restore, check): none with `no_lock`, and none —
    /// with a notice — when the repository cannot be written (a read-only mount, another user's
    /// repository), so a repository that can be read can always be restored from.
    pub fn lock_read_only(&self, repo: &Repository, o: &crate::progress::Observer) -> Result<Option<LockGuard>> {
        use lifeboat_backend::BackendError;
        if self.no_lock {
            return Ok(None);
        }
        match self.lock(repo, false) {
            Err(ServiceError::Repo(RepoError::Backend(
                b @ (BackendError::ReadOnly { .. } | BackendError::PermissionDenied { .. }),
            ))) => {
                o(&crate::progress::Event::Notice {
                    message: format!("the repository cannot be written ({b}); reading it without a lock"),
                });
                Ok(None)
            }
            other => other,
        }
    }

    /// Refuse a deleting command when the repository (or this machine's config) is append-only.
    pub fn refuse_if_append_only(&self, repo: &Repository, what: &str) -> Result<()> {
        if self.config()?.is_some_and(|c| c.repository.append_only) {
            return Err(ServiceError::msg(format!(
                "the config sets [repository] append_only = true: `{what}` would delete data and is refused on this machine"
            )));
        }
        let settings = lifeboat_repository::settings::load(repo)?;
        if settings.append_only {
            let by = settings.changed_by.map(|b| format!(" (set by {b})")).unwrap_or_default();
            return Err(ServiceError::msg(format!(
                "the repository is append-only{by}: `{what}` would delete data and is refused; `lifeboat append-only off` lifts it"
            )));
        }
        Ok(())
    }

    /// This session with another password source (for a second repository).
    pub fn with_password(&self, password: PasswordSource) -> Session {
        Session { password, ..self.clone() }
    }
}

/// An error as one line: the chain of sources joined with ": ", without repeats.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ").replace('\n', " ")
}

fn read_password_file(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read(path)
        .map_err(|e| ServiceError::io(format!("cannot read password file {}", path.display()), e))?;
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

fn run_password_command(cmd: &str) -> Result<Vec<u8>> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| ServiceError::io("cannot run the password command", e))?;
    if !out.status.success() {
        return Err(ServiceError::msg(format!("the password command failed ({})", out.status)));
    }
    let mut p = out.stdout;
    while p.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        p.pop();
    }
    Ok(p)
}

/// Settings of the remote stores (credentials, endpoints), one field per kind.
#[derive(Clone, Debug, Default)]
pub struct RemoteOptions {
    /// For `s3:` URLs.
    pub s3: S3Options,
    /// For `rest:` URLs.
    pub rest: RestOptions,
    /// For `sftp:` URLs.
    pub sftp: SftpOptions,
    /// For `azure:` URLs.
    pub azure: AzureOptions,
    /// For `gs:` URLs.
    pub gcs: GcsOptions,
}

impl RemoteOptions {
    /// What the environment alone gives (the variables restic and the cloud tools read).
    pub fn from_env() -> Self {
        RemoteOptions {
            s3: S3Options::from_env(),
            rest: RestOptions::from_env(),
            sftp: SftpOptions::from_env(),
            azure: AzureOptions::from_env(),
            gcs: GcsOptions::from_env(),
        }
    }
}

/// The backend for a repository URL, with settings from the environment variables only (no
/// config file).
pub fn backend(url: &str) -> Result<Arc<dyn Backend>> {
    backend_with(url, &RemoteOptions::from_env(), None)
}

/// Build the storage backend for a repository URL: a local directory, S3, a REST server…
/// with `opts`' settings, optionally as a read-only view at a past time (`as_of`, S3 only).
/// Remote stores get a [`PackCache`]; everything is wrapped in retries (and fault injection
/// when `LIFEBOAT_FAULTS` is set).
pub fn backend_with(url: &str, opts: &RemoteOptions, as_of: Option<SystemTime>) -> Result<Arc<dyn Backend>> {
    let scheme = url_scheme(url);
    if as_of.is_some() && scheme != "s3" {
        return Err(ServiceError::msg(format!(
            "--as-of reads old object versions, which only S3 buckets with versioning keep; {} is not on S3",
            lifeboat_backend::rest::redact(url)
        )));
    }
    // Each ranged read of a remote store is a request: keep tree packs (read blob by blob) in
    // memory.
    let store: Arc<dyn Backend> = match scheme {
        "s3" => {
            let mut b = S3Backend::new(url, &opts.s3)?;
            if let Some(t) = as_of {
                b = b.as_of(t);
            }
            Arc::new(PackCache::new(b))
        }
        "rest" => Arc::new(PackCache::new(RestBackend::new(url, &opts.rest)?)),
        "sftp" => Arc::new(PackCache::new(SftpBackend::new(url, &opts.sftp)?)),
        "azure" => Arc::new(PackCache::new(lifeboat_backend::azure::open(url, &opts.azure)?)),
        "gs" => Arc::new(PackCache::new(lifeboat_backend::gcs::open(url, &opts.gcs)?)),
        _ => Arc::new(LocalBackend::new(local_path(url)?)),
    };
    let faults = Fault::from_env().map_err(|e| ServiceError::msg(format!("LIFEBOAT_FAULTS: {e}")))?;
    let inner: Arc<dyn Backend> = if faults.is_empty() { store } else { Arc::new(FaultyBackend::new(store, faults)) };
    Ok(Arc::new(RetryBackend::new(inner, RetryPolicy::default())))
}

/// The directory of a local repository URL (`DIR`, `local:DIR`, `file:///DIR`).
pub fn local_path(url: &str) -> Result<&str> {
    let path = if let Some(rest) = url.strip_prefix("local:") {
        rest
    } else if let Some(rest) = url.strip_prefix("file://") {
        rest
    } else if url.contains("://") || lifeboat_backend::is_remote_url(url) {
        return Err(ServiceError::msg(format!(
            "unsupported repository URL {:?}: use a directory path, local:DIR, file:///DIR, s3:http://HOST:PORT/BUCKET/PREFIX, s3://BUCKET/PREFIX, rest:http://HOST:PORT/PATH, sftp:USER@HOST:/PATH, azure:CONTAINER:/PATH or gs:BUCKET:/PATH",
            lifeboat_backend::rest::redact(url)
        )));
    } else {
        url
    };
    if path.is_empty() {
        return Err(ServiceError::msg("empty repository path"));
    }
    Ok(path)
}
