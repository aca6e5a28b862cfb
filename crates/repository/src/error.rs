//! The error type of the repository engine.

use std::path::PathBuf;

use lifeboat_backend::BackendError;
use lifeboat_format::Id;

/// Result alias for the engine.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// Errors of the repository engine. Each variant carries the object it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The storage layer failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// There is no repository at the location.
    #[error("no repository at {location} (run `lifeboat init` first)")]
    NotARepository {
        /// Where we looked.
        location: String,
    },
    /// A repository already exists at the location.
    #[error("a repository already exists at {location}")]
    AlreadyExists {
        /// Where.
        location: String,
    },
    /// No key file opened with the password.
    #[error("wrong password or no key found for it at {location}")]
    WrongPassword {
        /// Where.
        location: String,
    },
    /// The repository version is not supported.
    #[error("unsupported repository version {version} (Lifeboat reads versions 1 and 2)")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// A stored object failed authentication, decoding or its hash check.
    #[error("{what} is damaged: {reason}")]
    Corrupt {
        /// The object (e.g. `index 1a2b3c4d`, `blob 5e6f… in pack 1234abcd`).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob is not in the index.
    #[error("{blob_type} blob {id} is not in the index")]
    BlobNotFound {
        /// Missing blob.
        id: Id,
        /// Its type.
        blob_type: lifeboat_format::BlobType,
    },
    /// A snapshot id or prefix did not match.
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    /// A snapshot file cannot be read (damaged, undecryptable, not a snapshot). Snapshot
    /// selections stop at it instead of silently picking another snapshot.
    #[error(
        "snapshot file snapshots/{name} is damaged ({reason}); no snapshot is selected past it \
         (`lifeboat check` lists every damaged file; remove or repair it, or name an intact snapshot by id)"
    )]
    DamagedSnapshot {
        /// The snapshot file's name (its full id when intact).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A snapshot prefix matched several snapshots.
    #[error("snapshot prefix {0:?} is ambiguous")]
    AmbiguousSnapshot(String),
    /// A path was not found inside a snapshot.
    #[error("path {0:?} is not in the snapshot")]
    PathNotFound(String),
    /// Another process holds a conflicting lock.
    #[error("repository is locked {kind} by {holder}")]
    LockHeld {
        /// `exclusively` or `non-exclusively`.
        kind: &'static str,
        /// Who holds it: `PID 123 on host as user, since …`.
        holder: String,
    },
    /// The operation was interrupted by the user.
    #[error("interrupted")]
    Interrupted,
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A restore target is not empty and `overwrite` was not set.
    #[error("restore target {0} is not empty (use --overwrite to replace files in it)")]
    TargetNotEmpty(PathBuf),
    /// The source reported failure after producing its data (e.g. a command exited non-zero);
    /// no snapshot was written.
    #[error("{0}")]
    SourceFailed(String),
    /// Invalid argument or state.
    #[error("{0}")]
    Invalid(String),
}

impl RepoError {
    /// Whether retrying the operation could help.
    pub fn is_retryable(&self) -> bool {
        match self {
            RepoError::Backend(e) => e.is_retryable(),
            RepoError::LockHeld { .. } => true,
            _ => false,
        }
    }

    /// Build an I/O error for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RepoError::Io { path: path.into(), source }
    }

    /// Build a corruption error.
    pub fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        RepoError::Corrupt { what: what.into(), reason: reason.to_string() }
    }
}
