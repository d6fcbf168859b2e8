//! Behaviour every Store backend must show; run against the in-memory store by unit tests
//! and against a real etcd by `tests/store_etcd.rs`.

use futures::StreamExt;
use kargo::api::{DynamicObject, Kind};
use kargo::store::{Deleted, Fence, Precondition, Store, StoreError, WatchEvent};
use serde_json::json;

fn service(name: &str, spec: serde_json::Value) -> DynamicObject {
    DynamicObject::new(Kind::Service, name, spec)
}

/// Create sets uid, generation 1 and timestamps; a second create is refused.
pub async fn create_sets_bookkeeping_and_refuses_duplicates(store: &Store) {
    let created = store
        .create(&service("web", json!({"image": "busybox"})), None)
        .await
        .expect("create");
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(created.metadata.resource_version.is_some());
    let again = store
        .create(&service("web", json!({"image": "other"})), None)
        .await;
    assert!(matches!(again, Err(StoreError::AlreadyExists { .. })));
    let read = store.get(Kind::Service, "web").await.expect("get");
    assert_eq!(read.map(|o| o.spec), Some(json!({"image": "busybox"})));
}

/// Explicit nulls in a spec survive the round trip (overlays delete with them).
pub async fn spec_is_kept_exactly_with_nulls(store: &Store) {
    let spec = json!({"image": null, "env": {"A": "1", "B": null}});
    store
        .create(&service("overlay", spec.clone()), None)
        .await
        .expect("create");
    let read = store.get(Kind::Service, "overlay").await.expect("get");
    assert_eq!(read.map(|o| o.spec), Some(spec));
}

/// Generation moves with the spec only; identical updates write nothing; status never bumps it.
pub async fn generation_follows_spec_only(store: &Store) {
    let created = store
        .create(&service("gen", json!({"image": "a"})), None)
        .await
        .expect("create");
    let mut labelled = created.clone();
    labelled.metadata.labels.insert("team".into(), "ops".into());
    let w = store.update(&labelled, None).await.expect("label update");
    assert!(w.changed);
    assert_eq!(w.object.metadata.generation, Some(1));

    let mut respec = w.object.clone();
    respec.spec = json!({"image": "b"});
    let w = store.update(&respec, None).await.expect("spec update");
    assert_eq!(w.object.metadata.generation, Some(2));

    let same = store.update(&w.object, None).await.expect("no-op update");
    assert!(!same.changed, "identical bytes must not be written");
    assert_eq!(
        same.object.metadata.resource_version,
        w.object.metadata.resource_version
    );

    let s = store
        .update_status(
            Kind::Service,
            "gen",
            &json!({"observedGeneration": 2}),
            None,
        )
        .await
        .expect("status");
    assert!(s.changed);
    assert_eq!(s.object.metadata.generation, Some(2));
    let again = store
        .update_status(
            Kind::Service,
            "gen",
            &json!({"observedGeneration": 2}),
            None,
        )
        .await
        .expect("status again");
    assert!(!again.changed, "an equal status must not be written");

    // A spec update keeps the status the controller wrote.
    let mut respec = again.object.clone();
    respec.spec = json!({"image": "c"});
    respec.status = None;
    let w = store.update(&respec, None).await.expect("spec update 2");
    assert_eq!(w.object.status, Some(json!({"observedGeneration": 2})));
}

/// An update carrying a stale resourceVersion is a conflict and writes nothing.
pub async fn stale_update_conflicts(store: &Store) {
    let created = store
        .create(&service("cas", json!({"image": "a"})), None)
        .await
        .expect("create");
    let mut first = created.clone();
    first.spec = json!({"image": "first"});
    store.update(&first, None).await.expect("first update");
    let mut stale = created.clone();
    stale.spec = json!({"image": "stale"});
    let err = store.update(&stale, None).await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "{err:?}");
    let read = store.get(Kind::Service, "cas").await.expect("get");
    assert_eq!(read.map(|o| o.spec), Some(json!({"image": "first"})));
}

/// Finalizers hold a deleted object until they are removed.
pub async fn finalizers_hold_deletion(store: &Store) {
    let mut obj = service("fin", json!({"image": "a"}));
    obj.metadata.finalizers = vec!["kargo.dev/swarm".into()];
    store.create(&obj, None).await.expect("create");
    let d = store
        .delete(Kind::Service, "fin", None, None)
        .await
        .expect("delete");
    let Deleted::Finalizing(marked) = d else {
        panic!("expected Finalizing, got {d:?}");
    };
    assert!(marked.metadata.deletion_timestamp.is_some());
    let still = store.get(Kind::Service, "fin").await.expect("get");
    assert!(still.is_some());
    store
        .modify(Kind::Service, "fin", None, |o| {
            o.metadata.finalizers.clear()
        })
        .await
        .expect("remove finalizer");
    assert!(
        store
            .get(Kind::Service, "fin")
            .await
            .expect("get")
            .is_none()
    );
}

