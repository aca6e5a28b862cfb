//! What a new user tripped over while trying the README, each fixed and kept fixed: messages
//! that name the right option, one hint instead of two, plurals, empty variables, help and man
//! pages, the demo's repository, progress lines off a terminal.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;

use common::*;

#[test]
fn key_add_and_rotate_without_a_new_password_name_the_new_password_options() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    init(&repo);
    for cmd in ["add", "rotate"] {
        let r = lb(&repo, &["key", cmd]).code(1);
        let line = r.one_error_line();
        assert!(line.contains("LIFEBOAT_NEW_PASSWORD") && line.contains("--new-password-file"), "{line}");
        assert!(!line.contains("--password-file,") && !line.contains("--password-command"), "{line}");
    }
    // After a rotation a line says that the stored password must change too.
    let r = run(lifeboat(&repo).env("LIFEBOAT_NEW_PASSWORD", "new-pw-1").args(["key", "rotate"])).ok();
    assert!(r.stdout.contains("opens only with the new password"), "{}", r.stdout);
    assert!(r.stdout.contains("password file, password command or LIFEBOAT_PASSWORD"), "{}", r.stdout);
    lb_pw(&repo, "new-pw-1", &["snapshots"]).ok();
}

#[test]
fn copy_to_a_missing_destination_gives_one_hint() {
    let tmp = tempdir();
    let (repo, off) = (tmp.path().join("repo"), tmp.path().join("offsite"));
    init(&repo);
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), "x").unwrap();
    lb(&repo, &["backup", s(&data)]).ok();
    let cfg = tmp.path().join("lifeboat.toml");
    let pw = tmp.path().join("off.pw");
    fs::write(&pw, "off-pw\n").unwrap();
    fs::write(&cfg, format!("[[copy]]\nname = \"offsite\"\nurl = \"{}\"\npassword_file = \"{}\"\n", s(&off), s(&pw)))
        .unwrap();
    let r = run(lifeboat(&repo).arg("--config").arg(&cfg).args(["copy", "--to", "offsite"])).code(10);
    let line = r.one_error_line();
    assert_eq!(line.matches("init").count(), 1, "one hint, not two: {line}");
    assert!(line.contains("--init") && line.contains("offsite"), "{line}");
    // Without any destination password, the destination's variable is named.
    let r = run(lifeboat(&repo).args(["copy", "--to", s(&off), "--init"])).code(1);
    assert!(r.one_error_line().contains("LIFEBOAT_TO_PASSWORD"), "{}", r.stderr);
}

#[test]
fn storage_test_on_a_path_that_does_not_exist_says_how_to_create_it() {
    let tmp = tempdir();
    let missing = tmp.path().join("not-yet");
    let r = run(bare().args(["--repo", s(&missing), "storage", "test"])).code(1);
    let line = r.one_error_line();
    assert!(line.contains("does not exist yet") && line.contains("lifeboat init"), "{line}");
    assert!(!missing.exists(), "a test must not create the directory");
    // `init` creates it, and then the test passes.
    init(&missing);
    run(bare().args(["--repo", s(&missing), "storage", "test", "--size", "64K"])).ok();
}

#[test]
fn counts_are_spelled_right_and_errors_name_the_source_once() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("only"), "one file").unwrap();
    init(&repo);
    let b = lb(&repo, &["backup", s(&src)]).ok();
    assert!(b.stdout.contains("processed 1 file,"), "{}", b.stdout);
    let l = lb(&repo, &["snapshots"]).ok();
    assert!(l.stdout.trim_end().ends_with("\n1 snapshot"), "{}", l.stdout);
    // A missing ${VAR}: "source x:" once, the variable named.
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!("[repository]\nurl = \"{}\"\n[[source]]\nname = \"docs\"\nkind = \"files\"\npath = \"${{LB_TEST_UNSET_DIR}}\"\n", s(&repo)),
    )
    .unwrap();
    let r = lbc(&cfg, &["backup", "docs"]).code(1);
    let line = r.one_error_line();
    assert_eq!(line.matches("source docs").count(), 1, "{line}");
    assert!(line.contains("LB_TEST_UNSET_DIR is not set"), "{line}");
    // `config check` warns about the variable (the job's environment may set it).
    let c = lbc(&cfg, &["config", "check"]).ok();
    assert!(c.stderr.contains("LB_TEST_UNSET_DIR") && c.stderr.contains("warning"), "{}", c.stderr);
    let j = lbc(&cfg, &["config", "check", "--json"]).ok().json();
    assert_eq!(j["undefined_variables"], serde_json::json!(["LB_TEST_UNSET_DIR"]), "{j:#}");
}

#[test]
fn a_program_that_is_not_installed_says_so_with_the_path_searched() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    init(&repo);
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n[[source]]\nname = \"status\"\nkind = \"command\"\ncommand = [\"lifeboat-no-such-program\", \"status\"]\n",
            s(&repo)
        ),
    )
    .unwrap();
    let r = run(bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("PATH", "/usr/bin:/bin")
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "status"]))
    .code(1);
    let line = r.one_error_line();
    assert!(line.contains("lifeboat-no-such-program is not installed"), "{line}");
    assert!(line.contains("PATH (/usr/bin:/bin)"), "{line}");
}

#[test]
fn restore_with_a_filter_that_matches_nothing_names_the_filter() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    init(&repo);
    lb(&repo, &["backup", s(&src)]).ok();
    let target = tmp.path().join("t");
    let r = lb(&repo, &["restore", "latest", "--before", "2001-01-01", "--target", s(&target)]).code(1);
    let line = r.one_error_line();
    assert!(line.contains("no snapshot matches \"latest\" with --before 2001-01-01"), "{line}");
}

