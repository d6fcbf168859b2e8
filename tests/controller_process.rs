//! The controller as users run it: the real binary against the real etcd and Swarm.
//! Health-gated order, jobs, drift undone, task errors in status, events, metrics,
//! stack rollback, graceful shutdown.

mod common;

use std::time::Duration;

use common::process::{ControllerProcess, eventually};
use kargo::api::{Kind, ServiceStatus, StackStatus};
use kargo::store::Store;

const PREFIX: &str = "/kargo-test-process";

fn manifests() -> String {
    let image = common::image("1.0");
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec:
  defaults: none
  files:
    token: {{content: "t0p-s3cret-value", sensitive: true}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: pa}}
spec:
  services: [db, migrate]
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: pb}}
spec:
  services: [app]
  dependsOn: [pa]
  rollback: auto
  progressDeadlineSeconds: 8
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: db}}
spec:
  image: "{image}"
  command: ["sh", "-c", "sleep 3; touch /tmp/up; while true; do sleep 1; done"]
  healthcheck: {{test: ["CMD", "test", "-f", "/tmp/up"], interval: 1s, retries: 30}}
  endpointMode: dnsrr
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: migrate}}
spec:
  image: "{image}"
  command: ["sh", "-c", "echo migrated"]
  dependsOn: [db]
  deploy: {{mode: replicated-job, replicas: 1}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: app}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  endpointMode: dnsrr
  secrets: [{{file: token}}]
  deploy:
    replicas: 2
"#
    )
}

async fn status<T: serde::de::DeserializeOwned + Default>(
    store: &Store,
    kind: Kind,
    name: &str,
) -> T {
    store
        .get(kind, name)
        .await
        .ok()
        .flatten()
        .and_then(|o| o.status)
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default()
}

async fn ready(store: &Store, kind: Kind, name: &str) -> bool {
    let Some(o) = store.get(kind, name).await.ok().flatten() else {
        return false;
    };
    let st: kargo::api::CommonStatus = o
        .status
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    st.is_ready() && st.observed_generation == o.metadata.generation
}

