//! What every command needs: the backend from the repository URL, the password, an open
//! repository, and the interrupt flag.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use lifeboat_backend::{
    is_s3_url, Backend, Fault, FaultyBackend, LocalBackend, PackCache, RetryBackend, RetryPolicy, S3Backend, S3Options,
};
use lifeboat_repository::{Compression, Repository};

use crate::args::Global;
use crate::config::Config;

/// Set a flag on the first Ctrl-C; exit at once with 130 on the second.
pub fn install_interrupt_handler() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            std::process::exit(crate::exit::INTERRUPTED);
        }
    });
    flag
}

/// Build the storage backend for a repository URL, with S3 settings from the `AWS_*`
/// environment variables only (no config file).
pub fn backend(url: &str) -> Result<Arc<dyn Backend>> {
    backend_with(url, S3Options::from_env(), None)
}

/// The backend of the configured repository: its URL ([`repo_url`]) with the S3 settings of
/// [`s3_options`].
pub fn repo_backend(g: &Global) -> Result<Arc<dyn Backend>> {
    backend_with(&repo_url(g)?, s3_options(g)?, as_of(g)?)
}

/// The time of `--as-of`, if given.
pub fn as_of(g: &Global) -> Result<Option<std::time::SystemTime>> {
    let Some(text) = &g.as_of else { return Ok(None) };
    let t =
        lifeboat_ops::duration::parse_time(text, chrono::Utc::now()).map_err(|e| anyhow::anyhow!("--as-of: {e}"))?;
    Ok(Some(t.into()))
}

