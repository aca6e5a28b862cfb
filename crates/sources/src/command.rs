//! The `command` source: runs a program and stores its standard output as one file of the
//! snapshot, with the exit status in the manifest. This is how CLI-only state (e.g.
//! `dfx canister status`) is captured.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use lifeboat_repository::archiver::{Content, Entry, ManifestHook};

use crate::SourceError;

/// How to run the command.
#[derive(Clone, Debug)]
pub struct CommandOptions {
    /// Program and arguments (secrets already substituted). With `shell`, one script for `sh -c`.
    pub argv: Vec<String>,
    /// Run `argv[0]` with `sh -c`.
    pub shell: bool,
    /// Name of the file holding the output in the snapshot.
    pub filename: String,
    /// Keep the snapshot even when the command exits non-zero.
    pub allow_failure: bool,
    /// The command as configured, before secret substitution: what the manifest records.
    pub display: Vec<String>,
}

/// Keep at most this much of the command's stderr for error messages.
const STDERR_KEEP: usize = 16 * 1024;

/// Start the command. Returns the snapshot paths, the entries (one file streaming stdout) and
/// the hook that waits for the command and yields the manifest.
pub fn start(opts: &CommandOptions) -> Result<(Vec<String>, std::vec::IntoIter<Entry>, ManifestHook), SourceError> {
    let mut cmd = if opts.shell {
        let mut c = Command::new("sh");
        c.arg("-c").arg(opts.argv.first().map(String::as_str).unwrap_or(""));
        c
    } else {
        let (prog, args) = opts
            .argv
            .split_first()
            .ok_or_else(|| SourceError::Command { command: String::new(), message: "empty command".into() })?;
        let mut c = Command::new(prog);
        c.args(args);
        c
    };
    let shown = opts.display.join(" ");
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            let program = if opts.shell { "sh" } else { opts.argv.first().map(String::as_str).unwrap_or("") };
            crate::client::missing_program(program, None, "install it, or give its full path")
        } else {
            e.to_string()
        };
        SourceError::Command { command: shown.clone(), message }
    })?;
    let started = Utc::now();
    let clock = Instant::now();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| SourceError::Command { command: shown.clone(), message: "no stdout".into() })?;
    let stderr_buf = Arc::new(Mutex::new(Vec::new()));
    let stderr_reader = child.stderr.take().map(|mut err| {
        let buf = stderr_buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut b) = buf.lock() {
                    b.extend_from_slice(&chunk[..n]);
                    let excess = b.len().saturating_sub(STDERR_KEEP);
                    b.drain(..excess);
                }
            }
        })
    });
    let node = crate::artifact::node(&opts.filename, 0o644, started);
    let entries = vec![Entry::File { node, content: Content::Reader(Box::new(stdout)) }];
    let child = Mutex::new(Some((child, stderr_reader)));
    let (display, allow_failure, filename) = (opts.display.clone(), opts.allow_failure, opts.filename.clone());
    let hook: ManifestHook = Arc::new(move || {
        let Some((mut c, reader)) = child.lock().ok().and_then(|mut g| g.take()) else {
            return Err(format!("{shown}: already finished"));
        };
        let status = c.wait().map_err(|e| format!("{shown}: {e}"))?;
        if let Some(r) = reader {
            let _ = r.join();
        }
        let code = status.code();
        let err_tail = stderr_buf.lock().map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
        if !status.success() && !allow_failure {
            let last = err_tail.lines().last().unwrap_or("").to_string();
            let how = code.map(|c| format!("exit status {c}")).unwrap_or_else(|| status.to_string());
            return Err(format!(
                "command `{shown}` failed with {how}{}",
                if last.is_empty() { String::new() } else { format!(": {last}") }
            ));
        }
        Ok(Some(serde_json::json!({
            "command": display,
            "exit_status": code,
            "file": filename,
            "started": started,
            "duration_seconds": clock.elapsed().as_secs_f64(),
            "stderr_tail": err_tail.chars().rev().take(2000).collect::<String>().chars().rev().collect::<String>(),
        })))
    });
    Ok((vec![format!("/{}", opts.filename)], entries.into_iter(), hook))
}
