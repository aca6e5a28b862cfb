//! The `redis` source, in two modes.
//!
//! **Logical** (the default): every key of the chosen databases as `DUMP` payload plus its
//! expiry, read with `SCAN` (pipelined `DUMP`/`PTTL` per batch), and restored into a *running*
//! server with `RESTORE key ttl payload REPLACE ABSTTL`. Verification compares keys per
//! database with the manifest. ACL permissions: backup `+scan +dump +pttl +select +info +ping`
//! (and `+auth`); restore `+restore +select +dbsize +scan +ping`. `SCAN` is not a point-in-time
//! view: keys written during the backup may or may not be included.
//!
//! Stream format of one database (`dbN.keys`): a header line `LIFEBOAT-REDIS-KEYS 1\n`, then per
//! key: key length (u32 LE), key, absolute expiry in Unix ms (i64 LE, 0 = none), payload length
//! (u32 LE), payload.
//!
//! **RDB** ([`start_rdb`]): the whole server as one point-in-time RDB over the replication
//! protocol (what `redis-cli --rdb` does), restored as a file for a stopped server
//! ([`restore_rdb`]) and verified by loading it into a throwaway server ([`verify_rdb`]).
//! ACL permissions: `+sync +replconf +ping` (and `+auth`).

mod file;
pub mod rdb;
mod sync;

pub use file::{restore_rdb, verify_rdb, RdbRestore, RdbVerification, Throwaway};
pub use sync::{start_rdb, RdbManifest, RDB_FILE};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chrono::Utc;
use lifeboat_format::Node;
use lifeboat_repository::archiver::{Content, Entry};
use lifeboat_repository::{restorer, Repository};
use serde::{Deserialize, Serialize};

use crate::SourceError;

/// How to reach the server.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Host; a path starting with `/` is a unix socket (then `port` is not used).
    pub host: String,
    /// Port.
    pub port: u16,
    /// ACL user (with `password`).
    pub user: Option<String>,
    /// Password (already substituted); sent with AUTH, never logged.
    pub password: Option<String>,
}

impl Default for Connection {
    fn default() -> Self {
        Connection { host: "127.0.0.1".into(), port: 6379, user: None, password: None }
    }
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR …`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$n` (None for `$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*n` (None for `*-1`).
    Array(Option<Vec<Reply>>),
}

/// A minimal RESP2 client: enough for SCAN/DUMP/PTTL/RESTORE/SELECT/INFO/DBSIZE and the start
/// of a replication transfer.
pub struct Client {
    w: Box<dyn Write + Send>,
    r: BufReader<Box<dyn Read + Send>>,
    target: String,
}

fn err(target: &str, m: impl std::fmt::Display) -> SourceError {
    SourceError::Database { target: target.to_string(), message: m.to_string() }
}

impl Client {
    /// Connect (and authenticate).
    pub fn connect(c: &Connection) -> Result<Client, SourceError> {
        if c.host.starts_with('/') {
            let mut cl = Client::connect_unix(std::path::Path::new(&c.host))?;
            cl.login(c)?;
            return Ok(cl);
        }
        let target = format!("redis {}:{}", c.host, c.port);
        let addr = (c.host.as_str(), c.port);
        let stream = std::net::ToSocketAddrs::to_socket_addrs(&addr)
            .map_err(|e| err(&target, e))?
            .find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
            .ok_or_else(|| err(&target, "connection refused or timed out (is the server running?)"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| err(&target, e))?;
        let r: Box<dyn Read + Send> = Box::new(stream.try_clone().map_err(|e| err(&target, e))?);
        let mut cl = Client { w: Box::new(stream), r: BufReader::with_capacity(1 << 16, r), target };
        cl.login(c)?;
        Ok(cl)
    }

    /// Connect to a server's unix socket (no authentication).
    pub fn connect_unix(path: &std::path::Path) -> Result<Client, SourceError> {
        let target = format!("redis {}", path.display());
        let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| err(&target, e))?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| err(&target, e))?;
        let r: Box<dyn Read + Send> = Box::new(stream.try_clone().map_err(|e| err(&target, e))?);
        Ok(Client { w: Box::new(stream), r: BufReader::with_capacity(1 << 16, r), target })
    }

