//! `kind = "command"`: a program's standard output stored as one file (e.g. `dfx canister
//! status`), with its exit status in the manifest. Restores like files; the restore test also
//! reports the output's size and SHA-256.

use std::path::Path;

use lifeboat_ops::guard::Location;
use lifeboat_repository::archiver::BackupStats;
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::Repository;
use lifeboat_sources::command::{self, CommandOptions};
use serde::Deserialize;
use serde_json::json;

use super::files::{restore_files, Files};
use super::{Archive, Found, Generated, PreparedRestore, RestoreRequest, Settings, Source, TargetCheck};
use crate::error::{Result, ServiceError};
use crate::vars::substitute;

/// A command as an argv list or a single string.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum CommandSpec {
    /// `command = ["dfx", "canister", "status", "x"]`.
    Argv(Vec<String>),
    /// `command = "dfx canister status x | tee"` (needs `shell = true`).
    Script(String),
}

/// Settings of a command source.
#[derive(Debug, Default, Deserialize)]
pub struct Command {
    /// Argv list, or one script string with `shell = true`.
    pub command: Option<CommandSpec>,
    /// Run through `sh -c`.
    #[serde(default)]
    pub shell: bool,
    /// File name of the output in the snapshot (default `NAME.out`).
    pub filename: Option<String>,
    /// Keep the snapshot when the command exits non-zero.
    #[serde(default)]
    pub allow_failure: bool,
}

impl Settings for Command {
    const NAME: &'static str = "command";
}

impl Source for Command {
    fn kind(&self) -> &'static str {
        Self::NAME
    }

    fn validate(&self, _name: &str) -> Result<(), String> {
        match (&self.command, self.shell) {
            (None, _) => Err("a command source needs `command = [\"prog\", \"arg\"]`".into()),
            (Some(CommandSpec::Script(_)), false) => Err(
                "a command string needs `shell = true`; or give an argv list like [\"dfx\", \"canister\", \"status\"]"
                    .into(),
            ),
            (Some(CommandSpec::Argv(v)), _) if v.is_empty() => Err("empty command".into()),
            _ => Ok(()),
        }
    }

    fn backup(&self, name: &str, archive: &mut Archive<'_>) -> Result<BackupStats> {
        let what = format!("source {name}");
        let (display, shell) = match &self.command {
            Some(CommandSpec::Argv(v)) => (v.clone(), false),
            Some(CommandSpec::Script(s)) => (vec![s.clone()], true),
            None => return Err(ServiceError::msg(format!("{what}: no command"))),
        };
        let argv = display.iter().map(|x| substitute(x, &what)).collect::<Result<Vec<_>>>()?;
        let filename = self.filename.clone().unwrap_or_else(|| format!("{name}.out"));
        let opts =
            CommandOptions { argv, shell: shell || self.shell, filename, allow_failure: self.allow_failure, display };
        let (paths, entries, hook) = command::start(&opts)?;
        archive(Generated {
            paths,
            entries: Box::new(entries),
            manifest: None,
            finish: Some(hook),
            excludes: Vec::new(),
            chunk_sizes: None,
            scan: None,
        })
    }

    fn prepare_restore<'a>(
        &'a self,
        name: &str,
        repo: &'a Repository,
        snap: &'a SnapshotEntry,
        req: &'a RestoreRequest,
    ) -> Result<PreparedRestore<'a>> {
        static AS_FILES: Files = Files { paths: Vec::new(), path: None, exclude: Vec::new(), one_file_system: false };
        AS_FILES.prepare_restore(name, repo, snap, req)
    }

    /// Restored and hash-checked like files; the output's size and SHA-256 are reported, and a
    /// non-zero exit status recorded in the manifest is noted (the snapshot exists only because
    /// of `allow_failure`).
    fn restore_test(
        &self,
        _name: &str,
        repo: &Repository,
        snap: &SnapshotEntry,
        tmp: Option<&Path>,
        check: &TargetCheck<'_>,
    ) -> Found {
        let (mut t, output) = restore_files(repo, snap, tmp, check)?;
        let m: serde_json::Value = snap.snapshot.source.as_ref().and_then(|x| x.manifest.clone()).unwrap_or_default();
        let status = m["exit_status"].as_i64();
        t.details["output_bytes"] = json!(output.len());
        t.details["output_sha256"] = json!(hex::encode(lifeboat_crypto::sha256(&output)));
        t.details["exit_status"] = json!(status);
        if status.is_some_and(|c| c != 0) {
            t.details["note"] = json!("the command exited non-zero when it was backed up (allow_failure)");
        }
        Ok(t)
    }

    fn whole_restore_target(&self, name: &str, root: Option<&Path>) -> Result<Option<String>> {
        Ok(root.map(|r| super::under(r, name)))
    }

    fn live_location(&self, _name: &str) -> Result<Option<Location>> {
        Ok(None)
    }
}
