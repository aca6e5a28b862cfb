//! `lifeboat drill`, `drill keygen`, `drill check-report`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use lifeboat_service::drill::{self, DrillRequest, Drilled};

use super::Ctx;
use crate::args::{DrillArgs, DrillCommand, DrillRunArgs};
use crate::exit;
use crate::output::{self, Progress};

/// Run `drill` or one of its subcommands.
pub fn run(c: &Ctx, a: &DrillArgs) -> Result<i32> {
    match &a.command {
        Some(DrillCommand::Keygen { out }) => keygen(c, out),
        Some(DrillCommand::CheckReport { file, public_key }) => check_report(c, file, public_key.as_deref()),
        None => drill_sources(c, &a.run),
    }
}

fn drill_sources(c: &Ctx, a: &DrillRunArgs) -> Result<i32> {
    let req = DrillRequest {
        source: a.source.clone(),
        snapshot: a.snapshot.clone(),
        signing_key: a.signing_key.clone(),
        report_dir: a.report_dir.clone(),
        random: a.random_snapshot,
    };
    let progress = Progress::new(c.g);
    let d = drill::drill(&c.session, &req, &c.interrupt, progress.observer())?;
    progress.finish();
    if !d.is_signed {
        eprintln!("lifeboat: warning: the report is not signed (make a key with `lifeboat drill keygen`, then pass --signing-key FILE, set LIFEBOAT_DRILL_KEY or [drill] signing_key)");
    }
    if c.g.json {
        output::json(&serde_json::json!({
            "report": d.signed.report, "signed": d.is_signed, "report_dir": d.dir, "stored_as": d.stored_as,
        }))?;
    } else if !c.g.quiet {
        print(&d);
    }
    Ok(output::outcome_code(d.report.outcome))
}

fn print(d: &Drilled) {
    let secs = |x: f64| output::duration(std::time::Duration::from_secs_f64(x));
    println!("{:<20} {:<8} {:<9} {:<8} {:>12} {:>10}", "source", "kind", "snapshot", "result", "recovery", "RTO");
    for s in &d.report.sources {
        println!(
            "{:<20} {:<8} {:<9} {:<8} {:>12} {:>10}",
            s.source,
            s.kind,
            s.snapshot.map(|i| i.short()).unwrap_or_else(|| "-".into()),
            output::outcome_word(s.outcome),
            secs(s.rto_seconds),
            s.rto_target_seconds.map(secs).unwrap_or_else(|| "-".into())
        );
        for f in &s.findings {
            println!("    {f}");
        }
    }
    println!("report: {} and {}", d.dir.join("report.json").display(), d.dir.join("report.html").display());
}

fn keygen(c: &Ctx, out: &Path) -> Result<i32> {
    let public = drill::keygen(out)?;
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    if c.g.json {
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

fn check_report(c: &Ctx, file: &Path, public_key: Option<&Path>) -> Result<i32> {
    let (r, report) = drill::check_report(file, public_key)?;
    if c.g.json {
        output::json(&r)?;
    } else if r.ok {
        println!(
            "{}: signature valid, every field as signed — drill of {} on {}: {}",
            file.display(),
            report["time"].as_str().unwrap_or("?"),
            report["host"].as_str().unwrap_or("?"),
            report["outcome"].as_str().unwrap_or("?")
        );
        match r.key_trusted {
            Some(true) => println!("signed by the trusted key {}", r.public_key.unwrap_or_default()),
            _ => println!(
                "signed by key {} (pass --public-key FILE to check it is yours)",
                r.public_key.unwrap_or_default()
            ),
        }
    } else {
        println!("{}: NOT as signed", file.display());
        for p in &r.problems {
            println!("  {p}");
        }
    }
    Ok(if r.ok { exit::OK } else { exit::FAILURE })
}
