//! Doubt never destroys, against a real etcd and a real Swarm: a typo in the Environment's
//! name, a deleted Configuration and values written into etcd without the CLI leave every
//! Swarm service running and say why; a Stack's own suspend still acts; volumes stay.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use kargo::api::{DynamicObject, Kind};
use kargo::store::{Precondition, Store};
use kargo::swarm::SwarmClient;

const PREFIX: &str = "/kargo-test-failsafe";
const TIMEOUT: Duration = Duration::from_secs(120);

fn workspace(environment: &str) -> String {
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: {environment}, defaults: none}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: fsenv}}
spec:
  stacks: [fsa, fsb]
  rollout: parallel
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: fsa}}
spec: {{services: [fsone]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: fsb}}
spec: {{services: [fstwo]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: fsone}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  networks: [back]
  endpointMode: dnsrr
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: fstwo}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  networks: [back]
  endpointMode: dnsrr
  volumes:
    - {{type: volume, source: data, target: /data}}
"#,
        image = common::image("1.0")
    )
}

async fn apply(store: &Store, yaml: &str) {
    for o in common::objects(yaml) {
        store.apply(&o).await.expect("apply");
    }
}

/// Swarm service name → id, for this installation.
async fn live(swarm: &SwarmClient) -> BTreeMap<String, String> {
    swarm
        .list_services(PREFIX)
        .await
        .expect("list services")
        .into_iter()
        .map(|s| (s.name, s.id))
        .collect()
}

