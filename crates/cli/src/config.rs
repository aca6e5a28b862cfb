//! `lifeboat.toml`: the repository and the sources of a service, in one file.
//!
//! Errors name the file and line (`lifeboat.toml:12: unknown field `pathz`, expected one of …`).
//! `${VAR}` in string values is replaced from the environment when the value is used, so the
//! secret never appears in the file, in argv or in snapshot metadata (manifests record the
//! unsubstituted text).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where backups go.
    #[serde(default)]
    pub repository: RepositorySection,
    /// What to back up.
    #[serde(default)]
    pub source: Vec<toml::Spanned<SourceSection>>,
    /// Second repositories (3-2-1) for `lifeboat copy`.
    #[serde(default)]
    pub copy: Vec<toml::Spanned<CopySection>>,
    /// Notification targets; parsed now, used by monitoring later.
    #[serde(default)]
    pub notify: Vec<toml::Table>,
    /// The HTTP server (metrics, health); parsed now, used later.
    #[serde(default)]
    pub server: Option<toml::Table>,
    /// `lifeboat drill` settings.
    #[serde(default)]
    pub drill: Option<DrillSection>,
    /// Where the file was read from (for messages).
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    text: String,
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

/// One `[[copy]]`: a second repository that `lifeboat copy` (and `backup --all` with
/// `after_backup`) copies snapshots into.
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
    /// Copy each source's new snapshot right after `backup --all` / `backup NAME…`.
    #[serde(default)]
    pub after_backup: bool,
}

impl CopySection {
    /// The name `copy --to` matches.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.url)
    }
}

/// One `[[source]]`. Fields of every kind are listed here; `validate` rejects those that do not
/// belong to the source's kind.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// Unique name.
    pub name: String,
    /// `files` or `command` (database kinds come next).
    pub kind: String,
    /// Tags for every snapshot of the source.
    #[serde(default)]
    pub tags: Vec<String>,
    /// files: paths to back up.
    #[serde(default)]
    pub paths: Vec<String>,
    /// files: a single path (shorthand for `paths = [path]`).
    pub path: Option<String>,
    /// files: exclude globs.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// files: stay on one file system.
    #[serde(default)]
    pub one_file_system: bool,
    /// command: argv list, or one script string with `shell = true`.
    pub command: Option<CommandSpec>,
    /// command: run through `sh -c`.
    #[serde(default)]
    pub shell: bool,
    /// command: file name of the output in the snapshot.
    pub filename: Option<String>,
    /// command: keep the snapshot when the command exits non-zero.
    #[serde(default)]
    pub allow_failure: bool,
    /// postgres: database name.
    pub database: Option<String>,
    /// postgres: server host or socket directory.
    pub host: Option<String>,
    /// postgres: server port.
    pub port: Option<u16>,
    /// postgres: role.
    pub user: Option<String>,
    /// postgres: password; use `${VAR}` to take it from the environment.
    pub password: Option<String>,
    /// redis: database indexes to back up (default: every non-empty one).
    #[serde(default)]
    pub databases: Vec<u32>,
    /// redis: only keys matching this glob (e.g. `"app:*"`).
    pub pattern: Option<String>,
    /// postgres: directory of `psql`/`pg_dump`/`pg_restore` (default: PATH).
    pub bin_dir: Option<String>,
    /// redis: `logical` (default: SCAN + DUMP) or `rdb` (one point-in-time RDB over the
    /// replication protocol).
    pub mode: Option<String>,
    /// postgres: also back up roles and tablespaces (`pg_dumpall --globals-only`).
    #[serde(default)]
    pub globals: bool,
    /// postgres: dump format, `custom` (default; streamed) or `directory` (parallel `jobs`).
    pub format: Option<String>,
    /// postgres: parallel dump/restore jobs (directory format).
    pub jobs: Option<u32>,
    /// postgres: `pg_dump --compress` level (default 0: the repository compresses, and
    /// uncompressed dumps deduplicate).
    pub compress: Option<u32>,
    /// postgres: where the directory format's dump is written before it is backed up (default:
    /// the system temp directory).
    pub tmp_dir: Option<String>,
    /// nats: server URL(s), `nats://[user:password@]host:port` (use `${VAR}` for secrets).
    pub url: Option<String>,
    /// nats: streams to back up (default: every stream of the account).
    #[serde(default)]
    pub streams: Vec<String>,
    /// Schedule (`@hourly`, cron); used by the scheduler later.
    pub schedule: Option<String>,
    /// Recovery point objective, e.g. `1h`.
    pub rpo: Option<String>,
    /// Recovery time objective, e.g. `20m`.
    pub rto: Option<String>,
    /// Retention policy; used by `forget` later.
    pub retention: Option<toml::Table>,
    /// Restoring onto it needs `--force` and confirmation.
    #[serde(default)]
    pub protected: bool,
}

