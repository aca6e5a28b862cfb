//! `lifeboat storage …`: the repository's storage itself (not its contents).
//!
//! `storage test` writes a probe object under `lifeboat/storage-test/`, reads it back whole
//! and in part, finds it in a listing, deletes it and checks that it is gone, timing each step.
//! It needs neither the password nor an initialised repository, so it also checks a new bucket
//! or directory before `init`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use lifeboat_backend::{Backend, FileType};
use serde::Serialize;

use crate::args::{Global, StorageCommand, StorageTestArgs};
use crate::{context, exit, output};

pub mod lock;

/// Run a `storage` subcommand.
pub fn run(g: &Global, c: &StorageCommand) -> Result<i32> {
    match c {
        StorageCommand::Test(a) => test(g, a),
        StorageCommand::Usage => usage(g),
        StorageCommand::Lock { action } => lock::run(g, action.as_ref()),
        StorageCommand::CreateBucket(a) => lock::create_bucket(g, a),
    }
}

/// `lifeboat storage usage`.
fn usage(g: &Global) -> Result<i32> {
    let repo = context::open(g)?;
    let u = lifeboat_ops::usage::usage(&repo)?;
    if g.json {
        output::json(&u)?;
        return Ok(exit::OK);
    }
    if g.quiet {
        return Ok(exit::OK);
    }
    let sz = output::size;
    println!(
        "repository     {}  ({} in {} packs, {} metadata)",
        sz(u.pack_bytes + u.metadata_bytes),
        sz(u.pack_bytes),
        u.packs,
        sz(u.metadata_bytes)
    );
    println!(
        "blobs          {} data, {} tree; {} unique data, {} stored",
        u.data_blobs,
        u.tree_blobs,
        sz(u.unique_bytes),
        sz(u.stored_bytes)
    );
    println!("snapshots      {}, {} as backed up", u.snapshots, sz(u.logical_bytes));
    println!(
        "deduplication  {:.2}x   compression {:.2}x   overall {:.2}x",
        u.dedup_ratio,
        u.compression_ratio,
        u.dedup_ratio * u.compression_ratio
    );
    println!();
    println!("{:<28} {:>9} {:>12} {:>12}  latest", "source", "snapshots", "latest size", "added");
    for s in &u.sources {
        let latest =
            s.latest.map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
        println!("{:<28} {:>9} {:>12} {:>12}  {latest}", s.source, s.snapshots, sz(s.latest_bytes), sz(s.added_bytes));
    }
    println!();
    println!("{:<10} {:>9} {:>12}", "day", "snapshots", "added");
    for d in u.growth.iter().rev().take(14).rev() {
        println!("{:<10} {:>9} {:>12}", d.day, d.snapshots, sz(d.added_bytes));
    }
    Ok(exit::OK)
}

/// Parses a size such as `4M`, `512K`, `16MiB` or `1000` (bytes) for `--size`.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits].parse().map_err(|_| format!("invalid size {s:?} (examples: 4M, 512K, 1000)"))?;
    let unit: u64 = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("invalid size {s:?}: unknown unit {u:?} (use K, M or G)")),
    };
    let bytes = n.checked_mul(unit).ok_or_else(|| format!("size {s:?} is too large"))?;
    if bytes > 1 << 30 {
        return Err(format!("size {s:?} is too large (at most 1G)"));
    }
    Ok(bytes)
}

/// One timed step.
#[derive(Serialize)]
struct Step {
    step: &'static str,
    ok: bool,
    ms: f64,
    /// Bytes moved (write and read steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    /// Throughput of the bytes moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    mib_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Report {
    location: String,
    object: String,
    size: u64,
    ok: bool,
    total_ms: f64,
    steps: Vec<Step>,
    /// The bucket's versioning and Object Lock (S3 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    object_lock: Option<lifeboat_backend::ObjectLockStatus>,
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

fn test(g: &Global, a: &StorageTestArgs) -> Result<i32> {
    let backend = context::repo_backend(g)?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let name = format!("storage-test/probe-{}-{nanos:x}", std::process::id());
    let data = probe_data(usize::try_from(a.size)?, nanos as u64 ^ u64::from(std::process::id()));
    let size = data.len() as u64;
    let (range_off, range_len) = (size / 2, size.min(4096) as u32);
    let range_off = range_off.min(size - u64::from(range_len));

    let mut report = Report {
        location: backend.location(),
        object: format!("lifeboat/{name}"),
        size,
        ok: true,
        total_ms: 0.0,
        steps: Vec::new(),
        object_lock: lock::status_if_s3(g),
    };
    let b: &dyn Backend = &*backend;
    type Check<'a> = Box<dyn Fn() -> Result<()> + 'a>;
    let steps: Vec<(&'static str, Option<u64>, Check)> = vec![
        ("write", Some(size), Box::new(|| Ok(b.save(FileType::Lifeboat, &name, &data)?))),
        (
            "size",
            None,
            Box::new(|| match b.size(FileType::Lifeboat, &name)? {
                n if n == size => Ok(()),
                n => bail!("the probe has {n} bytes instead of {size}"),
            }),
        ),
        (
            "read",
            Some(size),
            Box::new(|| {
                if b.load(FileType::Lifeboat, &name)? != data {
                    bail!("the probe read back differs from what was written");
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
                    bail!("{range_len} bytes at offset {range_off} differ from what was written");
                }
                Ok(())
            }),
        ),
        (
            "list",
            None,
            Box::new(|| {
                if !b.list(FileType::Lifeboat)?.iter().any(|(n, s)| *n == name && *s == size) {
                    bail!("the probe is missing from the listing of lifeboat/");
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
                Ok(_) => bail!("the probe can still be read after it was deleted"),
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
        let error = result.as_ref().err().map(crate::exit::message);
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
    print(g, &report)?;
    match failure {
        Some((step, e)) => Err(e.context(format!("storage test failed at step {step:?}"))),
        None => Ok(crate::exit::OK),
    }
}

fn print(g: &Global, r: &Report) -> Result<()> {
    if g.json {
        return output::json(r);
    }
    if g.quiet {
        return Ok(());
    }
    println!("storage test on {}", r.location);
    println!("probe {} ({})", r.object, output::size(r.size));
    println!("{:<10}  {:>6}  {:>10}  {:>12}", "step", "result", "latency", "rate");
    for s in &r.steps {
        let rate = s.mib_per_s.map(|m| format!("{m:.1} MiB/s")).unwrap_or_default();
        println!("{:<10}  {:>6}  {:>7.1} ms  {:>12}", s.step, if s.ok { "ok" } else { "FAILED" }, s.ms, rate);
    }
    if r.ok {
        println!("all {} steps passed in {:.1} ms", r.steps.len(), r.total_ms);
    }
    if let Some(s) = &r.object_lock {
        println!("{}", lock::protection_line(s));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("2G").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("M").is_err());
    }
}
