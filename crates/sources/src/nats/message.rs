//! One stored stream message and its line in an export file.
//!
//! Export file format (`STREAM.jsonl`): one JSON object per line, in sequence order:
//! `{"seq":1,"ts":1700000000123456789,"subject":"orders.new","hdrs":"TkFUUy8x…","data":"eyJp…"}`
//! — `ts` is the store time in nanoseconds since the Unix epoch, `hdrs` (absent when the message
//! has no headers) and `data` are base64 (standard alphabet, padded).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// A stored message of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Stream sequence.
    pub seq: u64,
    /// Store time, nanoseconds since the Unix epoch.
    pub ts: i64,
    /// Subject.
    pub subject: String,
    /// Raw header block (`NATS/1.0\r\n…\r\n\r\n`), if any.
    pub hdrs: Option<Vec<u8>>,
    /// Payload.
    pub data: Vec<u8>,
}

impl Message {
    /// The export line (with its `\n`).
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = json!({"seq": self.seq, "ts": self.ts, "subject": self.subject});
        if let Some(h) = &self.hdrs {
            v["hdrs"] = STANDARD.encode(h).into();
        }
        v["data"] = STANDARD.encode(&self.data).into();
        let mut line = v.to_string().into_bytes();
        line.push(b'\n');
        line
    }

    /// Parse an export line.
    pub fn from_line(line: &[u8]) -> Result<Message, String> {
        let v: Value = serde_json::from_slice(line).map_err(|e| format!("bad export line: {e}"))?;
        let b64 = |field: &str| -> Result<Option<Vec<u8>>, String> {
            v.get(field)
                .and_then(Value::as_str)
                .map(|s| STANDARD.decode(s).map_err(|e| format!("bad base64 in {field}: {e}")))
                .transpose()
        };
        Ok(Message {
            seq: v["seq"].as_u64().ok_or("export line without seq")?,
            ts: v["ts"].as_i64().ok_or("export line without ts")?,
            subject: v["subject"].as_str().ok_or("export line without subject")?.to_string(),
            hdrs: b64("hdrs")?,
            data: b64("data")?.unwrap_or_default(),
        })
    }

    /// Decode a `$JS.API.STREAM.MSG.GET` answer's `message` object.
    pub fn from_api(m: &Value) -> Result<Message, String> {
        let time = m["time"].as_str().ok_or("MSG.GET answer without time")?;
        let ts = DateTime::parse_from_rfc3339(time).map_err(|e| format!("bad time {time:?}: {e}"))?;
        let b64 = |field: &str| -> Result<Option<Vec<u8>>, String> {
            m.get(field)
                .and_then(Value::as_str)
                .map(|s| STANDARD.decode(s).map_err(|e| format!("bad base64 in {field}: {e}")))
                .transpose()
        };
        Ok(Message {
            seq: m["seq"].as_u64().ok_or("MSG.GET answer without seq")?,
            ts: ts.timestamp_nanos_opt().ok_or("time out of range")?,
            subject: m["subject"].as_str().ok_or("MSG.GET answer without subject")?.to_string(),
            hdrs: b64("hdrs")?.filter(|h| !h.is_empty()),
            data: b64("data")?.unwrap_or_default(),
        })
    }
}

/// A store time (ns since the epoch) as RFC 3339 with nanoseconds.
pub fn rfc3339(ts: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ts).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_round_trip() {
        let m = Message {
            seq: 42,
            ts: 1_700_000_000_123_456_789,
            subject: "orders.eu".into(),
            hdrs: Some(b"NATS/1.0\r\nA: b\r\n\r\n".to_vec()),
            data: vec![0, 1, 2, 255, b'\n'],
        };
        let line = m.to_line();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line per message");
        assert_eq!(Message::from_line(&line).unwrap(), m);
        let plain = Message { hdrs: None, ..m };
        assert_eq!(Message::from_line(&plain.to_line()).unwrap(), plain);
        assert!(Message::from_line(b"{\"seq\":1}").is_err());
        assert!(Message::from_line(b"{\"seq\":1,\"ts\":1,\"subject\":\"a\",\"data\":\"!!\"}").is_err());
    }

    #[test]
    fn api_messages_decode_with_nanosecond_times() {
        let v = json!({"subject": "a.b", "seq": 7, "data": "aGk=", "time": "2024-01-15T12:00:00.000000123Z"});
        let m = Message::from_api(&v).unwrap();
        assert_eq!((m.seq, m.data.as_slice(), m.hdrs), (7, &b"hi"[..], None));
        assert_eq!(rfc3339(m.ts), "2024-01-15T12:00:00.000000123Z");
    }
}
