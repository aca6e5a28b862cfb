//! Fault injection for tests: failing, corrupting and crashing backend operations.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{BackendError, ErrorContext, Op};
use crate::{Backend, FileType, Result};

/// Environment variable the CLI reads a [`Fault::parse_list`] spec from.
pub const FAULTS_ENV_VAR: &str = "LIFEBOAT_FAULTS";

/// One fault-injection rule of a [`FaultyBackend`].
///
/// Each rule counts the operations it matches (its kind of operation, and the
/// file type unless `ft` is `None`) and fires exactly once, on the `nth`
/// (1-based). "Load" rules match both [`Backend::load`] and
/// [`Backend::load_range`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The `nth` matching save fails with [`BackendError::Injected`] without
    /// storing anything.
    FailSave {
        /// File type to match, or any.
        ft: Option<FileType>,
        /// Which matching save fails (counting from 1).
        nth: u32,
        /// Whether the injected error is retryable.
        retryable: bool,
    },
    /// The `nth` matching load fails with [`BackendError::Injected`].
    FailLoad {
        /// File type to match, or any.
        ft: Option<FileType>,
        /// Which matching load fails (counting from 1).
        nth: u32,
        /// Whether the injected error is retryable.
        retryable: bool,
    },
    /// The `nth` matching load returns its data with one byte flipped (the
    /// middle one; all bits inverted). Empty data is returned unchanged.
    CorruptLoad {
        /// File type to match, or any.
        ft: Option<FileType>,
        /// Which matching load is corrupted (counting from 1).
        nth: u32,
    },
    /// The `nth` matching save writes the first half of the object to a
    /// temporary file beside its final path (via
    /// [`Backend::simulate_interrupted_save`]) and then SIGKILLs the current
    /// process: a crash in the middle of a write.
    KillOnSave {
        /// File type to match, or any.
        ft: Option<FileType>,
        /// Which matching save crashes (counting from 1).
        nth: u32,
    },
    /// The process is SIGKILLed right before the `nth` matching remove (a crash in the middle
    /// of prune's deletions).
    KillOnRemove {
        /// File type to match, or any.
        ft: Option<FileType>,
        /// Which matching remove crashes (counting from 1).
        nth: u32,
    },
}

/// Kinds of operations a rule can match.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Save,
    Load,
    Remove,
}

impl Fault {
    fn kind(&self) -> Kind {
        match self {
            Fault::FailSave { .. } | Fault::KillOnSave { .. } => Kind::Save,
            Fault::FailLoad { .. } | Fault::CorruptLoad { .. } => Kind::Load,
            Fault::KillOnRemove { .. } => Kind::Remove,
        }
    }

    fn target(&self) -> (Option<FileType>, u32) {
        match *self {
            Fault::FailSave { ft, nth, .. }
            | Fault::FailLoad { ft, nth, .. }
            | Fault::CorruptLoad { ft, nth }
            | Fault::KillOnSave { ft, nth }
            | Fault::KillOnRemove { ft, nth } => (ft, nth),
        }
    }

    fn matches(&self, kind: Kind, ft: FileType) -> bool {
        self.kind() == kind && self.target().0.is_none_or(|want| want == ft)
    }

