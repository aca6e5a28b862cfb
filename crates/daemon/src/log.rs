//! One line per event on stderr: `2026-12-03T10:00:00Z INFO backup_finished source=docs …`, or
//! one JSON object per line with `--log-format json`. Secrets never reach it: callers pass
//! names, ids and one-line errors (which never contain `${VAR}` values).

use std::io::Write;

/// How lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `time LEVEL event key=value …`.
    Text,
    /// `{"time":…,"level":…,"event":…,…}`.
    Json,
}

/// Writes log lines.
#[derive(Clone, Copy, Debug)]
pub struct Log {
    format: Format,
}

impl Log {
    /// A logger.
    pub fn new(format: Format) -> Log {
        Log { format }
    }

    /// An informational event.
    pub fn info(&self, event: &str, fields: &[(&str, String)]) {
        self.line("info", event, fields);
    }

    /// Something that needs attention.
    pub fn warn(&self, event: &str, fields: &[(&str, String)]) {
        self.line("warning", event, fields);
    }

    /// A failure.
    pub fn error(&self, event: &str, fields: &[(&str, String)]) {
        self.line("error", event, fields);
    }

    fn line(&self, level: &str, event: &str, fields: &[(&str, String)]) {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let text = match self.format {
            Format::Json => {
                let mut m = serde_json::Map::new();
                m.insert("time".into(), time.into());
                m.insert("level".into(), level.into());
                m.insert("event".into(), event.into());
                for (k, v) in fields {
                    m.insert((*k).into(), v.clone().into());
                }
                serde_json::Value::Object(m).to_string()
            }
            Format::Text => {
                let mut s = format!("{time} {} {event}", level.to_uppercase());
                for (k, v) in fields {
                    if v.contains(' ') || v.is_empty() {
                        s.push_str(&format!(" {k}={v:?}"));
                    } else {
                        s.push_str(&format!(" {k}={v}"));
                    }
                }
                s
            }
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }
}