    /// AUTH when a password is configured, then PING.
    fn login(&mut self, c: &Connection) -> Result<(), SourceError> {
        let cl = self;
        if let Some(pw) = &c.password {
            let reply = match &c.user {
                Some(u) => cl.call(&[b"AUTH", u.as_bytes(), pw.as_bytes()])?,
                None => cl.call(&[b"AUTH", pw.as_bytes()])?,
            };
            if let Reply::Error(e) = reply {
                return Err(err(&cl.target, format!("authentication failed: {e}")));
            }
        }
        match cl.call(&[b"PING"])? {
            Reply::Error(e) => Err(err(&cl.target, e)),
            _ => Ok(()),
        }
    }

    fn send(&mut self, args: &[&[u8]]) -> Result<(), SourceError> {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&buf).map_err(|e| err(&self.target, e))
    }

    fn read(&mut self) -> Result<Reply, SourceError> {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line).map_err(|e| err(&self.target, e))?;
        if line.len() < 3 {
            return Err(err(&self.target, "connection closed"));
        }
        let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let num = || text.parse::<i64>().map_err(|_| err(&self.target, format!("bad reply {text:?}")));
        Ok(match line[0] {
            b'+' => Reply::Simple(text),
            b'-' => Reply::Error(text),
            b':' => Reply::Int(num()?),
            b'$' => {
                let n = num()?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    // Read what arrives rather than trusting the length for an allocation (a
                    // bad or hostile reply could claim gigabytes).
                    let want = (n as u64).saturating_add(2);
                    let mut v = Vec::with_capacity(want.min(1 << 20) as usize);
                    (&mut self.r).take(want).read_to_end(&mut v).map_err(|e| err(&self.target, e))?;
                    if (v.len() as u64) < want {
                        return Err(err(&self.target, "connection closed in the middle of a reply"));
                    }
                    v.truncate(n as usize);
                    Reply::Bulk(Some(v))
                }
            }
            b'*' => {
                let n = num()?;
                if n < 0 {
                    Reply::Array(None)
                } else {
                    let mut items = Vec::with_capacity((n as usize).min(1024));
                    for _ in 0..n {
                        items.push(self.read()?);
                    }
                    Reply::Array(Some(items))
                }
            }
            _ => return Err(err(&self.target, format!("unexpected reply {text:?}"))),
        })
    }

    /// Send one command and read its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Reply, SourceError> {
        self.send(args)?;
        self.read()
    }

    fn ok(&mut self, args: &[&[u8]]) -> Result<Reply, SourceError> {
        match self.call(args)? {
            Reply::Error(e) => Err(err(&self.target, format!("{}: {e}", String::from_utf8_lossy(args[0])))),
            r => Ok(r),
        }
    }

    fn select(&mut self, db: u32) -> Result<(), SourceError> {
        self.ok(&[b"SELECT", db.to_string().as_bytes()]).map(|_| ())
    }

    /// Keys per database from `INFO keyspace`.
    pub fn keyspace(&mut self) -> Result<BTreeMap<u32, u64>, SourceError> {
        let Reply::Bulk(Some(info)) = self.ok(&[b"INFO", b"keyspace"])? else { return Ok(BTreeMap::new()) };
        let mut out = BTreeMap::new();
        for line in String::from_utf8_lossy(&info).lines() {
            if let Some((db, rest)) = line.strip_prefix("db").and_then(|l| l.split_once(':')) {
                let keys = rest.split(',').find_map(|kv| kv.strip_prefix("keys=")).and_then(|k| k.parse().ok());
                if let (Ok(db), Some(keys)) = (db.parse(), keys) {
                    out.insert(db, keys);
                }
            }
        }
        Ok(out)
    }

    /// The server's version (`INFO server`), empty when unknown.
    pub fn version(&mut self) -> String {
        match self.call(&[b"INFO", b"server"]) {
            Ok(Reply::Bulk(Some(v))) => String::from_utf8_lossy(&v)
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .unwrap_or("")
                .trim()
                .to_string(),
            _ => String::new(),
        }
    }

    /// Count keys in `db` matching `pattern` (all keys: `DBSIZE`).
    pub fn count(&mut self, db: u32, pattern: Option<&str>) -> Result<u64, SourceError> {
        self.select(db)?;
        let Some(p) = pattern else {
            return match self.ok(&[b"DBSIZE"])? {
                Reply::Int(n) => Ok(n as u64),
                r => Err(err(&self.target, format!("DBSIZE: {r:?}"))),
            };
        };
        let mut cursor = b"0".to_vec();
        let mut n = 0;
        loop {
            let (next, keys) = self.scan(&cursor, Some(p))?;
            n += keys.len() as u64;
            if next == b"0" {
                return Ok(n);
            }
            cursor = next;
        }
    }

    fn scan(&mut self, cursor: &[u8], pattern: Option<&str>) -> Result<(Vec<u8>, Vec<Vec<u8>>), SourceError> {
        let reply = match pattern {
            Some(p) => self.ok(&[b"SCAN", cursor, b"MATCH", p.as_bytes(), b"COUNT", b"1000"])?,
            None => self.ok(&[b"SCAN", cursor, b"COUNT", b"1000"])?,
        };
        let Reply::Array(Some(mut parts)) = reply else { return Err(err(&self.target, "bad SCAN reply")) };
        let keys = match parts.pop() {
            Some(Reply::Array(Some(k))) => {
                k.into_iter().filter_map(|k| if let Reply::Bulk(Some(k)) = k { Some(k) } else { None }).collect()
            }
            _ => Vec::new(),
        };
        let next = match parts.pop() {
            Some(Reply::Bulk(Some(c))) => c,
            _ => return Err(err(&self.target, "bad SCAN cursor")),
        };
        Ok((next, keys))
    }
}

