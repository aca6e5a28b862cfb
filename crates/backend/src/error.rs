//! The error type shared by all backends, with enough context for one clear line.

use std::fmt;
use std::io;

use crate::FileType;

/// The backend operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// [`crate::Backend::create`].
    Create,
    /// [`crate::Backend::has_config`].
    HasConfig,
    /// [`crate::Backend::save`] (and [`crate::Backend::simulate_interrupted_save`]).
    Save,
    /// [`crate::Backend::load`].
    Load,
    /// [`crate::Backend::load_range`].
    LoadRange,
    /// [`crate::Backend::size`].
    Size,
    /// [`crate::Backend::list`].
    List,
    /// [`crate::Backend::remove`].
    Remove,
    /// Setting up a backend from its URL and options (e.g. [`crate::S3Backend::new`]).
    Open,
    /// [`crate::Backend::appender`] and [`crate::Appender`]'s methods.
    Append,
}

impl Op {
    /// Verb used in messages, e.g. `saving`.
    pub fn verb(self) -> &'static str {
        match self {
            Op::Create => "creating",
            Op::HasConfig => "checking for",
            Op::Save => "saving",
            Op::Load => "loading",
            Op::LoadRange => "reading part of",
            Op::Size => "getting the size of",
            Op::List => "listing",
            Op::Remove => "removing",
            Op::Open => "opening",
            Op::Append => "appending to",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

/// Where an error happened: backend location, operation, file type and object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorContext {
    /// The backend's [`crate::Backend::location`].
    pub location: String,
    /// The operation that failed.
    pub op: Op,
    /// The file type involved, if any.
    pub ft: Option<FileType>,
    /// The object key or directory relative to the repository root
    /// (e.g. `data/ab/abcd…`, `index/`), or the raw name if it was invalid.
    pub path: String,
}

impl ErrorContext {
    /// Builds a context.
    pub fn new(location: impl Into<String>, op: Op, ft: Option<FileType>, path: impl Into<String>) -> Self {
        Self { location: location.into(), op, ft, path: path.into() }
    }
}

impl fmt::Display for ErrorContext {
    /// Formats as `<location>: <verb> <path>`, e.g. `/srv/repo: saving index/ab12`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {} the repository", self.location, self.op)
        } else {
            write!(f, "{}: {} {}", self.location, self.op, self.path)
        }
    }
}

