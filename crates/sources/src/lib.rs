//! Lifeboat's sources (layer 5 of DESIGN.md): each kind of stateful thing turns into a stream of
//! [`lifeboat_repository::archiver::Entry`] values that the engine stores as a snapshot.
//!
//! `files` and `command` exist so far; database sources will live beside them and are the only
//! place database clients may appear.

mod artifact;
pub mod client;
pub mod command;
mod error;
pub mod files;
pub mod mariadb;
pub mod nats;
pub mod postgres;
pub mod redis;
pub mod sqlite;

pub use error::SourceError;
