//! On-disk types of the restic repository format, version 2, as Lifeboat reads and writes them.
//!
//! This crate owns the *shape* of every object in a repository — config, key files, packs and
//! their headers, index files, trees, snapshots, locks — and nothing else: no I/O, no crypto,
//! no compression. The spec is restic's `doc/design.rst`; field names and JSON encodings follow
//! it exactly so that restic and rustic can read what Lifeboat writes and vice versa.

pub mod config;
pub mod error;
pub mod id;
pub mod index;
pub mod key;
pub mod lock;
pub mod mode;
pub mod name;
pub mod pack;
pub mod snapshot;
pub mod tree;

pub use config::Config;
pub use error::{from_json as parse_json, FormatError};
pub use id::Id;
pub use index::{IndexBlob, IndexFile, IndexPack};
pub use key::{KeyFile, MasterKeyJson};
pub use lock::Lock;
pub use pack::{BlobType, PackHeaderEntry};
pub use snapshot::{Snapshot, SnapshotSummary, SourceInfo};
pub use tree::{ExtendedAttribute, Node, NodeType, Tree};

/// Repository format version written by Lifeboat (restic's version 2: compression support).
pub const REPO_VERSION: u32 = 2;

/// Prefix byte of a compressed unpacked file (index, snapshot, lock) in a version 2 repository.
///
/// An unpacked file whose plaintext starts with `{` or `[` is plain JSON; one that starts with
/// this byte is a zstd frame of JSON.
pub const UNPACKED_ZSTD_PREFIX: u8 = 2;
