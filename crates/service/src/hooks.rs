//! Running a source's hooks (`before_backup`, `after_backup`, `before_restore`, `after_restore`,
//! `on_failure`), its `verify_command` and its `healthcheck_url` check. Backups, restores
//! (`restore`, `restore --all`), restore tests and drills call these, whichever front end (CLI,
//! daemon) started them.
//!
//! A hook runs with a cleared environment: only `PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ`, `USER`,
//! `LOGNAME`, `TMPDIR` are kept, then `LIFEBOAT_SOURCE`, `LIFEBOAT_OPERATION`,
//! `LIFEBOAT_SNAPSHOT` (when known), `LIFEBOAT_TARGET` (restores) and `LIFEBOAT_ERROR`
//! (`on_failure`) are set, then the hook's own `env` table. The repository password and every
//! other variable of Lifeboat's environment (`LIFEBOAT_PASSWORD`, `AWS_SECRET_ACCESS_KEY`, …)
//! never reach a hook unless its `env` names them. It runs in its own process group; when it
//! exceeds its timeout the whole group is killed. Its standard output is discarded (it would mix
//! with Lifeboat's own, e.g. `--json`); the tail of its standard error is kept for the error line
//! and the run record. A service a hook starts in the background keeps running.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_ops::records::{HookRun, Run};

use crate::config::{Healthcheck, Hook, Hooks};
use crate::session::one_line;
use crate::vars::substitute;

/// Variables of Lifeboat's environment a hook keeps.
pub const KEPT_VARIABLES: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "TMPDIR"];

/// What a hook is told about the run it belongs to.
#[derive(Clone, Debug, Default)]
pub struct HookEnv {
    /// `LIFEBOAT_SOURCE`.
    pub source: String,
    /// `LIFEBOAT_OPERATION`: `backup`, `restore`, `restore-test`.
    pub operation: String,
    /// `LIFEBOAT_SNAPSHOT` (full id), when known.
    pub snapshot: Option<String>,
    /// `LIFEBOAT_TARGET` (and `{target}` in argv), for restores.
    pub target: Option<String>,
    /// `LIFEBOAT_ERROR`, for `on_failure`.
    pub error: Option<String>,
}

impl HookEnv {
    /// The environment of `operation` on `source`.
    pub fn new(source: &str, operation: &str) -> HookEnv {
        HookEnv { source: source.into(), operation: operation.into(), ..Default::default() }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![("LIFEBOAT_SOURCE", self.source.clone()), ("LIFEBOAT_OPERATION", self.operation.clone())];
        v.extend(self.snapshot.clone().map(|s| ("LIFEBOAT_SNAPSHOT", s)));
        v.extend(self.target.clone().map(|s| ("LIFEBOAT_TARGET", s)));
        v.extend(self.error.clone().map(|s| ("LIFEBOAT_ERROR", s)));
        v
    }
}

/// The last `max` bytes of `text`, cut at a line start when possible.
fn tail(text: &str, max: usize) -> String {
    let text = text.trim_end();
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    cut.find('\n').map(|i| &cut[i + 1..]).unwrap_or(cut).to_string()
}

/// Run `hook` (called `name`: `before_restore`, `verify_command`, …) now and wait for it, at
/// most its timeout.
pub fn run(name: &str, hook: &Hook, env: &HookEnv) -> HookRun {
    let started = Instant::now();
    let mut out = HookRun { hook: name.into(), program: hook.program(), ..Default::default() };
    let fail = |mut out: HookRun, e: String| {
        out.seconds = started.elapsed().as_secs_f64();
        out.error = Some(e);
        out
    };
    let what = format!("{name} of source {}", env.source);
    let target = env.target.clone().unwrap_or_default();
    let argv: Result<Vec<String>, String> = hook
        .command
        .iter()
        .map(|a| substitute(a, &what).map(|a| a.replace("{target}", &target)).map_err(|e| one_line(&e)))
        .collect();
    let argv = match argv {
        Ok(a) => a,
        Err(e) => return fail(out, e),
    };
    let Some((prog, args)) = argv.split_first() else { return fail(out, "empty command".into()) };
    let mut cmd = Command::new(prog);
    cmd.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::null()).process_group(0);
    for k in KEPT_VARIABLES {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    for (k, v) in env.vars() {
        cmd.env(k, v);
    }
    for (k, v) in &hook.env {
        match substitute(v, &format!("{what}: env {k}")) {
            Ok(v) => cmd.env(k, v),
            Err(e) => return fail(out, one_line(&e)),
        };
    }
    // Standard error into an unnamed file, not a pipe: a service the hook starts in the
    // background inherits it, and a pipe would then never reach its end.
    let mut errfile = match tempfile::tempfile() {
        Ok(f) => f,
        Err(e) => return fail(out, format!("cannot make a file for its standard error: {e}")),
    };
    match errfile.try_clone() {
        Ok(f) => cmd.stderr(Stdio::from(f)),
        Err(e) => return fail(out, format!("cannot make a file for its standard error: {e}")),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(out, format!("cannot run {prog}: {e}")),
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() > hook.timeout => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return fail(out, format!("{prog}: {e}")),
        }
    };
    let mut stderr = String::new();
    if errfile.seek(SeekFrom::Start(0)).is_ok() {
        let mut buf = Vec::new();
        let _ = errfile.read_to_end(&mut buf);
        stderr = tail(&String::from_utf8_lossy(&buf), 2048);
    }
    out.stderr_tail = stderr;
    out.seconds = started.elapsed().as_secs_f64();
    let last = out.stderr_tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let last: String = last.chars().take(300).collect();
    let with_last = |s: String| if last.is_empty() { s } else { format!("{s}: {last}") };
    match status {
        None => {
            out.error = Some(with_last(format!(
                "did not finish within {}; killed it and its process group",
                crate::human::duration(hook.timeout)
            )));
        }
        Some(s) if s.success() => {
            out.ok = true;
            out.exit_code = Some(0);
        }
        Some(s) => {
            out.exit_code = s.code();
            let how = match s.code() {
                Some(c) => format!("exited with code {c}"),
                None => format!("was killed ({s})"),
            };
            out.error = Some(with_last(how));
        }
    }
    out
}

