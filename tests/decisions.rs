//! Reconcile decisions, without Docker or etcd: the real `Reconciler` over the in-memory
//! store and the in-memory `FakeSwarm` (whose behaviour `tests/swarm_contract.rs` checks
//! against the engine). Each test states what a user would notice.

mod common;

use std::collections::BTreeMap;

use kargo::api::{DynamicObject, Kind, ServiceStatus, StackStatus};
use kargo::controller::events::EventRecorder;
use kargo::controller::{PassReport, Reconciler};
use kargo::store::{Precondition, Store};
use kargo::swarm::names::{
    INSTALLATION_LABEL, OWNER_LABEL, SPEC_HASH_LABEL, STACK_NAMESPACE_LABEL,
};
use kargo::swarm::{FAKE_NODE_HOSTNAME, FakeSwarm, LiveService, Swarm, WriteKind};
use serde_json::{Value, json};

const IMAGE: &str = "kargo-busybox:1.0";
const IMAGE2: &str = "kargo-busybox:1.1";
const MISSING: &str = "kargo-busybox:missing";

/// The in-memory store and Swarm, and a second Docker client for changes made by hand.
struct World {
    store: Store,
    swarm: FakeSwarm,
    hand: FakeSwarm,
    events: EventRecorder,
    registries: kargo::registry::RegistryState,
}

fn no_catalog(_: &str) -> Option<Value> {
    None
}

impl World {
    fn new() -> Self {
        let store = Store::in_memory();
        let swarm = FakeSwarm::new();
        swarm.missing_image(MISSING);
        World {
            events: EventRecorder::new(store.clone()),
            registries: Default::default(),
            hand: swarm.client(),
            store,
            swarm,
        }
    }

    /// A world where `yaml` is applied and Ready.
    async fn deployed(yaml: &str) -> Self {
        let w = World::new();
        w.apply(yaml).await;
        w.converge().await;
        w
    }

    fn reconciler(&self) -> Reconciler<'_> {
        Reconciler {
            store: &self.store,
            cache: None,
            swarm: &self.swarm,
            configuration: "main",
            fence: None,
            catalog: &no_catalog,
            events: &self.events,
            metrics: None,
            keys: None,
            registries: &self.registries,
        }
    }

    async fn apply(&self, yaml: &str) {
        for o in common::objects(yaml) {
            self.store.apply(&o).await.expect("apply");
        }
    }

    async fn pass(&self) -> PassReport {
        self.reconciler().pass().await.expect("pass")
    }

    /// Passes until everything is Ready (the fake settles at once, so a few suffice).
    async fn converge(&self) -> PassReport {
        for _ in 0..5 {
            let r = self.pass().await;
            if r.all_ready {
                return r;
            }
        }
        panic!("not Ready after 5 passes: {:?}", self.pass().await);
    }

    async fn live(&self, name: &str) -> Option<LiveService> {
        self.swarm.inspect_service(name).await.expect("inspect")
    }

    async fn live_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .swarm
            .list_services(self.store.prefix())
            .await
            .expect("list")
            .into_iter()
            .map(|s| s.name)
            .collect();
        names.sort();
        names
    }

    async fn object(&self, kind: Kind, name: &str) -> Option<DynamicObject> {
        self.store.get(kind, name).await.expect("get")
    }

    async fn service_status(&self, name: &str) -> ServiceStatus {
        let o = self.object(Kind::Service, name).await.expect("service");
        serde_json::from_value(o.status.unwrap_or_default()).unwrap_or_default()
    }

    async fn stack_status(&self, name: &str) -> StackStatus {
        let o = self.object(Kind::Stack, name).await.expect("stack");
        serde_json::from_value(o.status.unwrap_or_default()).unwrap_or_default()
    }

    /// (status, reason, message) of an object's Ready condition.
    async fn ready(&self, kind: Kind, name: &str) -> (String, String, String) {
        let o = self.object(kind, name).await.expect("object");
        let status = o.status.unwrap_or_default();
        let c = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        (s("status"), s("reason"), s("message"))
    }

    /// (status, reason, message) of an object's condition of type `type_`.
    async fn condition(&self, kind: Kind, name: &str, type_: &str) -> (String, String, String) {
        let o = self.object(kind, name).await.expect("object");
        let status = o.status.unwrap_or_default();
        let c = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == type_))
            .cloned()
            .unwrap_or_default();
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        (s("status"), s("reason"), s("message"))
    }

    /// The store's revision: any etcd write (status, event, history) moves it.
    async fn revision(&self) -> i64 {
        self.store.kv().range("/").await.expect("range").1
    }

    /// Reasons of the events recorded for an object.
    async fn event_reasons(&self, kind: &str, name: &str) -> Vec<String> {
        let prefix = format!("{}/events/{kind}/{name}/", self.store.prefix());
        let (entries, _) = self.store.kv().range(&prefix).await.expect("range");
        entries
            .iter()
            .filter_map(|e| serde_json::from_slice::<Value>(&e.value).ok())
            .filter_map(|v| v["reason"].as_str().map(str::to_string))
            .collect()
    }

    /// A change made by hand with the Docker CLI (not counted as kargo's).
    async fn by_hand(&self, name: &str, change: impl FnOnce(&mut Value)) {
        let live = self.live(name).await.expect("live service");
        let mut spec = live.spec.clone();
        change(&mut spec);
        self.hand
            .update_service(&live.id, name, live.version, &spec, None)
            .await
            .expect("hand update");
    }

    fn writes(&self, kind: WriteKind) -> u64 {
        self.swarm.writes().get(&kind).copied().unwrap_or(0)
    }
}

fn image_of(live: &LiveService) -> &str {
    live.spec
        .pointer("/TaskTemplate/ContainerSpec/Image")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn replicas_of(live: &LiveService) -> u64 {
    live.spec
        .pointer("/Mode/Replicated/Replicas")
        .and_then(Value::as_u64)
        .unwrap_or_default()
}

/// A Configuration `main` over Environment `prod` listing `stacks` (rollout as given).
fn config(stacks: &[&str], rollout: &str, extra_env: &str) -> String {
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: prod, defaults: none}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: prod}}
spec:
  stacks: [{stacks}]
  rollout: {rollout}
{extra_env}
"#,
        stacks = stacks.join(", ")
    )
}

fn stack(name: &str, services: &[&str], extra: &str) -> String {
    format!(
        "---\napiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {{name: {name}}}\nspec:\n  services: [{}]\n{extra}\n",
        services.join(", ")
    )
}

fn service(name: &str, image: &str, replicas: u32, extra: &str) -> String {
    format!(
        r#"---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: {name}}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  networks: [back]
  endpointMode: dnsrr
  deploy:
    replicas: {replicas}
{extra}
"#
    )
}

