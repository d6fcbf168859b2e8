//! The store's contract against a real etcd (the same checks the in-memory store passes).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::etcd_cluster::EtcdCluster;
use common::store_conformance as conformance;
use kargo::api::{DynamicObject, Kind};
use kargo::store::{EtcdConfig, Store};

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

/// A list whose revision etcd compacts away between two pages starts over and is still
/// whole: lists run back to back for two seconds while etcd compacts every 300 ms. On an
/// etcd of its own (client port 24320): compaction is global.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_survives_compaction_while_paging() {
    let cluster = EtcdCluster::start(1, 24320);
    let endpoints: Vec<String> = vec![cluster.endpoints()];
    let store = Store::connect(&EtcdConfig::new(endpoints.clone()), "/kargo-test-paging")
        .await
        .expect("the test's own etcd");
    let pad = "x".repeat(100 * 1024);
    for i in 0..60 {
        let spec = serde_json::json!({"image": "a", "env": {"PAD": pad}});
        store
            .create(
                &DynamicObject::new(Kind::Service, &format!("s{i:02}"), spec),
                None,
            )
            .await
            .expect("create");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let compactor = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut client = etcd_client::Client::connect(&endpoints, None)
                .await
                .expect("compactor client");
            // Every 300 ms: far apart enough that a list started again completes.
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                let put = client.put("/elsewhere/tick", "x", None).await.expect("put");
                let revision = put.header().map(|h| h.revision()).unwrap_or_default();
                client.compact(revision, None).await.expect("compact");
            }
        })
    };
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(2) {
        let list = store.list_all().await.expect("a list while etcd compacts");
        assert_eq!(list.items.len(), 60);
    }
    stop.store(true, Ordering::Relaxed);
    compactor.await.expect("compactor");
}
