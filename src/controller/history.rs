//! Stack history (DESIGN.md §4): the Service specs a Stack was Ready with, so a failed
//! update can go back to the last good set (`kargo rollout undo`, `rollback: auto`).
//!
//! Key `<prefix>/history/stacks/<stack>/<revision, 20 digits>`; value
//! `{"stack", "revision", "time", "services": {name: spec as stored | null}}`.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{Fence, Precondition, Store, StoreError, TxnResult};

/// Records kept per stack; older ones are deleted.
const KEEP: usize = 10;

/// One recorded set of specs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// The Stack.
    pub stack: String,
    /// The etcd revision at which the set was seen Ready.
    pub revision: i64,
    /// When, RFC 3339.
    pub time: String,
    /// Each Service's spec as stored (`null`: the service came from the default catalog only).
    pub services: BTreeMap<String, Value>,
}

fn prefix(store: &Store, stack: &str) -> String {
    format!("{}/history/stacks/{}/", store.prefix(), stack)
}

/// The records of a stack, oldest first.
pub async fn records(store: &Store, stack: &str) -> Result<Vec<HistoryRecord>, StoreError> {
    let (entries, _) = store.kv().range(&prefix(store, stack)).await?;
    Ok(entries
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect())
}

/// Records `services` as the stack's last Ready set, unless it equals the latest record.
/// Returns the new record's revision when one was written.
pub async fn record_ready(
    store: &Store,
    stack: &str,
    services: BTreeMap<String, Value>,
    revision: i64,
    fence: Option<&Fence>,
) -> Result<Option<i64>, StoreError> {
    let existing = records(store, stack).await?;
    if existing.last().map(|r| &r.services) == Some(&services) {
        return Ok(None);
    }
    let record = HistoryRecord {
        stack: stack.to_string(),
        revision,
        time: Utc::now().to_rfc3339(),
        services,
    };
    let key = format!("{}{:020}", prefix(store, stack), revision);
    let bytes = serde_json::to_vec(&record).unwrap_or_default();
    match store
        .kv()
        .put(&key, bytes, Precondition::Any, fence)
        .await?
    {
        TxnResult::Fenced => return Err(StoreError::Fenced),
        TxnResult::Written(_) | TxnResult::PreconditionFailed => {}
    }
    if existing.len() + 1 > KEEP {
        let (entries, _) = store.kv().range(&prefix(store, stack)).await?;
        for e in entries.iter().take(entries.len().saturating_sub(KEEP)) {
            store.kv().delete(&e.key, Precondition::Any, fence).await?;
        }
    }
    Ok(Some(revision))
}