/// One Stack `web` with one Service `app` (2 replicas).
fn web(image: &str, replicas: u32, service_extra: &str) -> String {
    format!(
        "{}{}{}",
        config(&["web"], "parallel", ""),
        stack("web", &["app"], ""),
        service("app", image, replicas, service_extra)
    )
}

const APP: &str = "kargo-web_app";

// ---- apply and steady state ----

#[tokio::test]
async fn apply_creates_the_service_with_kargo_names_labels_and_spec() {
    let w = World::deployed(&web(IMAGE, 2, "  env: {GREETING: hello}")).await;
    let live = w.live(APP).await.expect("created");
    assert_eq!(image_of(&live), IMAGE);
    assert_eq!(replicas_of(&live), 2);
    let label = |k: &str| live.labels.get(k).map(String::as_str);
    assert_eq!(label(OWNER_LABEL), Some("web/app"));
    assert_eq!(label(STACK_NAMESPACE_LABEL), Some("kargo-web"));
    assert_eq!(label(INSTALLATION_LABEL), Some(w.store.prefix()));
    assert!(label(SPEC_HASH_LABEL).is_some());
    let env = live.spec.pointer("/TaskTemplate/ContainerSpec/Env");
    assert_eq!(env, Some(&json!(["GREETING=hello"])));
    let st = w.service_status("app").await;
    assert_eq!(st.service_id.as_deref(), Some(live.id.as_str()));
    assert_eq!((st.running_tasks, st.desired_tasks), (2, 2));
    assert_eq!(st.swarm_name.as_deref(), Some(APP));
    assert_eq!(w.ready(Kind::Stack, "web").await.1, "Converged");
    assert!(
        w.event_reasons("service", "app")
            .await
            .contains(&"Created".to_string())
    );
}

#[tokio::test]
async fn kargo_finalizers_are_added_to_deployed_stacks_and_services() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    for kind in [Kind::Stack, Kind::Service] {
        let name = if kind == Kind::Stack { "web" } else { "app" };
        let o = w.object(kind, name).await.expect("object");
        assert!(o.metadata.finalizers.iter().any(|f| f == "kargo.dev/swarm"));
    }
}

#[tokio::test]
async fn a_converged_pass_makes_no_docker_and_no_etcd_write() {
    let w = World::deployed(&web(IMAGE, 2, "")).await;
    let revision = w.revision().await;
    for _ in 0..3 {
        let r = w.pass().await;
        assert_eq!((r.docker_writes, r.etcd_writes), (0, 0), "{r:?}");
        assert!(r.all_ready);
    }
    assert_eq!(
        w.revision().await,
        revision,
        "an etcd write (status, event, history)"
    );
}

#[tokio::test]
async fn reconcile_key_of_a_converged_stack_awaits_change_and_writes_nothing() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    let revision = w.revision().await;
    let before = w.swarm.total_writes();
    let r = w.reconciler();
    let action = r.reconcile_key("stack/web").await.expect("reconcile");
    assert_eq!(action, kargo::controller::Action::AwaitChange);
    r.reconcile_key("installation").await.expect("installation");
    assert_eq!(w.swarm.total_writes(), before);
    assert_eq!(w.revision().await, revision);
}

#[tokio::test]
async fn reconcile_key_of_a_converging_stack_asks_to_look_again() {
    let w = World::new();
    w.apply(&web(IMAGE, 1, "")).await;
    w.swarm.hold_tasks(true);
    let action = w
        .reconciler()
        .reconcile_key("stack/web")
        .await
        .expect("reconcile");
    assert!(matches!(action, kargo::controller::Action::RequeueAfter(_)));
    assert!(w.live(APP).await.is_some(), "created while converging");
    assert_eq!(w.ready(Kind::Service, "app").await.1, "TasksPending");
}

#[tokio::test]
async fn a_changed_spec_updates_in_place_with_a_higher_version() {
    let w = World::new();
    w.apply(&web(IMAGE, 1, "")).await;
    w.converge().await;
    let first = w.live(APP).await.expect("live");
    w.apply(&web(IMAGE2, 1, "")).await;
    w.converge().await;
    assert_eq!(w.writes(WriteKind::ServiceUpdate), 1, "one update");
    let now = w.live(APP).await.expect("live");
    assert_eq!(now.id, first.id, "the same Swarm service");
    assert!(now.version > first.version);
    assert_eq!(image_of(&now), IMAGE2);
    assert_eq!(w.service_status("app").await.image.as_deref(), Some(IMAGE2));
    assert!(
        w.event_reasons("service", "app")
            .await
            .contains(&"Updated".to_string())
    );
}

// ---- drift by hand, corrected ----

#[tokio::test]
async fn hand_scaling_is_undone() {
    let w = World::deployed(&web(IMAGE, 2, "")).await;
    w.by_hand(APP, |s| s["Mode"]["Replicated"]["Replicas"] = json!(5))
        .await;
    let r = w.pass().await;
    assert_eq!(r.docker_writes, 1);
    assert_eq!(w.writes(WriteKind::ServiceUpdate), 1);
    assert_eq!(replicas_of(&w.live(APP).await.expect("live")), 2);
    // The pass that pushes judges the service after its push, not as it saw it before.
    assert_eq!(w.service_status("app").await.running_tasks, 2);
}

#[tokio::test]
async fn a_hand_changed_image_is_undone() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    w.by_hand(APP, |s| {
        s["TaskTemplate"]["ContainerSpec"]["Image"] = json!(IMAGE2)
    })
    .await;
    w.converge().await;
    assert_eq!(image_of(&w.live(APP).await.expect("live")), IMAGE);
}

#[tokio::test]
async fn a_hand_added_environment_variable_is_undone() {
    let w = World::deployed(&web(IMAGE, 1, "  env: {A: \"1\"}")).await;
    w.by_hand(APP, |s| {
        s["TaskTemplate"]["ContainerSpec"]["Env"] = json!(["A=1", "DEBUG=true"]);
    })
    .await;
    w.converge().await;
    let live = w.live(APP).await.expect("live");
    assert_eq!(
        live.spec.pointer("/TaskTemplate/ContainerSpec/Env"),
        Some(&json!(["A=1"]))
    );
}

#[tokio::test]
async fn a_hand_changed_environment_value_is_undone() {
    let w = World::deployed(&web(IMAGE, 1, "  env: {A: \"1\"}")).await;
    w.by_hand(APP, |s| {
        s["TaskTemplate"]["ContainerSpec"]["Env"] = json!(["A=2"])
    })
    .await;
    w.converge().await;
    let live = w.live(APP).await.expect("live");
    assert_eq!(
        live.spec.pointer("/TaskTemplate/ContainerSpec/Env"),
        Some(&json!(["A=1"]))
    );
}

