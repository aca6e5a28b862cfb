//! The repository's storage itself (not its contents): `storage test` (a probe object written,
//! read whole and in part, listed, deleted, timed — no password or repository needed), usage,
//! and S3 Object Lock on the bucket.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use lifeboat_backend::{
    is_s3_url, Backend, DefaultRetention, ExtendReport, FileType, LockMode, ObjectLockStatus, S3Backend, Versioning,
};
use serde::Serialize;

use crate::error::{Result, ServiceError};
use crate::session::{local_path, one_line, Session};

/// `storage usage`.
pub fn usage(session: &Session) -> Result<lifeboat_ops::usage::Usage> {
    let repo = session.open()?;
    Ok(lifeboat_ops::usage::usage(&repo)?)
}

/// Free space of the file system a local repository lives on, against the threshold
/// (`[jobs] storage_low_percent`, default 10 %; the daemon alerts `storage_low` on the same).
#[derive(Clone, Debug, Serialize)]
pub struct FreeSpace {
    /// The repository's directory.
    pub path: String,
    /// Bytes available to this user.
    pub free_bytes: u64,
    /// Size of the file system.
    pub total_bytes: u64,
    /// `free_bytes` as a share of `total_bytes`.
    pub free_percent: f64,
    /// Below this share free is low.
    pub threshold_percent: u8,
    /// Whether the free share is below the threshold.
    pub low: bool,
}

impl FreeSpace {
    /// One line for people.
    pub fn line(&self) -> String {
        let verdict = if self.low { "LOW: below" } else { "ok, threshold" };
        format!(
            "free space     {} of {} ({:.1} %) on {}; {verdict} {} % ([jobs] storage_low_percent)",
            crate::human::size(self.free_bytes),
            crate::human::size(self.total_bytes),
            self.free_percent,
            self.path,
            self.threshold_percent
        )
    }

    /// Free space of the file system holding `path`, against `threshold_percent`.
    pub fn measure(path: &str, threshold_percent: u8) -> Result<FreeSpace> {
        let st = nix::sys::statvfs::statvfs(path)
            .map_err(|e| ServiceError::io(format!("cannot read the free space of {path}"), std::io::Error::from(e)))?;
        // The statvfs field types differ between platforms (u64 on Linux x86_64, u32 elsewhere).
        #[allow(clippy::unnecessary_cast)]
        let (free, total) = {
            let block = st.fragment_size() as u64;
            (st.blocks_available() as u64 * block, st.blocks() as u64 * block)
        };
        Ok(FreeSpace::of(path, free, total, threshold_percent))
    }

    /// The verdict on `free_bytes` of `total_bytes` against `threshold_percent`.
    pub fn of(path: &str, free_bytes: u64, total_bytes: u64, threshold_percent: u8) -> FreeSpace {
        FreeSpace {
            path: path.to_string(),
            free_bytes,
            total_bytes,
            free_percent: if total_bytes == 0 { 100.0 } else { free_bytes as f64 * 100.0 / total_bytes as f64 },
            threshold_percent,
            low: total_bytes > 0
                && free_bytes.saturating_mul(100) < total_bytes.saturating_mul(u64::from(threshold_percent)),
        }
    }
}

/// The free space of a local repository's file system (`None` for remote stores: a bucket
/// has no size), against the config's `[jobs] storage_low_percent`.
pub fn free_space(session: &Session) -> Result<Option<FreeSpace>> {
    let url = session.repo_url()?;
    if lifeboat_backend::is_remote_url(&url) {
        return Ok(None);
    }
    let path = crate::session::local_path(&url)?;
    let threshold =
        session.config()?.map_or(crate::config::DEFAULT_STORAGE_LOW_PERCENT, |c| c.jobs.storage_low_percent());
    FreeSpace::measure(path, threshold).map(Some)
}

/// `storage usage`: what the repository holds, and the free space where it lives.
#[derive(Debug, Serialize)]
pub struct UsageReport {
    /// Sizes, ratios, sources, growth.
    #[serde(flatten)]
    pub usage: lifeboat_ops::usage::Usage,
    /// Local repositories: the file system's free space.
    pub free_space: Option<FreeSpace>,
}

impl UsageReport {
    /// Whether the free space is below the threshold.
    pub fn low(&self) -> bool {
        self.free_space.as_ref().is_some_and(|f| f.low)
    }

    /// The report for people.
    pub fn lines(&self) -> Vec<String> {
        let mut out = usage_lines(&self.usage);
        if let Some(f) = &self.free_space {
            out.insert(1, f.line());
        }
        out
    }
}

