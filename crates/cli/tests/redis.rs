//! The redis source (logical mode) against the real server on 127.0.0.1:6379: backup while a
//! writer runs, restore into another database of the running server, verification, refusal
//! and overwrite, and the failure paths. Keys use a unique prefix and are deleted afterwards.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/servers.rs"]
mod servers;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use servers::*;

#[test]
fn redis_backup_under_writes_restores_into_a_running_server() {
    if !redis_up() {
        return;
    }
    let prefix = format!("lbtest{}:", std::process::id());
    let _cleanup = RedisKeys { prefix: prefix.clone(), dbs: vec![13, 14] };
    let mut pipe = String::new();
    for i in 0..3000 {
        pipe.push_str(&format!("SET {prefix}s:{i} value-{i}\n"));
    }
    pipe.push_str(&format!("HSET {prefix}h a 1 b 2\nRPUSH {prefix}l x y z\nSADD {prefix}set a b c\nZADD {prefix}z 1 a 2 b\nSET {prefix}ttl v EX 5000\n"));
    redis_pipe(13, &pipe);
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
    assert_eq!(redis_cli(14, &["GET", &format!("{prefix}s:2999")]), "value-2999");
    assert_eq!(redis_cli(14, &["LRANGE", &format!("{prefix}l"), "0", "-1"]).replace('\n', " "), "x y z");
    assert_eq!(redis_cli(14, &["ZSCORE", &format!("{prefix}z"), "b"]), "2");
    let ttl: i64 = redis_cli(14, &["TTL", &format!("{prefix}ttl")]).parse().unwrap();
    assert!((4900..=5000).contains(&ttl), "expiry must survive: ttl {ttl}");

    // A target with keys is refused and unchanged; --overwrite replaces.
    redis_cli(14, &["SET", &format!("{prefix}s:1"), "changed"]);
    let refused = lbc(&cfg, &["restore", "latest", "--source", "cache", "--target", "redis://127.0.0.1:6379/14"]);
    assert_eq!(refused.code, 1);
    assert_eq!(refused.stderr.trim().lines().count(), 1, "{}", refused.stderr);
    assert_eq!(redis_cli(14, &["GET", &format!("{prefix}s:1")]), "changed");
    lbc(&cfg, &["restore", "latest", "--source", "cache", "--target", "redis://127.0.0.1:6379/14", "--overwrite"]).ok();
    assert_eq!(redis_cli(14, &["GET", &format!("{prefix}s:1")]), "value-1");
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0);
}