    /// Parses one rule: `ACTION:TYPE:N[:MODE]`.
    ///
    /// * `ACTION` is `fail-save`, `fail-load`, `corrupt-load`, `kill-on-save` or
    ///   `kill-on-remove`;
    /// * `TYPE` is `config`, `key`, `snapshot`, `index`, `pack`, `lock`,
    ///   `lifeboat` or `any`;
    /// * `N` ≥ 1 is which matching operation is hit;
    /// * `MODE`, only for `fail-*`, is `permanent` (the default) or
    ///   `retryable` (alias `transient`).
    ///
    /// Example: `fail-save:pack:3:retryable`.
    pub fn parse(rule: &str) -> std::result::Result<Fault, String> {
        let parts: Vec<&str> = rule.trim().split(':').map(str::trim).collect();
        let bad = |why: &str| format!("invalid fault rule {rule:?}: {why}");
        if parts.len() < 3 || parts.len() > 4 {
            return Err(bad("expected ACTION:TYPE:N[:MODE]"));
        }
        let ft = match parts[1].to_ascii_lowercase().as_str() {
            "any" | "*" => None,
            other => Some(other.parse::<FileType>().map_err(|e| bad(&e))?),
        };
        let nth: u32 = parts[2].parse().map_err(|_| bad("N must be a positive integer"))?;
        if nth == 0 {
            return Err(bad("N counts from 1"));
        }
        let retryable = match parts.get(3).map(|m| m.to_ascii_lowercase()) {
            None => false,
            Some(m) if m == "permanent" => false,
            Some(m) if m == "retryable" || m == "transient" => true,
            Some(_) => return Err(bad("MODE must be 'permanent' or 'retryable'")),
        };
        let action = parts[0].to_ascii_lowercase();
        let takes_mode = action == "fail-save" || action == "fail-load";
        if parts.len() == 4 && !takes_mode {
            return Err(bad("only fail-save and fail-load take a MODE"));
        }
        match action.as_str() {
            "fail-save" => Ok(Fault::FailSave { ft, nth, retryable }),
            "fail-load" => Ok(Fault::FailLoad { ft, nth, retryable }),
            "corrupt-load" => Ok(Fault::CorruptLoad { ft, nth }),
            "kill-on-save" => Ok(Fault::KillOnSave { ft, nth }),
            "kill-on-remove" => Ok(Fault::KillOnRemove { ft, nth }),
            _ => Err(bad("ACTION must be fail-save, fail-load, corrupt-load, kill-on-save or kill-on-remove")),
        }
    }

    /// Reads rules from the [`FAULTS_ENV_VAR`] (`LIFEBOAT_FAULTS`) environment
    /// variable; unset or blank means no rules.
    pub fn from_env() -> std::result::Result<Vec<Fault>, String> {
        match std::env::var(FAULTS_ENV_VAR) {
            Ok(spec) => Fault::parse_list(&spec).map_err(|e| format!("{FAULTS_ENV_VAR}: {e}")),
            Err(std::env::VarError::NotPresent) => Ok(Vec::new()),
            Err(e) => Err(format!("{FAULTS_ENV_VAR}: {e}")),
        }
    }

    /// Parses a comma-separated list of rules (see [`Fault::parse`]), e.g.
    /// `kill-on-save:index:1,fail-save:pack:3`. An empty or blank spec yields
    /// no rules.
    pub fn parse_list(spec: &str) -> std::result::Result<Vec<Fault>, String> {
        spec.split(',').filter(|rule| !rule.trim().is_empty()).map(Fault::parse).collect()
    }
}

impl fmt::Display for Fault {
    /// Formats the rule in the syntax accepted by [`Fault::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ft, nth) = self.target();
        let ft = ft.map_or("any", FileType::as_str);
        match self {
            Fault::FailSave { retryable, .. } | Fault::FailLoad { retryable, .. } => {
                let action = if self.kind() == Kind::Save { "fail-save" } else { "fail-load" };
                let mode = if *retryable { "retryable" } else { "permanent" };
                write!(f, "{action}:{ft}:{nth}:{mode}")
            }
            Fault::CorruptLoad { .. } => write!(f, "corrupt-load:{ft}:{nth}"),
            Fault::KillOnSave { .. } => write!(f, "kill-on-save:{ft}:{nth}"),
            Fault::KillOnRemove { .. } => write!(f, "kill-on-remove:{ft}:{nth}"),
        }
    }
}

