//! Backing up streams: file-storage streams through the snapshot API, memory-storage streams
//! (which the snapshot API refuses) by exporting every message.
//!
//! Each stream becomes two files in the snapshot: `STREAM.json` (the stream's info: config,
//! state, creation time) and its data: `STREAM.tar` (the snapshot's tar, S2-decoded so that
//! Lifeboat's chunking deduplicates it and zstd compresses it) or `STREAM.jsonl` (the export).
//! The data is fetched lazily, when the archiver starts reading the file, by a thread with its
//! own connection that keeps up with the server's flow control (see [`super::pipe`]).

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use lifeboat_repository::archiver::{Content, Entry, ManifestHook};
use serde_json::{json, Value};

use super::archive::SnapshotReader;
use super::client::{self, Client, Connection, Pipeline};
use super::message::{rfc3339, Message};
use super::pipe::{pipe, PipeReader, PipeWriter};
use super::{s2, Manifest, Method, StreamManifest, StreamState};
use crate::SourceError;

/// Bytes a stream's data may queue in memory before spilling to a temporary file.
const PIPE_MEMORY: usize = 64 << 20;
/// `MSG.GET` requests in flight during an export.
const EXPORT_WINDOW: usize = 256;

pub use crate::artifact::Started;

type Results = Arc<Mutex<BTreeMap<String, Result<StreamManifest, String>>>>;

/// Stream names as the server accepts them: no whitespace, `.`, `*`, `>` or path separators.
fn check_name(c: &Client, name: &str) -> Result<(), SourceError> {
    if name.is_empty() || name.chars().any(|ch| ch.is_whitespace() || ".*>/\\".contains(ch)) {
        return Err(c.fail(Some(name), "invalid stream name", false));
    }
    Ok(())
}

/// Every stream of the account (`$JS.API.STREAM.NAMES`, paged).
fn list_streams(c: &mut Client) -> Result<Vec<String>, SourceError> {
    let mut names = Vec::new();
    loop {
        let page = c.js("STREAM.NAMES", &json!({"offset": names.len()}), None)?;
        let got: Vec<String> = page["streams"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let total = page["total"].as_u64().unwrap_or(0) as usize;
        let done = got.is_empty();
        names.extend(got);
        if done || names.len() >= total {
            names.sort();
            return Ok(names);
        }
    }
}

/// The data file of a stream in the snapshot.
pub fn data_file(stream: &str, method: Method) -> String {
    match method {
        Method::Snapshot => format!("{stream}.tar"),
        Method::Export => format!("{stream}.jsonl"),
    }
}

/// Back up `streams` (every stream of the account when empty). Checks every stream exists
/// before anything is read, so a typo fails the source at once.
pub fn start(conn: &Connection, streams: &[String]) -> Result<Started, SourceError> {
    let mut c = Client::connect(conn)?;
    let names = if streams.is_empty() { list_streams(&mut c)? } else { streams.to_vec() };
    if names.is_empty() {
        return Err(c.fail(None, "the server has no streams to back up", false));
    }
    let mut infos = Vec::new();
    for name in &names {
        check_name(&c, name)?;
        let info = c.js(&format!("STREAM.INFO.{name}"), &Value::Null, Some(name))?;
        infos.push((name.clone(), info));
    }
    let results: Results = Arc::new(Mutex::new(BTreeMap::new()));
    let now = Utc::now();
    let mut entries = Vec::new();
    for (name, mut info) in infos {
        let method = if info["config"]["storage"] == "memory" { Method::Export } else { Method::Snapshot };
        if let Some(o) = info.as_object_mut() {
            o.remove("type");
        }
        let info_bytes = serde_json::to_vec_pretty(&info).map_err(|e| c.fail(Some(&name), e.to_string(), false))?;
        let node = crate::artifact::node(&format!("{name}.json"), 0o600, now);
        entries.push(Entry::File { node, content: Content::Reader(Box::new(Cursor::new(info_bytes))) });
        let job = Job { conn: conn.clone(), name: name.clone(), method, info, version: c.version.clone() };
        let node = crate::artifact::node(&data_file(&name, method), 0o600, now);
        let lazy = Lazy { job: Some(job), results: results.clone(), reader: None };
        entries.push(Entry::File { node, content: Content::Reader(Box::new(lazy)) });
    }
    let (server, version) = (c.server.clone(), c.version.clone());
    let finish: ManifestHook = Arc::new(move || {
        let got = results.lock().map_err(|_| "nats: result lock poisoned".to_string())?;
        let mut streams = BTreeMap::new();
        for name in &names {
            match got.get(name) {
                Some(Ok(m)) => {
                    streams.insert(name.clone(), m.clone());
                }
                Some(Err(e)) => return Err(format!("nats {server} stream {name}: {e}")),
                None => return Err(format!("nats {server} stream {name}: its data was not read")),
            }
        }
        let m = Manifest { server: server.clone(), server_version: version.clone(), streams };
        serde_json::to_value(m).map(Some).map_err(|e| e.to_string())
    });
    Ok(Started { paths: vec!["/nats".into()], entries: entries.into_iter(), finish })
}

/// What one stream's data thread needs.
struct Job {
    conn: Connection,
    name: String,
    method: Method,
    info: Value,
    version: String,
}

/// A reader that starts its stream's data thread on the first read.
struct Lazy {
    job: Option<Job>,
    results: Results,
    reader: Option<PipeReader>,
}

impl Read for Lazy {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if let Some(job) = self.job.take() {
            let (w, r) = pipe(PIPE_MEMORY);
            let results = self.results.clone();
            std::thread::Builder::new()
                .name(format!("nats-{}", job.name))
                .spawn(move || run(job, w, results))
                .map_err(std::io::Error::other)?;
            self.reader = Some(r);
        }
        match &mut self.reader {
            Some(r) => r.read(out),
            None => Ok(0),
        }
    }
}

