//! Lifeboat's sources (layer 5, docs/architecture.md): each kind of stateful thing — files, a
//! command's output, SQLite, PostgreSQL, MariaDB, Redis, NATS JetStream — turns into a stream of
//! [`lifeboat_repository::archiver::Entry`] values that the engine stores as a snapshot, and is
//! restored and verified natively. This is the only place database clients appear; the service
//! layer's `kinds` modules drive them from the config.

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

pub use artifact::Started;
pub use error::SourceError;

/// Chunk sizes (min, average, max) for logical database dumps (PostgreSQL, MariaDB): rows change
/// at random places, so chunks much smaller than restic's 1 MiB average keep a second backup
/// small; measured with `bench/pgbench-dedup.sh`.
pub const DUMP_CHUNK_SIZES: (u32, u32, u32) = (4 * 1024, 16 * 1024, 64 * 1024);
