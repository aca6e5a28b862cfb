//! A small synchronous NATS client over one TCP connection: connect and authenticate,
//! subscribe, publish, request/reply and the JetStream JSON API. Just what the `nats` source
//! needs; written against the protocol like the redis client, so no client crate is pulled in.

use std::io::{BufReader, BufWriter, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

pub use super::proto::Msg;
use super::proto::{self, Op};
use crate::SourceError;

/// How long a server may stay silent while we wait for an answer before we give up.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to reach a NATS server. Credentials are kept here only and sent in `CONNECT`;
/// [`Connection::server`] (used in every message) never contains them.
#[derive(Clone, Default)]
pub struct Connection {
    /// Servers to try in order (`host`, `port`).
    pub servers: Vec<(String, u16)>,
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Authentication token.
    pub token: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never reach logs, not even through `{:?}`.
        f.debug_struct("Connection").field("servers", &self.servers).finish_non_exhaustive()
    }
}

fn url_error(why: &str) -> SourceError {
    // The URL itself is never repeated: it may hold a password.
    SourceError::Nats {
        server: "(url)".into(),
        stream: None,
        message: format!("bad url: {why}; expected nats://[user:password@]host[:port][,nats://…]"),
        retryable: false,
    }
}

fn percent_decode(s: &str) -> Result<String, SourceError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| url_error("truncated %-escape"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| url_error("bad %-escape"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| url_error("credentials are not UTF-8"))
}

impl Connection {
    /// Parse `nats://[user:password@|token@]host[:port]`, several separated by commas (a
    /// cluster; tried in order). `user`/`password` given separately win over the URL's.
    pub fn parse(url: &str) -> Result<Connection, SourceError> {
        let mut c = Connection::default();
        for part in url.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let rest = match part.split_once("://") {
                Some(("nats", rest)) => rest,
                Some(("tls", _)) => return Err(url_error("TLS (tls://) is not supported by this version")),
                Some(_) => return Err(url_error("unknown scheme")),
                None => part,
            };
            let (auth, hostport) = match rest.rsplit_once('@') {
                Some((a, h)) => (Some(a), h),
                None => (None, rest),
            };
            let hostport = hostport.trim_end_matches('/');
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                    (h, p.parse::<u16>().map_err(|_| url_error("bad port"))?)
                }
                _ => (hostport, 4222),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || host.contains('/') {
                return Err(url_error("missing host"));
            }
            match auth.map(|a| a.split_once(':')) {
                Some(Some((u, p))) => (c.user, c.password) = (Some(percent_decode(u)?), Some(percent_decode(p)?)),
                Some(None) => c.token = auth.map(percent_decode).transpose()?,
                None => {}
            }
            c.servers.push((host.to_string(), port));
        }
        if c.servers.is_empty() {
            return Err(url_error("no server"));
        }
        Ok(c)
    }

    /// `host:port` of the first server, for messages.
    pub fn server(&self) -> String {
        self.servers.first().map(|(h, p)| format!("{h}:{p}")).unwrap_or_else(|| "(no server)".into())
    }
}

/// A unique token for inbox subjects: process id, time and a counter (no randomness needed:
/// inboxes only have to differ between the connections of this host).
pub fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}{:x}{:x}", std::process::id(), nanos as u64, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// An error answer of the JetStream API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP-like code (404, 400, 503…).
    pub code: u64,
    /// JetStream's own error code (10059 stream not found, 10065 subjects overlap…).
    pub err_code: u64,
    /// The server's description.
    pub description: String,
}

/// JetStream error code: stream not found.
pub const STREAM_NOT_FOUND: u64 = 10059;
/// JetStream error code: no message found (MSG.GET).
pub const NO_MESSAGE_FOUND: u64 = 10037;
/// JetStream error code: subjects overlap with an existing stream.
pub const SUBJECTS_OVERLAP: u64 = 10065;

/// One connection to a NATS server.
pub struct Client {
    w: BufWriter<TcpStream>,
    r: BufReader<TcpStream>,
    /// `host:port` (no credentials), for messages.
    pub server: String,
    /// Server version from `INFO`.
    pub version: String,
    /// Largest payload the server accepts.
    pub max_payload: usize,
    next_sid: u64,
    inbox: String,
    resp_sid: Option<u64>,
    next_req: u64,
}