/// What the redis source records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// `logical` or `rdb`.
    pub mode: String,
    /// Server version.
    pub redis_version: String,
    /// Key pattern backed up (`None` = all keys).
    pub pattern: Option<String>,
    /// Keys per database (logical: written; RDB: in the dump).
    pub keys: BTreeMap<u32, u64>,
    /// File per database in the snapshot (logical mode).
    #[serde(default)]
    pub files: BTreeMap<u32, String>,
    /// The dump and what walking it found (RDB mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdb: Option<RdbManifest>,
}

const MAGIC: &[u8] = b"LIFEBOAT-REDIS-KEYS 1\n";

/// Streams one database's keys in the format above, pulling `SCAN` batches on demand.
struct KeyStream {
    client: Client,
    pattern: Option<String>,
    cursor: Option<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl KeyStream {
    fn refill(&mut self) -> Result<(), SourceError> {
        self.buf.clear();
        self.pos = 0;
        while self.buf.is_empty() {
            let Some(cursor) = self.cursor.take() else { return Ok(()) };
            let (next, keys) = self.client.scan(&cursor, self.pattern.as_deref())?;
            if next != b"0" {
                self.cursor = Some(next);
            }
            // Pipeline DUMP + PTTL for the whole batch: one round trip instead of two per key.
            for k in &keys {
                self.client.send(&[b"DUMP", k])?;
                self.client.send(&[b"PTTL", k])?;
            }
            let now = Utc::now().timestamp_millis();
            for k in keys {
                let dump = self.client.read()?;
                let ttl = self.client.read()?;
                let (Reply::Bulk(Some(payload)), Reply::Int(pttl)) = (dump, ttl) else { continue }; // deleted meanwhile
                let expire = if pttl > 0 { now + pttl } else { 0 };
                self.buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
                self.buf.extend_from_slice(&k);
                self.buf.extend_from_slice(&expire.to_le_bytes());
                self.buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                self.buf.extend_from_slice(&payload);
                self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

impl Read for KeyStream {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() {
            self.refill().map_err(std::io::Error::other)?;
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

pub use crate::artifact::Started;

/// Back up `databases` (all non-empty ones when empty) of the server, keys matching `pattern`.
pub fn start(conn: &Connection, databases: &[u32], pattern: Option<&str>) -> Result<Started, SourceError> {
    let mut probe = Client::connect(conn)?;
    let version = probe.version();
    let dbs: Vec<u32> = if databases.is_empty() { probe.keyspace()?.into_keys().collect() } else { databases.to_vec() };
    let mut entries = Vec::new();
    let mut counters = BTreeMap::new();
    let mut files = BTreeMap::new();
    let now = Utc::now();
    for db in dbs {
        let mut client = Client::connect(conn)?;
        client.select(db)?;
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stream = KeyStream {
            client,
            pattern: pattern.map(String::from),
            cursor: Some(b"0".to_vec()),
            buf: MAGIC.to_vec(),
            pos: 0,
            count: count.clone(),
        };
        let file = format!("db{db}.keys");
        let node = crate::artifact::node(&file, 0o600, now);
        entries.push(Entry::File { node, content: Content::Reader(Box::new(stream)) });
        counters.insert(db, count);
        files.insert(db, file);
    }
    let pattern = pattern.map(String::from);
    let finish: lifeboat_repository::archiver::ManifestHook = std::sync::Arc::new(move || {
        let keys = counters.iter().map(|(db, c)| (*db, c.load(std::sync::atomic::Ordering::Relaxed))).collect();
        let m = Manifest {
            mode: "logical".into(),
            redis_version: version.clone(),
            pattern: pattern.clone(),
            keys,
            files: files.clone(),
            rdb: None,
        };
        serde_json::to_value(m).map(Some).map_err(|e| e.to_string())
    });
    Ok(Started { paths: vec!["/redis".into()], entries: entries.into_iter(), finish })
}

/// Restore keys into a running server: database `N` of the backup goes to `target_db` when
/// given, else to `N`. A non-empty target database is refused unless `overwrite` (then keys are
/// replaced; other keys stay). Returns keys restored per database.
pub fn restore(
    repo: &Repository,
    snapshot_files: &[(u32, Node)],
    conn: &Connection,
    target_db: Option<u32>,
    pattern: Option<&str>,
    overwrite: bool,
) -> Result<BTreeMap<u32, u64>, SourceError> {
    let mut client = Client::connect(conn)?;
    if target_db.is_some() && snapshot_files.len() > 1 {
        return Err(err(
            &client.target,
            format!(
                "the backup holds {} databases; restore without a database index to put each back in its own",
                snapshot_files.len()
            ),
        ));
    }
    // Check every target before touching any, so a refusal changes nothing.
    if !overwrite {
        for (db, _) in snapshot_files {
            let to = target_db.unwrap_or(*db);
            if client.count(to, pattern)? > 0 {
                return Err(err(
                    &client.target,
                    format!("database {to} already has keys (use --overwrite to replace them)"),
                ));
            }
        }
    }
    let index = repo.index().map_err(|e| err(&client.target, e))?;
    let mut restored = BTreeMap::new();
    for (db, node) in snapshot_files {
        let to = target_db.unwrap_or(*db);
        client.select(to)?;
        let mut data = Vec::new();
        restorer::copy_content(repo, &index, node, &mut data).map_err(|e| err(&client.target, e))?;
        let body = data.strip_prefix(MAGIC).ok_or_else(|| err(&client.target, "not a Lifeboat redis key stream"))?;
        let n = load(&mut client, body)?;
        restored.insert(to, n);
    }
    Ok(restored)
}

/// The absolute expiry times (Unix ms) of the keys with one in a logical backup file: a key
/// whose expiry has passed is not restored (`RESTORE … ABSTTL` with a past time creates
/// nothing), so a verification long after the backup expects fewer keys.
pub fn expiries(repo: &Repository, node: &Node) -> Result<Vec<i64>, SourceError> {
    let bad = |m: String| err(&format!("backup file {}", node.name), m);
    let index = repo.index().map_err(|e| bad(e.to_string()))?;
    let mut data = Vec::new();
    restorer::copy_content(repo, &index, node, &mut data).map_err(|e| bad(e.to_string()))?;
    let body = data.strip_prefix(MAGIC).ok_or_else(|| bad("not a Lifeboat redis key stream".into()))?;
    let mut out = Vec::new();
    let mut at = 0usize;
    let field = |at: usize, n: usize| body.get(at..at + n).ok_or_else(|| bad("truncated key stream".into()));
    while at < body.len() {
        let kl = u32::from_le_bytes(field(at, 4)?.try_into().unwrap_or_default()) as usize;
        let expire = i64::from_le_bytes(field(at + 4 + kl, 8)?.try_into().unwrap_or_default());
        let pl = u32::from_le_bytes(field(at + 12 + kl, 4)?.try_into().unwrap_or_default()) as usize;
        field(at + 16 + kl, pl)?;
        if expire > 0 {
            out.push(expire);
        }
        at += 16 + kl + pl;
    }
    Ok(out)
}

fn load(client: &mut Client, mut body: &[u8]) -> Result<u64, SourceError> {
    let bad = |c: &Client| err(&c.target, "truncated key stream");
    let mut pending = 0u64;
    let mut total = 0u64;
    let take = |b: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        let (h, t) = (b.get(..n)?.to_vec(), b.get(n..)?);
        *b = t;
        Some(h)
    };
    while !body.is_empty() {
        let kl = u32::from_le_bytes(take(&mut body, 4).ok_or_else(|| bad(client))?.try_into().map_err(|_| bad(client))?)
            as usize;
        let key = take(&mut body, kl).ok_or_else(|| bad(client))?;
        let expire =
            i64::from_le_bytes(take(&mut body, 8).ok_or_else(|| bad(client))?.try_into().map_err(|_| bad(client))?);
        let pl = u32::from_le_bytes(take(&mut body, 4).ok_or_else(|| bad(client))?.try_into().map_err(|_| bad(client))?)
            as usize;
        let payload = take(&mut body, pl).ok_or_else(|| bad(client))?;
        let ttl = expire.max(0).to_string();
        if expire > 0 {
            client.send(&[b"RESTORE", &key, ttl.as_bytes(), &payload, b"REPLACE", b"ABSTTL"])?;
        } else {
            client.send(&[b"RESTORE", &key, b"0", &payload, b"REPLACE"])?;
        }
        pending += 1;
        if pending == 256 {
            total += drain(client, pending)?;
            pending = 0;
        }
    }
    total += drain(client, pending)?;
    Ok(total)
}

fn drain(client: &mut Client, n: u64) -> Result<u64, SourceError> {
    for _ in 0..n {
        if let Reply::Error(e) = client.read()? {
            return Err(err(&client.target, format!("RESTORE: {e}")));
        }
    }
    Ok(n)
}

/// Keys per database now, compared with the manifest (after a restore into `target_db`).
pub fn verify(
    conn: &Connection,
    manifest: &Manifest,
    target_db: Option<u32>,
) -> Result<(bool, Vec<String>), SourceError> {
    let mut client = Client::connect(conn)?;
    let mut mismatches = Vec::new();
    for (db, want) in &manifest.keys {
        let to = target_db.unwrap_or(*db);
        let got = client.count(to, manifest.pattern.as_deref())?;
        if got != *want {
            mismatches.push(format!("db{to}: expected {want} keys, found {got}"));
        }
    }
    Ok((mismatches.is_empty(), mismatches))
}

/// Fuzzing with arbitrary bytes (proptest): the RESP reader returns an error or a reply for any
/// input, never panics, and never allocates what a reply merely claims.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn client(bytes: Vec<u8>) -> Client {
        let r: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(bytes));
        Client { w: Box::new(std::io::sink()), r: BufReader::new(r), target: "fuzz".into() }
    }

    /// Replies made of RESP-looking pieces, so the fuzzer gets past the first byte.
    fn resp() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"+OK\r\n".to_vec()),
            Just(b"-ERR x\r\n".to_vec()),
            Just(b":-12\r\n".to_vec()),
            Just(b"$3\r\nabc\r\n".to_vec()),
            Just(b"$-1\r\n".to_vec()),
            Just(b"*2\r\n".to_vec()),
            Just(b"*-1\r\n".to_vec()),
            Just(b"$99999999999999\r\n".to_vec()),
            Just(b"*9223372036854775807\r\n".to_vec()),
            any::<i64>().prop_map(|n| format!("${n}\r\n").into_bytes()),
            any::<i64>().prop_map(|n| format!("*{n}\r\n").into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..16),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn resp_reader_never_panics(bytes in resp()) {
            let mut c = client(bytes);
            for _ in 0..16 {
                if c.read().is_err() {
                    break;
                }
            }
        }

        #[test]
        fn resp_reader_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut c = client(bytes);
            let _ = c.read();
        }
    }
}
