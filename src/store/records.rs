//! What the controller records outside the registry, in one place: the key layouts, the
//! record types and their reads and writes. Events live at
//! `<prefix>/events/<kind>/<name>/<time>` (on a lease), stack history at
//! `<prefix>/history/stacks/<stack>/<revision, 20 digits>`, one record per rollout revision
//! of the Stack that became Ready (a revision that never did has none).

use std::collections::BTreeMap;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Fence, Precondition, Store, StoreError, TxnResult};
use crate::api::Kind;

/// History records kept per stack; older ones are deleted.
const HISTORY_KEEP: usize = 10;

/// One event about an object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// When, RFC 3339 with nanoseconds (also the last part of the key).
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// The Stack.
    pub stack: String,
    /// The Stack's rollout revision (`status.rolloutRevision`) that was Ready with this set.
    /// Records written before rollout revisions were counted hold an etcd revision.
    pub revision: i64,
    /// When, RFC 3339.
    #[serde(default)]
    pub time: String,
    /// Each Service's spec as stored; `null` when it came from the default catalog only.
    #[serde(default)]
    pub services: BTreeMap<String, Value>,
}

impl Store {
    /// Where the events of one object live.
    pub fn events_prefix(&self, kind: Kind, name: &str) -> String {
        format!("{}/events/{}/{}/", self.prefix(), kind.singular(), name)
    }

    /// Where the history of one stack lives.
    pub fn history_prefix(&self, stack: &str) -> String {
        format!("{}/history/stacks/{}/", self.prefix(), stack)
    }

    /// Writes one event on a lease of `ttl_seconds` (fenced like every leader write).
    pub async fn put_event(
        &self,
        kind: Kind,
        name: &str,
        event: &Event,
        ttl_seconds: i64,
        fence: Option<&Fence>,
    ) -> Result<(), StoreError> {
        let key = format!("{}{}", self.events_prefix(kind, name), event.time);
        let bytes = serde_json::to_vec(event).unwrap_or_default();
        match self
            .kv()
            .put_with_ttl(&key, bytes, ttl_seconds, Precondition::Any, fence)
            .await?
        {
            TxnResult::Fenced => Err(StoreError::Fenced),
            TxnResult::Written(_) | TxnResult::PreconditionFailed => Ok(()),
        }
    }

    /// The events of an object, oldest first (keys sort by time); unreadable ones are skipped.
    pub async fn events(&self, kind: Kind, name: &str) -> Result<Vec<Event>, StoreError> {
        let (entries, _) = self.kv().range(&self.events_prefix(kind, name)).await?;
        Ok(entries
            .iter()
            .filter_map(|e| serde_json::from_slice(&e.value).ok())
            .collect())
    }

    /// The history of a stack, oldest first; unreadable records are skipped.
    pub async fn history(&self, stack: &str) -> Result<Vec<HistoryRecord>, StoreError> {
        Ok(self
            .history_entries(stack)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// The history records with their keys, oldest first. By time, then revision: records
    /// numbered by etcd revisions (before rollout revisions) are older than the first new one.
    async fn history_entries(
        &self,
        stack: &str,
    ) -> Result<Vec<(String, HistoryRecord)>, StoreError> {
        let (entries, _) = self.kv().range(&self.history_prefix(stack)).await?;
        let mut records: Vec<(String, HistoryRecord)> = entries
            .iter()
            .filter_map(|e| Some((e.key.clone(), serde_json::from_slice(&e.value).ok()?)))
            .collect();
        records.sort_by_cached_key(|(_, r)| {
            let time = chrono::DateTime::parse_from_rfc3339(&r.time).ok();
            (time, r.revision)
        });
        Ok(records)
    }

    /// Records `services` as the set the stack was Ready with at rollout `revision`, unless
    /// the latest record is that one already (a restart is a revision of its own,
    /// with the same specs); drops records of an earlier Stack of the same name and keeps
    /// the newest [`HISTORY_KEEP`]. Returns the revision when a record was written.
    pub async fn record_ready(
        &self,
        stack: &str,
        services: BTreeMap<String, Value>,
        revision: i64,
        fence: Option<&Fence>,
    ) -> Result<Option<i64>, StoreError> {
        let existing = self.history_entries(stack).await?;
        if existing
            .last()
            .is_some_and(|(_, r)| r.revision == revision && r.services == services)
        {
            return Ok(None);
        }
        let record = HistoryRecord {
            stack: stack.to_string(),
            revision,
            time: Utc::now().to_rfc3339(),
            services,
        };
        let key = format!("{}{:020}", self.history_prefix(stack), revision);
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        if let TxnResult::Fenced = self.kv().put(&key, bytes, Precondition::Any, fence).await? {
            return Err(StoreError::Fenced);
        }
        // Revisions only grow while a Stack lives: a record numbered at or above the new one
        // is of an earlier Stack of that name, or numbered by etcd revision before rollout
        // revisions were counted. Those go, then the oldest beyond what is kept.
        let (stale, kept): (Vec<_>, Vec<_>) = existing
            .iter()
            .filter(|(k, _)| *k != key)
            .partition(|(_, r)| r.revision >= revision);
        let excess = (kept.len() + 1).saturating_sub(HISTORY_KEEP);
        for (old_key, _) in stale.into_iter().chain(kept.into_iter().take(excess)) {
            self.kv().delete(old_key, Precondition::Any, fence).await?;
        }
        Ok(Some(revision))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn specs(image: &str) -> BTreeMap<String, Value> {
        BTreeMap::from([("web".to_string(), json!({ "image": image }))])
    }

    async fn revisions(store: &Store) -> Vec<i64> {
        let records = store.history("apps").await.expect("history");
        records.iter().map(|r| r.revision).collect()
    }

    #[tokio::test]
    async fn each_rollout_revision_is_recorded_once_and_an_earlier_stacks_records_go() {
        let store = Store::in_memory();
        let put = |services, revision| {
            let store = store.clone();
            async move {
                store
                    .record_ready("apps", services, revision, None)
                    .await
                    .expect("record")
            }
        };
        // What an older kargo recorded, numbered by etcd revision.
        assert_eq!(put(specs("web:0.9"), 5292).await, Some(5292));
        assert_eq!(put(specs("web:1.0"), 1).await, Some(1));
        assert_eq!(
            revisions(&store).await,
            [1],
            "the etcd-numbered record goes"
        );
        // Seen Ready again at the same revision: nothing written.
        assert_eq!(put(specs("web:1.0"), 1).await, None);
        // A restart: same specs, a revision of its own.
        assert_eq!(put(specs("web:1.0"), 2).await, Some(2));
        assert_eq!(put(specs("web:1.1"), 4).await, Some(4));
        assert_eq!(revisions(&store).await, [1, 2, 4]);
        // The Stack deleted and created again counts from 1: the old life's records go.
        assert_eq!(put(specs("web:2.0"), 1).await, Some(1));
        assert_eq!(revisions(&store).await, [1]);
        for r in 2..=12 {
            put(specs(&format!("web:{r}")), r).await;
        }
        assert_eq!(
            revisions(&store).await,
            (3..=12).collect::<Vec<_>>(),
            "the newest ten are kept"
        );
    }
}