/// The parts of the server's `INFO` we use.
#[derive(serde::Deserialize, Default)]
struct ServerInfo {
    #[serde(default)]
    version: String,
    #[serde(default)]
    jetstream: bool,
    #[serde(default)]
    max_payload: usize,
    #[serde(default)]
    tls_required: bool,
    #[serde(default)]
    headers: bool,
}

impl Client {
    /// Connect to the first server that answers and authenticate. Fails when JetStream is not
    /// enabled on the server or the server does not support headers (NATS < 2.2).
    pub fn connect(conn: &Connection) -> Result<Client, SourceError> {
        let mut last = None;
        for (host, port) in &conn.servers {
            match Self::connect_one(conn, host, *port) {
                Ok(c) => return Ok(c),
                Err(e) if e.is_retryable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| url_error("no server")))
    }

    fn connect_one(conn: &Connection, host: &str, port: u16) -> Result<Client, SourceError> {
        let server = format!("{host}:{port}");
        let fail =
            |m: String, retryable| SourceError::Nats { server: server.clone(), stream: None, message: m, retryable };
        let stream = (host, port)
            .to_socket_addrs()
            .map_err(|e| fail(format!("cannot resolve: {e}"), true))?
            .find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
            .ok_or_else(|| fail("connection refused or timed out (is nats-server running?)".into(), true))?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| fail(e.to_string(), true))?;
        let _ = stream.set_nodelay(true);
        let r = BufReader::with_capacity(1 << 20, stream.try_clone().map_err(|e| fail(e.to_string(), true))?);
        let w = BufWriter::with_capacity(1 << 20, stream);
        let mut c = Client {
            w,
            r,
            server: server.clone(),
            version: String::new(),
            max_payload: 1 << 20,
            next_sid: 1,
            inbox: format!("_INBOX.{}", unique_token()),
            resp_sid: None,
            next_req: 0,
        };
        let info = match c.read()? {
            Op::Info(json) => serde_json::from_str::<ServerInfo>(&json).unwrap_or_default(),
            _ => return Err(fail("not a NATS server (no INFO greeting)".into(), false)),
        };
        if info.tls_required {
            return Err(fail("the server requires TLS, which this version does not support".into(), false));
        }
        if !info.headers {
            return Err(fail("the server does not support message headers (NATS 2.2 or later needed)".into(), false));
        }
        c.version = info.version;
        c.max_payload = if info.max_payload > 0 { info.max_payload } else { 1 << 20 };
        c.handshake(conn)?;
        if !info.jetstream {
            return Err(fail("JetStream is not enabled on this server (start nats-server with -js)".into(), false));
        }
        c.set_timeout(READ_TIMEOUT)?;
        Ok(c)
    }

    /// `CONNECT` with headers and no-responders, then `PING`: the `PONG` proves the server
    /// accepted the credentials.
    fn handshake(&mut self, conn: &Connection) -> Result<(), SourceError> {
        let mut opts = serde_json::json!({
            "verbose": false, "pedantic": false, "tls_required": false, "name": "lifeboat", "lang": "rust",
            "version": env!("CARGO_PKG_VERSION"), "protocol": 1, "headers": true, "no_responders": true,
        });
        if let Some(u) = &conn.user {
            opts["user"] = u.clone().into();
        }
        if let Some(p) = &conn.password {
            opts["pass"] = p.clone().into();
        }
        if let Some(t) = &conn.token {
            opts["auth_token"] = t.clone().into();
        }
        let line = format!("CONNECT {opts}\r\nPING\r\n");
        self.send_raw(line.as_bytes())?;
        self.flush()?;
        loop {
            match self.read()? {
                Op::Pong => return Ok(()),
                Op::Err(e) if e.to_ascii_lowercase().contains("authorization") || e.contains("Authentication") => {
                    return Err(self.fail(None, format!("authentication failed ({e})"), false));
                }
                Op::Err(e) => return Err(self.fail(None, format!("server refused the connection: {e}"), false)),
                Op::Ping => self.send_raw(b"PONG\r\n")?,
                _ => {}
            }
        }
    }

    /// An error about this server (and maybe a stream).
    pub fn fail(&self, stream: Option<&str>, message: impl Into<String>, retryable: bool) -> SourceError {
        SourceError::Nats {
            server: self.server.clone(),
            stream: stream.map(String::from),
            message: message.into(),
            retryable,
        }
    }

    fn io_fail(&self, e: std::io::Error) -> SourceError {
        let m = match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "the server stopped answering".to_string(),
            _ => format!("connection lost: {e}"),
        };
        self.fail(None, m, true)
    }

    /// How long to wait for the server before giving up.
    pub fn set_timeout(&mut self, t: Duration) -> Result<(), SourceError> {
        self.r.get_ref().set_read_timeout(Some(t)).map_err(|e| self.io_fail(e))
    }

    fn read(&mut self) -> Result<Op, SourceError> {
        match proto::read_op(&mut self.r) {
            Ok(Some(op)) => Ok(op),
            Ok(None) => Err(self.fail(None, "the server closed the connection", true)),
            Err(e) => Err(self.io_fail(e)),
        }
    }

    fn send_raw(&mut self, b: &[u8]) -> Result<(), SourceError> {
        self.w.write_all(b).map_err(|e| self.io_fail(e))
    }

    /// Send what is buffered.
    pub fn flush(&mut self) -> Result<(), SourceError> {
        self.w.flush().map_err(|e| self.io_fail(e))
    }

    /// A new inbox subject prefix unique to this connection.
    pub fn new_inbox(&self) -> String {
        format!("_INBOX.{}", unique_token())
    }

    /// Subscribe; returns the subscription id.
    pub fn subscribe(&mut self, subject: &str) -> Result<u64, SourceError> {
        let sid = self.next_sid;
        self.next_sid += 1;
        self.send_raw(format!("SUB {subject} {sid}\r\n").as_bytes())?;
        Ok(sid)
    }

    /// Queue a message for sending (sent by [`Client::flush`] or when the buffer fills).
    pub fn publish(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(), SourceError> {
        if !proto::valid_subject(subject) {
            return Err(self.fail(None, format!("invalid subject {subject:?}"), false));
        }
        if headers.map_or(0, <[u8]>::len) + payload.len() > self.max_payload {
            return Err(self.fail(None, format!("a message on {subject} exceeds the server's max_payload"), false));
        }
        self.send_raw(&proto::encode_pub(subject, reply, headers, payload))
    }

    /// The next message for any subscription; answers `PING`s meanwhile.
    pub fn next_msg(&mut self) -> Result<Msg, SourceError> {
        loop {
            match self.read()? {
                Op::Msg(m) => return Ok(m),
                Op::Ping => {
                    self.send_raw(b"PONG\r\n")?;
                    self.flush()?;
                }
                Op::Err(e) if e.to_ascii_lowercase().contains("permissions violation") => {
                    return Err(self.fail(None, format!("permission denied: {e}"), false));
                }
                Op::Err(e) => return Err(self.fail(None, format!("server error: {e}"), true)),
                Op::Info(_) | Op::Pong | Op::Ok => {}
            }
        }
    }

    /// The reply subject for the next request, subscribing to this connection's response inbox
    /// on first use.
    pub fn reply_subject(&mut self) -> Result<String, SourceError> {
        if self.resp_sid.is_none() {
            let subject = format!("{}.*", self.inbox);
            self.resp_sid = Some(self.subscribe(&subject)?);
        }
        self.next_req += 1;
        Ok(format!("{}.{}", self.inbox, self.next_req))
    }

    /// Send a request and wait for its reply. A `503` status (no responders) becomes an error
    /// saying nothing serves `subject`.
    pub fn request(&mut self, subject: &str, payload: &[u8]) -> Result<Msg, SourceError> {
        let reply = self.reply_subject()?;
        self.publish(subject, Some(&reply), None, payload)?;
        self.flush()?;
        loop {
            let m = self.next_msg()?;
            if m.subject != reply {
                continue; // a late reply to an earlier, abandoned request
            }
            if let Some((503, _)) = m.status() {
                return Err(self.fail(None, format!("no responders on {subject}"), false));
            }
            return Ok(m);
        }
    }

    /// Call the JetStream API (`$JS.API.<api>`): the answer, or the API's error.
    pub fn js_raw(&mut self, api: &str, body: &Value) -> Result<Result<Value, ApiError>, SourceError> {
        let subject = format!("$JS.API.{api}");
        let payload = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
        let m = match self.request(&subject, &payload) {
            Err(SourceError::Nats { message, .. }) if message.starts_with("no responders") => {
                return Err(self.fail(
                    None,
                    "JetStream is not enabled for this account (nothing answers $JS.API)",
                    false,
                ))
            }
            r => r?,
        };
        parse_api_reply(&m.payload).map_err(|e| self.fail(None, format!("{api}: {e}"), true))
    }

    /// Call the JetStream API; an API error becomes a [`SourceError`] about `stream`.
    pub fn js(&mut self, api: &str, body: &Value, stream: Option<&str>) -> Result<Value, SourceError> {
        self.js_raw(api, body)?.map_err(|e| self.api_fail(stream, &e))
    }

    /// A [`SourceError`] for an API error answer.
    pub fn api_fail(&self, stream: Option<&str>, e: &ApiError) -> SourceError {
        let retryable = e.code >= 500 && e.err_code != 10039;
        let message = match e.err_code {
            STREAM_NOT_FOUND => "stream not found".to_string(),
            _ => format!("{} (code {}, error {})", e.description, e.code, e.err_code),
        };
        self.fail(stream, message, retryable)
    }
}