impl SourceSection {
    /// The source's retention policy, if it has one.
    pub fn retention_policy(&self) -> Result<Option<lifeboat_ops::retention::Policy>> {
        let Some(t) = &self.retention else { return Ok(None) };
        let p: lifeboat_ops::retention::Policy = toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("retention: {}", e.message()))?;
        p.validate().map_err(|e| anyhow::anyhow!("retention: {e}"))?;
        Ok(Some(p))
    }
}

/// A command as an argv list or a single string.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum CommandSpec {
    /// `command = ["dfx", "canister", "status", "x"]`.
    Argv(Vec<String>),
    /// `command = "dfx canister status x | tee"` (needs `shell = true`).
    Script(String),
}

/// Source kinds this build knows.
pub const KINDS: &[&str] = &["files", "command", "sqlite", "postgres", "mariadb", "redis", "nats"];

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

impl Config {
    /// Load and validate a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parse and validate config text.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| format!(":{}", line_of(text, s.start))).unwrap_or_default();
            anyhow::anyhow!("{}{line}: {}", path.display(), e.message().trim().replace('\n', " "))
        })?;
        cfg.path = path.to_path_buf();
        cfg.text = text.to_string();
        cfg.validate()?;
        Ok(cfg)
    }

    fn at(&self, span: std::ops::Range<usize>) -> String {
        format!("{}:{}", self.path.display(), line_of(&self.text, span.start))
    }

    fn validate(&self) -> Result<()> {
        let mut names = BTreeMap::new();
        for s in &self.source {
            let (at, src) = (self.at(s.span()), s.get_ref());
            if src.name.is_empty() || !src.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                bail!("{at}: source name {:?} must be non-empty letters, digits, '-', '_' or '.'", src.name);
            }
            if let Some(prev) = names.insert(src.name.clone(), at.clone()) {
                bail!("{at}: source name {:?} is already used at {prev}", src.name);
            }
            let wrong = |field: &str| -> Result<()> {
                bail!("{at}: `{field}` does not apply to a {} source (source {:?})", src.kind, src.name)
            };
            if src.kind != "nats" && (src.url.is_some() || !src.streams.is_empty()) {
                wrong(if src.url.is_some() { "url" } else { "streams" })?;
            }
            match src.kind.as_str() {
                "files" | "command" | "sqlite"
                    if src.database.is_some() || src.host.is_some() || src.password.is_some() =>
                {
                    wrong(if src.database.is_some() {
                        "database"
                    } else if src.host.is_some() {
                        "host"
                    } else {
                        "password"
                    })?;
                }
                "files" => {
                    if src.paths.is_empty() && src.path.is_none() {
                        bail!("{at}: files source {:?} needs `paths = [...]` (or `path`)", src.name);
                    }
                    if src.command.is_some() {
                        wrong("command")?;
                    }
                    if src.filename.is_some() {
                        wrong("filename")?;
                    }
                }
                "command" => {
                    match (&src.command, src.shell) {
                        (None, _) => bail!("{at}: command source {:?} needs `command = [\"prog\", \"arg\"]`", src.name),
                        (Some(CommandSpec::Script(_)), false) => bail!(
                            "{at}: source {:?}: a command string needs `shell = true`; or give an argv list like [\"dfx\", \"canister\", \"status\"]",
                            src.name
                        ),
                        (Some(CommandSpec::Argv(v)), _) if v.is_empty() => bail!("{at}: source {:?}: empty command", src.name),
                        _ => {}
                    }
                    if !src.paths.is_empty() || src.path.is_some() {
                        wrong("paths")?;
                    }
                    if !src.exclude.is_empty() {
                        wrong("exclude")?;
                    }
                }
                "sqlite" => {
                    if src.path.is_none() {
                        bail!("{at}: sqlite source {:?} needs `path = \"/var/lib/app/db.sqlite\"`", src.name);
                    }
                    for (field, set) in [
                        ("paths", !src.paths.is_empty()),
                        ("command", src.command.is_some()),
                        ("exclude", !src.exclude.is_empty()),
                    ] {
                        if set {
                            wrong(field)?;
                        }
                    }
                }
                "postgres" | "mariadb" => {
                    if src.database.is_none() {
                        bail!("{at}: {} source {:?} needs `database = \"name\"`", src.kind, src.name);
                    }
                    for (field, set) in [
                        ("paths", !src.paths.is_empty()),
                        ("path", src.path.is_some()),
                        ("command", src.command.is_some()),
                    ] {
                        if set {
                            wrong(field)?;
                        }
                    }
                }
                "redis" => {
                    for (field, set) in [
                        ("paths", !src.paths.is_empty()),
                        ("path", src.path.is_some()),
                        ("command", src.command.is_some()),
                        ("database", src.database.is_some()),
                    ] {
                        if set {
                            wrong(field)?;
                        }
                    }
                }
                "nats" => {
                    for (field, set) in [
                        ("paths", !src.paths.is_empty()),
                        ("path", src.path.is_some()),
                        ("command", src.command.is_some()),
                        ("database", src.database.is_some()),
                        ("databases", !src.databases.is_empty()),
                        ("pattern", src.pattern.is_some()),
                        ("host", src.host.is_some()),
                        ("port", src.port.is_some()),
                    ] {
                        if set {
                            wrong(field)?;
                        }
                    }
                    // Only a URL without ${VAR} can be checked now; errors never repeat it.
                    if let Some(u) = src.url.as_deref().filter(|u| !u.contains("${")) {
                        lifeboat_sources::nats::Connection::parse(u)
                            .map_err(|e| anyhow::anyhow!("{at}: source {:?}: {e}", src.name))?;
                    }
                }
                k => bail!("{at}: source {:?}: unknown kind {k:?} (expected one of: {})", src.name, KINDS.join(", ")),
            }
            src.retention_policy().map_err(|e| anyhow::anyhow!("{at}: source {:?}: {e}", src.name))?;
            validate_dump_options(src).map_err(|e| anyhow::anyhow!("{at}: source {:?}: {e}", src.name))?;
            for (field, v) in [("rpo", &src.rpo), ("rto", &src.rto)] {
                if let Some(v) = v {
                    parse_duration(v).map_err(|e| anyhow::anyhow!("{at}: source {:?}: {field}: {e}", src.name))?;
                }
            }
        }
        if let Some(s3) = &self.repository.s3 {
            let (at, s) = (self.at(s3.span()), s3.get_ref());
            if s.access_key_id.is_some() != s.secret_access_key.is_some() {
                bail!(
                    "{at}: [repository] s3 needs both access_key_id and secret_access_key (or neither, to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                );
            }
            if s.session_token.is_some() && s.access_key_id.is_none() {
                bail!("{at}: [repository] s3 session_token needs access_key_id and secret_access_key");
            }
            if let Some(e) = s.endpoint.as_deref().filter(|e| !e.contains("${")) {
                if !e.starts_with("http://") && !e.starts_with("https://") {
                    bail!("{at}: [repository] s3 endpoint {e:?} must start with http:// or https://");
                }
            }
            if let Some(url) = self.repository.url.as_deref().filter(|u| !u.contains("${")) {
                if !lifeboat_backend::is_s3_url(url) {
                    bail!("{at}: [repository] s3 settings apply to s3: URLs only, but url is {url:?}");
                }
            }
        }
        for c in &self.copy {
            let (at, cp) = (self.at(c.span()), c.get_ref());
            if cp.password_file.is_none() && cp.password_command.is_none() {
                bail!(
                    "{at}: copy destination {:?} needs `password_file` or `password_command` (its own password)",
                    cp.label()
                );
            }
        }
        if let Some(c) = &self.repository.compression {
            c.parse::<lifeboat_repository::Compression>()
                .map_err(|e| anyhow::anyhow!("{}: [repository] compression: {e}", self.path.display()))?;
        }
        Ok(())
    }

    /// The sources, validated.
    pub fn sources(&self) -> impl Iterator<Item = &SourceSection> {
        self.source.iter().map(|s| s.get_ref())
    }

    /// A source by name.
    pub fn find(&self, name: &str) -> Result<&SourceSection> {
        self.sources().find(|s| s.name == name).with_context(|| {
            let known: Vec<&str> = self.sources().map(|s| s.name.as_str()).collect();
            format!("no source named {name:?} in {} (sources: {})", self.path.display(), known.join(", "))
        })
    }
}

