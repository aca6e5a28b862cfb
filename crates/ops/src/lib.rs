//! Lifeboat's operations layer (layer 6 of DESIGN.md): what runs on top of the engine and the
//! sources — retention policies, and (as they land) verification runs, drills, objectives,
//! notifications and the audit log. Like the engine it never prints: the CLI owns output.

pub mod audit;
pub mod drill;
pub mod duration;
mod error;
pub mod guard;
pub mod health;
pub mod records;
pub mod retention;
pub mod usage;
pub mod verify;

pub use error::OpsError;
