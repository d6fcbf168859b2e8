//! Decisions as values: desired state and observed Swarm in, [`Decision`] out. No Docker,
//! no etcd, no async; each test states what a user would notice of the decision.

use std::collections::BTreeMap;

use chrono::{Duration as TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::api::conditions::events as event_reasons;
use crate::api::{Condition as StoredCondition, DynamicObject, ObjectMeta};
use crate::plan::plan;
use crate::swarm::DesiredService;
use crate::swarm::names::SPEC_HASH_LABEL;

const IMAGE: &str = "kargo-busybox:1.0";
const IMAGE2: &str = "kargo-busybox:1.1";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn obj(kind: Kind, name: &str, spec: Value) -> DynamicObject {
    DynamicObject::new(kind, name, spec)
}

fn service(name: &str, extra: Value) -> DynamicObject {
    let mut spec = json!({"image": IMAGE, "command": ["sleep", "1d"], "deploy": {"replicas": 2}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    obj(Kind::Service, name, spec)
}

/// Configuration `main` → Environment `prod` listing `stacks`, plus `rest`.
fn objects(stacks: &[&str], env_extra: Value, rest: Vec<DynamicObject>) -> Vec<DynamicObject> {
    let mut env = json!({"stacks": stacks, "rollout": "parallel"});
    if let (Some(s), Some(e)) = (env.as_object_mut(), env_extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    let mut all = vec![
        obj(
            Kind::Configuration,
            "main",
            json!({"environment": "prod", "defaults": "none"}),
        ),
        obj(Kind::Environment, "prod", env),
    ];
    all.extend(rest);
    all
}

/// Stack `web` with Service `app` (2 replicas, `extra` merged into its spec).
fn web(stack_extra: Value, app_extra: Value) -> Vec<DynamicObject> {
    let mut stack = json!({"services": ["app"]});
    if let (Some(s), Some(e)) = (stack.as_object_mut(), stack_extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    objects(
        &["web"],
        json!({}),
        vec![obj(Kind::Stack, "web", stack), service("app", app_extra)],
    )
}

struct Case {
    snapshot: Snapshot,
    plan: Plan,
}

impl Case {
    fn new(objects: &[DynamicObject]) -> Self {
        let mut snapshot = Snapshot::from_objects(objects);
        snapshot.configured_before = true;
        let plan = plan(&snapshot, "main", "/kargo", &|_| None);
        Case { snapshot, plan }
    }

    fn stack(&self, name: &str) -> &PlannedStack {
        self.plan
            .stacks
            .iter()
            .find(|s| s.name == name)
            .expect("planned stack")
    }

    fn desired(&self, stack: &str, service: &str) -> &DesiredService {
        self.stack(stack)
            .services
            .iter()
            .find(|p| p.name == service)
            .and_then(|p| p.desired.as_ref().ok())
            .expect("rendered service")
    }

    fn decide(&self, stack: &str, observed: &Observed) -> Decision {
        self.decide_waiting(stack, &[], observed)
    }

    fn decide_waiting(&self, stack: &str, waiting: &[String], observed: &Observed) -> Decision {
        let desired = Desired {
            snapshot: &self.snapshot,
            plan: &self.plan,
            stack: self.stack(stack),
            waiting,
            installation: "/kargo",
        };
        decide(&desired, observed)
    }

    /// Sets the stored status of a Service.
    fn service_status(&mut self, name: &str, f: impl FnOnce(&mut ServiceStatus)) {
        if let Some(s) = self.snapshot.services.get_mut(name) {
            f(&mut s.status);
        }
    }
}

/// What the engine holds for a desired service pushed as it is (kargo's labels, the spec).
fn live_of(d: &DesiredService, id: &str) -> LiveService {
    let labels = d
        .spec
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    LiveService {
        id: id.into(),
        name: d.name.clone(),
        version: 7,
        spec: d.spec.clone(),
        labels,
        update_state: None,
        update_message: None,
    }
}

/// A task in `slot` made from `spec`'s template.
fn task(spec: &Value, slot: i64, desired: &str, state: &str) -> TaskInfo {
    TaskInfo {
        id: format!("task{slot}{state}{}", spec.to_string().len()),
        slot: Some(slot),
        node_id: Some("node1".into()),
        desired_state: desired.into(),
        state: state.into(),
        error: None,
        message: None,
        timestamp: None,
        spec: spec.get("TaskTemplate").cloned().unwrap_or(Value::Null),
    }
}

/// Observed: `live` services, each running `n` tasks of its own spec, nodes known.
fn observed(live: Vec<LiveService>, n: i64) -> Observed {
    let tasks = live
        .iter()
        .map(|l| {
            let t = (1..=n)
                .map(|s| task(&l.spec, s, "running", "running"))
                .collect();
            (l.id.clone(), t)
        })
        .collect();
    Observed {
        live: live.into_iter().map(|l| (l.name.clone(), l)).collect(),
        tasks,
        nodes: Some(Vec::new()),
        now: now(),
        ..Observed::default()
    }
}

fn reason(status: &CommonStatus, type_: &str) -> (ConditionStatus, String, String) {
    let c = status.condition(type_).expect("condition");
    (c.status, c.reason.clone(), c.message.clone())
}

fn only_update(d: &Decision) -> &Push {
    assert_eq!(d.pushes.len(), 1, "{:?}", d.pushes);
    assert!(
        matches!(d.pushes[0].operation, Operation::Update { .. }),
        "{:?}",
        d.pushes[0]
    );
    &d.pushes[0]
}

// ---- steady state and drift ----

#[test]
fn a_missing_service_is_created_and_told_once_done() {
    let case = Case::new(&web(json!({}), json!({})));
    let d = case.decide("web", &observed(vec![], 0));
    assert_eq!(d.pushes.len(), 1);
    let push = &d.pushes[0];
    assert!(
        matches!(&push.operation, Operation::Create { name, .. } if name == "kargo-web_app"),
        "{push:?}"
    );
    assert_eq!(push.event.reason, event_reasons::CREATED);
    assert!(d.events.is_empty(), "decided again after the push");
}

#[test]
fn a_converged_service_is_ready_and_needs_no_write() {
    let case = Case::new(&web(json!({}), json!({})));
    let live = live_of(case.desired("web", "app"), "svc1");
    let d = case.decide("web", &observed(vec![live], 2));
    assert!(d.pushes.is_empty(), "{:?}", d.pushes);
    assert!(d.events.is_empty());
    assert!(d.stack.ready && d.services[0].ready);
    let st = &d.services[0].status;
    assert_eq!((st.ready_replicas, st.desired_tasks), (2, 2));
    assert_eq!(st.service_id.as_deref(), Some("svc1"));
    assert!(d.stack.record_ready.is_some(), "the Ready set is recorded");
    let stack = d.stack.status.expect("stack status");
    assert_eq!(
        reason(&stack.common, types::READY),
        (
            ConditionStatus::True,
            reasons::CONVERGED.into(),
            "1/1 services Ready".into()
        )
    );
}

#[test]
fn hand_scaling_is_drift_and_the_event_names_the_field() {
    let case = Case::new(&web(json!({}), json!({})));
    let mut live = live_of(case.desired("web", "app"), "svc1");
    live.spec["Mode"]["Replicated"]["Replicas"] = json!(5);
    let d = case.decide("web", &observed(vec![live], 5));
    let push = only_update(&d);
    assert!(
        push.event
            .message
            .contains("Mode.Replicated.Replicas changed"),
        "{}",
        push.event.message
    );
    if let Operation::Update {
        id, version, spec, ..
    } = &push.operation
    {
        assert_eq!((id.as_str(), *version), ("svc1", 7));
        assert_eq!(spec["Mode"]["Replicated"]["Replicas"], json!(2));
    }
}

#[test]
fn a_hand_changed_image_is_drift() {
    let case = Case::new(&web(json!({}), json!({})));
    let mut live = live_of(case.desired("web", "app"), "svc1");
    live.spec["TaskTemplate"]["ContainerSpec"]["Image"] = json!(IMAGE2);
    let d = case.decide("web", &observed(vec![live], 2));
    let push = only_update(&d);
    assert!(
        push.event
            .message
            .contains("TaskTemplate.ContainerSpec.Image changed"),
        "{}",
        push.event.message
    );
}

#[test]
fn a_hand_added_environment_variable_is_drift() {
    let case = Case::new(&web(json!({}), json!({"env": {"A": "1"}})));
    let mut live = live_of(case.desired("web", "app"), "svc1");
    live.spec["TaskTemplate"]["ContainerSpec"]["Env"] = json!(["A=1", "DEBUG=true"]);
    let d = case.decide("web", &observed(vec![live], 2));
    only_update(&d);
}

#[test]
fn a_removed_spec_hash_label_is_drift() {
    let case = Case::new(&web(json!({}), json!({})));
    let mut live = live_of(case.desired("web", "app"), "svc1");
    live.labels.remove(SPEC_HASH_LABEL);
    let d = case.decide("web", &observed(vec![live], 2));
    let push = only_update(&d);
    assert!(
        push.event.message.contains("spec-hash label was missing"),
        "{}",
        push.event.message
    );
}

#[test]
fn fields_kargo_does_not_set_are_not_drift() {
    let case = Case::new(&web(json!({}), json!({})));
    let mut live = live_of(case.desired("web", "app"), "svc1");
    live.spec["TaskTemplate"]["ContainerSpec"]["Hostname"] = json!("by-hand");
    live.spec["TaskTemplate"]["Runtime"] = json!("container");
    let d = case.decide("web", &observed(vec![live], 2));
    assert!(d.pushes.is_empty(), "{:?}", d.pushes);
    assert!(d.stack.ready);
}

#[test]
fn a_pushed_service_is_judged_as_observed_after_its_push() {
    let case = Case::new(&web(json!({}), json!({})));
    let live = live_of(case.desired("web", "app"), "svc1");
    let mut seen = observed(vec![live], 2);
    seen.pushed.insert("kargo-web_app".into(), "svc1".into());
    let d = case.decide("web", &seen);
    assert!(d.pushes.is_empty(), "never pushed twice in one reconcile");
    assert_eq!(d.services[0].status.last_push_time, Some(now()));
    assert!(d.services[0].ready);
}

// ---- failed specs and rollback ----

/// The app's stored status says its desired spec failed; Swarm runs the old spec.
fn failed_case(stack_extra: Value) -> (Case, Observed) {
    let mut case = Case::new(&web(stack_extra, json!({"image": IMAGE2})));
    let hash = case.desired("web", "app").hash.clone();
    case.service_status("app", |s| {
        s.failed_spec_hash = Some(hash.clone());
        s.spec_hash = Some(hash);
    });
    let mut live = live_of(case.desired("web", "app"), "svc1");
    live.spec["TaskTemplate"]["ContainerSpec"]["Image"] = json!(IMAGE);
    live.labels.insert(SPEC_HASH_LABEL.into(), "old".into());
    (case, observed(vec![live], 2))
}

#[test]
fn a_failed_spec_is_not_pushed_again_and_says_so() {
    let (case, seen) = failed_case(json!({}));
    let d = case.decide("web", &seen);
    assert!(d.pushes.is_empty(), "{:?}", d.pushes);
    let (status, why, message) = reason(&d.services[0].status.common, types::READY);
    assert_eq!(
        (status, why.as_str()),
        (ConditionStatus::False, reasons::UPDATE_FAILED)
    );
    assert!(message.contains("not pushed again"), "{message}");
    let stack = d.stack.status.expect("stack");
    assert_eq!(
        reason(&stack.common, types::DEGRADED).1,
        reasons::UPDATE_FAILED
    );
    assert!(!d.stack.roll_back, "rollback: manual waits for a person");
}

#[test]
fn rollback_auto_is_decided_when_an_update_failed() {
    let (case, seen) = failed_case(json!({"rollback": "auto"}));
    let d = case.decide("web", &seen);
    assert!(d.stack.roll_back);
    assert!(d.stack.record_ready.is_none());
}

#[test]
fn a_swarm_rollback_marks_the_spec_failed_with_a_warning() {
    let case = Case::new(&web(json!({}), json!({})));
    let mut live = live_of(case.desired("web", "app"), "svc1");
    live.update_state = Some("rollback_completed".into());
    live.update_message = Some("update rolled back due to failure".into());
    let d = case.decide("web", &observed(vec![live], 2));
    let st = &d.services[0].status;
    assert_eq!(st.failed_spec_hash, st.spec_hash);
    assert_eq!(reason(&st.common, types::READY).1, reasons::ROLLED_BACK);
    assert_eq!(d.events.len(), 1, "{:?}", d.events);
    assert_eq!(
        (d.events[0].type_, d.events[0].reason),
        (EventType::Warning, reasons::ROLLED_BACK)
    );
}

#[test]
fn a_spec_past_its_progress_deadline_is_failed() {
    let mut case = Case::new(&web(json!({"progressDeadlineSeconds": 5}), json!({})));
    case.service_status("app", |s| {
        s.last_push_time = Some(now() - TimeDelta::seconds(10));
    });
    let live = live_of(case.desired("web", "app"), "svc1");
    let d = case.decide("web", &observed(vec![live], 0));
    let st = &d.services[0].status;
    assert!(st.failed_spec_hash.is_some());
    assert_eq!(
        reason(&st.common, types::READY).1,
        reasons::PROGRESS_DEADLINE_EXCEEDED
    );
    assert_eq!(d.events[0].reason, reasons::PROGRESS_DEADLINE_EXCEEDED);
}

// ---- order ----

fn depends_case() -> Case {
    Case::new(&objects(
        &["web"],
        json!({}),
        vec![
            obj(Kind::Stack, "web", json!({"services": ["db", "app"]})),
            service("db", json!({})),
            service("app", json!({"dependsOn": ["db"]})),
        ],
    ))
}

#[test]
fn depends_on_creates_the_dependency_first() {
    let case = depends_case();
    let d = case.decide("web", &observed(vec![], 0));
    let names: Vec<&str> = d.pushes.iter().map(|p| p.operation.name()).collect();
    assert_eq!(names, vec!["kargo-web_db"]);
    let app = &d.services[1].status;
    let (_, why, message) = reason(&app.common, types::READY);
    assert_eq!(why, reasons::WAITING_FOR_SERVICE);
    assert!(message.contains("db"), "{message}");
}

#[test]
fn once_the_dependency_is_ready_the_dependent_is_created() {
    let case = depends_case();
    let db = live_of(case.desired("web", "db"), "db1");
    let mut seen = observed(vec![db], 2);
    seen.pushed.insert("kargo-web_db".into(), "db1".into());
    let d = case.decide("web", &seen);
    let names: Vec<&str> = d.pushes.iter().map(|p| p.operation.name()).collect();
    assert_eq!(names, vec!["kargo-web_app"]);
}

#[test]
fn a_stack_waiting_for_another_creates_nothing_and_says_so() {
    let case = Case::new(&web(json!({}), json!({})));
    let d = case.decide_waiting("web", &["base".into()], &observed(vec![], 0));
    assert!(d.pushes.is_empty());
    let stack = d.stack.status.expect("stack");
    let (_, why, message) = reason(&stack.common, types::READY);
    assert_eq!(why, reasons::WAITING_FOR_STACK);
    assert!(message.contains("base"), "{message}");
    assert_eq!(
        reason(&stack.common, types::PROGRESSING).0,
        ConditionStatus::True
    );
    assert_eq!(
        reason(&d.services[0].status.common, types::READY).1,
        reasons::WAITING_FOR_STACK
    );
}

// ---- removal, suspend and the fail-safe ----

fn owned(name: &str, owner: &str) -> LiveService {
    LiveService {
        id: format!("{name}-id"),
        name: name.into(),
        version: 3,
        spec: json!({}),
        labels: BTreeMap::from([(OWNER_LABEL.to_string(), owner.to_string())]),
        update_state: None,
        update_message: None,
    }
}

#[test]
fn a_suspended_stack_has_its_services_removed() {
    let case = Case::new(&web(json!({"suspend": true}), json!({})));
    assert!(case.plan.stacks.is_empty(), "not deployed");
    let live = [owned("kargo-web_app", "web/app")];
    let r = decide_removals(&case.snapshot, &case.plan, &live, &BTreeSet::new());
    assert_eq!(r.remove.len(), 1, "{r:?}");
    assert!(r.remove[0].2.contains("suspended"), "{r:?}");
}

#[test]
fn a_missing_configuration_keeps_every_service_running() {
    let mut objs = web(json!({}), json!({}));
    objs.retain(|o| o.kind != Kind::Configuration);
    let case = Case::new(&objs);
    let live = [owned("kargo-web_app", "web/app")];
    let r = decide_removals(&case.snapshot, &case.plan, &live, &BTreeSet::new());
    assert!(r.remove.is_empty(), "{r:?}");
    assert_eq!(r.keep.len(), 1);
    assert_eq!(r.keep[0].2.reason, reasons::CONFIGURATION_NOT_FOUND);
}

#[test]
fn a_service_without_an_owner_label_is_kept() {
    let case = Case::new(&web(json!({}), json!({})));
    let mut stray = owned("kargo-web_stray", "");
    stray.labels.clear();
    let r = decide_removals(
        &case.snapshot,
        &case.plan,
        &[stray],
        &wanted_services(case.stack("web")),
    );
    assert!(r.remove.is_empty() && r.keep.len() == 1, "{r:?}");
}

#[test]
fn orphan_cascade_is_decided_from_the_deleted_objects_annotation() {
    let mut objs = web(json!({}), json!({}));
    for o in &mut objs {
        if o.kind == Kind::Stack {
            o.metadata = ObjectMeta {
                name: "web".into(),
                deletion_timestamp: Some(now()),
                annotations: BTreeMap::from([(
                    crate::api::annotations::CASCADE_ANNOTATION.to_string(),
                    "orphan".to_string(),
                )]),
                ..ObjectMeta::default()
            };
        }
    }
    let case = Case::new(&objs);
    assert!(orphaning(&case.snapshot, "web/app"));
    assert!(!orphaning(&case.snapshot, "other/app"));
}

// ---- adoption ----

fn foreign_case(adopt: bool) -> (Case, Observed) {
    let objs = objects(
        &["web"],
        json!({"adopt": adopt}),
        vec![
            obj(Kind::Stack, "web", json!({"services": ["app"]})),
            service("app", json!({})),
        ],
    );
    let case = Case::new(&objs);
    let mut seen = observed(vec![], 0);
    let mut f = owned("kargo-web_app", "");
    f.labels.clear();
    f.id = "theirs".into();
    seen.foreign.insert(f.name.clone(), f);
    (case, seen)
}

#[test]
fn a_same_named_service_not_owned_is_not_touched_and_said_once() {
    let (mut case, seen) = foreign_case(false);
    let d = case.decide("web", &seen);
    assert!(d.pushes.is_empty());
    let (_, why, message) = reason(&d.services[0].status.common, types::READY);
    assert_eq!(why, reasons::NOT_ADOPTED);
    assert!(message.contains("adopt: true"), "{message}");
    assert_eq!(d.events.len(), 1);
    // Said already (the stored Ready condition has that reason): not said again.
    let stored = d.services[0].status.clone();
    case.service_status("app", |s| *s = stored);
    assert!(case.decide("web", &seen).events.is_empty());
}

#[test]
fn adopt_takes_the_same_named_service_over_by_its_id() {
    let (case, seen) = foreign_case(true);
    let d = case.decide("web", &seen);
    assert_eq!(d.pushes.len(), 1);
    assert!(
        matches!(&d.pushes[0].operation, Operation::Adopt { id, .. } if id == "theirs"),
        "{:?}",
        d.pushes[0]
    );
    assert_eq!(d.pushes[0].event.reason, event_reasons::ADOPTED);
}

// ---- files ----

#[test]
fn a_changed_file_rolls_the_service_over_to_the_new_config() {
    let mut objs = web(
        json!({}),
        json!({"configs": [{"file": "app.conf", "target": "/etc/app.conf"}]}),
    );
    objs[0].spec["files"] = json!({"app.conf": {"content": "greeting=bonjour"}});
    let case = Case::new(&objs);
    let new_name = case.plan.files["app.conf"].swarm_name.clone();
    let d_spec = case.desired("web", "app");
    // Live: the same spec mounting the previous config (another name and ID).
    let mut live = live_of(d_spec, "svc1");
    live.spec = resolve(&live.spec, "app.conf-0000000000", "cfg-old");
    let mut seen = observed(vec![live], 2);
    seen.ids
        .insert(format!("config:{new_name}"), "cfg-new".into());
    let d = case.decide("web", &seen);
    let push = only_update(&d);
    if let Operation::Update { spec, .. } = &push.operation {
        let mount = &spec["TaskTemplate"]["ContainerSpec"]["Configs"][0];
        assert_eq!(
            (mount["ConfigName"].as_str(), mount["ConfigID"].as_str()),
            (Some(new_name.as_str()), Some("cfg-new"))
        );
    }
}

/// The spec with its first config mount set to `name` / `id`.
fn resolve(spec: &Value, name: &str, id: &str) -> Value {
    let mut s = spec.clone();
    if let Some(m) = s.pointer_mut("/TaskTemplate/ContainerSpec/Configs/0") {
        m["ConfigName"] = json!(name);
        m["ConfigID"] = json!(id);
    }
    s
}

// ---- jobs ----

#[test]
fn a_job_is_ready_when_its_tasks_complete() {
    let case = Case::new(&web(
        json!({}),
        json!({"command": ["true"], "deploy": {"mode": "replicated-job", "replicas": 2}}),
    ));
    let live = live_of(case.desired("web", "app"), "job1");
    let mut seen = observed(vec![live.clone()], 0);
    let running: Vec<TaskInfo> = (1..=2)
        .map(|s| task(&live.spec, s, "complete", "running"))
        .collect();
    seen.tasks.insert("job1".into(), running);
    let d = case.decide("web", &seen);
    assert!(!d.services[0].ready, "running is not done");
    let done: Vec<TaskInfo> = (1..=2)
        .map(|s| task(&live.spec, s, "complete", "complete"))
        .collect();
    seen.tasks.insert("job1".into(), done);
    let d = case.decide("web", &seen);
    assert!(d.services[0].ready);
    let message = reason(&d.services[0].status.common, types::READY).2;
    assert!(message.contains("2/2 tasks completed"), "{message}");
}

// ---- statuses from current facts ----

#[test]
fn no_condition_survives_from_an_earlier_reconcile() {
    let mut case = Case::new(&web(json!({}), json!({})));
    if let Some(st) = case.snapshot.stacks.get_mut("web") {
        let t0 = now() - TimeDelta::seconds(60);
        st.status.common.set_condition(
            types::DEGRADED,
            ConditionStatus::True,
            reasons::SERVICE_NOT_FOUND,
            "service \"app\" not found",
            t0,
        );
        st.status.common.conditions.push(StoredCondition {
            type_: "Obsolete".into(),
            status: ConditionStatus::True,
            reason: "Old".into(),
            message: String::new(),
            last_transition_time: Some(t0),
        });
    }
    // The service runs, its tasks not all up yet: Progressing, not Degraded.
    let live = live_of(case.desired("web", "app"), "svc1");
    let d = case.decide("web", &observed(vec![live], 1));
    let stack = d.stack.status.expect("stack");
    let (status, _, message) = reason(&stack.common, types::DEGRADED);
    assert_eq!(status, ConditionStatus::False, "{message}");
    assert!(!message.contains("not found"), "{message}");
    assert!(stack.common.condition("Obsolete").is_none());
    assert_eq!(
        reason(&stack.common, types::PROGRESSING).0,
        ConditionStatus::True
    );
}

#[test]
fn an_invalid_spec_is_degraded_and_never_pushed() {
    let case = Case::new(&web(
        json!({}),
        json!({"command": ["sh", "-c", "echo ${NOPE}"]}),
    ));
    let d = case.decide("web", &observed(vec![], 0));
    assert!(d.pushes.is_empty());
    let st = &d.services[0].status;
    assert_eq!(reason(&st.common, types::READY).1, reasons::INVALID_SPEC);
    assert_eq!(reason(&st.common, types::DEGRADED).0, ConditionStatus::True);
}

#[test]
fn a_service_not_ready_asks_for_the_nodes_to_name_one_to_blame() {
    let case = Case::new(&web(json!({}), json!({})));
    let live = live_of(case.desired("web", "app"), "svc1");
    let mut seen = observed(vec![live], 1);
    seen.nodes = None;
    assert!(case.decide("web", &seen).needs_nodes);
    seen.nodes = Some(Vec::new());
    assert!(!case.decide("web", &seen).needs_nodes);
}

// ---- counts as kubectl shows them ----

#[test]
fn during_a_restart_old_tasks_still_serving_are_available() {
    // `kargo rollout restart`: the new spec's ForceUpdate counter differs from the old one's.
    let mut objs = web(json!({}), json!({"deploy": {"replicas": 3}}));
    for o in objs.iter_mut().filter(|o| o.kind == Kind::Service) {
        o.metadata.annotations.insert(
            crate::api::annotations::RESTARTED_AT_ANNOTATION.into(),
            "2026-01-01T11:59:00.250Z".into(),
        );
    }
    let case = Case::new(&objs);
    let d_spec = case.desired("web", "app");
    let live = live_of(d_spec, "svc1");
    assert!(
        live.spec["TaskTemplate"]["ForceUpdate"].is_u64(),
        "{}",
        live.spec
    );
    let mut old = live.spec.clone();
    old["TaskTemplate"]["ForceUpdate"] = json!(1);
    let mut seen = observed(vec![live.clone()], 0);
    seen.tasks.insert(
        "svc1".into(),
        vec![
            task(&live.spec, 1, "running", "running"),
            task(&live.spec, 2, "running", "starting"),
            task(&old, 2, "shutdown", "running"),
            task(&old, 3, "running", "running"),
        ],
    );
    let st = &case.decide("web", &seen).services[0].status;
    assert_eq!(
        (
            st.ready_replicas,
            st.updated_replicas,
            st.available_replicas,
            st.desired_tasks
        ),
        (1, 2, 3, 3)
    );
}

#[test]
fn a_paused_failed_update_counts_the_old_task_still_serving() {
    let case = Case::new(&web(json!({}), json!({"image": IMAGE2})));
    let live_new = live_of(case.desired("web", "app"), "svc1");
    let mut old = live_new.spec.clone();
    old["TaskTemplate"]["ContainerSpec"]["Image"] = json!(IMAGE);
    let mut live = live_new.clone();
    live.update_state = Some("paused".into());
    let mut failed = task(&live_new.spec, 1, "shutdown", "rejected");
    failed.error = Some("No such image".into());
    let mut seen = observed(vec![live], 0);
    seen.tasks.insert(
        "svc1".into(),
        vec![
            failed,
            task(&old, 1, "shutdown", "shutdown"),
            task(&old, 2, "running", "running"),
        ],
    );
    let d = case.decide("web", &seen);
    let st = &d.services[0].status;
    assert_eq!(reason(&st.common, types::READY).1, reasons::UPDATE_PAUSED);
    assert_eq!(
        (
            st.ready_replicas,
            st.updated_replicas,
            st.available_replicas
        ),
        (0, 0, 1)
    );
}
