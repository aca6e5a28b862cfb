//! Alerts to `[[notify]]` targets: webhook (JSON, optional HMAC-SHA256 signature), Slack
//! incoming webhook, ntfy, healthchecks.io-style pings, or a command reading the event JSON on
//! stdin. Each delivery runs on its own thread with retries and backoff: a notifier never blocks
//! or fails the work that raised the event. URLs and tokens are secrets: errors name the target
//! by its `name`, never by its URL.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lifeboat_service::config::{substitute, NotifySection};
use serde::Serialize;
use sha2::Sha256;

use crate::log::Log;

/// Something to tell people about.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// `backup_failed`, `rpo_breached`, … (see `lifeboat_service::config::daemon::EVENTS`).
    pub event: String,
    /// The source, when the event is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// One line for people.
    pub message: String,
    /// When.
    pub time: DateTime<Utc>,
    /// The host of the daemon.
    pub host: String,
    /// Event details (run id, error, snapshot, ages).
    pub details: serde_json::Value,
}

impl Alert {
    /// An alert now.
    pub fn new(event: &str, source: Option<&str>, message: String, details: serde_json::Value) -> Alert {
        Alert {
            event: event.into(),
            source: source.map(String::from),
            message,
            time: Utc::now(),
            host: lifeboat_ops::records::host(),
            details,
        }
    }

    /// Whether the event is bad news (healthchecks: fail), a start, or good news.
    pub fn is_failure(&self) -> bool {
        !matches!(self.event.as_str(), "backup_ok" | "rpo_recovered" | "probe_recovered" | "test" | "backup_started")
    }
}

/// How many times a delivery is tried, and the first wait between tries (doubling).
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all.
    pub attempts: u32,
    /// First backoff.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry { attempts: 4, backoff: Duration::from_secs(1) }
    }
}

/// Send `alert` to every target that wants it, each on its own thread; returns the threads (the
/// daemon does not wait for them; `notify test` does).
pub fn send(targets: &[NotifySection], alert: &Alert, log: Log, retry: Retry) -> Vec<std::thread::JoinHandle<bool>> {
    send_after(targets, alert, log, retry, Vec::new())
}

/// [`send`], each delivery waiting first for `before` to end (so a backup's end ping never
/// overtakes its start ping).
pub fn send_after(
    targets: &[NotifySection],
    alert: &Alert,
    log: Log,
    retry: Retry,
    before: Vec<std::thread::JoinHandle<bool>>,
) -> Vec<std::thread::JoinHandle<bool>> {
    let wanted: Vec<NotifySection> = targets.iter().filter(|t| t.wants(&alert.event)).cloned().collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let gate = (!before.is_empty()).then(|| {
        std::thread::spawn(move || {
            for h in before {
                let _ = h.join();
            }
            true
        })
    });
    let gate = std::sync::Arc::new(std::sync::Mutex::new(gate));
    wanted
        .into_iter()
        .map(|t| {
            let (a, gate) = (alert.clone(), gate.clone());
            std::thread::spawn(move || {
                // The first delivery thread joins the gate; the others wait on the lock meanwhile.
                if let Ok(mut g) = gate.lock() {
                    if let Some(h) = g.take() {
                        let _ = h.join();
                    }
                }
                deliver(&t, &a, log, retry)
            })
        })
        .collect()
}