/// The redis `mode` and the postgres `globals`/`format`/`jobs`/`compress`/`tmp_dir` settings:
/// only on their kind, with valid values and combinations.
fn validate_dump_options(src: &SourceSection) -> Result<()> {
    let fields = [
        ("mode", src.mode.is_some(), "redis"),
        ("globals", src.globals, "postgres"),
        ("format", src.format.is_some(), "postgres"),
        ("jobs", src.jobs.is_some(), "postgres"),
        ("compress", src.compress.is_some(), "postgres"),
        ("tmp_dir", src.tmp_dir.is_some(), "postgres"),
    ];
    for (field, set, kind) in fields {
        if set && src.kind != kind {
            bail!("`{field}` does not apply to a {} source (only to {kind})", src.kind);
        }
    }
    match src.mode.as_deref() {
        None | Some("logical") => {}
        Some("rdb") if !src.databases.is_empty() || src.pattern.is_some() => {
            bail!("mode = \"rdb\" backs up every database: remove `databases`/`pattern` (or use mode = \"logical\")")
        }
        Some("rdb") => {}
        Some(m) => bail!("mode {m:?} is unknown (expected \"logical\" or \"rdb\")"),
    }
    let directory = match src.format.as_deref() {
        None | Some("custom") => false,
        Some("directory") => true,
        Some(f) => bail!("format {f:?} is unknown (expected \"custom\" or \"directory\")"),
    };
    match src.jobs {
        Some(0) => bail!("jobs must be at least 1"),
        Some(j) if j > 1 && !directory => {
            bail!("jobs = {j} needs format = \"directory\" (pg_dump runs parallel jobs only there)")
        }
        _ => {}
    }
    if src.compress.is_some_and(|c| c > 9) {
        bail!("compress must be 0 (none) to 9");
    }
    if src.tmp_dir.is_some() && !directory {
        bail!("tmp_dir is only used with format = \"directory\"");
    }
    Ok(())
}

