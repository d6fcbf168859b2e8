//! Keeping kargo objects in etcd (docs/design.md, "Storage in etcd").
//!
//! [`Store`] holds the object semantics — uid, generation bumped only by spec changes,
//! compare-and-swap on the resourceVersion, finalizers, status writes apart — over a
//! [`Kv`] backend: [`EtcdKv`] in production, [`MemoryKv`] for unit tests of logic.
//! Every write is one transaction with a compare, and may carry a leadership [`Fence`].

mod apply;
mod applyset;
mod election;
mod etcd;
mod kv;
mod memory;
mod patch;
mod records;
mod rollback;
mod state;

use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::api::{DynamicObject, Kind};

pub use apply::{Applied, ApplyResult, PreparedApply, REDACTED, redact_spec};
pub use applyset::{ApplySet, ObjectRef};
pub use election::{Deposer, Election, Leadership};
pub use etcd::{EtcdConfig, EtcdKv, EtcdTls};
pub use kv::{Fence, Kv, KvEntry, KvError, KvEvent, KvWatch, Precondition, TxnResult};
pub use memory::MemoryKv;
pub use patch::Patch;
pub use records::{Event, HistoryRecord};
pub use rollback::{RollbackBy, RollbackStep, roll_back, same_spec};

/// The default key prefix of an installation.
pub const DEFAULT_PREFIX: &str = "/kargo";

/// How many times a read-modify-write is retried on a concurrent change before giving up.
const MODIFY_ATTEMPTS: usize = 8;

/// Failures of object storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (retryable when unavailable).
    #[error(transparent)]
    Kv(#[from] KvError),
    /// A create found the name taken.
    #[error("{kind} {name:?} already exists")]
    AlreadyExists {
        /// The kind.
        kind: Kind,
        /// The name.
        name: String,
    },
    /// No object of that kind and name.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// The kind.
        kind: Kind,
        /// The name.
        name: String,
    },
    /// The object changed since the caller read it; nothing was written.
    #[error(
        "{kind} {name:?} was changed by someone else since it was read (resourceVersion {expected} is stale); re-read it and try again"
    )]
    Conflict {
        /// The kind.
        kind: Kind,
        /// The name.
        name: String,
        /// The resourceVersion the caller had.
        expected: String,
    },
    /// The writer's leadership fence did not hold; nothing was written.
    #[error("write refused: this controller is no longer the leader")]
    Fenced,
    /// An update without the resourceVersion it must compare against.
    #[error("{kind} {name:?} has no resourceVersion: read the object before updating it")]
    MissingResourceVersion {
        /// The kind.
        kind: Kind,
        /// The name.
        name: String,
    },
    /// An apply found that someone else changed fields it writes since it read the
    /// object; nothing was written (re-running the apply writes over their change).
    #[error(
        "{kind} {name:?}: {} changed by someone else while this apply ran; nothing was written (run it again to apply over their change)",
        fields.join(", ")
    )]
    ApplyConflict {
        /// The kind.
        kind: Kind,
        /// The name.
        name: String,
        /// The fields changed on both sides, dotted (`spec.image`).
        fields: Vec<String>,
    },
    /// Another apply of the same apply set wrote its membership meanwhile.
    #[error("apply set {name:?} was written by another apply meanwhile; run the apply again")]
    ApplySetConflict {
        /// The apply set.
        name: String,
    },
    /// The object is being deleted (it has a deletionTimestamp); it cannot be changed.
    #[error("{kind} {name:?} is being deleted; wait until it is gone, then apply again")]
    BeingDeleted {
        /// The kind.
        kind: Kind,
        /// The name.
        name: String,
    },
    /// What was asked to be written is not acceptable; nothing was written.
    #[error("{kind} {name:?}: {message}")]
    Invalid {
        /// The kind.
        kind: Kind,
        /// The name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A key under the registry holds something that is not a kargo object.
    #[error("the value at {key} is not a kargo object: {message}")]
    Corrupt {
        /// The etcd key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl StoreError {
    /// True when trying again later may succeed (etcd unreachable, or a race).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Kv(KvError::Unavailable { .. }) | StoreError::Conflict { .. }
        )
    }
}

/// The outcome of a write.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// The object as stored now (with its new resourceVersion), or as it was if unchanged.
    pub object: DynamicObject,
    /// False when the bytes equalled what was stored, so nothing was written.
    pub changed: bool,
}

