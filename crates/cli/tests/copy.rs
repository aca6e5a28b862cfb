//! End-to-end tests of `lifeboat copy` (3-2-1): into a second repository with its own password,
//! idempotent, incremental, from the config's `[[copy]]` entries and right after `backup --all`.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::path::Path;

use common::*;

const DEST_PASSWORD: &str = "a different password for the offsite copy";

fn dest(repo: &Path, args: &[&str]) -> Run {
    lb_pw(repo, DEST_PASSWORD, args)
}

fn copy(src_repo: &Path, args: &[&str]) -> Run {
    let mut c = lifeboat(src_repo);
    c.env("LIFEBOAT_TO_PASSWORD", DEST_PASSWORD).arg("copy").args(args);
    run(&mut c)
}

#[test]
fn copy_creates_an_independent_repository_is_idempotent_and_incremental() {
    let dir = tempdir();
    let (repo, off, src) = (dir.path().join("repo"), dir.path().join("offsite"), dir.path().join("src"));
    init(&repo);
    fs::create_dir_all(src.join("sub")).unwrap();
    write_random(&src.join("big.bin"), 5 << 20, 1);
    write_text(&src.join("sub/notes.txt"), 40_000, "copy");
    backup_json(&repo, &["--tag", "one", s(&src)]);
    write_random(&src.join("second.bin"), 1 << 20, 2);
    backup_json(&repo, &["--tag", "two", s(&src)]);

    // Without --init a missing destination is a clear error (exit 10).
    let missing = copy(&repo, &["--to", s(&off)]).code(10);
    assert!(missing.one_error_line().contains("--init"), "{}", missing.stderr);

    let first = copy(&repo, &["--to", s(&off), "--init", "--json"]).ok().json();
    assert_eq!(first["snapshots"].as_array().unwrap().len(), 2);
    assert!(num(&first, "bytes_copied") >= 6 << 20, "{first:#}");
    // Same chunker, different master key: the source password does not open the copy.
    let cfg_src: serde_json::Value = lb(&repo, &["snapshots", "--json"]).ok().json();
    assert_eq!(cfg_src.as_array().unwrap().len(), 2);
    lb(&off, &["snapshots"]).code(12);
    let copied = dest(&off, &["snapshots", "--json"]).ok().json();
    let copied = copied.as_array().unwrap();
    assert_eq!(copied.len(), 2);
    for (c, o) in copied.iter().zip(cfg_src.as_array().unwrap()) {
        assert_eq!(c["original"], o["id"], "copies record their original");
        assert_eq!(c["tree"], o["tree"], "trees are not re-chunked");
        assert_eq!(c["tags"], o["tags"]);
    }

    // A second run copies nothing.
    let again = copy(&repo, &["--to", s(&off), "--json"]).ok().json();
    assert!(again["snapshots"].as_array().unwrap().iter().all(|c| c["skipped"] == true), "{again:#}");
    assert_eq!(num(&again, "blobs_copied"), 0);

    // A new backup copies only what is new.
    write_random(&src.join("third.bin"), 300_000, 3);
    backup_json(&repo, &[s(&src)]);
    let inc = copy(&repo, &["--to", s(&off), "--json"]).ok().json();
    let bytes = num(&inc, "bytes_copied");
    assert!(bytes > 300_000 && bytes < 1 << 20, "incremental copy moved {bytes} bytes: {inc:#}");

    // The copy passes both checkers and restores byte-identically, with restic too.
    dest(&off, &["check", "--read-data"]).ok();
    let rcheck = run(restic(&off).env("RESTIC_PASSWORD", DEST_PASSWORD).args(["check", "--read-data"]));
    assert_eq!(rcheck.code, 0, "{}", rcheck.stderr);
    let out = dir.path().join("out");
    dest(&off, &["restore", "latest", "--target", s(&out)]).ok();
    assert_same_tree(&src, &under(&out, &src), Compare::ALL);
}

