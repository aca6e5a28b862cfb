//! `lifeboat drill`: per config source, restore the latest snapshot into a scratch target,
//! verify it natively, measure the time to that verified restore against the source's RTO, and
//! write a signed report (JSON + one self-contained HTML page) into a directory and into the
//! repository. `drill keygen` makes the signing key; `drill check-report` checks a report.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::Utc;
use lifeboat_ops::drill::{self, html, sign, Report, SourceResult};
use lifeboat_ops::records::{self, Outcome, Verification};
use lifeboat_ops::verify;
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::{RepoError, Repository};

use crate::args::{DrillArgs, DrillCommand, DrillRunArgs, Global};
use crate::config::{Config, SourceSection};
use crate::{context, exit, output};

/// Run `drill` or one of its subcommands.
pub fn run(g: &Global, a: &DrillArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    match &a.command {
        Some(DrillCommand::Keygen { out }) => keygen(g, out),
        Some(DrillCommand::CheckReport { file, public_key }) => check_report(g, file, public_key.as_deref()),
        None => drill_sources(g, &a.run, interrupt),
    }
}

fn drill_sources(g: &Global, a: &DrillRunArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let cfg = context::config(g)?.ok_or_else(|| {
        anyhow::anyhow!(
            "a drill needs a config file (its sources and their RTOs): create {} or pass --config FILE",
            context::DEFAULT_CONFIG
        )
    })?;
    let selected: Vec<&SourceSection> = match &a.source {
        Some(s) => vec![cfg.find(s)?],
        None => cfg.sources().collect(),
    };
    if selected.is_empty() {
        anyhow::bail!("{} defines no sources", cfg.path.display());
    }
    let key = signing_key(a, &cfg)?;
    let repo = context::open(g)?;
    let _lock = context::lock(g, &repo, false)?;
    // A damaged snapshot file may be a source's newest: the drill stops instead of picking an older one.
    let all = snapshots::list_intact(&repo)?;
    let started = Utc::now();
    let mut results = Vec::new();
    for src in selected {
        if interrupt.load(Ordering::Relaxed) {
            return Err(RepoError::Interrupted.into());
        }
        results.push(drill_one(g, a, &repo, &all, src)?);
    }
    let report = Report::new(started, repo.config().id.clone(), results);
    let signed = sign::sign(&report, key.as_ref())?;
    let json = serde_json::to_vec_pretty(&signed)?;
    let page = html::render(&report, signed.signature.as_ref().map(|s| s.public_key.as_str()));
    let dir = report_dir(a, &cfg, &report);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the report directory {}", dir.display()))?;
    std::fs::write(dir.join("report.json"), &json)
        .with_context(|| format!("cannot write {}", dir.join("report.json").display()))?;
    std::fs::write(dir.join("report.html"), &page)
        .with_context(|| format!("cannot write {}", dir.join("report.html").display()))?;
    let stored = drill::store_report(&repo, &report.id, &json, &page)?;
    records::record_drill(&repo, &report.summary(Some(stored.clone())))?;
    if key.is_none() {
        eprintln!("lifeboat: warning: the report is not signed (make a key with `lifeboat drill keygen`, then pass --signing-key FILE, set LIFEBOAT_DRILL_KEY or [drill] signing_key)");
    }
    if g.json {
        output::json(
            &serde_json::json!({"report": signed.report, "signed": key.is_some(), "report_dir": dir, "stored_as": format!("lifeboat/{stored}")}),
        )?;
    } else if !g.quiet {
        print(&report, &dir);
    }
    Ok(crate::cmd::verify::code(report.outcome))
}

/// Drill one source: its snapshot restored into scratch, verified, timed; recorded as a
/// verification of that snapshot too.
fn drill_one(
    g: &Global,
    a: &DrillRunArgs,
    repo: &Repository,
    all: &[SnapshotEntry],
    src: &SourceSection,
) -> Result<SourceResult> {
    let rto = match &src.rto {
        Some(r) => Some(
            crate::config::parse_duration(r)
                .map_err(|e| anyhow::anyhow!("source {}: rto: {e}", src.name))?
                .as_secs_f64(),
        ),
        None => None,
    };
    let snap = match &a.snapshot {
        Some(id) => {
            let f = snapshots::Filter { source: Some(src.name.clone()), ..Default::default() };
            Some(snapshots::find(repo, id, &f).with_context(|| format!("source {}", src.name))?)
        }
        None => all.iter().rfind(|s| s.snapshot.source.as_ref().is_some_and(|x| x.name == src.name)).cloned(),
    };
    let Some(snap) = snap else {
        return Ok(SourceResult::failed(&src.name, &src.kind, "no snapshot of this source to restore".into(), rto));
    };
    if !g.json && !g.quiet {
        eprintln!("lifeboat: drill {}: restoring snapshot {} into a scratch target …", src.name, snap.id.short());
    }
    let test = verify::restore_test(repo, &snap, &crate::cmd::verify::scratch_for(g, &snap)?);
    // A slow restore is still a good backup: the verification records the test's own outcome.
    let mut v = Verification {
        time: Utc::now(),
        host: records::host(),
        snapshot: snap.id,
        source: Some(src.name.clone()),
        checks: vec!["restore-test".into(), "drill".into()],
        outcome: test.outcome(),
        findings: test.problems.iter().chain(&test.skipped).cloned().collect(),
        duration_seconds: test.seconds,
    };
    let result = SourceResult::judge(&src.name, &snap, test, rto);
    v.time = Utc::now();
    records::record_verification(repo, &v)?;
    Ok(result)
}