/// A decorator injecting [`Fault`]s into another backend (for tests only).
///
/// Operations not covered by a rule (and all of `create`, `has_config`,
/// `size`, `list`) pass straight through. Counters of attempted
/// saves and loads let tests check how often a wrapper retried.
#[derive(Debug)]
pub struct FaultyBackend<B> {
    inner: B,
    faults: Vec<Fault>,
    /// Matching operations seen so far, per rule.
    seen: Mutex<Vec<u32>>,
    saves: AtomicU64,
    loads: AtomicU64,
    injected: AtomicU64,
}

/// What the rules decided for one operation.
#[derive(Default)]
struct Decision {
    fail: Option<bool>,
    corrupt: bool,
    kill: bool,
}

impl<B: Backend> FaultyBackend<B> {
    /// Wraps `inner`, applying `faults`.
    pub fn new(inner: B, faults: Vec<Fault>) -> Self {
        let seen = Mutex::new(vec![0; faults.len()]);
        Self { inner, faults, seen, saves: AtomicU64::new(0), loads: AtomicU64::new(0), injected: AtomicU64::new(0) }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The configured rules.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Number of `save` calls so far (including failed and killed ones).
    pub fn save_attempts(&self) -> u64 {
        self.saves.load(Ordering::SeqCst)
    }

    /// Number of `load` and `load_range` calls so far (including failed ones).
    pub fn load_attempts(&self) -> u64 {
        self.loads.load(Ordering::SeqCst)
    }

    /// Number of faults injected so far (failures and corruptions).
    pub fn injected_faults(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Counts one operation against every matching rule and reports which fire.
    fn decide(&self, kind: Kind, ft: FileType) -> Decision {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut d = Decision::default();
        for (fault, count) in self.faults.iter().zip(seen.iter_mut()) {
            if !fault.matches(kind, ft) {
                continue;
            }
            *count = count.saturating_add(1);
            if *count != fault.target().1 {
                continue;
            }
            match *fault {
                Fault::FailSave { retryable, .. } | Fault::FailLoad { retryable, .. } => {
                    // A permanent failure wins over a retryable one.
                    d.fail = Some(d.fail.unwrap_or(true) && retryable);
                }
                Fault::CorruptLoad { .. } => d.corrupt = true,
                Fault::KillOnSave { .. } | Fault::KillOnRemove { .. } => d.kill = true,
            }
        }
        d
    }

    fn injected_error(&self, op: Op, ft: FileType, name: &str, retryable: bool) -> BackendError {
        self.injected.fetch_add(1, Ordering::SeqCst);
        let path = ft.object_key(name).unwrap_or_else(|_| name.to_owned());
        BackendError::Injected { ctx: ErrorContext::new(self.inner.location(), op, Some(ft), path), retryable }
    }

    fn corrupt(&self, data: &mut [u8]) {
        if !data.is_empty() {
            let mid = data.len() / 2;
            data[mid] ^= 0xff;
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn load_with(&self, op: Op, ft: FileType, name: &str, load: impl FnOnce() -> Result<Vec<u8>>) -> Result<Vec<u8>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let d = self.decide(Kind::Load, ft);
        if let Some(retryable) = d.fail {
            return Err(self.injected_error(op, ft, name, retryable));
        }
        let mut data = load()?;
        if d.corrupt {
            self.corrupt(&mut data);
        }
        Ok(data)
    }
}

/// Ends the current process with SIGKILL, like a power cut or OOM kill: no
/// destructors, no flushing. Falls back to `abort` if `kill` cannot be run.
fn kill_current_process() -> ! {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .or_else(|_| std::process::Command::new("sh").args(["-c", &format!("kill -9 {pid}")]).status());
    // The signal is normally delivered before `status` returns; give it time.
    std::thread::sleep(std::time::Duration::from_secs(5));
    std::process::abort()
}

impl<B: Backend> Backend for FaultyBackend<B> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn appender(&self, ft: FileType, name: &str) -> Result<Option<Box<dyn crate::Appender>>> {
        self.inner.appender(ft, name)
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn has_config(&self) -> Result<bool> {
        self.inner.has_config()
    }

    fn save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        let d = self.decide(Kind::Save, ft);
        if d.kill {
            let half = &data[..data.len() / 2];
            let _ = self.inner.simulate_interrupted_save(ft, name, half);
            kill_current_process();
        }
        if let Some(retryable) = d.fail {
            return Err(self.injected_error(Op::Save, ft, name, retryable));
        }
        self.inner.save(ft, name, data)
    }

    fn load(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
        self.load_with(Op::Load, ft, name, || self.inner.load(ft, name))
    }

    fn load_range(&self, ft: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        self.load_with(Op::LoadRange, ft, name, || self.inner.load_range(ft, name, offset, length))
    }

    fn size(&self, ft: FileType, name: &str) -> Result<u64> {
        self.inner.size(ft, name)
    }

    fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        self.inner.list(ft)
    }

    fn list_prefix(&self, ft: FileType, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.inner.list_prefix(ft, prefix)
    }

    fn remove(&self, ft: FileType, name: &str) -> Result<()> {
        if self.decide(Kind::Remove, ft).kill {
            kill_current_process();
        }
        self.inner.remove(ft, name)
    }

    fn remove_many(&self, ft: FileType, names: &[String]) -> Result<()> {
        // Count each object like a single remove, so `kill-on-remove:pack:N` means the same.
        for (i, _) in names.iter().enumerate() {
            if self.decide(Kind::Remove, ft).kill {
                self.inner.remove_many(ft, &names[..i])?;
                kill_current_process();
            }
        }
        self.inner.remove_many(ft, names)
    }

    fn simulate_interrupted_save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        self.inner.simulate_interrupted_save(ft, name, data)
    }
    fn list_temporary(&self) -> Result<Vec<crate::TemporaryFile>> {
        self.inner.list_temporary()
    }

