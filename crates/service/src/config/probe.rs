//! `[[probe]]`: a number from a command's output or an HTTP GET, with thresholds and an interval
//! for the daemon.
//!
//! ```toml
//! [[probe]]
//! name = "quri-cycles"
//! command = ["dfx", "canister", "status", "quri_backend", "--network", "ic"]
//! regex = 'Balance: ([0-9_,]+) Cycles'
//! warning_below = 2_000_000_000_000
//! critical_below = 1_000_000_000_000
//! interval = "15m"
//! ```

use std::time::Duration;

use lifeboat_ops::probe::Thresholds;
use serde::Deserialize;

/// One `[[probe]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSection {
    /// Name (letters, digits, `.`, `_`, `-`): in commands, metrics and alerts.
    pub name: String,
    /// Program and arguments; its standard output is read (`${VAR}` allowed in each).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Or an HTTP(S) URL fetched with GET (`${VAR}` allowed; a secret: never shown).
    #[serde(default)]
    pub url: Option<String>,
    /// Picks the number from JSON output: `$.a.b[0].c` or `a.b.0.c`.
    #[serde(default)]
    pub json_path: Option<String>,
    /// Picks the number with a regular expression's first group.
    #[serde(default)]
    pub regex: Option<String>,
    /// Warning below this value.
    #[serde(default)]
    pub warning_below: Option<f64>,
    /// Critical below this value.
    #[serde(default)]
    pub critical_below: Option<f64>,
    /// Warning above this value.
    #[serde(default)]
    pub warning_above: Option<f64>,
    /// Critical above this value.
    #[serde(default)]
    pub critical_above: Option<f64>,
    /// How often the daemon runs it (`15m`; default `5m`).
    #[serde(default)]
    pub interval: Option<String>,
    /// How long it may take (default `30s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Environment variables passed to the command (the rest is cleared but `PATH`, `HOME`,
    /// `LANG`, `LC_ALL`, `TZ`, `USER`): a token reaches it this way, not in argv.
    #[serde(default)]
    pub env: Vec<String>,
    /// What the number counts, for people (`cycles`, `bytes`).
    #[serde(default)]
    pub unit: Option<String>,
}

impl ProbeSection {
    /// The thresholds.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            warning_below: self.warning_below,
            critical_below: self.critical_below,
            warning_above: self.warning_above,
            critical_above: self.critical_above,
        }
    }

    /// The daemon's interval.
    pub fn every(&self) -> Duration {
        self.interval
            .as_deref()
            .and_then(|t| lifeboat_ops::duration::parse(t).ok())
            .unwrap_or(Duration::from_secs(300))
            .max(Duration::from_secs(1))
    }

    /// The time limit.
    pub fn time_limit(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(|t| lifeboat_ops::duration::parse(t).ok())
            .unwrap_or(Duration::from_secs(30))
            .max(Duration::from_millis(100))
    }

    /// Everything that can be checked before running it.
    pub fn validate(&self) -> Result<(), String> {
        let ok_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && !self.name.starts_with('.');
        if !ok_name {
            return Err(format!(
                "probe name {:?}: use letters, digits, `.`, `_` and `-` (at most 64, not starting with `.`)",
                self.name
            ));
        }
        match (&self.command, &self.url) {
            (Some(c), None) if c.is_empty() => return Err("`command` is empty".into()),
            (Some(_), None) | (None, Some(_)) => {}
            (Some(_), Some(_)) => return Err("set `command` or `url`, not both".into()),
            (None, None) => return Err("needs `command` (argv) or `url`".into()),
        }
        if self.json_path.is_some() && self.regex.is_some() {
            return Err("set `json_path` or `regex`, not both".into());
        }
        if let Some(r) = &self.regex {
            let re = regex::Regex::new(r).map_err(|e| format!("regex: {}", e.to_string().replace('\n', " ")))?;
            if re.captures_len() < 2 {
                return Err("regex needs one group `( … )` around the number".into());
            }
        }
        if let Some(p) = &self.json_path {
            crate::probe::path_steps(p)?;
        }
        for (what, v) in [("interval", &self.interval), ("timeout", &self.timeout)] {
            if let Some(t) = v {
                lifeboat_ops::duration::parse(t).map_err(|e| format!("{what}: {e}"))?;
            }
        }
        self.thresholds().check()
    }
}
