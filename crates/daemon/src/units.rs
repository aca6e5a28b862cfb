//! Schedulers without the daemon: the config's jobs as one `/etc/cron.d` file, as a systemd
//! service + timer per job, or as Kubernetes CronJobs (one per job, `concurrencyPolicy:
//! Forbid`, secrets as Secret references, the config as a ConfigMap) — or a Deployment that runs
//! the daemon.

use std::fmt::Write as _;
use std::time::Duration;

use lifeboat_service::config::{Config, Schedule};

use crate::jobs::{Job, Work};

/// What the generated units run.
#[derive(Clone, Debug)]
pub struct Target {
    /// The lifeboat binary (`/usr/local/bin/lifeboat`).
    pub binary: String,
    /// The config file as the jobs see it (`/etc/lifeboat/lifeboat.toml`).
    pub config: String,
    /// The user that runs them (cron and systemd).
    pub user: String,
}

/// The command line of a job (the password comes from the config or the environment).
pub fn argv(job: &Job, t: &Target) -> Vec<String> {
    let mut v = vec![t.binary.clone(), "--config".into(), t.config.clone()];
    let rest: Vec<&str> = match &job.work {
        Work::Backup(s) => vec!["backup", s],
        Work::ApplyRetention => vec!["apply-retention"],
        Work::Check { read_data_percent } if *read_data_percent > 0 => vec!["check", "--read-data"],
        Work::Check { .. } => vec!["check"],
        Work::Verify { restore_test: true, .. } => vec!["verify", "--restore-test"],
        Work::Verify { restore_test: false, .. } => vec!["verify"],
        Work::Drill { random: true, .. } => vec!["drill", "--random-snapshot"],
        Work::Drill { random: false, .. } => vec!["drill"],
        Work::Copy { to: Some(d) } => vec!["copy", "--to", d],
        // jobs() names a destination for every copy job.
        Work::Copy { to: None } => vec!["copy"],
    };
    v.extend(rest.into_iter().map(String::from));
    if let Work::Verify { source: Some(s), .. } | Work::Drill { source: Some(s), .. } = &job.work {
        v.extend(["--source".to_string(), s.clone()]);
    }
    v
}

