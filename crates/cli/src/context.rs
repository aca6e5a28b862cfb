//! What every command needs: the backend from the repository URL, the password, an open
//! repository, and the interrupt flag.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use lifeboat_backend::{Backend, Fault, FaultyBackend, LocalBackend, RetryBackend, RetryPolicy};
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

/// Build the storage backend for a repository URL.
pub fn backend(url: &str) -> Result<Arc<dyn Backend>> {
    let path = if let Some(rest) = url.strip_prefix("local:") {
        rest
    } else if let Some(rest) = url.strip_prefix("file://") {
        rest
    } else if url.starts_with("s3:") || url.starts_with("s3://") {
        bail!(
            "S3 repositories are not supported yet by this build (coming with the S3 backend); use a local directory"
        );
    } else if url.contains("://") {
        bail!("unsupported repository URL {url:?}: use a directory path, local:DIR or file:///DIR");
    } else {
        url
    };
    if path.is_empty() {
        bail!("empty repository path");
    }
    let local = LocalBackend::new(path);
    let faults = Fault::from_env().map_err(|e| anyhow::anyhow!("LIFEBOAT_FAULTS: {e}"))?;
    let inner: Arc<dyn Backend> =
        if faults.is_empty() { Arc::new(local) } else { Arc::new(FaultyBackend::new(local, faults)) };
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
    let url = repo_url(g)?;
    let backend = backend(&url)?;
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
