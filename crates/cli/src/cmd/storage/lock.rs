//! `lifeboat storage lock [set|extend]`: S3 Object Lock on the repository's bucket.
//!
//! Needs the bucket's credentials but not the repository password: extending locks is a
//! storage-level job that a scheduler may run with the S3 credentials alone.

use anyhow::{bail, Result};
use chrono::{Duration, Local, Utc};
use lifeboat_backend::{is_s3_url, DefaultRetention, ExtendReport, LockMode, ObjectLockStatus, S3Backend, Versioning};
use serde::Serialize;

use crate::args::{CreateBucketArgs, Global, LockAction};
use crate::{context, exit, output};

/// Run `storage lock` (status), `storage lock set` or `storage lock extend`.
pub fn run(g: &Global, action: Option<&LockAction>) -> Result<i32> {
    let b = s3_backend(g)?;
    match action {
        None => status(g, &b),
        Some(LockAction::Set { days, mode, off }) => {
            let retention = match (off, days) {
                (true, _) | (false, None) => None,
                (false, Some(days)) => Some(DefaultRetention { mode: parse_mode(mode)?, days: *days }),
            };
            b.set_default_retention(retention)?;
            status(g, &b)
        }
        Some(LockAction::Extend { days, mode }) => {
            let status = b.object_lock()?;
            let report = extend(&b, &status, *days, mode.as_deref())?;
            if g.json {
                output::json(&report)?;
            } else if !g.quiet {
                println!("{}", extend_line(&report));
            }
            Ok(exit::OK)
        }
    }
}

/// `storage create-bucket`: the bucket (with Object Lock and a default retention if asked),
/// then the same status as `storage lock`.
pub fn create_bucket(g: &Global, a: &CreateBucketArgs) -> Result<i32> {
    let b = s3_backend(g)?;
    b.create_bucket(a.object_lock)?;
    if a.object_lock && !b.object_lock()?.lock_enabled {
        bail!("the bucket {:?} already exists without Object Lock; use a new bucket name", b.bucket());
    }
    if let Some(days) = a.days {
        b.set_default_retention(Some(DefaultRetention { mode: parse_mode(&a.mode)?, days }))?;
    }
    status(g, &b)
}

/// The bucket's Object Lock status when the repository is on S3 (`None` for a directory, or
/// when the server cannot say), for reports such as `storage test`.
pub fn status_if_s3(g: &Global) -> Option<ObjectLockStatus> {
    s3_backend_if_s3(g).ok()??.object_lock().ok()
}

/// For `apply-retention`: on an S3 bucket with Object Lock and a default retention, moves the
/// lock of everything the repository now holds to now + that retention, so old packs that new
/// snapshots still use stay protected as long as the newest snapshot. `None` elsewhere.
pub fn extend_after_retention(g: &Global) -> Result<Option<ExtendReport>> {
    let Some(b) = s3_backend_if_s3(g)? else { return Ok(None) };
    let status = b.object_lock()?;
    if !status.lock_enabled || status.default_retention.is_none() {
        return Ok(None);
    }
    let report = extend(&b, &status, None, None)
        .map_err(|e| e.context("retention was applied, but extending the object locks failed"))?;
    Ok(Some(report))
}

/// The repository's backend as an [`S3Backend`], `None` for a local repository.
fn s3_backend_if_s3(g: &Global) -> Result<Option<S3Backend>> {
    let url = context::repo_url(g)?;
    if !is_s3_url(&url) {
        return Ok(None);
    }
    Ok(Some(S3Backend::new(&url, &context::s3_options(g)?)?))
}

/// One line saying how well the bucket protects old versions.
pub fn protection_line(s: &ObjectLockStatus) -> String {
    match (s.lock_enabled, s.default_retention, s.versioning) {
        (true, Some(r), _) => format!("object lock: new objects locked for {} ({} mode)", days(r.days), r.mode),
        (true, None, _) => "object lock: enabled, but no default retention (new objects are not locked)".into(),
        (false, _, Versioning::Enabled) => "object lock: off (versioning on: old versions kept, but deletable)".into(),
        (false, _, _) => "object lock: off (deleting or overwriting destroys objects)".into(),
    }
}

/// The repository's backend as an [`S3Backend`], or a clear error for a local repository.
fn s3_backend(g: &Global) -> Result<S3Backend> {
    match s3_backend_if_s3(g)? {
        Some(b) => Ok(b),
        None => bail!(
            "Object Lock is a feature of S3 buckets and {} is a local repository: use `lifeboat append-only on` (and a second copy) instead",
            context::repo_url(g)?
        ),
    }
}

fn parse_mode(text: &str) -> Result<LockMode> {
    text.parse::<LockMode>().map_err(|e| anyhow::anyhow!(e))
}

/// Extends the lock of every current object to now + `days` (default: the bucket's default
/// retention). Fails with a reason when the bucket has no Object Lock.
fn extend(b: &S3Backend, status: &ObjectLockStatus, days: Option<u32>, mode: Option<&str>) -> Result<ExtendReport> {
    if !status.lock_enabled {
        bail!(
            "the bucket {:?} has no Object Lock: it must be created with Object Lock enabled (see docs/storage.md)",
            b.bucket()
        );
    }
    let Some(days) = days.or(status.default_retention.map(|r| r.days)) else {
        bail!("the bucket has no default retention: give --days, or set one with `lifeboat storage lock set --days N`")
    };
    let mode = match mode {
        Some(m) => parse_mode(m)?,
        None => status.default_retention.map_or(LockMode::Compliance, |r| r.mode),
    };
    Ok(b.extend_retention(mode, Utc::now() + Duration::days(i64::from(days)))?)
}

/// One line for an extension report.
pub fn extend_line(r: &ExtendReport) -> String {
    let until = r.until.with_timezone(&Local).format("%Y-%m-%d %H:%M");
    let later =
        if r.already_later > 0 { format!(" ({} already locked longer)", r.already_later) } else { String::new() };
    format!("object lock: {} of {} objects now locked until {until}{later}", r.extended, r.objects)
}

#[derive(Serialize)]
struct StatusReport<'a> {
    location: String,
    bucket: &'a str,
    #[serde(flatten)]
    status: ObjectLockStatus,
}

fn status(g: &Global, b: &S3Backend) -> Result<i32> {
    use lifeboat_backend::Backend as _;
    let status = b.object_lock()?;
    if g.json {
        output::json(&StatusReport { location: b.location(), bucket: b.bucket(), status })?;
        return Ok(exit::OK);
    }
    if g.quiet {
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
        (true, Some(r)) => println!("object lock  enabled, new objects locked for {} in {} mode", days(r.days), r.mode),
        (true, None) => println!(
            "object lock  enabled, but no default retention: new objects are not locked (`storage lock set --days N`)"
        ),
        (false, _) => println!(
            "object lock  off: anyone with the credentials can destroy the backups (create the bucket with Object Lock; see docs/storage.md)"
        ),
    }
    Ok(exit::OK)
}

/// "1 day", "30 days".
fn days(n: u32) -> String {
    if n == 1 {
        "1 day".to_owned()
    } else {
        format!("{n} days")
    }
}
