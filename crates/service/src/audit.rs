//! The audit log as operations record it and `audit verify` checks it. Every operation that
//! reads or changes backups (backup, restore, verify, drill, forget, prune, copy, key and
//! append-only changes) appends an event here, whichever front end started it; the chain itself
//! (hashes, positions, checkpoints) is [`lifeboat_ops::audit`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::Local;
use lifeboat_ops::audit::{self, ChainReport, Event};
use lifeboat_ops::drill::sign::{self, SigningKey};
use lifeboat_repository::Repository;
use serde::Serialize;

use crate::config::substitute;
use crate::error::Result;
use crate::progress::{Event as Progress, Observer};
use crate::session::{one_line, Session};

/// The `[drill] signing_key` file of the session's config, if one is set.
fn key_path(session: &Session) -> Result<Option<PathBuf>> {
    let Some(cfg) = session.config()? else { return Ok(None) };
    let Some(p) = cfg.drill.as_ref().and_then(|d| d.signing_key.as_deref()) else { return Ok(None) };
    Ok(Some(PathBuf::from(substitute(p, "[drill] signing_key")?)))
}

/// The key that signs checkpoints: `[drill] signing_key`, when configured and readable.
pub fn signing_key(session: &Session) -> Option<SigningKey> {
    key_path(session).ok().flatten().and_then(|p| sign::read_signing_key(&p).ok())
}

/// Append `event` to the audit log (with a signed checkpoint when one is due and the session
/// has a signing key). A failure to record is a warning: the operation itself stands. A
/// read-only view of the past (`--as-of`) records nothing.
pub fn record(repo: &Repository, session: Option<&Session>, event: Event, observer: &Observer) {
    if session.is_some_and(|s| s.as_of.is_some()) {
        return;
    }
    let key = session.and_then(signing_key);
    append(repo, &event, key.as_ref(), false, observer);
}

/// Append `event` and then, with `key`, a signed checkpoint of the head (a drill does this).
pub fn append(repo: &Repository, event: &Event, key: Option<&SigningKey>, checkpoint: bool, observer: &Observer) {
    if let Err(e) = audit::append(repo, event, key, checkpoint) {
        observer(&Progress::Warning {
            message: format!("could not record {:?} in the audit log: {}", event.action, one_line(&e)),
        });
    }
}

/// What `audit verify` found, and against which key checkpoints were checked.
#[derive(Clone, Debug, Serialize)]
pub struct Verified {
    /// The chain's state.
    #[serde(flatten)]
    pub chain: ChainReport,
    /// The public key checkpoints must be signed with (hex), when one is known.
    pub trusted_key: Option<String>,
}

impl Verified {
    /// Whether the chain is intact.
    pub fn ok(&self) -> bool {
        self.chain.broken.is_empty()
    }

    /// The report for people: the chain, its checkpoints, then the first broken link (if any).
    pub fn text(&self) -> String {
        let c = &self.chain;
        let mut out = String::new();
        let head = match &c.head {
            Some(h) => format!("head: record {} (sha256 {})", h.seq, h.hash),
            None => "no chained records yet".into(),
        };
        let _ = writeln!(out, "audit log: {}; {head}", crate::human::count(c.records as usize, "chained record"));
        if c.legacy > 0 {
            let _ = writeln!(
                out,
                "legacy prefix: {} written before the log was chained (not linked one by one; the chain's first record holds their digest)",
                crate::human::count(c.legacy as usize, "unchained record")
            );
        }
        if !c.legacy_after.is_empty() {
            let _ = writeln!(
                out,
                "not covered: {} written after the chain started (by an older Lifeboat?): {}",
                crate::human::count(c.legacy_after.len(), "unchained record"),
                c.legacy_after.join(", ")
            );
        }
        match (c.checkpoints.last(), &self.trusted_key) {
            (Some(last), _) => {
                let _ = writeln!(
                    out,
                    "signed checkpoints: {}, the last at record {} ({}, key {})",
                    c.checkpoints.len(),
                    last.seq,
                    last.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
                    &last.public_key
                );
            }
            (None, Some(_)) => out.push_str("signed checkpoints: none yet\n"),
            (None, None) => out.push_str("signed checkpoints: none (set [drill] signing_key to sign the head)\n"),
        }
        match c.broken.first() {
            None => out.push_str("intact: every record is present, unchanged and linked to the one before it\n"),
            Some(b) => {
                let at = b.name.as_deref().map(|n| format!(" (lifeboat/{n})")).unwrap_or_default();
                let _ = writeln!(out, "BROKEN: the first broken link is record {}{at}: {}", b.seq, b.problem);
                for b in &c.broken[1..] {
                    let _ = writeln!(out, "  then record {}: {}", b.seq, b.problem);
                }
            }
        }
        out
    }
}

/// `audit verify`: check the chain; checkpoints must be signed by `public_key` (a public or
/// secret key file), else by the `[drill] signing_key`'s key when one is configured.
pub fn verify(session: &Session, public_key: Option<&Path>) -> Result<Verified> {
    let trusted = match public_key {
        Some(p) => Some(sign::read_public_key(p)?),
        None => key_path(session)?.and_then(|p| sign::read_public_key(&p).ok()),
    };
    let repo = session.open()?;
    let chain = audit::verify(&repo, trusted.as_ref())?;
    Ok(Verified { chain, trusted_key: trusted.map(|k| hex::encode(k.to_bytes())) })
}

/// One event as a line of `lifeboat audit`: local time, user@host, action, source and
/// snapshot, details.
pub fn line(e: &Event) -> String {
    let about = match (&e.source, &e.snapshot) {
        (Some(s), Some(id)) => format!(" {s} {}", id.get(..8).unwrap_or(id)),
        (Some(s), None) => format!(" {s}"),
        (None, Some(id)) => format!(" {}", id.get(..8).unwrap_or(id)),
        (None, None) => String::new(),
    };
    format!(
        "{}  {:<24} {:<22}{about} {}",
        e.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
        format!("{}@{}", e.user, e.host),
        e.action,
        e.details
    )
}
