//! Probes (`[[probe]]`): run a command or GET a URL, pick a number from what it prints, grade it
//! against the thresholds, keep it in the repository; and the history with the burn rate per day
//! and the forecast time until the critical threshold.
//!
//! A probe that fails (the command exits non-zero, times out, prints no number; the URL does not
//! answer 2xx) is a sample with no value and status `unknown` and a one-line reason, not an error:
//! the other probes still run. A command gets no secrets by accident: its environment is cleared
//! down to `PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ`, `USER` plus the variables its `env` lists (the
//! repository password never reaches it).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_ops::probe::{self, Forecast, ProbeStatus, Sample};
use serde::Serialize;

use crate::config::{substitute, Config, ProbeSection};
use crate::error::{Result, ServiceError};
use crate::progress::{Event, Observer};
use crate::session::{one_line, Session};

/// One step of a JSON path.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Parse `$.a.b[0].c`, `a.b.0.c` or `$["a b"].c` into steps.
pub fn path_steps(path: &str) -> std::result::Result<Vec<Step>, String> {
    let bad = |why: &str| format!("json_path {path:?}: {why}");
    let mut rest = path.trim();
    rest = rest.strip_prefix('$').unwrap_or(rest);
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]").ok_or_else(|| bad("unclosed [\""))?;
            steps.push(Step::Key(r[..end].to_string()));
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| bad("unclosed ["))?;
            let i = r[..end].trim().parse().map_err(|_| bad("an index in [ ] must be a number"))?;
            steps.push(Step::Index(i));
            rest = &r[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            steps.push(match key.parse::<usize>() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Key(key.to_string()),
            });
            rest = &rest[end..];
        }
    }
    if steps.is_empty() {
        return Err(bad("names no value"));
    }
    Ok(steps)
}

/// Pick the number out of a probe's output.
pub fn extract(p: &ProbeSection, text: &str) -> std::result::Result<f64, String> {
    let picked: String = if let Some(path) = &p.json_path {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("the output is not JSON ({e}) for json_path"))?;
        let mut cur = &v;
        for step in path_steps(path)? {
            cur = match (&step, cur) {
                (Step::Key(k), serde_json::Value::Object(m)) => m.get(k),
                (Step::Index(i), serde_json::Value::Array(a)) => a.get(*i),
                (Step::Index(i), serde_json::Value::Object(m)) => m.get(&i.to_string()),
                _ => None,
            }
            .ok_or_else(|| format!("json_path {path:?} matches nothing in the output"))?;
        }
        match cur {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => return Err(format!("json_path {path:?} is not a number but {other}")),
        }
    } else if let Some(r) = &p.regex {
        let re = regex::Regex::new(r).map_err(|e| format!("regex: {e}"))?;
        let caps = re.captures(text).ok_or_else(|| "the regex matches nothing in the output".to_string())?;
        caps.get(1).map(|m| m.as_str().to_string()).ok_or_else(|| "the regex's group matched nothing".to_string())?
    } else {
        text.trim().to_string()
    };
    probe::parse_number(&picked).ok_or_else(|| {
        let shown: String = picked.trim().chars().take(60).collect();
        format!("printed no number (got {shown:?}); set `regex` or `json_path` to pick it")
    })
}

/// Run a command with a time limit and a cleared environment; its standard output.
fn run_command(argv: &[String], pass: &[String], limit: Duration, name: &str) -> std::result::Result<String, String> {
    let what = format!("probe {name}");
    let argv: Vec<String> =
        argv.iter().map(|a| substitute(a, &what).map_err(|e| one_line(&e))).collect::<std::result::Result<_, _>>()?;
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(prog);
    cmd.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for k in ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER"].into_iter().chain(pass.iter().map(String::as_str)) {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {prog}: {e}"))?;
    // Read both pipes on threads so a chatty command cannot fill one and hang.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.take(16 << 20).read_to_end(&mut b);
        }
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.take(1 << 20).read_to_end(&mut b);
        }
        b
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{prog} did not finish within {}s (killed)", limit.as_secs_f64()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{prog}: {e}")),
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    if !status.success() {
        let tail = String::from_utf8_lossy(&stderr);
        let last = tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        let last: String = last.chars().take(200).collect();
        return Err(format!(
            "{prog} exited with {status}{}",
            if last.is_empty() { String::new() } else { format!(": {last}") }
        ));
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// GET a URL with a time limit; the body of a 2xx answer. Errors never show the URL.
fn fetch(url: &str, limit: Duration, name: &str) -> std::result::Result<String, String> {
    let url = substitute(url, &format!("probe {name}")).map_err(|e| one_line(&e))?;
    let client = reqwest::blocking::Client::builder()
        .timeout(limit)
        .connect_timeout(limit.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let resp = client.get(&url).send().map_err(|e| {
        if e.is_timeout() {
            format!("the URL did not answer within {}s", limit.as_secs_f64())
        } else if e.is_connect() {
            "cannot connect to the URL".to_string()
        } else {
            "the request to the URL failed".to_string()
        }
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("the URL answered HTTP {}", status.as_u16()));
    }
    resp.text().map_err(|_| "cannot read the URL's answer".to_string())
}

/// Take one sample of `p` now.
pub fn measure(p: &ProbeSection) -> Sample {
    let start = Instant::now();
    let time = Utc::now();
    let text = match (&p.command, &p.url) {
        (Some(argv), _) => run_command(argv, &p.env, p.time_limit(), &p.name),
        (None, Some(url)) => fetch(url, p.time_limit(), &p.name),
        (None, None) => Err("needs `command` or `url`".into()),
    };
    let value = text.and_then(|t| extract(p, &t));
    let th = p.thresholds();
    let (value, message) = match value {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e)),
    };
    let status = th.grade(value);
    let message = message.or_else(|| crossed(p, value?, status));
    Sample { probe: p.name.clone(), time, value, status, message, seconds: start.elapsed().as_secs_f64() }
}