/// A 5-field cron expression for a schedule (`every 15m` → `*/15 * * * *`); `None` when cron
/// cannot say it (intervals that do not divide an hour or a day, `continuous`).
pub fn cron_expression(s: &Schedule) -> Option<String> {
    match s {
        Schedule::Cron { text, .. } => Some(match text.as_str() {
            "@hourly" => "0 * * * *".into(),
            "@daily" | "@midnight" => "0 0 * * *".into(),
            "@weekly" => "0 0 * * 0".into(),
            "@monthly" => "0 0 1 * *".into(),
            "@yearly" | "@annually" => "0 0 1 1 *".into(),
            t => t.to_string(),
        }),
        Schedule::Every(d) => {
            let m = d.as_secs() / 60;
            match m {
                0 => None,
                m if m < 60 && 60 % m == 0 && d.as_secs() % 60 == 0 => Some(format!("*/{m} * * * *")),
                60 => Some("0 * * * *".into()),
                m if m % 60 == 0 && m < 1440 && 1440 % m == 0 => Some(format!("0 */{} * * *", m / 60)),
                1440 => Some("0 0 * * *".into()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A systemd `OnCalendar=` for a 5-field cron expression (numbers, `*`, lists, ranges and
/// steps; weekday names pass through), or `None`.
pub fn on_calendar(cron: &str) -> Option<String> {
    let f: Vec<&str> = cron.split_whitespace().collect();
    let [min, hour, dom, mon, dow] = f.as_slice() else { return None };
    let field = |x: &str| -> Option<String> {
        if x == "*" {
            return Some("*".into());
        }
        let parts: Vec<String> = x
            .split(',')
            .map(|p| {
                if let Some((base, step)) = p.split_once('/') {
                    let start = if base == "*" { "0" } else { base.split('-').next().unwrap_or("0") };
                    format!("{start}/{step}")
                } else {
                    p.replace('-', "..")
                }
            })
            .collect();
        Some(parts.join(","))
    };
    let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let weekday = if *dow == "*" {
        String::new()
    } else {
        let named: Option<Vec<String>> = dow
            .split(',')
            .map(|p| match p.split_once('-') {
                Some((a, b)) => {
                    Some(format!("{}..{}", days.get(a.parse::<usize>().ok()?)?, days.get(b.parse::<usize>().ok()?)?))
                }
                None => p.parse::<usize>().ok().and_then(|n| days.get(n)).map(|d| d.to_string()),
            })
            .collect();
        format!("{} ", named?.join(","))
    };
    Some(format!("{weekday}*-{}-{} {}:{}:00", field(mon)?, field(dom)?, field(hour)?, field(min)?))
}

fn sh_quote(a: &str) -> String {
    if a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c)) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// The unit name of a job: `lifeboat-backup-orders-db`, `lifeboat-apply-retention`.
pub fn unit_name(job: &Job) -> String {
    format!("lifeboat-{}", job.name.replace([':', '_'], "-"))
}

/// One `/etc/cron.d` file for every job cron can express; the others are listed as comments.
pub fn cron_file(cfg: &Config, jobs: &[Job], t: &Target) -> String {
    let mut out = format!(
        "# Lifeboat jobs from {} (generated by `lifeboat schedule print --cron`).\n# Never two runs of one job at once: each line runs under flock.\nSHELL=/bin/sh\nPATH=/usr/local/bin:/usr/bin:/bin\n",
        cfg.path.display()
    );
    for j in jobs {
        match cron_expression(&j.schedule) {
            Some(c) => {
                let cmd: Vec<String> = argv(j, t).iter().map(|a| sh_quote(a)).collect();
                let _ = writeln!(out, "{c} {} flock -n /run/lock/{}.lock {}", t.user, unit_name(j), cmd.join(" "));
            }
            None => {
                let _ = writeln!(
                    out,
                    "# {}: schedule {:?} has no cron form; run it with `lifeboat daemon`",
                    j.name,
                    j.schedule.text()
                );
            }
        }
    }
    out
}

/// A systemd service and timer per job: `(file name, content)` pairs.
pub fn systemd_units(jobs: &[Job], t: &Target) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for j in jobs {
        let name = unit_name(j);
        let exec: Vec<String> = argv(j, t).iter().map(|a| sh_quote(a)).collect();
        let service = format!(
            "[Unit]\nDescription=Lifeboat {job}\nDocumentation=man:lifeboat(1)\nWants=network-online.target\nAfter=network-online.target\n\n[Service]\nType=oneshot\nUser={user}\nExecStart={exec}\nNoNewPrivileges=yes\nPrivateTmp=yes\nProtectSystem=full\nProtectKernelTunables=yes\nProtectKernelModules=yes\nProtectControlGroups=yes\n",
            job = j.name,
            user = t.user,
            exec = exec.join(" ")
        );
        let when = match (&j.schedule, cron_expression(&j.schedule).and_then(|c| on_calendar(&c))) {
            (Schedule::Every(d), _) => format!("OnBootSec={}\nOnUnitActiveSec={}\n", secs(*d), secs(*d)),
            (_, Some(cal)) => format!("OnCalendar={cal}\nPersistent=true\n"),
            _ => continue,
        };
        let timer = format!(
            "[Unit]\nDescription=Lifeboat {job} on schedule ({schedule})\n\n[Timer]\n{when}RandomizedDelaySec=30s\n\n[Install]\nWantedBy=timers.target\n",
            job = j.name,
            schedule = j.schedule.text()
        );
        out.push((format!("{name}.service"), service));
        out.push((format!("{name}.timer"), timer));
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// Kubernetes YAML: a ConfigMap with the config file, then a CronJob per job (or, with
/// `daemon`, a Deployment running `lifeboat daemon`). Secrets are references to a Secret named
/// `lifeboat` (key `password`), never values.
pub fn kubernetes(cfg_text: &str, jobs: &[Job], image: &str, daemon: bool) -> String {
    let mut out = String::new();
    let indented: String = cfg_text.lines().map(|l| format!("    {l}\n")).collect();
    let _ = write!(
        out,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lifeboat-config\ndata:\n  lifeboat.toml: |\n{indented}"
    );
    let env = "          env:\n            - name: LIFEBOAT_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: lifeboat\n                  key: password\n";
    let mounts = "          volumeMounts:\n            - name: config\n              mountPath: /etc/lifeboat\n              readOnly: true\n";
    let volumes = "      volumes:\n        - name: config\n          configMap:\n            name: lifeboat-config\n";
    let t = Target { binary: "lifeboat".into(), config: "/etc/lifeboat/lifeboat.toml".into(), user: String::new() };
    if daemon {
        let _ = write!(
            out,
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: lifeboat\nspec:\n  replicas: 1\n  strategy:\n    type: Recreate\n  selector:\n    matchLabels:\n      app: lifeboat\n  template:\n    metadata:\n      labels:\n        app: lifeboat\n    spec:\n      terminationGracePeriodSeconds: 120\n      containers:\n        - name: lifeboat\n          image: {image}\n          args: [\"--config\", \"/etc/lifeboat/lifeboat.toml\", \"daemon\", \"--log-format\", \"json\"]\n          ports:\n            - containerPort: 9848\n{env}{mounts}{volumes}"
        );
        return out;
    }
    for j in jobs {
        let Some(cron) = cron_expression(&j.schedule) else { continue };
        let args: Vec<String> = argv(j, &t).into_iter().skip(1).map(|a| format!("{a:?}")).collect();
        let _ = write!(
            out,
            "---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n  schedule: \"{cron}\"\n  concurrencyPolicy: Forbid\n  successfulJobsHistoryLimit: 3\n  failedJobsHistoryLimit: 3\n  jobTemplate:\n    spec:\n      backoffLimit: 0\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n            - name: lifeboat\n              image: {image}\n              args: [{args}]\n{env}{mounts}{volumes}",
            name = unit_name(j),
            args = args.join(", "),
            env = indent(env, 4),
            mounts = indent(mounts, 4),
            volumes = indent(volumes, 4),
        );
    }
    out
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// Each job with its schedule, next run (in the configured time zone, without jitter) and
/// command line, for `schedule show`.
pub fn show(cfg: &Config, t: &Target) -> Vec<serde_json::Value> {
    let now = chrono::Utc::now();
    crate::jobs::jobs(cfg)
        .iter()
        .map(|j| {
            let next = crate::jobs::next(&j.schedule, now, cfg.jobs.zone(), Duration::ZERO);
            let local = next.map(|n| n.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string());
            serde_json::json!({"job": j.name, "schedule": j.schedule.text(), "next": next, "next_local": local, "command": argv(j, t)})
        })
        .collect()
}

/// The generated files for `format` (`cron`, `systemd`, `kubernetes`, `kubernetes-daemon`):
/// `(file name, content)` pairs.
pub fn files(format: &str, cfg: &Config, t: &Target, image: &str) -> Result<Vec<(String, String)>, String> {
    let jobs = crate::jobs::jobs(cfg);
    if jobs.is_empty() {
        return Err(format!("{} schedules nothing: add `schedule` to sources or a [jobs] section", cfg.path.display()));
    }
    let text = std::fs::read_to_string(&cfg.path).map_err(|e| format!("cannot read {}: {e}", cfg.path.display()))?;
    Ok(match format {
        "cron" => vec![("lifeboat".to_string(), cron_file(cfg, &jobs, t))],
        "systemd" => systemd_units(&jobs, t),
        "kubernetes" => vec![("lifeboat.yaml".to_string(), kubernetes(&text, &jobs, image, false))],
        "kubernetes-daemon" => vec![("lifeboat.yaml".to_string(), kubernetes(&text, &jobs, image, true))],
        f => return Err(format!("unknown format {f:?}")),
    })
}

/// Write the files into `dir` (`/etc/cron.d`, `/etc/systemd/system`); returns their paths.
pub fn install(dir: &std::path::Path, files: &[(String, String)]) -> Result<Vec<std::path::PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}

/// Remove every Lifeboat-generated file from `dir` (`lifeboat` and `lifeboat-*.service|timer`);
/// returns their paths.
pub fn uninstall(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let ours =
            n == "lifeboat" || (n.starts_with("lifeboat-") && (n.ends_with(".service") || n.ends_with(".timer")));
        if ours {
            std::fs::remove_file(e.path()).map_err(|er| format!("cannot remove {}: {er}", e.path().display()))?;
            out.push(e.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cron_and_calendar_forms() {
        let c = |s: &str| cron_expression(&s.parse().unwrap());
        assert_eq!(c("every 15m").as_deref(), Some("*/15 * * * *"));
        assert_eq!(c("every 2h").as_deref(), Some("0 */2 * * *"));
        assert_eq!(c("every 7m"), None);
        assert_eq!(c("@daily").as_deref(), Some("0 0 * * *"));
        assert_eq!(on_calendar("30 2 * * *").as_deref(), Some("*-*-* 2:30:00"));
        assert_eq!(on_calendar("*/15 * * * 1-5").as_deref(), Some("Mon..Fri *-*-* *:0/15:00"));
        assert_eq!(on_calendar("0 3 1 * *").as_deref(), Some("*-*-1 3:0:00"));
    }
}
