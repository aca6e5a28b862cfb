//! Lifeboat's sources (layer 5 of DESIGN.md): each kind of stateful thing turns into a stream of
//! [`lifeboat_repository::archiver::Entry`] values that the engine stores as a snapshot.
//!
//! Only the `files` source exists so far; database sources will live beside it and are the only
//! place database clients may appear.

mod error;
pub mod files;

pub use error::SourceError;
