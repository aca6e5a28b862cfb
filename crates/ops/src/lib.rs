//! Lifeboat's operations layer (layer 6, docs/architecture.md): policies and proofs as data on
//! top of the engine and the sources — retention policies, verification records, drills and their
//! signed reports, health grading against RPO/RTO objectives, probes and their trends, the guard's rules, usage and the
//! audit log. Like the engine it never prints: front ends own output.

pub mod audit;
pub mod drill;
pub mod duration;
mod error;
pub mod guard;
pub mod health;
pub mod probe;
pub mod records;
pub mod replica;
pub mod retention;
pub mod usage;
pub mod verify;
pub mod wal;

pub use error::OpsError;
