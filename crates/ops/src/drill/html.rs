//! The drill report as one self-contained HTML page: inline CSS, no scripts, no external
//! assets, so it can be mailed, archived or opened offline as it is.

use std::fmt::Write;

use serde_json::Value;

use super::{Report, SourceResult};
use crate::records::Outcome;

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:2rem 0 .5rem}
.meta{color:#555;margin-bottom:1rem}.meta code{background:#f2f4f8;padding:0 .3em;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e3e6ec;vertical-align:top}
th{background:#f5f6f9;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:999px;font-weight:600;font-size:.85rem;color:#fff}
.ok{background:#1f9d55}.failed{background:#cc1f1a}.partial{background:#d98b00}
.bar{position:relative;height:16px;background:#eef0f4;border-radius:3px;min-width:240px}
.fill{position:absolute;top:0;left:0;height:16px;border-radius:3px}.fill.ok{background:#38c172}.fill.failed{background:#e3342f}.fill.partial{background:#f6993f}
.target{position:absolute;top:-3px;height:22px;border-left:2px dashed #1d2330}
.share{color:#555;font-size:.8rem}.findings{color:#a61b17;margin:.3rem 0 .8rem 1.2rem;padding:0}.sig{margin-top:2rem;color:#555;font-size:.85rem;word-break:break-all}";

/// Escape text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Failed => "failed",
        Outcome::Partial => "partial",
    }
}

fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.2} s")
    } else {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

/// Render `report`; `signed_by` is the public key (hex) that signed it, if any.
pub fn render(report: &Report, signed_by: Option<&str>) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let title = format!("Lifeboat drill {} — {}", report.time.format("%Y-%m-%d %H:%M UTC"), outcome(report.outcome));
    let _ = write!(h, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>", esc(&title));
    let _ = write!(
        h,
        "<h1>Disaster-recovery drill <span class=\"badge {o}\">{o}</span></h1><div class=\"meta\">{} → {} on <code>{}</code> · repository <code>{}</code> · Lifeboat {} · report <code>{}</code></div>",
        report.started.format("%Y-%m-%d %H:%M:%S UTC"),
        report.time.format("%H:%M:%S"),
        esc(&report.host),
        esc(&report.repository),
        esc(&report.lifeboat_version),
        esc(&report.id),
        o = outcome(report.outcome)
    );
    summary(&mut h, report);
    for s in &report.sources {
        section(&mut h, s);
    }
    let sig = match signed_by {
        Some(k) => format!("Signed with Ed25519 key <code>{}</code>; check with <code>lifeboat drill check-report report.json --public-key KEY.pub</code>.", esc(k)),
        None => "This report is not signed.".to_string(),
    };
    let _ = writeln!(h, "<p class=\"sig\">{sig}</p></body></html>");
    h
}

/// The table of every source; each row's bar spans that source's RTO (or its recovery time when
/// that is longer), so the fill shows how much of the RTO the recovery used.
fn summary(h: &mut String, report: &Report) {
    h.push_str("<table><tr><th>source</th><th>kind</th><th>snapshot</th><th>result</th><th>recovery time</th><th>RTO</th><th style=\"width:34%\">recovery time against the RTO (dashed)</th></tr>");
    for s in &report.sources {
        let o = outcome(s.outcome);
        let scale = s.rto_seconds.max(s.rto_target_seconds.unwrap_or(0.0)).max(f64::MIN_POSITIVE) * 1.05;
        let fill = (s.rto_seconds / scale * 100.0).clamp(0.5, 100.0);
        let (target, share) = match s.rto_target_seconds {
            Some(t) => (
                format!("<div class=\"target\" style=\"left:{:.1}%\" title=\"RTO\"></div>", t / scale * 100.0),
                format!("{} of the RTO", percent(s.rto_seconds / t)),
            ),
            None => (String::new(), "no RTO configured".to_string()),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><span class=\"badge {o}\">{o}</span></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><div class=\"bar\"><div class=\"fill {o}\" style=\"width:{fill:.1}%\"></div>{target}</div><div class=\"share\">{share}</div></td></tr>",
            esc(&s.source),
            esc(&s.kind),
            s.snapshot.map(|i| i.short()).unwrap_or_else(|| "—".into()),
            seconds(s.rto_seconds),
            s.rto_target_seconds.map(seconds).unwrap_or_else(|| "—".into()),
        );
    }
    h.push_str("</table>");
}

/// `0.04 %`, `12 %`, `140 %`.
fn percent(f: f64) -> String {
    let p = f * 100.0;
    if p < 1.0 {
        format!("{p:.2} %")
    } else {
        format!("{p:.0} %")
    }
}

/// One source: findings, then what the verification counted.
fn section(h: &mut String, s: &SourceResult) {
    let o = outcome(s.outcome);
    let _ = write!(h, "<h2>{} <span class=\"badge {o}\">{o}</span></h2>", esc(&s.source));
    let when = s.snapshot_time.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default();
    let _ = write!(
        h,
        "<div class=\"meta\">{} · snapshot <code>{}</code> {when} · restored into <code>{}</code> (removed afterwards)</div>",
        esc(&s.kind),
        s.snapshot.map(|i| i.to_hex()).unwrap_or_default(),
        esc(&s.scratch_target)
    );
    if !s.findings.is_empty() {
        h.push_str("<ul class=\"findings\">");
        for f in &s.findings {
            let _ = write!(h, "<li>{}</li>", esc(f));
        }
        h.push_str("</ul>");
    }
    if let Some(v) = &s.verify_command {
        let o = if v.ok { "ok" } else { "failed" };
        let _ = write!(
            h,
            "<div class=\"meta\">verify_command <span class=\"badge {o}\">{o}</span> {}</div>",
            esc(&v.line())
        );
    }
    details(h, &s.details);
}

/// Counts as a two-column table (`tables`, `keys`), streams as rows, the rest as key/value.
fn details(h: &mut String, d: &Value) {
    let Some(m) = d.as_object() else { return };
    let mut rows = Vec::new();
    for (k, v) in m {
        match v {
            Value::Object(inner) => {
                // Redis keys are per database index.
                let db = if k == "keys" { "db" } else { "" };
                rows.extend(inner.iter().map(|(n, c)| (format!("{k}: {db}{n}"), plain(c))));
            }
            Value::Array(list) if list.iter().all(Value::is_object) => {
                for item in list {
                    let name = item.get("stream").map(plain).unwrap_or_default();
                    let rest: Vec<String> = item
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(f, _)| *f != "stream")
                        .map(|(f, v)| format!("{f} {}", plain(v)))
                        .collect();
                    rows.push((format!("{k}: {name}"), rest.join(", ")));
                }
            }
            Value::Array(list) if list.is_empty() => {}
            v => rows.push((k.clone(), plain(v))),
        }
    }
    if rows.is_empty() {
        return;
    }
    h.push_str("<table><tr><th>checked</th><th>found</th></tr>");
    for (k, v) in rows {
        let _ = write!(h, "<tr><td>{}</td><td class=\"num\">{}</td></tr>", esc(&k), esc(&v));
    }
    h.push_str("</table>");
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(plain).collect::<Vec<_>>().join("; "),
        v => v.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained_and_escaped() {
        let src = SourceResult::failed("a<b>", "sqlite", "bad \"thing\"".into(), Some(30.0));
        let r = Report::new(chrono::Utc::now(), "repo".into(), vec![src]);
        let page = render(&r, None);
        assert!(page.contains("a&lt;b&gt;") && page.contains("bad &quot;thing&quot;"), "{page}");
        assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
        assert!(page.contains("not signed"));
    }
}