#[tokio::test]
async fn a_hand_changed_label_is_undone() {
    let w = World::deployed(&web(IMAGE, 1, "  labels: {team: web}")).await;
    w.by_hand(APP, |s| s["Labels"]["team"] = json!("ops")).await;
    w.converge().await;
    let live = w.live(APP).await.expect("live");
    assert_eq!(live.labels.get("team").map(String::as_str), Some("web"));
}

#[tokio::test]
async fn a_hand_removed_spec_hash_label_is_put_back() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    let hash = w.live(APP).await.expect("live").labels[SPEC_HASH_LABEL].clone();
    w.by_hand(APP, |s| {
        s["Labels"]
            .as_object_mut()
            .map(|l| l.remove(SPEC_HASH_LABEL));
    })
    .await;
    let r = w.converge().await;
    assert_eq!(r.docker_writes, 1);
    assert_eq!(
        w.live(APP).await.expect("live").labels.get(SPEC_HASH_LABEL),
        Some(&hash)
    );
}

#[tokio::test]
async fn a_service_removed_by_hand_is_recreated() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    let first = w.live(APP).await.expect("live");
    w.hand
        .remove_service(&first.id)
        .await
        .expect("docker service rm");
    w.converge().await;
    let again = w.live(APP).await.expect("recreated");
    assert_ne!(again.id, first.id);
    assert_eq!(w.service_status("app").await.service_id, Some(again.id));
}

#[tokio::test]
async fn hand_changes_to_fields_kargo_does_not_set_are_left_alone() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    w.by_hand(APP, |s| {
        s["TaskTemplate"]["ContainerSpec"]["Hostname"] = json!("by-hand");
    })
    .await;
    let r = w.pass().await;
    assert_eq!(r.docker_writes, 0, "kargo compares only the fields it sets");
}

// ---- failed specs ----

/// A Stack whose updates fail fast: Swarm rolls a failed update back.
fn failing_web(image: &str, stack_extra: &str) -> String {
    format!(
        "{}{}{}",
        config(&["web"], "parallel", ""),
        stack("web", &["app"], stack_extra),
        service(
            "app",
            image,
            1,
            "    updateConfig: {parallelism: 1, failureAction: rollback}"
        )
    )
}

#[tokio::test]
async fn an_update_swarm_rolls_back_is_marked_failed_and_not_pushed_again() {
    let w = World::deployed(&failing_web(IMAGE, "")).await;
    w.apply(&failing_web(MISSING, "")).await;
    // The pass that pushes judges what it saw before; the next one sees the rollback.
    w.pass().await;
    w.pass().await;
    let st = w.service_status("app").await;
    assert_eq!(st.failed_spec_hash, st.spec_hash, "{st:?}");
    assert_eq!(w.ready(Kind::Service, "app").await.1, "RolledBack");
    let (ready, reason, message) = w.ready(Kind::Stack, "web").await;
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "UpdateFailed"));
    assert!(message.contains("app"), "{message}");
    assert_eq!(
        image_of(&w.live(APP).await.expect("live")),
        IMAGE,
        "Swarm rolled back"
    );
    for _ in 0..3 {
        let r = w.pass().await;
        assert_eq!(r.docker_writes, 0, "a failed spec was pushed again");
    }
    assert!(
        w.event_reasons("service", "app")
            .await
            .contains(&"RolledBack".to_string())
    );
}

#[tokio::test]
async fn a_spec_past_its_progress_deadline_is_failed_and_not_pushed_again() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    let stack_extra = "  progressDeadlineSeconds: 0";
    let yaml = format!(
        "{}{}{}",
        config(&["web"], "parallel", ""),
        stack("web", &["app"], stack_extra),
        service("app", MISSING, 1, "")
    );
    w.apply(&yaml).await;
    w.pass().await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    w.pass().await;
    let st = w.service_status("app").await;
    assert!(st.failed_spec_hash.is_some(), "{st:?}");
    assert!(
        st.task_errors.iter().any(|e| e.contains("No such image")),
        "{:?}",
        st.task_errors
    );
    let r = w.pass().await;
    assert_eq!(r.docker_writes, 0);
    let (_, reason, message) = w.ready(Kind::Service, "app").await;
    assert_eq!(reason, "UpdateFailed");
    assert!(message.contains("not pushed again"), "{message}");
}

#[tokio::test]
async fn a_failed_spec_is_pushed_once_it_changes() {
    let w = World::deployed(&failing_web(IMAGE, "")).await;
    w.apply(&failing_web(MISSING, "")).await;
    w.pass().await;
    w.pass().await;
    assert!(w.service_status("app").await.failed_spec_hash.is_some());
    w.apply(&failing_web(IMAGE2, "")).await;
    w.converge().await;
    assert_eq!(image_of(&w.live(APP).await.expect("live")), IMAGE2);
    assert_eq!(w.ready(Kind::Stack, "web").await.0, "True");
}

/// A fixed spec pushed after Swarm rolled the failed one back is judged after its push
/// (whose UpdateStatus is the new update, not the old `rollback_completed`): it is not
/// recorded as failed, and a later hand change is undone.
#[tokio::test]
async fn a_spec_pushed_after_a_swarm_rollback_is_judged_on_its_own() {
    let w = World::deployed(&failing_web(IMAGE, "")).await;
    w.apply(&failing_web(MISSING, "")).await;
    w.pass().await;
    w.pass().await;
    w.apply(&failing_web(IMAGE2, "")).await;
    w.converge().await;
    let st = w.service_status("app").await;
    assert_eq!(st.failed_spec_hash, None, "{st:?}");
    w.by_hand(APP, |s| s["Mode"]["Replicated"]["Replicas"] = json!(3))
        .await;
    let r = w.pass().await;
    assert_eq!(r.docker_writes, 1, "the drift is undone");
}

#[tokio::test]
async fn a_paused_update_is_not_ready_and_says_why() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    w.apply(&web(MISSING, 1, "")).await;
    w.pass().await;
    let r = w.pass().await;
    assert!(!r.all_ready);
    let (ready, reason, message) = w.ready(Kind::Service, "app").await;
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "UpdatePaused"));
    assert!(message.contains("paused"), "{message}");
    assert_eq!(
        w.service_status("app").await.update_state.as_deref(),
        Some("paused")
    );
}

#[tokio::test]
async fn crashing_tasks_show_their_error_in_the_status() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    w.swarm.fail_tasks(APP, "task: non-zero exit (137)");
    let r = w.pass().await;
    assert!(!r.all_ready);
    let (_, reason, message) = w.ready(Kind::Service, "app").await;
    assert_eq!(reason, "TasksFailing");
    assert!(message.contains("non-zero exit"), "{message}");
}

