//! RDB mode: the whole dataset as one point-in-time RDB, read over the replication protocol the
//! way `redis-cli --rdb` does it — AUTH, `REPLCONF capa eof` (so a diskless server may stream),
//! `REPLCONF rdb-only 1` (7.0+: no replication stream afterwards; an error from older servers is
//! ignored), `SYNC`; newline keepalives are skipped until the payload header, which is either
//! `$<len>` (the server wrote the RDB to its disk first) or `$EOF:<40-byte mark>` (diskless: the
//! payload ends where the mark appears).
//!
//! The payload streams into the repository as `dump.rdb` without a temporary copy; on the way a
//! walker counts keys per database ([`super::rdb`]) and the CRC-64 trailer is checked, so a
//! damaged transfer fails the backup instead of recording a snapshot.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read};

use chrono::Utc;
use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use super::rdb::{self, Checked, Checksum, Summary, TrailerCheck};
use super::{err, Client, Connection, Manifest, Started};
use crate::SourceError;

/// File name of the dump in the snapshot.
pub const RDB_FILE: &str = "dump.rdb";

/// What RDB mode records besides the keys per database.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RdbManifest {
    /// File name of the dump in the snapshot.
    pub file: String,
    /// Size of the dump.
    pub bytes: u64,
    /// RDB format version.
    pub rdb_version: u32,
    /// `disk` (`$<len>` framing) or `diskless` (`$EOF:` framing).
    pub transfer: String,
    /// `ok` (trailer checked) or `disabled` (server runs with `rdbchecksum no`).
    pub checksum: String,
    /// Replication id of the server when the dump began.
    pub repl_id: Option<String>,
    /// Replication offset the dump corresponds to.
    pub repl_offset: Option<i64>,
    /// Keys with an expiry, per database.
    pub expires: BTreeMap<u32, u64>,
    /// How the key counts were obtained: `walked` (every key of the stream counted) or
    /// `resizedb hints` (the walk met an unknown value type; see `note`).
    pub counted: String,
    /// Why the counts are only hints, when they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How the server announced the payload.
enum Framing {
    Length(u64),
    Mark([u8; 40]),
}