/// Which threshold a value crossed, in words.
fn crossed(p: &ProbeSection, v: f64, status: ProbeStatus) -> Option<String> {
    let unit = p.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
    let (below, above) = match status {
        ProbeStatus::Critical => (p.critical_below, p.critical_above),
        ProbeStatus::Warning => (p.warning_below, p.warning_above),
        _ => return None,
    };
    let v_text = human_number(v);
    match (below, above) {
        (Some(b), _) if v < b => Some(format!("{v_text}{unit} is below {}{unit}", human_number(b))),
        (_, Some(a)) if v > a => Some(format!("{v_text}{unit} is above {}{unit}", human_number(a))),
        _ => None,
    }
}

/// A number with `_` every three digits when it is whole and large (as dfx prints cycles).
pub fn human_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() >= 10_000.0 && v.abs() < 1e18 {
        let digits = format!("{}", v.abs() as u64);
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push('_');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else {
        format!("{v}")
    }
}

/// The probes named (every probe when `names` is empty); unknown names are an error.
pub fn select<'a>(cfg: &'a Config, names: &[String]) -> Result<Vec<&'a ProbeSection>> {
    if names.is_empty() {
        return Ok(cfg.probes.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            cfg.probes.iter().find(|p| &p.name == n).ok_or_else(|| {
                let known: Vec<&str> = cfg.probes.iter().map(|p| p.name.as_str()).collect();
                ServiceError::usage(format!(
                    "no probe named {n:?} in {} (probes: {})",
                    cfg.path.display(),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ))
            })
        })
        .collect()
}

/// What `probe` found.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The worst status (`ok` when there are no probes).
    pub status: ProbeStatus,
    /// One sample per probe.
    pub probes: Vec<Sample>,
    /// Each probe's unit, for people.
    #[serde(skip)]
    pub units: std::collections::HashMap<String, String>,
}

/// Run the probes now (in parallel) and keep the samples in the repository when `record`. A
/// sample that cannot be stored is a warning, not a failure.
pub fn run(session: &Session, names: &[String], record: bool, o: &Observer) -> Result<RunReport> {
    let cfg = session.require_config("probes are defined in the config file")?;
    let chosen: Vec<ProbeSection> = select(&cfg, names)?.into_iter().cloned().collect();
    let samples: Vec<Sample> = std::thread::scope(|scope| {
        let handles: Vec<_> = chosen.iter().map(|p| scope.spawn(move || measure(p))).collect();
        handles
            .into_iter()
            .zip(&chosen)
            .map(|(h, p)| h.join().unwrap_or_else(|_| failed(p, "the probe panicked")))
            .collect()
    });
    if record && !samples.is_empty() {
        match session.open() {
            Ok(repo) => {
                for s in &samples {
                    if let Err(e) = probe::record(&repo, s) {
                        o(&Event::Warning { message: format!("probe {}: not recorded: {}", s.probe, one_line(&e)) });
                    }
                }
            }
            Err(e) => o(&Event::Warning { message: format!("probes not recorded: {}", one_line(&e)) }),
        }
    }
    let status = samples.iter().map(|s| s.status).max().unwrap_or(ProbeStatus::Ok);
    let units = chosen.iter().filter_map(|p| Some((p.name.clone(), p.unit.clone()?))).collect();
    Ok(RunReport { status, probes: samples, units })
}

fn failed(p: &ProbeSection, why: &str) -> Sample {
    Sample {
        probe: p.name.clone(),
        time: Utc::now(),
        value: None,
        status: ProbeStatus::Unknown,
        message: Some(why.into()),
        seconds: 0.0,
    }
}

/// A probe's history.
#[derive(Debug, Serialize)]
pub struct History {
    /// The probe.
    pub probe: String,
    /// Its unit, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Its thresholds.
    pub thresholds: lifeboat_ops::probe::Thresholds,
    /// The samples in the window, oldest first.
    pub samples: Vec<Sample>,
    /// Change per day (least squares over the window).
    pub burn_per_day: Option<f64>,
    /// When the critical threshold will be reached at that rate.
    pub forecast: Option<Forecast>,
}

