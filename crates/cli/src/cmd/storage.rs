//! `lifeboat storage test|usage|create-bucket|lock`: the repository's storage itself.

use anyhow::{Context as _, Result};
use lifeboat_backend::{Backend as _, S3Backend, Versioning};
use lifeboat_service::storage::{self, TestReport};

use super::Ctx;
use crate::args::{LockAction, StorageCommand};
use crate::exit;
use crate::output::{self, size};

/// Run a `storage` subcommand.
pub fn run(c: &Ctx, s: &StorageCommand) -> Result<i32> {
    match s {
        StorageCommand::Test(a) => test(c, a.size),
        StorageCommand::Usage => usage(c),
        StorageCommand::CreateBucket(a) => {
            let b = storage::s3_backend(&c.session)?;
            storage::create_bucket(&b, a.object_lock, a.days, &a.mode)?;
            status(c, &b)
        }
        StorageCommand::Lock { action } => {
            let b = storage::s3_backend(&c.session)?;
            match action {
                None => status(c, &b),
                Some(LockAction::Set { days, mode, off }) => {
                    storage::set_default_retention(&b, if *off { None } else { *days }, mode)?;
                    status(c, &b)
                }
                Some(LockAction::Extend { days, mode }) => {
                    let r = storage::extend(&b, &b.object_lock()?, *days, mode.as_deref())?;
                    if c.g.json {
                        output::json(&r)?;
                    } else if !c.g.quiet {
                        println!("{}", output::extend_line(&r));
                    }
                    Ok(exit::OK)
                }
            }
        }
    }
}

fn test(c: &Ctx, bytes: u64) -> Result<i32> {
    let (r, failure) = storage::test(&c.session, bytes)?;
    print_test(c, &r)?;
    match failure {
        Some((step, e)) => Err(anyhow::Error::new(e)).context(format!("storage test failed at step {step:?}")),
        None => Ok(exit::OK),
    }
}

fn print_test(c: &Ctx, r: &TestReport) -> Result<()> {
    if c.g.json {
        return output::json(r);
    }
    if c.g.quiet {
        return Ok(());
    }
    println!("storage test on {}", r.location);
    println!("probe {} ({})", r.object, size(r.size));
    println!("{:<10}  {:>6}  {:>10}  {:>12}", "step", "result", "latency", "rate");
    for s in &r.steps {
        let rate = s.mib_per_s.map(|m| format!("{m:.1} MiB/s")).unwrap_or_default();
        println!("{:<10}  {:>6}  {:>7.1} ms  {:>12}", s.step, if s.ok { "ok" } else { "FAILED" }, s.ms, rate);
    }
    if r.ok {
        println!("all {} steps passed in {:.1} ms", r.steps.len(), r.total_ms);
    }
    if let Some(s) = &r.object_lock {
        println!("{}", storage::protection_line(s));
    }
    Ok(())
}

/// `lifeboat storage usage`.
fn usage(c: &Ctx) -> Result<i32> {
    let u = storage::usage_report(&c.session)?;
    output::show(c.g, &u, || u.lines().iter().for_each(|l| println!("{l}")))?;
    Ok(if u.low() { exit::FAILURE } else { exit::OK })
}

fn status(c: &Ctx, b: &S3Backend) -> Result<i32> {
    let status = b.object_lock()?;
    if c.g.json {
        output::json(&serde_json::json!({
            "location": b.location(), "bucket": b.bucket(), "versioning": status.versioning,
            "lock_enabled": status.lock_enabled, "default_retention": status.default_retention,
        }))?;
        return Ok(exit::OK);
    }
    if c.g.quiet {
        return Ok(exit::OK);
    }
    println!("bucket       {} ({})", b.bucket(), b.location());
    let versioning = match status.versioning {
        Versioning::Enabled => "enabled: deleted and overwritten objects keep their old versions",
        Versioning::Suspended => "suspended: overwrites replace objects",
        Versioning::Off => "off: deleting or overwriting an object destroys it",
    };
    println!("versioning   {versioning}");
    match (status.lock_enabled, status.default_retention) {
        (true, Some(r)) => println!(
            "object lock  enabled, new objects locked for {} in {} mode",
            storage::days(r.days),
            r.mode
        ),
        (true, None) => println!(
            "object lock  enabled, but no default retention: new objects are not locked (`storage lock set --days N`)"
        ),
        (false, _) => println!(
            "object lock  off: anyone with the credentials can destroy the backups (create the bucket with Object Lock; see docs/storage.md)"
        ),
    }
    Ok(exit::OK)
}
