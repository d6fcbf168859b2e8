//! A watch whose start revision was compacted away reports `Compacted` (etcd sends a
//! canceled response, not an error), which tells the controller to relist. In its own
//! test binary: compaction is global to etcd and must not race other tests' watches.

mod common;

use std::time::Duration;

use futures::StreamExt;
use kargo::api::{DynamicObject, Kind};
use kargo::store::WatchEvent;

#[tokio::test]
async fn a_compacted_start_revision_is_reported_not_lost() {
    let store = common::etcd_store("/kargo-test-compaction").await;
    store
        .create(
            &DynamicObject::new(Kind::Service, "a", serde_json::json!({})),
            None,
        )
        .await
        .expect("create");
    let old = store.list(Kind::Service).await.expect("list").revision;
    for i in 0..3 {
        store
            .create(
                &DynamicObject::new(Kind::Service, &format!("b{i}"), serde_json::json!({})),
                None,
            )
            .await
            .expect("create");
    }
    let now = store.list(Kind::Service).await.expect("list").revision;
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &common::etcd_endpoints().join(","),
            "compact",
            &now.to_string(),
        ])
        .output()
        .expect("etcdctl (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut watch = store.watch(old + 1).await.expect("watch");
    let first = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("an answer in time")
        .expect("an event")
        .expect("not an error");
    assert!(
        matches!(first, WatchEvent::Compacted(r) if r >= now),
        "{first:?}"
    );

    // Relisting and watching from the new revision works.
    let list = store.list_all().await.expect("relist");
    assert_eq!(list.items.len(), 4);
    let mut watch = store.watch(list.revision + 1).await.expect("watch again");
    store
        .create(
            &DynamicObject::new(Kind::Service, "c", serde_json::json!({})),
            None,
        )
        .await
        .expect("create");
    let next = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("in time")
        .expect("event")
        .expect("ok");
    assert!(matches!(next, WatchEvent::Applied(o) if o.metadata.name == "c"));
    common::wipe_prefix(&store).await;
}
