//! The key-value seam under the object store: the handful of etcd operations kargo uses.
//!
//! Object semantics (uid, generation, finalizers) live once in [`super::ObjectStore`];
//! backends only move bytes with compares, so etcd and the in-memory store cannot disagree.

use async_trait::async_trait;
use futures::stream::BoxStream;

/// One key with its value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    /// The full key.
    pub key: String,
    /// The stored bytes.
    pub value: Vec<u8>,
    /// Revision at which the key was created.
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
}

/// What must hold of the key for a write to happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Write whatever is there.
    Any,
    /// The key must not exist (create).
    Absent,
    /// The key's mod_revision must be this (compare-and-swap).
    ModRevision(i64),
}

/// A compare added to a write's transaction: the writer's leadership key must be the one it created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The leader key.
    pub key: String,
    /// The create_revision the writer's leader key had when it won.
    pub create_revision: i64,
}

/// The result of a conditional write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnResult {
    /// Written; the store's revision after the write.
    Written(i64),
    /// The precondition on the key did not hold.
    PreconditionFailed,
    /// The fence did not hold: the writer is no longer the leader.
    Fenced,
}

/// A change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// A key was written.
    Put(KvEntry),
    /// A key was deleted at this revision.
    Delete {
        /// The key.
        key: String,
        /// Revision of the deletion.
        mod_revision: i64,
    },
    /// The watch's start revision was compacted away: the watcher must list again.
    Compacted(i64),
}

/// Failures of the key-value backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KvError {
    /// The store cannot be reached (retryable).
    #[error("etcd at {endpoints} is unreachable: {message}")]
    Unavailable {
        /// The endpoints tried.
        endpoints: String,
        /// What failed.
        message: String,
    },
    /// The store refused the request (e.g. permission denied, request too large).
    #[error("etcd refused the request: {0}")]
    Rejected(String),
}

/// A watch's stream of changes; it ends when the connection is lost.
pub type KvWatch = BoxStream<'static, Result<KvEvent, KvError>>;

/// The operations kargo needs from etcd.
#[async_trait]
pub trait Kv: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError>;
    /// Reads every key under a prefix, sorted by key, with the store revision of the read.
    async fn range(&self, prefix: &str) -> Result<(Vec<KvEntry>, i64), KvError>;
    /// Writes a key if the precondition and the fence hold, in one transaction.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
        fence: Option<&Fence>,
    ) -> Result<TxnResult, KvError>;
    /// Writes a key that expires after `ttl_seconds` (on a lease), if the fence holds.
    async fn put_with_ttl(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl_seconds: i64,
        precondition: Precondition,
        fence: Option<&Fence>,
    ) -> Result<TxnResult, KvError>;
    /// Deletes a key if the precondition and the fence hold, in one transaction.
    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
        fence: Option<&Fence>,
    ) -> Result<TxnResult, KvError>;
    /// Watches a prefix from a revision (inclusive).
    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<KvWatch, KvError>;
}
