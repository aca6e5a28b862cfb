//! Guarded restores and restore plans, end to end: a restore onto a source's live data (its
//! directory, its SQLite file, its PostgreSQL database) or of a `protected` source changes
//! nothing without `--force` and the source's name confirmed, and says what it would do;
//! `--dry-run` prints the plan (counts, sizes, files replaced) for files and databases.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use servers::*;

/// Every file below `root` with its bytes (for byte-for-byte "unchanged" checks).
fn contents(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    list_tree(root)
        .into_iter()
        .filter(|p| root.join(p).is_file())
        .map(|p| {
            let b = fs::read(root.join(&p)).unwrap();
            (p, b)
        })
        .collect()
}

fn write_config(dir: &Path, sources: &str) -> PathBuf {
    let cfg = dir.join("lifeboat.toml");
    fs::write(&cfg, format!("[repository]\nurl = \"{}\"\n\n{sources}", dir.join("repo").display())).unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    cfg
}

/// A files source `app-files` over `dir/live` (3 files), backed up once.
fn files_source(dir: &Path, extra: &str) -> (PathBuf, PathBuf) {
    let live = dir.join("live");
    fs::create_dir_all(live.join("sub")).unwrap();
    fs::write(live.join("a.txt"), b"alpha v1\n").unwrap();
    fs::write(live.join("sub/b.txt"), b"beta v1\n").unwrap();
    write_random(&live.join("sub/c.bin"), 100_000, 7);
    let cfg = write_config(
        dir,
        &format!("[[source]]\nname = \"app-files\"\nkind = \"files\"\npaths = [\"{}\"]\n{extra}", live.display()),
    );
    lbc(&cfg, &["backup", "app-files"]).ok();
    (cfg, live)
}

fn restore(cfg: &Path, source: &str, target: &str, extra: &[&str]) -> Run {
    let mut args = vec!["restore", "latest", "--source", source, "--target", target];
    args.extend_from_slice(extra);
    lbc(cfg, &args)
}

#[test]
fn guarded_file_restore_onto_live_data_changes_nothing_until_confirmed() {
    let tmp = tempdir();
    let (cfg, live) = files_source(tmp.path(), "");
    // Live data moves on after the backup.
    fs::write(live.join("a.txt"), b"alpha v2, newer than the backup\n").unwrap();
    fs::write(live.join("new.txt"), b"written after the backup\n").unwrap();
    let before = contents(&live);

    // `--target /` recreates the live paths themselves; `--target LIVE` writes inside them.
    for target in ["/", live.to_str().unwrap()] {
        let r = restore(&cfg, "app-files", target, &["--overwrite"]).code(4);
        let line = r.one_error_line();
        assert!(line.contains("refused: restoring snapshot"), "{line}");
        assert!(line.contains("would write 3 files and "), "{line}");
        assert!(line.contains("source's live data"), "{line}");
        assert!(line.contains(live.to_str().unwrap()), "{line}");
        assert!(
            line.contains("nothing was changed") && line.ends_with("rerun with --force --confirm app-files"),
            "{line}"
        );
        assert_eq!(contents(&live), before, "a refused restore changed the live directory");
    }
    // --force alone (no terminal to type the name), --confirm alone, a wrong name: refused.
    for extra in [&["--force"][..], &["--confirm", "app-files"], &["--force", "--confirm", "app-file"]] {
        let mut args = vec!["--overwrite"];
        args.extend_from_slice(extra);
        let r = restore(&cfg, "app-files", "/", &args).code(4);
        let line = r.one_error_line();
        if extra.len() == 3 {
            assert!(line.contains("confirmation \"app-file\" does not match the source name"), "{line}");
        }
        assert_eq!(contents(&live), before, "{extra:?} changed the live directory");
    }
    // --dry-run of the guarded restore is allowed and says what a real run needs.
    let d = restore(&cfg, "app-files", "/", &["--overwrite", "--dry-run", "--json"]).ok().json();
    assert_eq!(d["guarded"]["rerun_with"], "--force --confirm app-files", "{d:#}");
    assert_eq!(d["guarded"]["reasons"][0]["reason"], "live-location", "{d:#}");
    assert_eq!(contents(&live), before);

    // Confirmed: the backed-up version comes back; files the backup does not have stay.
    restore(&cfg, "app-files", "/", &["--overwrite", "--force", "--confirm", "app-files"]).ok();
    assert_eq!(fs::read(live.join("a.txt")).unwrap(), b"alpha v1\n");
    assert_eq!(fs::read(live.join("new.txt")).unwrap(), b"written after the backup\n");
    let audit = lbc(&cfg, &["audit", "--json"]).ok().stdout;
    assert!(audit.contains("restore (guarded)") && audit.contains("live-location"), "{audit}");

    // A scratch directory is not guarded for an unprotected source.
    let scratch = tmp.path().join("scratch");
    restore(&cfg, "app-files", scratch.to_str().unwrap(), &[]).ok();
    assert_eq!(fs::read(under(&scratch, &live.join("a.txt"))).unwrap(), b"alpha v1\n");
}