/// Replace `${VAR}` with the environment variable's value; a missing variable is an error that
/// names it (never its value).
pub fn substitute(text: &str, what: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').with_context(|| format!("{what}: unterminated ${{ in {text:?}"))?;
        let var = &after[..end];
        let value = std::env::var(var).with_context(|| format!("{what}: environment variable {var} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parse `90s`, `20m`, `1h`, `7d`, `2w`, `1y` (or combinations like `1h30m`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
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
        let msg = format!("{e:#}");
        assert!(msg.starts_with("lifeboat.toml:7:"), "{msg}");
        assert!(msg.contains("pathz"), "{msg}");
        let e = parse("[[source]]\nname = \"a\"\nkind = \"files\"\npaths = [\"/x\"]\nrpo = \"soon\"\n").unwrap_err();
        assert!(format!("{e:#}").starts_with("lifeboat.toml:1:"), "{e:#}");
        let e = parse("[[source]]\nname = \"a\"\nkind = \"ftp\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("unknown kind \"ftp\""), "{e:#}");
        let e = parse("[[source]]\nname = \"a\"\nkind = \"command\"\ncommand = \"ls | wc\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("shell = true"), "{e:#}");
        let e = parse("[[source]]\nname=\"a\"\nkind=\"files\"\npath=\"/x\"\n[[source]]\nname=\"a\"\nkind=\"files\"\npath=\"/y\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("already used at lifeboat.toml:1"), "{e:#}");
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
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn dump_options_belong_to_their_kind_and_combine_sensibly() {
        let src = |kind: &str, extra: &str| {
            format!("[[source]]\nname = \"a\"\nkind = \"{kind}\"\ndatabase = \"d\"\n{extra}\n")
        };
        let err = |text: String| format!("{:#}", parse(&text).unwrap_err());
        assert!(parse(&src("postgres", "format = \"directory\"\njobs = 4\nglobals = true\ntmp_dir = \"/t\"")).is_ok());
        assert!(parse(&src("redis", "mode = \"rdb\"").replace("database = \"d\"\n", "")).is_ok());
        assert!(err(src("postgres", "jobs = 4")).contains("needs format = \"directory\""));
        assert!(err(src("postgres", "format = \"tar\"")).contains("format \"tar\" is unknown"));
        assert!(err(src("postgres", "compress = 10")).contains("compress must be"));
        assert!(err(src("postgres", "mode = \"rdb\"")).contains("`mode` does not apply to a postgres source"));
        assert!(err(src("redis", "mode = \"rdb\"\npattern = \"x*\"").replace("database = \"d\"\n", ""))
            .contains("remove `databases`/`pattern`"));
        assert!(err(src("mariadb", "globals = true")).starts_with("lifeboat.toml:1: source \"a\": `globals`"));
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
    }
}
