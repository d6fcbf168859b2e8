//! A panic while reconciling one Stack (a kargo bug) costs that Stack its Ready, said in
//! its status, and nothing else: the other Stacks converge and the controller lives on.
//! Real etcd and Swarm; the panic comes from a default catalog that panics for one name.

mod common;

use std::sync::Arc;
use std::time::Duration;

use kargo::api::Kind;
use kargo::controller::{Catalog, Controller, ControllerOptions};

const PREFIX: &str = "/kargo-test-panic";

fn workspace() -> String {
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: pcenv, defaults: builtin}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: pcenv}}
spec: {{stacks: [pccalm, pcboom], rollout: parallel}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: pccalm}}
spec: {{services: [calm]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: pcboom}}
spec: {{services: [boom]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: calm}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  networks: [back]
  endpointMode: dnsrr
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: boom}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
"#,
        image = common::image("1.0")
    )
}

fn condition(obj: &kargo::api::DynamicObject, type_: &str) -> (String, String, String) {
    let c = obj
        .status
        .as_ref()
        .and_then(|s| s["conditions"].as_array())
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_default();
    let field = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (field("status"), field("reason"), field("message"))
}

#[tokio::test]
async fn a_panicking_reconcile_degrades_its_stack_only() {
    let store = common::etcd_store(PREFIX).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, PREFIX).await;
    for o in common::objects(&workspace()) {
        store.apply(&o).await.expect("apply");
    }
    let catalog: Arc<Catalog> = Arc::new(|name: &str| {
        assert_ne!(name, "boom", "a kargo bug, simulated");
        None
    });
    let options = ControllerOptions {
        resync: Duration::from_secs(3),
        ..ControllerOptions::default()
    };
    let controller = Controller::new(store.clone(), swarm.clone(), options).with_catalog(catalog);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        controller
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    let degraded = common::process::eventually(
        Duration::from_secs(60),
        "pcboom Degraded by the panic and pccalm Ready",
        async || {
            let boom = store.get(Kind::Stack, "pcboom").await.ok()??;
            let calm = store.get(Kind::Stack, "pccalm").await.ok()??;
            let (d, reason, message) = condition(&boom, "Degraded");
            let (ready, _, _) = condition(&calm, "Ready");
            (d == "True" && reason == "ReconcilePanicked" && ready == "True").then_some(message)
        },
    )
    .await;
    assert!(degraded.contains("a kargo bug, simulated"), "{degraded}");
    assert!(!running.is_finished(), "the controller died with the panic");
    let live = swarm.list_services(PREFIX).await.expect("list");
    assert!(
        live.iter().any(|s| s.name == "kargo-pccalm_calm"),
        "{live:?}"
    );

    let _ = stop.send(());
    let finished = tokio::time::timeout(Duration::from_secs(30), running).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the controller stops cleanly after the panics: {finished:?}"
    );
    common::remove_installation(&swarm, PREFIX).await;
    common::wipe_prefix(&store).await;
}
