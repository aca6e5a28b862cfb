//! Restoring one stream of a backup into a server.
//!
//! * Snapshot backup, original name, whole stream: `$JS.API.STREAM.RESTORE` with the backed-up
//!   config; the stored tar is sent back S2-framed, chunk by chunk, each acked. Sequences,
//!   store times and consumers come back as they were.
//! * Anything else (a new name — NATS 2.9 refuses a snapshot whose stream name differs —, a
//!   time range, an export): the messages are read out of the backup and republished into a
//!   stream created from the backed-up config under the target name. If its subjects overlap
//!   with another stream (the live original, typically), they are prefixed with `TARGET.`.
//!   Limits and deny flags are relaxed while loading and put back afterwards; sequence numbers
//!   are kept by purging the empty stream up to the first sequence and filling gaps with
//!   messages deleted again at once. Store times are the time of the restore.

use std::io::Write;

use lifeboat_format::{Id, Node};
use lifeboat_repository::{restorer, Repository};
use serde::Serialize;
use serde_json::{json, Value};

use super::archive::SnapshotReader;
use super::client::{self, Client, Connection, Pipeline};
use super::message::{rfc3339, Message};
use super::{proto, s2, Expected, Method, StreamManifest};
use crate::SourceError;

/// Publishes in flight at most; when reached, answers are taken until half remain, so that
/// sends and reads go in batches rather than one syscall each.
const WINDOW: usize = 512;
/// Restore chunks in flight (each up to half a max payload).
const CHUNK_WINDOW: usize = 8;
/// Beyond this many deleted sequences, keeping sequence numbers costs too much: renumber.
const MAX_FILLERS: u64 = 1_000_000;

/// Store times to restore: `from` inclusive, `until` exclusive (ns since the epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Earliest store time restored.
    pub from: Option<i64>,
    /// Store times from here on are not restored.
    pub until: Option<i64>,
}

impl TimeRange {
    fn contains(&self, ts: i64) -> bool {
        self.from.is_none_or(|f| ts >= f) && self.until.is_none_or(|u| ts < u)
    }
}

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore under this name instead of the original.
    pub rename: Option<String>,
    /// Delete an existing stream of the target name first (otherwise it is refused).
    pub overwrite: bool,
    /// Only messages stored in this range.
    pub range: Option<TimeRange>,
}

/// One stream of a backup, as the CLI finds it in a snapshot.
pub struct StreamBackup {
    /// Stream name at backup time.
    pub name: String,
    /// Its manifest entry.
    pub manifest: StreamManifest,
    /// Its info file (config and state).
    pub info: Value,
    /// Its data file.
    pub data: Node,
}

/// What a restore did.
#[derive(Clone, Debug, Serialize)]
pub struct Restored {
    /// Stream in the backup.
    pub stream: String,
    /// Stream restored into.
    pub target: String,
    /// `snapshot` (restore API) or `republish`.
    pub how: String,
    /// Messages restored.
    pub messages: u64,
    /// Original sequence of the first restored message.
    pub first_seq: Option<u64>,
    /// Original sequence of the last restored message.
    pub last_seq: Option<u64>,
    /// Original store time of the first restored message.
    pub first_ts: Option<String>,
    /// Original store time of the last restored message.
    pub last_ts: Option<String>,
    /// Whether the restored messages have their original sequence numbers.
    pub sequences_preserved: bool,
    /// Subjects of the restored stream.
    pub subjects: Vec<String>,
    /// Whether subjects were prefixed with `TARGET.` (overlap with another stream).
    pub subjects_rewritten: bool,
    /// Things the operator should know (renumbering, dropped duplicates…).
    pub notes: Vec<String>,
}

impl Restored {
    /// What verification should find in the target stream.
    pub fn expected(&self) -> Expected {
        let keep = |s: Option<u64>| if self.sequences_preserved { s } else { None };
        Expected { messages: self.messages, first_seq: keep(self.first_seq), last_seq: keep(self.last_seq) }
    }

    /// What the restored stream must hold: the manifest's counts for a whole stream (sequences
    /// only where they were kept), the restore's own count for a time range.
    pub fn expected_for(&self, backup: &StreamBackup, opts: &RestoreOptions) -> Expected {
        if opts.range.is_some() {
            return self.expected();
        }
        let mut e = Expected::from(&backup.manifest);
        if !self.sequences_preserved {
            (e.first_seq, e.last_seq) = (None, None);
        }
        e
    }
}

