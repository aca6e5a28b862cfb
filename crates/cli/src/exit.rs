//! Exit codes (documented in the README) and the one-line error message.

use lifeboat_backend::BackendError;
use lifeboat_repository::RepoError;
use lifeboat_service::ServiceError;

/// Success.
pub const OK: i32 = 0;
/// Failure (including damage found by `check`).
pub const FAILURE: i32 = 1;
/// Malformed command line.
pub const USAGE: i32 = 2;
/// Backup finished but some source files could not be read.
pub const PARTIAL: i32 = 3;
/// A guarded restore (protected source, or the source's live location) without `--force` and
/// the source's name confirmed; nothing was changed.
pub const REFUSED: i32 = 4;
/// No repository at the location.
pub const NO_REPOSITORY: i32 = 10;
/// Repository locked by another process.
pub const LOCKED: i32 = 11;
/// Wrong password.
pub const WRONG_PASSWORD: i32 = 12;
/// Interrupted (Ctrl-C / SIGINT).
pub const INTERRUPTED: i32 = 130;

/// The exit code for an error.
pub fn code_for(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(s) = cause.downcast_ref::<ServiceError>() {
            if s.is_usage() {
                return USAGE;
            }
            if s.is_no_repository() {
                return NO_REPOSITORY;
            }
            if let Some(r) = s.repo() {
                return repo_code(r);
            }
        }
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            return repo_code(r);
        }
    }
    FAILURE
}

fn repo_code(r: &RepoError) -> i32 {
    match r {
        RepoError::NotARepository { .. } => NO_REPOSITORY,
        RepoError::LockHeld { .. } => LOCKED,
        RepoError::WrongPassword { .. } => WRONG_PASSWORD,
        RepoError::Interrupted => INTERRUPTED,
        RepoError::Backend(b) if b.is_not_found() && is_repo_root_missing(b) => NO_REPOSITORY,
        _ => FAILURE,
    }
}

fn is_repo_root_missing(b: &BackendError) -> bool {
    b.context().ft.is_none()
}

/// The error as one line: the chain joined with ": ", without repeats.
pub fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}