/// Run the hook `name` of `hooks` when it is configured, keep its outcome in `runs`; `Err` with
/// one line when it failed.
pub fn run_named(hooks: &Hooks, name: &str, env: &HookEnv, runs: &mut Vec<HookRun>) -> Result<(), String> {
    let Some(hook) = hooks.get(name) else { return Ok(()) };
    let r = run(name, hook, env);
    let result = if r.ok { Ok(()) } else { Err(format!("{} failed: {}", name, r.line())) };
    runs.push(r);
    result
}

/// `on_failure` with `error` in `LIFEBOAT_ERROR` (its own failure is only recorded).
pub fn on_failure(hooks: &Hooks, env: &HookEnv, error: &str, runs: &mut Vec<HookRun>) {
    let env = HookEnv { error: Some(error.to_string()), ..env.clone() };
    let _ = run_named(hooks, "on_failure", &env, runs);
}

/// Each hook's outcome as a message of `run`.
pub fn say(run: &mut Run, hooks: &[HookRun]) {
    for h in hooks {
        run.say(if h.ok { "info" } else { "error" }, format!("hook {}", h.line()));
        if !h.ok && !h.stderr_tail.is_empty() {
            run.say("error", format!("{} stderr: {}", h.hook, tail(&h.stderr_tail, 500).replace('\n', " | ")));
        }
    }
}

/// The URL for people: scheme, host, port and path (no credentials, no query).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => "the healthcheck URL".into(),
    }
}

/// GET `h.url` until it answers the expected status, at most `h.retries` tries one second apart.
pub fn healthcheck(h: &Healthcheck, source: &str) -> HookRun {
    let started = Instant::now();
    let mut out = HookRun { hook: "healthcheck".into(), ..Default::default() };
    let url = match substitute(&h.url, &format!("healthcheck_url of source {source}")) {
        Ok(u) => u,
        Err(e) => {
            out.error = Some(one_line(&e));
            return out;
        }
    };
    out.program = shown(&url);
    let client = match reqwest::blocking::Client::builder()
        .timeout(h.timeout)
        .connect_timeout(h.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(format!("HTTP client: {e}"));
            return out;
        }
    };
    let mut last = String::new();
    for attempt in 1..=h.retries {
        if attempt > 1 {
            std::thread::sleep(Duration::from_secs(1));
        }
        match client.get(&url).send() {
            Ok(resp) => {
                let got = resp.status().as_u16();
                out.exit_code = Some(i32::from(got));
                if got == h.status {
                    out.ok = true;
                    out.seconds = started.elapsed().as_secs_f64();
                    return out;
                }
                last = format!("answered HTTP {got}, expected {}", h.status);
            }
            Err(e) if e.is_timeout() => {
                last = format!("did not answer within {}", crate::human::duration(h.timeout));
            }
            Err(e) if e.is_connect() => last = "cannot connect".into(),
            Err(_) => last = "the request failed".into(),
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    let tries = if h.retries == 1 { "1 try".to_string() } else { format!("{} tries", h.retries) };
    out.error = Some(format!("{last} ({tries})"));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 100), "a\nb\nc");
        let long = format!("{}\nlast line", "x".repeat(5000));
        assert_eq!(tail(&long, 20), "last line");
    }

    #[test]
    fn shown_urls_lose_credentials_and_query() {
        assert_eq!(shown("http://u:secret@127.0.0.1:8080/health?token=abc"), "http://127.0.0.1:8080/health");
    }
}
