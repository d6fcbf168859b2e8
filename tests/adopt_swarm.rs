//! Taking over what a Kargo install left: a service deployed with `docker stack deploy`
//! (stack `kargo-x`, a named volume) is adopted with `adopt: true` — same service, same
//! volume — and left untouched, and reported, without it.

mod common;

use std::process::Command;
use std::time::Duration;

use kargo::api::{Kind, ServiceStatus};

const PREFIX: &str = "/kargo-test-adopt";

fn manifests(adopt: bool) -> String {
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: legacy, defaults: none}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: legacy}}
spec: {{stacks: [adx], adopt: {adopt}}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: adx}}
spec: {{services: [web]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: web}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  endpointMode: dnsrr
  volumes: [{{type: volume, source: data, target: /data}}]
"#,
        image = common::image("1.0")
    )
}

#[tokio::test]
async fn a_kargo_service_is_adopted_only_when_asked() {
    let store = common::etcd_store(PREFIX).await;
    let swarm = common::swarm().await;
    let _ = Command::new("docker")
        .args(["stack", "rm", "kargo-adx"])
        .output();
    let dir = tempfile::tempdir().expect("dir");
    let compose = dir.path().join("docker-compose.yml");
    std::fs::write(
        &compose,
        format!(
            "version: \"3.8\"\nservices:\n  web:\n    image: {}\n    command: [\"sh\", \"-c\", \"while true; do sleep 1; done\"]\n    volumes: [\"data:/data\"]\n    deploy: {{endpoint_mode: dnsrr}}\nvolumes:\n  data: {{}}\n",
            common::image("1.0")
        ),
    )
    .expect("write compose");
    let out = Command::new("docker")
        .args(["stack", "deploy", "--detach=true", "-c"])
        .arg(&compose)
        .arg("kargo-adx")
        .output()
        .expect("docker stack deploy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = swarm
        .inspect_service("kargo-adx_web")
        .await
        .expect("inspect")
        .expect("deployed by docker stack");

    // Without adopt: untouched, and reported.
    for o in common::objects(&manifests(false)) {
        store.apply(&o).await.expect("apply");
    }
    let controller = common::controller(&store, swarm.clone());
    let report = controller.pass().await.expect("pass");
    assert!(!report.all_ready);
    let st: ServiceStatus = serde_json::from_value(
        store
            .get(Kind::Service, "web")
            .await
            .expect("get")
            .expect("web")
            .status
            .expect("status"),
    )
    .expect("status");
    let ready = st.common.condition("Ready").expect("Ready");
    assert_eq!(ready.reason, "NotAdopted", "{ready:?}");
    let same = swarm
        .inspect_service("kargo-adx_web")
        .await
        .expect("inspect")
        .expect("still there");
    assert_eq!(same.version, before.version, "not touched without adopt");

    // With adopt: the same service becomes kargo's and keeps its volume.
    for o in common::objects(&manifests(true)) {
        store.apply(&o).await.expect("apply");
    }
    common::converge(&controller, Duration::from_secs(90)).await;
    let after = swarm
        .inspect_service("kargo-adx_web")
        .await
        .expect("inspect")
        .expect("adopted");
    assert_eq!(after.id, before.id, "adopted, not re-created");
    assert_eq!(
        after
            .labels
            .get("dev.kargo.installation")
            .map(String::as_str),
        Some(PREFIX)
    );
    assert_eq!(
        after
            .spec
            .pointer("/TaskTemplate/ContainerSpec/Mounts/0/Source")
            .and_then(|v| v.as_str()),
        Some("kargo-adx_data"),
        "the Kargo volume is found again"
    );

    common::remove_installation(&swarm, PREFIX).await;
    let _ = Command::new("docker")
        .args(["stack", "rm", "kargo-adx"])
        .output();
    common::wipe_prefix(&store).await;
}