/// `probe history NAME --since 30d`.
pub fn history(session: &Session, name: &str, since: Option<&str>) -> Result<History> {
    let cfg = session.require_config("probes are defined in the config file")?;
    let p = select(&cfg, &[name.to_string()])?.remove(0).clone();
    let since: Option<DateTime<Utc>> = since
        .map(|t| lifeboat_ops::duration::parse_time(t, Utc::now()))
        .transpose()
        .map_err(|e| ServiceError::usage(format!("--since: {e}")))?;
    let repo = session.open()?;
    let samples = probe::samples(&repo, &p.name, since)?;
    let rate = probe::burn_per_day(&samples);
    let th = p.thresholds();
    let forecast = probe::forecast(&samples, rate, &th);
    Ok(History { probe: p.name, unit: p.unit, thresholds: th, samples, burn_per_day: rate, forecast })
}

impl RunReport {
    /// A table for people.
    pub fn lines(&self) -> Vec<String> {
        let w = self.probes.iter().map(|s| s.probe.len()).max().unwrap_or(5).max(5);
        let mut out = vec![format!("{:<w$}  {:<8}  {:>22}  MESSAGE", "PROBE", "STATUS", "VALUE")];
        for s in &self.probes {
            let unit = self.units.get(&s.probe).cloned().unwrap_or_default();
            let value =
                s.value.map(|v| format!("{} {unit}", human_number(v)).trim_end().to_string()).unwrap_or("-".into());
            out.push(format!(
                "{:<w$}  {:<8}  {:>22}  {}",
                s.probe,
                s.status.label(),
                value,
                s.message.as_deref().unwrap_or("")
            ));
        }
        out
    }
}

impl History {
    /// Lines for people: the samples, then the trend and the forecast.
    pub fn lines(&self) -> Vec<String> {
        let unit = self.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
        let mut out = vec![format!("{:<20}  {:<8}  {:>22}", "TIME (UTC)", "STATUS", "VALUE")];
        for s in &self.samples {
            let v = s.value.map(|v| format!("{}{unit}", human_number(v))).unwrap_or_else(|| "-".into());
            out.push(format!("{:<20}  {:<8}  {:>22}", s.time.format("%Y-%m-%d %H:%M:%S"), s.status.label(), v));
        }
        out.push(String::new());
        out.push(match self.burn_per_day {
            Some(r) => format!("trend: {}{unit} per day ({} samples)", human_number(r.round()), self.samples.len()),
            None => format!("trend: unknown ({} samples; two are needed)", self.samples.len()),
        });
        out.push(match &self.forecast {
            Some(f) => format!(
                "forecast: {} ({}{unit}) reached around {} (in {})",
                f.threshold,
                human_number(f.value),
                f.at.format("%Y-%m-%d %H:%M UTC"),
                crate::human::duration(Duration::from_secs_f64(f.seconds.max(0.0)))
            ),
            None => "forecast: no critical threshold ahead at this rate".into(),
        });
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn probe(extra: &str) -> ProbeSection {
        toml::from_str(&format!("name = \"p\"\ncommand = [\"x\"]\n{extra}")).unwrap()
    }

    #[test]
    fn picks_numbers_with_regex_json_path_or_the_whole_output() {
        let dfx = "Canister status call result for quri.\nStatus: Running\nBalance: 3_100_000_000_000 Cycles\n";
        let p = probe("regex = 'Balance: ([0-9_,]+) Cycles'");
        assert_eq!(extract(&p, dfx).unwrap(), 3_100_000_000_000.0);
        let p = probe("json_path = '$.data.items[1].free'");
        assert_eq!(extract(&p, r#"{"data":{"items":[{"free":1},{"free":"2,500"}]}}"#).unwrap(), 2500.0);
        let p = probe("json_path = 'data.items.0.free'");
        assert_eq!(extract(&p, r#"{"data":{"items":[{"free":7.5}]}}"#).unwrap(), 7.5);
        assert_eq!(extract(&probe(""), " 42\n").unwrap(), 42.0);
        // Bad output: one line saying what is wrong.
        assert!(extract(&probe(""), "hello").unwrap_err().contains("printed no number"));
        assert!(extract(&probe("regex = 'Balance: (\\d+)'"), "nothing").unwrap_err().contains("matches nothing"));
        assert!(extract(&probe("json_path = 'a.b'"), "{\"a\":{}}").unwrap_err().contains("matches nothing"));
        assert!(extract(&probe("json_path = 'a'"), "not json").unwrap_err().contains("not JSON"));
        assert!(path_steps("a[x]").is_err() && path_steps("$").is_err());
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(human_number(3_100_000_000_000.0), "3_100_000_000_000");
        assert_eq!(human_number(-12_345.0), "-12_345");
        assert_eq!(human_number(12.5), "12.5");
        assert_eq!(human_number(999.0), "999");
    }
}
