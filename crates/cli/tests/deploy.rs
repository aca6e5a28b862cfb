//! The deployment files under `deploy/`: the Prometheus alert rules pass `promtool check rules`
//! and their unit tests (`promtool test rules`), the example Prometheus config passes `promtool
//! check config`, the Grafana dashboard's queries parse as PromQL, the systemd unit passes
//! `systemd-analyze verify`, and every `lifeboat_*` name in the rules, their tests and the
//! dashboard is a metric `lifeboat daemon` exports.
//!
//! A test needing `promtool` (Debian package `prometheus`) or `systemd-analyze` (package
//! `systemd`) skips when the tool is missing, and fails then when `CI` is set (`.ci/run`
//! installs both).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Every metric `lifeboat daemon` exports, and so every `lifeboat_*` name the deployment files may use.
const METRICS: &[&str] = &[
    // Per source (label `source`).
    "lifeboat_last_success_timestamp_seconds",
    "lifeboat_last_run_success",
    "lifeboat_backup_duration_seconds",
    "lifeboat_backup_added_bytes",
    "lifeboat_snapshots",
    "lifeboat_rpo_seconds",
    "lifeboat_rpo_breached",
    "lifeboat_last_verification_timestamp_seconds",
    "lifeboat_last_verification_success",
    "lifeboat_drill_rto_seconds",
    "lifeboat_rto_seconds",
    "lifeboat_copy_lag_seconds",
    // Repository.
    "lifeboat_repository_size_bytes",
    "lifeboat_repository_packs",
    "lifeboat_repository_dedup_ratio",
    "lifeboat_repository_compression_ratio",
    // Daemon.
    "lifeboat_up",
    "lifeboat_daemon_start_time_seconds",
    "lifeboat_job_next_run_timestamp_seconds",
    "lifeboat_runs_total",
];

/// The repository's `deploy/` directory.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Whether `tool` can be run; when it cannot, fails under `CI` and otherwise says the test skips.
fn tool(name: &str) -> bool {
    let ok = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{name} must be installed in CI (.ci/run installs it)");
        eprintln!("skipping: {name} is not installed");
    }
    ok
}

/// Runs `program args` in `deploy/`, asserts that it succeeds and returns its output.
fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).current_dir(deploy()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {} failed ({}):\n{text}", args.join(" "), out.status);
    eprint!("{text}");
    out
}

fn read(relative: &str) -> String {
    let path = deploy().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("grafana/lifeboat.json")).unwrap()
}

/// Every PromQL query in the dashboard: panel targets' `expr` and the variables' queries.
fn dashboard_queries() -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr" | "query" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard(), &mut out);
    // The data source variable's `query` is a plugin type, not PromQL.
    out.retain(|q| q != "prometheus");
    out
}

/// The `lifeboat_*` identifiers in `text`: `lifeboat_` not preceded by an identifier character,
/// up to the first character that cannot be in a metric name.
fn metric_names(text: &str) -> Vec<String> {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find("lifeboat_") {
        let start = at + offset;
        let mut end = start + "lifeboat_".len();
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        if start == 0 || !ident(bytes[start - 1]) {
            names.push(text[start..end].to_string());
        }
        at = end;
    }
    names
}