/// Ask for an RDB and read up to the payload header.
fn request(conn: &Connection) -> Result<(Client, Framing), SourceError> {
    let mut c = Client::connect(conn)?;
    // Both are hints: servers that do not know them (or ACLs without +replconf) answer -ERR.
    c.call(&[b"REPLCONF", b"capa", b"eof"])?;
    c.call(&[b"REPLCONF", b"rdb-only", b"1"])?;
    c.send(&[b"SYNC"])?;
    loop {
        let mut line = Vec::new();
        c.r.read_until(b'\n', &mut line).map_err(|e| err(&c.target, format!("waiting for the RDB: {e}")))?;
        if line == b"\n" {
            continue; // keepalive while the server forks or waits for more replicas
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let framing = if let Some(mark) = text.strip_prefix("$EOF:") {
            let mark: [u8; 40] =
                mark.as_bytes().try_into().map_err(|_| err(&c.target, format!("bad EOF mark in {text:?}")))?;
            Framing::Mark(mark)
        } else if let Some(n) = text.strip_prefix('$').and_then(|n| n.parse().ok()) {
            Framing::Length(n)
        } else if let Some(e) = text.strip_prefix('-') {
            let hint = if e.starts_with("NOPERM") { " (the user needs +sync and +replconf)" } else { "" };
            return Err(err(&c.target, format!("SYNC refused: {e}{hint}")));
        } else if line.is_empty() {
            return Err(err(&c.target, "connection closed before the RDB began"));
        } else {
            return Err(err(&c.target, format!("unexpected reply to SYNC: {text:?}")));
        };
        return Ok((c, framing));
    }
}

/// The payload bytes, without framing.
struct Payload {
    client: Client,
    framing: Framing,
    /// Length framing: bytes still to come.
    left: u64,
    /// Mark framing: bytes received but not released (they could be the start of the mark).
    held: Vec<u8>,
    ready: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Payload {
    fn new(client: Client, framing: Framing) -> Payload {
        let left = if let Framing::Length(n) = framing { n } else { 0 };
        Payload { client, framing, left, held: Vec::new(), ready: Vec::new(), pos: 0, done: false }
    }

    /// Mark framing: read more, release what cannot be part of the mark, stop at the mark.
    fn fill(&mut self, mark: &[u8; 40]) -> io::Result<()> {
        let mut buf = vec![0u8; 1 << 16];
        let n = self.client.r.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the end of the RDB"));
        }
        let from = self.held.len().saturating_sub(39);
        self.held.extend_from_slice(&buf[..n]);
        let found = (from..self.held.len().saturating_sub(39))
            .find(|&i| self.held[i] == mark[0] && self.held[i..].starts_with(mark));
        let keep = match found {
            Some(at) => {
                self.done = true;
                self.held.truncate(at);
                0
            }
            None => 39.min(self.held.len()),
        };
        self.ready = self.held.drain(..self.held.len() - keep).collect();
        self.pos = 0;
        Ok(())
    }
}

impl Read for Payload {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Framing::Length(_) = self.framing {
            let want = out.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
            if want == 0 {
                return Ok(0);
            }
            let n = self.client.r.read(&mut out[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the end of the RDB",
                ));
            }
            self.left -= n as u64;
            return Ok(n);
        }
        let Framing::Mark(mark) = self.framing else { return Ok(0) };
        while self.pos >= self.ready.len() {
            if self.done {
                return Ok(0);
            }
            self.fill(&mark)?;
        }
        let n = out.len().min(self.ready.len() - self.pos);
        out[..n].copy_from_slice(&self.ready[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Passes everything read through it on to the archiver.
struct Tee<R> {
    inner: R,
    tx: Sender<Result<Vec<u8>, String>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.tx.send(Ok(buf[..n].to_vec())).is_err() {
            return Err(io::Error::other("the backup stopped reading"));
        }
        Ok(n)
    }
}

/// What the transfer thread found.
struct Transferred {
    summary: Summary,
    checksum: Checksum,
    bytes: u64,
}

/// Read the payload through the walker and on to the archiver; drain what the walker left.
fn pump(payload: Payload, tx: &Sender<Result<Vec<u8>, String>>) -> Result<Transferred, String> {
    let checked = Checked { inner: payload, check: TrailerCheck::default() };
    let mut tee = Tee { inner: checked, tx: tx.clone() };
    let summary = rdb::walk(&mut tee, Utc::now().timestamp_millis())?;
    io::copy(&mut tee, &mut io::sink()).map_err(|e| format!("reading the RDB: {e}"))?;
    let check = &tee.inner.check;
    Ok(Transferred { summary, checksum: check.result(), bytes: check.bytes() })
}

/// Turn the transfer's findings into the manifest (or the reason the backup must fail).
fn manifest(t: Transferred, transfer: &str) -> Result<Manifest, String> {
    let checksum = match t.checksum {
        Checksum::Ok => "ok",
        Checksum::Disabled => "disabled",
        Checksum::Mismatch { stored, computed } => {
            return Err(format!(
                "RDB checksum mismatch (stored {stored:016x}, computed {computed:016x}): the transfer is damaged"
            ))
        }
    };
    let s = t.summary;
    let rdb = RdbManifest {
        file: RDB_FILE.into(),
        bytes: t.bytes,
        rdb_version: s.version,
        transfer: transfer.into(),
        checksum: checksum.into(),
        repl_id: s.aux.get("repl-id").cloned(),
        repl_offset: s.aux.get("repl-offset").and_then(|v| v.parse().ok()),
        expires: s.expires.clone(),
        counted: if s.stopped.is_some() { "resizedb hints" } else { "walked" }.into(),
        note: s.stopped.clone(),
    };
    Ok(Manifest {
        mode: "rdb".into(),
        redis_version: s.aux.get("redis-ver").cloned().unwrap_or_default(),
        pattern: None,
        keys: s.key_counts(),
        files: BTreeMap::new(),
        rdb: Some(rdb),
    })
}

/// Back up the whole server as one RDB (RDB mode).
pub fn start_rdb(conn: &Connection) -> Result<Started, SourceError> {
    let (client, framing) = request(conn)?;
    let target = client.target.clone();
    let transfer = if matches!(framing, Framing::Mark(_)) { "diskless" } else { "disk" };
    let (tx, rx) = crossbeam_channel::bounded(32);
    let payload = Payload::new(client, framing);
    let handle = std::thread::Builder::new()
        .name("redis-rdb".into())
        .spawn(move || {
            let r = pump(payload, &tx);
            if let Err(e) = &r {
                let _ = tx.send(Err(e.clone()));
            }
            r
        })
        .map_err(|e| err(&target, e))?;
    let node = crate::artifact::node(RDB_FILE, 0o600, Utc::now());
    Ok(crate::artifact::from_thread(
        format!("/{RDB_FILE}"),
        node,
        rx,
        handle,
        "the RDB transfer thread",
        target,
        move |t| serde_json::to_value(manifest(t, transfer)?).map_err(|e| e.to_string()),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn payload_of(wire: &[u8], framing: Framing) -> Payload {
        let r: Box<dyn Read + Send> = Box::new(io::Cursor::new(wire.to_vec()));
        let client = Client { w: Box::new(io::sink()), r: io::BufReader::with_capacity(7, r), target: "t".into() };
        Payload::new(client, framing)
    }

    #[test]
    fn both_framings_yield_exactly_the_payload() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mark = *b"0123456789abcdef0123456789abcdef01234567";
        let mut wire = body.clone();
        wire.extend_from_slice(&mark);
        wire.extend_from_slice(b"\r\nlater replication traffic");
        let mut got = Vec::new();
        payload_of(&wire, Framing::Mark(mark)).read_to_end(&mut got).unwrap();
        assert_eq!(got, body);
        let mut got = Vec::new();
        payload_of(&wire, Framing::Length(1000)).read_to_end(&mut got).unwrap();
        assert_eq!(got, &body[..1000]);
        let e = payload_of(&body, Framing::Mark(mark)).read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
