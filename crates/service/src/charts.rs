//! Charts as inline SVG, drawn on the server: a line over time, a timeline of events, bars.
//! Shared by the daemon's dashboard and the HTML of `lifeboat report`. Each is an `img` with a
//! text alternative (its title and a summary), colours come from attributes (the dashboard's
//! Content-Security-Policy allows no inline style), and long series are thinned to
//! [`MAX_POINTS`] so a page stays light.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

/// At most this many points are drawn per series.
pub const MAX_POINTS: usize = 400;

const W: f64 = 640.0;
const H: f64 = 160.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;
const INK: &str = "#3d4450";
const LINE: &str = "#0b5cab";
const GRID: &str = "#d5dae1";

/// Every `n`-th point (and always the last), so at most `max` remain.
pub fn thin<T: Clone>(v: &[T], max: usize) -> Vec<T> {
    if v.len() <= max || max < 2 {
        return v.to_vec();
    }
    let step = v.len().div_ceil(max - 1);
    let mut out: Vec<T> = v.iter().step_by(step).cloned().collect();
    if (v.len() - 1) % step != 0 {
        if let Some(last) = v.last() {
            out.push(last.clone());
        }
    }
    out
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// An axis label: the date, with the time when the axis spans less than two days.
fn tick(t: DateTime<Utc>, t0: DateTime<Utc>, t1: DateTime<Utc>) -> String {
    if t1 - t0 < chrono::Duration::days(2) {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    } else {
        day(t)
    }
}

fn frame(title: &str, summary: &str, inner: Markup) -> Markup {
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(format!("{title}: {summary}")) xmlns="http://www.w3.org/2000/svg" {
                title { (title) }
                (inner)
            }
            figcaption { (title) " — " (summary) }
        }
    }
}

fn axis_labels(t0: DateTime<Utc>, t1: DateTime<Utc>, top: &str, bottom: &str) -> Markup {
    let (x0, x1, y) = (LEFT, W - RIGHT, H - 6.0);
    html! {
        line x1=(x0) y1=(H - BOTTOM) x2=(x1) y2=(H - BOTTOM) stroke=(GRID) {}
        line x1=(x0) y1=(TOP) x2=(x1) y2=(TOP) stroke=(GRID) {}
        text x=(x0) y=(y) fill=(INK) font-size="11" { (tick(t0, t0, t1)) }
        text x=(x1) y=(y) fill=(INK) font-size="11" text-anchor="end" { (tick(t1, t0, t1)) }
        text x=(LEFT - 6.0) y=(TOP + 10.0) fill=(INK) font-size="11" text-anchor="end" { (top) }
        text x=(LEFT - 6.0) y=(H - BOTTOM) fill=(INK) font-size="11" text-anchor="end" { (bottom) }
    }
}

fn x_of(t: DateTime<Utc>, t0: DateTime<Utc>, span: f64) -> f64 {
    LEFT + (t - t0).num_milliseconds() as f64 / span * (W - LEFT - RIGHT)
}

/// A line of `points` (oldest first) with the y axis from 0 to the largest value.
pub fn line(title: &str, points: &[(DateTime<Utc>, f64)], fmt: impl Fn(f64) -> String) -> Markup {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! { p.empty { (title) ": no data yet." } };
    };
    let pts = thin(points, MAX_POINTS);
    let (t0, t1) = (first.0, last.0);
    let span = ((t1 - t0).num_milliseconds() as f64).max(1.0);
    let max = pts.iter().map(|p| p.1).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let y = |v: f64| H - BOTTOM - v / max * (H - BOTTOM - TOP);
    let path: String = pts
        .iter()
        .map(|(t, v)| {
            let x = if pts.len() == 1 { (LEFT + W - RIGHT) / 2.0 } else { x_of(*t, t0, span) };
            format!("{x:.1},{:.1}", y(*v))
        })
        .collect::<Vec<_>>()
        .join(" ");
    let summary = format!("{} points from {} to {}, newest {}", points.len(), day(t0), day(t1), fmt(last.1));
    frame(
        title,
        &summary,
        html! {
            (axis_labels(t0, t1, &fmt(max), &fmt(0.0)))
            polyline points=(path) fill="none" stroke=(LINE) stroke-width="2" {}
            @if pts.len() <= 60 {
                @for (t, v) in &pts {
                    @let x = if pts.len() == 1 { (LEFT + W - RIGHT) / 2.0 } else { x_of(*t, t0, span) };
                    circle cx=(format!("{x:.1}")) cy=(format!("{:.1}", y(*v))) r="3" fill=(LINE) {}
                }
            }
        },
    )
}

/// Marks at `times` between `t0` and `t1`, coloured by `ok`.
pub fn timeline(title: &str, marks: &[(DateTime<Utc>, bool)], t0: DateTime<Utc>, t1: DateTime<Utc>) -> Markup {
    let shown: Vec<&(DateTime<Utc>, bool)> = marks.iter().filter(|(t, _)| *t >= t0 && *t <= t1).collect();
    let span = ((t1 - t0).num_milliseconds() as f64).max(1.0);
    let failed = shown.iter().filter(|(_, ok)| !ok).count();
    let summary = format!("{} between {} and {} ({} failed)", shown.len(), day(t0), day(t1), failed);
    let shown = thin(&shown, MAX_POINTS * 2);
    let mid = (TOP + H - BOTTOM) / 2.0;
    frame(
        title,
        &summary,
        html! {
            (axis_labels(t0, t1, "", ""))
            line x1=(LEFT) y1=(mid) x2=(W - RIGHT) y2=(mid) stroke=(GRID) {}
            @for (t, ok) in shown {
                @let x = format!("{:.1}", x_of(*t, t0, span));
                @if *ok {
                    line x1=(x) y1=(mid - 18.0) x2=(x) y2=(mid + 18.0) stroke=(LINE) stroke-width="2" {}
                } @else {
                    line x1=(x) y1=(mid - 30.0) x2=(x) y2=(mid + 30.0) stroke="#b3261e" stroke-width="3" {}
                }
            }
        },
    )
}

