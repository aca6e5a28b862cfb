//! `lifeboat verify [SNAPSHOT|latest] [--all] [--read-data] [--restore-test]`.

use anyhow::Result;
use chrono::Local;
use lifeboat_ops::records::Outcome;
use lifeboat_service::verify::{self, Verified, VerifyRequest};

use super::Ctx;
use crate::args::VerifyArgs;
use crate::output::{self, Progress};

pub fn run(c: &Ctx, a: &VerifyArgs) -> Result<i32> {
    let req = VerifyRequest {
        snapshot: a.snapshot.clone(),
        filter: super::filter(&a.filter),
        all: a.all,
        read_data: a.read_data,
        restore_test: a.restore_test,
    };
    let human = !c.g.json && !c.g.quiet;
    let progress = Progress::new(c.g);
    let report = verify::verify(&c.session, &req, &c.interrupt, progress.observer(), &mut |v| {
        if human {
            progress.suspend(|| print(v));
        }
    })?;
    progress.finish();
    let results = &report.results;
    // Damaged snapshot files are failures of their own: the newest of a source may be among them.
    if c.g.json {
        let mut out: Vec<_> = results
            .iter()
            .map(|v| serde_json::json!({"verification": v.record, "check": v.check, "restore_test": v.test}))
            .collect();
        for d in &report.damaged {
            out.push(serde_json::json!({"damaged_snapshot": d, "verification": {"outcome": "failed"}}));
        }
        output::json(&out)?;
    } else if !c.g.quiet {
        for d in &report.damaged {
            println!("FAILED    {d}");
        }
        let n = |o: Outcome| results.iter().filter(|v| v.record.outcome == o).count();
        println!(
            "{} verified: {} ok, {} failed, {} partial",
            output::count(results.len() + report.damaged.len(), "snapshot"),
            n(Outcome::Ok),
            n(Outcome::Failed) + report.damaged.len(),
            n(Outcome::Partial)
        );
    }
    Ok(output::outcome_code(report.worst()))
}

fn print(v: &Verified) {
    let (snap, r) = (&v.snapshot, &v.record);
    println!(
        "{}  {}  {:<28}  {:<30}  {:<7}  {}",
        snap.id.short(),
        snap.snapshot.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
        verify::label(snap),
        r.checks.join("+"),
        output::outcome_word(r.outcome),
        output::duration(std::time::Duration::from_secs_f64(r.duration_seconds))
    );
    if let Some(t) = v.test.as_ref().filter(|t| t.problems.is_empty() && t.skipped.is_empty()) {
        println!(
            "          restore test: {} ({}), removed again",
            t.target,
            lifeboat_service::verify::test_summary(&t.details)
        );
    }
    for f in &r.findings {
        println!("          {f}");
    }
}