/// Error of a backend operation.
///
/// The `Display` text is one self-contained line (`<location>: <verb> <path>:
/// <what happened>`), suitable to print as is. The underlying [`io::Error`] is
/// kept in a field (`error`) but not exposed as [`std::error::Error::source`],
/// so printing the chain does not repeat it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The object (or repository) does not exist.
    #[error("{ctx}: not found")]
    NotFound {
        /// Where it happened.
        ctx: ErrorContext,
    },
    /// [`crate::Backend::create`] found an existing repository (a `config`).
    #[error("{ctx}: a repository already exists there")]
    AlreadyExists {
        /// Where it happened.
        ctx: ErrorContext,
    },
    /// The storage is full or a quota is exhausted (ENOSPC, EDQUOT).
    #[error("{ctx}: no space left on the storage (disk full or quota exceeded)")]
    StorageFull {
        /// Where it happened.
        ctx: ErrorContext,
        /// The OS error (not in the message: the variant says it all).
        error: io::Error,
    },
    /// Access was denied (EACCES, EPERM).
    #[error("{ctx}: permission denied")]
    PermissionDenied {
        /// Where it happened.
        ctx: ErrorContext,
        /// The OS error (not in the message: the variant says it all).
        error: io::Error,
    },
    /// The storage is read-only (EROFS).
    #[error("{ctx}: the storage is read-only")]
    ReadOnly {
        /// Where it happened.
        ctx: ErrorContext,
        /// The OS error (not in the message: the variant says it all).
        error: io::Error,
    },
    /// A ranged read asked for bytes past the end of the object.
    #[error("{ctx}: short read: wanted {length} bytes at offset {offset}, but the object has {size} bytes")]
    ShortRead {
        /// Where it happened.
        ctx: ErrorContext,
        /// Requested offset.
        offset: u64,
        /// Requested length.
        length: u32,
        /// Actual object size (as far as known).
        size: u64,
    },
    /// The object name is not valid for its file type.
    #[error("{ctx}: invalid object name: {reason}")]
    InvalidName {
        /// Where it happened (`path` holds the raw name).
        ctx: ErrorContext,
        /// Why the name was rejected.
        reason: String,
    },
    /// Any other I/O error.
    #[error("{ctx}: {error}")]
    Io {
        /// Where it happened.
        ctx: ErrorContext,
        /// The OS error (part of the message).
        error: io::Error,
        /// Whether retrying may help (EINTR, EAGAIN, timeouts, connection resets).
        retryable: bool,
    },
    /// An append-only server (restic's `rest-server --append-only`, `rclone serve restic
    /// --append-only`) refused a deletion.
    #[error("{}: the REST server is append-only: deleting {} refused", ctx.location, ctx.path)]
    AppendOnly {
        /// Where it happened.
        ctx: ErrorContext,
    },
    /// A fault injected by [`crate::FaultyBackend`].
    #[error("{ctx}: injected fault ({})", if *retryable { "retryable" } else { "permanent" })]
    Injected {
        /// Where it happened.
        ctx: ErrorContext,
        /// Whether the fault pretends to be transient.
        retryable: bool,
    },
    /// Any other failure, e.g. from a remote store's client library. Put the
    /// useful detail in `message`: `source` is only for programmatic inspection.
    #[error("{ctx}: {message}")]
    Other {
        /// Where it happened.
        ctx: ErrorContext,
        /// Description of the failure.
        message: String,
        /// Whether retrying may help.
        retryable: bool,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl BackendError {
    /// Classifies an [`io::Error`] into the matching variant.
    ///
    /// NotFound → [`BackendError::NotFound`]; ENOSPC/EDQUOT →
    /// [`BackendError::StorageFull`]; EROFS → [`BackendError::ReadOnly`];
    /// EACCES/EPERM → [`BackendError::PermissionDenied`]; everything else →
    /// [`BackendError::Io`], retryable for EINTR, EAGAIN, timeouts and
    /// connection errors.
    pub fn from_io(ctx: ErrorContext, error: io::Error) -> Self {
        use io::ErrorKind as K;
        // Raw Linux/macOS errno values, for kinds std may not classify on every platform.
        const EPERM: i32 = 1;
        const EACCES: i32 = 13;
        const ENOSPC: i32 = 28;
        const EROFS: i32 = 30;
        #[cfg(target_os = "linux")]
        const EDQUOT: i32 = 122;
        #[cfg(not(target_os = "linux"))]
        const EDQUOT: i32 = 69;

        let raw = error.raw_os_error();
        let kind = error.kind();
        if kind == K::NotFound {
            return BackendError::NotFound { ctx };
        }
        if kind == K::StorageFull || raw == Some(ENOSPC) || raw == Some(EDQUOT) {
            return BackendError::StorageFull { ctx, error };
        }
        if kind == K::ReadOnlyFilesystem || raw == Some(EROFS) {
            return BackendError::ReadOnly { ctx, error };
        }
        if kind == K::PermissionDenied || raw == Some(EACCES) || raw == Some(EPERM) {
            return BackendError::PermissionDenied { ctx, error };
        }
        let retryable = matches!(
            kind,
            K::Interrupted
                | K::WouldBlock
                | K::TimedOut
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::ConnectionRefused
                | K::BrokenPipe
                | K::NotConnected
        );
        BackendError::Io { ctx, error, retryable }
    }

    /// Builds an [`BackendError::Other`] error (for backends not based on `std::io`).
    pub fn other(ctx: ErrorContext, message: impl Into<String>, retryable: bool) -> Self {
        BackendError::Other { ctx, message: message.into(), retryable, source: None }
    }

    /// The context (location, operation, file type, path) of this error.
    pub fn context(&self) -> &ErrorContext {
        match self {
            BackendError::NotFound { ctx }
            | BackendError::AlreadyExists { ctx }
            | BackendError::StorageFull { ctx, .. }
            | BackendError::PermissionDenied { ctx, .. }
            | BackendError::ReadOnly { ctx, .. }
            | BackendError::ShortRead { ctx, .. }
            | BackendError::InvalidName { ctx, .. }
            | BackendError::Io { ctx, .. }
            | BackendError::Injected { ctx, .. }
            | BackendError::AppendOnly { ctx }
            | BackendError::Other { ctx, .. } => ctx,
        }
    }

    /// Whether retrying the same operation may succeed (transient errors only).
    pub fn is_retryable(&self) -> bool {
        match self {
            BackendError::Io { retryable, .. }
            | BackendError::Injected { retryable, .. }
            | BackendError::Other { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Whether the object or repository does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound { .. })
    }

    /// Whether [`crate::Backend::create`] found an existing repository.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, BackendError::AlreadyExists { .. })
    }

    /// Whether the storage is full (disk full or quota exceeded).
    pub fn is_storage_full(&self) -> bool {
        matches!(self, BackendError::StorageFull { .. })
    }

    /// Whether access was denied or the storage is read-only.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, BackendError::PermissionDenied { .. } | BackendError::ReadOnly { .. })
    }

    /// Whether an append-only server refused a deletion.
    pub fn is_append_only(&self) -> bool {
        matches!(self, BackendError::AppendOnly { .. })
    }

    /// Whether the storage is mounted read-only.
    pub fn is_read_only(&self) -> bool {
        matches!(self, BackendError::ReadOnly { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ErrorContext {
        ErrorContext::new("/repo", Op::Save, Some(FileType::Index), "index/ab")
    }

    #[test]
    fn classifies_os_errors() {
        let e = |raw| BackendError::from_io(ctx(), io::Error::from_raw_os_error(raw));
        assert!(e(2).is_not_found());
        assert!(e(28).is_storage_full());
        assert!(e(30).is_read_only());
        assert!(e(30).is_permission_denied());
        assert!(e(13).is_permission_denied());
        assert!(e(1).is_permission_denied());
        assert!(e(4).is_retryable());
        assert!(e(11).is_retryable());
        assert!(e(110).is_retryable());
        assert!(!e(5).is_retryable());
        assert!(!e(28).is_retryable());
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "slow");
        assert!(BackendError::from_io(ctx(), timed_out).is_retryable());
    }

    #[test]
    fn messages_are_one_clear_line() {
        let e = BackendError::from_io(ctx(), io::Error::from_raw_os_error(28));
        assert_eq!(e.to_string(), "/repo: saving index/ab: no space left on the storage (disk full or quota exceeded)");
        let e = BackendError::NotFound { ctx: ErrorContext::new("/repo", Op::Load, Some(FileType::Key), "keys/k") };
        assert_eq!(e.to_string(), "/repo: loading keys/k: not found");
        assert_eq!(e.context().ft, Some(FileType::Key));
        assert!(!e.to_string().contains('\n'));
    }
}
