//! Proving snapshots: the checks behind `lifeboat verify` and `lifeboat drill`.
//!
//! Three levels, each a superset of the one before:
//! - **structure** ([`check_snapshots`]): every tree of the snapshot loads (which reads and
//!   hash-checks it), every blob a file refers to is in the index and its pack exists;
//! - **read-data** (the same function with [`CheckOptions::read_data`]): every data blob the
//!   snapshot refers to is read back, decrypted, decompressed and hash-checked; a damaged blob is
//!   named with the snapshot and the file paths that use it;
//! - **restore test** ([`RestoreTest`], run by each source kind in the service layer): the snapshot is restored into a scratch target of its
//!   kind (a temporary directory or file, a `lifeboat_verify_<random>` database, a throwaway
//!   `redis-server` on a unix socket, a `LIFEBOAT_VERIFY_<random>` stream) and checked with the
//!   kind's native verification against the backup's manifest. Scratch targets are removed when
//!   the test ends, whether it passed, failed or returned an error.

mod restore_test;
pub mod scratch;
mod structure;

pub use restore_test::RestoreTest;
pub use structure::{check_snapshots, CheckOptions, SnapshotCheck};
