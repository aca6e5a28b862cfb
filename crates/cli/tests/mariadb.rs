//! The mariadb source against the real server (127.0.0.1:3306, root without password): backup
//! while a writer runs (counts come from the dump itself, so they match the restore exactly),
//! restore into a new database, verification, refusal and overwrite, and failure paths.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/servers.rs"]
mod servers;

use std::fs;
use std::process::Command;

use common::*;
use servers::*;

#[test]
fn mariadb_backup_under_writes_restores_and_verifies() {
    if !mariadb_up() {
        return;
    }
    let tag = unique_tag();
    let (src, dst) = (format!("lb_src_{tag}"), format!("lb_dst_{tag}"));
    let _cleanup = MariaDbs(vec![src.clone(), dst.clone()]);
    mariadb("", &format!("CREATE DATABASE {src}"));
    mariadb(
        &src,
        "CREATE TABLE orders(id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100), data BLOB) ENGINE=InnoDB;
               CREATE TABLE `we``ird`(x INT) ENGINE=InnoDB; INSERT INTO `we``ird` VALUES (1),(2);
               INSERT INTO orders(note, data) SELECT CONCAT('it''s (', seq, ');'), UNHEX('00FF') FROM seq_1_to_20000;",
    );
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(&cfg, format!("[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"shop\"\nkind = \"mariadb\"\ndatabase = \"{src}\"\nhost = \"127.0.0.1\"\nuser = \"root\"\n", repo.display())).unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let writer = {
        let src = src.clone();
        std::thread::spawn(move || {
            for _ in 0..50 {
                let _ = Command::new("mariadb")
                    .args([
                        "-h",
                        "127.0.0.1",
                        "--protocol=TCP",
                        "-u",
                        "root",
                        "-D",
                        &src,
                        "-e",
                        "INSERT INTO orders(note) VALUES ('live')",
                    ])
                    .output();
            }
        })
    };
    let b: serde_json::Value = serde_json::from_str(&lbc(&cfg, &["backup", "shop", "--json"]).ok().stdout).unwrap();
    writer.join().unwrap();
    let m = &b[0]["manifest"];
    let orders = m["tables"]["orders"].as_u64().unwrap();
    assert!(orders >= 20_000, "{m:#}");
    assert_eq!(m["tables"]["we`ird"], 2, "{m:#}");

    let r = lbc(&cfg, &["restore", "latest", "--source", "shop", "--target", &dst, "--verify", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verification"]["ok"], true, "{v:#}");
    assert_eq!(mariadb(&dst, "SELECT COUNT(*) FROM orders").parse::<u64>().unwrap(), orders);
    assert_eq!(mariadb(&dst, "SELECT note FROM orders WHERE id = 7"), "it's (7);");
    assert_eq!(mariadb(&dst, "SELECT HEX(data) FROM orders WHERE id = 7"), "00FF");

    let refused = lbc(&cfg, &["restore", "latest", "--source", "shop", "--target", &dst]);
    assert_eq!(refused.code, 1);
    assert_eq!(refused.stderr.trim().lines().count(), 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("--overwrite"), "{}", refused.stderr);
    mariadb(&dst, "DELETE FROM orders WHERE id < 100");
    lbc(&cfg, &["restore", "latest", "--source", "shop", "--target", &dst, "--overwrite", "--verify"]).ok();
    assert_eq!(mariadb(&dst, "SELECT COUNT(*) FROM orders").parse::<u64>().unwrap(), orders);
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0);
}

#[test]
fn mariadb_failures_name_the_source_and_record_nothing() {
    if !mariadb_up() {
        return;
    }
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"down\"\nkind = \"mariadb\"\ndatabase = \"x\"\nhost = \"127.0.0.1\"\nport = 1\nuser = \"root\"\n\n\
             [[source]]\nname = \"missing\"\nkind = \"mariadb\"\ndatabase = \"lb_no_such_db\"\nhost = \"127.0.0.1\"\nuser = \"root\"\n\n\
             [[source]]\nname = \"bad-password\"\nkind = \"mariadb\"\ndatabase = \"mysql\"\nhost = \"127.0.0.1\"\nuser = \"root\"\npassword = \"pw-91c2\"\n",
            repo.display()
        ),
    )
    .unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let r = lbc(&cfg, &["backup", "--all"]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stderr);
    assert!(lines[0].contains("source down:") && lines[0].contains("127.0.0.1:1"), "{}", r.stderr);
    assert!(lines[1].contains("source missing:") && lines[1].contains("lb_no_such_db"), "{}", r.stderr);
    assert!(lines[2].contains("source bad-password:") && lines[2].contains("denied"), "{}", r.stderr);
    assert!(!r.stderr.contains("pw-91c2"), "{}", r.stderr);
    let snaps: serde_json::Value = serde_json::from_str(&lbc(&cfg, &["snapshots", "--json"]).ok().stdout).unwrap();
    assert_eq!(snaps.as_array().map(Vec::len), Some(0));
}
