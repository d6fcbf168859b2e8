//! Reading what the controller records outside the registry (DESIGN.md §4): events
//! (`<prefix>/events/<kind>/<name>/<time>`) and stack history
//! (`<prefix>/history/stacks/<stack>/<revision>`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::api::Kind;
use crate::store::{Store, StoreError};

/// One event about an object.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Event {
    /// `Normal` or `Warning`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// CamelCase reason.
    #[serde(default)]
    pub reason: String,
    /// What happened.
    #[serde(default)]
    pub message: String,
    /// When, RFC 3339.
    #[serde(default)]
    pub time: String,
    /// How many times it happened.
    #[serde(default = "one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

/// One recorded set of Service specs a Stack was Ready with.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct HistoryRecord {
    /// The Stack.
    pub stack: String,
    /// The revision (the etcd revision at which the set was seen Ready).
    pub revision: i64,
    /// When, RFC 3339.
    #[serde(default)]
    pub time: String,
    /// Each Service's spec as stored; `null` when it came from the default catalog only.
    #[serde(default)]
    pub services: BTreeMap<String, Value>,
}

/// The events of an object, oldest first (keys sort by time); unreadable ones are skipped.
pub async fn events(store: &Store, kind: Kind, name: &str) -> Result<Vec<Event>, StoreError> {
    let prefix = format!("{}/events/{}/{}/", store.prefix(), kind.singular(), name);
    let (entries, _) = store.kv().range(&prefix).await?;
    Ok(entries
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect())
}

/// The history of a stack, oldest first; unreadable records are skipped.
pub async fn history(store: &Store, stack: &str) -> Result<Vec<HistoryRecord>, StoreError> {
    let prefix = format!("{}/history/stacks/{}/", store.prefix(), stack);
    let (entries, _) = store.kv().range(&prefix).await?;
    let mut records: Vec<HistoryRecord> = entries
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect();
    records.sort_by_key(|r| r.revision);
    Ok(records)
}
