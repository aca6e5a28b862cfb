//! The NATS client protocol on the wire: parsing what the server sends (`INFO`, `MSG`, `HMSG`,
//! `PING`, `PONG`, `+OK`, `-ERR`) and encoding what a client sends. Pure functions over byte
//! streams, so the parser is tested without a server.

use std::io::{self, BufRead};

/// Largest message a server may announce before we refuse it (NATS' hard limit is 64 MiB).
const MAX_PAYLOAD: usize = 64 << 20;

/// A message delivered to a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Msg {
    /// Subject it was published to.
    pub subject: String,
    /// Subscription id it was delivered for.
    pub sid: u64,
    /// Reply subject, if the publisher wants an answer (flow-control acks, requests).
    pub reply: Option<String>,
    /// Raw header block (`NATS/1.0 …\r\nName: value\r\n\r\n`), for `HMSG`.
    pub headers: Option<Vec<u8>>,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Msg {
    /// The status code and description of a status message (`NATS/1.0 503`, `NATS/1.0 408 No
    /// Flow Response`), which JetStream uses for no-responders, flow control and errors.
    pub fn status(&self) -> Option<(u16, String)> {
        status_of(self.headers.as_deref()?)
    }
}

/// One operation received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `INFO {json}`.
    Info(String),
    /// `MSG` or `HMSG`.
    Msg(Msg),
    /// `PING` (must be answered with `PONG`).
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK` (verbose mode only).
    Ok,
    /// `-ERR 'text'`.
    Err(String),
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Read one operation. `Ok(None)` when the server closed the connection between operations.
pub fn read_op(r: &mut impl BufRead) -> io::Result<Option<Op>> {
    let mut line = Vec::with_capacity(128);
    if r.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad("connection closed in the middle of a protocol line"));
    }
    line.truncate(line.len() - 2);
    let text = String::from_utf8_lossy(&line);
    let (verb, rest) = text.split_once([' ', '\t']).unwrap_or((&text, ""));
    let rest = rest.trim();
    Ok(Some(match verb.to_ascii_uppercase().as_str() {
        "MSG" => Op::Msg(read_msg(r, rest, false)?),
        "HMSG" => Op::Msg(read_msg(r, rest, true)?),
        "PING" => Op::Ping,
        "PONG" => Op::Pong,
        "+OK" => Op::Ok,
        "-ERR" => Op::Err(rest.trim_matches('\'').to_string()),
        "INFO" => Op::Info(rest.to_string()),
        _ => return Err(bad(format!("unexpected protocol line {:?}", truncate(&text, 80)))),
    }))
}

fn truncate(s: &str, n: usize) -> &str {
    let end = (0..=n.min(s.len())).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
    &s[..end]
}

/// `MSG subject sid [reply] size` / `HMSG subject sid [reply] hdr_size total_size`, then the
/// body and `\r\n`.
fn read_msg(r: &mut impl BufRead, args: &str, with_headers: bool) -> io::Result<Msg> {
    let parts: Vec<&str> = args.split_ascii_whitespace().collect();
    let sizes = if with_headers { 2 } else { 1 };
    if parts.len() < 2 + sizes || parts.len() > 3 + sizes {
        return Err(bad(format!("malformed message line {:?}", truncate(args, 80))));
    }
    let num = |s: &str| s.parse::<usize>().map_err(|_| bad(format!("bad number {s:?} in message line")));
    let sid = parts[1].parse::<u64>().map_err(|_| bad("bad subscription id in message line"))?;
    let reply = (parts.len() == 3 + sizes).then(|| parts[2].to_string());
    let total = num(parts[parts.len() - 1])?;
    let hdr_len = if with_headers { num(parts[parts.len() - 2])? } else { 0 };
    if total > MAX_PAYLOAD || hdr_len > total {
        return Err(bad(format!("message sizes out of range ({hdr_len}/{total})")));
    }
    let mut body = vec![0u8; total + 2];
    r.read_exact(&mut body)?;
    if &body[total..] != b"\r\n" {
        return Err(bad("message body not terminated by CRLF"));
    }
    body.truncate(total);
    let payload = body.split_off(hdr_len);
    let headers = with_headers.then_some(body);
    Ok(Msg { subject: parts[0].to_string(), sid, reply, headers, payload })
}

/// Status code and description from a header block's first line.
pub fn status_of(headers: &[u8]) -> Option<(u16, String)> {
    let first = headers.split(|b| *b == b'\n').next()?;
    let first = String::from_utf8_lossy(first);
    let rest = first.trim_end().strip_prefix("NATS/1.0")?.trim();
    let (code, desc) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((code.parse().ok()?, desc.trim().to_string()))
}

/// A header block without the headers whose names start with `prefix` (case-insensitive).
/// `None` when nothing but the version line would remain, so the message is sent without
/// headers as it would have been without them.
pub fn without_headers(headers: &[u8], prefix: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(headers);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("NATS/1.0");
    let kept: Vec<&str> = lines
        .filter(|l| !l.is_empty())
        .filter(|l| !l.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix)))
        .collect();
    if kept.is_empty() && status_of(headers).is_none() {
        return None;
    }
    let mut out = String::with_capacity(headers.len());
    out.push_str(first);
    out.push_str("\r\n");
    for l in kept {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    Some(out.into_bytes())
}

/// `PUB` or `HPUB` for a message, ready to write.
pub fn encode_pub(subject: &str, reply: Option<&str>, headers: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
    let mut out = Vec::with_capacity(payload.len() + 64);
    match headers {
        Some(h) => {
            let line = format!("HPUB {subject}{reply} {} {}\r\n", h.len(), h.len() + payload.len());
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(h);
        }
        None => out.extend_from_slice(format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes()),
    }
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether `s` is usable as a subject we publish or subscribe to (no spaces or control bytes;
/// the protocol is line-based, so anything else would break framing).
pub fn valid_subject(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| b <= b' ' || b == 0x7f) && !s.split('.').any(str::is_empty)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn ops(wire: &[u8]) -> Vec<Op> {
        let mut r = Cursor::new(wire.to_vec());
        let mut out = Vec::new();
        while let Some(op) = read_op(&mut r).unwrap() {
            out.push(op);
        }
        out
    }

    #[test]
    fn parses_every_server_operation() {
        let wire = b"INFO {\"server_id\":\"x\",\"version\":\"2.9.10\"}\r\nPING\r\nPONG\r\n+OK\r\n\
-ERR 'Authorization Violation'\r\nMSG a.b 7 5\r\nhello\r\nMSG a.b 7 _INBOX.r 0\r\n\r\n\
HMSG snap 2 $JS.SNAPSHOT.ACK.S.x.3.1 12 15\r\nNATS/1.0\r\n\r\nabc\r\n";
        let got = ops(wire);
        assert_eq!(got.len(), 8);
        assert_eq!(got[0], Op::Info("{\"server_id\":\"x\",\"version\":\"2.9.10\"}".into()));
        assert_eq!(got[1..4], [Op::Ping, Op::Pong, Op::Ok]);
        assert_eq!(got[4], Op::Err("Authorization Violation".into()));
        assert_eq!(
            got[5],
            Op::Msg(Msg { subject: "a.b".into(), sid: 7, payload: b"hello".to_vec(), ..Msg::default() })
        );
        let Op::Msg(m) = &got[6] else { panic!() };
        assert_eq!((m.reply.as_deref(), m.payload.len()), (Some("_INBOX.r"), 0));
        let Op::Msg(m) = &got[7] else { panic!() };
        assert_eq!(m.headers.as_deref(), Some(&b"NATS/1.0\r\n\r\n"[..]));
        assert_eq!((m.payload.as_slice(), m.reply.as_deref()), (&b"abc"[..], Some("$JS.SNAPSHOT.ACK.S.x.3.1")));
    }

    #[test]
    fn payload_may_contain_crlf_and_protocol_words() {
        let got = ops(b"MSG x 1 11\r\nPING\r\nPONG\r\r\nPING\r\n");
        assert_eq!(got.len(), 2);
        let Op::Msg(m) = &got[0] else { panic!() };
        assert_eq!(m.payload, b"PING\r\nPONG\r");
        assert_eq!(got[1], Op::Ping);
    }

    #[test]
    fn status_headers_are_decoded() {
        let m = Msg { headers: Some(b"NATS/1.0 408 No Flow Response\r\n\r\n".to_vec()), ..Msg::default() };
        assert_eq!(m.status(), Some((408, "No Flow Response".into())));
        assert_eq!(status_of(b"NATS/1.0 503\r\n\r\n"), Some((503, String::new())));
        assert_eq!(status_of(b"NATS/1.0\r\nA: b\r\n\r\n"), None);
    }

    #[test]
    fn truncated_or_malformed_input_is_an_error_not_a_panic() {
        for wire in [
            &b"MSG a 1 10\r\nshort"[..],
            b"MSG a 1\r\n",
            b"MSG a x 1\r\na\r\n",
            b"HMSG a 1 9 5\r\nNATS/1.0\r\n\r\n",
            b"MSG a 1 3\r\nabcXY",
            b"BOGUS\r\n",
            b"PIN",
            b"MSG a 1 99999999999\r\n",
        ] {
            let mut r = Cursor::new(wire.to_vec());
            let res = (|| -> io::Result<()> {
                while read_op(&mut r)?.is_some() {}
                Ok(())
            })();
            assert!(res.is_err(), "{:?} must fail", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn publishes_are_encoded_with_sizes() {
        assert_eq!(encode_pub("a.b", None, None, b"hi"), b"PUB a.b 2\r\nhi\r\n");
        assert_eq!(encode_pub("a", Some("r"), None, b""), b"PUB a r 0\r\n\r\n");
        let h = b"NATS/1.0\r\nX: 1\r\n\r\n";
        assert_eq!(encode_pub("a", None, Some(h), b"p"), b"HPUB a 18 19\r\nNATS/1.0\r\nX: 1\r\n\r\np\r\n");
    }

    #[test]
    fn publish_preconditions_are_stripped_from_headers() {
        let h = b"NATS/1.0\r\nNats-Expected-Stream: S\r\nNats-Msg-Id: 1\r\nnats-expected-last-sequence: 4\r\n\r\n";
        assert_eq!(without_headers(h, "Nats-Expected-").unwrap(), b"NATS/1.0\r\nNats-Msg-Id: 1\r\n\r\n");
        assert_eq!(without_headers(b"NATS/1.0\r\nNats-Expected-Stream: S\r\n\r\n", "Nats-Expected-"), None);
    }

    #[test]
    fn subjects_that_would_break_framing_are_rejected() {
        assert!(valid_subject("orders.eu.created"));
        assert!(valid_subject("$JS.API.STREAM.INFO.ORDERS"));
        for s in ["", "a b", "a\r\nPUB", "a..b", ".a", "a."] {
            assert!(!valid_subject(s), "{s:?}");
        }
    }
}

/// Fuzzing with arbitrary bytes (proptest): the protocol reader returns an operation or an
/// error for any input, never panics.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"PING\r\n".to_vec()),
            Just(b"MSG a 1 3\r\nabc\r\n".to_vec()),
            Just(b"HMSG a 1 r 12 14\r\nNATS/1.0\r\n\r\nab\r\n".to_vec()),
            Just(b"MSG a 1 99999999999999999999\r\n".to_vec()),
            Just(b"-ERR 'x'\r\n".to_vec()),
            (any::<u64>(), any::<u64>()).prop_map(|(h, t)| format!("HMSG s 1 {h} {t}\r\n").into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..24),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn read_op_never_panics(lines in proptest::collection::vec(line(), 0..10)) {
            let bytes = lines.concat();
            let mut r = std::io::BufReader::new(bytes.as_slice());
            for _ in 0..12 {
                match read_op(&mut r) {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
}
