//! From the command line to the service layer: the [`Session`] of the global options, the
//! terminal prompt, and the interrupt flag.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use lifeboat_service::session::{PasswordSource, Session};

use crate::args::Global;

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

/// The service session of the global options (the password value from `LIFEBOAT_PASSWORD`).
pub fn session(g: &Global) -> Session {
    let value = std::env::var_os("LIFEBOAT_PASSWORD").map(|p| p.into_encoded_bytes());
    let mut s = Session {
        config_path: g.config.clone(),
        repo: g.repo.clone(),
        password: PasswordSource { command: g.password_command.clone(), file: g.password_file.clone(), value },
        compression: g.compression.clone(),
        retry_lock: g.retry_lock.clone(),
        as_of: g.as_of.clone(),
        no_lock: g.no_lock,
        no_cache: g.no_cache,
        cache_dir: g.cache_dir.clone(),
        no_totals: !crate::output::interactive(g.json, g.quiet),
        ..Session::default()
    };
    if std::io::stdin().is_terminal() {
        s.prompt = Some(Arc::new(|what: &str, confirm: bool| {
            prompt(what, confirm).map_err(|e| lifeboat_service::ServiceError::msg(crate::exit::message(&e)))
        }));
    }
    s
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
