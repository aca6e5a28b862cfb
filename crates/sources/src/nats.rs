//! The `nats` source: NATS JetStream streams, spoken to over the NATS protocol directly (no
//! client crate; the same approach as the redis source).
//!
//! **Backup** ([`start`]): file-storage streams through the stream snapshot API
//! (`$JS.API.STREAM.SNAPSHOT`, chunks acked as they arrive); memory-storage streams, which that
//! API refuses, by exporting every message (`$JS.API.STREAM.MSG.GET`). Per stream the snapshot
//! holds `STREAM.json` (config and state) and `STREAM.tar` (the snapshot's tar, S2-decoded) or
//! `STREAM.jsonl` (the export). The manifest counts the messages *in the backup itself* (a
//! snapshot's tar is read as it streams past), so it is exact even while publishers publish.
//!
//! **Restore** ([`restore`]): a snapshot under its original name goes back through
//! `$JS.API.STREAM.RESTORE` (sequences, times and consumers kept). A new name, a time range,
//! or an export is restored by republishing the messages into a stream created from the backed-up
//! config (NATS 2.9 refuses a snapshot under another name); sequence numbers are kept by setting
//! the first sequence and filling gaps, store times are new.
//!
//! **Verification** ([`verify`]): message count and first/last sequence of a stream compared
//! with what the backup (or the restore) says it should hold.
//!
//! Permissions (subjects the user must be allowed to publish to; replies come to `_INBOX.>`):
//! backup `$JS.API.STREAM.NAMES`, `$JS.API.STREAM.INFO.*`, `$JS.API.STREAM.SNAPSHOT.*`,
//! `$JS.API.STREAM.MSG.GET.*`, `$JS.SNAPSHOT.ACK.>`; restore additionally
//! `$JS.API.STREAM.CREATE.*`, `$JS.API.STREAM.UPDATE.*`, `$JS.API.STREAM.DELETE.*`,
//! `$JS.API.STREAM.RESTORE.*`, `$JS.API.STREAM.PURGE.*`, `$JS.API.STREAM.MSG.DELETE.*`,
//! `$JS.SNAPSHOT.RESTORE.>` and the stream's subjects.

mod archive;
mod backup;
pub mod client;
mod message;
mod pipe;
mod proto;
mod restore;
mod s2;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use backup::{start, Started};
pub use client::Connection;
pub use restore::{restore, RestoreOptions, Restored, StreamBackup, TimeRange};

use crate::SourceError;

/// How a stream was backed up.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The stream snapshot API (file storage).
    Snapshot,
    /// Every message exported one by one (memory storage).
    Export,
}

/// A stream's state as the server reported it when the backup of that stream began.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamState {
    /// Messages.
    pub messages: u64,
    /// Bytes.
    pub bytes: u64,
    /// First sequence.
    pub first_seq: u64,
    /// Last sequence.
    pub last_seq: u64,
    /// Consumers.
    pub consumers: u64,
}

/// What the backup of one stream holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamManifest {
    /// How it was backed up.
    pub method: Method,
    /// `file` or `memory`.
    pub storage: String,
    /// The stream info file in the snapshot.
    pub info_file: String,
    /// The data file in the snapshot.
    pub data_file: String,
    /// Whether the counts below were read from the backup itself. False when the snapshot's
    /// layout is not the NATS 2.9 one this version reads: they are then the server's state at
    /// the start, and the backup can only be restored whole under its own name.
    #[serde(default = "yes")]
    pub counted_in_backup: bool,
    /// Messages in the backup.
    pub messages: u64,
    /// Sequence of the first message in the backup.
    pub first_seq: Option<u64>,
    /// Sequence of the last message in the backup.
    pub last_seq: Option<u64>,
    /// Store time of the first message (RFC 3339, ns).
    pub first_ts: Option<String>,
    /// Store time of the last message.
    pub last_ts: Option<String>,
    /// Bytes as the server accounts them.
    pub bytes: u64,
    /// The stream's subjects.
    pub subjects: Vec<String>,
    /// Consumers when the backup began.
    pub consumers: u64,
    /// The server's state when the backup of the stream began (publishers may have added more
    /// by the time the data was read; the counts above are what the backup holds).
    pub state_at_start: StreamState,
    /// Server version.
    pub server_version: String,
    /// When the stream's backup began.
    pub started: DateTime<Utc>,
    /// How long reading the stream took.
    pub duration_seconds: f64,
    /// Bytes received from the server (compressed snapshot, or export lines).
    pub archive_bytes: u64,
}