// ---- rollback ----

#[tokio::test]
async fn rollback_auto_writes_the_last_ready_specs_back() {
    let w = World::new();
    let yaml = |image: &str| {
        format!(
            "{}{}{}",
            config(&["web"], "parallel", ""),
            stack(
                "web",
                &["app"],
                "  rollback: auto\n  progressDeadlineSeconds: 0"
            ),
            service("app", image, 1, "")
        )
    };
    w.apply(&yaml(IMAGE)).await;
    w.converge().await;
    assert!(w.stack_status("web").await.last_ready_revision.is_some());
    w.apply(&yaml(MISSING)).await;
    w.pass().await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    w.pass().await;
    let stored = w.object(Kind::Service, "app").await.expect("app");
    assert_eq!(
        stored.spec["image"],
        json!(IMAGE),
        "the Service's spec rolled back"
    );
    assert!(
        w.event_reasons("stack", "web")
            .await
            .contains(&"RolledBack".to_string())
    );
    w.converge().await;
    assert_eq!(image_of(&w.live(APP).await.expect("live")), IMAGE);
    assert_eq!(w.ready(Kind::Stack, "web").await.0, "True");
}

/// Today's behaviour, reported: when Swarm rolled the update back itself
/// (`failureAction: rollback`) and `rollback: auto` writes back the same specs, nothing
/// is pushed (the live spec already matches), Swarm's UpdateStatus keeps saying
/// `rollback_completed`, and the Stack stays not Ready (RolledBack) until the next change.
#[tokio::test]
async fn today_auto_rollback_after_a_swarm_rollback_stays_not_ready() {
    let w = World::deployed(&failing_web(IMAGE, "  rollback: auto")).await;
    w.apply(&failing_web(MISSING, "  rollback: auto")).await;
    for _ in 0..4 {
        w.pass().await;
    }
    let stored = w.object(Kind::Service, "app").await.expect("app");
    assert_eq!(
        stored.spec["image"],
        json!(IMAGE),
        "the Service's spec rolled back"
    );
    assert_eq!(image_of(&w.live(APP).await.expect("live")), IMAGE);
    let r = w.pass().await;
    assert!(!r.all_ready);
    assert_eq!(r.docker_writes, 0);
    assert_eq!(w.ready(Kind::Service, "app").await.1, "RolledBack");
}

#[tokio::test]
async fn rollback_manual_leaves_the_failed_spec_in_place() {
    let w = World::deployed(&failing_web(IMAGE, "")).await;
    w.apply(&failing_web(MISSING, "")).await;
    for _ in 0..2 {
        w.pass().await;
    }
    let stored = w.object(Kind::Service, "app").await.expect("app");
    assert_eq!(
        stored.spec["image"],
        json!(MISSING),
        "manual: waits for a person"
    );
    assert_eq!(w.ready(Kind::Stack, "web").await.1, "UpdateFailed");
}

/// `rollback: auto` never recreates a Service deleted since the last Ready set (deletion
/// is intent): it rolls the others back, leaves that one deleted, and the Stack says so.
#[tokio::test]
async fn rollback_auto_leaves_a_service_deleted_since_the_ready_set_deleted() {
    let w = World::new();
    let yaml = |app_image: &str, services: &[&str], with_worker: bool| {
        let mut y = format!(
            "{}{}{}",
            config(&["web"], "parallel", ""),
            stack("web", services, "  rollback: auto"),
            service(
                "app",
                app_image,
                1,
                "    updateConfig: {parallelism: 1, failureAction: rollback}"
            )
        );
        if with_worker {
            y.push_str(&service("worker", IMAGE, 1, ""));
        }
        y
    };
    w.apply(&yaml(IMAGE, &["app", "worker"], true)).await;
    w.converge().await;
    // Both specs changed after the Ready set (so the record differs from what is stored).
    w.apply(&yaml(IMAGE2, &["app", "worker"], true)).await;
    w.converge().await;
    w.apply(&yaml(IMAGE, &["app"], false)).await;
    w.store
        .delete(Kind::Service, "worker", None, None)
        .await
        .expect("delete worker");
    w.converge().await;
    assert!(
        w.object(Kind::Service, "worker").await.is_none(),
        "finalizer released"
    );
    assert!(w.live("kargo-web_worker").await.is_none());
    // The last Ready set is {app}: the deleted Service is no longer in it...
    let records = w.store.history("web").await.expect("history");
    let last = records.last().expect("a record");
    assert!(!last.services.contains_key("worker"), "{last:?}");
    // ...but an older one is; failing now rolls back to the last set only.
    w.apply(&yaml(MISSING, &["app"], false)).await;
    w.pass().await;
    w.pass().await;
    assert!(
        w.object(Kind::Service, "worker").await.is_none(),
        "recreated"
    );
    assert_eq!(
        w.object(Kind::Service, "app").await.expect("app").spec["image"],
        json!(IMAGE)
    );

    // A record that still names the deleted Service: auto rollback fails the reconcile.
    let w = World::deployed(&yaml(IMAGE, &["app", "worker"], true)).await;
    w.apply(&yaml(IMAGE2, &["app", "worker"], true)).await;
    w.converge().await;
    // The Service is deleted and the Stack's update fails before a new Ready set.
    w.apply(&yaml(MISSING, &["app"], false)).await;
    w.store
        .delete(Kind::Service, "worker", None, None)
        .await
        .expect("delete worker");
    w.pass().await;
    let report = w.reconciler().pass().await;
    let last = w.store.history("web").await.expect("history");
    assert!(
        last.last()
            .is_some_and(|r| r.services.contains_key("worker"))
    );
    assert!(report.is_ok(), "the pass goes on: {report:?}");
    assert_eq!(
        w.object(Kind::Service, "app").await.expect("app").spec["image"],
        json!(IMAGE2),
        "the rest of the last Ready set is restored"
    );
    assert!(
        w.object(Kind::Service, "worker").await.is_none(),
        "the deleted Service is not recreated"
    );
    assert!(w.live("kargo-web_worker").await.is_none(), "not recreated");
}

// ---- order ----

fn depends_yaml() -> String {
    format!(
        "{}{}{}{}",
        config(&["web"], "parallel", ""),
        stack("web", &["db", "app"], ""),
        service("db", IMAGE, 1, ""),
        service("app", IMAGE, 1, "  dependsOn: [db]")
    )
}

