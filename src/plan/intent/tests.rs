//! The removal rules, one desired state at a time, without Docker or etcd.

use serde_json::{Value, json};

use super::{Verdict, removal_verdict};
use crate::api::{DynamicObject, Kind};
use crate::plan::{Plan, Snapshot, plan};
use crate::store::{InvalidEntry, ObjectList};

fn obj(kind: Kind, name: &str, spec: Value) -> DynamicObject {
    DynamicObject::new(kind, name, spec)
}

fn svc(name: &str) -> DynamicObject {
    obj(
        Kind::Service,
        name,
        json!({"image": "kargo-busybox:1.0", "command": ["sleep", "1d"]}),
    )
}

/// The example installation: Configuration main → Environment example → stacks
/// backend (queue) and frontend (web, worker).
fn workspace() -> Vec<DynamicObject> {
    vec![
        obj(
            Kind::Configuration,
            "main",
            json!({"environment": "example", "defaults": "none"}),
        ),
        obj(
            Kind::Environment,
            "example",
            json!({"stacks": ["backend", "frontend"], "variables": {"TAG": "1.0"}}),
        ),
        obj(Kind::Stack, "backend", json!({"services": ["queue"]})),
        obj(
            Kind::Stack,
            "frontend",
            json!({"services": ["web", "worker"]}),
        ),
        svc("queue"),
        svc("web"),
        svc("worker"),
    ]
}

const LIVE: [&str; 3] = ["backend/queue", "frontend/web", "frontend/worker"];

fn planned(objects: &[DynamicObject], configured_before: bool) -> (Snapshot, Plan) {
    let mut snapshot = Snapshot::from_objects(objects);
    snapshot.configured_before = configured_before;
    let p = plan(&snapshot, "main", "/kargo", &|_| None);
    (snapshot, p)
}

fn verdicts(objects: &[DynamicObject], configured_before: bool) -> Vec<Verdict> {
    let (snapshot, p) = planned(objects, configured_before);
    LIVE.iter()
        .map(|o| removal_verdict(&snapshot, &p, Some(o)))
        .collect()
}

fn replace(objects: &mut Vec<DynamicObject>, new: DynamicObject) {
    objects.retain(|o| !(o.kind == new.kind && o.metadata.name == new.metadata.name));
    objects.push(new);
}

fn kept_for(v: &Verdict, reason: &str) -> bool {
    matches!(v, Verdict::Keep(d) if d.reason == reason)
}

#[test]
fn the_example_is_wanted_as_it_runs() {
    assert!(
        verdicts(&workspace(), true)
            .iter()
            .all(|v| *v == Verdict::Wanted)
    );
}

#[test]
fn a_typo_in_the_environment_name_removes_nothing() {
    let mut objects = workspace();
    replace(
        &mut objects,
        obj(
            Kind::Configuration,
            "main",
            json!({"environment": "exampel"}),
        ),
    );
    let (_, p) = planned(&objects, true);
    let doubt = p.doubt.clone().expect("the installation is in doubt");
    assert_eq!(doubt.reason, "EnvironmentNotFound");
    assert!(doubt.message.contains("exampel"), "{}", doubt.message);
    for v in verdicts(&objects, true) {
        assert!(kept_for(&v, "EnvironmentNotFound"), "{v:?}");
    }
}

#[test]
fn a_missing_configuration_is_doubt_once_the_installation_had_one() {
    let objects: Vec<DynamicObject> = workspace()
        .into_iter()
        .filter(|o| o.kind != Kind::Configuration)
        .collect();
    for v in verdicts(&objects, true) {
        assert!(kept_for(&v, "ConfigurationNotFound"), "{v:?}");
    }
    // Never configured: every Stack is deployed (the first-run convenience).
    assert!(
        verdicts(&objects, false)
            .iter()
            .all(|v| *v == Verdict::Wanted)
    );
}

#[test]
fn an_undecodable_environment_in_force_removes_nothing() {
    let objects: Vec<DynamicObject> = workspace()
        .into_iter()
        .filter(|o| o.kind != Kind::Environment)
        .collect();
    let list = ObjectList {
        items: objects,
        revision: 7,
        invalid: vec![InvalidEntry {
            key: "/kargo/registry/kargo.dev/environments/example".into(),
            object: Some((Kind::Environment, "example".into())),
            message: "expected value at line 1 column 1".into(),
        }],
    };
    let mut snapshot = Snapshot::from_list(&list);
    snapshot.configured_before = true;
    let p = plan(&snapshot, "main", "/kargo", &|_| None);
    for o in LIVE {
        assert!(kept_for(
            &removal_verdict(&snapshot, &p, Some(o)),
            "InvalidObject"
        ));
    }
}