/// Vertical bars, one per label (oldest first).
pub fn bars(title: &str, items: &[(String, f64)], fmt: impl Fn(f64) -> String) -> Markup {
    if items.is_empty() {
        return html! { p.empty { (title) ": no data yet." } };
    }
    let max = items.iter().map(|i| i.1).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let n = items.len() as f64;
    // At most 40 units wide: one day alone is a bar, not a wall.
    let slot = ((W - LEFT - RIGHT) / n).min(40.0);
    let total: f64 = items.iter().map(|i| i.1).sum();
    let summary = match items {
        [one] => format!("1 bar, {}: {}", one.0, fmt(total)),
        _ => format!("{} bars from {} to {}, {} in all", items.len(), items[0].0, items[items.len() - 1].0, fmt(total)),
    };
    let (first, last) = (items[0].0.clone(), items[items.len() - 1].0.clone());
    frame(
        title,
        &summary,
        html! {
            line x1=(LEFT) y1=(H - BOTTOM) x2=(W - RIGHT) y2=(H - BOTTOM) stroke=(GRID) {}
            text x=(LEFT - 6.0) y=(TOP + 10.0) fill=(INK) font-size="11" text-anchor="end" { (fmt(max)) }
            text x=(LEFT - 6.0) y=(H - BOTTOM) fill=(INK) font-size="11" text-anchor="end" { "0" }
            text x=(LEFT) y=(H - 6.0) fill=(INK) font-size="11" { (first) }
            @if items.len() > 1 {
                text x=(LEFT + n * slot) y=(H - 6.0) fill=(INK) font-size="11" text-anchor="end" { (last) }
            }
            @for (i, (label, v)) in items.iter().enumerate() {
                @let h = v / max * (H - BOTTOM - TOP);
                rect x=(format!("{:.1}", LEFT + i as f64 * slot + slot * 0.1)) y=(format!("{:.1}", H - BOTTOM - h))
                    width=(format!("{:.1}", (slot * 0.8).max(1.0))) height=(format!("{h:.1}")) fill=(LINE) {
                    title { (label) ": " (fmt(*v)) }
                }
            }
        },
    )
}

/// Horizontal bars from 0 to `max`, one per label (in order), each coloured by `colour` of its
/// value and labelled with `fmt` of it: for shares such as RPO compliance in percent.
pub fn hbars(
    title: &str,
    items: &[(String, f64)],
    max: f64,
    fmt: impl Fn(f64) -> String,
    colour: impl Fn(f64) -> &'static str,
) -> Markup {
    if items.is_empty() {
        return html! { p.empty { (title) ": no data yet." } };
    }
    let row = 22.0;
    let h = TOP + items.len() as f64 * row + 6.0;
    let left = 150.0;
    let width = W - left - 70.0;
    let max = max.max(f64::MIN_POSITIVE);
    let summary: Vec<String> = items.iter().map(|(l, v)| format!("{l} {}", fmt(*v))).collect();
    let summary = summary.join(", ");
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {h}")) role="img" aria-label=(format!("{title}: {summary}")) xmlns="http://www.w3.org/2000/svg" {
                title { (title) }
                @for (i, (label, v)) in items.iter().enumerate() {
                    @let y = TOP + i as f64 * row;
                    @let bw = (v.clamp(0.0, max) / max * width).max(1.0);
                    text x=(left - 8.0) y=(format!("{:.1}", y + 14.0)) fill=(INK) font-size="12" text-anchor="end" { (label) }
                    rect x=(left) y=(format!("{y:.1}")) width=(format!("{width:.1}")) height="16" fill="#eef1f5" {}
                    rect x=(left) y=(format!("{y:.1}")) width=(format!("{bw:.1}")) height="16" fill=(colour(*v)) {
                        title { (label) ": " (fmt(*v)) }
                    }
                    text x=(format!("{:.1}", left + width + 6.0)) y=(format!("{:.1}", y + 13.0)) fill=(INK) font-size="12" { (fmt(*v)) }
                }
            }
            figcaption { (title) " — " (summary) }
        }
    }
}

/// A number in few characters for axis labels: `3.1T`, `250G`, `12k`, `900`.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    let (d, suffix) = match a {
        _ if a >= 1e12 => (1e12, "T"),
        _ if a >= 1e9 => (1e9, "G"),
        _ if a >= 1e6 => (1e6, "M"),
        _ if a >= 1e4 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let x = v / d;
    if x.fract() == 0.0 {
        format!("{x:.0}{suffix}")
    } else {
        format!("{x:.2}{suffix}").replace(".00", "")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn long_series_are_thinned_and_keep_their_ends() {
        let v: Vec<u32> = (0..10_000).collect();
        let t = thin(&v, 400);
        assert!(t.len() <= 401, "{}", t.len());
        assert_eq!((t[0], *t.last().unwrap()), (0, 9_999));
        assert_eq!(thin(&v[..10], 400).len(), 10);
    }

    #[test]
    fn a_line_chart_is_an_image_with_a_text_alternative() {
        let t0 = Utc::now();
        let pts: Vec<_> = (0..5).map(|i| (t0 + chrono::Duration::hours(i), i as f64 * 10.0)).collect();
        let svg = line("Size", &pts, |v| format!("{v:.0} B")).into_string();
        assert!(svg.contains("role=\"img\"") && svg.contains("aria-label=\"Size: 5 points"), "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(line("Size", &[], |v| v.to_string()).into_string().contains("no data yet"));
    }
}