async fn ready_reason(store: &Store, kind: Kind, name: &str) -> (String, String, String) {
    let obj: DynamicObject = store.get(kind, name).await.expect("get").expect("exists");
    let status = obj.status.unwrap_or_default();
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    (
        ready["status"].as_str().unwrap_or_default().to_string(),
        ready["reason"].as_str().unwrap_or_default().to_string(),
        ready["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn volume_exists(name: &str) -> bool {
    std::process::Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn doubt_keeps_services_running_and_intent_still_acts() {
    let store = common::etcd_store(PREFIX).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, PREFIX).await;
    let controller = common::controller(&store, swarm.clone());
    apply(&store, &workspace("fsenv")).await;
    common::converge(&controller, TIMEOUT).await;
    let running = live(&swarm).await;
    assert_eq!(running.len(), 2, "{running:?}");

    // 1. A one-letter typo in the Environment's name, applied alone (as a user applies
    //    configuration.yaml): nothing is removed, and it says why.
    let typo = "apiVersion: kargo.dev/v1alpha1\nkind: Configuration\nmetadata: {name: main}\nspec: {environment: fsenx, defaults: none}\n";
    let out = common::kargo(PREFIX, &["apply", "-f", "-"], Some(typo));
    common::expect_code(&out, 0, "apply the typo");
    let warned = common::text(&out.stderr);
    assert!(
        warned.contains("EnvironmentNotFound") && warned.contains("removes nothing"),
        "apply says at once what the typo means: {warned}"
    );
    for _ in 0..3 {
        let report = controller
            .pass()
            .await
            .expect("a pass in doubt still succeeds");
        assert_eq!(report.docker_writes, 0, "no Docker write while in doubt");
    }
    assert_eq!(
        live(&swarm).await,
        running,
        "the typo removed or replaced a service"
    );
    let (ready, reason, message) = ready_reason(&store, Kind::Configuration, "main").await;
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "EnvironmentNotFound")
    );
    assert!(message.contains("fsenx"), "{message}");
    let (_, reason, message) = ready_reason(&store, Kind::Stack, "fsa").await;
    assert_eq!(reason, "EnvironmentNotFound");
    assert!(message.contains("keep running"), "{message}");

    // 2. A Stack's own suspend (`kargo remove`) is intent, even in doubt; its volume stays.
    let out = common::kargo(PREFIX, &["remove", "fsb"], None);
    common::expect_code(&out, 0, "kargo remove fsb");
    controller.pass().await.expect("pass");
    let now = live(&swarm).await;
    assert!(now.contains_key("kargo-fsa_fsone"), "{now:?}");
    assert!(
        !now.contains_key("kargo-fsb_fstwo"),
        "suspend did not act: {now:?}"
    );
    assert!(volume_exists("kargo-fsb_data"), "kargo removed a volume");

    // Mended: everything comes back.
    let out = common::kargo(PREFIX, &["deploy", "fsb"], None);
    common::expect_code(&out, 0, "kargo deploy fsb");
    apply(&store, &workspace("fsenv")).await;
    common::converge(&controller, TIMEOUT).await;
    let running = live(&swarm).await;
    assert_eq!(running.len(), 2);

    // 3. The Configuration deleted (--force) after the installation had one: doubt.
    let out = common::kargo(
        PREFIX,
        &["delete", "configuration", "main", "--force"],
        None,
    );
    common::expect_code(&out, 0, "kargo delete configuration main --force");
    for _ in 0..2 {
        controller.pass().await.expect("pass");
    }
    assert_eq!(
        live(&swarm).await,
        running,
        "deleting the Configuration removed services"
    );
    let (_, reason, _) = ready_reason(&store, Kind::Stack, "fsb").await;
    assert_eq!(reason, "ConfigurationNotFound");
    apply(&store, &workspace("fsenv")).await;
    common::converge(&controller, TIMEOUT).await;

    // 4. Values written without the CLI: not JSON, nested past serde's limit, another
    //    object's kind under a key. The pass goes on; the Stack concerned keeps running.
    let key = |plural: &str, name: &str| format!("{PREFIX}/registry/kargo.dev/{plural}/{name}");
    let put = |k: String, v: Vec<u8>| {
        let kv = store.kv().clone();
        async move {
            kv.put(&k, v, Precondition::Any, None).await.expect("put");
        }
    };
    put(key("services", "fsone"), b"not json {".to_vec()).await;
    put(key("services", "deep"), "[".repeat(100_000).into_bytes()).await;
    let stack_as_service = serde_json::json!({
        "apiVersion": "kargo.dev/v1alpha1", "kind": "Stack",
        "metadata": {"name": "elsewhere"}, "spec": {"services": []}
    });
    put(
        key("services", "odd"),
        stack_as_service.to_string().into_bytes(),
    )
    .await;
    // And fsa drops fsone from its list at the same time: in doubt, it is not removed.
    let out = common::kargo(
        PREFIX,
        &["apply", "-f", "-"],
        Some(
            "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: fsa}\nspec: {services: [fsone]}\n",
        ),
    );
    common::expect_code(&out, 0, "re-apply fsa");
    for _ in 0..2 {
        controller
            .pass()
            .await
            .expect("corrupt values never fail the pass");
    }
    assert_eq!(
        live(&swarm).await,
        running,
        "a corrupt value removed a service"
    );
    let (ready, reason, message) = ready_reason(&store, Kind::Stack, "fsa").await;
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "InvalidObject"),
        "{message}"
    );
    let (ready, _, _) = ready_reason(&store, Kind::Stack, "fsb").await;
    assert_eq!(ready, "True", "the other Stack reconciles as before");
    let out = common::kargo(PREFIX, &["get", "all"], None);
    let stdout = common::expect_code(&out, 0, "kargo get all with corrupt values");
    assert!(stdout.contains("fsa") && stdout.contains("fsb"), "{stdout}");
    assert!(
        common::text(&out.stderr).contains("skipped"),
        "get warns about skipped values"
    );

    // Mended by re-applying the Service: Ready again, same services.
    for name in ["deep", "odd"] {
        store
            .kv()
            .delete(&key("services", name), Precondition::Any, None)
            .await
            .expect("delete");
    }
    store
        .kv()
        .delete(&key("services", "fsone"), Precondition::Any, None)
        .await
        .expect("delete");
    apply(&store, &workspace("fsenv")).await;
    common::converge(&controller, TIMEOUT).await;
    assert_eq!(live(&swarm).await, running);

    common::remove_installation(&swarm, PREFIX).await;
    common::wipe_prefix(&store).await;
    let _ = std::process::Command::new("docker")
        .args(["volume", "rm", "-f", "kargo-fsb_data"])
        .output();
}
