//! A source's hooks and post-restore checks, and its place in a whole-service restore.
//!
//! ```toml
//! [[source]]
//! name = "app-db"
//! kind = "postgres"
//! database = "app"
//! before_restore = ["systemctl", "stop", "app"]
//! after_restore = { command = ["systemctl", "start", "app"], timeout = "2m" }
//! on_failure = { command = ["/usr/local/bin/page", "app-db"], env = { PAGER_TOKEN = "${PAGER_TOKEN}" } }
//! healthcheck_url = "http://127.0.0.1:8080/health"
//! verify_command = ["/usr/local/bin/check-merkle", "--db", "{target}"]
//! after = ["app-files"]
//! ```
//!
//! A hook is an argv array, or a table with `command` (argv), `timeout` (default 60s) and `env`
//! (variables set for it; `${VAR}` allowed, so a secret reaches a hook only when configured).

use std::collections::BTreeMap;
use std::time::Duration;

/// Default time limit of a hook.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Names of the hook fields of a `[[source]]`, in the order they run.
pub const HOOK_FIELDS: &[&str] = &["before_backup", "after_backup", "before_restore", "after_restore", "on_failure"];

/// One hook: a program with its arguments, a time limit and extra environment variables.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    /// Program and arguments (`${VAR}` allowed in each; `{target}` is the restore target).
    pub command: Vec<String>,
    /// Killed (with its whole process group) after this long.
    pub timeout: Duration,
    /// Set for it (after the cleared environment), values with `${VAR}` substituted.
    pub env: BTreeMap<String, String>,
}

impl Hook {
    /// Read a hook from its TOML value: `["prog", "arg"]` or `{ command = [...], timeout, env }`.
    pub fn from_value(v: &toml::Value) -> Result<Hook, String> {
        let argv = |v: &toml::Value| -> Result<Vec<String>, String> {
            let a = v.as_array().ok_or("expected an argv array like [\"systemctl\", \"stop\", \"app\"]")?;
            let argv: Vec<String> = a
                .iter()
                .map(|x| x.as_str().map(String::from).ok_or("every element of the argv array must be a string"))
                .collect::<Result<_, _>>()?;
            if argv.is_empty() || argv[0].trim().is_empty() {
                return Err("the argv array is empty".into());
            }
            Ok(argv)
        };
        match v {
            toml::Value::Array(_) => Ok(Hook { command: argv(v)?, timeout: DEFAULT_TIMEOUT, env: BTreeMap::new() }),
            toml::Value::Table(t) => {
                if let Some(k) = t.keys().find(|k| !["command", "timeout", "env"].contains(&k.as_str())) {
                    return Err(format!("unknown key `{k}` (a hook table has command, timeout, env)"));
                }
                let command = argv(t.get("command").ok_or("a hook table needs `command = [\"prog\", \"arg\", …]`")?)?;
                let timeout = match t.get("timeout") {
                    None => DEFAULT_TIMEOUT,
                    Some(x) => {
                        let text = x.as_str().ok_or("timeout must be a duration like \"30s\"")?;
                        lifeboat_ops::duration::parse(text).map_err(|e| format!("timeout: {e}"))?
                    }
                };
                let mut env = BTreeMap::new();
                if let Some(e) = t.get("env") {
                    let e = e.as_table().ok_or("env must be a table like { NAME = \"value\" }")?;
                    for (k, v) in e {
                        let v = v.as_str().ok_or_else(|| format!("env {k}: the value must be a string"))?;
                        if k.is_empty() || k.contains('=') {
                            return Err(format!("env: {k:?} is not a variable name"));
                        }
                        env.insert(k.clone(), v.to_string());
                    }
                }
                Ok(Hook { command, timeout, env })
            }
            _ => Err("expected an argv array or a table { command = [...], timeout = \"30s\", env = { … } }".into()),
        }
    }

    /// The program's name, for people (`stop.sh`, not its path or arguments).
    pub fn program(&self) -> String {
        let p = self.command.first().map(String::as_str).unwrap_or_default();
        p.rsplit('/').next().unwrap_or(p).to_string()
    }
}

/// A source's hooks and checks (every field optional).
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    /// Before its backup; a failure skips the backup and fails the run.
    pub before_backup: Option<Hook>,
    /// After a successful backup; a failure fails the run (the snapshot is kept).
    pub after_backup: Option<Hook>,
    /// Before a restore (stop the service); a failure skips the restore and fails the run.
    pub before_restore: Option<Hook>,
    /// After a successful restore (start the service); a failure fails the run (the data is
    /// restored).
    pub after_restore: Option<Hook>,
    /// When a backup or restore of the source failed (`LIFEBOAT_ERROR` says why).
    pub on_failure: Option<Hook>,
    /// Checked after a restore (and after `after_restore`).
    pub healthcheck: Option<Healthcheck>,
    /// Run against a restore test's scratch target (`verify --restore-test`, `drill`).
    pub verify_command: Option<Hook>,
}

impl Hooks {
    /// The hook named `name` (one of [`HOOK_FIELDS`]).
    pub fn get(&self, name: &str) -> Option<&Hook> {
        match name {
            "before_backup" => self.before_backup.as_ref(),
            "after_backup" => self.after_backup.as_ref(),
            "before_restore" => self.before_restore.as_ref(),
            "after_restore" => self.after_restore.as_ref(),
            "on_failure" => self.on_failure.as_ref(),
            "verify_command" => self.verify_command.as_ref(),
            _ => None,
        }
    }

    /// The names of what is configured (`before_restore`, `healthcheck`, `verify_command`, …).
    pub fn names(&self) -> Vec<&'static str> {
        let mut n: Vec<&'static str> = HOOK_FIELDS.iter().copied().filter(|h| self.get(h).is_some()).collect();
        n.extend(self.healthcheck.as_ref().map(|_| "healthcheck"));
        n.extend(self.verify_command.as_ref().map(|_| "verify_command"));
        n
    }

    /// Whether anything is configured.
    pub fn is_empty(&self) -> bool {
        HOOK_FIELDS.iter().all(|h| self.get(h).is_none()) && self.healthcheck.is_none() && self.verify_command.is_none()
    }
}

/// `healthcheck_url` and its settings: an HTTP GET after a restore that must answer `status`.
#[derive(Clone, Debug, PartialEq)]
pub struct Healthcheck {
    /// The URL (`${VAR}` allowed; shown without credentials and query).
    pub url: String,
    /// The expected status (default 200).
    pub status: u16,
    /// Tries before it fails (default 3), one second apart.
    pub retries: u32,
    /// Time limit of each try (default 10s).
    pub timeout: Duration,
}
