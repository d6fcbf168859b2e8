use std::path::Path;

use serde_json::json;

use super::*;
use crate::api::DynamicObject;

fn objects(yaml: &str) -> Vec<DynamicObject> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| {
            let v: Value = serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{e}"));
            serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

const INSTALL: &str = "
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {name: main}
spec: {environment: main}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {name: main}
spec:
  stacks: [apps]
  variables: {REG: '127.0.0.1:5015'}
  services:
    web: {tag: '2', buildArgs: {VERSION: '2'}}
    tool: {buildArgs: {VERSION: '9'}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {name: apps}
spec: {services: [web]}
";

const WEB_BUILT: &str = "
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  image: ${REG}/web:1
  build: {context: ./web, args: {VERSION: '1', MODE: prod}, labels: {team: maps}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {name: tool}
spec:
  image: tool:1
  build: {context: /abs/tool}
";

const WEB_PLAIN: &str = "
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  image: ${REG}/web:1
";

fn plan_of(yaml: &str) -> (Snapshot, Plan) {
    let snapshot = Snapshot::from_objects(&objects(yaml));
    let p = crate::plan::plan(&snapshot, "main", "test", &crate::manifest::catalog_spec);
    (snapshot, p)
}

#[test]
fn a_build_changes_nothing_in_the_swarm_spec_so_adding_one_rolls_nothing() {
    let desired = |yaml: &str| {
        let (_, p) = plan_of(yaml);
        let svc = &p.stacks[0].services[0];
        svc.desired.clone().unwrap_or_else(|e| panic!("{e}"))
    };
    let with = desired(&format!("{INSTALL}{WEB_BUILT}"));
    let without = desired(&format!("{INSTALL}{WEB_PLAIN}"));
    assert_eq!(with.spec, without.spec);
    assert_eq!(with.hash, without.hash);
    assert!(!with.spec.to_string().contains("VERSION"), "{}", with.spec);
}

#[test]
fn targets_take_the_merged_tag_and_build_args() {
    let (snapshot, p) = plan_of(&format!("{INSTALL}{WEB_BUILT}"));
    let merged = merged_services(&snapshot, &p);
    let web = target_of("web", &merged["web"], Path::new("/srv/manifests"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no build"));
    assert_eq!(
        web.image, "127.0.0.1:5015/web:2",
        "interpolated, the Environment's tag"
    );
    assert_eq!(
        web.build.args,
        [
            ("MODE".to_string(), "prod".to_string()),
            ("VERSION".into(), "2".into())
        ]
        .into()
    );
    assert_eq!(web.context, Path::new("/srv/manifests/./web"));
    // A Service no deployed Stack holds is merged with the Environment all the same.
    let tool = target_of("tool", &merged["tool"], Path::new("/x"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no build"));
    assert_eq!(
        tool.context,
        Path::new("/abs/tool"),
        "an absolute context stays"
    );
    assert_eq!(
        tool.build.args,
        [("VERSION".to_string(), "9".to_string())].into()
    );
    let plain = target_of("web", &json!({"image": "a:1"}), Path::new("/"));
    assert_eq!(plain, Ok(None));
    let pinned = target_of(
        "web",
        &json!({"image": "a:1@sha256:ab", "build": {"context": "."}}),
        Path::new("/"),
    );
    assert!(pinned.is_err());
}

#[test]
fn tags_split_after_the_last_slash() {
    assert_eq!(
        split_tag("127.0.0.1:5015/a/b:1.2"),
        ("127.0.0.1:5015/a/b", "1.2")
    );
    assert_eq!(
        split_tag("127.0.0.1:5015/app"),
        ("127.0.0.1:5015/app", "latest")
    );
}

#[test]
fn a_refusal_of_the_registry_names_it_and_the_user() {
    let creds = Credentials {
        server: "127.0.0.1:5015".into(),
        username: "kargo".into(),
        password: "wrong".into(),
    };
    let e = push_error(
        "127.0.0.1:5015",
        Some(&creds),
        "unauthorized: authentication required".into(),
    );
    let text = e.to_string();
    assert!(
        text.contains("registry 127.0.0.1:5015 refused the credentials of user \"kargo\""),
        "{text}"
    );
    assert!(!text.contains("wrong"));
    let e = push_error("r:5000", None, "connection refused".into());
    assert!(matches!(e, BuildError::Push { .. }), "{e}");
}
