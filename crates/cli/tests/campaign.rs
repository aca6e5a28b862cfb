//! The standing fault campaign of issue 16: random crashes and random damage against the real
//! binary, with restic as the second opinion.
//!
//! * **Kills**: backup, forget + prune, copy and `repair index` are SIGKILLed at a random save or
//!   remove (`LIFEBOAT_FAULTS=kill-on-save:TYPE:N` / `kill-on-remove:TYPE:N`). After each: the
//!   repository passes `check --read-data`, no snapshot taken before is lost, and a random
//!   snapshot restores identical to what was backed up; at the end every snapshot restores and
//!   restic's `check --read-data` passes on both repositories.
//! * **Damages**: a copy of a repository gets one random damage of a random kind (byte flipped
//!   in a pack, pack truncated, pack deleted, index file garbled, index file deleted, snapshot
//!   file garbled). Expected per kind: `check --read-data` detects it (exit 1); every restore
//!   either succeeds identical or fails/leaves out *named* files, and every file it does write is
//!   identical (never a silent wrong restore); after the repairs `check` names
//!   (`repair index`, `repair packs`, `repair snapshots --read-data --forget`, `prune`) both
//!   `check --read-data` and restic's pass, and every file not named as lost restores.
//!
//! * **Writers**: four processes back up their own sources while a fifth runs
//!   `forget --keep-last 3 --prune` in a loop; then both checks pass and every snapshot left
//!   restores identical.
//!
//! `campaign_short` (12 kills, 14 damages, 4 × 3 backups) runs with the other tests. The full
//! campaign (4 × 25 backups unless `LIFEBOAT_CAMPAIGN_WRITER_ROUNDS` says otherwise):
//!
//! ```text
//! LIFEBOAT_CAMPAIGN_KILLS=500 LIFEBOAT_CAMPAIGN_DAMAGES=200 LIFEBOAT_CAMPAIGN_SEED=1 \
//!   cargo nextest run -p lifeboat --test campaign --run-ignored only --no-capture
//! ```
//!
//! It prints one results line per part; docs/reliability.md keeps the table.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// xorshift64*: reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Rewrite a few files of the source and add one (sizes from tiny to several chunks).
fn mutate(src: &Path, rng: &mut Rng, round: usize) {
    fs::create_dir_all(src.join("sub")).unwrap();
    for _ in 0..3 {
        let name = format!("f{}.bin", rng.below(24));
        let dir = if rng.below(2) == 0 { src.to_path_buf() } else { src.join("sub") };
        let len = *rng.pick(&[0usize, 100, 5_000, 70_000, 700_000, 2_500_000]);
        write_random(&dir.join(name), len, rng.next());
    }
    fs::write(src.join(format!("round-{round}.txt")), format!("round {round}\n")).unwrap();
}

/// Copy a directory tree (`cp -a`).
fn copy_tree(from: &Path, to: &Path) {
    run(Command::new("cp").arg("-a").arg(from).arg(to)).ok();
}