impl StreamBackup {
    /// A stream of the backup whose snapshot tree is `root`: its info file (read) and data node.
    pub fn load(repo: &Repository, root: &Id, name: &str, m: &StreamManifest) -> Result<StreamBackup, SourceError> {
        let fail = |e: String| SourceError::Database { target: format!("backup of stream {name}"), message: e };
        let find = |file: &str| -> Result<Node, SourceError> {
            lifeboat_repository::tree::find_node(repo, root, file)
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail(format!("the snapshot does not contain {file}")))
        };
        let info_node = find(&m.info_file)?;
        let mut info = Vec::new();
        let index = repo.index().map_err(|e| fail(e.to_string()))?;
        restorer::copy_content(repo, &index, &info_node, &mut info).map_err(|e| fail(e.to_string()))?;
        let info =
            serde_json::from_slice(&info).map_err(|_| fail(format!("{}: not a stream info file", m.info_file)))?;
        let data = find(&m.data_file)?;
        Ok(StreamBackup { name: name.to_string(), manifest: m.clone(), info, data })
    }
}

/// Restore one stream of a backup (see the module documentation for the two ways).
pub fn restore(
    repo: &Repository,
    backup: &StreamBackup,
    conn: &Connection,
    opts: &RestoreOptions,
) -> Result<Restored, SourceError> {
    let mut c = Client::connect(conn)?;
    let target = opts.rename.clone().unwrap_or_else(|| backup.name.clone());
    if let Some(why) = refusal(backup, &target, opts) {
        return Err(c.fail(Some(&target), why, false));
    }
    prepare_target(&mut c, &target, opts.overwrite)?;
    if direct(backup, &target, opts) {
        return restore_snapshot(&mut c, repo, backup);
    }
    let result = Importer::run(&mut c, repo, backup, &target, opts);
    if result.is_err() {
        // The target did not exist before (or was deleted by --overwrite): what is there now is
        // this restore's half-made stream. A fresh connection, the old one may be broken.
        if let Ok(mut c) = Client::connect(conn) {
            let _ = c.js_raw(&format!("STREAM.DELETE.{target}"), &Value::Null);
        }
    }
    result
}

/// Why this restore cannot be done, checked before anything on the server changes.
fn refusal(backup: &StreamBackup, target: &str, opts: &RestoreOptions) -> Option<String> {
    if target.is_empty() || target.chars().any(|ch| ch.is_whitespace() || ".*>/\\".contains(ch)) {
        return Some("invalid stream name".into());
    }
    if direct(backup, target, opts) {
        return None;
    }
    if backup.info["config"]["retention"] == "interest" {
        // The server skips messages published to an interest stream without consumers.
        return Some(
            "an interest-retention stream keeps no messages without consumers, so it can only be restored \
             whole, under its original name, from a snapshot backup"
                .into(),
        );
    }
    if backup.manifest.method == Method::Snapshot && !backup.manifest.counted_in_backup {
        return Some(format!(
            "this snapshot is in NATS {}'s layout, which this version cannot read message by message: \
             it can only be restored whole, under its original name",
            backup.manifest.server_version
        ));
    }
    None
}

fn direct(backup: &StreamBackup, target: &str, opts: &RestoreOptions) -> bool {
    backup.manifest.method == Method::Snapshot && target == backup.name && opts.range.is_none()
}

/// Refuse an existing target stream unless `overwrite`, which deletes it.
fn prepare_target(c: &mut Client, target: &str, overwrite: bool) -> Result<(), SourceError> {
    match c.js_raw(&format!("STREAM.INFO.{target}"), &Value::Null)? {
        Err(e) if e.err_code == client::STREAM_NOT_FOUND => Ok(()),
        Err(e) => Err(c.api_fail(Some(target), &e)),
        Ok(_) if !overwrite => {
            Err(c.fail(Some(target), "stream exists (use --overwrite to delete and replace it)", false))
        }
        Ok(_) => c.js(&format!("STREAM.DELETE.{target}"), &Value::Null, Some(target)).map(|_| ()),
    }
}

fn repo_fail(c: &Client, stream: &str, e: impl std::fmt::Display) -> SourceError {
    c.fail(Some(stream), format!("reading the backup: {e}"), false)
}

