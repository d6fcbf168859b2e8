//! The shared object cache: the typed [`Snapshot`] the etcd watch keeps current, so a
//! reconcile reads memory instead of listing (and re-typing, re-checking) every object.
//!
//! Only the watch task writes it. It is `None` until the first list and after a lost
//! watch, and reconciles then read etcd directly; removals are confirmed on a fresh read
//! whatever the cache says (see `Reconciler::confirm_removals`), so a lagging cache can
//! delay work but never remove on stale word.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::store::ObjectList;

use crate::plan::Snapshot;

/// A typed snapshot and the store revision it reflects.
type Versioned = Option<(Arc<Snapshot>, i64)>;

/// The watch's view of the registry, shared by the workers.
#[derive(Clone, Default)]
pub struct SnapshotCache {
    state: Arc<RwLock<Versioned>>,
    configured: Arc<AtomicBool>,
}

impl SnapshotCache {
    /// The snapshot and the revision it reflects, when synced.
    pub fn current(&self) -> Option<(Arc<Snapshot>, i64)> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(s, r)| (s.clone(), *r))
    }

    /// Replaces everything with a fresh list.
    pub fn reset(&self, list: &ObjectList) {
        let snapshot = Snapshot::from_list(list);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) =
            Some((Arc::new(snapshot), list.revision));
    }

    /// Marks the cache as not synced (a lost watch): reconciles read etcd until the relist.
    pub fn invalidate(&self) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Applies one change seen by the watch, at `revision`.
    pub fn update(&self, revision: i64, change: impl FnOnce(&mut Snapshot)) {
        let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some((snapshot, rev)) = guard.as_mut() {
            // Copies only when a reconcile still holds the previous version.
            change(Arc::make_mut(snapshot));
            *rev = (*rev).max(revision);
        }
    }

    /// Whether the installation is known to have been configured (a fact that never
    /// reverts, so it is remembered once seen).
    pub fn configured(&self) -> bool {
        self.configured.load(Ordering::Relaxed)
    }

    /// Remembers that the installation has been configured.
    pub fn set_configured(&self) {
        self.configured.store(true, Ordering::Relaxed);
    }
}
