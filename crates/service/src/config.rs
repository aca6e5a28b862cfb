//! `lifeboat.toml`: the repository and the sources of a service, in one file, typed per kind.
//!
//! Every `[[source]]` has the common fields ([`COMMON_FIELDS`]: name, kind, tags, schedule, rpo,
//! rto, retention, protected) plus the fields of its kind, which the kind's module declares as a
//! struct (see [`crate::kinds`]). Errors name the file and line (`lifeboat.toml:12: source "x":
//! unknown field `pathz` for a files source; did you mean `paths`? …`) and list only the fields
//! of that kind. `${VAR}` in string values is replaced from the environment when the value is
//! used, so the secret never appears in the file, in argv or in snapshot metadata (manifests
//! record the unsubstituted text).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Context as _, Result, ServiceError};
use lifeboat_repository::snapshots::SnapshotEntry;

use crate::kinds::{self, Source};

pub mod daemon;
mod fields;
pub mod hooks;
pub mod probe;
pub mod schedule;

pub use daemon::{JobSpec, JobTable, JobsSection, NotifySection, ServerSection, Zone, DEFAULT_STORAGE_LOW_PERCENT};
pub use hooks::{Healthcheck, Hook, Hooks};
pub use probe::ProbeSection;
pub use schedule::Schedule;

/// Fields every source has, whatever its kind.
pub const COMMON_FIELDS: &[&str] = &[
    "name",
    "kind",
    "tags",
    "schedule",
    "rpo",
    "rto",
    "retention",
    "protected",
    "before_backup",
    "after_backup",
    "before_restore",
    "after_restore",
    "on_failure",
    "healthcheck_url",
    "healthcheck_status",
    "healthcheck_retries",
    "healthcheck_timeout",
    "verify_command",
    "after",
    "restore_target",
];

/// The whole file.
#[derive(Debug, Default)]
pub struct Config {
    /// Where backups go.
    pub repository: RepositorySection,
    /// What to back up, in file order.
    pub sources: Vec<SourceConfig>,
    /// Second repositories (3-2-1) for `copy`.
    pub copies: Vec<CopySection>,
    /// Where alerts go.
    pub notify: Vec<NotifySection>,
    /// Numbers to watch (`[[probe]]`).
    pub probes: Vec<ProbeSection>,
    /// The daemon's HTTP server (metrics, health, API).
    pub server: Option<ServerSection>,
    /// Repository jobs and scheduling limits of the daemon.
    pub jobs: JobsSection,
    /// `drill` settings.
    pub drill: Option<DrillSection>,
    /// Where the file was read from (for messages).
    pub path: PathBuf,
}

/// The file as serde sees it before sources are typed by kind.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    repository: RepositorySection,
    #[serde(default)]
    source: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    copy: Vec<toml::Spanned<CopySection>>,
    #[serde(default)]
    notify: Vec<toml::Spanned<NotifySection>>,
    #[serde(default)]
    probe: Vec<toml::Spanned<ProbeSection>>,
    #[serde(default)]
    server: Option<ServerSection>,
    #[serde(default)]
    jobs: Option<toml::Spanned<JobsSection>>,
    #[serde(default)]
    drill: Option<DrillSection>,
}

/// `[drill]`: where drill reports go and the key that signs them.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct DrillSection {
    /// Ed25519 secret key file from `lifeboat drill keygen` (`${VAR}` allowed).
    pub signing_key: Option<String>,
    /// Directory under which each drill writes `lifeboat-drill-TIME/` (default: the current one).
    pub report_dir: Option<String>,
}

/// `[repository]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RepositorySection {
    /// Repository location.
    pub url: Option<String>,
    /// File holding the password.
    pub password_file: Option<String>,
    /// Command printing the password.
    pub password_command: Option<String>,
    /// Compression for new data.
    pub compression: Option<String>,
    /// Credentials and defaults for `s3:` URLs (`s3 = { access_key_id = "${…}", … }`).
    pub s3: Option<toml::Spanned<S3Section>>,
    /// Basic-auth user and password for `rest:` URLs (`rest = { username = "…", password = "${…}" }`).
    pub rest: Option<toml::Spanned<RestSection>>,
    /// How to run `ssh` for `sftp:` URLs (`sftp = { args = "-i /etc/lifeboat/id_ed25519" }`).
    pub sftp: Option<toml::Spanned<SftpSection>>,
    /// Account and endpoint for `azure:` URLs (`azure = { account_name = "…", account_key = "${…}" }`).
    pub azure: Option<toml::Spanned<AzureSection>>,
    /// Credentials file and endpoint for `gs:` URLs.
    pub gcs: Option<toml::Spanned<GcsSection>>,
    /// Refuse forget/prune from this machine even if the repository allows them.
    #[serde(default)]
    pub append_only: bool,
}