#[test]
fn redis_failures_name_the_source_and_record_nothing() {
    if !redis_up() {
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

/// A free TCP port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `redis-server` of the test's own, stopped when dropped.
struct Throwaway {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Throwaway {
    /// Start a server with extra config arguments; `rdb` is loaded at start when given.
    fn start(extra: &[&str], rdb: Option<&Path>) -> Throwaway {
        let dir = tempdir();
        if let Some(rdb) = rdb {
            fs::copy(rdb, dir.path().join("dump.rdb")).unwrap();
        }
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", dir.path().to_str().unwrap(), "--dbfilename", "dump.rdb"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t = Throwaway { child, port, _dir: dir };
        let up = wait_for(std::time::Duration::from_secs(20), || {
            // Any reply (PONG, or NOAUTH with requirepass) means the server is up.
            (!t.cli(0, &["PING"]).stdout.is_empty()).then_some(())
        });
        assert!(up.is_some(), "throwaway redis-server on port {port} did not start");
        t
    }

    fn cli(&self, db: u32, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-n", &db.to_string()]);
        if let Ok(pw) = std::env::var("LB_TEST_REDIS_PW") {
            c.env("REDISCLI_AUTH", pw);
        }
        c.args(args).output().unwrap()
    }

    fn get(&self, db: u32, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.cli(db, args).stdout).trim().to_string()
    }

    /// Feed commands (one per line) through `redis-cli`.
    fn pipe(&self, db: u32, commands: &str) {
        let mut c = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-n", &db.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
        assert!(c.wait().unwrap().success());
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server() -> bool {
    service("the redis-server program", Command::new("redis-server").arg("--version"))
}

/// Keys of several types in `db`, `n` plain strings among them, plus one expiring key.
fn populate(commands: &mut String, prefix: &str, n: usize) {
    for i in 0..n {
        commands.push_str(&format!("SET {prefix}s:{i} value-{i}\n"));
    }
    commands.push_str(&format!(
        "HSET {prefix}h a 1 b 2\nRPUSH {prefix}l x y z\nSADD {prefix}set a b c\nZADD {prefix}z 1 a 2 b\n\
         XADD {prefix}x 1-1 f v\nXGROUP CREATE {prefix}x g 0\nSET {prefix}ttl v EX 5000\n"
    ));
}

#[test]
fn redis_rdb_mode_over_disk_and_diskless_transfers_restores_a_file_that_loads() {
    if !redis_server() {
        return;
    }
    for diskless in ["no", "yes"] {
        let server = Throwaway::start(
            &["--repl-diskless-sync", diskless, "--repl-diskless-sync-delay", "0", "--requirepass", "pw-rdb-5c1e"],
            None,
        );
        std::env::set_var("LB_TEST_REDIS_PW", "pw-rdb-5c1e");
        let mut cmds = String::new();
        populate(&mut cmds, "a:", 5000);
        server.pipe(0, &format!("AUTH pw-rdb-5c1e\n{cmds}"));
        server.pipe(3, "AUTH pw-rdb-5c1e\nSET only 1\nSET gone 1 PX 1\n");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let tmp = tempdir();
        let repo = tmp.path().join("repo");
        let cfg = tmp.path().join("lifeboat.toml");
        fs::write(
            &cfg,
            format!(
                "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"cache\"\nkind = \"redis\"\nmode = \"rdb\"\n\
                 port = {}\npassword = \"${{LB_TEST_REDIS_PW}}\"\n",
                repo.display(),
                server.port
            ),
        )
        .unwrap();
        lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
        let b = lbc(&cfg, &["backup", "cache", "--json"]).ok();
        let m = &b.json()[0]["manifest"];
        assert_eq!(m["mode"], "rdb", "{m:#}");
        assert_eq!(m["rdb"]["transfer"], if diskless == "yes" { "diskless" } else { "disk" }, "{m:#}");
        assert_eq!(m["rdb"]["checksum"], "ok", "{m:#}");
        assert_eq!(m["rdb"]["counted"], "walked", "{m:#}");
        assert_eq!(m["keys"]["0"], 5006, "{m:#}");
        // The key that expired before the backup may still be in the dump (the server removes
        // expired keys lazily); the manifest counts what the dump holds.
        let db3 = m["keys"]["3"].as_u64().unwrap();
        assert!((1..=2).contains(&db3), "{m:#}");
        assert!(m["redis_version"].as_str().unwrap().starts_with(|c: char| c.is_ascii_digit()), "{m:#}");
        assert!(!b.stdout.contains("pw-rdb-5c1e"), "the password must not reach the manifest");

        // Restore to a file, verified by a throwaway server; then a server started on it has the data.
        let out = tmp.path().join("restored/dump.rdb");
        let r = lbc(
            &cfg,
            &["restore", "latest", "--source", "cache", "--target", out.to_str().unwrap(), "--verify", "--json"],
        )
        .ok()
        .json();
        assert_eq!(r["verification"]["ok"], true, "{r:#}");
        assert_eq!(r["verification"]["keys"]["0"], 5006, "{r:#}");
        std::env::remove_var("LB_TEST_REDIS_PW");
        let copy = Throwaway::start(&[], Some(&out));
        assert_eq!(copy.get(0, &["GET", "a:s:4999"]), "value-4999");
        assert_eq!(copy.get(0, &["XLEN", "a:x"]), "1");
        assert_eq!(copy.get(3, &["GET", "only"]), "1");
        let ttl: i64 = copy.get(0, &["TTL", "a:ttl"]).parse().unwrap();
        assert!((4900..=5000).contains(&ttl), "expiry must survive: {ttl}");
        assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0);
    }
}

#[test]
fn redis_rdb_restore_refuses_to_overwrite_and_names_missing_permissions() {
    if !redis_server() {
        return;
    }
    let server = Throwaway::start(&["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"], None);
    server.pipe(0, "SET k v\nACL SETUSER reader on >pw-acl-77 ~* +@read +ping\n");
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"cache\"\nkind = \"redis\"\nmode = \"rdb\"\nport = {p}\n\n\
             [[source]]\nname = \"reader\"\nkind = \"redis\"\nmode = \"rdb\"\nport = {p}\nuser = \"reader\"\npassword = \"pw-acl-77\"\n",
            repo.display(),
            p = server.port
        ),
    )
    .unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let denied = lbc(&cfg, &["backup", "reader"]);
    assert_eq!(denied.code, 1);
    let line = denied.one_error_line();
    assert!(line.contains("source reader") && line.contains("SYNC refused") && line.contains("+sync"), "{line}");
    assert!(!denied.stderr.contains("pw-acl-77"));
    lbc(&cfg, &["backup", "cache"]).ok();

    // An existing file is refused and unchanged; --overwrite replaces it atomically.
    let target = tmp.path().join("dump.rdb");
    fs::write(&target, "old").unwrap();
    let t = target.to_str().unwrap();
    let refused = lbc(&cfg, &["restore", "latest", "--source", "cache", "--target", t]);
    assert_eq!(refused.code, 1);
    assert!(refused.one_error_line().contains("--overwrite"), "{}", refused.stderr);
    assert_eq!(fs::read_to_string(&target).unwrap(), "old");
    lbc(&cfg, &["restore", "latest", "--source", "cache", "--target", t, "--overwrite"]).ok();
    assert!(fs::read(&target).unwrap().starts_with(b"REDIS"));
    assert!(leftover_tmp(tmp.path()).is_empty(), "{:?}", leftover_tmp(tmp.path()));
    // A running server is not a target for an RDB snapshot.
    let wrong = lbc(&cfg, &["restore", "latest", "--source", "cache", "--target", "redis://127.0.0.1:6379/0"]);
    assert_eq!(wrong.code, 1);
    assert!(wrong.one_error_line().contains("stopped server"), "{}", wrong.stderr);
    // Mode settings are checked when the config is read.
    fs::write(&cfg, format!("[repository]\nurl = \"{}\"\n[[source]]\nname = \"c\"\nkind = \"redis\"\nmode = \"rdb\"\npattern = \"a*\"\n", repo.display())).unwrap();
    let bad = lbc(&cfg, &["backup", "c"]);
    assert_ne!(bad.code, 0);
    assert!(bad.one_error_line().contains("lifeboat.toml:3"), "{}", bad.stderr);
}

#[test]
fn redis_rdb_backup_of_the_shared_server_while_writing_is_point_in_time() {
    if !redis_up() {
        return;
    }
    let prefix = format!("lbrdb{}:", std::process::id());
    let _cleanup = RedisKeys { prefix: prefix.clone(), dbs: vec![10] };
    let mut cmds = String::new();
    populate(&mut cmds, &prefix, 2000);
    redis_pipe(10, &cmds);
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"cache\"\nkind = \"redis\"\nmode = \"rdb\"\n",
            repo.display()
        ),
    )
    .unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let writer = {
        let prefix = prefix.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                let _ = Command::new("redis-cli")
                    .args(["-h", "127.0.0.1", "-n", "10", "SET", &format!("{prefix}live:{i}"), "x"])
                    .output();
            }
        })
    };
    let b = lbc(&cfg, &["backup", "cache", "--json"]).ok().json();
    writer.join().unwrap();
    let m = &b[0]["manifest"];
    let keys = m["keys"]["10"].as_u64().unwrap();
    assert!((2007..=2207).contains(&keys), "{m:#}");
    let out = tmp.path().join("dump.rdb");
    let r =
        lbc(&cfg, &["restore", "latest", "--source", "cache", "--target", out.to_str().unwrap(), "--verify", "--json"])
            .ok()
            .json();
    // The dump is one point in time: the file, the manifest and the loaded server agree exactly.
    assert_eq!(r["verification"]["ok"], true, "{r:#}");
    assert_eq!(r["verification"]["keys"]["10"].as_u64(), Some(keys), "{r:#}");
}
