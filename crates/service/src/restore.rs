//! Restoring a snapshot: its kind's plan first, then the gate (a dry run stops there; a guarded
//! restore needs the front end's confirmation), the audit log (every restore), then the work.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use lifeboat_repository::snapshots::SnapshotEntry;

use crate::config::{Hooks, SourceConfig};
use crate::error::{Result, ServiceError};
use crate::filter::{find_snapshot, FilterSpec};
use crate::guard;
use crate::hooks::HookEnv;
use crate::kinds::{RestoreRequest, Restored, RunContext, RunRestore};
use crate::plan::Plan;
use crate::progress::Observer;
use crate::session::one_line;
use crate::session::Session;
use lifeboat_ops::records::{HookRun, RunKind, RunOutcome};
use lifeboat_repository::Repository;

/// What the front end decided after seeing the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restore.
    Go,
    /// Stop without changing anything (a dry run, or a guarded restore not confirmed).
    Stop,
}

/// Restore the snapshot `reference` (among those `spec` passes) as `req` asks. `decide` sees
/// the plan (with [`Plan::guarded`] set when the restore is guarded) and says whether to go on;
/// `None` when it stopped.
pub fn restore(
    session: &Session,
    reference: &str,
    spec: &FilterSpec,
    req: &RestoreRequest,
    decide: &mut dyn FnMut(&Plan) -> Result<Decision>,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<Option<Restored>> {
    let repo = session.open()?;
    let _lock = session.lock_read_only(&repo, observer.as_ref())?;
    let at = match (&req.at, req.txid) {
        (Some(_), Some(_)) => return Err(ServiceError::usage("--at and --txid: give one of them")),
        (Some(at), None) => Some(at.as_str()),
        (None, Some(_)) => Some("latest"),
        (None, None) => None,
    };
    let (snap, req) = match at {
        Some(at) => pitr_base(session, &repo, reference, spec, req, at)?,
        None => {
            let snap = find_snapshot(&repo, reference, spec)?;
            let mut req = req.clone();
            if base_end(&snap).is_some() {
                // A base backup restores as a point-in-time recovery to the end of its archive.
                req.pitr = Some(crate::kinds::Pitr { at: None, txid: None, fetch: fetch_command(session)? });
            }
            (snap, req)
        }
    };
    let req = &req;
    let cfg = session.config()?;
    let resolved = crate::config::source_for(cfg.as_deref(), &snap)?;
    let prepared = resolved.source().prepare_restore(&resolved.name, &repo, &snap, req)?;
    let mut plan = prepared.plan;
    guard::assess(cfg.as_deref(), &mut plan)?;
    check_sum_paths(&repo, &snap, &plan, req)?;
    if decide(&plan)? == Decision::Stop {
        return Ok(None);
    }
    let ctx = RunContext { interrupt: Some(interrupt.clone()), observer: observer.clone() };
    let configured = cfg.as_deref().and_then(|c| c.find(&resolved.name).ok()).filter(|s| s.kind() == plan.kind);
    let work = move |ctx: &RunContext| -> Result<Restored> {
        let mut restored = (prepared.run)(ctx)?;
        check_sums(req, &mut restored)?;
        Ok(restored)
    };
    let (restored, _) = run_hooked(&repo, session, configured, &plan, Box::new(work), &ctx);
    restored.map(Some)
}

/// Run a restore whose plan passed the gate, with the source's hooks around it (when the
/// snapshot's source is configured): `before_restore` (a failure: nothing is restored), the
/// audit record, the restore, `after_restore`, the healthcheck; `on_failure` when any of it
/// failed. Recorded as a run of kind `restore` with each hook's outcome. A restore whose
/// `--verify` found differences or that left out damaged files counts as failed for the hooks
/// (no `after_restore`), and is returned as it is for the front end to report.
pub fn run_hooked(
    repo: &Repository,
    session: &Session,
    src: Option<&SourceConfig>,
    plan: &Plan,
    work: RunRestore<'_>,
    ctx: &RunContext,
) -> (Result<Restored>, Vec<HookRun>) {
    let o = ctx.observer.as_ref();
    let name = plan.source.clone().unwrap_or_default();
    let mut run = crate::runs::begin(repo, session, RunKind::Restore, plan.source.as_deref(), o);
    run.snapshot = Some(plan.snapshot);
    let none = Hooks::default();
    let hooks = src.map(|s| &s.hooks).unwrap_or(&none);
    let env = HookEnv {
        snapshot: Some(plan.snapshot.to_hex()),
        target: Some(plan.target.clone()),
        ..HookEnv::new(&name, "restore")
    };
    let mut ran = Vec::new();
    let result = hooks_around(repo, session, hooks, plan, work, ctx, &env, &mut ran);
    let failure = match &result {
        Err(e) => Some(one_line(e)),
        Ok(r) if !r.mismatches.is_empty() || !r.failed.is_empty() => {
            Some(r.check().err().map(|e| one_line(&e)).unwrap_or_else(|| "damaged files were not restored".into()))
        }
        Ok(_) => None,
    };
    if let Some(f) = &failure {
        crate::hooks::on_failure(hooks, &env, f, &mut ran);
    }
    crate::hooks::say(&mut run, &ran);
    let result = result.map(|mut r| {
        for h in &ran {
            r.lines.push(format!("hook {}", h.line()));
        }
        if !ran.is_empty() {
            if let Some(obj) = r.json.as_object_mut() {
                obj.insert("hooks".into(), serde_json::json!(ran));
            }
        }
        r
    });
    let outcome = if failure.is_some() { RunOutcome::Failed } else { RunOutcome::Ok };
    if failure.is_none() {
        run.say("info", format!("snapshot {} restored to {}", plan.snapshot.short(), plan.target));
    }
    crate::runs::end(repo, run, outcome, failure, o);
    (result, ran)
}

/// `before_restore`, the audit record, the restore, `after_restore`, the healthcheck.
#[allow(clippy::too_many_arguments)]
fn hooks_around(
    repo: &Repository,
    session: &Session,
    hooks: &Hooks,
    plan: &Plan,
    work: RunRestore<'_>,
    ctx: &RunContext,
    env: &HookEnv,
    ran: &mut Vec<HookRun>,
) -> Result<Restored> {
    crate::hooks::run_named(hooks, "before_restore", env, ran)
        .map_err(|e| ServiceError::msg(format!("{e}; nothing was restored")))?;
    // Every restore is in the audit log (guarded ones with why), recorded before it starts.
    crate::audit::record(repo, Some(session), guard::event(plan), ctx.observer.as_ref());
    let restored = work(ctx)?;
    if !restored.mismatches.is_empty() || !restored.failed.is_empty() {
        return Ok(restored);
    }
    crate::hooks::run_named(hooks, "after_restore", env, ran)
        .map_err(|e| ServiceError::msg(format!("{e} (the data was restored to {})", plan.target)))?;
    if let Some(h) = &hooks.healthcheck {
        let r = crate::hooks::healthcheck(h, &env.source);
        let failed = (!r.ok).then(|| format!("healthcheck {}", r.line().trim_start_matches("healthcheck ")));
        ran.push(r);
        if let Some(f) = failed {
            return Err(ServiceError::msg(format!("{f} (the data was restored to {})", plan.target)));
        }
    }
    Ok(restored)
}

/// When a point-in-time base backup ended; `None` for other snapshots.
pub(crate) fn base_end(s: &SnapshotEntry) -> Option<chrono::DateTime<chrono::Utc>> {
    let m = s.snapshot.source.as_ref()?.manifest.as_ref()?;
    if !lifeboat_sources::postgres::pitr::is_base(m) {
        return None;
    }
    m.get("finished")?.as_str()?.parse().ok()
}

/// When a base ended and, for a sqlite base, the transaction it holds.
type StartPoint = (chrono::DateTime<chrono::Utc>, Option<u64>);

/// Where a restore can start from for a point in time: a postgres base backup (when it ended)
/// or the base of a generation of sqlite replication (when it was taken, and its transaction).
fn start_point(s: &SnapshotEntry) -> Option<StartPoint> {
    if let Some(t) = base_end(s) {
        return Some((t, None));
    }
    crate::replicate::replica_base(s).map(|b| (b.time, Some(b.txid)))
}

/// `--at TIME` or `--txid N`: the base to start from (the newest that ended before TIME or
/// holds a transaction up to N, among those `reference` and `spec` allow) and the request with
/// its point-in-time part resolved.
fn pitr_base(
    session: &Session,
    repo: &lifeboat_repository::Repository,
    reference: &str,
    spec: &FilterSpec,
    req: &RestoreRequest,
    at: &str,
) -> Result<(SnapshotEntry, RestoreRequest)> {
    let time = match at {
        "latest" | "end" => None,
        t => Some(
            lifeboat_ops::duration::parse_time(t, chrono::Utc::now())
                .map_err(|e| ServiceError::usage(format!("--at: {e}")))?,
        ),
    };
    let txid = req.txid;
    let fits = |t: &chrono::DateTime<chrono::Utc>, base_txid: Option<u64>| {
        time.is_none_or(|at| *t <= at) && txid.is_none_or(|n| base_txid.is_some_and(|b| b <= n))
    };
    let what = if txid.is_some() {
        "the base of a sqlite source with `continuous = true`"
    } else {
        "a point-in-time base backup (a postgres source with `pitr = true`, or the base of a sqlite source with `continuous = true`)"
    };
    let snap = if reference == "latest" {
        let filter = spec.filter()?;
        let all = lifeboat_repository::snapshots::list_intact(repo)?;
        let mut bases: Vec<(StartPoint, SnapshotEntry)> = all
            .into_iter()
            .filter(|s| filter.matches(&s.snapshot))
            .filter_map(|s| start_point(&s).map(|t| (t, s)))
            .filter(|((t, b), _)| fits(t, *b))
            .collect();
        bases.sort_by_key(|((t, b), _)| (*b, *t));
        match bases.pop() {
            Some((_, s)) => s,
            None => {
                let when = match (time, txid) {
                    (_, Some(n)) => format!(" holding transaction {n} or an earlier one"),
                    (Some(t), None) => format!(" ended before {}", t.to_rfc3339()),
                    (None, None) => String::new(),
                };
                return Err(ServiceError::msg(format!(
                    "no point-in-time base backup{when}{}: back up a source with `pitr = true` or replicate one with `continuous = true` first",
                    if spec.describe().is_empty() { String::new() } else { format!(" with {}", spec.describe()) }
                )));
            }
        }
    } else {
        let s = find_snapshot(repo, reference, spec)?;
        match start_point(&s) {
            None => {
                return Err(ServiceError::usage(format!(
                    "--at and --txid need {what}; snapshot {} is not one",
                    s.id.short()
                )))
            }
            Some((t, b)) if !fits(&t, b) => {
                return Err(ServiceError::usage(match txid {
                    Some(n) => format!(
                        "snapshot {} holds transaction {}, after --txid {n}: recovery can only go forward from a base",
                        s.id.short(),
                        b.map(|b| b.to_string()).unwrap_or_else(|| "ids of another kind".into())
                    ),
                    None => format!(
                        "snapshot {} ended at {}, after --at: recovery can only go forward from a base backup",
                        s.id.short(),
                        t.to_rfc3339()
                    ),
                }))
            }
            Some(_) => s,
        }
    };
    let mut req = req.clone();
    req.pitr = Some(crate::kinds::Pitr { at: time, txid, fetch: fetch_command(session)? });
    Ok((snap, req))
}

/// This program with the session's config file or repository, quoted for a shell (PostgreSQL
/// runs `restore_command` with `sh -c`); the password is never in it: the restored server needs
/// it in its environment (`LIFEBOAT_PASSWORD_FILE`) or through the config's password setting.
pub(crate) fn fetch_command(session: &Session) -> Result<String> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let exe = std::env::current_exe().map_err(|e| ServiceError::msg(format!("cannot find this program: {e}")))?;
    let mut cmd = quote(&exe.to_string_lossy());
    let abs = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let config = session.config_path.clone().or_else(|| {
        let d = std::path::Path::new(crate::session::DEFAULT_CONFIG);
        d.is_file().then(|| d.to_path_buf())
    });
    if let Some(c) = config {
        cmd.push_str(&format!(" --config {}", quote(&abs(&c).to_string_lossy())));
    }
    if let Some(repo) = &session.repo {
        let local = !repo.contains(':') || repo.starts_with('/');
        let repo = if local { abs(std::path::Path::new(repo)).to_string_lossy().into_owned() } else { repo.clone() };
        cmd.push_str(&format!(" --repo {}", quote(&repo)));
    }
    Ok(cmd)
}