/// `[repository] s3 = { … }`: what the `AWS_*` variables would otherwise give. Values may use
/// `${VAR}`; keep the secrets there rather than in the file.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// Endpoint for `s3://BUCKET/PREFIX` URLs, e.g. `http://minio:9000`.
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
}

impl std::fmt::Debug for S3Section {
    /// Never shows the secret or the token, even unsubstituted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Section")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<set>"))
            .field("session_token", &self.session_token.as_ref().map(|_| "<set>"))
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish()
    }
}

/// `[repository] rest = { … }`: what `RESTIC_REST_USERNAME` / `RESTIC_REST_PASSWORD` would
/// otherwise give. Values may use `${VAR}`; keep the password there rather than in the file.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RestSection {
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
}

impl std::fmt::Debug for RestSection {
    /// Never shows the password, even unsubstituted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestSection")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// `[repository] sftp = { … }`: what `LIFEBOAT_SFTP_ARGS` / `LIFEBOAT_SFTP_COMMAND` would
/// otherwise give.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct SftpSection {
    /// Extra arguments for `ssh` (key, known_hosts file, options).
    pub args: Option<String>,
    /// The whole command instead of `ssh … HOST -s sftp` (restic's `sftp.command`).
    pub command: Option<String>,
}

/// `[repository] azure = { … }`: what the `AZURE_*` variables would otherwise give. Values may
/// use `${VAR}`; keep the key there rather than in the file.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct AzureSection {
    /// Storage account name.
    pub account_name: Option<String>,
    /// Storage account key.
    pub account_key: Option<String>,
    /// SAS token instead of the key.
    pub sas_token: Option<String>,
    /// The whole blob endpoint (e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`).
    pub endpoint: Option<String>,
    /// Endpoint suffix (default `core.windows.net`).
    pub endpoint_suffix: Option<String>,
}

impl std::fmt::Debug for AzureSection {
    /// Never shows the key or the token, even unsubstituted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSection")
            .field("account_name", &self.account_name)
            .field("account_key", &self.account_key.as_ref().map(|_| "<set>"))
            .field("sas_token", &self.sas_token.as_ref().map(|_| "<set>"))
            .field("endpoint", &self.endpoint)
            .field("endpoint_suffix", &self.endpoint_suffix)
            .finish()
    }
}

/// `[repository] gcs = { … }`: what `GOOGLE_APPLICATION_CREDENTIALS` / `GCS_ENDPOINT` would
/// otherwise give.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct GcsSection {
    /// Path of a service-account JSON key.
    pub credentials: Option<String>,
    /// The endpoint instead of `https://storage.googleapis.com` (an emulator).
    pub endpoint: Option<String>,
}

/// One `[[copy]]`: a second repository that `copy` (and `backup` with `after_backup`) copies
/// snapshots into.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CopySection {
    /// Name used by `copy --to NAME` (default: the URL).
    pub name: Option<String>,
    /// Repository location (directory, `s3:…`); `${VAR}` allowed.
    pub url: String,
    /// File holding this repository's password.
    pub password_file: Option<String>,
    /// Command printing this repository's password.
    pub password_command: Option<String>,
    /// Copy each source's new snapshot right after a backup of config sources.
    #[serde(default)]
    pub after_backup: bool,
}

impl CopySection {
    /// The name `copy --to` matches.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.url)
    }
}

/// A duration objective as written (`1h`) and parsed.
#[derive(Clone, Debug)]
pub struct Objective {
    /// As written.
    pub text: String,
    /// Parsed.
    pub duration: Duration,
}

impl Serialize for Objective {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// One `[[source]]`: the common fields, typed, and the kind's own settings.
#[derive(Debug)]
pub struct SourceConfig {
    /// Unique name.
    pub name: String,
    /// Tags for every snapshot of the source.
    pub tags: Vec<String>,
    /// When the daemon backs it up.
    pub schedule: Option<Schedule>,
    /// Recovery point objective.
    pub rpo: Option<Objective>,
    /// Recovery time objective.
    pub rto: Option<Objective>,
    /// Retention policy (`apply-retention`).
    pub retention: Option<lifeboat_ops::retention::Policy>,
    /// The retention table as written (for listings).
    pub retention_table: Option<toml::Table>,
    /// Restoring onto it needs `--force` and confirmation.
    pub protected: bool,
    /// `file:line` of its `[[source]]` header.
    pub at: String,
    /// The kind's settings and operations.
    pub source: Box<dyn Source>,
    /// Hooks around its backups and restores, the healthcheck and the `verify_command`.
    pub hooks: Hooks,
    /// Sources `restore --all` restores before this one.
    pub after: Vec<String>,
    /// `file:line` of its `after` key (for errors about it).
    pub after_at: String,
    /// Where `restore --all` restores it (as `--target` would name it); default: its own live
    /// data (a guarded restore).
    pub restore_target: Option<String>,
}

impl SourceConfig {
    /// The kind's name (`postgres`).
    pub fn kind(&self) -> &'static str {
        self.source.kind()
    }
}