/// The data thread: fetch, record the stream's manifest entry (or its error), end the pipe.
fn run(job: Job, mut w: PipeWriter, results: Results) {
    let started = Utc::now();
    let t0 = Instant::now();
    let outcome = match job.method {
        Method::Snapshot => snapshot(&job, &mut w),
        Method::Export => export(&job, &mut w),
    };
    let entry = outcome.map(|(contents, state, archive_bytes)| {
        let cfg = &job.info["config"];
        let subjects =
            cfg["subjects"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect());
        StreamManifest {
            method: job.method,
            storage: cfg["storage"].as_str().unwrap_or("file").to_string(),
            info_file: format!("{}.json", job.name),
            data_file: data_file(&job.name, job.method),
            counted_in_backup: contents.exact,
            messages: contents.messages,
            first_seq: contents.first.map(|f| f.0),
            last_seq: contents.last.map(|l| l.0),
            first_ts: contents.first.map(|f| rfc3339(f.1)),
            last_ts: contents.last.map(|l| rfc3339(l.1)),
            bytes: contents.bytes,
            subjects: subjects.unwrap_or_default(),
            consumers: state.consumers,
            state_at_start: state,
            server_version: job.version.clone(),
            started,
            duration_seconds: t0.elapsed().as_secs_f64(),
            archive_bytes,
        }
    });
    let message = entry.as_ref().err().cloned();
    if let Ok(mut g) = results.lock() {
        g.insert(job.name.clone(), entry);
    }
    w.close(message.map_or(Ok(()), Err));
}

/// Counts of what was backed up.
#[derive(Default)]
struct Counted {
    /// Read from the backup itself (false: taken from the server's state at the start).
    exact: bool,
    messages: u64,
    first: Option<(u64, i64)>,
    last: Option<(u64, i64)>,
    bytes: u64,
}

fn state_of(v: &Value) -> StreamState {
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    StreamState {
        messages: n("messages"),
        bytes: n("bytes"),
        first_seq: n("first_seq"),
        last_seq: n("last_seq"),
        consumers: n("consumer_count"),
    }
}

/// Snapshot a file stream: request the snapshot, ack every chunk as it arrives, S2-decode it,
/// count the live messages in its tar and pass the tar on.
fn snapshot(job: &Job, w: &mut PipeWriter) -> Result<(Counted, StreamState, u64), String> {
    let name = job.name.as_str();
    let mut c = Client::connect(&job.conn).map_err(|e| e.to_string())?;
    let inbox = c.new_inbox();
    let (reply, deliver) = (format!("{inbox}.r"), format!("{inbox}.d"));
    // Literal subscriptions: the server waits for interest in the deliver subject, and only a
    // literal one is noticed at once (a wildcard costs a 2 s wait, measured on 2.9.10).
    for s in [&reply, &deliver] {
        c.subscribe(s).map_err(|e| e.to_string())?;
    }
    let chunk = (c.max_payload / 2).clamp(64 << 10, 1 << 20);
    let req = json!({"deliver_subject": deliver, "no_consumers": false, "chunk_size": chunk, "jsck": false});
    c.publish(&format!("$JS.API.STREAM.SNAPSHOT.{name}"), Some(&reply), None, req.to_string().as_bytes())
        .and_then(|_| c.flush())
        .map_err(|e| e.to_string())?;
    let mut decoder = s2::Decoder::default();
    let mut tar = SnapshotReader::default();
    let (mut state, mut eof, mut archive) = (None, false, 0u64);
    while state.is_none() || !eof {
        let m = c.next_msg().map_err(|e| e.to_string())?;
        if m.subject == reply {
            let v = client::parse_api_reply(&m.payload)?.map_err(|e| c.api_fail(Some(name), &e).to_string())?;
            state = Some(v["state"].clone());
        } else if m.subject == deliver {
            if m.reply.is_none() && m.payload.is_empty() {
                if let Some((code, desc)) = m.status() {
                    return Err(snapshot_status(code, &desc));
                }
                eof = true;
                continue;
            }
            archive += m.payload.len() as u64;
            decoder.push(&m.payload, &mut |plain| {
                tar.push(plain, &mut |_| Ok(()))?;
                w.write(plain)
            })?;
            if let Some(ack) = &m.reply {
                // Ack at once: the server's window is 8 MiB and it gives up after 2 s.
                c.publish(ack, None, None, b"").and_then(|_| c.flush()).map_err(|e| e.to_string())?;
            }
        }
    }
    decoder.finish()?;
    let contents = tar.finish()?;
    let state = state.unwrap_or_default();
    let counted = if contents.understood {
        let (messages, first, last, bytes) = (contents.messages, contents.first, contents.last, contents.bytes);
        Counted { exact: true, messages, first, last, bytes }
    } else {
        // Another server version's layout: the snapshot is still good for a restore under its
        // own name, but the counts can only be the server's (taken before the blocks were read).
        counted_from_state(&state)
    };
    Ok((counted, state_of(&state), archive))
}