/// A write whose fence does not hold is refused; with a valid fence it lands.
pub async fn fenced_writes_are_refused(store: &Store) {
    let leader_key = format!("{}/leader-test", store.prefix());
    put_leader(store, &leader_key).await;
    let entry = store
        .kv()
        .get(&leader_key)
        .await
        .expect("get")
        .expect("leader key");
    let good = Fence {
        key: leader_key.clone(),
        create_revision: entry.create_revision,
    };
    let bad = Fence {
        key: leader_key.clone(),
        create_revision: entry.create_revision + 1000,
    };
    store
        .create(&service("fenced", json!({"image": "a"})), Some(&good))
        .await
        .expect("fenced create with a valid fence");
    let refused = store
        .update_status(Kind::Service, "fenced", &json!({"x": 1}), Some(&bad))
        .await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
    let read = store
        .get(Kind::Service, "fenced")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(read.status, None);
}

async fn put_leader(store: &Store, key: &str) {
    match store
        .kv()
        .put(key, b"me".to_vec(), Precondition::Any, None)
        .await
    {
        Ok(kargo::store::TxnResult::Written(_)) => {}
        other => panic!("leader put: {other:?}"),
    }
}

/// The next event of a watch, within 10 seconds.
async fn next_event(
    watch: &mut futures::stream::BoxStream<'static, Result<WatchEvent, StoreError>>,
) -> WatchEvent {
    tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event ok")
}

/// A watch from a list's revision + 1 sees later changes, in order, and deletions.
pub async fn watch_from_list_revision(store: &Store) {
    store
        .create(&service("before", json!({})), None)
        .await
        .expect("create");
    let list = store.list(Kind::Service).await.expect("list");
    assert!(list.items.iter().any(|o| o.metadata.name == "before"));
    let mut watch = store.watch(list.revision + 1).await.expect("watch");
    store
        .create(&service("after", json!({})), None)
        .await
        .expect("create");
    store
        .delete(Kind::Service, "after", None, None)
        .await
        .expect("delete");
    let first = next_event(&mut watch).await;
    match first {
        WatchEvent::Applied(o) => assert_eq!(o.metadata.name, "after"),
        other => panic!("expected the create of 'after' first, got {other:?}"),
    }
    let second = next_event(&mut watch).await;
    assert!(
        matches!(&second, WatchEvent::Deleted { kind: Kind::Service, name, .. } if name == "after"),
        "{second:?}"
    );
}

/// A list larger than one etcd response may be (tonic's 4 MiB: 90 objects of ~100 KB) is
/// whole, at one revision, and a watch from that revision + 1 sees the next write.
pub async fn large_list_is_whole_at_one_revision(store: &Store) {
    let pad = "x".repeat(100 * 1024);
    let names: Vec<String> = (0..90).map(|i| format!("big-{i:03}")).collect();
    for name in &names {
        store
            .create(
                &service(name, json!({"image": "a", "env": {"PAD": pad}})),
                None,
            )
            .await
            .expect("create");
    }
    let started = std::time::Instant::now();
    let list = store.list_all().await.expect("a list past 8 MiB");
    eprintln!(
        "list_all of {} objects (> 8 MiB) took {:?}",
        list.items.len(),
        started.elapsed()
    );
    let listed: Vec<&str> = list
        .items
        .iter()
        .map(|o| o.metadata.name.as_str())
        .collect();
    assert_eq!(listed, names);
    let newest = list
        .items
        .iter()
        .filter_map(|o| o.metadata.resource_version.as_deref()?.parse::<i64>().ok())
        .max();
    assert!(
        newest <= Some(list.revision),
        "{newest:?} > {}",
        list.revision
    );
    let mut watch = store.watch(list.revision + 1).await.expect("watch");
    store
        .create(&service("after-list", json!({})), None)
        .await
        .expect("create after the list");
    let first = next_event(&mut watch).await;
    match first {
        WatchEvent::Applied(o) => assert_eq!(o.metadata.name, "after-list"),
        other => panic!("expected the create after the list first, got {other:?}"),
    }
}