/// The common fields as serde reads them (the kind's fields are read by the kind).
#[derive(Deserialize)]
struct Common {
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    schedule: Option<String>,
    rpo: Option<String>,
    rto: Option<String>,
    retention: Option<toml::Table>,
    #[serde(default)]
    protected: bool,
    before_backup: Option<toml::Value>,
    after_backup: Option<toml::Value>,
    before_restore: Option<toml::Value>,
    after_restore: Option<toml::Value>,
    on_failure: Option<toml::Value>,
    healthcheck_url: Option<String>,
    healthcheck_status: Option<u16>,
    healthcheck_retries: Option<u32>,
    healthcheck_timeout: Option<String>,
    verify_command: Option<toml::Value>,
    #[serde(default)]
    after: Vec<String>,
    restore_target: Option<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

impl Config {
    /// Load and validate a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServiceError::io(format!("cannot read config {}", path.display()), e))?;
        Self::parse(&text, path)
    }

    /// Parse and validate config text.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let at_offset = |offset: usize| format!("{}:{}", path.display(), line_of(text, offset));
        let toml_error = |e: toml::de::Error| {
            let line = e.span().map(|s| format!(":{}", line_of(text, s.start))).unwrap_or_default();
            ServiceError::msg(format!("{}{line}: {}", path.display(), e.message().trim().replace('\n', " ")))
        };
        let raw: RawConfig = toml::from_str(text).map_err(toml_error)?;
        // The same text with a span on every key, to type each source by its kind.
        let doc = toml::de::DeTable::parse(text).map_err(toml_error)?;
        let tables: Vec<toml::Spanned<toml::de::DeValue>> = doc
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == "source")
            .and_then(|(_, v)| match v.get_ref() {
                toml::de::DeValue::Array(a) => Some(a.iter().cloned().collect()),
                _ => None,
            })
            .unwrap_or_default();
        let mut sources = Vec::new();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for (i, header) in raw.source.iter().enumerate() {
            let at = at_offset(header.span().start);
            let value = tables.get(i).cloned().context(format!("{at}: cannot read this [[source]]"))?;
            let s = parse_source(text, path, &at, header.get_ref(), value)?;
            if let Some(prev) = names.insert(s.name.clone(), at.clone()) {
                return Err(ServiceError::msg(format!("{at}: source name {:?} is already used at {prev}", s.name)));
            }
            sources.push(s);
        }
        let mut copies = Vec::new();
        for c in raw.copy {
            let at = at_offset(c.span().start);
            let cp = c.into_inner();
            if cp.password_file.is_none() && cp.password_command.is_none() {
                return Err(ServiceError::msg(format!(
                    "{at}: copy destination {:?} needs `password_file` or `password_command` (its own password)",
                    cp.label()
                )));
            }
            copies.push(cp);
        }
        let mut notify = Vec::new();
        for n in raw.notify {
            let at = at_offset(n.span().start);
            let n = n.into_inner();
            n.validate().map_err(|e| ServiceError::msg(format!("{at}: [[notify]] {}: {e}", n.label())))?;
            notify.push(n);
        }
        let mut probes: Vec<ProbeSection> = Vec::new();
        for p in raw.probe {
            let at = at_offset(p.span().start);
            let p = p.into_inner();
            p.validate().map_err(|e| ServiceError::msg(format!("{at}: [[probe]] {}: {e}", p.name)))?;
            if probes.iter().any(|q| q.name == p.name) {
                return Err(ServiceError::msg(format!("{at}: probe name {:?} is already used", p.name)));
            }
            probes.push(p);
        }
        let jobs = match raw.jobs {
            Some(j) => {
                let at = at_offset(j.span().start);
                let j = j.into_inner();
                j.validate().map_err(|e| ServiceError::msg(format!("{at}: {e}")))?;
                j
            }
            None => JobsSection::default(),
        };
        let cfg = Config {
            repository: raw.repository,
            sources,
            copies,
            notify,
            probes,
            server: raw.server,
            jobs,
            drill: raw.drill,
            path: path.to_path_buf(),
        };
        cfg.validate_repository(&at_offset)?;
        cfg.validate_order()?;
        Ok(cfg)
    }

    /// Every `after` names another source, and the order has no cycle.
    fn validate_order(&self) -> Result<()> {
        let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
        for s in &self.sources {
            for a in &s.after {
                if a == &s.name {
                    return Err(ServiceError::msg(format!("{}: source {:?}: after: names itself", s.after_at, s.name)));
                }
                if !known.contains(&a.as_str()) {
                    return Err(ServiceError::msg(format!(
                        "{}: source {:?}: after: no source named {a:?} (sources: {})",
                        s.after_at,
                        s.name,
                        known.join(", ")
                    )));
                }
            }
        }
        // Depth-first search for a cycle, reported from the first source (in file order) on it.
        fn visit<'c>(
            cfg: &'c Config,
            name: &'c str,
            path: &mut Vec<&'c str>,
            done: &mut Vec<&'c str>,
        ) -> Option<Vec<&'c str>> {
            if let Some(i) = path.iter().position(|p| *p == name) {
                let mut cycle = path[i..].to_vec();
                cycle.push(name);
                return Some(cycle);
            }
            if done.contains(&name) {
                return None;
            }
            path.push(name);
            let s = cfg.sources.iter().find(|s| s.name == name)?;
            for a in &s.after {
                if let Some(c) = visit(cfg, a, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            done.push(name);
            None
        }
        let mut done = Vec::new();
        for s in &self.sources {
            if let Some(cycle) = visit(self, &s.name, &mut Vec::new(), &mut done) {
                let first = self.sources.iter().find(|x| x.name == cycle[0]).unwrap_or(s);
                return Err(ServiceError::msg(format!(
                    "{}: source {:?}: after: a cycle: {} (restore --all could not order them)",
                    first.after_at,
                    first.name,
                    cycle.join(" → ")
                )));
            }
        }
        Ok(())
    }

    /// `selected` in restore order: every source after the sources its `after` names (those
    /// selected), otherwise in file order.
    pub fn restore_order<'c>(&'c self, selected: &[&'c SourceConfig]) -> Vec<&'c SourceConfig> {
        let mut out: Vec<&SourceConfig> = Vec::new();
        let mut left: Vec<&SourceConfig> =
            self.sources.iter().filter(|s| selected.iter().any(|x| x.name == s.name)).collect();
        while !left.is_empty() {
            let ready = left.iter().position(|s| {
                s.after.iter().all(|a| out.iter().any(|o| &o.name == a) || !left.iter().any(|l| &l.name == a))
            });
            // A cycle cannot pass validation; take the first left rather than loop.
            out.push(left.remove(ready.unwrap_or(0)));
        }
        out
    }

    fn validate_repository(&self, at_offset: &dyn Fn(usize) -> String) -> Result<()> {
        if let Some(s3) = &self.repository.s3 {
            let (at, s) = (at_offset(s3.span().start), s3.get_ref());
            let fail = |m: String| Err(ServiceError::msg(format!("{at}: {m}")));
            if s.access_key_id.is_some() != s.secret_access_key.is_some() {
                return fail("[repository] s3 needs both access_key_id and secret_access_key (or neither, to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".into());
            }
            if s.session_token.is_some() && s.access_key_id.is_none() {
                return fail("[repository] s3 session_token needs access_key_id and secret_access_key".into());
            }
            if let Some(e) = s.endpoint.as_deref().filter(|e| !e.contains("${")) {
                if !e.starts_with("http://") && !e.starts_with("https://") {
                    return fail(format!("[repository] s3 endpoint {e:?} must start with http:// or https://"));
                }
            }
            if let Some(url) = self.repository.url.as_deref().filter(|u| !u.contains("${")) {
                if !lifeboat_backend::is_s3_url(url) {
                    return fail(format!("[repository] s3 settings apply to s3: URLs only, but url is {url:?}"));
                }
            }
        }
        if let Some(rest) = &self.repository.rest {
            let (at, r) = (at_offset(rest.span().start), rest.get_ref());
            if r.password.is_some() && r.username.is_none() {
                return Err(ServiceError::msg(format!("{at}: [repository] rest password needs a username")));
            }
            if let Some(url) = self.repository.url.as_deref().filter(|u| !u.contains("${")) {
                if lifeboat_backend::url_scheme(url) != "rest" {
                    return Err(ServiceError::msg(format!(
                        "{at}: [repository] rest settings apply to rest: URLs only, but url is {:?}",
                        lifeboat_backend::rest::redact(url)
                    )));
                }
            }
        }
        // Settings for one kind of store next to a URL of another kind are a mistake.
        let sections = [
            ("sftp", self.repository.sftp.as_ref().map(|x| x.span().start)),
            ("azure", self.repository.azure.as_ref().map(|x| x.span().start)),
            ("gs", self.repository.gcs.as_ref().map(|x| x.span().start)),
        ];
        for (scheme, start) in sections {
            let (Some(start), Some(url)) = (start, self.repository.url.as_deref().filter(|u| !u.contains("${"))) else {
                continue;
            };
            if lifeboat_backend::url_scheme(url) != scheme {
                let table = if scheme == "gs" { "gcs" } else { scheme };
                return Err(ServiceError::msg(format!(
                    "{}: [repository] {table} settings apply to {scheme}: URLs only, but url is {:?}",
                    at_offset(start),
                    lifeboat_backend::rest::redact(url)
                )));
            }
        }
        if let Some(c) = &self.repository.compression {
            c.parse::<lifeboat_repository::Compression>()
                .map_err(|e| ServiceError::msg(format!("{}: [repository] compression: {e}", self.path.display())))?;
        }
        Ok(())
    }

    /// The sources, in file order.
    pub fn sources(&self) -> impl Iterator<Item = &SourceConfig> {
        self.sources.iter()
    }

    /// A source by name.
    pub fn find(&self, name: &str) -> Result<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name).with_context(|| {
            let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
            format!("no source named {name:?} in {} (sources: {})", self.path.display(), known.join(", "))
        })
    }

    /// Sources by name (all of them when `names` is empty and `all` is set).
    pub fn select(&self, names: &[String], all: bool) -> Result<Vec<&SourceConfig>> {
        let selected: Vec<&SourceConfig> = if all {
            self.sources.iter().collect()
        } else {
            names.iter().map(|n| self.find(n)).collect::<Result<_>>()?
        };
        if selected.is_empty() {
            return Err(ServiceError::msg(format!("{} defines no sources", self.path.display())));
        }
        Ok(selected)
    }

    /// `${VAR}`s used anywhere in the file whose variable is not set (each once, in file order),
    /// for `config check`: a backup would fail on them.
    pub fn undefined_variables(text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else { break };
            let var = &after[..end];
            if std::env::var_os(var).is_none() && !out.iter().any(|v| v == var) {
                out.push(var.to_string());
            }
            rest = &after[end + 1..];
        }
        out
    }
}