fn counted_from_state(v: &Value) -> Counted {
    let at = |seq: &str, ts: &str| {
        let t = v[ts].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        Some((v[seq].as_u64()?, t?.timestamp_nanos_opt()?))
    };
    let st = state_of(v);
    let some = st.messages > 0;
    Counted {
        exact: false,
        messages: st.messages,
        first: at("first_seq", "first_ts").filter(|_| some),
        last: at("last_seq", "last_ts").filter(|_| some),
        bytes: st.bytes,
    }
}

fn snapshot_status(code: u16, desc: &str) -> String {
    match code {
        408 => "the snapshot was aborted: no flow-control ack reached the server in time (408)".into(),
        _ => format!("the snapshot ended with status {code} {desc}"),
    }
}

/// Export a memory stream: every message from the first sequence to the last at the start,
/// with pipelined `MSG.GET` requests (`next_by_subj` skips deleted sequences).
fn export(job: &Job, w: &mut PipeWriter) -> Result<(Counted, StreamState, u64), String> {
    let name = job.name.as_str();
    let mut c = Client::connect(&job.conn).map_err(|e| e.to_string())?;
    let info = c.js(&format!("STREAM.INFO.{name}"), &Value::Null, Some(name)).map_err(|e| e.to_string())?;
    let state = state_of(&info["state"]);
    let (end, mut next) = (state.last_seq, state.first_seq.max(1));
    let mut pipeline: Pipeline<u64> = Pipeline::default();
    let mut counted = Counted { exact: true, ..Counted::default() };
    let (mut buf, mut done, mut written) = (Vec::with_capacity(1 << 18), false, 0u64);
    let subject = format!("$JS.API.STREAM.MSG.GET.{name}");
    loop {
        // Refill only when half the window is answered: sends and reads then go in batches.
        if pipeline.len() <= EXPORT_WINDOW / 2 && state.messages > 0 {
            while !done && pipeline.len() < EXPORT_WINDOW && next <= end {
                let req = json!({"seq": next, "next_by_subj": ">"}).to_string();
                pipeline.send(&mut c, &subject, None, req.as_bytes(), next).map_err(|e| e.to_string())?;
                next += 1;
            }
        }
        let Some((_, m)) = pipeline.next(&mut c).map_err(|e| e.to_string())? else { break };
        let msg = match client::parse_api_reply(&m.payload)? {
            Ok(v) => Message::from_api(&v["message"])?,
            Err(e) if e.err_code == client::NO_MESSAGE_FOUND => {
                done = true; // nothing at or after this sequence any more
                continue;
            }
            Err(e) => return Err(c.api_fail(Some(name), &e).to_string()),
        };
        if msg.seq > end {
            done = true; // published after the export started
            continue;
        }
        if counted.last.is_some_and(|(l, _)| msg.seq <= l) {
            continue; // answer to a request inside a gap: already exported
        }
        next = next.max(msg.seq + 1);
        count(&mut counted, &msg);
        buf.extend_from_slice(&msg.to_line());
        if buf.len() >= 1 << 18 {
            written += buf.len() as u64;
            w.write(&buf)?;
            buf.clear();
        }
    }
    written += buf.len() as u64;
    w.write(&buf)?;
    Ok((counted, state, written))
}

fn count(c: &mut Counted, m: &Message) {
    c.messages += 1;
    // A memory store accounts subject + headers + data + 16 bytes per message.
    c.bytes += (m.subject.len() + m.hdrs.as_ref().map_or(0, Vec::len) + m.data.len() + 16) as u64;
    c.first.get_or_insert((m.seq, m.ts));
    c.last = Some((m.seq, m.ts));
}
