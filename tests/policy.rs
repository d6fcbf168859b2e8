//! The policy on what a Service may do to the nodes: a Service mounting the Docker socket
//! is refused by `validate`, by `apply` (nothing written) and by the controller when
//! written straight into etcd; an exempted one deploys; a running one that comes to break
//! the policy keeps running, reported, and is not updated. Against the real etcd and Swarm.

mod common;

use std::time::{Duration, Instant};

use common::{expect_code, kargo, text};
use kargo::api::conditions::reasons;
use kargo::api::{Kind, ServiceStatus, StackStatus};
use kargo::store::Store;

const PREFIX: &str = "/kargo-test-policy";
const SWARM_NAME: &str = "kargo-polx_sock";

/// The installation, with the Configuration's `policy` as given and the Service mounting
/// the Docker socket (read-only: the busybox image only lists it).
fn manifests(policy: &str, env: &str) -> String {
    format!(
        r#"apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec:
  environment: pol
  defaults: none
  policy: {policy}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: pol}}
spec: {{stacks: [polx]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: polx}}
spec: {{services: [sock]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: sock}}
spec:
  image: "{image}"
  command: ["sh", "-c", "ls -l /var/run/docker.sock; while true; do sleep 1; done"]
  endpointMode: dnsrr
  env: {{STEP: "{env}"}}
  volumes:
    - type: bind
      source: /var/run/docker.sock
      target: /var/run/docker.sock
      readOnly: true
"#,
        image = common::image("1.0")
    )
}

const BASELINE: &str = "{}";
const EXEMPT: &str = "{exemptions: {sock: {allow: [dockerSocket]}}}";

async fn service_status(store: &Store) -> ServiceStatus {
    let o = store
        .get(Kind::Service, "sock")
        .await
        .expect("get")
        .expect("sock");
    serde_json::from_value(o.status.expect("a status")).expect("status")
}

async fn stack_status(store: &Store) -> StackStatus {
    let o = store
        .get(Kind::Stack, "polx")
        .await
        .expect("get")
        .expect("polx");
    serde_json::from_value(o.status.expect("a status")).expect("status")
}

#[tokio::test]
async fn a_docker_socket_mount_is_refused_everywhere_unless_exempted() {
    let store = common::etcd_store(PREFIX).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, PREFIX).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("workspace.yaml");
    std::fs::write(&file, manifests(BASELINE, "1")).expect("write");
    let path = file.to_str().expect("utf-8 path");

    // validate: exit 1, at the line of the mount's source.
    let out = kargo(PREFIX, &["validate", "-f", path], None);
    let printed = text(&out.stdout);
    expect_code(&out, 1, "validate of a Docker socket mount");
    assert!(
        printed.contains(&format!(
            "{path}:29:15: service/sock: spec.volumes[0].source"
        )) && printed.contains("Docker socket"),
        "{printed}"
    );

    // apply: refused, and nothing is written.
    let out = kargo(PREFIX, &["apply", "-f", path], None);
    expect_code(&out, 1, "apply of a Docker socket mount");
    assert!(
        text(&out.stderr).contains("Docker socket")
            && text(&out.stderr).contains("nothing was written"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        store.list_all().await.expect("list").items.is_empty(),
        "apply wrote nothing"
    );

    // Written straight into etcd: the controller deploys nothing and says why.
    for o in common::objects(&manifests(BASELINE, "1")) {
        store.apply(&o).await.expect("write into etcd");
    }
    let controller = common::controller(&store, swarm.clone());
    let report = controller.pass().await.expect("pass");
    assert!(!report.all_ready);
    let st = service_status(&store).await;
    let ready = st.common.condition("Ready").expect("Ready");
    assert_eq!(ready.reason, reasons::POLICY_VIOLATION, "{ready:?}");
    assert!(ready.message.contains("Docker socket"), "{ready:?}");
    let stack = stack_status(&store).await;
    assert_eq!(
        stack.common.condition("Ready").map(|c| c.reason.as_str()),
        Some(reasons::POLICY_VIOLATION)
    );
    assert!(
        swarm
            .inspect_service(SWARM_NAME)
            .await
            .expect("inspect")
            .is_none(),
        "nothing deployed"
    );

    // Exempted in the Configuration: validate and apply accept it, and it deploys.
    std::fs::write(&file, manifests(EXEMPT, "1")).expect("write");
    expect_code(
        &kargo(PREFIX, &["validate", "-f", path], None),
        0,
        "validate of the exempted Service",
    );
    expect_code(
        &kargo(PREFIX, &["apply", "-f", path], None),
        0,
        "apply of the exempted Service",
    );
    common::converge(&controller, Duration::from_secs(90)).await;
    let running = swarm
        .inspect_service(SWARM_NAME)
        .await
        .expect("inspect")
        .expect("deployed once exempted");

    // The exemption dropped (written past apply, as an upgrade or another writer would):
    // the service keeps running as it is, reported, and a change is not deployed.
    for o in common::objects(&manifests(BASELINE, "2")) {
        store.apply(&o).await.expect("write into etcd");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        controller.pass().await.expect("pass");
        let st = service_status(&store).await;
        if st.common.condition("Ready").map(|c| c.reason.as_str())
            == Some(reasons::POLICY_VIOLATION)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no PolicyViolation: {st:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    controller.pass().await.expect("pass");
    let kept = swarm
        .inspect_service(SWARM_NAME)
        .await
        .expect("inspect")
        .expect("kept running");
    assert_eq!(kept.id, running.id);
    assert_eq!(
        kept.version, running.version,
        "not updated while it breaks the policy"
    );
    let tasks = swarm.tasks(&kept.id).await.expect("tasks");
    assert!(
        tasks.iter().any(|t| t.state == "running"),
        "its task still runs: {tasks:?}"
    );

    common::remove_installation(&swarm, PREFIX).await;
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn apply_refuses_an_environment_that_overrides_a_catalog_image_with_host_access() {
    let prefix = "/kargo-test-policy-catalog";
    let store = common::etcd_store(prefix).await;
    let yaml = |image: &str| {
        format!(
            r#"apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: cat}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: cat}}
spec:
  stacks: [polcat]
  services:
    cadvisor: {{image: "{image}"}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: polcat}}
spec: {{services: [cadvisor]}}
"#
        )
    };
    // The catalog's own image keeps the exemption it ships (server dry run: nothing runs).
    let out = kargo(
        prefix,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&yaml("gcr.io/cadvisor/cadvisor")),
    );
    expect_code(&out, 0, "the catalog's cadvisor");
    // Another image mounting / and /var/run: refused, nothing written.
    let out = kargo(prefix, &["apply", "-f", "-"], Some(&yaml("evil/cadvisor")));
    expect_code(&out, 1, "cadvisor under another image");
    assert!(
        text(&out.stderr).contains("service \"cadvisor\""),
        "{}",
        text(&out.stderr)
    );
    assert!(store.list_all().await.expect("list").items.is_empty());
    // A Service alone, listed by no Stack yet: judged all the same.
    let lone = "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {name: lone}\nspec:\n  image: busybox:1\n  networks: [host]\n";
    let out = kargo(prefix, &["apply", "-f", "-"], Some(lone));
    expect_code(&out, 1, "a lone Service on the host network");
    assert!(
        text(&out.stderr).contains("host's network"),
        "{}",
        text(&out.stderr)
    );
    assert!(store.list_all().await.expect("list").items.is_empty());
    common::wipe_prefix(&store).await;
}