#[tokio::test]
async fn depends_on_waits_for_the_service_to_be_ready() {
    let w = World::new();
    w.apply(&depends_yaml()).await;
    w.swarm.hold_tasks(true);
    w.pass().await;
    assert_eq!(w.live_names().await, vec!["kargo-web_db".to_string()]);
    let (_, reason, message) = w.ready(Kind::Service, "app").await;
    assert_eq!(reason, "WaitingForService");
    assert!(message.contains("db"), "{message}");
    w.swarm.hold_tasks(false);
    w.converge().await;
    assert_eq!(
        w.live_names().await,
        vec![APP.to_string(), "kargo-web_db".to_string()]
    );
}

#[tokio::test]
async fn an_existing_dependent_is_still_converged_while_its_dependency_is_not_ready() {
    let w = World::new();
    w.apply(&depends_yaml()).await;
    w.converge().await;
    w.swarm.hold_tasks(true);
    w.by_hand(APP, |s| s["Mode"]["Replicated"]["Replicas"] = json!(3))
        .await;
    w.by_hand("kargo-web_db", |s| {
        s["TaskTemplate"]["ContainerSpec"]["Image"] = json!(IMAGE2)
    })
    .await;
    w.pass().await;
    assert_eq!(replicas_of(&w.live(APP).await.expect("live")), 1);
}

fn ordered_yaml(rollout: &str) -> String {
    format!(
        "{}{}{}{}{}",
        config(&["base", "web"], rollout, ""),
        stack("base", &["db"], ""),
        stack("web", &["app"], ""),
        service("db", IMAGE, 1, ""),
        service("app", IMAGE, 1, "")
    )
}

#[tokio::test]
async fn an_ordered_rollout_waits_for_the_previous_stack() {
    let w = World::new();
    w.apply(&ordered_yaml("ordered")).await;
    w.swarm.hold_tasks(true);
    w.pass().await;
    assert_eq!(w.live_names().await, vec!["kargo-base_db".to_string()]);
    let (_, reason, message) = w.ready(Kind::Stack, "web").await;
    assert_eq!(reason, "WaitingForStack");
    assert!(message.contains("base"), "{message}");
    assert_eq!(w.ready(Kind::Service, "app").await.1, "WaitingForStack");
    w.swarm.hold_tasks(false);
    w.converge().await;
    assert_eq!(w.live_names().await.len(), 2);
}

#[tokio::test]
async fn a_parallel_rollout_deploys_every_stack_at_once() {
    let w = World::new();
    w.apply(&ordered_yaml("parallel")).await;
    w.swarm.hold_tasks(true);
    w.pass().await;
    assert_eq!(w.live_names().await.len(), 2);
}

#[tokio::test]
async fn a_stack_depends_on_another_even_in_a_parallel_rollout() {
    let w = World::new();
    let yaml = format!(
        "{}{}{}{}{}",
        config(&["base", "web"], "parallel", ""),
        stack("base", &["db"], ""),
        stack("web", &["app"], "  dependsOn: [base]"),
        service("db", IMAGE, 1, ""),
        service("app", IMAGE, 1, "")
    );
    w.apply(&yaml).await;
    w.swarm.hold_tasks(true);
    w.pass().await;
    assert_eq!(w.live_names().await, vec!["kargo-base_db".to_string()]);
    w.swarm.hold_tasks(false);
    w.converge().await;
    assert_eq!(w.live_names().await.len(), 2);
}

// ---- removal ----

#[tokio::test]
async fn suspend_removes_the_stacks_services_and_resume_recreates_them() {
    let w = World::new();
    w.apply(&web(IMAGE, 1, "")).await;
    w.converge().await;
    let suspended = stack("web", &["app"], "  suspend: true");
    w.apply(&suspended).await;
    w.pass().await;
    assert!(w.live_names().await.is_empty());
    let (ready, reason, _) = w.ready(Kind::Stack, "web").await;
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "Suspended"));
    assert!(
        w.event_reasons("stack", "web")
            .await
            .contains(&"Removed".to_string())
    );
    w.apply(&web(IMAGE, 1, "")).await;
    w.converge().await;
    assert_eq!(w.live_names().await, vec![APP.to_string()]);
}

#[tokio::test]
async fn a_deleted_stack_loses_its_services_then_its_finalizer() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    w.store
        .delete(Kind::Stack, "web", None, None)
        .await
        .expect("delete");
    assert!(
        w.object(Kind::Stack, "web").await.is_some(),
        "held by the finalizer"
    );
    w.pass().await;
    w.pass().await;
    assert!(w.live_names().await.is_empty());
    assert!(
        w.object(Kind::Stack, "web").await.is_none(),
        "finalizer released"
    );
}

#[tokio::test]
async fn a_service_taken_out_of_its_stack_is_removed_and_the_others_stay() {
    let w = World::new();
    let yaml = |services: &[&str]| {
        format!(
            "{}{}{}{}",
            config(&["web"], "parallel", ""),
            stack("web", services, ""),
            service("db", IMAGE, 1, ""),
            service("app", IMAGE, 1, "")
        )
    };
    w.apply(&yaml(&["db", "app"])).await;
    w.converge().await;
    let db = w.live("kargo-web_db").await.expect("db");
    w.apply(&yaml(&["db"])).await;
    w.converge().await;
    assert_eq!(w.live_names().await, vec!["kargo-web_db".to_string()]);
    assert_eq!(
        w.live("kargo-web_db").await.expect("db").version,
        db.version
    );
}

#[tokio::test]
async fn a_service_name_taken_twice_in_a_stack_is_refused_and_nothing_is_removed() {
    let w = World::new();
    w.apply(&format!(
        "{}{}{}{}",
        config(&["web"], "parallel", ""),
        stack("web", &["db", "app"], ""),
        service("db", IMAGE, 1, ""),
        service("app", IMAGE, 2, "")
    ))
    .await;
    w.converge().await;
    let db = w.live("kargo-web_db").await.expect("db");
    // `app` now says it is `db` inside the Stack: the same Swarm service as the Service db.
    // (Applied alone: `kargo validate` refuses it beside its Stack.)
    w.apply(&service("app", IMAGE, 2, "  serviceName: db"))
        .await;
    for _ in 0..2 {
        let report = w.pass().await;
        assert!(!report.all_ready);
        assert_eq!(
            report.docker_writes, 0,
            "nothing is created, updated or removed"
        );
    }
    let (status, reason, message) = w.ready(Kind::Stack, "web").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ServiceNameTaken")
    );
    assert!(
        message.contains("\"app\"") && message.contains("kargo-web_db"),
        "{message}"
    );
    assert_eq!(
        w.live_names().await,
        vec!["kargo-web_app".to_string(), "kargo-web_db".to_string()],
        "nothing is removed"
    );
    let live = w.live("kargo-web_db").await.expect("db");
    assert_eq!(
        (live.version, replicas_of(&live)),
        (db.version, 1),
        "the first Service keeps its Swarm service, untouched"
    );
}