#[test]
fn suspending_or_deleting_a_stack_is_intent_even_in_doubt() {
    let mut objects = workspace();
    replace(
        &mut objects,
        obj(
            Kind::Configuration,
            "main",
            json!({"environment": "exampel"}),
        ),
    );
    replace(
        &mut objects,
        obj(
            Kind::Stack,
            "backend",
            json!({"services": ["queue"], "suspend": true}),
        ),
    );
    let mut frontend = obj(
        Kind::Stack,
        "frontend",
        json!({"services": ["web", "worker"]}),
    );
    frontend.metadata.deletion_timestamp = Some(chrono::Utc::now());
    replace(&mut objects, frontend);
    for v in verdicts(&objects, true) {
        assert!(matches!(v, Verdict::Remove(_)), "{v:?}");
    }
}

#[test]
fn a_stack_taken_out_of_the_environment_goes() {
    let mut objects = workspace();
    replace(
        &mut objects,
        obj(
            Kind::Environment,
            "example",
            json!({"stacks": ["frontend"]}),
        ),
    );
    let v = verdicts(&objects, true);
    assert!(
        matches!(&v[0], Verdict::Remove(why) if why.contains("backend")),
        "{v:?}"
    );
    assert_eq!(v[1], Verdict::Wanted);
}

#[test]
fn a_stack_list_naming_a_missing_stack_is_doubt_for_the_whole_list() {
    // "frontend" mistyped: nothing it seems to leave out is removed.
    let mut objects = workspace();
    replace(
        &mut objects,
        obj(
            Kind::Environment,
            "example",
            json!({"stacks": ["backend", "frontedn"]}),
        ),
    );
    let v = verdicts(&objects, true);
    assert_eq!(v[0], Verdict::Wanted);
    assert!(kept_for(&v[1], "StackNotFound"), "{v:?}");
    assert!(kept_for(&v[2], "StackNotFound"), "{v:?}");
}

#[test]
fn a_service_taken_out_of_its_stack_or_deleted_goes() {
    let mut objects = workspace();
    replace(
        &mut objects,
        obj(Kind::Stack, "frontend", json!({"services": ["web"]})),
    );
    let mut queue = svc("queue");
    queue.metadata.deletion_timestamp = Some(chrono::Utc::now());
    replace(&mut objects, queue);
    let v = verdicts(&objects, true);
    assert!(
        matches!(&v[0], Verdict::Remove(why) if why.contains("queue")),
        "{v:?}"
    );
    assert_eq!(v[1], Verdict::Wanted);
    assert!(
        matches!(&v[2], Verdict::Remove(why) if why.contains("no longer listed")),
        "{v:?}"
    );
}

#[test]
fn a_member_list_naming_a_missing_service_freezes_its_stack() {
    // "worker" mistyped as "wroker": the live worker is kept, the Stack says why.
    let mut objects = workspace();
    replace(
        &mut objects,
        obj(
            Kind::Stack,
            "frontend",
            json!({"services": ["web", "wroker"]}),
        ),
    );
    let v = verdicts(&objects, true);
    assert_eq!(v[1], Verdict::Wanted);
    assert!(kept_for(&v[2], "ServiceNotFound"), "{v:?}");
}

#[test]
fn an_invalid_service_freezes_its_stack_only() {
    let mut objects = workspace();
    // Written without the CLI: fails the schema (image must be a string).
    replace(&mut objects, obj(Kind::Service, "web", json!({"image": 5})));
    replace(
        &mut objects,
        obj(Kind::Stack, "frontend", json!({"services": ["web"]})),
    );
    replace(
        &mut objects,
        obj(
            Kind::Environment,
            "example",
            json!({"stacks": ["frontend"]}),
        ),
    );
    let (snapshot, p) = planned(&objects, true);
    assert!(snapshot.is_invalid(Kind::Service, "web"));
    let v: Vec<Verdict> = LIVE
        .iter()
        .map(|o| removal_verdict(&snapshot, &p, Some(o)))
        .collect();
    // backend left the Environment's list: intent, unaffected by frontend's doubt.
    assert!(matches!(&v[0], Verdict::Remove(_)), "{v:?}");
    assert!(kept_for(&v[1], "InvalidObject"), "{v:?}");
    assert!(kept_for(&v[2], "InvalidObject"), "{v:?}");
}