/// S3 settings: the config's `[repository] s3` (with `${VAR}` substituted), then the standard
/// `AWS_*` environment variables for whatever it leaves unset.
pub fn s3_options(g: &Global) -> Result<S3Options> {
    let mut o = S3Options::default();
    if let Some(cfg) = config(g)? {
        if let Some(s3) = &cfg.repository.s3 {
            let s = s3.get_ref();
            let sub = |v: &Option<String>, field: &str| {
                v.as_deref().map(|v| crate::config::substitute(v, &format!("[repository] s3 {field}"))).transpose()
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

/// Build the storage backend for a repository URL: a local directory, or S3 with `s3`'s
/// settings, optionally as a read-only view at a past time (`as_of`, S3 only). Wrapped in
/// retries (and fault injection when `LIFEBOAT_FAULTS` is set).
pub fn backend_with(url: &str, s3: S3Options, as_of: Option<std::time::SystemTime>) -> Result<Arc<dyn Backend>> {
    let store: Arc<dyn Backend> = if is_s3_url(url) {
        let mut b = S3Backend::new(url, &s3)?;
        if let Some(t) = as_of {
            b = b.as_of(t);
        }
        // Each ranged read is a request: keep tree packs (read blob by blob) in memory.
        Arc::new(PackCache::new(b))
    } else if as_of.is_some() {
        bail!("--as-of reads old object versions, which only S3 buckets with versioning keep; {url} is a local repository")
    } else {
        let path = if let Some(rest) = url.strip_prefix("local:") {
            rest
        } else if let Some(rest) = url.strip_prefix("file://") {
            rest
        } else if url.contains("://") {
            bail!(
                "unsupported repository URL {url:?}: use a directory path, local:DIR, file:///DIR, s3:http://HOST:PORT/BUCKET/PREFIX or s3://BUCKET/PREFIX"
            );
        } else {
            url
        };
        if path.is_empty() {
            bail!("empty repository path");
        }
        Arc::new(LocalBackend::new(path))
    };
    let faults = Fault::from_env().map_err(|e| anyhow::anyhow!("LIFEBOAT_FAULTS: {e}"))?;
    let inner: Arc<dyn Backend> = if faults.is_empty() { store } else { Arc::new(FaultyBackend::new(store, faults)) };
    Ok(Arc::new(RetryBackend::new(inner, RetryPolicy::default())))
}

/// The config file named by `--config`/`LIFEBOAT_CONFIG`, or `./lifeboat.toml` if present.
/// Read and validated once per process (the repository URL, the password and the compression
/// all consult it).
pub fn config(g: &Global) -> Result<Option<Arc<Config>>> {
    static CONFIG: std::sync::OnceLock<std::result::Result<Option<Arc<Config>>, String>> = std::sync::OnceLock::new();
    let loaded = CONFIG.get_or_init(|| {
        let r = match &g.config {
            Some(p) => Config::load(p).map(Some),
            None if Path::new(DEFAULT_CONFIG).is_file() => Config::load(Path::new(DEFAULT_CONFIG)).map(Some),
            None => Ok(None),
        };
        r.map(|c| c.map(Arc::new)).map_err(|e| crate::exit::message(&e))
    });
    loaded.clone().map_err(|e| anyhow::anyhow!(e))
}

/// The default config file name.
pub const DEFAULT_CONFIG: &str = "lifeboat.toml";

/// The repository URL: `--repo` / `LIFEBOAT_REPOSITORY`, else the config's `[repository] url`.
pub fn repo_url(g: &Global) -> Result<String> {
    if let Some(r) = &g.repo {
        return Ok(r.clone());
    }
    if let Some(url) = config(g)?.and_then(|c| c.repository.url.clone()) {
        return crate::config::substitute(&url, "[repository] url");
    }
    bail!("no repository given: use --repo DIR, set LIFEBOAT_REPOSITORY, or set [repository] url in {DEFAULT_CONFIG}")
}

fn read_password_file(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read password file {}", path.display()))?;
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

/// The password, from `--password-command`, `--password-file`, `LIFEBOAT_PASSWORD` or a prompt.
pub fn password(g: &Global, confirm: bool) -> Result<Vec<u8>> {
    if let Some(cmd) = &g.password_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("cannot run the password command")?;
        if !out.status.success() {
            bail!("the password command failed ({})", out.status);
        }
        let mut p = out.stdout;
        while p.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            p.pop();
        }
        return Ok(p);
    }
    if let Some(f) = &g.password_file {
        return read_password_file(f);
    }
    if let Some(p) = std::env::var_os("LIFEBOAT_PASSWORD") {
        return Ok(p.into_encoded_bytes());
    }
    if let Some(cfg) = config(g)? {
        let r = &cfg.repository;
        if let Some(cmd) = &r.password_command {
            let cmd = crate::config::substitute(cmd, "[repository] password_command")?;
            return password(&Global { password_command: Some(cmd), ..g.clone() }, confirm);
        }
        if let Some(f) = &r.password_file {
            return read_password_file(Path::new(&crate::config::substitute(f, "[repository] password_file")?));
        }
    }
    prompt("repository password", confirm)
}

/// Ask for a password on the terminal.
pub fn prompt(what: &str, confirm: bool) -> Result<Vec<u8>> {
    if !std::io::stdin().is_terminal() {
        bail!("no {what}: set LIFEBOAT_PASSWORD, --password-file or --password-command");
    }
    let p = rpassword::prompt_password(format!("enter {what}: ")).context("cannot read the password")?;
    if confirm {
        let again = rpassword::prompt_password(format!("enter {what} again: ")).context("cannot read the password")?;
        if again != p {
            bail!("passwords do not match");
        }
    }
    if p.is_empty() {
        bail!("empty password");
    }
    Ok(p.into_bytes())
}

/// Open the repository named by the global options.
pub fn open(g: &Global) -> Result<Repository> {
    let backend = repo_backend(g)?;
    if !backend.has_config()? {
        return Err(lifeboat_repository::RepoError::NotARepository { location: backend.location() }.into());
    }
    let pw = password(g, false)?;
    let mut repo = Repository::open(backend, &pw)?;
    repo.set_compression(compression(g)?);
    Ok(repo)
}

/// The compression setting: flag/env, else the config's, else `auto`.
pub fn compression(g: &Global) -> Result<Compression> {
    let text = match &g.compression {
        Some(c) => c.clone(),
        None => config(g)?.and_then(|c| c.repository.compression.clone()).unwrap_or_else(|| "auto".into()),
    };
    text.parse::<Compression>().map_err(|e| anyhow::anyhow!(e))
}

/// Refuse a deleting command when the repository (or this machine's config) is append-only.
pub fn refuse_if_append_only(g: &Global, repo: &Repository, what: &str) -> Result<()> {
    if config(g)?.is_some_and(|c| c.repository.append_only) {
        bail!("the config sets [repository] append_only = true: `{what}` would delete data and is refused on this machine");
    }
    let settings = lifeboat_repository::settings::load(repo)?;
    if settings.append_only {
        let by = settings.changed_by.map(|b| format!(" (set by {b})")).unwrap_or_default();
        bail!("the repository is append-only{by}: `{what}` would delete data and is refused; `lifeboat append-only off` lifts it");
    }
    Ok(())
}

/// Lock the repository (shared, or exclusive for commands that delete), waiting up to
/// `--retry-lock` when another process holds a conflicting lock. A read-only `--as-of` view
/// takes no lock (it cannot write one, and nothing can change what it reads).
pub fn lock(g: &Global, repo: &Repository, exclusive: bool) -> Result<Option<lifeboat_repository::lock::LockGuard>> {
    if g.no_lock {
        bail!("--no-lock is only for commands that only read (restore, check): this command writes to the repository");
    }
    if g.as_of.is_some() {
        if exclusive {
            bail!("--as-of gives a read-only view of the past: this command would change the repository");
        }
        return Ok(None);
    }
    let wait = match &g.retry_lock {
        Some(d) => crate::config::parse_duration(d).map_err(|e| anyhow::anyhow!("--retry-lock: {e}"))?,
        None => std::time::Duration::ZERO,
    };
    Ok(Some(lifeboat_repository::lock::acquire_waiting(repo, exclusive, wait, None)?))
}

/// The lock of a command that only reads (restore, check): none with `--no-lock`, and none —
/// with a notice on stderr — when the repository cannot be written (a read-only mount, another
/// user's repository), so a repository that can be read can always be restored from.
pub fn lock_read_only(g: &Global, repo: &Repository) -> Result<Option<lifeboat_repository::lock::LockGuard>> {
    use lifeboat_backend::BackendError;
    use lifeboat_repository::RepoError;
    if g.no_lock {
        return Ok(None);
    }
    match lock(g, repo, false) {
        Err(e) => match e.downcast_ref::<RepoError>() {
            Some(RepoError::Backend(b @ (BackendError::ReadOnly { .. } | BackendError::PermissionDenied { .. }))) => {
                eprintln!("lifeboat: notice: the repository cannot be written ({b}); reading it without a lock");
                Ok(None)
            }
            _ => Err(e),
        },
        ok => ok,
    }
}
