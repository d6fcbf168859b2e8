//! Installations (etcd prefixes) sharing one Swarm stay apart: the same file content makes
//! configs of their own, a service of another installation is never adopted, and node
//! labels another installation set are left to it. Against the real etcd and Swarm.

mod common;

use std::time::Duration;

use kargo::api::conditions::reasons;
use kargo::api::{Kind, ServiceStatus};
use kargo::store::Store;
use kargo::swarm::names::INSTALLATION_LABEL;

/// One installation's workspace: stack `stack` with service `web` mounting `app.conf`
/// (the same content for everyone), `adopt` as given, node labels as given.
fn manifests(stack: &str, adopt: bool, node_labels: &str) -> String {
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec:
  environment: inst
  defaults: none
  files:
    app.conf: {{content: "shared=content"}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: inst}}
spec:
  stacks: [{stack}]
  adopt: {adopt}
  nodes: {node_labels}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: {stack}}}
spec: {{services: [web]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: web}}
spec:
  image: "{image}"
  command: ["sh", "-c", "cat /etc/app.conf; while true; do sleep 1; done"]
  endpointMode: dnsrr
  configs: [{{file: app.conf, target: /etc/app.conf}}]
"#,
        image = common::image("1.0")
    )
}

async fn install(prefix: &str, yaml: &str) -> Store {
    let store = common::etcd_store(prefix).await;
    for o in common::objects(yaml) {
        store.apply(&o).await.expect("apply");
    }
    store
}

async fn web_status(store: &Store) -> ServiceStatus {
    let o = store
        .get(Kind::Service, "web")
        .await
        .expect("get")
        .expect("web");
    serde_json::from_value(o.status.expect("a status")).expect("status")
}

#[tokio::test]
async fn two_installations_shipping_the_same_file_both_deploy() {
    let (a, b) = ("/kargo-test-inst-a", "/kargo-test-inst-b");
    let swarm = common::swarm().await;
    for p in [a, b] {
        common::remove_installation(&swarm, p).await;
    }
    let store_a = install(a, &manifests("insta", false, "{}")).await;
    let store_b = install(b, &manifests("instb", false, "{}")).await;
    let ca = common::controller(&store_a, swarm.clone());
    let cb = common::controller(&store_b, swarm.clone());
    common::converge(&ca, Duration::from_secs(90)).await;
    // Before, the second failed: "Docker refused to create config app.conf-…: already exists".
    common::converge(&cb, Duration::from_secs(90)).await;
    let names = |files: Vec<kargo::swarm::FileObject>| -> Vec<String> {
        files.into_iter().map(|f| f.name).collect()
    };
    let configs_a = names(swarm.list_files(a, false).await.expect("configs"));
    let configs_b = names(swarm.list_files(b, false).await.expect("configs"));
    assert_eq!(configs_a.len(), 1, "{configs_a:?}");
    assert_eq!(configs_b.len(), 1, "{configs_b:?}");
    assert_ne!(configs_a, configs_b, "each installation has its own config");

    // Removing one installation's Stack leaves the other's config and service alone.
    for o in common::objects(
        "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: insta}\nspec: {services: [web], suspend: true}\n",
    ) {
        store_a.apply(&o).await.expect("suspend");
    }
    ca.pass().await.expect("pass");
    ca.pass().await.expect("pass collects");
    assert!(
        swarm
            .list_files(a, false)
            .await
            .expect("configs")
            .is_empty()
    );
    assert_eq!(
        names(swarm.list_files(b, false).await.expect("configs")),
        configs_b
    );
    assert!(
        swarm
            .inspect_service("kargo-instb_web")
            .await
            .expect("inspect")
            .is_some()
    );

    for (p, s) in [(a, &store_a), (b, &store_b)] {
        common::remove_installation(&swarm, p).await;
        common::wipe_prefix(s).await;
    }
}

#[tokio::test]
async fn another_installations_service_is_never_adopted_nor_its_node_labels_overwritten() {
    let (owner, other) = ("/kargo-test-inst-owner", "/kargo-test-inst-other");
    let swarm = common::swarm().await;
    for p in [owner, other] {
        common::remove_installation(&swarm, p).await;
    }
    let node = swarm
        .nodes()
        .await
        .expect("nodes")
        .into_iter()
        .next()
        .expect("a node");
    let labels = |value: &str| {
        format!(
            "{{{}: {{labels: {{kargo-test-inst: {value}}}}}}}",
            node.hostname
        )
    };
    let store_owner = install(owner, &manifests("instx", false, &labels("owner"))).await;
    let c_owner = common::controller(&store_owner, swarm.clone());
    common::converge(&c_owner, Duration::from_secs(90)).await;
    let before = swarm
        .inspect_service("kargo-instx_web")
        .await
        .expect("inspect")
        .expect("deployed by its owner");

    // The same Stack and Service names elsewhere, even with adopt: refused, owner named.
    let store_other = install(other, &manifests("instx", true, &labels("other"))).await;
    let c_other = common::controller(&store_other, swarm.clone());
    let report = c_other.pass().await.expect("pass");
    assert!(!report.all_ready);
    let st = web_status(&store_other).await;
    let ready = st.common.condition("Ready").expect("Ready");
    assert_eq!(
        ready.reason,
        reasons::OWNED_BY_ANOTHER_INSTALLATION,
        "{ready:?}"
    );
    assert!(ready.message.contains(owner), "names the owner: {ready:?}");
    c_other.pass().await.expect("pass");
    let after = swarm
        .inspect_service("kargo-instx_web")
        .await
        .expect("inspect")
        .expect("still there");
    assert_eq!(after.version, before.version, "not touched");
    assert_eq!(
        after.labels.get(INSTALLATION_LABEL).map(String::as_str),
        Some(owner)
    );
    let node_now = swarm
        .nodes()
        .await
        .expect("nodes")
        .into_iter()
        .find(|n| n.id == node.id)
        .expect("node");
    assert_eq!(
        node_now.labels.get("kargo-test-inst").map(String::as_str),
        Some("owner"),
        "the owner's node label is not overwritten"
    );

    // Deleting the other installation's objects removes nothing of the owner's.
    common::wipe_prefix(&store_other).await;
    c_other.pass().await.expect("pass");
    assert!(
        swarm
            .inspect_service("kargo-instx_web")
            .await
            .expect("inspect")
            .is_some()
    );

    // The owner stops declaring its label: it goes.
    for o in common::objects(&manifests("instx", false, "{}")) {
        store_owner.apply(&o).await.expect("apply");
    }
    c_owner.pass().await.expect("pass");
    common::remove_installation(&swarm, owner).await;
    common::wipe_prefix(&store_owner).await;
}