#[test]
fn an_interpolation_error_freezes_its_stack() {
    let mut objects = workspace();
    replace(
        &mut objects,
        obj(
            Kind::Service,
            "web",
            json!({"image": "kargo-busybox:${NOPE}", "command": ["sleep", "1d"]}),
        ),
    );
    replace(
        &mut objects,
        obj(Kind::Stack, "frontend", json!({"services": ["web"]})),
    );
    let v = verdicts(&objects, true);
    assert_eq!(v[0], Verdict::Wanted);
    assert!(kept_for(&v[2], "InvalidSpec"), "{v:?}");
}

#[test]
fn a_service_without_an_owner_label_is_never_removed() {
    let (snapshot, p) = planned(&workspace(), true);
    assert!(kept_for(
        &removal_verdict(&snapshot, &p, None),
        "UnknownOwner"
    ));
    assert!(kept_for(
        &removal_verdict(&snapshot, &p, Some("garbage")),
        "UnknownOwner"
    ));
}

#[test]
fn an_interpolation_bomb_in_the_environment_is_doubt_and_stays_small() {
    let mut variables = serde_json::Map::new();
    variables.insert("V0".into(), json!("x".repeat(16)));
    for i in 1..=40 {
        variables.insert(
            format!("V{i}"),
            json!(format!("${{V{p}}}${{V{p}}}", p = i - 1)),
        );
    }
    let mut objects = workspace();
    replace(
        &mut objects,
        obj(
            Kind::Environment,
            "example",
            json!({"stacks": ["backend", "frontend"], "variables": variables}),
        ),
    );
    let started = std::time::Instant::now();
    let (_, p) = planned(&objects, true);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let doubt = p
        .doubt
        .clone()
        .expect("the bomb puts the installation in doubt");
    assert_eq!(doubt.reason, "InvalidObject");
    assert!(doubt.message.contains("500 KB"), "{}", doubt.message);
    for v in verdicts(&objects, true) {
        assert!(!matches!(v, Verdict::Remove(_)), "{v:?}");
    }
    // And a Stack dropped from the list meanwhile is kept: the Environment is in doubt.
    let mut env = objects
        .iter()
        .find(|o| o.kind == Kind::Environment)
        .cloned()
        .expect("environment");
    env.spec["stacks"] = json!(["frontend"]);
    replace(&mut objects, env);
    assert!(kept_for(&verdicts(&objects, true)[0], "InvalidObject"));
}

#[test]
fn a_policy_violation_keeps_what_runs_and_deploys_nothing_new() {
    let mut objects = workspace();
    replace(
        &mut objects,
        obj(
            Kind::Service,
            "web",
            json!({"image": "kargo-busybox:1.0", "volumes": [
                {"type": "bind", "source": "/var/run/docker.sock", "target": "/s"}
            ]}),
        ),
    );
    let (snapshot, p) = planned(&objects, true);
    let web = p
        .stack_of("web")
        .and_then(|s| s.services.iter().find(|x| x.name == "web"))
        .expect("web is planned");
    assert!(web.desired.is_err(), "nothing of it is rendered");
    assert!(
        web.policy
            .as_deref()
            .is_some_and(|m| m.contains("Docker socket"))
    );
    assert_eq!(
        p.frozen.get("frontend").map(|d| d.reason),
        Some(crate::api::conditions::reasons::POLICY_VIOLATION)
    );
    // The live service stays wanted: kept, never removed for breaking the policy.
    assert_eq!(
        removal_verdict(&snapshot, &p, Some("frontend/web")),
        Verdict::Wanted
    );
    // An exemption in the Configuration in force lifts it.
    replace(
        &mut objects,
        obj(
            Kind::Configuration,
            "main",
            json!({"environment": "example", "defaults": "none",
                   "policy": {"exemptions": {"web": {"allow": ["dockerSocket"]}}}}),
        ),
    );
    let (_, p) = planned(&objects, true);
    assert_eq!(p.policy_violations().count(), 0);
    assert!(p.frozen.is_empty());
}
