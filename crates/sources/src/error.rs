//! The error type of the sources crate.

use std::path::PathBuf;

/// Errors that stop a source before it produces anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A path to back up does not exist or cannot be read.
    #[error("{path}: {source}")]
    Path {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command could not be started.
    #[error("cannot run `{command}`: {message}")]
    Command {
        /// The command as configured.
        command: String,
        /// Why.
        message: String,
    },
    /// A database could not be read, copied, restored or verified.
    #[error("{target}: {message}")]
    Database {
        /// The database (path or connection target, never with a password).
        target: String,
        /// What went wrong.
        message: String,
    },
    /// A NATS server or one of its JetStream streams could not be reached, read, restored or
    /// verified. Never carries credentials: `server` is `host:port` only.
    #[error("nats {server}{}: {message}", stream.as_deref().map(|s| format!(" stream {s}")).unwrap_or_default())]
    Nats {
        /// `host:port` of the server.
        server: String,
        /// The stream concerned, if one.
        stream: Option<String>,
        /// What went wrong.
        message: String,
        /// Whether trying again later could help (network trouble, a busy server) as opposed to a
        /// refusal that stays (bad credentials, missing stream, JetStream disabled).
        retryable: bool,
    },
    /// An exclude pattern is not a valid glob.
    #[error("invalid exclude pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
}

impl SourceError {
    /// Whether retrying could help (a path may appear later; a bad pattern never becomes good).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SourceError::Path { .. } | SourceError::Nats { retryable: true, .. })
    }
}