    fn remove_temporary(&self, name: &str) -> Result<()> {
        self.inner.remove_temporary(name)
    }

    fn readable_by_others(&self, ft: FileType) -> Result<Vec<(String, u32)>> {
        self.inner.readable_by_others(ft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec_lists() {
        let faults = Fault::parse_list("kill-on-save:index:1, fail-save:pack:3").expect("parse");
        assert_eq!(
            faults,
            vec![
                Fault::KillOnSave { ft: Some(FileType::Index), nth: 1 },
                Fault::FailSave { ft: Some(FileType::Pack), nth: 3, retryable: false },
            ]
        );
        let faults = Fault::parse_list("fail-load:any:2:retryable,corrupt-load:lifeboat:1").expect("parse");
        assert_eq!(
            faults,
            vec![
                Fault::FailLoad { ft: None, nth: 2, retryable: true },
                Fault::CorruptLoad { ft: Some(FileType::Lifeboat), nth: 1 },
            ]
        );
        assert_eq!(Fault::parse_list("").expect("empty"), vec![]);
        assert_eq!(Fault::parse_list(" , ").expect("blank"), vec![]);
    }

    #[test]
    fn display_round_trips() {
        let spec = "fail-save:config:1:permanent,fail-load:any:7:retryable,\
                    corrupt-load:key:2,kill-on-save:snapshot:4";
        let faults = Fault::parse_list(spec).expect("parse");
        let printed: Vec<String> = faults.iter().map(ToString::to_string).collect();
        assert_eq!(printed.join(","), spec);
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "fail-save",
            "fail-save:pack",
            "fail-save:pack:0",
            "fail-save:pack:x",
            "fail-save:blob:1",
            "explode:pack:1",
            "fail-save:pack:1:sometimes",
            "kill-on-save:pack:1:retryable",
            "fail-save:pack:1:retryable:extra",
        ] {
            assert!(Fault::parse_list(bad).is_err(), "{bad}");
        }
    }
}