#[tokio::test]
async fn a_stack_taken_out_of_the_environment_is_removed() {
    let w = World::deployed(&ordered_yaml("parallel")).await;
    w.apply(&config(&["base"], "parallel", "")).await;
    w.converge().await;
    assert_eq!(w.live_names().await, vec!["kargo-base_db".to_string()]);
    assert_eq!(w.ready(Kind::Stack, "web").await.1, "NotDeployed");
}

#[tokio::test]
async fn orphan_cascade_leaves_the_service_running_without_kargo_labels() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    let id = w.live(APP).await.expect("live").id;
    w.store
        .modify(Kind::Stack, "web", None, |o| {
            o.metadata
                .annotations
                .insert("kargo.dev/cascade".into(), "orphan".into());
        })
        .await
        .expect("annotate");
    w.store
        .delete(Kind::Stack, "web", None, None)
        .await
        .expect("delete");
    w.pass().await;
    w.pass().await;
    let live = w.live(APP).await.expect("left running");
    assert_eq!(live.id, id);
    assert!(!live.labels.contains_key(OWNER_LABEL), "{:?}", live.labels);
    assert!(w.object(Kind::Stack, "web").await.is_none());
}

// ---- adoption ----

async fn foreign_service(w: &World) -> String {
    let spec = json!({
        "Name": APP,
        "Labels": {"com.docker.stack.namespace": "web"},
        "TaskTemplate": {"ContainerSpec": {"Image": IMAGE}},
        "Mode": {"Replicated": {"Replicas": 1}},
    });
    w.hand
        .create_service(APP, &spec, None)
        .await
        .expect("docker stack deploy")
}

#[tokio::test]
async fn a_same_named_service_kargo_does_not_own_is_not_touched() {
    let w = World::new();
    let id = foreign_service(&w).await;
    w.apply(&web(IMAGE2, 1, "")).await;
    for _ in 0..2 {
        w.pass().await;
    }
    assert_eq!(
        w.writes(WriteKind::ServiceCreate) + w.writes(WriteKind::ServiceUpdate),
        0
    );
    let live = w.live(APP).await.expect("still there");
    assert_eq!((live.id.as_str(), image_of(&live)), (id.as_str(), IMAGE));
    let (ready, reason, message) = w.ready(Kind::Service, "app").await;
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "NotAdopted"));
    assert!(message.contains("adopt: true"), "{message}");
    let warned = w.event_reasons("service", "app").await;
    assert_eq!(
        warned.iter().filter(|r| *r == "NotAdopted").count(),
        1,
        "said once: {warned:?}"
    );
}

#[tokio::test]
async fn adopt_takes_the_service_over_keeping_its_id() {
    let w = World::new();
    let id = foreign_service(&w).await;
    let yaml = format!(
        "{}{}{}",
        config(&["web"], "parallel", "  adopt: true"),
        stack("web", &["app"], ""),
        service("app", IMAGE2, 1, "")
    );
    w.apply(&yaml).await;
    w.converge().await;
    let live = w.live(APP).await.expect("live");
    assert_eq!(live.id, id, "the same service (same volumes)");
    assert_eq!(
        live.labels.get(OWNER_LABEL).map(String::as_str),
        Some("web/app")
    );
    assert_eq!(image_of(&live), IMAGE2);
    assert!(
        w.event_reasons("service", "app")
            .await
            .contains(&"Adopted".to_string())
    );
    let r = w.pass().await;
    assert_eq!(r.docker_writes, 0, "owned now: converged");
}

// ---- configs, secrets, nodes ----

fn files_yaml(greeting: &str) -> String {
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec:
  environment: prod
  defaults: none
  files:
    app.conf: {{content: "greeting={greeting}"}}
    token: {{content: "s3cr3t", sensitive: true}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: prod}}
spec:
  stacks: [web]
  nodes:
    {FAKE_NODE_HOSTNAME}:
      labels: {{zone: a}}
{}{}"#,
        stack("web", &["app"], ""),
        service(
            "app",
            IMAGE,
            1,
            "  configs: [{file: app.conf, target: /etc/app.conf}]\n  secrets: [{file: token}]"
        )
    )
}

#[tokio::test]
async fn files_become_configs_and_secrets_mounted_by_id() {
    let w = World::deployed(&files_yaml("hello")).await;
    let configs = w
        .swarm
        .list_files(w.store.prefix(), false)
        .await
        .expect("configs");
    let secrets = w
        .swarm
        .list_files(w.store.prefix(), true)
        .await
        .expect("secrets");
    assert_eq!(configs.len(), 1);
    assert_eq!(secrets.len(), 1);
    assert!(configs[0].name.starts_with("app.conf-"));
    let live = w.live(APP).await.expect("live");
    let mounted = live
        .spec
        .pointer("/TaskTemplate/ContainerSpec/Configs/0/ConfigID");
    assert_eq!(mounted, Some(&json!(configs[0].id)));
}

#[tokio::test]
async fn a_changed_file_rolls_over_to_a_new_config_and_the_old_one_is_collected() {
    let w = World::deployed(&files_yaml("hello")).await;
    let old = w
        .swarm
        .list_files(w.store.prefix(), false)
        .await
        .expect("configs");
    w.apply(&files_yaml("bonjour")).await;
    w.converge().await;
    // The old config is collected on the pass after the service moved off it.
    w.pass().await;
    let now = w
        .swarm
        .list_files(w.store.prefix(), false)
        .await
        .expect("configs");
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0].name, old[0].name, "content-named: a new config");
    let live = w.live(APP).await.expect("live");
    assert_eq!(
        live.spec
            .pointer("/TaskTemplate/ContainerSpec/Configs/0/ConfigID"),
        Some(&json!(now[0].id))
    );
    // Not tried while a live service still mounted it: one removal, once it moved off.
    assert_eq!(w.writes(WriteKind::ConfigRemove), 1);
    assert_eq!(
        w.writes(WriteKind::SecretCreate),
        1,
        "the unchanged secret stays"
    );
}

#[tokio::test]
async fn node_labels_are_set_and_hand_labels_stay() {
    let w = World::new();
    let node = w.swarm.nodes().await.expect("nodes")[0].clone();
    w.hand
        .set_node_labels(&node.id, &BTreeMap::from([("stray".into(), "x".into())]))
        .await
        .expect("hand label");
    w.apply(&files_yaml("hello")).await;
    w.converge().await;
    let node = w.swarm.nodes().await.expect("nodes")[0].clone();
    assert_eq!(node.labels.get("zone").map(String::as_str), Some("a"));
    assert_eq!(
        node.labels.get("stray").map(String::as_str),
        Some("x"),
        "a label set by hand is never removed: {:?}",
        node.labels
    );
    assert!(
        node.labels
            .keys()
            .any(|k| k.starts_with("dev.kargo.labels.")),
        "kargo records which labels it set: {:?}",
        node.labels
    );
    let r = w.pass().await;
    assert_eq!(r.docker_writes, 0);
}