/// Requests in flight on one connection, answered in the order they were sent (JetStream may
/// answer out of order; early answers wait here until their turn).
pub struct Pipeline<T> {
    pending: std::collections::VecDeque<(String, T)>,
    early: std::collections::HashMap<String, Msg>,
}

impl<T> Default for Pipeline<T> {
    fn default() -> Self {
        Pipeline { pending: Default::default(), early: Default::default() }
    }
}

impl<T> Pipeline<T> {
    /// Requests sent and not yet answered.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Send a request (buffered; `tag` comes back with its answer).
    pub fn send(
        &mut self,
        c: &mut Client,
        subject: &str,
        headers: Option<&[u8]>,
        payload: &[u8],
        tag: T,
    ) -> Result<(), SourceError> {
        let reply = c.reply_subject()?;
        c.publish(subject, Some(&reply), headers, payload)?;
        self.pending.push_back((reply, tag));
        Ok(())
    }

    /// Wait for the answer to the oldest request in flight (`None` when none is).
    pub fn next(&mut self, c: &mut Client) -> Result<Option<(T, Msg)>, SourceError> {
        let Some((reply, _)) = self.pending.front() else { return Ok(None) };
        let reply = reply.clone();
        c.flush()?;
        let m = match self.early.remove(&reply) {
            Some(m) => m,
            None => loop {
                let m = c.next_msg()?;
                if m.subject == reply {
                    break m;
                }
                if self.pending.iter().any(|(r, _)| *r == m.subject) {
                    self.early.insert(m.subject.clone(), m);
                }
            },
        };
        if let Some((503, _)) = m.status() {
            return Err(c.fail(None, "no responders (is JetStream enabled and the stream there?)", false));
        }
        Ok(self.pending.pop_front().map(|(_, tag)| (tag, m)))
    }
}