/// `--checksum PATH=sha256:HEX`: the path inside the snapshot and the lower-case hex digest.
pub fn parse_checksum(s: &str) -> std::result::Result<(String, String), String> {
    let bad = || format!("{s:?}: expected PATH=sha256:HEX (a path inside the snapshot and 64 hex digits)");
    let (path, sum) = s.rsplit_once('=').ok_or_else(bad)?;
    let hex = sum.strip_prefix("sha256:").ok_or_else(bad)?;
    if path.trim_matches('/').is_empty() || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((format!("/{}", path.trim_matches('/')), hex.to_ascii_lowercase()))
}

/// Before a restore: every `--checksum` path is a file of this snapshot (of files or a command).
fn check_sum_paths(
    repo: &lifeboat_repository::Repository,
    snap: &SnapshotEntry,
    plan: &Plan,
    req: &RestoreRequest,
) -> Result<()> {
    if req.checksums.is_empty() {
        return Ok(());
    }
    if plan.kind != "files" && plan.kind != "command" {
        return Err(ServiceError::usage(format!(
            "--checksum checks files restored into a directory; snapshot {} is of a {} source",
            snap.id.short(),
            plan.kind
        )));
    }
    for (path, _) in &req.checksums {
        let node = match lifeboat_repository::tree::find_node(repo, &snap.snapshot.tree, path) {
            Err(lifeboat_repository::RepoError::PathNotFound(_)) => None,
            other => other?,
        };
        if node.is_none_or(|n| n.node_type != lifeboat_format::NodeType::File) {
            return Err(ServiceError::usage(format!(
                "--checksum: {path} is not a file in snapshot {}",
                snap.id.short()
            )));
        }
    }
    Ok(())
}

/// After a restore: hash each `--checksum` file as restored; a mismatch is an error.
fn check_sums(req: &RestoreRequest, restored: &mut Restored) -> Result<()> {
    let mut results = Vec::new();
    for (path, want) in &req.checksums {
        let file = req.target.join(path.trim_start_matches('/'));
        let got =
            hash_file(&file).map_err(|e| ServiceError::io(format!("--checksum: cannot read {}", file.display()), e))?;
        if got != *want {
            return Err(ServiceError::msg(format!(
                "checksum mismatch: {path} was restored to {} with sha256:{got}, expected sha256:{want}",
                file.display()
            )));
        }
        restored.lines.push(format!("checksum ok: {path} sha256:{got}"));
        results.push(serde_json::json!({ "path": path, "sha256": got, "ok": true }));
    }
    if !results.is_empty() {
        if let Some(o) = restored.json.as_object_mut() {
            o.insert("checksums".into(), results.into());
        }
    }
    Ok(())
}

/// Hex SHA-256 of a file, streamed.
fn hash_file(path: &std::path::Path) -> std::io::Result<String> {
    use lifeboat_crypto::Digest as _;
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let mut h = lifeboat_crypto::hasher();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf)? {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    Ok(hex::encode(h.finalize()))
}