// ---- jobs ----

#[tokio::test]
async fn a_job_is_ready_when_its_tasks_complete() {
    let w = World::new();
    let yaml = format!(
        "{}{}{}",
        config(&["web"], "parallel", ""),
        stack("web", &["migrate"], ""),
        r#"---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {name: migrate}
spec:
  image: "kargo-busybox:1.0"
  command: ["true"]
  deploy: {mode: replicated-job, replicas: 2}
"#
    );
    w.apply(&yaml).await;
    w.swarm.hold_tasks(true);
    w.pass().await;
    assert_ne!(w.ready(Kind::Service, "migrate").await.0, "True");
    w.swarm.hold_tasks(false);
    w.converge().await;
    let (ready, _, message) = w.ready(Kind::Service, "migrate").await;
    assert_eq!(ready, "True");
    assert!(message.contains("2/2 tasks completed"), "{message}");
}

#[tokio::test]
async fn a_global_service_is_ready_with_one_task_on_the_node() {
    let w = World::new();
    w.apply(&web(IMAGE, 1, "").replace("replicas: 1", "mode: global"))
        .await;
    w.converge().await;
    let st = w.service_status("app").await;
    assert_eq!((st.running_tasks, st.desired_tasks), (1, 1));
}

// ---- fail-safe: doubt never destroys ----

/// The Configuration alone, applied with a one-letter typo in its Environment's name.
const TYPO: &str = "apiVersion: kargo.dev/v1alpha1\nkind: Configuration\nmetadata: {name: main}\nspec: {environment: prdo, defaults: none}\n";

#[tokio::test]
async fn a_typo_in_the_environment_name_removes_nothing() {
    let w = World::new();
    w.apply(&ordered_yaml("parallel")).await;
    w.converge().await;
    let before = w.live_names().await;
    w.apply(TYPO).await;
    for _ in 0..2 {
        let r = w.pass().await;
        assert_eq!(r.docker_writes, 0);
    }
    assert_eq!(w.live_names().await, before);
    let (ready, reason, message) = w.ready(Kind::Configuration, "main").await;
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "EnvironmentNotFound")
    );
    assert!(message.contains("prdo"), "{message}");
    let (_, reason, message) = w.ready(Kind::Stack, "web").await;
    assert_eq!(reason, "EnvironmentNotFound");
    assert!(message.contains("keep running"), "{message}");
}

#[tokio::test]
async fn a_configuration_deleted_after_it_was_in_force_removes_nothing() {
    let w = World::deployed(&ordered_yaml("parallel")).await;
    let before = w.live_names().await;
    w.store
        .delete(Kind::Configuration, "main", None, None)
        .await
        .expect("delete");
    for _ in 0..2 {
        assert_eq!(w.pass().await.docker_writes, 0);
    }
    assert_eq!(w.live_names().await, before);
    assert_eq!(w.ready(Kind::Stack, "web").await.1, "ConfigurationNotFound");
}

#[tokio::test]
async fn without_any_configuration_ever_every_stack_is_deployed() {
    let w = World::new();
    let yaml = format!(
        "{}{}",
        stack("web", &["app"], ""),
        service("app", IMAGE, 1, "")
    );
    w.apply(&yaml).await;
    w.converge().await;
    assert_eq!(w.live_names().await, vec![APP.to_string()]);
}

#[tokio::test]
async fn a_corrupt_value_in_etcd_keeps_its_stack_running() {
    let w = World::deployed(&ordered_yaml("parallel")).await;
    let before = w.live_names().await;
    let key = format!("{}/registry/kargo.dev/services/app", w.store.prefix());
    w.store
        .kv()
        .put(&key, b"not json {".to_vec(), Precondition::Any, None)
        .await
        .expect("put");
    for _ in 0..2 {
        w.pass().await;
    }
    assert_eq!(
        w.live_names().await,
        before,
        "a corrupt value removed a service"
    );
    let (ready, reason, _) = w.ready(Kind::Stack, "web").await;
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "InvalidObject")
    );
    assert_eq!(
        w.ready(Kind::Stack, "base").await.0,
        "True",
        "the other Stack goes on"
    );
}

#[tokio::test]
async fn a_listed_stack_that_is_missing_freezes_removal() {
    let w = World::deployed(&ordered_yaml("parallel")).await;
    // `web` leaves the list while a listed Stack `bsae` does not exist: doubt.
    w.apply(&config(&["bsae"], "parallel", "")).await;
    for _ in 0..2 {
        assert_eq!(w.pass().await.docker_writes, 0);
    }
    assert_eq!(w.live_names().await.len(), 2);
}

#[tokio::test]
async fn a_stacks_own_suspend_acts_even_in_doubt() {
    let w = World::deployed(&ordered_yaml("parallel")).await;
    w.apply(TYPO).await;
    w.apply(&stack("web", &["app"], "  suspend: true")).await;
    w.pass().await;
    assert_eq!(w.live_names().await, vec!["kargo-base_db".to_string()]);
}

#[tokio::test]
async fn volumes_are_never_removed_with_their_service() {
    let w = World::new();
    let yaml = web(
        IMAGE,
        1,
        "  volumes:\n    - {type: volume, source: data, target: /data}",
    );
    w.apply(&yaml).await;
    w.converge().await;
    let live = w.live(APP).await.expect("live");
    let mount = live
        .spec
        .pointer("/TaskTemplate/ContainerSpec/Mounts/0/Source");
    assert_eq!(mount, Some(&json!("kargo-web_data")));
    w.apply(&stack("web", &["app"], "  suspend: true")).await;
    w.pass().await;
    assert!(w.live_names().await.is_empty());
    let kinds: Vec<WriteKind> = w.swarm.writes().keys().copied().collect();
    assert!(
        kinds.iter().all(|k| k.as_str() != "volume_remove"),
        "Swarm service removal only: {kinds:?}"
    );
    assert_eq!(w.writes(WriteKind::ServiceRemove), 1);
}

#[tokio::test]
async fn a_docker_outage_fails_the_pass_and_changes_nothing() {
    let w = World::deployed(&web(IMAGE, 1, "")).await;
    let revision = w.revision().await;
    w.swarm.set_unavailable(Some("connection refused"));
    let r = w.reconciler().pass().await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(
        w.revision().await,
        revision,
        "no status written on Docker's silence"
    );
    w.swarm.set_unavailable(None);
    let r = w.pass().await;
    assert_eq!((r.docker_writes, r.etcd_writes), (0, 0));
}