/// The source a snapshot is restored or tested with: its configured source when the config has
/// one of the same name and kind (its connection settings), else the kind's defaults.
pub struct Resolved<'c> {
    /// The source's name (the snapshot's, or empty for a plain backup).
    pub name: String,
    source: Either<'c>,
}

enum Either<'c> {
    Configured(&'c SourceConfig),
    Default(Box<dyn Source>),
}

impl Resolved<'_> {
    /// The source's operations.
    pub fn source(&self) -> &dyn Source {
        match &self.source {
            Either::Configured(c) => c.source.as_ref(),
            Either::Default(d) => d.as_ref(),
        }
    }
}

/// Resolve the source of `snap` against the config.
pub fn source_for<'c>(cfg: Option<&'c Config>, snap: &SnapshotEntry) -> Result<Resolved<'c>> {
    let kind = kinds::of_snapshot(snap)?;
    let name = snap.snapshot.source.as_ref().map(|s| s.name.clone()).unwrap_or_default();
    let source = match cfg.and_then(|c| c.find(&name).ok()).filter(|s| s.kind() == kind.name()) {
        Some(c) => Either::Configured(c),
        None => Either::Default(kind.defaults()),
    };
    Ok(Resolved { name, source })
}

/// Type one `[[source]]` table by its kind: unknown fields (with a suggestion and the kind's own
/// field list), the kind's field types and rules, the common fields.
fn parse_source(
    text: &str,
    path: &Path,
    at: &str,
    table: &toml::Table,
    value: toml::Spanned<toml::de::DeValue>,
) -> Result<SourceConfig> {
    let name = table.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let err = |m: String| ServiceError::msg(format!("{at}: source {name:?}: {m}"));
    let Some(kind_name) = table.get("kind").and_then(|v| v.as_str()) else {
        return Err(ServiceError::msg(format!(
            "{at}: source {name:?} needs `kind = \"…\"` (one of: {})",
            kinds::names().join(", ")
        )));
    };
    let Some(kind) = kinds::kind(kind_name) else {
        return Err(err(format!("unknown kind {kind_name:?} (expected one of: {})", kinds::names().join(", "))));
    };
    // Fields: the common ones and the kind's own; the offending key's own line when unknown.
    let mut key_lines: BTreeMap<String, String> = BTreeMap::new();
    if let toml::de::DeValue::Table(t) = value.get_ref() {
        for (k, _) in t.iter() {
            let key = k.get_ref().as_ref();
            key_lines.insert(key.to_string(), format!("{}:{}", path.display(), line_of(text, k.span().start)));
            if COMMON_FIELDS.contains(&key) || kind.fields().contains(&key) {
                continue;
            }
            let key_at = format!("{}:{}", path.display(), line_of(text, k.span().start));
            return Err(ServiceError::msg(format!("{key_at}: source {name:?}: {}", fields::unknown(kind, key))));
        }
    }
    let common = Common::deserialize(toml::de::ValueDeserializer::from(value.clone())).map_err(|e| {
        let line = e.span().map(|s| format!(":{}", line_of(text, s.start))).unwrap_or_default();
        ServiceError::msg(format!("{}{line}: source {name:?}: {}", path.display(), e.message().trim()))
    })?;
    if common.name.is_empty() || !common.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(ServiceError::msg(format!(
            "{at}: source name {:?} must be non-empty letters, digits, '-', '_' or '.'",
            common.name
        )));
    }
    let source = kind.parse(toml::de::ValueDeserializer::from(value)).map_err(|e| {
        let line = e.span().map(|s| format!(":{}", line_of(text, s.start))).unwrap_or_default();
        ServiceError::msg(format!("{}{line}: source {name:?}: {}", path.display(), e.message().trim()))
    })?;
    source.validate(&name).map_err(err)?;
    let objective = |field: &str, v: Option<String>| -> Result<Option<Objective>> {
        v.map(|text| match lifeboat_ops::duration::parse(&text) {
            Ok(duration) => Ok(Objective { text, duration }),
            Err(e) => Err(err(format!("{field}: {e}"))),
        })
        .transpose()
    };
    let retention = match &common.retention {
        None => None,
        Some(t) => {
            let p: lifeboat_ops::retention::Policy = toml::Value::Table(t.clone())
                .try_into()
                .map_err(|e: toml::de::Error| err(format!("retention: {}", e.message())))?;
            p.validate().map_err(|e| err(format!("retention: {e}")))?;
            Some(p)
        }
    };
    let schedule = common.schedule.as_deref().map(str::parse::<Schedule>).transpose().map_err(err)?;
    let key_err = |key: &str, m: String| {
        let key_at = key_lines.get(key).map(String::as_str).unwrap_or(at);
        ServiceError::msg(format!("{key_at}: source {name:?}: {key}: {m}"))
    };
    let hook = |key: &str, v: &Option<toml::Value>| -> Result<Option<Hook>> {
        v.as_ref().map(|v| Hook::from_value(v).map_err(|m| key_err(key, m))).transpose()
    };
    let healthcheck = match &common.healthcheck_url {
        None => {
            if let Some(k) = ["healthcheck_status", "healthcheck_retries", "healthcheck_timeout"]
                .into_iter()
                .find(|k| key_lines.contains_key(*k))
            {
                return Err(key_err(k, "needs `healthcheck_url`".into()));
            }
            None
        }
        Some(url) => {
            if !url.contains("${") && !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(key_err("healthcheck_url", "must start with http:// or https://".into()));
            }
            let status = common.healthcheck_status.unwrap_or(200);
            if !(100..=599).contains(&status) {
                return Err(key_err("healthcheck_status", format!("{status} is not an HTTP status")));
            }
            let timeout = match &common.healthcheck_timeout {
                None => Duration::from_secs(10),
                Some(t) => {
                    lifeboat_ops::duration::parse(t).map_err(|e| key_err("healthcheck_timeout", e.to_string()))?
                }
            };
            Some(Healthcheck {
                url: url.clone(),
                status,
                retries: common.healthcheck_retries.unwrap_or(3).max(1),
                timeout,
            })
        }
    };
    let hooks = Hooks {
        before_backup: hook("before_backup", &common.before_backup)?,
        after_backup: hook("after_backup", &common.after_backup)?,
        before_restore: hook("before_restore", &common.before_restore)?,
        after_restore: hook("after_restore", &common.after_restore)?,
        on_failure: hook("on_failure", &common.on_failure)?,
        healthcheck,
        verify_command: hook("verify_command", &common.verify_command)?,
    };
    let after_at = key_lines.get("after").cloned().unwrap_or_else(|| at.to_string());
    Ok(SourceConfig {
        hooks,
        after: common.after,
        after_at,
        restore_target: common.restore_target,
        rpo: objective("rpo", common.rpo)?,
        rto: objective("rto", common.rto)?,
        name: common.name,
        tags: common.tags,
        schedule,
        retention,
        retention_table: common.retention,
        protected: common.protected,
        at: at.to_string(),
        source,
    })
}