/// A JetStream API reply: the JSON value, or its `error` object.
pub fn parse_api_reply(payload: &[u8]) -> Result<Result<Value, ApiError>, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("unreadable API reply: {e}"))?;
    Ok(match v.get("error") {
        Some(e) => Err(ApiError {
            code: e["code"].as_u64().unwrap_or(0),
            err_code: e["err_code"].as_u64().unwrap_or(0),
            description: e["description"].as_str().unwrap_or("unknown error").to_string(),
        }),
        None => Ok(v),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_errors_never_echo_them() {
        let c = Connection::parse("nats://alice:s%3Acret@127.0.0.1:4333").unwrap();
        assert_eq!(c.servers, [("127.0.0.1".to_string(), 4333)]);
        assert_eq!((c.user.as_deref(), c.password.as_deref()), (Some("alice"), Some("s:cret")));
        assert_eq!(c.server(), "127.0.0.1:4333");
        assert!(!format!("{c:?}").contains("cret"));
        let c = Connection::parse("nats://tok3n@a, nats://b:1").unwrap();
        assert_eq!(c.token.as_deref(), Some("tok3n"));
        assert_eq!(c.servers, [("a".to_string(), 4222), ("b".to_string(), 1)]);
        assert_eq!(Connection::parse("localhost").unwrap().servers, [("localhost".to_string(), 4222)]);
        for bad in ["tls://u:hunter2@x", "http://u:hunter2@x", "nats://u:hunter2@x:port", "nats://u:hunter2@", ""] {
            let e = Connection::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("hunter2") && e.contains("bad url"), "{e}");
        }
    }

    #[test]
    fn api_errors_are_decoded() {
        let e =
            parse_api_reply(br#"{"type":"x","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#)
                .unwrap()
                .unwrap_err();
        assert_eq!((e.code, e.err_code), (404, STREAM_NOT_FOUND));
        assert!(parse_api_reply(br#"{"total":0}"#).unwrap().is_ok());
        assert!(parse_api_reply(b"nope").is_err());
    }
}