#[tokio::test]
async fn a_refused_write_guard_stops_docker_writes() {
    let w = World::new();
    w.apply(&web(IMAGE, 1, "")).await;
    let guarded = w
        .swarm
        .guarded(std::sync::Arc::new(|| Err("lease expired".into())));
    let r = Reconciler {
        swarm: guarded.as_ref(),
        ..w.reconciler()
    }
    .pass()
    .await;
    assert!(r.is_err(), "{r:?}");
    assert!(w.live_names().await.is_empty());
    assert_eq!(w.swarm.total_writes(), 0);
}

// ---- networks ----

#[tokio::test]
async fn the_installations_network_goes_with_the_last_stack_that_uses_it() {
    let w = World::deployed(&ordered_yaml("parallel")).await;
    assert!(w.swarm.has_network("kargo-back"));
    // One stack left still attaches it.
    w.apply(&config(&["base"], "parallel", "")).await;
    w.converge().await;
    assert!(w.swarm.has_network("kargo-back"), "a network in use went");
    // No stack left: removed, as `docker stack rm` removes a stack's networks.
    w.apply(&config(&[], "parallel", "")).await;
    w.pass().await;
    w.pass().await;
    assert!(w.live_names().await.is_empty());
    assert!(
        !w.swarm.has_network("kargo-back"),
        "the unused network stayed"
    );
    assert_eq!(w.pass().await.docker_writes, 0, "then nothing more to do");
}

#[tokio::test]
async fn a_network_the_installation_did_not_create_or_in_doubt_is_never_removed() {
    let w = World::deployed(&ordered_yaml("parallel")).await;
    w.apply(TYPO).await;
    for _ in 0..2 {
        assert_eq!(w.pass().await.docker_writes, 0);
    }
    assert!(w.swarm.has_network("kargo-back"), "removed in doubt");

    // A network found and not created by this installation carries no label of its own.
    let other = World::new();
    other
        .hand
        .ensure_network("kargo-back", "/another-installation")
        .await
        .expect("a network of another installation");
    other.apply(&ordered_yaml("parallel")).await;
    other.converge().await;
    other.apply(&config(&[], "parallel", "")).await;
    other.pass().await;
    other.pass().await;
    assert!(other.live_names().await.is_empty());
    assert!(
        other.swarm.has_network("kargo-back"),
        "another's network went"
    );
}

/// A Stack declaring its own network `inner` (`internal: true`), and a Service on it.
fn inner_network_yaml() -> String {
    format!(
        r#"{}{}---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: app}}
spec:
  image: "{IMAGE}"
  networks: [inner]
"#,
        config(&["web"], "parallel", ""),
        stack(
            "web",
            &["app"],
            "  networks:\n    inner: {internal: true, driverOpts: {encrypted: \"true\"}}"
        ),
    )
}

#[tokio::test]
async fn a_stack_network_is_created_as_the_stack_declares_it() {
    let w = World::deployed(&inner_network_yaml()).await;
    let options = w
        .swarm
        .network_options("kargo-web_inner")
        .expect("the Stack's network is created");
    assert!(options.internal, "{options:?}");
    assert!(options.attachable, "kargo's networks stay attachable");
    assert_eq!(
        options.driver_opts.get("encrypted").map(String::as_str),
        Some("true")
    );
    assert!(
        !w.event_reasons("stack", "web")
            .await
            .contains(&"NetworkDiffers".to_string())
    );
}

#[tokio::test]
async fn an_existing_network_with_other_settings_is_kept_with_a_warning() {
    let w = World::new();
    w.swarm
        .ensure_network("kargo-web_inner", w.store.prefix())
        .await
        .expect("a plain network made before");
    w.apply(&inner_network_yaml()).await;
    w.converge().await;
    let options = w.swarm.network_options("kargo-web_inner").expect("kept");
    assert!(!options.internal, "not recreated");
    assert!(
        w.event_reasons("stack", "web")
            .await
            .contains(&"NetworkDiffers".to_string())
    );
}

// ---- statuses from current facts ----

/// A Stack named a Service not applied yet (Degraded, "not found"); once it is applied
/// and rolling out, the Stack is Progressing and nothing says "not found" any more.
#[tokio::test]
async fn a_stack_condition_from_an_earlier_reconcile_does_not_survive() {
    let w = World::new();
    w.apply(&web(IMAGE, 1, "")).await;
    // Stored as `kargo apply` of the Stack alone stores it (a reference, not an error).
    w.store
        .modify(Kind::Stack, "web", None, |o| {
            o.spec["services"] = json!(["app", "worker"]);
        })
        .await
        .expect("stack lists worker");
    w.pass().await;
    let (degraded, _, message) = w.condition(Kind::Stack, "web", "Degraded").await;
    assert_eq!(degraded, "True");
    assert!(message.contains("not found"), "{message}");
    w.swarm.hold_tasks(true);
    w.apply(&service("worker", IMAGE, 1, "")).await;
    w.pass().await;
    let (_, reason, _) = w.ready(Kind::Stack, "web").await;
    assert_eq!(reason, "Progressing");
    for type_ in ["Ready", "Progressing", "Degraded"] {
        let (_, _, message) = w.condition(Kind::Stack, "web", type_).await;
        assert!(!message.contains("not found"), "{type_}: {message}");
    }
    assert_eq!(w.condition(Kind::Stack, "web", "Degraded").await.0, "False");
}

/// READY, UP-TO-DATE and AVAILABLE as kubectl counts them: during an update whose new
/// tasks are not running yet, the new spec's tasks are up to date but not ready.
#[tokio::test]
async fn service_counts_follow_the_current_spec_and_what_serves() {
    let w = World::deployed(&web(IMAGE, 2, "")).await;
    let st = w.service_status("app").await;
    assert_eq!(
        (
            st.ready_replicas,
            st.updated_replicas,
            st.available_replicas,
            st.desired_tasks
        ),
        (2, 2, 2, 2)
    );
    w.swarm.hold_tasks(true);
    w.apply(&web(IMAGE2, 2, "")).await;
    w.pass().await;
    w.pass().await;
    let st = w.service_status("app").await;
    assert_eq!(
        (
            st.ready_replicas,
            st.updated_replicas,
            st.available_replicas
        ),
        (0, 2, 0),
        "{st:?}"
    );
    w.swarm.hold_tasks(false);
    w.converge().await;
    let st = w.service_status("app").await;
    assert_eq!(
        (
            st.ready_replicas,
            st.updated_replicas,
            st.available_replicas
        ),
        (2, 2, 2)
    );
}