#[test]
fn protected_source_needs_confirmation_even_into_a_scratch_directory() {
    let tmp = tempdir();
    let (cfg, live) = files_source(tmp.path(), "protected = true\n");
    let scratch = tmp.path().join("scratch");
    let r = restore(&cfg, "app-files", scratch.to_str().unwrap(), &[]).code(4);
    let line = r.one_error_line();
    assert!(line.contains("the source is protected") && !line.contains("live data"), "{line}");
    assert!(line.contains(&format!("under {}", scratch.display())), "{line}");
    assert!(!scratch.exists(), "a refused restore created the target");
    let d = restore(&cfg, "app-files", scratch.to_str().unwrap(), &["--dry-run"]).ok();
    assert!(
        d.stdout.contains("guarded because the source is protected: a real run needs --force --confirm app-files"),
        "{}",
        d.stdout
    );
    restore(&cfg, "app-files", scratch.to_str().unwrap(), &["--force", "--confirm", "app-files"]).ok();
    assert_same_tree(&live, &under(&scratch, &live), Compare::CONTENT);
}

#[test]
fn dry_run_plans_a_file_restore_with_counts_and_what_it_replaces() {
    let tmp = tempdir();
    let (cfg, live) = files_source(tmp.path(), "");
    let target = tmp.path().join("target");
    let inner = under(&target, &live);
    fs::create_dir_all(inner.join("sub/c.bin")).unwrap(); // a directory where the snapshot has a file
    fs::write(inner.join("sub/c.bin/stray"), b"x").unwrap();
    fs::write(inner.join("a.txt"), b"old and longer than the backed-up one\n").unwrap();
    let before = list_tree(&target);

    let p = restore(&cfg, "app-files", target.to_str().unwrap(), &["--dry-run", "--json", "--verify"]).ok().json();
    assert_eq!(
        (p["dry_run"].as_bool(), p["kind"].as_str(), p["source"].as_str()),
        (Some(true), Some("files"), Some("app-files"))
    );
    assert_eq!(p["plan"]["files"], 3, "{p:#}");
    assert_eq!(p["bytes"], 9 + 8 + 100_000, "{p:#}");
    assert_eq!(p["plan"]["replaced"], 1, "{p:#}");
    assert_eq!(p["plan"]["replaced_bytes"], 38, "{p:#}");
    assert_eq!(p["plan"]["deleted"], 2, "the directory and its file: {p:#}");
    let actions: Vec<&str> = p["steps"].as_array().unwrap().iter().map(|s| s["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["write", "replace", "delete"], "{p:#}");
    assert!(p["blockers"][0].as_str().unwrap().contains("needs --overwrite"), "{p:#}");
    assert!(p["verify"].as_str().unwrap().contains("compare"), "{p:#}");
    assert!(p["guarded"].is_null(), "{p:#}");
    assert_eq!(list_tree(&target), before, "a dry run changed the target");

    let human = restore(&cfg, "app-files", target.to_str().unwrap(), &["--dry-run", "--overwrite"]).ok().stdout;
    assert!(human.starts_with("would restore snapshot") && human.contains("3 files"), "{human}");
    assert!(human.contains("ACTION") && human.contains("replace") && !human.contains("blocked"), "{human}");
}

fn sqlite_rows(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap()
}

#[test]
fn guarded_sqlite_restore_onto_the_live_file() {
    let tmp = tempdir();
    let db = tmp.path().join("app/memory.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);").unwrap();
    }
    let cfg = write_config(
        tmp.path(),
        &format!("[[source]]\nname = \"memory-db\"\nkind = \"sqlite\"\npath = \"{}\"\n", db.display()),
    );
    lbc(&cfg, &["backup", "memory-db"]).ok();
    rusqlite::Connection::open(&db).unwrap().execute("INSERT INTO t VALUES (4)", []).unwrap();
    let before = fs::read(&db).unwrap();

    // Another spelling of the same path is still the live file.
    let alias = tmp.path().join("app/../app/./memory.db");
    let r = restore(&cfg, "memory-db", alias.to_str().unwrap(), &["--overwrite"]).code(4);
    let line = r.one_error_line();
    assert!(line.contains("would replace") && line.contains("atomically with memory.db (1 table)"), "{line}");
    assert!(line.contains("--force --confirm memory-db"), "{line}");
    assert_eq!(fs::read(&db).unwrap(), before, "the live database changed");

    let plan = restore(&cfg, "memory-db", db.to_str().unwrap(), &["--dry-run", "--json"]).ok().json();
    assert_eq!(plan["steps"][0]["action"], "replace-file", "{plan:#}");
    assert!(plan["blockers"][0].as_str().unwrap().contains("--overwrite"), "{plan:#}");
    assert_eq!(plan["tables"]["t"], 3, "{plan:#}");
    assert_eq!(plan["guarded"]["reasons"][0]["reason"], "live-location", "{plan:#}");

    let wrong =
        restore(&cfg, "memory-db", db.to_str().unwrap(), &["--overwrite", "--force", "--confirm", "WRONG"]).code(4);
    assert!(wrong.one_error_line().contains("does not match"), "{}", wrong.stderr);
    assert_eq!(fs::read(&db).unwrap(), before);

    restore(&cfg, "memory-db", db.to_str().unwrap(), &["--overwrite", "--verify", "--force", "--confirm", "memory-db"])
        .ok();
    assert_eq!(sqlite_rows(&db), 3);
    // A copy elsewhere is an ordinary restore.
    let copy = tmp.path().join("copy.db");
    restore(&cfg, "memory-db", copy.to_str().unwrap(), &["--verify"]).ok();
    assert_eq!(sqlite_rows(&copy), 3);
}

#[test]
fn guarded_postgres_restore_onto_the_live_database() {
    if !postgres_up() {
        return;
    }
    let db = format!("lb_guard_{}", unique_tag());
    let copy = format!("{db}_copy");
    let _cleanup = PgDbs(vec![db.clone(), copy.clone()]);
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE items(id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 500);");
    let tmp = tempdir();
    let cfg = write_config(
        tmp.path(),
        &format!("[[source]]\nname = \"app-db\"\nkind = \"postgres\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\n"),
    );
    lbc(&cfg, &["backup", "app-db"]).ok();
    psql(&db, "INSERT INTO items VALUES (501), (502)");

    let r = restore(&cfg, "app-db", &db, &["--overwrite", "--verify"]).code(4);
    let line = r.one_error_line();
    assert!(
        line.contains(&format!("would drop database {db} on 127.0.0.1:5432 if it exists, then create database {db}")),
        "{line}"
    );
    assert!(line.contains("with pg_restore") && line.contains("rerun with --force --confirm app-db"), "{line}");
    assert_eq!(psql(&db, "SELECT count(*) FROM items"), "502", "the live database changed");

    // The plan names the steps; a copy under another name is not guarded.
    let p = restore(&cfg, "app-db", &db, &["--overwrite", "--dry-run", "--json"]).ok().json();
    let actions: Vec<&str> = p["steps"].as_array().unwrap().iter().map(|s| s["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["drop-database", "create-database", "load"], "{p:#}");
    assert_eq!((p["kind"].as_str(), p["database"].as_str()), (Some("postgres"), Some(db.as_str())), "{p:#}");
    assert_eq!(p["tables"]["public.items"], 500, "{p:#}");
    assert!(p["bytes"].as_u64().unwrap() > 0 && p["guarded"].is_object(), "{p:#}");
    let c = restore(&cfg, "app-db", &copy, &["--dry-run", "--json"]).ok().json();
    assert!(c["guarded"].is_null(), "{c:#}");
    assert_eq!(c["steps"][0]["action"], "create-database", "{c:#}");

    restore(&cfg, "app-db", &db, &["--overwrite", "--verify", "--force", "--confirm", "app-db"]).ok();
    assert_eq!(psql(&db, "SELECT count(*) FROM items"), "500");
}

/// Run `lifeboat --config CFG ARGS…` on a pseudo-terminal (util-linux `script`), typing `input`
/// at its prompt; `None` when `script` is not installed.
fn on_terminal(cfg: &Path, args: &[&str], input: &str) -> Option<Run> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping the terminal part: util-linux `script` is not installed");
        return None;
    }
    let quoted: Vec<String> =
        [BIN, "--config", cfg.to_str().unwrap()].iter().chain(args).map(|a| format!("'{a}'")).collect();
    let shell = format!("(sleep 1; echo '{input}') | script -qec \"{}\" /dev/null", quoted.join(" "));
    let mut c = Command::new("sh");
    for v in ["LIFEBOAT_CONFIG", "LIFEBOAT_REPOSITORY", "LIFEBOAT_PASSWORD_FILE", "LIFEBOAT_PASSWORD_COMMAND"] {
        c.env_remove(v);
    }
    Some(run(c.env("LIFEBOAT_PASSWORD", PASSWORD).arg("-c").arg(shell)))
}

#[test]
fn guarded_restore_on_a_terminal_asks_for_the_source_name() {
    let tmp = tempdir();
    let (cfg, live) = files_source(tmp.path(), "");
    fs::write(live.join("a.txt"), b"alpha v2\n").unwrap();
    let args = ["restore", "latest", "--source", "app-files", "--target", "/", "--overwrite", "--force"];
    let Some(wrong) = on_terminal(&cfg, &args, "app-file") else { return };
    assert_eq!(wrong.code, 4, "{wrong:?}");
    assert!(wrong.stdout.contains("Type the source name (app-files) to go ahead"), "{wrong:?}");
    assert!(wrong.stdout.contains("confirmation \"app-file\" does not match"), "{wrong:?}");
    assert_eq!(fs::read(live.join("a.txt")).unwrap(), b"alpha v2\n");
    let typed = on_terminal(&cfg, &args, "app-files").unwrap();
    assert_eq!(typed.code, 0, "{typed:?}");
    assert_eq!(fs::read(live.join("a.txt")).unwrap(), b"alpha v1\n");
    // Without --force no prompt appears: refused at once.
    let no_force = on_terminal(&cfg, &args[..7], "app-files").unwrap();
    assert_eq!(no_force.code, 4, "{no_force:?}");
    assert!(!no_force.stdout.contains("Type the source name"), "{no_force:?}");
}
