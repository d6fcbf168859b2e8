//! The whole path against a real etcd and a real one-node Swarm: apply → Ready, updates
//! in place, deletion by finalizer, and a converged restart that writes nothing.

mod common;

use std::time::Duration;

use kargo::api::{Kind, ServiceStatus};

use kargo::store::{Store, StoreError};

const TIMEOUT: Duration = Duration::from_secs(120);

async fn apply_all(store: &Store, yaml: &str) {
    for o in common::objects(yaml) {
        store.apply(&o).await.expect("apply");
    }
}

fn workspace(stack: &str, tag: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: {stack}}}
spec:
  services: [loop]
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: loop}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  networks: [back]
  endpointMode: dnsrr
  deploy:
    replicas: {replicas}
    updateConfig: {{parallelism: 0, order: stop-first}}
"#,
        image = common::image(tag)
    )
}

/// The newest write under a prefix (etcd's revision is global: other tests move it).
async fn last_write(store: &Store, prefix: &str) -> i64 {
    let (entries, _) = store.kv().range(prefix).await.expect("range");
    entries.iter().map(|e| e.mod_revision).max().unwrap_or(0)
}

async fn service_status(store: &Store, name: &str) -> ServiceStatus {
    let obj = store
        .get(Kind::Service, name)
        .await
        .expect("get")
        .expect("service exists");
    serde_json::from_value(obj.status.expect("status written")).expect("status shape")
}