/// [`usage`] and [`free_space`] together.
pub fn usage_report(session: &Session) -> Result<UsageReport> {
    Ok(UsageReport { usage: usage(session)?, free_space: free_space(session)? })
}

/// One timed step of `storage test`.
#[derive(Debug, Serialize)]
pub struct Step {
    /// `write`, `size`, `read`, `read range`, `list`, `delete`, `gone`.
    pub step: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// Latency in milliseconds.
    pub ms: f64,
    /// Bytes moved (write and read steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Throughput of the bytes moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mib_per_s: Option<f64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `storage test` found.
#[derive(Debug, Serialize)]
pub struct TestReport {
    /// The storage tested.
    pub location: String,
    /// The probe object.
    pub object: String,
    /// Its size.
    pub size: u64,
    /// Whether every step passed.
    pub ok: bool,
    /// Total time.
    pub total_ms: f64,
    /// The steps run (up to the first failure).
    pub steps: Vec<Step>,
    /// The bucket's versioning and Object Lock (S3 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockStatus>,
}

/// Pseudo-random, incompressible probe content (xorshift64*).
fn probe_data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// `storage test`: the report, and the step that failed (with why) if one did. A local
/// directory that does not exist yet is created first (as `init` would) and reported.
pub fn test(session: &Session, size: u64) -> Result<(TestReport, Option<(&'static str, ServiceError)>)> {
    // A local directory that does not exist yet: say how it comes into being rather than
    // failing with the OS error of the first write.
    let url = session.repo_url()?;
    let missing = if lifeboat_backend::is_remote_url(&url) {
        None
    } else {
        let dir = local_path(&url)?;
        (!std::path::Path::new(dir).exists()).then(|| dir.to_string())
    };
    let backend = session.backend()?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let name = format!("storage-test/probe-{}-{nanos:x}", std::process::id());
    let len = usize::try_from(size).map_err(|_| ServiceError::usage("--size is too large"))?;
    let data = probe_data(len, nanos as u64 ^ u64::from(std::process::id()));
    let size = data.len() as u64;
    let (range_off, range_len) = (size / 2, size.min(4096) as u32);
    let range_off = range_off.min(size - u64::from(range_len));
    let mut report = TestReport {
        location: backend.location(),
        object: format!("lifeboat/{name}"),
        size,
        ok: true,
        total_ms: 0.0,
        steps: Vec::new(),
        object_lock: lock_status_if_s3(session),
    };
    if let Some(dir) = missing {
        let why = format!("{dir} does not exist yet: `lifeboat init` creates it (or create it with mkdir -p {dir})");
        report.ok = false;
        report.steps.push(Step {
            step: "write",
            ok: false,
            ms: 0.0,
            bytes: None,
            mib_per_s: None,
            error: Some(why.clone()),
        });
        return Ok((report, Some(("write", ServiceError::msg(why)))));
    }
    let b: &dyn Backend = &*backend;
    type Check<'a> = Box<dyn Fn() -> Result<()> + 'a>;
    let fail = |m: String| Err(ServiceError::msg(m));
    let steps: Vec<(&'static str, Option<u64>, Check)> = vec![
        ("write", Some(size), Box::new(|| Ok(b.save(FileType::Lifeboat, &name, &data)?))),
        (
            "size",
            None,
            Box::new(|| match b.size(FileType::Lifeboat, &name)? {
                n if n == size => Ok(()),
                n => fail(format!("the probe has {n} bytes instead of {size}")),
            }),
        ),
        (
            "read",
            Some(size),
            Box::new(|| {
                if b.load(FileType::Lifeboat, &name)? != data {
                    return fail("the probe read back differs from what was written".into());
                }
                Ok(())
            }),
        ),
        (
            "read range",
            Some(u64::from(range_len)),
            Box::new(|| {
                let got = b.load_range(FileType::Lifeboat, &name, range_off, range_len)?;
                let want = &data[range_off as usize..range_off as usize + range_len as usize];
                if got != want {
                    return fail(format!("{range_len} bytes at offset {range_off} differ from what was written"));
                }
                Ok(())
            }),
        ),
        (
            "list",
            None,
            Box::new(|| {
                if !b.list(FileType::Lifeboat)?.iter().any(|(n, s)| *n == name && *s == size) {
                    return fail("the probe is missing from the listing of lifeboat/".into());
                }
                Ok(())
            }),
        ),
        ("delete", None, Box::new(|| Ok(b.remove(FileType::Lifeboat, &name)?))),
        (
            "gone",
            None,
            Box::new(|| match b.load(FileType::Lifeboat, &name) {
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e.into()),
                Ok(_) => fail("the probe can still be read after it was deleted".into()),
            }),
        ),
    ];
    let start = Instant::now();
    let mut failure = None;
    for (step, bytes, check) in &steps {
        let t = Instant::now();
        let result = check();
        let took = t.elapsed();
        let rate = bytes.filter(|n| result.is_ok() && *n >= 1 << 20 && !took.is_zero()).map(|n| {
            let mib = n as f64 / (1u64 << 20) as f64 / took.as_secs_f64();
            (mib * 10.0).round() / 10.0
        });
        let error = result.as_ref().err().map(|e| one_line(e));
        report.steps.push(Step { step, ok: result.is_ok(), ms: ms(took), bytes: *bytes, mib_per_s: rate, error });
        if let Err(e) = result {
            failure = Some((*step, e));
            break;
        }
    }
    report.total_ms = ms(start.elapsed());
    if let Some((step, _)) = &failure {
        report.ok = false;
        // Best effort: do not leave the probe behind after a later step failed.
        if !matches!(*step, "write" | "delete" | "gone") {
            let _ = b.remove(FileType::Lifeboat, &name);
        }
    }
    Ok((report, failure))
}

/// The repository's backend as an [`S3Backend`], `None` for a local repository.
fn s3_backend_if_s3(session: &Session) -> Result<Option<S3Backend>> {
    let url = session.repo_url()?;
    if !is_s3_url(&url) {
        return Ok(None);
    }
    Ok(Some(S3Backend::new(&url, &session.s3_options()?)?))
}

/// The repository's backend as an [`S3Backend`], or a clear error for a local repository.
pub fn s3_backend(session: &Session) -> Result<S3Backend> {
    match s3_backend_if_s3(session)? {
        Some(b) => Ok(b),
        None => Err(ServiceError::msg(format!(
            "Object Lock is a feature of S3 buckets and {} is a local repository: use `lifeboat append-only on` (and a second copy) instead",
            session.repo_url()?
        ))),
    }
}

/// The bucket's Object Lock status when the repository is on S3 (`None` for a directory, or
/// when the server cannot say).
pub fn lock_status_if_s3(session: &Session) -> Option<ObjectLockStatus> {
    s3_backend_if_s3(session).ok()??.object_lock().ok()
}

/// For `apply-retention`: on an S3 bucket with Object Lock and a default retention, moves the
/// lock of everything the repository now holds to now + that retention, so old packs that new
/// snapshots still use stay protected as long as the newest snapshot. `None` elsewhere.
pub fn extend_after_retention(session: &Session) -> Result<Option<ExtendReport>> {
    let Some(b) = s3_backend_if_s3(session)? else { return Ok(None) };
    let status = b.object_lock()?;
    if !status.lock_enabled || status.default_retention.is_none() {
        return Ok(None);
    }
    let report = extend(&b, &status, None, None).map_err(|e| ServiceError::Context {
        context: "retention was applied, but extending the object locks failed".into(),
        source: Box::new(e),
    })?;
    Ok(Some(report))
}

/// A lock mode by name (`compliance`, `governance`).
pub fn parse_mode(text: &str) -> Result<LockMode> {
    text.parse::<LockMode>().map_err(ServiceError::usage)
}

/// `storage lock set`: the bucket's default retention (`None` removes it).
pub fn set_default_retention(b: &S3Backend, days: Option<u32>, mode: &str) -> Result<()> {
    let retention = match days {
        None => None,
        Some(days) => Some(DefaultRetention { mode: parse_mode(mode)?, days }),
    };
    Ok(b.set_default_retention(retention)?)
}

/// `storage create-bucket`: the bucket (with Object Lock and a default retention if asked).
pub fn create_bucket(b: &S3Backend, object_lock: bool, days: Option<u32>, mode: &str) -> Result<()> {
    b.create_bucket(object_lock)?;
    if object_lock && !b.object_lock()?.lock_enabled {
        return Err(ServiceError::msg(format!(
            "the bucket {:?} already exists without Object Lock; use a new bucket name",
            b.bucket()
        )));
    }
    if let Some(days) = days {
        b.set_default_retention(Some(DefaultRetention { mode: parse_mode(mode)?, days }))?;
    }
    Ok(())
}

/// Extends the lock of every current object to now + `days` (default: the bucket's default
/// retention). Fails with a reason when the bucket has no Object Lock.
pub fn extend(b: &S3Backend, status: &ObjectLockStatus, days: Option<u32>, mode: Option<&str>) -> Result<ExtendReport> {
    if !status.lock_enabled {
        return Err(ServiceError::msg(format!(
            "the bucket {:?} has no Object Lock: it must be created with Object Lock enabled (see docs/storage.md)",
            b.bucket()
        )));
    }
    let Some(days) = days.or(status.default_retention.map(|r| r.days)) else {
        return Err(ServiceError::msg(
            "the bucket has no default retention: give --days, or set one with `lifeboat storage lock set --days N`",
        ));
    };
    let mode = match mode {
        Some(m) => parse_mode(m)?,
        None => status.default_retention.map_or(LockMode::Compliance, |r| r.mode),
    };
    Ok(b.extend_retention(mode, Utc::now() + chrono::Duration::days(i64::from(days)))?)
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

/// "1 day", "30 days".
pub fn days(n: u32) -> String {
    crate::human::count(n as usize, "day")
}

/// `storage usage` in lines for people: totals, ratios, per source, growth of the last 14 days.
pub fn usage_lines(u: &lifeboat_ops::usage::Usage) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!(
        "repository     {}  ({} in {} packs, {} metadata)",
        crate::human::size(u.pack_bytes + u.metadata_bytes),
        crate::human::size(u.pack_bytes),
        u.packs,
        crate::human::size(u.metadata_bytes)
    ));
    out.push(format!(
        "blobs          {} data, {} tree; {} unique data, {} stored",
        u.data_blobs,
        u.tree_blobs,
        crate::human::size(u.unique_bytes),
        crate::human::size(u.stored_bytes)
    ));
    out.push(format!("snapshots      {}, {} as backed up", u.snapshots, crate::human::size(u.logical_bytes)));
    out.push(format!(
        "deduplication  {:.2}x   compression {:.2}x   overall {:.2}x",
        u.dedup_ratio,
        u.compression_ratio,
        u.dedup_ratio * u.compression_ratio
    ));
    out.push(String::new());
    out.push(format!("{:<28} {:>9} {:>12} {:>12}  latest", "source", "snapshots", "latest size", "added"));
    for s in &u.sources {
        let latest =
            s.latest.map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
        out.push(format!(
            "{:<28} {:>9} {:>12} {:>12}  {latest}",
            s.source,
            s.snapshots,
            crate::human::size(s.latest_bytes),
            crate::human::size(s.added_bytes)
        ));
    }
    out.push(String::new());
    out.push(format!("{:<10} {:>9} {:>12}", "day", "snapshots", "added"));
    for d in u.growth.iter().rev().take(14).rev() {
        out.push(format!("{:<10} {:>9} {:>12}", d.day, d.snapshots, crate::human::size(d.added_bytes)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::FreeSpace;
    use crate::config::JobsSection;

    #[test]
    fn free_space_is_low_below_the_threshold_and_the_default_threshold_is_ten_percent() {
        // The default applies when `[jobs] storage_low_percent` is not set.
        let threshold = JobsSection::default().storage_low_percent();
        assert_eq!(threshold, 10);
        let gib = 1 << 30;
        let low = FreeSpace::of("/srv/backup", 9 * gib, 100 * gib, threshold);
        assert!(low.low);
        assert!((low.free_percent - 9.0).abs() < 1e-9);
        assert!(
            low.line().contains("(9.0 %) on /srv/backup; LOW: below 10 % ([jobs] storage_low_percent)"),
            "{}",
            low.line()
        );
        // Exactly at the threshold is not low; 0 % never is; an empty total is not judged.
        let ok = FreeSpace::of("/srv/backup", 10 * gib, 100 * gib, threshold);
        assert!(!ok.low);
        assert!(ok.line().contains("(10.0 %) on /srv/backup; ok, threshold 10 %"), "{}", ok.line());
        assert!(!FreeSpace::of("/", 0, 100 * gib, 0).low);
        assert!(!FreeSpace::of("/", 0, 0, 10).low);
        // A value from the config replaces the default.
        let jobs = JobsSection { storage_low_percent: Some(25), ..JobsSection::default() };
        assert_eq!(jobs.storage_low_percent(), 25);
        assert!(FreeSpace::of("/", 20 * gib, 100 * gib, jobs.storage_low_percent()).low);
    }
}