#[test]
fn empty_password_variables_are_treated_as_unset_and_said_so() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    init(&repo);
    // LIFEBOAT_PASSWORD_FILE= with the password in LIFEBOAT_PASSWORD: works, with a note.
    let r = run(lifeboat(&repo).env("LIFEBOAT_PASSWORD_FILE", "").arg("snapshots")).ok();
    assert!(r.stderr.contains("note: LIFEBOAT_PASSWORD_FILE is set but empty; treating it as unset"), "{}", r.stderr);
    assert!(!r.stderr.contains("lifeboat:"), "a note is not an error: {}", r.stderr);
    // LIFEBOAT_PASSWORD= alone: not a "wrong password", but no password at all.
    let r = run(bare().env("LIFEBOAT_PASSWORD", "").arg("--repo").arg(&repo).arg("snapshots")).code(1);
    assert!(r.stderr.contains("note: LIFEBOAT_PASSWORD is set but empty"), "{}", r.stderr);
    assert!(r.stderr.contains("no repository password"), "{}", r.stderr);
    assert!(!r.stderr.contains("wrong password"), "{}", r.stderr);
    // An empty LIFEBOAT_CONFIG= is no config, not a usage error.
    let r = run(lifeboat(&repo).env("LIFEBOAT_CONFIG", "").arg("snapshots")).ok();
    assert!(r.stderr.contains("LIFEBOAT_CONFIG is set but empty"), "{}", r.stderr);
}

#[test]
fn demo_keeps_its_repository_where_the_readme_says_and_honours_repo() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "alpha").unwrap();
    let work = tmp.path().join("w");
    run(bare().args(["demo", "--dir", s(&data), "--workdir", s(&work)])).ok();
    assert!(work.join("repo/config").is_file(), "the demo repository is <workdir>/repo");
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    assert!(readme.contains("./lifeboat-demo/repo"), "the README says where the demo repository is");
    let other = tmp.path().join("elsewhere");
    let r = run(bare().args(["--repo", s(&other), "demo", "--dir", s(&data), "--workdir", s(&work)])).ok();
    assert!(other.join("config").is_file(), "--repo is honoured: {}", r.stdout);
    assert!(r.stdout.contains(&format!("repository: {}", other.display())), "{}", r.stdout);
}

#[test]
fn help_lists_a_commands_own_options_first_and_parser_errors_point_at_its_help() {
    let h = run(bare().args(["backup", "--help"])).ok().stdout;
    let own = h.find("--exclude").unwrap();
    let global = h.find("Global options:").unwrap();
    assert!(own < global && global < h.find("--repo").unwrap(), "{h}");
    let r = run(bare().args(["backup", "--bogus", "x"])).code(2);
    assert!(r.one_error_line().contains("(see 'lifeboat backup --help')"), "{}", r.stderr);
    let r = run(bare().args(["storage", "lock", "set", "--days", "0"])).code(2);
    assert!(r.one_error_line().contains("(see 'lifeboat storage lock set --help')"), "{}", r.stderr);
    let r = run(bare().args(["frobnicate"])).code(2);
    assert!(r.one_error_line().contains("(see 'lifeboat --help')"), "{}", r.stderr);
}

#[test]
fn man_writes_a_page_for_every_subcommand() {
    let tmp = tempdir();
    let dir = tmp.path().join("man1");
    run(bare().args(["man", "--dir", s(&dir)])).ok();
    for page in
        ["lifeboat.1", "lifeboat-backup.1", "lifeboat-restore.1", "lifeboat-storage-lock.1", "lifeboat-drill-keygen.1"]
    {
        let text = fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".SH NAME"), "{page}");
    }
    // The top page refers to lifeboat-backup(1) etc.; every page it names exists.
    let top = fs::read_to_string(dir.join("lifeboat.1")).unwrap();
    assert!(top.contains("lifeboat\\-backup(1)"), "{top}");
}

#[test]
fn off_a_terminal_long_steps_print_a_line_when_they_start_and_end() {
    let tmp = tempdir();
    let (repo, data) = (tmp.path().join("repo"), tmp.path().join("data"));
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "alpha").unwrap();
    let cfg = tmp.path().join("lifeboat.toml");
    let body = format!(
        "[repository]\nurl = \"{}\"\n[[source]]\nname = \"docs\"\nkind = \"files\"\npath = \"{}\"\n[[source]]\nname = \"more\"\nkind = \"files\"\npath = \"{}\"\n",
        s(&repo),
        s(&data),
        s(&data)
    );
    fs::write(&cfg, body).unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let b = lbc(&cfg, &["backup", "--all"]).ok().stdout;
    assert!(b.contains("backup docs started") && b.contains("backup docs done in"), "{b}");
    assert!(b.trim_end().lines().last().unwrap().starts_with("2 of 2 sources backed up, 0 failed, in "), "{b}");
    let v = lbc(&cfg, &["verify", "--restore-test"]).ok().stdout;
    assert!(v.contains("restore test [docs] files started") && v.contains("restore test [docs] files done in"), "{v}");
    // --json and --quiet print no progress lines.
    let j = lbc(&cfg, &["backup", "--all", "--json"]).ok().json();
    assert_eq!(j.as_array().unwrap().len(), 2);
    assert!(lbc(&cfg, &["backup", "--all", "--quiet"]).ok().stdout.is_empty());
}