#[tokio::test]
async fn apply_update_restart_and_delete_against_swarm() {
    let prefix = "/kargo-test-reconcile";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;

    // apply → Ready, status written back.
    apply_all(&store, &workspace("rt1", "1.0", 1)).await;
    let controller = common::controller(&store, swarm.clone());
    common::converge(&controller, TIMEOUT).await;
    let st = service_status(&store, "loop").await;
    assert_eq!((st.running_tasks, st.desired_tasks), (1, 1));
    assert_eq!(st.swarm_name.as_deref(), Some("kargo-rt1_loop"));
    let first_id = st.service_id.clone().expect("service id");
    let first_version = st.version.expect("version");
    let live = swarm
        .inspect_service("kargo-rt1_loop")
        .await
        .expect("inspect")
        .expect("exists");
    assert_eq!(
        live.labels
            .get("com.docker.stack.namespace")
            .map(String::as_str),
        Some("kargo-rt1")
    );
    assert_eq!(
        live.labels.get("dev.kargo.owner").map(String::as_str),
        Some("rt1/loop")
    );
    let stack = store
        .get(Kind::Stack, "rt1")
        .await
        .expect("get")
        .expect("stack");
    assert!(
        stack
            .metadata
            .finalizers
            .iter()
            .any(|f| f == "kargo.dev/swarm")
    );

    // change replicas → the same Swarm service, a higher version.
    apply_all(&store, &workspace("rt1", "1.0", 2)).await;
    common::converge(&controller, TIMEOUT).await;
    let st = service_status(&store, "loop").await;
    assert_eq!(
        st.service_id.as_deref(),
        Some(first_id.as_str()),
        "updated in place"
    );
    assert!(st.version.expect("version") > first_version);
    assert_eq!((st.running_tasks, st.desired_tasks), (2, 2));

    // change the image tag → updated, tasks of the new spec running.
    apply_all(&store, &workspace("rt1", "1.1", 2)).await;
    common::converge(&controller, TIMEOUT).await;
    let st = service_status(&store, "loop").await;
    assert_eq!(st.service_id.as_deref(), Some(first_id.as_str()));
    assert_eq!(st.image.as_deref(), Some(common::image("1.1").as_str()));
    let live = swarm
        .inspect_service(&first_id)
        .await
        .expect("inspect")
        .expect("exists");
    assert_eq!(
        live.spec
            .pointer("/TaskTemplate/ContainerSpec/Image")
            .and_then(|v| v.as_str()),
        Some(common::image("1.1").as_str())
    );

    // restart on a converged workspace → no Docker write, no etcd write, no duplicate.
    let revision_before = last_write(&store, &format!("{prefix}/")).await;
    let restarted = common::controller(&store, common::swarm().await);
    let report = restarted.pass().await.expect("pass");
    assert!(report.all_ready, "{report:?}");
    assert_eq!(
        restarted.swarm().total_writes(),
        0,
        "writes: {:?}",
        restarted.swarm().writes()
    );
    assert_eq!(report.etcd_writes, 0);
    let revision_after = last_write(&store, &format!("{prefix}/")).await;
    assert_eq!(
        revision_before, revision_after,
        "a converged resync must not write to etcd"
    );
    let named: Vec<_> = swarm
        .list_services(prefix)
        .await
        .expect("list")
        .into_iter()
        .filter(|s| s.name == "kargo-rt1_loop")
        .collect();
    assert_eq!(named.len(), 1, "no duplicate service");

    // a hand `docker service scale` is seen and undone.
    let live = swarm
        .inspect_service(&first_id)
        .await
        .expect("inspect")
        .expect("exists");
    let mut scaled = live.spec.clone();
    scaled["Mode"]["Replicated"]["Replicas"] = serde_json::json!(3);
    swarm
        .update_service(&first_id, "kargo-rt1_loop", live.version, &scaled, None)
        .await
        .expect("hand scale");
    common::converge(&restarted, TIMEOUT).await;
    let live = swarm
        .inspect_service(&first_id)
        .await
        .expect("inspect")
        .expect("exists");
    assert_eq!(
        live.spec
            .pointer("/Mode/Replicated/Replicas")
            .and_then(|v| v.as_u64()),
        Some(2)
    );

    // delete the Service object → its Swarm service goes, then the object (finalizer).
    store
        .delete(Kind::Service, "loop", None, None)
        .await
        .expect("delete");
    assert!(
        store
            .get(Kind::Service, "loop")
            .await
            .expect("get")
            .is_some(),
        "held by the finalizer"
    );
    restarted
        .pass()
        .await
        .expect("pass removes the Swarm service");
    restarted.pass().await.expect("pass releases the finalizer");
    assert!(
        swarm
            .inspect_service(&first_id)
            .await
            .expect("inspect")
            .is_none()
    );
    assert!(
        store
            .get(Kind::Service, "loop")
            .await
            .expect("get")
            .is_none()
    );

    // delete the Stack → its finalizer is released too.
    store
        .delete(Kind::Stack, "rt1", None, None)
        .await
        .expect("delete stack");
    restarted.pass().await.expect("pass");
    assert!(store.get(Kind::Stack, "rt1").await.expect("get").is_none());
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict_and_writes_nothing() {
    let store = common::etcd_store("/kargo-test-conflict").await;
    apply_all(&store, &workspace("cf1", "1.0", 1)).await;
    let read = store
        .get(Kind::Service, "loop")
        .await
        .expect("get")
        .expect("exists");
    let mut first = read.clone();
    first.spec["deploy"]["replicas"] = serde_json::json!(3);
    store.update(&first, None).await.expect("first writer wins");
    let revision = last_write(&store, "/kargo-test-conflict/").await;
    let mut stale = read.clone();
    stale.spec["deploy"]["replicas"] = serde_json::json!(5);
    let err = store.update(&stale, None).await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "{err:?}");
    let after = last_write(&store, "/kargo-test-conflict/").await;
    assert_eq!(revision, after, "nothing written");
    let now = store
        .get(Kind::Service, "loop")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(now.spec["deploy"]["replicas"], serde_json::json!(3));
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn a_command_that_exits_is_not_ready_and_says_why() {
    let prefix = "/kargo-test-exits";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;
    let yaml = format!(
        "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {{name: ex1}}\nspec: {{services: [crash]}}\n---\napiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {{name: crash}}\nspec:\n  image: \"{}\"\n  command: [\"sh\", \"-c\", \"exit 3\"]\n  endpointMode: dnsrr\n",
        common::image("1.0")
    );
    apply_all(&store, &yaml).await;
    let controller = common::controller(&store, swarm.clone());
    let deadline = std::time::Instant::now() + TIMEOUT;
    let message = loop {
        let report = controller.pass().await.expect("pass");
        let st = service_status(&store, "crash").await;
        assert!(
            !report.all_ready,
            "a crashing service is never Ready: {report:?} {st:?}"
        );
        let ready = st
            .common
            .condition("Ready")
            .cloned()
            .expect("Ready condition");
        if ready.message.contains("exit") {
            assert_eq!(ready.reason, "TasksFailing", "{ready:?}");
            assert!(!st.task_errors.is_empty());
            break ready.message;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no task error reported: {ready:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        message.contains("(3)") || message.contains("exit"),
        "{message}"
    );
    common::wipe_prefix(&store).await;
    common::remove_installation(&swarm, prefix).await;
}

/// A Stack that named a Service not applied yet said Degraded "service … not found"; once
/// the Service is applied and its task starting on the real Swarm, no condition of the
/// Stack still says so (none survives a reconcile).
#[tokio::test]
async fn a_stale_stack_condition_does_not_survive_a_reconcile() {
    let prefix = "/kargo-test-stale-conditions";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;
    let service = |name: &str| {
        format!(
            "---\napiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  image: \"{}\"\n  command: [\"sh\", \"-c\", \"while true; do sleep 1; done\"]\n  endpointMode: dnsrr\n",
            common::image("1.0")
        )
    };
    let stack = "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: stale1}\nspec: {services: [uxweb]}\n";
    apply_all(&store, &format!("{stack}{}", service("uxweb"))).await;
    // The Stack names uxworker before it exists (as `kargo apply` of the Stack alone stores it).
    store
        .modify(Kind::Stack, "stale1", None, |o| {
            o.spec["services"] = serde_json::json!(["uxweb", "uxworker"]);
        })
        .await
        .expect("stack names uxworker");
    let controller = common::controller(&store, swarm.clone());
    controller.pass().await.expect("pass");
    let degraded = |store: Store| async move {
        let obj = store
            .get(Kind::Stack, "stale1")
            .await
            .expect("get")
            .expect("stack");
        let st: kargo::api::StackStatus =
            serde_json::from_value(obj.status.expect("status")).expect("status shape");
        st.common
            .conditions
            .iter()
            .map(|c| format!("{} {:?} {}", c.type_, c.status, c.message))
            .collect::<Vec<_>>()
    };
    let before = degraded(store.clone()).await;
    assert!(
        before
            .iter()
            .any(|c| c.starts_with("Degraded True") && c.contains("not found")),
        "{before:?}"
    );
    apply_all(&store, &service("uxworker")).await;
    controller.pass().await.expect("pass");
    let after = degraded(store.clone()).await;
    assert!(!after.iter().any(|c| c.contains("not found")), "{after:?}");
    common::converge(&controller, TIMEOUT).await;
    let ready = degraded(store.clone()).await;
    assert!(
        ready.iter().any(|c| c.starts_with("Degraded False")),
        "{ready:?}"
    );
    common::wipe_prefix(&store).await;
    common::remove_installation(&swarm, prefix).await;
}
