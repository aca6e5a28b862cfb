//! Storage backends for a restic-format repository.
//!
//! A [`Backend`] stores whole, immutable-by-convention objects addressed by a
//! [`FileType`] and a name, using restic's repository layout:
//!
//! | file type              | key (path relative to the repository root) |
//! |------------------------|--------------------------------------------|
//! | [`FileType::Config`]   | `config` (the name is ignored)             |
//! | [`FileType::Key`]      | `keys/<name>`                              |
//! | [`FileType::Snapshot`] | `snapshots/<name>`                         |
//! | [`FileType::Index`]    | `index/<name>`                             |
//! | [`FileType::Lock`]     | `locks/<name>`                             |
//! | [`FileType::Pack`]     | `data/<first two chars of name>/<name>`    |
//! | [`FileType::Lifeboat`] | `lifeboat/<name>` (name may contain `/`)   |
//!
//! The trait is deliberately synchronous and small. Implementations: the default
//! [`LocalBackend`] (a directory), [`S3Backend`] (any S3-compatible object store,
//! through OpenDAL, with its own small async runtime behind the sync calls; see
//! [`s3`] for URL forms and credentials), [`RestBackend`] (restic's REST protocol, see
//! [`rest`]), [`SftpBackend`] (a directory over SSH, see [`sftp`]) and [`OpendalBackend`] for
//! Azure Blob Storage and Google Cloud Storage (see [`azure`], [`gcs`]). Decorators wrap any backend:
//! [`RetryBackend`] retries transient errors with exponential backoff,
//! [`PackCache`] keeps small packs that are read piecemeal (trees) in memory for
//! remote stores, and [`FaultyBackend`] injects faults for tests (including crash
//! simulation).
//!
//! The [`conformance`] module holds a test suite every implementation must pass.

pub mod azure;
mod bridge;
pub mod conformance;
mod error;
mod faulty;
mod file_type;
pub mod gcs;
mod local;
mod object_store;
mod pack_cache;
pub mod rest;
mod retry;
pub mod s3;
pub mod sftp;

use std::sync::Arc;

pub use azure::AzureOptions;
pub use error::{BackendError, ErrorContext, Op};
pub use faulty::{Fault, FaultyBackend, FAULTS_ENV_VAR};
pub use file_type::FileType;
pub use gcs::GcsOptions;
pub use local::LocalBackend;
pub use object_store::{OpendalBackend, Service};
pub use pack_cache::PackCache;
pub use rest::{is_rest_url, RestBackend, RestOptions};
pub use retry::{RetryBackend, RetryPolicy};
pub use s3::{
    is_s3_url, DefaultRetention, ExtendReport, LockMode, ObjectLockStatus, ObjectVersion, S3Backend, S3Options,
    Versioning,
};
pub use sftp::{is_sftp_url, SftpBackend, SftpOptions};

/// A temporary file left by a save that never finished (a killed process): never an object,
/// never listed by [`Backend::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemporaryFile {
    /// Path relative to the repository root (e.g. `data/ab/.tmp-123-4-89abcdef`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub modified: std::time::SystemTime,
}

/// Result type of every backend operation.
pub type Result<T> = std::result::Result<T, BackendError>;

/// A place that stores the objects of one repository.
///
/// Contract shared by all implementations (checked by [`conformance::run_all`]):
///
/// * Objects are written whole by [`Backend::save`]; once `save` returns the object
///   is durable and no reader can ever observe a partially written object under
///   its final name.
/// * Saving a name that already exists **replaces** it atomically: readers see
///   either the old or the new content, and afterwards the new one. (The engine
///   only re-saves content-addressed objects with identical content, so this is
///   never a data-loss path.)
/// * Missing objects are reported with an error for which
///   [`BackendError::is_not_found`] is true.
/// * Temporary or incomplete uploads are never returned by [`Backend::list`].
/// * Implementations are `Send + Sync`; every method may be called concurrently
///   from several threads.
pub trait Backend: Send + Sync {
    /// Human-readable description of where the repository lives (a path or URL),
    /// never containing secrets.
    fn location(&self) -> String;

    /// Creates the repository layout (`keys/ snapshots/ index/ locks/ data/00..ff/`).
    ///
    /// Fails with [`BackendError::AlreadyExists`] if a `config` object is already
    /// present. Creating over an existing layout without a config is allowed.
    /// Does not write the config itself: save it with [`FileType::Config`].
    fn create(&self) -> Result<()>;

    /// Returns whether a repository (its `config` object) exists here.
    fn has_config(&self) -> Result<bool>;

    /// Stores `data` as object `name` of type `ft`, atomically and durably.
    ///
    /// Replaces an existing object of the same name (see the trait docs).
    fn save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()>;