/// Deliver with retries; logs each failure (by the target's name) and the final outcome.
pub fn deliver(t: &NotifySection, a: &Alert, log: Log, retry: Retry) -> bool {
    let mut wait = retry.backoff;
    for attempt in 1..=retry.attempts.max(1) {
        match once(t, a) {
            Ok(()) => {
                log.info("notify_sent", &[("target", t.label().into()), ("alert", a.event.clone())]);
                return true;
            }
            Err(e) => {
                log.warn(
                    "notify_failed",
                    &[
                        ("target", t.label().into()),
                        ("alert", a.event.clone()),
                        ("attempt", attempt.to_string()),
                        ("error", e),
                    ],
                );
                if attempt < retry.attempts {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
            }
        }
    }
    log.error("notify_gave_up", &[("target", t.label().into()), ("alert", a.event.clone())]);
    false
}

fn client() -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// One attempt. Errors never contain the URL (a webhook URL is a secret).
fn once(t: &NotifySection, a: &Alert) -> Result<(), String> {
    let what = format!("[[notify]] {}", t.label());
    let url = match &t.url {
        Some(u) => Some(substitute(u, &what).map_err(|e| e.to_string())?),
        None => None,
    };
    let body = serde_json::to_vec(a).map_err(|e| e.to_string())?;
    let http = |req: reqwest::blocking::RequestBuilder| -> Result<(), String> {
        let r = req.send().map_err(|e| without_url(&e))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", r.status()))
        }
    };
    match t.kind.as_str() {
        "webhook" => {
            let url = url.ok_or("no url")?;
            let mut req = client()?.post(url).header("content-type", "application/json");
            if let Some(secret) = &t.secret {
                let key = substitute(secret, &what).map_err(|e| e.to_string())?;
                req = req.header("x-lifeboat-signature", format!("sha256={}", sign(key.as_bytes(), &body)));
            }
            http(req.body(body))
        }
        "slack" => {
            let text = format!("*lifeboat* {}: {}", a.event, a.message);
            http(client()?.post(url.ok_or("no url")?).json(&serde_json::json!({ "text": text })))
        }
        "ntfy" => {
            let mut req = client()?
                .post(url.ok_or("no url")?)
                .header("Title", format!("lifeboat: {}", a.event))
                .header("Priority", if a.is_failure() { "high" } else { "default" })
                .header("Tags", if a.is_failure() { "warning" } else { "white_check_mark" });
            if let Some(token) = &t.token {
                req = req.bearer_auth(substitute(token, &what).map_err(|e| e.to_string())?);
            }
            http(req.body(a.message.clone()))
        }
        "healthchecks" => {
            // Ping URL per source: `{url}/{source}`, with /start when a backup starts and /fail for
            // failures (healthchecks.io's slug pings), or `{url}` alone for events about no source.
            let base = url.ok_or("no url")?.trim_end_matches('/').to_string();
            let mut u = match &a.source {
                Some(s) => format!("{base}/{s}"),
                None => base,
            };
            if a.event == "backup_started" {
                u.push_str("/start");
            } else if a.is_failure() {
                u.push_str("/fail");
            }
            http(client()?.post(u).body(a.message.clone()))
        }
        "command" => {
            let argv = t.command.as_ref().ok_or("no command")?;
            let (prog, args) = argv.split_first().ok_or("empty command")?;
            let mut child = Command::new(prog)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run {prog}: {e}"))?;
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(&body);
            }
            let status = child.wait().map_err(|e| e.to_string())?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("{prog} exited with {status}"))
            }
        }
        k => Err(format!("unknown notify kind {k:?}")),
    }
}

/// `notify test`: a test alert to every target (or the one named), each tried once, now;
/// returns (name, kind, delivered) per target.
pub fn test(targets: &[NotifySection], name: Option<&str>, log: Log) -> Result<Vec<(String, String, bool)>, String> {
    let chosen: Vec<&NotifySection> = targets.iter().filter(|t| name.is_none_or(|n| t.label() == n)).collect();
    if chosen.is_empty() {
        return Err(match name {
            Some(n) => format!("no [[notify]] target named {n:?}"),
            None => "the config has no [[notify]] targets".into(),
        });
    }
    let alert = Alert::new("test", None, "a test alert from `lifeboat notify test`".into(), serde_json::json!({}));
    let once = Retry { attempts: 1, backoff: Duration::ZERO };
    Ok(chosen.into_iter().map(|t| (t.label().to_string(), t.kind.clone(), deliver(t, &alert, log, once))).collect())
}

/// The HMAC-SHA256 of `body` under `key`, in hex (what `X-Lifeboat-Signature: sha256=…` carries).
pub fn sign(key: &[u8], body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// A reqwest error in words, without its URL (which may hold a token).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_request() {
        "request failed"
    } else {
        "failed"
    };
    kind.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_a_known_answer() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
