//! Lifeboat's service layer (layer 7 of the architecture, docs/architecture.md): the one API
//! every front end calls — the CLI today, the daemon and the dashboard next.
//!
//! - [`config`]: `lifeboat.toml`, typed per source kind, with file:line errors;
//! - [`kinds`]: one module per source kind behind the [`kinds::Source`] trait, and the registry
//!   that maps kind names to them;
//! - [`session`]: the repository's location, password, backend, lock;
//! - operations ([`backup`], [`restore`], [`verify`], [`compare`], [`drill`], [`retention`],
//!   [`copy`], [`health`], [`storage`], [`keys`]) that return typed results and report progress
//!   as [`progress::Event`]s. Nothing here prints.

pub mod audit;
pub mod backup;
pub mod charts;
pub mod compare;
pub mod config;
pub mod copy;
pub mod diff;
pub mod drill;
mod error;
mod filter;
pub mod guard;
pub mod health;
pub mod hooks;
pub mod human;
pub mod inventory;
pub mod keys;
pub mod kinds;
pub mod overview;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod repair;
pub mod replicate;
pub mod report;
pub mod restore;
pub mod restore_all;
pub mod retention;
pub mod runs;
pub mod session;
pub mod storage;
mod vars;
pub mod verify;
pub mod wal;

pub use error::{Context, Result, ServiceError};
pub use filter::{find_snapshot, FilterSpec};
pub use progress::{Event, Observer};
pub use session::{one_line, Session};