fn yes() -> bool {
    true
}

/// What the `nats` source records in its snapshots.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// `host:port` backed up (never credentials).
    pub server: String,
    /// Server version.
    pub server_version: String,
    /// Per stream.
    pub streams: BTreeMap<String, StreamManifest>,
}

/// What a stream should hold after a restore.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Expected {
    /// Messages.
    pub messages: u64,
    /// First message's sequence (not checked when `None`).
    pub first_seq: Option<u64>,
    /// Last message's sequence (not checked when `None`).
    pub last_seq: Option<u64>,
}

impl From<&StreamManifest> for Expected {
    fn from(m: &StreamManifest) -> Self {
        Expected { messages: m.messages, first_seq: m.first_seq, last_seq: m.last_seq }
    }
}

/// Result of verifying one stream.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// Stream verified.
    pub stream: String,
    /// Whether everything matched.
    pub ok: bool,
    /// Differences (`ORDERS: expected 10000 messages, found 9998`).
    pub mismatches: Vec<String>,
    /// What the stream holds.
    pub found: Expected,
}

/// Whether a message exists at `seq` (or, with `next`, at or after it).
fn message_at(c: &mut client::Client, stream: &str, seq: u64, next: bool) -> Result<Option<u64>, SourceError> {
    let body = if next { json!({"seq": seq, "next_by_subj": ">"}) } else { json!({"seq": seq}) };
    match c.js_raw(&format!("STREAM.MSG.GET.{stream}"), &body)? {
        Ok(v) => Ok(v["message"]["seq"].as_u64()),
        Err(e) if e.err_code == client::NO_MESSAGE_FOUND => Ok(None),
        Err(e) => Err(c.api_fail(Some(stream), &e)),
    }
}

/// The sequence of the last message present: the state's last sequence, or — when the tail
/// was deleted — `hint` if a message is there and none follows it.
fn last_present(
    c: &mut client::Client,
    stream: &str,
    state: &Value,
    hint: Option<u64>,
) -> Result<Option<u64>, SourceError> {
    let last = state["last_seq"].as_u64().unwrap_or(0);
    if last > 0 && message_at(c, stream, last, false)?.is_some() {
        return Ok(Some(last));
    }
    if let Some(h) = hint.filter(|h| *h < last) {
        if message_at(c, stream, h, false)?.is_some() && message_at(c, stream, h + 1, true)?.is_none() {
            return Ok(Some(h));
        }
    }
    Ok(Some(last))
}

/// Compare a stream on the server with what it should hold: message count, and the first and
/// last message's sequence where `expected` names them.
pub fn verify(conn: &Connection, stream: &str, expected: &Expected) -> Result<Verification, SourceError> {
    let mut c = client::Client::connect(conn)?;
    let info = c.js(&format!("STREAM.INFO.{stream}"), &Value::Null, Some(stream))?;
    let state = &info["state"];
    let messages = state["messages"].as_u64().unwrap_or(0);
    let (first_seq, last_seq) = if messages == 0 {
        (None, None)
    } else {
        (state["first_seq"].as_u64(), last_present(&mut c, stream, state, expected.last_seq)?)
    };
    let found = Expected { messages, first_seq, last_seq };
    let mut mismatches = Vec::new();
    if found.messages != expected.messages {
        mismatches.push(format!("{stream}: expected {} messages, found {}", expected.messages, found.messages));
    }
    for (what, want, got) in [("first", expected.first_seq, first_seq), ("last", expected.last_seq, last_seq)] {
        if want.is_some() && want != got && expected.messages > 0 {
            let show = |s: Option<u64>| s.map_or("none".to_string(), |s| s.to_string());
            mismatches.push(format!("{stream}: expected {what} sequence {}, found {}", show(want), show(got)));
        }
    }
    Ok(Verification { stream: stream.to_string(), ok: mismatches.is_empty(), mismatches, found })
}