#[test]
fn copy_destinations_from_the_config_and_after_backup() {
    let dir = tempdir();
    let (repo, off, data) = (dir.path().join("repo"), dir.path().join("offsite"), dir.path().join("ledger"));
    init(&repo);
    fs::create_dir_all(&data).unwrap();
    write_random(&data.join("ledger.db"), 200_000, 9);
    let pwfile = dir.path().join("offsite.pw");
    fs::write(&pwfile, format!("{DEST_PASSWORD}\n")).unwrap();
    // The destination must exist for after_backup copies (created once by an operator).
    dest(&off, &["init", "--kdf-n", "1024"]).ok();
    let cfg = dir.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = {:?}\n\n[[copy]]\nname = \"offsite\"\nurl = {:?}\npassword_file = {:?}\nafter_backup = true\n\n[[source]]\nname = \"ledger\"\nkind = \"files\"\npath = {:?}\n",
            s(&repo),
            s(&off),
            s(&pwfile),
            s(&data)
        ),
    )
    .unwrap();
    let report = run(lifeboat(&repo).env("LIFEBOAT_CONFIG", &cfg).args(["backup", "--all", "--json"])).ok().json();
    assert_eq!(report[0]["copied_to"], serde_json::json!(["offsite"]), "{report:#}");
    let there = dest(&off, &["snapshots", "--json", "--source", "ledger"]).ok().json();
    assert_eq!(there.as_array().unwrap().len(), 1);
    assert_eq!(there[0]["original"], report[0]["snapshot_id"]);
    // `copy --to NAME` uses the entry's password file; everything is already there.
    let again =
        run(lifeboat(&repo).env("LIFEBOAT_CONFIG", &cfg).args(["copy", "--to", "offsite", "--json"])).ok().json();
    assert_eq!(num(&again, "blobs_copied"), 0);

    // A copy entry without a password is rejected with file:line.
    fs::write(&cfg, "[[copy]]\nurl = \"/tmp/x\"\n").unwrap();
    let bad = run(lifeboat(&repo).env("LIFEBOAT_CONFIG", &cfg).args(["config", "check"])).code(1);
    assert!(bad.one_error_line().contains("lifeboat.toml:1"), "{}", bad.stderr);
}

#[test]
fn storage_usage_reports_sizes_ratios_sources_and_growth() {
    let dir = tempdir();
    let (repo, text, bin) = (dir.path().join("repo"), dir.path().join("text"), dir.path().join("bin"));
    init(&repo);
    fs::create_dir_all(&text).unwrap();
    fs::create_dir_all(&bin).unwrap();
    write_text(&text.join("log.txt"), 3 << 20, "usage"); // compresses well
    write_random(&bin.join("blob.bin"), 2 << 20, 4); // does not
    for _ in 0..3 {
        backup_json(&repo, &[s(&text)]);
    }
    backup_json(&repo, &[s(&bin)]);
    let u = lb(&repo, &["storage", "usage", "--json"]).ok().json();
    assert_eq!(num(&u, "snapshots"), 4);
    // Three identical text backups + one binary: logical 3×3 MiB + 2 MiB over 5 MiB unique.
    let logical = num(&u, "logical_bytes");
    assert_eq!(logical, 3 * (3 << 20) + (2 << 20), "{u:#}");
    let dedup = u["dedup_ratio"].as_f64().unwrap();
    assert!(dedup > 2.0 && dedup < 2.3, "dedup {dedup}: {u:#}");
    assert!(u["compression_ratio"].as_f64().unwrap() > 1.3, "{u:#}");
    let mut on_disk = 0;
    for sub in fs::read_dir(repo.join("data")).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            on_disk += f.unwrap().metadata().unwrap().len();
        }
    }
    assert_eq!(num(&u, "pack_bytes"), on_disk);
    let sources = u["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2);
    let t = sources.iter().find(|x| x["source"].as_str().unwrap().ends_with(s(&text))).unwrap();
    assert_eq!(num(t, "snapshots"), 3);
    assert_eq!(num(t, "latest_bytes"), 3 << 20);
    let growth = u["growth"].as_array().unwrap();
    assert_eq!(growth.iter().map(|d| num(d, "snapshots")).sum::<u64>(), 4);
    let added: u64 = growth.iter().map(|d| num(d, "added_bytes")).sum();
    assert!(added <= num(&u, "pack_bytes") && added * 10 > num(&u, "pack_bytes") * 9, "{u:#}");
    let human = lb(&repo, &["storage", "usage"]).ok().stdout;
    assert!(human.contains("deduplication") && human.contains(s(&bin)), "{human}");
}
