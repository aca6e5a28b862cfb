//! Output: human sizes and durations, JSON, and progress drawn from the service's events — a bar
//! (with a total and an ETA once known) on a terminal, one line per long step when piped.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeboat_service::{Event, Observer};

use crate::args::Global;

pub use lifeboat_service::human::{count, duration, size};

/// Whether progress may be drawn (stderr is a terminal and output is for humans).
pub fn interactive(json: bool, quiet: bool) -> bool {
    !json && !quiet && std::io::stderr().is_terminal()
}

/// A progress bar (hidden when not shown). `total` 0 = spinner.
pub fn bar(show: bool, total: u64, template: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = if total == 0 { ProgressBar::new_spinner() } else { ProgressBar::new(total) };
    pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
    style(&pb, template);
    pb.enable_steady_tick(Duration::from_millis(125));
    pb
}

fn style(pb: &ProgressBar, template: &str) {
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
}

/// An observer that only prints notices and warnings (for commands with their own progress).
pub fn notes() -> Arc<Observer> {
    Arc::new(|e: &Event| match e {
        Event::Notice { message } => eprintln!("notice: {message}"),
        Event::Warning { message } => eprintln!("lifeboat: warning: {message}"),
        _ => {}
    })
}

/// Print a value as pretty JSON on stdout.
pub fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `v` as JSON with `--json`, else `text()` unless `--quiet`.
pub fn show<T: serde::Serialize>(g: &Global, v: &T, text: impl FnOnce()) -> anyhow::Result<()> {
    if g.json {
        return json(v);
    }
    if !g.quiet {
        text();
    }
    Ok(())
}

/// Draws the service's events: on a terminal a bar (spinner until the total is known, then a
/// bar with an ETA); otherwise, for people (not `--json`/`--quiet`), a line when a long step
/// starts and when it ends. Warnings always go to stderr.
pub struct Progress {
    pb: ProgressBar,
    observer: Arc<Observer>,
}

impl Progress {
    /// Progress for the global options.
    pub fn new(g: &Global) -> Progress {
        let show = interactive(g.json, g.quiet);
        let pb = bar(show, 0, "{spinner} {elapsed} {msg}");
        let lines = !show && !g.json && !g.quiet;
        let state = Arc::new(Mutex::new((pb.clone(), 0u64)));
        let observer: Arc<Observer> = Arc::new(move |e: &Event| {
            let Ok(mut st) = state.lock() else { return };
            let (pb, total) = &mut *st;
            match e {
                Event::Started { step, source, detail, .. } => {
                    let what = if detail.is_empty() { String::new() } else { format!(": {detail}") };
                    if lines {
                        println!("{step} {source} started{what}");
                    }
                    pb.set_prefix(format!("{step} {source}"));
                    pb.set_message(detail.clone());
                    // A new step: its size is not known yet.
                    *total = 0;
                    pb.set_position(0);
                    style(pb, "{spinner} {elapsed} {prefix} {msg}");
                }
                Event::Finished { step, source, ok, seconds, detail } if lines => {
                    let result = if *ok { "done" } else { "FAILED" };
                    let took = duration(Duration::from_secs_f64(*seconds));
                    println!("{step} {source} {result} in {took}: {detail}");
                }
                Event::Totals { bytes, .. } => {
                    *total = *bytes;
                    pb.set_length((*bytes).max(1));
                    style(pb, "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}");
                }
                Event::Progress { files, bytes, bytes_new } => {
                    pb.set_position(*bytes);
                    if *total > 0 {
                        pb.set_message(count(*files as usize, "file"));
                    } else {
                        pb.set_message(format!("{} files, {} read, {} new", files, size(*bytes), size(*bytes_new)));
                    }
                }
                Event::Warning { message } => pb.suspend(|| eprintln!("lifeboat: warning: {message}")),
                Event::Notice { message } => pb.suspend(|| eprintln!("notice: {message}")),
                _ => {}
            }
        });
        Progress { pb, observer }
    }

    /// The observer to hand to the service.
    pub fn observer(&self) -> &Arc<Observer> {
        &self.observer
    }

    /// Run `f` (which prints) with the bar hidden.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.pb.suspend(f)
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.pb.finish_and_clear();
    }
}

/// The human summary of a copy.
pub fn copy_report(label: &str, s: &lifeboat_repository::copy::CopyStats, dry_run: bool) {
    for c in &s.snapshots {
        let what = match (c.skipped, c.copied_id) {
            (true, _) => "already there".to_string(),
            (false, Some(id)) => {
                format!("copied as {} ({} blobs, {})", id.short(), c.blobs_copied, size(c.bytes_copied))
            }
            (false, None) => format!("would copy {} blobs, {}", c.blobs_copied, size(c.bytes_copied)),
        };
        println!("  {}  {what}", c.source_id.short());
    }
    let copied = s.snapshots.iter().filter(|c| !c.skipped).count();
    let verb = if dry_run { "would copy" } else { "copied" };
    println!(
        "{label}: {verb} {copied} of {} ({} blobs, {} new data, {} stored)",
        count(s.snapshots.len(), "snapshot"),
        s.blobs_copied,
        size(s.bytes_copied),
        size(s.bytes_stored)
    );
}

/// One line for an Object Lock extension.
pub fn extend_line(r: &lifeboat_backend::ExtendReport) -> String {
    let until = r.until.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M");
    let later =
        if r.already_later > 0 { format!(" ({} already locked longer)", r.already_later) } else { String::new() };
    format!("object lock: {} of {} objects now locked until {until}{later}", r.extended, r.objects)
}

/// The exit code of a verification outcome: 0 ok, 1 failed, 3 partial.
pub fn outcome_code(o: lifeboat_ops::records::Outcome) -> i32 {
    use lifeboat_ops::records::Outcome;
    match o {
        Outcome::Ok => crate::exit::OK,
        Outcome::Failed => crate::exit::FAILURE,
        Outcome::Partial => crate::exit::PARTIAL,
    }
}

/// `ok`, `FAILED`, `partial`.
pub fn outcome_word(o: lifeboat_ops::records::Outcome) -> &'static str {
    use lifeboat_ops::records::Outcome;
    match o {
        Outcome::Ok => "ok",
        Outcome::Failed => "FAILED",
        Outcome::Partial => "partial",
    }
}
