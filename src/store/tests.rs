//! The store's contract, on the in-memory backend (the same checks run on etcd in tests/).

#[path = "../../tests/common/store_conformance.rs"]
mod conformance;

use super::Store;

macro_rules! on_memory {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            conformance::$name(&Store::in_memory()).await;
        }
    )*};
}

on_memory!(
    create_sets_bookkeeping_and_refuses_duplicates,
    spec_is_kept_exactly_with_nulls,
    generation_follows_spec_only,
    stale_update_conflicts,
    finalizers_hold_deletion,
    fenced_writes_are_refused,
    watch_from_list_revision,
    large_list_is_whole_at_one_revision,
);

/// A backend whose every write lands but answers as its retry would: etcd applied the
/// first attempt, its answer was lost ("leader changed"), and the attempt sent again
/// was refused by its compare.
struct AnswerLost(super::MemoryKv);

#[async_trait::async_trait]
impl super::Kv for AnswerLost {
    async fn get(&self, key: &str) -> Result<Option<super::KvEntry>, super::KvError> {
        self.0.get(key).await
    }
    async fn range(&self, prefix: &str) -> Result<(Vec<super::KvEntry>, i64), super::KvError> {
        self.0.range(prefix).await
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        precondition: super::Precondition,
        fence: Option<&super::Fence>,
    ) -> Result<super::TxnResult, super::KvError> {
        self.0.put(key, value.clone(), precondition, fence).await?;
        self.0.put(key, value, precondition, fence).await
    }
    async fn put_with_ttl(
        &self,
        key: &str,
        value: Vec<u8>,
        _ttl_seconds: i64,
        precondition: super::Precondition,
        fence: Option<&super::Fence>,
    ) -> Result<super::TxnResult, super::KvError> {
        self.put(key, value, precondition, fence).await
    }
    async fn delete(
        &self,
        key: &str,
        precondition: super::Precondition,
        fence: Option<&super::Fence>,
    ) -> Result<super::TxnResult, super::KvError> {
        self.0.delete(key, precondition, fence).await?;
        self.0.delete(key, precondition, fence).await
    }
    async fn watch(&self, prefix: &str, start: i64) -> Result<super::KvWatch, super::KvError> {
        self.0.watch(prefix, start).await
    }
}

#[tokio::test]
async fn a_write_that_landed_before_its_retry_is_reported_as_written() {
    use crate::api::{DynamicObject, Kind};
    use serde_json::json;

    let store = Store::new(
        std::sync::Arc::new(AnswerLost(super::MemoryKv::new())),
        super::DEFAULT_PREFIX,
    );
    let created = store
        .create(
            &DynamicObject::new(Kind::Service, "web", json!({"image": "a"})),
            None,
        )
        .await
        .expect("a create that landed is a create, not 'already exists'");
    let stored = store.get(Kind::Service, "web").await.expect("get");
    assert_eq!(
        stored.as_ref().map(|o| &o.metadata.uid),
        Some(&created.metadata.uid)
    );
    assert_eq!(
        stored.and_then(|o| o.metadata.resource_version),
        created.metadata.resource_version
    );

    // Someone else's object under the name is still "already exists".
    let again = store
        .create(
            &DynamicObject::new(Kind::Service, "web", json!({"image": "b"})),
            None,
        )
        .await;
    assert!(
        matches!(again, Err(super::StoreError::AlreadyExists { .. })),
        "{again:?}"
    );

    let mut next = created.clone();
    next.spec = json!({"image": "b"});
    next.metadata.finalizers = vec!["kargo.dev/swarm".into()];
    let written = store
        .update(&next, None)
        .await
        .expect("an update that landed is not a conflict");
    assert!(written.changed);
    let stored = store.get(Kind::Service, "web").await.expect("get");
    assert_eq!(
        stored.and_then(|o| o.metadata.resource_version),
        written.object.metadata.resource_version
    );

    let marked = store
        .delete(Kind::Service, "web", None, None)
        .await
        .expect("marking for deletion landed");
    assert!(
        matches!(marked, super::Deleted::Finalizing(_)),
        "{marked:?}"
    );
    store
        .modify(Kind::Service, "web", None, |o| {
            o.metadata.finalizers.clear()
        })
        .await
        .expect("the last finalizer's removal deletes, and that landed");
    assert_eq!(store.get(Kind::Service, "web").await.expect("get"), None);

    store
        .create(
            &DynamicObject::new(Kind::Service, "db", json!({"image": "a"})),
            None,
        )
        .await
        .expect("create db");
    let gone = store
        .delete(Kind::Service, "db", None, None)
        .await
        .expect("a delete that landed is gone, not a conflict");
    assert_eq!(gone, super::Deleted::Gone);
}