/// The outcome of a delete.
#[derive(Clone, Debug, PartialEq)]
pub enum Deleted {
    /// The object is gone.
    Gone,
    /// The object has finalizers: it is marked with a deletionTimestamp and stays until they are removed.
    Finalizing(Box<DynamicObject>),
}

/// A change to an object, as the watch reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// Created or updated.
    Applied(Box<DynamicObject>),
    /// A key under the registry was written with a value that is not a valid kargo
    /// object (written without the CLI); the previous object at that key, if any, is gone.
    Invalid(InvalidEntry),
    /// Removed from the store.
    Deleted {
        /// The kind.
        kind: Kind,
        /// The name.
        name: String,
        /// The revision of the deletion.
        revision: i64,
    },
    /// The watch fell behind compaction: drop caches, list and watch again.
    Compacted(i64),
}

/// Objects of one or all kinds, as of one store revision.
#[derive(Clone, Debug, Default)]
pub struct ObjectList {
    /// The objects, sorted by kind then name.
    pub items: Vec<DynamicObject>,
    /// The store revision of the read; watch from `revision + 1` to miss nothing.
    pub revision: i64,
    /// Values under the registry that are not kargo objects: skipped, so one bad write
    /// made without the CLI never hides every other object.
    pub invalid: Vec<InvalidEntry>,
}

/// A value under the registry that does not decode as the object its key names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidEntry {
    /// The etcd key.
    pub key: String,
    /// The kind and name the key names, when it has the registry's shape.
    pub object: Option<(Kind, String)>,
    /// What is wrong with the value.
    pub message: String,
}

/// Kargo objects in a key-value backend, under one installation prefix.
#[derive(Clone)]
pub struct Store {
    kv: Arc<dyn Kv>,
    prefix: String,
}