#[tokio::test]
async fn controller_orders_corrects_drift_reports_and_rolls_back() {
    let store = common::etcd_store(PREFIX).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, PREFIX).await;
    for o in common::objects(&manifests()) {
        store.apply(&o).await.expect("apply");
    }
    let endpoints = common::etcd_endpoints().join(",");
    let mut ctl = ControllerProcess::start(PREFIX, 19461, &endpoints, &["--resync-period", "3s"]);

    // Health-gated order: pb waits for pa; the job runs after db is Ready and completes.
    eventually(Duration::from_secs(120), "every stack Ready", async || {
        (ready(&store, Kind::Stack, "pa").await && ready(&store, Kind::Stack, "pb").await)
            .then_some(())
    })
    .await;
    let db = swarm
        .inspect_service("kargo-pa_db")
        .await
        .expect("inspect")
        .expect("db");
    let db_tasks = swarm.tasks(&db.id).await.expect("tasks");
    let app = swarm
        .inspect_service("kargo-pb_app")
        .await
        .expect("inspect")
        .expect("app");
    let app_created = app
        .spec
        .get("Name")
        .map(|_| ())
        .and(swarm.tasks(&app.id).await.ok())
        .unwrap_or_default();
    let db_running_at = db_tasks
        .iter()
        .filter_map(|t| t.timestamp.clone())
        .min()
        .unwrap_or_default();
    let app_first_task = app_created
        .iter()
        .filter_map(|t| t.timestamp.clone())
        .min()
        .unwrap_or_default();
    assert!(
        app_first_task >= db_running_at,
        "pb started ({app_first_task}) before pa was up ({db_running_at})"
    );
    let migrate: ServiceStatus = status(&store, Kind::Service, "migrate").await;
    assert!(
        migrate.common.is_ready(),
        "a completed job is Ready: {migrate:?}"
    );

    // Metrics and health endpoints.
    assert_eq!(ctl.get("/healthz").map(|r| r.0), Some(200));
    assert_eq!(ctl.get("/readyz").map(|r| r.0), Some(200));
    assert!(
        ctl.metric("kargo_docker_writes_total{kind=\"service_create\"}")
            .unwrap_or(0.0)
            >= 3.0
    );
    assert!(
        ctl.metric("kargo_reconciles_total{result=\"ok\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(ctl.metric("kargo_leader"), Some(1.0));
    assert!(ctl.metric("kargo_queue_depth").is_some());

    // Drift: a hand scale and a hand removal are undone.
    let live = swarm
        .inspect_service("kargo-pb_app")
        .await
        .expect("inspect")
        .expect("app");
    let mut spec = live.spec.clone();
    spec["Mode"]["Replicated"]["Replicas"] = serde_json::json!(4);
    swarm
        .update_service(&live.id, &live.name, live.version, &spec, None)
        .await
        .expect("hand scale");
    eventually(Duration::from_secs(30), "hand scale undone", async || {
        let l = swarm.inspect_service("kargo-pb_app").await.ok()??;
        (l.spec.pointer("/Mode/Replicated/Replicas")?.as_u64()? == 2).then_some(())
    })
    .await;
    let live = swarm
        .inspect_service("kargo-pb_app")
        .await
        .expect("inspect")
        .expect("app");
    let mut spec = live.spec.clone();
    spec["TaskTemplate"]["ContainerSpec"]["Image"] = serde_json::json!(common::image("1.1"));
    swarm
        .update_service(&live.id, &live.name, live.version, &spec, None)
        .await
        .expect("hand update --image");
    eventually(
        Duration::from_secs(30),
        "hand image change undone",
        async || {
            let l = swarm.inspect_service("kargo-pb_app").await.ok()??;
            (l.spec
                .pointer("/TaskTemplate/ContainerSpec/Image")?
                .as_str()?
                == common::image("1.0"))
            .then_some(())
        },
    )
    .await;
    swarm.remove_service(&live.id).await.expect("hand rm");
    eventually(
        Duration::from_secs(30),
        "removed service recreated",
        async || {
            swarm
                .inspect_service("kargo-pb_app")
                .await
                .ok()?
                .map(|_| ())
        },
    )
    .await;

    // Events were recorded.
    let (events, _) = store
        .kv()
        .range(&format!("{PREFIX}/events/service/app/"))
        .await
        .expect("events");
    assert!(!events.is_empty(), "events recorded for service app");

    // A broken update: the task error shows in status; past the deadline the stack
    // rolls back by itself to the last Ready specs.
    eventually(Duration::from_secs(60), "pb Ready again", async || {
        ready(&store, Kind::Stack, "pb").await.then_some(())
    })
    .await;
    let mut app_obj = store
        .get(Kind::Service, "app")
        .await
        .expect("get")
        .expect("app");
    app_obj.spec["image"] = serde_json::json!(common::image("missing"));
    store.update(&app_obj, None).await.expect("break the image");
    let seen_error = eventually(
        Duration::from_secs(60),
        "the task error in status",
        async || {
            let st: ServiceStatus = status(&store, Kind::Service, "app").await;
            let msg = st
                .common
                .condition("Ready")
                .map(|c| c.message.clone())
                .unwrap_or_default();
            (!st.task_errors.is_empty() || msg.contains("No such image")).then_some(msg)
        },
    )
    .await;
    assert!(!seen_error.is_empty());
    eventually(
        Duration::from_secs(90),
        "automatic rollback to the last Ready image",
        async || {
            let o = store.get(Kind::Service, "app").await.ok()??;
            (o.spec["image"] == serde_json::json!(common::image("1.0"))).then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "pb Ready after the rollback",
        async || ready(&store, Kind::Stack, "pb").await.then_some(()),
    )
    .await;
    let pb: StackStatus = status(&store, Kind::Stack, "pb").await;
    assert!(pb.last_ready_revision.is_some());

    // Graceful shutdown.
    ctl.signal("TERM");
    assert_eq!(
        ctl.wait_exit(Duration::from_secs(20)),
        Some(0),
        "log:\n{}",
        ctl.log()
    );
    // The sensitive file reached Swarm as a secret, and never the log, get or render.
    assert!(
        swarm
            .list_files(PREFIX, true)
            .await
            .expect("secrets")
            .iter()
            .any(|s| s.name.starts_with("token-"))
    );
    assert!(
        !ctl.log().contains("t0p-s3cret-value"),
        "secret in the controller's log"
    );
    let get = common::kargo(
        PREFIX,
        &["get", "configuration", "main", "-o", "yaml"],
        None,
    );
    assert!(get.status.success(), "{}", common::text(&get.stderr));
    assert!(
        !common::text(&get.stdout).contains("t0p-s3cret-value"),
        "secret in get"
    );
    assert!(common::text(&get.stdout).contains("<redacted>"));
    let render = common::kargo(PREFIX, &["render"], None);
    assert!(
        !common::text(&render.stdout).contains("t0p-s3cret-value"),
        "secret in render"
    );
    assert!(common::text(&render.stdout).contains("<redacted>"));
    drop(ctl);
    common::wipe_prefix(&store).await;
    common::remove_installation(&swarm, PREFIX).await;
    for f in swarm.list_files(PREFIX, true).await.unwrap_or_default() {
        let _ = swarm.remove_file(&f.id, true).await;
    }
}