/// `--signing-key` / `LIFEBOAT_DRILL_KEY`, else `[drill] signing_key`; none means unsigned.
fn signing_key(a: &DrillRunArgs, cfg: &Config) -> Result<Option<sign::SigningKey>> {
    let path = match (&a.signing_key, cfg.drill.as_ref().and_then(|d| d.signing_key.as_deref())) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => PathBuf::from(crate::config::substitute(p, "[drill] signing_key")?),
        (None, None) => return Ok(None),
    };
    Ok(Some(sign::read_signing_key(&path)?))
}

/// `--report-dir`, else `[drill] report_dir`/lifeboat-drill-TIME, else ./lifeboat-drill-TIME.
fn report_dir(a: &DrillRunArgs, cfg: &Config, r: &Report) -> PathBuf {
    let name = format!("lifeboat-drill-{}", r.time.format("%Y%m%dT%H%M%SZ"));
    match (&a.report_dir, cfg.drill.as_ref().and_then(|d| d.report_dir.as_deref())) {
        (Some(d), _) => d.clone(),
        (None, Some(parent)) => Path::new(parent).join(name),
        (None, None) => PathBuf::from(name),
    }
}

fn print(r: &Report, dir: &Path) {
    println!("{:<20} {:<8} {:<9} {:<8} {:>12} {:>10}", "source", "kind", "snapshot", "result", "recovery", "RTO");
    for s in &r.sources {
        let word = match s.outcome {
            Outcome::Ok => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Partial => "partial",
        };
        let secs = |x: f64| output::duration(std::time::Duration::from_secs_f64(x));
        println!(
            "{:<20} {:<8} {:<9} {:<8} {:>12} {:>10}",
            s.source,
            s.kind,
            s.snapshot.map(|i| i.short()).unwrap_or_else(|| "-".into()),
            word,
            secs(s.rto_seconds),
            s.rto_target_seconds.map(secs).unwrap_or_else(|| "-".into())
        );
        for f in &s.findings {
            println!("    {f}");
        }
    }
    println!("report: {} and {}", dir.join("report.json").display(), dir.join("report.html").display());
}

fn keygen(g: &Global, out: &Path) -> Result<i32> {
    let public = sign::write_keypair(out)?;
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    if g.json {
        output::json(
            &serde_json::json!({"secret_key_file": out, "public_key_file": PathBuf::from(&pub_path), "public_key": public.trim()}),
        )?;
    } else {
        println!("secret key: {} (mode 0600; keep it where only the drill runs)", out.display());
        println!("public key: {} (give it to whoever checks reports)", PathBuf::from(&pub_path).display());
        print!("{public}");
    }
    Ok(exit::OK)
}

fn check_report(g: &Global, file: &Path, public_key: Option<&Path>) -> Result<i32> {
    let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let trusted = public_key.map(sign::read_public_key).transpose()?;
    let c = sign::check(&data, trusted.as_ref())?;
    if g.json {
        output::json(&c)?;
    } else if c.ok {
        let r: serde_json::Value =
            serde_json::from_slice::<serde_json::Value>(&data).map(|v| v["report"].clone()).unwrap_or_default();
        println!(
            "{}: signature valid, every field as signed — drill of {} on {}: {}",
            file.display(),
            r["time"].as_str().unwrap_or("?"),
            r["host"].as_str().unwrap_or("?"),
            r["outcome"].as_str().unwrap_or("?")
        );
        match c.key_trusted {
            Some(true) => println!("signed by the trusted key {}", c.public_key.unwrap_or_default()),
            _ => println!(
                "signed by key {} (pass --public-key FILE to check it is yours)",
                c.public_key.unwrap_or_default()
            ),
        }
    } else {
        println!("{}: NOT as signed", file.display());
        for p in &c.problems {
            println!("  {p}");
        }
    }
    Ok(if c.ok { exit::OK } else { exit::FAILURE })
}