    /// [`Backend::save`] of a buffer the caller wants back early: `release` gets `data` back as
    /// soon as the store no longer needs it (the local backend: once written, before the fsync
    /// that makes it durable; the default: after the save), so the caller can fill it again
    /// while the object becomes durable. Durable when this returns `Ok`, like `save`. On failure
    /// the buffer comes back with the error unless it was released already (a caller that
    /// retries needs it).
    fn save_releasing(
        &self,
        ft: FileType,
        name: &str,
        data: Vec<u8>,
        release: &mut dyn FnMut(Vec<u8>),
    ) -> std::result::Result<(), crate::Unsaved> {
        match self.save(ft, name, &data) {
            Ok(()) => {
                release(data);
                Ok(())
            }
            Err(e) => Err(Box::new((e, Some(data)))),
        }
    }

    /// Reads a whole object.
    fn load(&self, ft: FileType, name: &str) -> Result<Vec<u8>>;

    /// Reads `length` bytes starting at `offset`.
    ///
    /// Fails with [`BackendError::ShortRead`] if the object holds fewer than
    /// `offset + length` bytes; never returns fewer bytes than asked for.
    fn load_range(&self, ft: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>>;

    /// Returns the size of an object in bytes.
    fn size(&self, ft: FileType, name: &str) -> Result<u64>;

    /// Lists all objects of a type as `(name, size)` pairs.
    ///
    /// Names are the ones accepted by [`Backend::load`]: without directory
    /// prefixes, except that [`FileType::Lifeboat`] names are relative paths that
    /// may contain `/`. [`FileType::Pack`] lists across all `data/xx/`
    /// directories; [`FileType::Config`] yields `("config", size)` if present.
    /// An empty or not yet created repository yields an empty list. The order is
    /// unspecified (the local backend sorts by name).
    fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>>;

    /// Lists the objects of a type whose names begin with `prefix`, as
    /// [`Backend::list`] names them, sorted by name.
    ///
    /// For [`FileType::Lifeboat`] the stores list only the folder the prefix is
    /// in (`runs/` of `runs/2026`): the audit chain, the run records and each
    /// source's WAL archive are read without listing the others, which grow with
    /// every backup. The default filters the whole listing.
    fn list_prefix(&self, ft: FileType, prefix: &str) -> Result<Vec<(String, u64)>> {
        Ok(starting_with(self.list(ft)?, prefix))
    }

    /// Deletes an object. Deleting a missing object is a not-found error.
    fn remove(&self, ft: FileType, name: &str) -> Result<()>;

    /// Deletes several objects of one type; missing ones are ignored (so a retried batch is
    /// harmless). Durable when it returns, except for packs: a pack deletion lost in a crash
    /// only leaves an unreferenced pack that the next prune deletes again, so the local backend
    /// does not sync pack directories (prune deletes thousands of packs across 256 directories)
    /// and syncs the directory of other types once per batch. The default removes one by one.
    fn remove_many(&self, ft: FileType, names: &[String]) -> Result<()> {
        for name in names {
            match self.remove(ft, name) {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Fault-injection hook: leaves behind exactly what a [`Backend::save`] of
    /// `data` interrupted by a crash could leave (for the local backend, a
    /// temporary file beside the final path holding `data`), without ever
    /// making it visible under its final name.
    ///
    /// The default does nothing, which is correct for stores whose uploads are
    /// atomic (an interrupted S3 PUT leaves nothing). Only used by
    /// [`FaultyBackend`] and by tests.
    fn simulate_interrupted_save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
        let _ = (ft, name, data);
        Ok(())
    }

    /// Temporary files of saves that never finished (the local backend's `.tmp-PID-…` files).
    /// The default is none, which is right for stores whose uploads are atomic.
    fn list_temporary(&self) -> Result<Vec<TemporaryFile>> {
        Ok(Vec::new())
    }

    /// Removes a temporary file named by [`Backend::list_temporary`]; a missing one is not an
    /// error (another prune may have removed it).
    fn remove_temporary(&self, name: &str) -> Result<()> {
        let _ = name;
        Ok(())
    }
    /// Creates object `name` of type `ft` empty, to be written by appending (see [`Appender`]),
    /// or `None` where the store cannot append (object stores: the caller saves whole objects
    /// instead, which is the default). The new object's name is durable when this returns; an
    /// object of that name already there is an [`BackendError::AlreadyExists`] error.
    ///
    /// Unlike [`Backend::save`], readers may list and read the object while it is appended to,
    /// and after a crash it may end in a torn append: only use it for objects whose readers
    /// tell a torn tail apart (framed, authenticated records).
    fn appender(&self, ft: FileType, name: &str) -> Result<Option<Box<dyn Appender>>> {
        let _ = (ft, name);
        Ok(None)
    }

    /// Objects of type `ft` that other users of the machine can read, with their Unix mode (the
    /// local backend: `keys/` files a local user could copy for an offline password attack).
    /// The default is none: other stores have no local users.
    fn readable_by_others(&self, ft: FileType) -> Result<Vec<(String, u32)>> {
        let _ = ft;
        Ok(Vec::new())
    }
}

macro_rules! delegate_backend {
    ($ty:ty) => {
        impl<T: Backend + ?Sized> Backend for $ty {
            fn location(&self) -> String {
                (**self).location()
            }
            fn create(&self) -> Result<()> {
                (**self).create()
            }
            fn has_config(&self) -> Result<bool> {
                (**self).has_config()
            }
            fn save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
                (**self).save(ft, name, data)
            }
            fn save_releasing(
                &self,
                ft: FileType,
                name: &str,
                data: Vec<u8>,
                release: &mut dyn FnMut(Vec<u8>),
            ) -> std::result::Result<(), crate::Unsaved> {
                (**self).save_releasing(ft, name, data, release)
            }
            fn load(&self, ft: FileType, name: &str) -> Result<Vec<u8>> {
                (**self).load(ft, name)
            }
            fn load_range(&self, ft: FileType, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
                (**self).load_range(ft, name, offset, length)
            }
            fn size(&self, ft: FileType, name: &str) -> Result<u64> {
                (**self).size(ft, name)
            }
            fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
                (**self).list(ft)
            }
            fn list_prefix(&self, ft: FileType, prefix: &str) -> Result<Vec<(String, u64)>> {
                (**self).list_prefix(ft, prefix)
            }
            fn remove(&self, ft: FileType, name: &str) -> Result<()> {
                (**self).remove(ft, name)
            }
            fn remove_many(&self, ft: FileType, names: &[String]) -> Result<()> {
                (**self).remove_many(ft, names)
            }
            fn simulate_interrupted_save(&self, ft: FileType, name: &str, data: &[u8]) -> Result<()> {
                (**self).simulate_interrupted_save(ft, name, data)
            }
            fn list_temporary(&self) -> Result<Vec<TemporaryFile>> {
                (**self).list_temporary()
            }
            fn remove_temporary(&self, name: &str) -> Result<()> {
                (**self).remove_temporary(name)
            }
            fn readable_by_others(&self, ft: FileType) -> Result<Vec<(String, u32)>> {
                (**self).readable_by_others(ft)
            }
            fn appender(&self, ft: FileType, name: &str) -> Result<Option<Box<dyn Appender>>> {
                (**self).appender(ft, name)
            }
        }
    };
}

/// The `lifeboat/` objects among `keys` (paths from the repository's root, as an object store
/// lists a folder) whose names begin with `prefix`, named as [`Backend::list`] names them and
/// sorted: an object store's [`Backend::list_prefix`].
pub(crate) fn lifeboat_named(keys: Vec<(String, u64)>, prefix: &str) -> Vec<(String, u64)> {
    let named = keys
        .into_iter()
        .filter_map(|(path, size)| Some((path.strip_prefix("lifeboat/")?.to_owned(), size)))
        .filter(|(name, _)| FileType::Lifeboat.validate_name(name).is_ok())
        .collect();
    starting_with(named, prefix)
}

/// The `(name, size)` pairs of `listed` whose names begin with `prefix`, sorted: every
/// [`Backend::list_prefix`] ends here.
pub(crate) fn starting_with(mut listed: Vec<(String, u64)>, prefix: &str) -> Vec<(String, u64)> {
    listed.retain(|(name, _)| name.starts_with(prefix));
    listed.sort();
    listed
}

/// A [`Backend::save_releasing`] that failed: the error, and the buffer when it was not
/// released yet.
pub type Unsaved = Box<(BackendError, Option<Vec<u8>>)>;

/// An object being written by appending, from [`Backend::appender`].
pub trait Appender: Send {
    /// Appends `data`; durable when this returns (one `fdatasync` for the local backend). After
    /// an error the object's tail is unknown: append no more.
    fn append(&mut self, data: &[u8]) -> Result<()>;

    /// Bytes appended so far.
    fn len(&self) -> u64;

    /// Whether nothing was appended yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends the appending: the object is renamed to `name` (same type), atomically and durably,
    /// replacing an object of that name as [`Backend::save`] does.
    fn finish(self: Box<Self>, name: &str) -> Result<()>;
}

delegate_backend!(Arc<T>);
delegate_backend!(Box<T>);
delegate_backend!(&T);

/// The kind of store a repository URL names: `s3`, `rest`, `sftp`, `azure`, `gs`, or `local`
/// for a directory (`DIR`, `local:DIR`, `file:///DIR`).
pub fn url_scheme(url: &str) -> &'static str {
    for scheme in ["s3", "rest", "sftp", "azure", "gs"] {
        if url.strip_prefix(scheme).is_some_and(|r| r.starts_with(':')) {
            return scheme;
        }
    }
    "local"
}

/// Whether a repository URL names a remote store rather than a directory.
pub fn is_remote_url(url: &str) -> bool {
    url_scheme(url) != "local"
}
