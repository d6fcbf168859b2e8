//! An in-memory [`Kv`] for fast unit tests of logic; it keeps every event to replay watches.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::kv::{Fence, Kv, KvEntry, KvError, KvEvent, KvWatch, Precondition, TxnResult};

#[derive(Default)]
struct State {
    revision: i64,
    keys: BTreeMap<String, KvEntry>,
    log: Vec<(i64, KvEvent)>,
}

/// A revisioned map with etcd's compare semantics; not for production.
#[derive(Clone)]
pub struct MemoryKv {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<(i64, KvEvent)>,
}

impl Default for MemoryKv {
    fn default() -> Self {
        let (events, _) = broadcast::channel(4096);
        MemoryKv {
            state: Arc::default(),
            events,
        }
    }
}

impl MemoryKv {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-written (every
        // mutation is a single insert/remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(
        state: &State,
        key: &str,
        pre: Precondition,
        fence: Option<&Fence>,
    ) -> Option<TxnResult> {
        let current = state.keys.get(key);
        let ok = match pre {
            Precondition::Any => true,
            Precondition::Absent => current.is_none(),
            Precondition::ModRevision(r) => current.map(|e| e.mod_revision) == Some(r),
        };
        if let Some(f) = fence {
            let holder = state.keys.get(&f.key).map(|e| e.create_revision);
            if holder != Some(f.create_revision) {
                return Some(TxnResult::Fenced);
            }
        }
        (!ok).then_some(TxnResult::PreconditionFailed)
    }

    fn emit(&self, state: &mut State, event: KvEvent) {
        state.log.push((state.revision, event.clone()));
        // No receiver is fine: nobody is watching.
        let _ = self.events.send((state.revision, event));
    }
}

#[async_trait]
impl Kv for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        Ok(self.lock().keys.get(key).cloned())
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KvEntry>, i64), KvError> {
        let state = self.lock();
        let items = state
            .keys
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        Ok((items, state.revision))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: Precondition,
        fence: Option<&Fence>,
    ) -> Result<TxnResult, KvError> {
        let mut state = self.lock();
        if let Some(refused) = Self::check(&state, key, precondition, fence) {
            return Ok(refused);
        }
        state.revision += 1;
        let revision = state.revision;
        let create_revision = state
            .keys
            .get(key)
            .map(|e| e.create_revision)
            .unwrap_or(revision);
        let entry = KvEntry {
            key: key.to_string(),
            value,
            create_revision,
            mod_revision: revision,
        };
        state.keys.insert(key.to_string(), entry.clone());
        self.emit(&mut state, KvEvent::Put(entry));
        Ok(TxnResult::Written(revision))
    }

    async fn put_with_ttl(
        &self,
        key: &str,
        value: Vec<u8>,
        _ttl_seconds: i64,
        precondition: Precondition,
        fence: Option<&Fence>,
    ) -> Result<TxnResult, KvError> {
        // Unit tests never live long enough for expiry to matter.
        self.put(key, value, precondition, fence).await
    }

    async fn delete(
        &self,
        key: &str,
        precondition: Precondition,
        fence: Option<&Fence>,
    ) -> Result<TxnResult, KvError> {
        let mut state = self.lock();
        if let Some(refused) = Self::check(&state, key, precondition, fence) {
            return Ok(refused);
        }
        if state.keys.remove(key).is_some() {
            state.revision += 1;
            let mod_revision = state.revision;
            self.emit(
                &mut state,
                KvEvent::Delete {
                    key: key.to_string(),
                    mod_revision,
                },
            );
        }
        Ok(TxnResult::Written(state.revision))
    }

    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<KvWatch, KvError> {
        let prefix = prefix.to_string();
        let (backlog, rx, last) = {
            let state = self.lock();
            let backlog: Vec<KvEvent> = state
                .log
                .iter()
                .filter(|(rev, _)| *rev >= start_revision)
                .map(|(_, e)| e.clone())
                .collect();
            (backlog, self.events.subscribe(), state.revision)
        };
        let live = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(item) => return Some((item, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |(rev, _)| futures::future::ready(*rev > last))
        .map(|(_, e)| e);
        let matches = move |e: &KvEvent| match e {
            KvEvent::Put(entry) => entry.key.starts_with(&prefix),
            KvEvent::Delete { key, .. } => key.starts_with(&prefix),
            KvEvent::Compacted(_) => true,
        };
        Ok(futures::stream::iter(backlog)
            .chain(live)
            .filter(move |e| futures::future::ready(matches(e)))
            .map(Ok)
            .boxed())
    }
}