/// Snapshot ids (full) of a local repository.
fn snapshot_ids(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        list_tree(&repo.join("snapshots")).into_iter().map(|p| p.to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// After a restore into `target`: files identical to `expected`, files missing, files wrong.
fn judge(expected: &Path, restored: &Path) -> (usize, Vec<String>, Vec<String>) {
    let (mut same, mut missing, mut wrong) = (0, Vec::new(), Vec::new());
    for rel in list_tree(expected).into_iter().filter(|r| expected.join(r).is_file()) {
        match fs::read(restored.join(&rel)) {
            Ok(got) if got == fs::read(expected.join(&rel)).unwrap() => same += 1,
            Ok(_) => wrong.push(rel.display().to_string()),
            Err(_) => missing.push(rel.display().to_string()),
        }
    }
    (same, missing, wrong)
}

/// `check --read-data --json` of lifeboat: (exit code, number of errors).
fn check(repo: &Path) -> (i32, usize) {
    let r = lb(repo, &["--json", "check", "--read-data"]);
    let errors = serde_json::from_str::<serde_json::Value>(&r.stdout)
        .ok()
        .and_then(|v| v["errors"].as_array().map(Vec::len))
        .unwrap_or(usize::MAX);
    (r.code, errors)
}

fn restic_ok(repo: &Path) -> bool {
    rs(repo, &["--no-lock", "check", "--read-data"]).code == 0
}

#[derive(Default, Debug)]
struct KillResults {
    runs: usize,
    killed: usize,
    corrupt: usize,
    lost_snapshots: usize,
    wrong_restores: usize,
}

fn kill_campaign(n: usize, seed: u64) -> KillResults {
    let tmp = tempdir();
    let (repo, dst, src, expected) =
        (tmp.path().join("repo"), tmp.path().join("dst"), tmp.path().join("src"), tmp.path().join("expected"));
    fs::create_dir_all(&expected).unwrap();
    let mut rng = Rng::new(seed);
    init(&repo);
    init(&dst);
    let pw = tmp.path().join("pw");
    fs::write(&pw, PASSWORD).unwrap();
    // snapshot id → copy of what it holds
    let mut known: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut res = KillResults::default();
    let mut round = 0;
    let backup = |rng: &mut Rng, fault: Option<String>, known: &mut BTreeMap<String, PathBuf>, round: usize| {
        mutate(&src, rng, round);
        let mut c = lifeboat(&repo);
        if let Some(f) = &fault {
            c.env("LIFEBOAT_FAULTS", f);
        }
        let r = run(c.args(["--json", "backup", s(&src)]));
        if r.code == 0 {
            let id = serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["snapshot_id"]
                .as_str()
                .unwrap()
                .to_string();
            let copy = expected.join(&id);
            copy_tree(&src, &copy);
            known.insert(id, copy);
        }
        r.code
    };
    for _ in 0..3 {
        round += 1;
        assert_eq!(backup(&mut rng, None, &mut known, round), 0);
    }
    for _ in 0..n {
        round += 1;
        let nth = 1 + rng.below(5);
        let op = rng.below(4);
        let code = match op {
            0 => {
                let ft = rng.pick(&["pack", "index", "snapshot", "any"]);
                backup(&mut rng, Some(format!("kill-on-save:{ft}:{nth}")), &mut known, round)
            }
            1 => {
                if known.len() > 3 {
                    let oldest = known.keys().next().unwrap().clone();
                    lb(&repo, &["forget", &oldest]).ok();
                    known.remove(&oldest);
                }
                let fault = match rng.below(3) {
                    0 => format!("kill-on-save:{}:{nth}", rng.pick(&["pack", "index"])),
                    _ => format!("kill-on-remove:{}:{nth}", rng.pick(&["pack", "index"])),
                };
                run(lifeboat(&repo).env("LIFEBOAT_FAULTS", fault).args(["prune", "--repack-below", "100"])).code
            }
            2 => {
                let fault = format!("kill-on-save:{}:{nth}", rng.pick(&["pack", "index", "snapshot"]));
                run(lifeboat(&repo).env("LIFEBOAT_FAULTS", fault).env("LIFEBOAT_TO_PASSWORD_FILE", &pw).args([
                    "copy",
                    "--to",
                    s(&dst),
                ]))
                .code
            }
            _ => {
                let fault = match rng.below(2) {
                    0 => "kill-on-save:index:1".to_string(),
                    _ => format!("kill-on-remove:index:{}", 1 + rng.below(2)),
                };
                run(lifeboat(&repo).env("LIFEBOAT_FAULTS", fault).args(["repair", "index", "--read-all-packs"])).code
            }
        };
        res.runs += 1;
        if code == -1 {
            res.killed += 1;
        }
        let (c, errors) = check(&repo);
        if c != 0 || errors != 0 {
            res.corrupt += 1;
            eprintln!("corrupt after op {op}: check exit {c}, {errors} errors");
        }
        let ids = snapshot_ids(&repo);
        res.lost_snapshots += known.keys().filter(|k| !ids.contains(k)).count();
        known.retain(|k, _| ids.contains(k));
        let (id, copy) = known.iter().nth(rng.below(known.len())).unwrap();
        let target = tmp.path().join(format!("r{round}"));
        let r = lb(&repo, &["restore", id, "--target", s(&target)]);
        let (_, missing, wrong) = judge(copy, &under(&target, &src));
        if r.code != 0 || !missing.is_empty() || !wrong.is_empty() {
            res.wrong_restores += 1;
            eprintln!("restore of {id} after op {op}: exit {}, missing {missing:?}, wrong {wrong:?}", r.code);
        }
        let _ = fs::remove_dir_all(&target);
    }
    // The end: every snapshot restores; restic accepts both repositories.
    for (id, copy) in &known {
        let target = tmp.path().join(format!("final-{id}"));
        let r = lb(&repo, &["restore", id, "--target", s(&target)]);
        let (_, missing, wrong) = judge(copy, &under(&target, &src));
        if r.code != 0 || !missing.is_empty() || !wrong.is_empty() {
            res.wrong_restores += 1;
        }
        let _ = fs::remove_dir_all(&target);
    }
    res.corrupt += usize::from(!restic_ok(&repo)) + usize::from(!restic_ok(&dst));
    let (c, e) = check(&dst);
    res.corrupt += usize::from(c != 0 || e != 0);
    res
}

/// The kinds of damage, with what is done to the repository.
const DAMAGES: &[&str] =
    &["pack-flip", "pack-truncate", "pack-delete", "index-garble", "index-delete", "snapshot-garble"];

#[derive(Default, Debug)]
struct DamageResults {
    damages: usize,
    detected: usize,
    silent_wrong_restores: usize,
    repaired: usize,
    files_lost: usize,
    files_total: usize,
    per_kind: BTreeMap<&'static str, usize>,
}

/// Files of a local repository under `dir` (`data`, `index`, `snapshots`).
fn files_in(repo: &Path, dir: &str) -> Vec<PathBuf> {
    list_tree(&repo.join(dir)).into_iter().map(|p| repo.join(dir).join(p)).filter(|p| p.is_file()).collect()
}

fn damage(repo: &Path, kind: &str, rng: &mut Rng) -> PathBuf {
    let pick = |rng: &mut Rng, dir: &str| rng.pick(&files_in(repo, dir)).clone();
    let writable = |p: &Path| chmod(p, 0o600);
    match kind {
        "pack-flip" | "pack-truncate" | "pack-delete" => {
            let p = pick(rng, "data");
            writable(&p);
            let mut data = fs::read(&p).unwrap();
            match kind {
                "pack-flip" => {
                    let at = rng.below(data.len());
                    data[at] ^= 1 << rng.below(8);
                    fs::write(&p, data).unwrap();
                }
                "pack-truncate" => fs::write(&p, &data[..rng.below(data.len())]).unwrap(),
                _ => fs::remove_file(&p).unwrap(),
            }
            p
        }
        "index-garble" | "snapshot-garble" => {
            let p = pick(rng, if kind == "index-garble" { "index" } else { "snapshots" });
            writable(&p);
            let mut data = fs::read(&p).unwrap();
            let at = rng.below(data.len());
            data[at] ^= 0x5a;
            fs::write(&p, data).unwrap();
            p
        }
        _ => {
            let p = pick(rng, "index");
            fs::remove_file(&p).unwrap();
            p
        }
    }
}

fn damage_campaign(n: usize, seed: u64) -> DamageResults {
    let tmp = tempdir();
    let (base, src, expected) = (tmp.path().join("base"), tmp.path().join("src"), tmp.path().join("expected"));
    fs::create_dir_all(&expected).unwrap();
    let mut rng = Rng::new(seed ^ 0xdada);
    init(&base);
    let mut snaps: Vec<(String, PathBuf)> = Vec::new();
    for round in 0..3 {
        mutate(&src, &mut rng, round);
        let id = backup_json(&base, &[s(&src)])["snapshot_id"].as_str().unwrap().to_string();
        let copy = expected.join(&id);
        copy_tree(&src, &copy);
        snaps.push((id, copy));
    }
    let mut res = DamageResults::default();
    for j in 0..n {
        let kind = DAMAGES[j % DAMAGES.len()];
        let repo = tmp.path().join(format!("d{j}"));
        copy_tree(&base, &repo);
        let damaged = damage(&repo, kind, &mut rng);
        res.damages += 1;
        *res.per_kind.entry(kind).or_default() += 1;
        let (c, _) = check(&repo);
        if c == 1 {
            res.detected += 1;
        } else {
            eprintln!("{kind} of {} not detected (check exit {c})", damaged.display());
        }
        // Restores: identical, or failing / leaving out named files; never a wrong file.
        for (id, copy) in &snaps {
            let target = repo.with_extension(format!("r-{}", &id[..8]));
            let r = lb(&repo, &["restore", id, "--target", s(&target)]);
            let (_, missing, wrong) = judge(copy, &under(&target, &src));
            // A missing file is named by its own path or by its directory's (a lost tree).
            let named = |m: &String| {
                src.join(m).ancestors().any(|a| r.stderr.contains(&format!("(damaged): {}:", a.display())))
            };
            let unnamed = missing.iter().filter(|m| !named(m)).count();
            let silent =
                !wrong.is_empty() || (r.code == 0 && !missing.is_empty()) || (r.code == 1 && r.stderr.is_empty());
            let partial_unnamed = r.code == 1 && r.stderr.contains("not restored") && unnamed > 0;
            if silent || partial_unnamed || !leftover_tmp(&target).is_empty() {
                res.silent_wrong_restores += 1;
                eprintln!(
                    "{kind} of {}: restore of {id}: exit {}, wrong {wrong:?}, missing {missing:?}, stderr {}",
                    damaged.display(),
                    r.code,
                    r.stderr
                );
            }
            let _ = fs::remove_dir_all(&target);
        }
        // Repairs, as check names them.
        lb(&repo, &["repair", "index"]);
        lb(&repo, &["repair", "packs"]);
        lb(&repo, &["repair", "snapshots", "--read-data", "--forget"]);
        lb(&repo, &["prune"]);
        let (c, e) = check(&repo);
        if c == 0 && e == 0 && restic_ok(&repo) {
            res.repaired += 1;
        } else {
            eprintln!("{kind} of {}: not repaired (check exit {c}, {e} errors)", damaged.display());
        }
        // Every file not lost restores from the repaired snapshots.
        let target = repo.with_extension("after");
        for id in snapshot_ids(&repo) {
            let r = lb(&repo, &["restore", &id, "--target", s(&target), "--overwrite"]);
            assert_eq!(r.code, 0, "{kind}: restore of repaired {id}: {r:?}");
        }
        let last = &snaps[snaps.len() - 1].1;
        let (same, missing, wrong) = judge(last, &under(&target, &src));
        assert!(wrong.is_empty(), "{kind}: wrong files after repair: {wrong:?}");
        res.files_total += same + missing.len();
        res.files_lost += missing.len();
        let _ = fs::remove_dir_all(&target);
        let _ = fs::remove_dir_all(&repo);
    }
    res
}

#[derive(Default, Debug)]
struct WriterResults {
    backups: usize,
    prunes_done: usize,
    prunes_locked: usize,
    failures: usize,
    corrupt: usize,
    wrong_restores: usize,
}

/// Four writers back up their own sources `rounds` times each while a fifth process forgets
/// and prunes in a loop; then everything must check clean (lifeboat and restic) and every
/// snapshot still there must restore identical.
fn writers_campaign(rounds: usize, seed: u64) -> WriterResults {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    init(&repo);
    let known: Arc<Mutex<Vec<(String, PathBuf, PathBuf)>>> = Arc::default();
    let res = Arc::new(Mutex::new(WriterResults::default()));
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (repo, known, res) = (repo.clone(), known.clone(), res.clone());
            let base = tmp.path().join(format!("w{w}"));
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed.wrapping_add(w * 7919));
                let src = base.join("src");
                for round in 0..rounds {
                    mutate(&src, &mut rng, round);
                    let r = lb(&repo, &["--retry-lock", "5m", "--json", "backup", s(&src)]);
                    let mut res = res.lock().unwrap();
                    if r.code != 0 {
                        res.failures += 1;
                        eprintln!("writer {w}: backup exit {}: {}", r.code, r.stderr);
                        continue;
                    }
                    res.backups += 1;
                    let id = serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["snapshot_id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let copy = base.join(&id);
                    copy_tree(&src, &copy);
                    known.lock().unwrap().push((id, copy, src.clone()));
                }
            })
        })
        .collect();
    let pruner = {
        let (repo, res, done) = (repo.clone(), res.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                // Keep the last 3 snapshots of each host and path set; then prune.
                let f = lb(&repo, &["forget", "--keep-last", "3", "--prune"]);
                let mut res = res.lock().unwrap();
                match f.code {
                    0 => res.prunes_done += 1,
                    11 => res.prunes_locked += 1,
                    c => {
                        res.failures += 1;
                        eprintln!("forget --prune exit {c}: {}", f.stderr);
                    }
                }
                drop(res);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    pruner.join().unwrap();
    let mut res = Arc::try_unwrap(res).unwrap().into_inner().unwrap();
    let (c, e) = check(&repo);
    res.corrupt += usize::from(c != 0 || e != 0) + usize::from(!restic_ok(&repo));
    let ids = snapshot_ids(&repo);
    for (id, copy, src) in known.lock().unwrap().iter().filter(|k| ids.contains(&k.0)) {
        let target = tmp.path().join(format!("r-{id}"));
        let r = lb(&repo, &["restore", id, "--target", s(&target)]);
        let (_, missing, wrong) = judge(copy, &under(&target, src));
        if r.code != 0 || !missing.is_empty() || !wrong.is_empty() {
            res.wrong_restores += 1;
        }
        let _ = fs::remove_dir_all(&target);
    }
    res
}

fn campaign(kills: usize, damages: usize, seed: u64) {
    let k = kill_campaign(kills, seed);
    println!(
        "kills: {} runs, {} killed, {} corrupt repositories, {} lost snapshots, {} wrong restores (seed {seed})",
        k.runs, k.killed, k.corrupt, k.lost_snapshots, k.wrong_restores
    );
    let d = damage_campaign(damages, seed);
    println!(
        "damages: {} ({:?}), {} detected, {} silent wrong restores, {} repaired to pass both checks, {} of {} files of the newest snapshot lost (seed {seed})",
        d.damages, d.per_kind, d.detected, d.silent_wrong_restores, d.repaired, d.files_lost, d.files_total
    );
    let rounds = env_n("LIFEBOAT_CAMPAIGN_WRITER_ROUNDS", if kills > 100 { 25 } else { 3 });
    let w = writers_campaign(rounds, seed);
    println!(
        "writers: 4 × {rounds} backups beside a forget --prune loop: {} backups, {} prunes done, {} refused (locked), {} failures, {} corrupt, {} wrong restores (seed {seed})",
        w.backups, w.prunes_done, w.prunes_locked, w.failures, w.corrupt, w.wrong_restores
    );
    assert_eq!((w.failures, w.corrupt, w.wrong_restores), (0, 0, 0), "{w:?}");
    assert_eq!(w.backups, 4 * rounds, "{w:?}");
    assert_eq!((k.corrupt, k.lost_snapshots, k.wrong_restores), (0, 0, 0), "{k:?}");
    assert!(k.killed > 0, "no run was killed: the faults never hit: {k:?}");
    assert_eq!(d.detected, d.damages, "{d:?}");
    assert_eq!(d.silent_wrong_restores, 0, "{d:?}");
    assert_eq!(d.repaired, d.damages, "{d:?}");
}

#[test]
fn campaign_short() {
    campaign(12, 14, 7);
}

#[test]
#[ignore = "the full campaign: minutes; see the module docs for the command"]
fn campaign_full() {
    campaign(
        env_n("LIFEBOAT_CAMPAIGN_KILLS", 500),
        env_n("LIFEBOAT_CAMPAIGN_DAMAGES", 200),
        env_n("LIFEBOAT_CAMPAIGN_SEED", 1) as u64,
    );
}
