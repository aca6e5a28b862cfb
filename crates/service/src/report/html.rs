//! The report as one self-contained HTML file: inline CSS, inline SVG charts (the dashboard's,
//! from [`crate::charts`]), no script, nothing loaded from elsewhere — it can be mailed,
//! archived or opened from disk as it is.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{drill_text, outcome, percent, secs, size_text, verification_text, Report, SourceReport};
use crate::charts;
use crate::human;
use lifeboat_ops::records::Outcome;

const CSS: &str = r#"
:root { --ink: #1d2430; --muted: #4a5361; --line: #d5dae1; --ok: #1e6b34; --warn: #8a4b00; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5em 1.5em 3em; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 .2em; }
h2 { font-size: 1.2em; margin: 1.6em 0 .6em; padding-bottom: .2em; border-bottom: 1px solid var(--line); }
h3 { font-size: 1em; margin: 1em 0 .3em; }
p.meta { color: var(--muted); margin: 0 0 1em; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: .8em; margin: 0; }
.cards div { border: 1px solid var(--line); border-radius: 6px; padding: .6em .8em; }
.cards dt { color: var(--muted); font-size: .85em; }
.cards dd { margin: .1em 0 0; font-size: 1.35em; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: .92em; }
th, td { text-align: left; padding: .35em .5em; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 .45em; border-radius: 3px; color: #fff; font-size: .85em; font-weight: 600; }
.badge.ok { background: var(--ok); } .badge.partial, .badge.warning { background: var(--warn); } .badge.failed, .badge.critical, .badge.unknown { background: var(--bad); }
.bad { color: var(--bad); } .good { color: var(--ok); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 0 1.2em; }
figure.chart { margin: .5em 0 1em; }
figure.chart svg { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
figure.chart figcaption { color: var(--muted); font-size: .85em; }
p.empty { color: var(--muted); }
code { font-size: .9em; }
footer { color: var(--muted); font-size: .85em; margin-top: 2em; }
"#;

fn badge(o: Outcome) -> Markup {
    let w = outcome(o);
    html! { span class=(format!("badge {w}")) { (w) } }
}

fn rpo_colour(p: f64) -> &'static str {
    if p >= 99.0 {
        "#1e6b34"
    } else if p >= 90.0 {
        "#8a4b00"
    } else {
        "#b3261e"
    }
}

fn size_fmt(v: f64) -> String {
    human::size(v.max(0.0) as u64)
}

fn source_row(s: &SourceReport) -> Markup {
    let failed = s.backups_failed > 0;
    html! {
        tr data-source=(s.name) {
            td { strong { (s.name) } @if !s.configured { " (not in config)" } }
            td { (s.kind) }
            td.num { (s.backups_ok + s.backups_partial) }
            td.num class=[failed.then_some("bad")] { (s.backups_failed) }
            td { (s.rpo.as_deref().unwrap_or("-")) }
            td.num class=[s.rpo_compliance_percent.map(|p| if p >= 99.0 { "good" } else { "bad" })] { (percent(s.rpo_compliance_percent)) }
            td { (size_text(s)) }
            td.num { (human::size(s.added_bytes)) }
            td.num { @if s.dedup_ratio > 0.0 { (format!("{:.1}×", s.dedup_ratio)) } @else { "-" } }
            td { (verification_text(s)) }
            td { (drill_text(s)) }
        }
    }
}

/// The report as an HTML document.
pub fn render(r: &Report) -> String {
    let p = &r.period;
    let s = &r.summary;
    let title = format!("Lifeboat backup report — {}", p.label);
    let rpo_items: Vec<(String, f64)> =
        r.sources.iter().filter_map(|x| x.rpo_compliance_percent.map(|v| (x.name.clone(), v))).collect();
    let growth = super::growth_bars(r);
    let failures: Vec<(&str, &super::Failure)> =
        r.sources.iter().flat_map(|x| x.failures.iter().map(move |f| (x.name.as_str(), f))).collect();
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    h1 { "Backup report: " (p.label) }
                    p.meta {
                        (p.from.format("%Y-%m-%d %H:%M")) " to " (p.to.format("%Y-%m-%d %H:%M UTC"))
                        " · repository " code { (r.repository) } " · made on " (r.host)
                    }
                    section aria-labelledby="summary-h" {
                        h2 #summary-h { "Summary" }
                        dl.cards {
                            div { dt { "Backups ok" } dd #backups-ok { (s.backups_ok + s.backups_partial) } }
                            div { dt { "Backups failed" } dd #backups-failed class=[(s.backups_failed > 0).then_some("bad")] { (s.backups_failed) } }
                            div { dt { "RPO compliance (mean)" } dd #rpo { (percent(s.rpo_compliance_percent)) } }
                            div { dt { "Verifications ok / failed" } dd { (s.verifications_ok) " / " (s.verifications_failed) } }
                            div { dt { "Drills ok / failed" } dd { (s.drills_ok) " / " (s.drills_failed) } }
                            div { dt { "Stored in the repository" } dd { (human::size(r.storage.pack_bytes)) } }
                            div { dt { "Added in the period" } dd { (human::size(s.added_bytes)) } }
                            div { dt { "Dedup / compression" } dd { (format!("{:.1}× / {:.1}×", r.storage.dedup_ratio, r.storage.compression_ratio)) } }
                        }
                    }
                    section aria-labelledby="sources-h" {
                        h2 #sources-h { "Sources" }
                        table.sources {
                            thead { tr {
                                th { "Source" } th { "Kind" } th.num { "Backups ok" } th.num { "Failed" } th { "RPO" }
                                th.num { "Within RPO" } th { "Size first → last" } th.num { "Added" } th.num { "Dedup" }
                                th { "Verified" } th { "Last drill (RTO / objective)" }
                            } }
                            tbody { @for x in &r.sources { (source_row(x)) } }
                        }
                        @if !failures.is_empty() {
                            h3 { "Failed backups" }
                            ul.failures {
                                @for (name, f) in &failures {
                                    li { strong { (name) } " " (f.time.format("%Y-%m-%d %H:%M UTC")) ": " (f.error) }
                                }
                            }
                        }
                    }
                    section aria-labelledby="rpo-h" {
                        h2 #rpo-h { "RPO compliance" }
                        p { "Share of the period during which the newest successful backup was younger than the source's RPO." }
                        (charts::hbars("RPO compliance per source", &rpo_items, 100.0, |v| percent(Some(v)), rpo_colour))
                    }
                    section aria-labelledby="size-h" {
                        h2 #size-h { "Backup size over time" }
                        div.charts {
                            @for x in &r.sources {
                                @let pts: Vec<_> = x.sizes.iter().map(|p| (p.time, p.bytes as f64)).collect();
                                (charts::line(&format!("{}: size as backed up", x.name), &pts, size_fmt))
                            }
                            (charts::bars("Data stored per day", &growth, size_fmt))
                        }
                    }
                    section aria-labelledby="proof-h" {
                        h2 #proof-h { "Verifications and drills" }
                        @if r.verifications.is_empty() {
                            p.empty { "No verification in the period." }
                        } @else {
                            table.verifications {
                                thead { tr { th { "Time" } th { "Source" } th { "Snapshot" } th { "Checks" } th { "Outcome" } th { "Findings" } } }
                                tbody {
                                    @for v in &r.verifications {
                                        tr {
                                            td { (v.time.format("%Y-%m-%d %H:%M")) }
                                            td { (v.source.as_deref().unwrap_or("-")) }
                                            td { code { (v.snapshot.short()) } }
                                            td { (v.checks.join(", ")) }
                                            td { (badge(v.outcome)) }
                                            td { (v.findings.join("; ")) }
                                        }
                                    }
                                }
                            }
                        }
                        @if r.drills.is_empty() {
                            p.empty { "No drill in the period." }
                        } @else {
                            table.drills {
                                thead { tr { th { "Drill" } th { "Source" } th { "Outcome" } th.num { "Measured RTO" } th.num { "Objective" } th { "Within" } } }
                                tbody {
                                    @for d in &r.drills {
                                        @for x in &d.sources {
                                            tr {
                                                td { (d.time.format("%Y-%m-%d %H:%M")) }
                                                td { (x.source) }
                                                td { (badge(x.outcome)) }
                                                td.num { (secs(x.rto_seconds)) }
                                                td.num { (x.rto_target_seconds.map(secs).unwrap_or_else(|| "-".into())) }
                                                td { @match x.rto_target_seconds { Some(t) if x.rto_seconds <= t => span.good { "yes" }, Some(_) => span.bad { "no" }, None => "-" } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if !r.probes.is_empty() {
                        section aria-labelledby="probes-h" {
                            h2 #probes-h { "Probes" }
                            div.charts {
                                @for pr in &r.probes {
                                    @let unit = pr.unit.as_deref().map(|u| format!("; in {u}")).unwrap_or_default();
                                    @let title = format!("{} ({} samples, {} warning, {} critical{unit})", pr.name, pr.samples, pr.warnings, pr.criticals);
                                    (charts::line(&title, &pr.history, charts::short_number))
                                }
                            }
                        }
                    }
                    footer { "Made by Lifeboat at " (r.generated.format("%Y-%m-%d %H:%M:%S UTC")) "." }
                }
            }
        }
    };
    doc.into_string()
}
