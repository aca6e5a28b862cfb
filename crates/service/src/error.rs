//! The service layer's one error type.

use lifeboat_backend::BackendError;
use lifeboat_ops::OpsError;
use lifeboat_repository::RepoError;
use lifeboat_sources::SourceError;

/// What went wrong in an operation, with the context it happened in. Front ends print it as one
/// line (the chain of [`std::error::Error::source`] joined with `": "`) and map it to an exit
/// code with [`ServiceError::repo`] and [`ServiceError::is_usage`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A failure described in words (bad input, a missing snapshot, a refused combination).
    #[error("{0}")]
    Message(String),
    /// Bad input the user can fix by changing the command line (exit code 2 in the CLI).
    #[error("{0}")]
    Usage(String),
    /// No repository where one was expected, with what to do about it (exit code 10).
    #[error("{0}")]
    NoRepository(String),
    /// An error with what was being done when it happened.
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// What went wrong.
        #[source]
        source: Box<ServiceError>,
    },
    /// From the engine.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// From the storage backend.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// From a source (database client, command, files).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// From the operations layer (retention, records, drills).
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// A file the service reads or writes itself (config, report, password file).
    #[error("{what}: {source}")]
    Io {
        /// The file and the action.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// JSON (manifests, reports).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Results of the service layer.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl ServiceError {
    /// An error from words.
    pub fn msg(text: impl Into<String>) -> ServiceError {
        ServiceError::Message(text.into())
    }

    /// A usage error from words.
    pub fn usage(text: impl Into<String>) -> ServiceError {
        ServiceError::Usage(text.into())
    }

    /// An I/O error on `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> ServiceError {
        ServiceError::Io { what: what.into(), source }
    }

    /// The engine error under any context, for exit codes (no repository, lock held, wrong
    /// password, interrupted).
    pub fn repo(&self) -> Option<&RepoError> {
        match self {
            ServiceError::Repo(r) => Some(r),
            ServiceError::Context { source, .. } => source.repo(),
            _ => None,
        }
    }

    /// Whether this is bad input on the command line (under any context).
    pub fn is_usage(&self) -> bool {
        match self {
            ServiceError::Usage(_) => true,
            ServiceError::Context { source, .. } => source.is_usage(),
            _ => false,
        }
    }

    /// Whether there is no repository where one was expected (under any context).
    pub fn is_no_repository(&self) -> bool {
        match self {
            ServiceError::NoRepository(_) => true,
            ServiceError::Context { source, .. } => source.is_no_repository(),
            _ => false,
        }
    }

    /// Whether the operation stopped because it was interrupted.
    pub fn is_interrupted(&self) -> bool {
        matches!(self.repo(), Some(RepoError::Interrupted))
    }
}

/// Adds context to errors, like `anyhow::Context`.
pub trait Context<T> {
    /// Wrap the error with `context`.
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// Wrap the error with a lazily built context.
    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<ServiceError>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| ServiceError::Context { context: context.into(), source: Box::new(e.into()) })
    }

    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| ServiceError::Context { context: f().into(), source: Box::new(e.into()) })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| ServiceError::Message(context.into()))
    }

    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.ok_or_else(|| ServiceError::Message(f().into()))
    }
}

impl From<String> for ServiceError {
    fn from(s: String) -> ServiceError {
        ServiceError::Message(s)
    }
}