#[test]
fn metric_name_scanner() {
    assert_eq!(
        metric_names("time() - lifeboat_up{source=~\"$source\"} > on(source) lifeboat_rto_seconds[5m] x_lifeboat_y"),
        ["lifeboat_up", "lifeboat_rto_seconds"]
    );
    assert_eq!(metric_names("expr: lifeboat_Up2\nlifeboat_"), ["lifeboat_Up2", "lifeboat_"]);
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    if !tool("promtool") {
        return;
    }
    let out = run("promtool", &["check", "rules", "prometheus/lifeboat-alerts.yml"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 8 rules found"));
    run("promtool", &["test", "rules", "prometheus/lifeboat-alerts.test.yml"]);
}

#[test]
fn every_alert_has_unit_tests_that_fire_and_do_not_fire() {
    let rules = read("prometheus/lifeboat-alerts.yml");
    let tests = read("prometheus/lifeboat-alerts.test.yml");
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert_eq!(alerts.len(), 8, "{alerts:?}");
    // The cases of one alert: the alert_rule_test items naming it, each up to the next item.
    let cases: Vec<&str> = tests.split("- eval_time:").skip(1).collect();
    for alert in alerts {
        let mine: Vec<&&str> = cases.iter().filter(|c| c.contains(&format!("alertname: {alert}\n"))).collect();
        assert!(mine.iter().any(|c| c.contains("exp_alerts: []")), "{alert}: no case where it does not fire");
        assert!(mine.iter().any(|c| c.contains("exp_labels:")), "{alert}: no case where it fires");
    }
}

#[test]
fn prometheus_config_passes_promtool_check() {
    if !tool("promtool") {
        return;
    }
    run("promtool", &["check", "config", "prometheus/prometheus.yml"]);
}

#[test]
fn grafana_queries_parse_as_promql() {
    if !tool("promtool") {
        return;
    }
    // Each query as a recording rule, with the dashboard's variables substituted.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in dashboard_queries().iter().enumerate() {
        if query.starts_with("label_values(") {
            continue; // Grafana's variable query, not PromQL
        }
        let expr = query.replace("$__rate_interval", "5m").replace("$source", ".*");
        assert!(!expr.contains('$'), "unknown variable in {query}");
        rules +=
            &format!("      - record: dashboard_query_{i}\n        expr: {}\n", serde_json::to_string(&expr).unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, rules).unwrap();
    run("promtool", &["check", "rules", file.to_str().unwrap()]);
}

#[test]
fn grafana_dashboard_shape() {
    let dash = dashboard();
    assert_eq!(dash["schemaVersion"], 39);
    let variables = dash["templating"]["list"].as_array().unwrap();
    let source = variables.iter().find(|v| v["name"] == "source").unwrap();
    assert_eq!(source["definition"], "label_values(lifeboat_snapshots, source)");
    assert_eq!(source["query"]["query"], "label_values(lifeboat_snapshots, source)");
    let panels = dash["panels"].as_array().unwrap();
    let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are not unique");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"].as_array().unwrap();
        assert!(
            !targets.is_empty() && targets.iter().all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
            "panel {} has no query",
            panel["title"]
        );
    }
}

#[test]
fn deployment_files_use_only_exported_metrics() {
    let mut sources = vec![
        ("prometheus/lifeboat-alerts.yml".to_string(), read("prometheus/lifeboat-alerts.yml")),
        ("prometheus/lifeboat-alerts.test.yml".to_string(), read("prometheus/lifeboat-alerts.test.yml")),
    ];
    sources.extend(dashboard_queries().into_iter().map(|q| ("grafana/lifeboat.json".to_string(), q)));
    let mut seen = 0;
    for (file, text) in &sources {
        for name in metric_names(text) {
            assert!(METRICS.contains(&name.as_str()), "{file}: {name} is not a metric lifeboat daemon exports");
            seen += 1;
        }
    }
    assert!(seen > 20, "found only {seen} metric names: is the scanner broken?");
    // Besides lifeboat's own metrics, only Prometheus' `up` of the scrape job (the rule tests
    // also feed another job's `up`, to show that it is left alone).
    for (file, text) in sources.iter().filter(|(file, _)| !file.ends_with(".test.yml")) {
        for line in text.lines().filter(|l| l.contains("up{")) {
            assert!(line.contains("up{job=\"lifeboat\""), "{file}: {line}");
        }
    }
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    if !tool("systemd-analyze") {
        return;
    }
    // `verify` fails when ExecStart='s program does not exist: point it at the built binary.
    // It does not resolve User=, so `User=lifeboat` stays (no user needs to exist here).
    let unit = read("systemd/lifeboat.service");
    let mut exec_starts = 0;
    let patched: String = unit
        .lines()
        .map(|line| match line.strip_prefix("ExecStart=") {
            Some(command) => {
                exec_starts += 1;
                let (program, args) = command.split_once(' ').unwrap();
                assert_eq!(program, "/usr/local/bin/lifeboat");
                assert!(args.starts_with("daemon --config /etc/lifeboat/lifeboat.toml"), "{args}");
                format!("ExecStart={} {args}\n", env!("CARGO_BIN_EXE_lifeboat"))
            }
            None => format!("{line}\n"),
        })
        .collect();
    assert_eq!(exec_starts, 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lifeboat.service");
    std::fs::write(&file, patched).unwrap();
    // --man=no: the Documentation= man page exists only once `lifeboat man --dir` installed it.
    let out = run("systemd-analyze", &["verify", "--man=no", file.to_str().unwrap()]);
    // Warnings (unknown keys, bad values) do not change the exit status: any line about the unit
    // fails the test. Lines about other units come from the machine's own unit files.
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let about_unit: Vec<&str> = text.lines().filter(|l| l.contains("lifeboat.service")).collect();
    assert!(about_unit.is_empty(), "systemd-analyze verify:\n{}", about_unit.join("\n"));
}