impl Store {
    /// A store over any backend.
    pub fn new(kv: Arc<dyn Kv>, prefix: &str) -> Self {
        Store {
            kv,
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// Connects to etcd (failing fast when it is unreachable); the probe reads inside
    /// `prefix`, so an etcd role limited to the installation's keys is enough.
    pub async fn connect(config: &EtcdConfig, prefix: &str) -> Result<Self, StoreError> {
        let kv = EtcdKv::connect(config, prefix).await?;
        Ok(Store::new(Arc::new(kv), prefix))
    }

    /// A store in memory, for unit tests of logic.
    pub fn in_memory() -> Self {
        Store::new(Arc::new(MemoryKv::new()), DEFAULT_PREFIX)
    }

    /// The backend, for keys outside the registry (events, history, election).
    pub fn kv(&self) -> &Arc<dyn Kv> {
        &self.kv
    }

    /// The installation prefix, e.g. `/kargo`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where all objects live: `<prefix>/registry/kargo.dev/`.
    pub fn registry_prefix(&self) -> String {
        format!("{}/registry/kargo.dev/", self.prefix)
    }

    /// The key of one object.
    pub fn key(&self, kind: Kind, name: &str) -> String {
        format!("{}{}/{}", self.registry_prefix(), kind.plural(), name)
    }

    fn parse_key(&self, key: &str) -> Option<(Kind, String)> {
        let rest = key.strip_prefix(&self.registry_prefix())?;
        let (plural, name) = rest.split_once('/')?;
        let kind = Kind::ALL.into_iter().find(|k| k.plural() == plural)?;
        Some((kind, name.to_string()))
    }

    /// Turns a stored entry into an object, with its resourceVersion.
    fn decode(&self, entry: &KvEntry) -> Result<DynamicObject, StoreError> {
        let mut obj: DynamicObject =
            serde_json::from_slice(&entry.value).map_err(|e| StoreError::Corrupt {
                key: entry.key.clone(),
                message: e.to_string(),
            })?;
        obj.metadata.resource_version = Some(entry.mod_revision.to_string());
        // A value written without the CLI may sit under another object's key: it would
        // shadow or duplicate that object, so it counts as corrupt.
        if let Some((kind, name)) = self.parse_key(&entry.key)
            && (kind != obj.kind || name != obj.metadata.name)
        {
            return Err(StoreError::Corrupt {
                key: entry.key.clone(),
                message: format!(
                    "holds {} {:?}, not {kind} {name:?}",
                    obj.kind, obj.metadata.name
                ),
            });
        }
        Ok(obj)
    }

    /// Sets an undecodable entry aside with what its key names.
    fn invalid_entry(&self, key: &str, error: StoreError) -> InvalidEntry {
        let message = match error {
            StoreError::Corrupt { message, .. } => message,
            other => other.to_string(),
        };
        InvalidEntry {
            key: key.to_string(),
            object: self.parse_key(key),
            message,
        }
    }

    /// Canonical JSON: sorted keys, no resourceVersion (that is the etcd revision).
    fn encode(obj: &DynamicObject) -> Vec<u8> {
        let mut obj = obj.clone();
        obj.metadata.resource_version = None;
        // Serialising plain data (strings, maps, JSON values) cannot fail.
        serde_json::to_vec(&obj).unwrap_or_default()
    }

    async fn get_entry(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<(KvEntry, DynamicObject)>, StoreError> {
        match self.kv.get(&self.key(kind, name)).await? {
            Some(entry) => {
                let obj = self.decode(&entry)?;
                Ok(Some((entry, obj)))
            }
            None => Ok(None),
        }
    }

    /// Reads one object; `None` when it does not exist.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Option<DynamicObject>, StoreError> {
        Ok(self.get_entry(kind, name).await?.map(|(_, o)| o))
    }

    /// Lists the objects of one kind, sorted by name.
    pub async fn list(&self, kind: Kind) -> Result<ObjectList, StoreError> {
        let prefix = format!("{}{}/", self.registry_prefix(), kind.plural());
        self.list_prefix(&prefix).await
    }

    /// Lists the objects of every kind in one consistent read.
    pub async fn list_all(&self) -> Result<ObjectList, StoreError> {
        self.list_prefix(&self.registry_prefix()).await
    }

    async fn list_prefix(&self, prefix: &str) -> Result<ObjectList, StoreError> {
        let (entries, revision) = self.kv.range(prefix).await?;
        let mut items = Vec::with_capacity(entries.len());
        let mut invalid = Vec::new();
        for e in &entries {
            match self.decode(e) {
                Ok(o) => items.push(o),
                Err(err) => invalid.push(self.invalid_entry(&e.key, err)),
            }
        }
        items.sort_by(|a, b| (a.kind, &a.metadata.name).cmp(&(b.kind, &b.metadata.name)));
        Ok(ObjectList {
            items,
            revision,
            invalid,
        })
    }

    /// Creates an object; the store sets uid, generation 1 and creationTimestamp.
    ///
    /// Errors: [`StoreError::AlreadyExists`] when the name is taken; nothing is written then.
    pub async fn create(
        &self,
        object: &DynamicObject,
        fence: Option<&Fence>,
    ) -> Result<DynamicObject, StoreError> {
        let mut obj = object.clone();
        let meta = &mut obj.metadata;
        meta.uid = Some(uuid::Uuid::new_v4().to_string());
        meta.generation = Some(1);
        meta.creation_timestamp = Some(Utc::now());
        meta.deletion_timestamp = None;
        meta.resource_version = None;
        let key = self.key(obj.kind, &obj.metadata.name);
        match self
            .kv
            .put(&key, Self::encode(&obj), Precondition::Absent, fence)
            .await?
        {
            TxnResult::Written(rev) => {
                obj.metadata.resource_version = Some(rev.to_string());
                Ok(obj)
            }
            TxnResult::PreconditionFailed => {
                // A create sent again after "leader changed" may have landed the first
                // time: the key then holds the uid this create made up.
                match self.kv.get(&key).await? {
                    Some(entry) if stored_uid(&entry) == obj.metadata.uid => {
                        obj.metadata.resource_version = Some(entry.create_revision.to_string());
                        Ok(obj)
                    }
                    _ => Err(StoreError::AlreadyExists {
                        kind: obj.kind,
                        name: obj.metadata.name.clone(),
                    }),
                }
            }
            TxnResult::Fenced => Err(StoreError::Fenced),
        }
    }

    /// Whether a write refused by its compare had in fact landed on an earlier attempt
    /// (a request sent again after "leader changed"): the key holds exactly `bytes`, or
    /// is gone when `bytes` is `None` (a delete). Returns the key's revision then.
    async fn landed(&self, key: &str, bytes: Option<&[u8]>) -> Result<Option<i64>, StoreError> {
        Ok(match (self.kv.get(key).await?, bytes) {
            (Some(entry), Some(bytes)) if entry.value == bytes => Some(entry.mod_revision),
            (None, None) => Some(0),
            _ => None,
        })
    }

    /// Updates spec, labels, annotations and finalizers if the object still has the
    /// caller's resourceVersion. Status and store-owned metadata are kept as stored;
    /// generation is bumped only when the spec changes; identical bytes write nothing.
    /// Removing the last finalizer of an object being deleted deletes it.
    ///
    /// Errors: [`StoreError::Conflict`] when the object changed since it was read.
    pub async fn update(
        &self,
        object: &DynamicObject,
        fence: Option<&Fence>,
    ) -> Result<Written, StoreError> {
        let (kind, name) = (object.kind, object.metadata.name.clone());
        let expected = object.metadata.resource_version.clone().ok_or_else(|| {
            StoreError::MissingResourceVersion {
                kind,
                name: name.clone(),
            }
        })?;
        let conflict = || StoreError::Conflict {
            kind,
            name: name.clone(),
            expected: expected.clone(),
        };
        let Some((entry, stored)) = self.get_entry(kind, &name).await? else {
            return Err(StoreError::NotFound {
                kind,
                name: name.clone(),
            });
        };
        if entry.mod_revision.to_string() != expected {
            return Err(conflict());
        }
        let mut next = stored.clone();
        next.metadata.labels = object.metadata.labels.clone();
        next.metadata.annotations = object.metadata.annotations.clone();
        next.metadata.finalizers = object.metadata.finalizers.clone();
        if next.spec != object.spec {
            next.spec = object.spec.clone();
            next.metadata.generation = Some(stored.metadata.generation.unwrap_or(0) + 1);
        }
        self.write_next(&entry, stored, next, fence)
            .await?
            .ok_or_else(conflict)
    }

    /// Writes `next` over `entry` with compare-and-swap; `None` on a lost race.
    async fn write_next(
        &self,
        entry: &KvEntry,
        stored: DynamicObject,
        mut next: DynamicObject,
        fence: Option<&Fence>,
    ) -> Result<Option<Written>, StoreError> {
        let pre = Precondition::ModRevision(entry.mod_revision);
        if next.metadata.deletion_timestamp.is_some() && next.metadata.finalizers.is_empty() {
            let deleted = match self.kv.delete(&entry.key, pre, fence).await? {
                TxnResult::Written(_) => true,
                TxnResult::PreconditionFailed => self.landed(&entry.key, None).await?.is_some(),
                TxnResult::Fenced => return Err(StoreError::Fenced),
            };
            return Ok(deleted.then_some(Written {
                object: next,
                changed: true,
            }));
        }
        let bytes = Self::encode(&next);
        if bytes == entry.value {
            return Ok(Some(Written {
                object: stored,
                changed: false,
            }));
        }
        let revision = match self.kv.put(&entry.key, bytes.clone(), pre, fence).await? {
            TxnResult::Written(rev) => rev,
            TxnResult::PreconditionFailed => match self.landed(&entry.key, Some(&bytes)).await? {
                Some(rev) => rev,
                None => return Ok(None),
            },
            TxnResult::Fenced => return Err(StoreError::Fenced),
        };
        next.metadata.resource_version = Some(revision.to_string());
        Ok(Some(Written {
            object: next,
            changed: true,
        }))
    }

    /// Reads, changes and writes back an object, retrying when someone else wrote in
    /// between. `change` may touch status and finalizers; a spec change bumps generation.
    pub async fn modify(
        &self,
        kind: Kind,
        name: &str,
        fence: Option<&Fence>,
        mut change: impl FnMut(&mut DynamicObject) + Send,
    ) -> Result<Written, StoreError> {
        for _ in 0..MODIFY_ATTEMPTS {
            let Some((entry, stored)) = self.get_entry(kind, name).await? else {
                return Err(StoreError::NotFound {
                    kind,
                    name: name.to_string(),
                });
            };
            let mut next = stored.clone();
            change(&mut next);
            next.metadata.name = stored.metadata.name.clone();
            next.metadata.uid = stored.metadata.uid.clone();
            next.metadata.creation_timestamp = stored.metadata.creation_timestamp;
            next.metadata.deletion_timestamp = stored.metadata.deletion_timestamp;
            next.metadata.generation = if next.spec != stored.spec {
                Some(stored.metadata.generation.unwrap_or(0) + 1)
            } else {
                stored.metadata.generation
            };
            if let Some(written) = self.write_next(&entry, stored, next, fence).await? {
                return Ok(written);
            }
        }
        Err(StoreError::Conflict {
            kind,
            name: name.to_string(),
            expected: "latest".to_string(),
        })
    }

    /// Replaces the status and nothing else; never bumps generation; no write when equal.
    pub async fn update_status(
        &self,
        kind: Kind,
        name: &str,
        status: &Value,
        fence: Option<&Fence>,
    ) -> Result<Written, StoreError> {
        self.modify(kind, name, fence, |obj| obj.status = Some(status.clone()))
            .await
    }

    /// Deletes an object, or marks it with a deletionTimestamp when it has finalizers.
    /// With a resourceVersion, only if the object still has it.
    pub async fn delete(
        &self,
        kind: Kind,
        name: &str,
        resource_version: Option<&str>,
        fence: Option<&Fence>,
    ) -> Result<Deleted, StoreError> {
        let Some((entry, stored)) = self.get_entry(kind, name).await? else {
            return Err(StoreError::NotFound {
                kind,
                name: name.to_string(),
            });
        };
        if let Some(rv) = resource_version
            && entry.mod_revision.to_string() != rv
        {
            return Err(StoreError::Conflict {
                kind,
                name: name.to_string(),
                expected: rv.to_string(),
            });
        }
        let pre = Precondition::ModRevision(entry.mod_revision);
        let result = if stored.metadata.finalizers.is_empty() {
            let r = self.kv.delete(&entry.key, pre, fence).await?;
            if r == TxnResult::PreconditionFailed && self.landed(&entry.key, None).await?.is_some()
            {
                return Ok(Deleted::Gone);
            }
            r
        } else if stored.metadata.deletion_timestamp.is_some() {
            return Ok(Deleted::Finalizing(Box::new(stored)));
        } else {
            let mut next = stored.clone();
            next.metadata.deletion_timestamp = Some(Utc::now());
            let bytes = Self::encode(&next);
            let r = match self.kv.put(&entry.key, bytes.clone(), pre, fence).await? {
                TxnResult::PreconditionFailed => {
                    match self.landed(&entry.key, Some(&bytes)).await? {
                        Some(rev) => TxnResult::Written(rev),
                        None => TxnResult::PreconditionFailed,
                    }
                }
                other => other,
            };
            if let TxnResult::Written(rev) = r {
                next.metadata.resource_version = Some(rev.to_string());
                return Ok(Deleted::Finalizing(Box::new(next)));
            }
            r
        };
        match result {
            TxnResult::Written(_) => Ok(Deleted::Gone),
            TxnResult::PreconditionFailed => Err(StoreError::Conflict {
                kind,
                name: name.to_string(),
                expected: resource_version.unwrap_or("latest").to_string(),
            }),
            TxnResult::Fenced => Err(StoreError::Fenced),
        }
    }

    /// Watches every object from a revision (inclusive: pass a list's revision + 1).
    /// The stream ends when the connection is lost; the caller lists and watches again.
    pub async fn watch(
        &self,
        start_revision: i64,
    ) -> Result<BoxStream<'static, Result<WatchEvent, StoreError>>, StoreError> {
        let raw = self
            .kv
            .watch(&self.registry_prefix(), start_revision)
            .await?;
        let this = self.clone();
        Ok(raw
            .filter_map(move |ev| {
                let out = match ev {
                    Err(e) => Some(Err(StoreError::Kv(e))),
                    Ok(KvEvent::Compacted(r)) => Some(Ok(WatchEvent::Compacted(r))),
                    Ok(KvEvent::Put(entry)) => Some(Ok(match this.decode(&entry) {
                        Ok(o) => WatchEvent::Applied(Box::new(o)),
                        Err(e) => WatchEvent::Invalid(this.invalid_entry(&entry.key, e)),
                    })),
                    Ok(KvEvent::Delete { key, mod_revision }) => {
                        this.parse_key(&key).map(|(kind, name)| {
                            Ok(WatchEvent::Deleted {
                                kind,
                                name,
                                revision: mod_revision,
                            })
                        })
                    }
                };
                futures::future::ready(out)
            })
            .boxed())
    }
}

/// The uid stored in an entry, if it holds an object with one.
fn stored_uid(entry: &KvEntry) -> Option<String> {
    let value: Value = serde_json::from_slice(&entry.value).ok()?;
    Some(value.get("metadata")?.get("uid")?.as_str()?.to_string())
}

#[cfg(test)]
mod tests;
