//! The store's contract against a real etcd (the same checks the in-memory store passes).

mod common;

use common::store_conformance as conformance;

macro_rules! on_etcd {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let store = common::etcd_store(concat!("/kargo-test-store-", stringify!($name))).await;
            conformance::$name(&store).await;
            common::wipe_prefix(&store).await;
        }
    )*};
}

on_etcd!(
    create_sets_bookkeeping_and_refuses_duplicates,
    spec_is_kept_exactly_with_nulls,
    generation_follows_spec_only,
    stale_update_conflicts,
    finalizers_hold_deletion,
    fenced_writes_are_refused,
    watch_from_list_revision,
    large_list_is_whole_at_one_revision,
);

/// `etcdctl get` shows readable canonical JSON, without the resourceVersion.
#[tokio::test]
async fn stored_value_is_canonical_json() {
    let store = common::etcd_store("/kargo-test-store-canonical").await;
    let obj = kargo::api::DynamicObject::new(
        kargo::api::Kind::Service,
        "web",
        serde_json::json!({"image": "a", "env": {"B": "2", "A": null}}),
    );
    store.create(&obj, None).await.expect("create");
    let entry = store
        .kv()
        .get(&store.key(kargo::api::Kind::Service, "web"))
        .await
        .expect("get")
        .expect("stored");
    let text = String::from_utf8(entry.value).expect("utf-8");
    assert!(
        text.contains(r#""spec":{"env":{"A":null,"B":"2"},"image":"a"}"#),
        "{text}"
    );
    assert!(!text.contains("resourceVersion"), "{text}");
    common::wipe_prefix(&store).await;
}