/// Sends the stored tar to `$JS.API.STREAM.RESTORE`'s deliver subject as S2 chunks.
struct ChunkSink<'a> {
    c: &'a mut Client,
    stream: String,
    deliver: String,
    raw: Vec<u8>,
    out: Vec<u8>,
    chunk: usize,
    acks: Pipeline<()>,
    error: Option<SourceError>,
}

impl ChunkSink<'_> {
    fn frame(&mut self, all: bool) -> Result<(), SourceError> {
        let mut at = 0;
        while self.raw.len() - at >= s2::FRAME_PIECE || (all && at < self.raw.len()) {
            let n = (self.raw.len() - at).min(s2::FRAME_PIECE);
            s2::frame_chunk(&self.raw[at..at + n], &mut self.out);
            at += n;
        }
        self.raw.drain(..at);
        while self.out.len() >= self.chunk || (all && !self.out.is_empty()) {
            let n = self.out.len().min(self.chunk);
            let piece: Vec<u8> = self.out.drain(..n).collect();
            self.acks.send(self.c, &self.deliver, None, &piece, ())?;
            while self.acks.len() >= CHUNK_WINDOW {
                self.ack()?;
            }
        }
        Ok(())
    }

    fn ack(&mut self) -> Result<(), SourceError> {
        if let Some(((), m)) = self.acks.next(self.c)? {
            if !m.payload.is_empty() {
                let why = String::from_utf8_lossy(&m.payload).into_owned();
                return Err(self.c.fail(Some(&self.stream), format!("the server refused a chunk: {why}"), false));
            }
        }
        Ok(())
    }
}

