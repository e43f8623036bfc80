//! The store's error type. sled's own error is wrapped so it does not leak into the API.

use std::fmt;
use std::path::PathBuf;

/// Why a store operation failed. Every variant names the store directory, and the ones an
/// operator can act on say what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store directory could not be created.
    #[error("cannot create the store directory {path}: {source}")]
    CreateDir {
        /// The store directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another process (or another open [`Store`](super::Store) in this process) holds the lock.
    #[error("the store at {path} is locked by another process: is another rpcmesh running with this home?")]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// The store was written by a newer rpcmesh with a schema this build does not know.
    #[error(
        "the store at {path} has schema version {found}, but this rpcmesh only understands versions up to \
         {supported}: it was written by a newer rpcmesh. Upgrade rpcmesh (downgrading would lose data), or \
         point it at another home"
    )]
    NewerSchema {
        /// The store directory.
        path: PathBuf,
        /// The version on disk.
        found: u32,
        /// The newest version this build understands ([`SCHEMA_VERSION`](super::SCHEMA_VERSION)).
        supported: u32,
    },
    /// The data on disk is damaged (the storage engine's settings file or its data), or a record
    /// does not decode.
    #[error(
        "the store at {path} is damaged ({what}). Stop rpcmesh, move the directory aside \
         (mv {path} {path}.damaged; store.path names it) and start again: the daemon makes an empty store and \
         rebuilds its view of the mesh (peers, announcements, attestations) from its peers within a few \
         heartbeats. The evidence it kept and the cordons and filter labels it held are lost (other daemons \
         keep theirs)"
    )]
    Corrupt {
        /// The store directory.
        path: PathBuf,
        /// What was found damaged.
        what: String,
    },
    /// A value is over the encoding's size limit; nothing was written.
    #[error("refusing to store a {what} over {limit} bytes")]
    TooLarge {
        /// What kind of value.
        what: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The storage engine failed (I/O error, disk full, ...).
    #[error("store at {path}: {source}")]
    Backend {
        /// The store directory.
        path: PathBuf,
        /// The storage engine's error.
        source: BackendError,
    },
}

/// An error from the storage engine, kept opaque so callers do not depend on it.
pub struct BackendError(pub(super) sled::Error);

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
