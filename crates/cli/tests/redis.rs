//! The redis source (logical mode) against the real server on 127.0.0.1:6379: backup while a
//! writer runs, restore into another database of the running server, verification, refusal
//! and overwrite, and the failure paths. Keys use a unique prefix and are deleted afterwards.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::process::Command;

use common::*;

fn cli(db: u32, args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(["-h", "127.0.0.1", "-n", &db.to_string()]).args(args).output().unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn server() -> bool {
    service("Redis on 127.0.0.1:6379", Command::new("redis-cli").args(["-h", "127.0.0.1", "ping"]))
}

/// Deletes the prefix's keys in the given databases when dropped.
struct Keys(String, Vec<u32>);
impl Drop for Keys {
    fn drop(&mut self) {
        for db in &self.1 {
            let script = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 1";
            let _ = Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-n", &db.to_string(), "EVAL", script, "0", &format!("{}*", self.0)])
                .output();
        }
    }
}

#[test]
fn redis_backup_under_writes_restores_into_a_running_server() {
    if !server() {
        return;
    }
    let prefix = format!("lbtest{}:", std::process::id());
    let _cleanup = Keys(prefix.clone(), vec![13, 14]);
    let mut pipe = String::new();
    for i in 0..3000 {
        pipe.push_str(&format!("SET {prefix}s:{i} value-{i}\n"));
    }
    pipe.push_str(&format!("HSET {prefix}h a 1 b 2\nRPUSH {prefix}l x y z\nSADD {prefix}set a b c\nZADD {prefix}z 1 a 2 b\nSET {prefix}ttl v EX 5000\n"));
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-n", "13"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(pipe.as_bytes()).unwrap();
    }
    child.wait().unwrap();
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(&cfg, format!("[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"cache\"\nkind = \"redis\"\ndatabases = [13]\npattern = \"{prefix}*\"\n", repo.display())).unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    // A writer keeps adding keys during the backup.
    let writer = {
        let prefix = prefix.clone();
        std::thread::spawn(move || {
            for i in 0..300 {
                let _ = Command::new("redis-cli")
                    .args(["-h", "127.0.0.1", "-n", "13", "SET", &format!("{prefix}live:{i}"), "x"])
                    .output();
            }
        })
    };
    let b: serde_json::Value = serde_json::from_str(&lbc(&cfg, &["backup", "cache", "--json"]).ok().stdout).unwrap();
    writer.join().unwrap();
    let backed_up = b[0]["manifest"]["keys"]["13"].as_u64().unwrap();
    assert!(backed_up >= 3005, "{b:#}");
    assert_eq!(b[0]["manifest"]["mode"], "logical");

    // Restore into another database of the running server; verification counts keys.
    let r = lbc(
        &cfg,
        &["restore", "latest", "--source", "cache", "--target", "redis://127.0.0.1:6379/14", "--verify", "--json"],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verification"]["ok"], true, "{v:#}");
    assert_eq!(v["restored"]["14"].as_u64(), Some(backed_up));
    assert_eq!(cli(14, &["GET", &format!("{prefix}s:2999")]), "value-2999");
    assert_eq!(cli(14, &["LRANGE", &format!("{prefix}l"), "0", "-1"]).replace('\n', " "), "x y z");
    assert_eq!(cli(14, &["ZSCORE", &format!("{prefix}z"), "b"]), "2");
    let ttl: i64 = cli(14, &["TTL", &format!("{prefix}ttl")]).parse().unwrap();
    assert!((4900..=5000).contains(&ttl), "expiry must survive: ttl {ttl}");

    // A target with keys is refused and unchanged; --overwrite replaces.
    cli(14, &["SET", &format!("{prefix}s:1"), "changed"]);
    let refused = lbc(&cfg, &["restore", "latest", "--source", "cache", "--target", "redis://127.0.0.1:6379/14"]);
    assert_eq!(refused.code, 1);
    assert_eq!(refused.stderr.trim().lines().count(), 1, "{}", refused.stderr);
    assert_eq!(cli(14, &["GET", &format!("{prefix}s:1")]), "changed");
    lbc(&cfg, &["restore", "latest", "--source", "cache", "--target", "redis://127.0.0.1:6379/14", "--overwrite"]).ok();
    assert_eq!(cli(14, &["GET", &format!("{prefix}s:1")]), "value-1");
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0);
}

#[test]
fn redis_failures_name_the_source_and_record_nothing() {
    if !server() {
        return;
    }
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"down\"\nkind = \"redis\"\nport = 1\n\n\
             [[source]]\nname = \"bad-auth\"\nkind = \"redis\"\npassword = \"pw-7f3a91\"\nuser = \"nobody-{}\"\n",
            repo.display(),
            std::process::id()
        ),
    )
    .unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let r = lbc(&cfg, &["backup", "--all"]);
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stderr);
    assert!(lines[0].contains("source down:") && lines[0].contains("127.0.0.1:1"), "{}", r.stderr);
    assert!(lines[1].contains("source bad-auth:") && lines[1].contains("authentication failed"), "{}", r.stderr);
    assert!(!r.stderr.contains("pw-7f3a91"), "the password must not be printed: {}", r.stderr);
    let snaps: serde_json::Value = serde_json::from_str(&lbc(&cfg, &["snapshots", "--json"]).ok().stdout).unwrap();
    assert_eq!(snaps.as_array().map(Vec::len), Some(0));
}
