//! Lifeboat's repository engine (layer 4 of DESIGN.md).
//!
//! Owns everything that turns bytes into a restic v2 repository and back: opening and creating
//! repositories ([`Repository`]), the master index, the packer, the backup pipeline
//! ([`archiver`]), the restorer, the checker, locks and key management. It never prints: every
//! operation takes an options struct and returns its results as data.

pub mod archiver;
pub mod cache;
pub mod checker;
mod compress;
pub mod copy;
mod error;
pub mod frames;
pub mod index;
pub mod keys;
pub mod lock;
pub mod packer;
pub mod prune;
pub mod repair;
mod repo;
pub mod restorer;
pub mod settings;
pub mod snapshots;
pub mod tree;
pub mod util;

pub use compress::Compression;
pub use error::{RepoError, Result};
pub use repo::{InitOptions, Repository};

/// Re-exported so callers name one crate for the format types.
pub use lifeboat_format as format;
