//! Configuration files become content-named Swarm configs and secrets; a change makes a
//! new one, the service moves to it and the old one goes. Node labels follow the
//! Environment exactly. Against the real etcd and Swarm.

mod common;

use std::time::Duration;

use kargo::api::{Kind, ServiceStatus};

const PREFIX: &str = "/kargo-test-files";

fn manifests(greeting: &str, hostname: &str) -> String {
    let image = common::image("1.0");
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec:
  environment: files
  defaults: none
  files:
    app.conf:
      content: "greeting=${{GREETING}}"
      template: true
    token:
      content: "s3cr3t"
      sensitive: true
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: files}}
spec:
  variables: {{GREETING: "{greeting}"}}
  stacks: [fs]
  nodes:
    {hostname}:
      labels: {{kargo-test-files: "yes"}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: fs}}
spec: {{services: [reader]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: reader}}
spec:
  image: "{image}"
  command: ["sh", "-c", "cat /etc/app.conf; while true; do sleep 1; done"]
  endpointMode: dnsrr
  configs: [{{file: app.conf, target: /etc/app.conf}}]
  secrets: [{{file: token}}]
"#
    )
}

fn config_name(content: &str) -> String {
    kargo::swarm::names::config_name(PREFIX, "app.conf", content)
}

#[tokio::test]
async fn files_become_configs_and_secrets_and_nodes_get_labels() {
    let store = common::etcd_store(PREFIX).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, PREFIX).await;
    let node = swarm
        .nodes()
        .await
        .expect("nodes")
        .into_iter()
        .next()
        .expect("a node");
    let labels_before = node.labels.clone();

    for o in common::objects(&manifests("hello", &node.hostname)) {
        store.apply(&o).await.expect("apply");
    }
    let controller = common::controller(&store, swarm.clone());
    common::converge(&controller, Duration::from_secs(90)).await;
    let configs = swarm.list_files(PREFIX, false).await.expect("configs");
    let secrets = swarm.list_files(PREFIX, true).await.expect("secrets");
    assert_eq!(
        configs.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        vec![config_name("greeting=hello")]
    );
    assert_eq!(secrets.len(), 1, "the sensitive file is a secret");
    assert!(secrets[0].name.starts_with("token-"));
    let node_now = swarm
        .nodes()
        .await
        .expect("nodes")
        .into_iter()
        .find(|n| n.id == node.id)
        .expect("node");
    assert_eq!(
        node_now.labels.get("kargo-test-files").map(String::as_str),
        Some("yes")
    );
    // The node also records which labels this installation set (it removes only those).
    assert_eq!(
        node_now
            .labels
            .get(&kargo::swarm::names::node_labels_record(PREFIX))
            .map(String::as_str),
        Some("kargo-test-files"),
        "{:?}",
        node_now.labels
    );

    // A changed variable changes the templated file: a new config; the service moves; the old goes.
    for o in common::objects(&manifests("bonjour", &node.hostname)) {
        store.apply(&o).await.expect("apply");
    }
    common::converge(&controller, Duration::from_secs(90)).await;
    controller
        .pass()
        .await
        .expect("pass collects the old config");
    let configs = swarm.list_files(PREFIX, false).await.expect("configs");
    assert_eq!(
        configs.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        vec![config_name("greeting=bonjour")]
    );
    let st: ServiceStatus = serde_json::from_value(
        store
            .get(Kind::Service, "reader")
            .await
            .expect("get")
            .expect("reader")
            .status
            .expect("status"),
    )
    .expect("status");
    let live = swarm
        .inspect_service(st.service_id.as_deref().expect("id"))
        .await
        .expect("inspect")
        .expect("live");
    let mounted = live
        .spec
        .pointer("/TaskTemplate/ContainerSpec/Configs/0/ConfigName")
        .and_then(|v| v.as_str());
    assert_eq!(mounted, Some(config_name("greeting=bonjour").as_str()));

    // The secret's content is never in status or events.
    let (events, _) = store
        .kv()
        .range(&format!("{PREFIX}/events/"))
        .await
        .expect("events");
    for e in events {
        assert!(!String::from_utf8_lossy(&e.value).contains("s3cr3t"));
    }
    let all = store.list_all().await.expect("list");
    for o in all.items {
        assert!(
            !serde_json::to_string(&o.status)
                .unwrap_or_default()
                .contains("s3cr3t")
        );
    }

    // Objects first, so nothing brings the services back; then the Swarm side.
    common::wipe_prefix(&store).await;
    common::remove_installation(&swarm, PREFIX).await;
    swarm
        .set_node_labels(&node.id, &labels_before)
        .await
        .expect("restore node labels");
    for secret in [false, true] {
        for f in swarm.list_files(PREFIX, secret).await.expect("files") {
            let _ = swarm.remove_file(&f.id, secret).await;
        }
    }
    common::wipe_prefix(&store).await;
}