impl Write for ChunkSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.raw.extend_from_slice(buf);
        if let Err(e) = self.frame(false) {
            self.error = Some(e);
            return Err(std::io::Error::other("restore stopped"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Restore a snapshot backup under its own name through the restore API.
fn restore_snapshot(c: &mut Client, repo: &Repository, backup: &StreamBackup) -> Result<Restored, SourceError> {
    let name = backup.name.as_str();
    let index = repo.index().map_err(|e| repo_fail(c, name, e))?;
    let req = json!({"config": backup.info["config"], "state": backup.info["state"]});
    let resp = c.js(&format!("STREAM.RESTORE.{name}"), &req, Some(name))?;
    let deliver = resp["deliver_subject"].as_str().ok_or_else(|| c.fail(Some(name), "no deliver subject", true))?;
    let chunk = (c.max_payload / 2).clamp(64 << 10, 1 << 20);
    let mut sink = ChunkSink {
        c,
        stream: name.to_string(),
        deliver: deliver.to_string(),
        raw: Vec::new(),
        out: s2::STREAM_HEADER.to_vec(),
        chunk,
        acks: Pipeline::default(),
        error: None,
    };
    let copied = restorer::copy_content(repo, &index, &backup.data, &mut sink);
    if let Some(e) = sink.error.take() {
        return Err(e);
    }
    copied.map_err(|e| repo_fail(sink.c, name, e))?;
    sink.frame(true)?;
    while !sink.acks.is_empty() {
        sink.ack()?;
    }
    // An empty message ends the upload; its answer is the created stream (or why not).
    sink.c.set_timeout(std::time::Duration::from_secs(600))?;
    let done = sink.c.request(&sink.deliver, b"")?;
    let answer = client::parse_api_reply(&done.payload).map_err(|e| sink.c.fail(Some(name), e, true))?;
    answer.map_err(|e| sink.c.api_fail(Some(name), &e))?;
    let m = &backup.manifest;
    Ok(Restored {
        stream: name.to_string(),
        target: name.to_string(),
        how: "snapshot".into(),
        messages: m.messages,
        first_seq: m.first_seq,
        last_seq: m.last_seq,
        first_ts: m.first_ts.clone(),
        last_ts: m.last_ts.clone(),
        sequences_preserved: true,
        subjects: m.subjects.clone(),
        subjects_rewritten: false,
        notes: Vec::new(),
    })
}

/// The config to load under and the one to end with: the backup's config under the target name,
/// without mirror/sources/republish (a restored copy must not pull from, or publish to, live
/// streams); while loading, without limits, deny flags or seal.
fn configs(orig: &Value, target: &str) -> (Value, Value) {
    let mut fin = orig.clone();
    fin["name"] = target.into();
    if let Some(o) = fin.as_object_mut() {
        for k in ["mirror", "sources", "republish", "template_owner"] {
            o.remove(k);
        }
    }
    let mut load = fin.clone();
    for (k, v) in [
        ("max_msgs", json!(-1)),
        ("max_bytes", json!(-1)),
        ("max_age", json!(0)),
        ("max_msgs_per_subject", json!(-1)),
        ("deny_delete", json!(false)),
        ("deny_purge", json!(false)),
        ("sealed", json!(false)),
        ("discard_new_per_subject", json!(false)),
    ] {
        load[k] = v;
    }
    (load, fin)
}

fn subjects(cfg: &Value) -> Vec<String> {
    cfg["subjects"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// What an answer in the publish pipeline belongs to.
enum Tag {
    /// A restored message (original sequence).
    Message(u64),
    /// A gap filler, to be deleted.
    Filler,
    /// The deletion of a filler.
    Delete,
}

/// Republishes messages from a backup into a stream.
struct Importer<'a> {
    c: &'a mut Client,
    target: String,
    range: Option<TimeRange>,
    prefix: Option<String>,
    preserve: bool,
    /// The sequence the next publish will get (once known).
    next_seq: Option<u64>,
    pipeline: Pipeline<Tag>,
    fillers: Vec<u64>,
    restored: Restored,
    duplicates: u64,
}

impl<'a> Importer<'a> {
    fn run(
        c: &'a mut Client,
        repo: &Repository,
        backup: &StreamBackup,
        target: &str,
        opts: &RestoreOptions,
    ) -> Result<Restored, SourceError> {
        let (load, fin) = configs(&backup.info["config"], target);
        let (used, rewritten) = create(c, &backup.name, target, load)?;
        let m = &backup.manifest;
        let gaps = match (m.first_seq, m.last_seq) {
            (Some(f), Some(l)) => (l + 1 - f).saturating_sub(m.messages),
            _ => 0,
        };
        let mut notes = Vec::new();
        if gaps > MAX_FILLERS {
            notes.push(format!("{gaps} deleted sequences in the backup: messages renumbered from 1"));
        }
        let restored = Restored {
            stream: backup.name.clone(),
            target: target.to_string(),
            how: "republish".into(),
            messages: 0,
            first_seq: None,
            last_seq: None,
            first_ts: None,
            last_ts: None,
            sequences_preserved: gaps <= MAX_FILLERS,
            subjects: subjects(&used),
            subjects_rewritten: rewritten,
            notes,
        };
        let mut imp = Importer {
            c,
            target: target.to_string(),
            range: opts.range,
            prefix: rewritten.then(|| target.to_string()),
            preserve: gaps <= MAX_FILLERS,
            next_seq: None,
            pipeline: Pipeline::default(),
            fillers: Vec::new(),
            restored,
            duplicates: 0,
        };
        imp.load(repo, backup)?;
        imp.drain()?;
        let mut fin = fin;
        fin["subjects"] = used["subjects"].clone();
        imp.c.js(&format!("STREAM.UPDATE.{target}"), &fin, Some(target))?;
        if imp.restored.messages == 0 && opts.range.is_some() {
            imp.restored.notes.push("no message of the backup was stored in that time range".into());
        }
        if imp.duplicates > 0 {
            let n = imp.duplicates;
            imp.restored
                .notes
                .push(format!("{n} messages were dropped by the stream's duplicate window (Nats-Msg-Id)"));
        }
        Ok(imp.restored)
    }

    /// Read the backup's data and publish every message in range.
    fn load(&mut self, repo: &Repository, backup: &StreamBackup) -> Result<(), SourceError> {
        let index = repo.index().map_err(|e| repo_fail(self.c, &self.target, e))?;
        let parser = match backup.manifest.method {
            Method::Snapshot => Parse::Tar(Box::default()),
            Method::Export => Parse::Lines(Vec::new()),
        };
        let mut sink = MessageSink { parser, on: self, error: None };
        let copied = restorer::copy_content(repo, &index, &backup.data, &mut sink);
        let error = sink.error.take();
        let ended = if error.is_none() && copied.is_ok() { sink.end() } else { Ok(()) };
        if let Some(e) = error {
            return Err(e);
        }
        copied.map_err(|e| repo_fail(self.c, &backup.name, e))?;
        ended.map_err(|e| repo_fail(self.c, &backup.name, e))
    }

    fn message(&mut self, m: Message) -> Result<(), SourceError> {
        if !self.range.is_none_or(|r| r.contains(m.ts)) {
            return Ok(());
        }
        if self.preserve {
            self.keep_sequence(&m)?;
        }
        let subject = match &self.prefix {
            Some(p) => format!("{p}.{}", m.subject),
            None => m.subject.clone(),
        };
        // Publish preconditions (Nats-Expected-Stream…) held when the message was first
        // stored; against the restored stream they would refuse it.
        let hdrs = m.hdrs.as_deref().and_then(|h| proto::without_headers(h, "Nats-Expected-"));
        self.pipeline.send(self.c, &subject, hdrs.as_deref(), &m.data, Tag::Message(m.seq))?;
        self.next_seq = self.next_seq.map(|s| s + 1);
        let r = &mut self.restored;
        r.messages += 1;
        if r.first_seq.is_none() {
            (r.first_seq, r.first_ts) = (Some(m.seq), Some(rfc3339(m.ts)));
        }
        (r.last_seq, r.last_ts) = (Some(m.seq), Some(rfc3339(m.ts)));
        self.make_room()
    }

    /// When the window is full, take answers until half of it is free.
    fn make_room(&mut self) -> Result<(), SourceError> {
        if self.pipeline.len() >= WINDOW {
            while self.pipeline.len() > WINDOW / 2 {
                self.answer()?;
            }
        }
        Ok(())
    }

    /// Make the next publish get `m.seq`: purge the empty stream up to it (first message), or
    /// fill a gap with messages that are deleted again.
    fn keep_sequence(&mut self, m: &Message) -> Result<(), SourceError> {
        let Some(next) = self.next_seq else {
            if m.seq > 1 {
                let t = self.target.clone();
                self.c.js(&format!("STREAM.PURGE.{t}"), &json!({"seq": m.seq}), Some(&t))?;
            }
            self.next_seq = Some(m.seq);
            return Ok(());
        };
        if m.seq <= next {
            return Ok(());
        }
        let subject = match &self.prefix {
            Some(p) => format!("{p}.{}", m.subject),
            None => m.subject.clone(),
        };
        for _ in next..m.seq {
            self.pipeline.send(self.c, &subject, None, b"", Tag::Filler)?;
            self.make_room()?;
        }
        self.next_seq = Some(m.seq);
        self.drain_fillers()
    }

    /// Wait for the fillers' acks, then delete them (deletions are answered later).
    fn drain_fillers(&mut self) -> Result<(), SourceError> {
        while !self.pipeline.is_empty() {
            self.answer()?;
        }
        let subject = format!("$JS.API.STREAM.MSG.DELETE.{}", self.target);
        for seq in std::mem::take(&mut self.fillers) {
            let body = json!({"seq": seq, "no_erase": true}).to_string();
            self.pipeline.send(self.c, &subject, None, body.as_bytes(), Tag::Delete)?;
        }
        Ok(())
    }

    /// Handle the oldest answer in flight.
    fn answer(&mut self) -> Result<(), SourceError> {
        let Some((tag, m)) = self.pipeline.next(self.c)? else { return Ok(()) };
        let v = client::parse_api_reply(&m.payload)
            .map_err(|e| self.c.fail(Some(&self.target), e, true))?
            .map_err(|e| self.c.api_fail(Some(&self.target), &e))?;
        let seq = v["seq"].as_u64();
        match tag {
            Tag::Message(orig) => {
                if v["duplicate"] == true {
                    self.duplicates += 1;
                } else if self.preserve && seq != Some(orig) {
                    self.preserve = false;
                    self.restored.sequences_preserved = false;
                    self.restored
                        .notes
                        .push(format!("sequence {orig} was stored as {}: messages renumbered", seq.unwrap_or(0)));
                }
            }
            Tag::Filler => self.fillers.extend(seq),
            Tag::Delete => {}
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), SourceError> {
        while !self.pipeline.is_empty() {
            self.answer()?;
        }
        if !self.fillers.is_empty() {
            self.drain_fillers()?;
            while !self.pipeline.is_empty() {
                self.answer()?;
            }
        }
        Ok(())
    }
}

/// Create the target stream; when its subjects overlap another stream and it is a new name,
/// prefix them with `TARGET.`. Returns the config used and whether subjects were rewritten.
fn create(c: &mut Client, original: &str, target: &str, mut cfg: Value) -> Result<(Value, bool), SourceError> {
    let subs = subjects(&cfg);
    let prefixed: Vec<String> = if subs.is_empty() {
        vec![format!("{target}.>")] // a mirror or sourced stream: no subjects of its own
    } else {
        subs.iter().map(|s| format!("{target}.{s}")).collect()
    };
    if subs.is_empty() {
        cfg["subjects"] = json!(prefixed);
        return c.js(&format!("STREAM.CREATE.{target}"), &cfg, Some(target)).map(|_| (cfg, true));
    }
    match c.js_raw(&format!("STREAM.CREATE.{target}"), &cfg)? {
        Ok(_) => Ok((cfg, false)),
        Err(e) if e.err_code == client::SUBJECTS_OVERLAP && target != original => {
            cfg["subjects"] = json!(prefixed);
            c.js(&format!("STREAM.CREATE.{target}"), &cfg, Some(target)).map(|_| (cfg, true))
        }
        Err(e) => Err(c.api_fail(Some(target), &e)),
    }
}

enum Parse {
    Tar(Box<SnapshotReader>),
    Lines(Vec<u8>),
}

/// Turns the data file, as the restorer writes it, into messages for the importer.
struct MessageSink<'i, 'a> {
    parser: Parse,
    on: &'i mut Importer<'a>,
    error: Option<SourceError>,
}

impl MessageSink<'_, '_> {
    fn feed(&mut self, buf: &[u8]) -> Result<(), String> {
        let MessageSink { parser, on, error } = self;
        let mut deliver = |m: Message| {
            on.message(m).map_err(|e| {
                *error = Some(e);
                "restore stopped".to_string()
            })
        };
        match parser {
            Parse::Tar(r) => r.push(buf, &mut |rec| {
                deliver(Message {
                    seq: rec.seq,
                    ts: rec.ts,
                    subject: String::from_utf8_lossy(rec.subject).into_owned(),
                    hdrs: rec.headers.map(<[u8]>::to_vec),
                    data: rec.data.to_vec(),
                })
            }),
            Parse::Lines(pending) => {
                pending.extend_from_slice(buf);
                let mut start = 0;
                while let Some(n) = pending[start..].iter().position(|b| *b == b'\n') {
                    let m = Message::from_line(&pending[start..start + n])?;
                    start += n + 1;
                    deliver(m)?;
                }
                pending.drain(..start);
                Ok(())
            }
        }
    }

    /// The data ended: a snapshot must have been complete, an export must end with a newline.
    fn end(self) -> Result<(), String> {
        match self.parser {
            Parse::Tar(r) => {
                let contents = r.finish()?;
                if !contents.understood {
                    return Err("the snapshot's layout is not the one this version reads (NATS 2.9)".into());
                }
                Ok(())
            }
            Parse::Lines(p) if p.is_empty() => Ok(()),
            Parse::Lines(_) => Err("export file ends inside a line (truncated)".into()),
        }
    }
}

impl Write for MessageSink<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn load_config_relaxes_limits_and_drops_links_to_live_streams() {
        let orig = json!({"name": "ORDERS", "subjects": ["orders.>"], "max_msgs": 10, "max_age": 5, "deny_delete": true,
            "sealed": true, "mirror": {"name": "X"}, "republish": {"src": ">", "dest": "x"}, "storage": "file"});
        let (load, fin) = configs(&orig, "DRILL");
        assert_eq!(
            (load["name"].as_str(), load["max_msgs"].as_i64(), load["max_age"].as_i64()),
            (Some("DRILL"), Some(-1), Some(0))
        );
        assert_eq!((load["deny_delete"].as_bool(), load["sealed"].as_bool()), (Some(false), Some(false)));
        assert_eq!(
            (fin["max_msgs"].as_i64(), fin["deny_delete"].as_bool(), fin["sealed"].as_bool()),
            (Some(10), Some(true), Some(true))
        );
        for c in [&load, &fin] {
            assert!(c.get("mirror").is_none() && c.get("republish").is_none());
            assert_eq!(c["storage"], "file");
        }
    }

    #[test]
    fn time_ranges_include_from_and_exclude_until() {
        let r = TimeRange { from: Some(10), until: Some(20) };
        assert!(!r.contains(9) && r.contains(10) && r.contains(19) && !r.contains(20));
        assert!(TimeRange::default().contains(i64::MIN));
    }
}
