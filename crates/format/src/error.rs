//! The error type of the format crate.

/// Errors raised while decoding repository objects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A hex id had the wrong length or characters.
    #[error("invalid id {text:?}: {reason}")]
    InvalidId {
        /// The text that failed to parse.
        text: String,
        /// Why it failed.
        reason: String,
    },
    /// A pack header could not be parsed.
    #[error("malformed pack header: {0}")]
    PackHeader(String),
    /// A JSON object did not match its schema.
    #[error("malformed {what}: {source}")]
    Json {
        /// Which kind of object (index, tree, snapshot…).
        what: &'static str,
        /// The underlying parser error.
        source: serde_json::Error,
    },
}

impl FormatError {
    /// Whether retrying the operation could help (never: malformed data stays malformed).
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Parse JSON into `T`, naming the kind of object in the error.
pub fn from_json<T: serde::de::DeserializeOwned>(what: &'static str, data: &[u8]) -> Result<T, FormatError> {
    serde_json::from_slice(data).map_err(|source| FormatError::Json { what, source })
}