pub use crate::vars::substitute;

/// Parse `90s`, `20m`, `1h`, `7d`, `2w`, `1y` (or combinations like `1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    lifeboat_ops::duration::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("lifeboat.toml"))
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_line() {
        let e = parse("[repository]\nurl = \"/r\"\n\n[[source]]\nname = \"a\"\nkind = \"files\"\npathz = [\"/x\"]\n")
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("lifeboat.toml:7:"), "{msg}");
        assert!(msg.contains("pathz"), "{msg}");
        let e = parse("[[source]]\nname = \"a\"\nkind = \"files\"\npaths = [\"/x\"]\nrpo = \"soon\"\n").unwrap_err();
        assert!(e.to_string().starts_with("lifeboat.toml:1:"), "{e}");
        let e = parse("[[source]]\nname = \"a\"\nkind = \"ftp\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown kind \"ftp\""), "{e}");
        let e = parse("[[source]]\nname = \"a\"\nkind = \"command\"\ncommand = \"ls | wc\"\n").unwrap_err();
        assert!(e.to_string().contains("shell = true"), "{e}");
        let e = parse("[[source]]\nname=\"a\"\nkind=\"files\"\npath=\"/x\"\n[[source]]\nname=\"a\"\nkind=\"files\"\npath=\"/y\"\n").unwrap_err();
        assert!(e.to_string().contains("already used at lifeboat.toml:1"), "{e}");
    }

    #[test]
    fn an_unknown_field_lists_the_kinds_own_fields_with_a_suggestion() {
        let e = parse("[[source]]\nname = \"a\"\nkind = \"files\"\npaths = [\"/x\"]\nexlude = [\"*.tmp\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("lifeboat.toml:5: source \"a\": unknown field `exlude`"), "{e}");
        assert!(e.contains("did you mean `exclude`?"), "{e}");
        assert!(e.contains("files fields: paths, path, exclude, one_file_system"), "{e}");
        // Only the files kind's fields, not every kind's.
        assert!(!e.contains("database") && !e.contains("streams"), "{e}");
        // A field of another kind says so.
        let e = parse("[[source]]\nname = \"a\"\nkind = \"sqlite\"\npath = \"/x.db\"\n\ndatabase = \"d\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("lifeboat.toml:6:"), "{e}");
        assert!(e.contains("`database` does not apply to a sqlite source"), "{e}");
        assert!(e.contains("sqlite fields: path"), "{e}");
    }

    #[test]
    fn schedules_are_checked_with_file_and_line() {
        let e = parse("\n[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\nschedule = \"every blue moon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("lifeboat.toml:2: source \"a\": schedule \"every blue moon\""), "{e}");
        let ok =
            parse("[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\nschedule = \"*/15 * * * *\"\n").unwrap();
        assert!(matches!(ok.sources[0].schedule, Some(Schedule::Cron { .. })));
    }

    #[test]
    fn jobs_and_notify_are_checked_with_the_line() {
        let ok = parse(
            "[jobs]\ntimezone = \"+02:00\"\njitter = \"5m\"\ncheck = { schedule = \"@weekly\", read_data_percent = 10 }\napply_retention = \"@daily\"\n\n[[notify]]\nkind = \"webhook\"\nurl = \"${HOOK}\"\nevents = [\"backup_failed\"]\n",
        )
        .unwrap();
        assert_eq!(ok.jobs.jobs().len(), 2);
        assert_eq!(ok.jobs.zone(), Some(Zone::Fixed(chrono::FixedOffset::east_opt(7200).unwrap())));
        let berlin = parse("[jobs]\ntimezone = \"Europe/Berlin\"\n").unwrap();
        assert_eq!(berlin.jobs.zone(), Some(Zone::Named(chrono_tz::Europe::Berlin)));
        assert!(ok.notify[0].wants("backup_failed") && !ok.notify[0].wants("rpo_breached"));
        for (text, want) in [
            ("\n[jobs]\ncheck = \"every blue moon\"\n", "lifeboat.toml:2: [jobs] check: schedule"),
            ("[jobs]\ntimezone = \"Mars/Olympus\"\n", "timezone"),
            ("[jobs]\nchekc = \"@daily\"\n", "chekc"),
            ("[[notify]]\nkind = \"pager\"\nurl = \"x\"\n", "lifeboat.toml:1: [[notify]] pager: unknown notify kind"),
            ("[[notify]]\nkind = \"slack\"\n", "needs `url`"),
            (
                "[[notify]]\nkind = \"webhook\"\nurl = \"x\"\nevents = [\"backup_faild\"]\n",
                "unknown event \"backup_faild\"",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn s3_section_is_checked() {
        let ok = parse(
            "[repository]\nurl = \"s3:http://127.0.0.1:8333/b/p\"\ns3 = { access_key_id = \"${ID}\", secret_access_key = \"${SECRET}\", region = \"eu\" }\n",
        )
        .unwrap();
        let s3 = ok.repository.s3.as_ref().unwrap().get_ref();
        assert_eq!(s3.region.as_deref(), Some("eu"));
        assert!(!format!("{s3:?}").contains("SECRET"), "{s3:?}");
        for (text, want) in [
            (
                "[repository]\nurl = \"/r\"\ns3 = { region = \"eu\" }\n",
                "lifeboat.toml:3: [repository] s3 settings apply to s3: URLs only",
            ),
            ("[repository]\n\ns3 = { access_key_id = \"x\" }\n", "lifeboat.toml:3: [repository] s3 needs both"),
            ("[repository]\ns3 = { endpoint = \"minio:9000\" }\n", "must start with http://"),
            ("[repository]\ns3 = { secret = \"x\" }\n", "lifeboat.toml:2:"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn remote_store_sections_belong_to_their_url() {
        let ok = parse(
            "[repository]\nurl = \"rest:http://u:pw@h:8000/r/\"\nrest = { username = \"u\", password = \"${PW}\" }\n",
        )
        .unwrap();
        let rest = ok.repository.rest.as_ref().unwrap().get_ref();
        assert!(!format!("{rest:?}").contains("PW"), "{rest:?}");
        parse("[repository]\nurl = \"sftp:u@nas:/r\"\nsftp = { args = \"-i /k\" }\n").unwrap();
        parse("[repository]\nurl = \"azure:c:/r\"\nazure = { account_name = \"a\", account_key = \"${K}\" }\n")
            .unwrap();
        parse("[repository]\nurl = \"gs:bucket:/r\"\ngcs = { endpoint = \"http://127.0.0.1:4443\" }\n").unwrap();
        for (text, want) in [
            ("[repository]\nurl = \"/r\"\nrest = { username = \"u\" }\n", "rest settings apply to rest: URLs only"),
            ("[repository]\nrest = { password = \"p\" }\n", "rest password needs a username"),
            ("[repository]\nurl = \"s3://b/p\"\nsftp = { args = \"-v\" }\n", "sftp settings apply to sftp: URLs only"),
            (
                "[repository]\nurl = \"/r\"\nazure = { account_name = \"a\" }\n",
                "azure settings apply to azure: URLs only",
            ),
            ("[repository]\nurl = \"/r\"\ngcs = { endpoint = \"x\" }\n", "gcs settings apply to gs: URLs only"),
            ("[repository]\nurl = \"rest:http://u:SeCrEt@h/\"\nsftp = {}\n", "rest:http://***@h/"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("SeCrEt"), "{e}");
        }
    }

    #[test]
    fn dump_options_belong_to_their_kind_and_combine_sensibly() {
        let src = |kind: &str, extra: &str| {
            format!("[[source]]\nname = \"a\"\nkind = \"{kind}\"\ndatabase = \"d\"\n{extra}\n")
        };
        let err = |text: String| parse(&text).unwrap_err().to_string();
        assert!(parse(&src("postgres", "format = \"directory\"\njobs = 4\nglobals = true\ntmp_dir = \"/t\"")).is_ok());
        assert!(parse(&src("redis", "mode = \"rdb\"").replace("database = \"d\"\n", "")).is_ok());
        assert!(err(src("postgres", "jobs = 4")).contains("needs format = \"directory\""));
        assert!(err(src("postgres", "format = \"tar\"")).contains("format \"tar\" is unknown"));
        assert!(err(src("postgres", "compress = 10")).contains("compress must be"));
        assert!(err(src("postgres", "mode = \"rdb\"")).contains("`mode` does not apply to a postgres source"));
        assert!(err(src("redis", "mode = \"rdb\"\npattern = \"x*\"").replace("database = \"d\"\n", ""))
            .contains("remove `databases`/`pattern`"));
        assert!(err(src("mariadb", "globals = true")).starts_with("lifeboat.toml:5: source \"a\": `globals`"));
    }

    #[test]
    fn hooks_parse_as_argv_or_table_and_restore_order_follows_after() {
        let c = parse(
            "[[source]]\nname = \"c\"\nkind = \"files\"\npath = \"/c\"\nafter = [\"b\", \"a\"]\n\
             before_restore = [\"stop\", \"app\"]\nafter_restore = { command = [\"start\"], timeout = \"5s\", env = { T = \"x\" } }\n\
             healthcheck_url = \"http://127.0.0.1:1/h\"\n\n\
             [[source]]\nname = \"b\"\nkind = \"files\"\npath = \"/b\"\nafter = [\"a\"]\n\n\
             [[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/a\"\n",
        )
        .unwrap();
        let h = &c.sources[0].hooks;
        assert_eq!(h.before_restore.as_ref().unwrap().command, ["stop", "app"]);
        assert_eq!(h.before_restore.as_ref().unwrap().timeout, hooks::DEFAULT_TIMEOUT);
        let after = h.after_restore.as_ref().unwrap();
        assert_eq!((after.timeout.as_secs(), after.env.get("T").map(String::as_str)), (5, Some("x")));
        let hc = h.healthcheck.as_ref().unwrap();
        assert_eq!((hc.status, hc.retries, hc.timeout.as_secs()), (200, 3, 10));
        let all: Vec<&SourceConfig> = c.sources.iter().collect();
        let order: Vec<&str> = c.restore_order(&all).iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"]);
        // Only some selected: `after` on an unselected source is no constraint.
        let some: Vec<&SourceConfig> = vec![&c.sources[0], &c.sources[1]];
        let order: Vec<&str> = c.restore_order(&some).iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["b", "c"]);
        let e = parse("[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/a\"\nafter = [\"a\"]\n").unwrap_err();
        assert!(e.to_string().starts_with("lifeboat.toml:5: source \"a\": after: names itself"), "{e}");
    }

    #[test]
    fn substitution_and_durations() {
        std::env::set_var("LIFEBOAT_TEST_SUBST", "s3cr3t");
        assert_eq!(substitute("a ${LIFEBOAT_TEST_SUBST} b", "x").unwrap(), "a s3cr3t b");
        let e = substitute("${LIFEBOAT_TEST_MISSING_VAR}", "source x").unwrap_err();
        assert!(e.to_string().contains("LIFEBOAT_TEST_MISSING_VAR is not set"));
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5q").is_err());
        assert_eq!(
            Config::undefined_variables("a ${LIFEBOAT_TEST_SUBST} ${LIFEBOAT_NOPE} ${LIFEBOAT_NOPE}"),
            ["LIFEBOAT_NOPE"]
        );
    }
}
