//! Validation of whole inputs: modes, positions, wording, cross-object checks.

use serde_json::json;

use super::*;

fn run(files: &[(&str, &str)]) -> Report {
    let sources: Vec<Source> = files
        .iter()
        .map(|(name, text)| Source {
            name: (*name).to_string(),
            bytes: text.as_bytes().to_vec(),
        })
        .collect();
    validate_sources(&sources, &Options::default())
}

fn messages(report: &Report) -> Vec<String> {
    report.diagnostics().map(ToString::to_string).collect()
}

#[test]
fn a_stored_service_may_overlay_a_default_partially_and_delete_with_null() {
    let report = run(&[(
        "overlay.yaml",
        "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {name: kano}\nspec:\n  healthcheck: null\n  env:\n    LOG_LEVEL: null\n  deploy:\n    replicas: 3\n    resources: {limits: null}\n",
    )]);
    assert!(report.is_valid(), "{:?}", messages(&report));
    let spec = &report.objects[0].spec;
    assert_eq!(
        spec["env"]["LOG_LEVEL"],
        json!(null),
        "nulls are kept as given"
    );
}

#[test]
fn the_merged_mode_requires_an_image_and_refuses_nulls() {
    let missing = validate_spec(
        Kind::Service,
        Mode::Merged,
        &json!({"deploy": {"replicas": 1}}),
    );
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].rule, Rule::Required);
    assert_eq!(missing[0].message, "missing required field `image`");
    let null = validate_spec(Kind::Service, Mode::Merged, &json!({"image": null}));
    assert_eq!(
        null[0].message,
        "expected a string, got null (an empty value)"
    );
    let ok = validate_spec(
        Kind::Service,
        Mode::Merged,
        &json!({"image": "redis:7", "healthcheck": {"test": ["CMD", "true"], "interval": "5s"}}),
    );
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn the_merged_mode_checks_patterns_strictly_after_interpolation() {
    let stored = validate_spec(
        Kind::Service,
        Mode::Stored,
        &json!({"stopGracePeriod": "${GRACE:-10s}"}),
    );
    assert!(
        stored.is_empty(),
        "a ${{VAR}} reference waits for interpolation: {stored:?}"
    );
    let merged = validate_spec(
        Kind::Service,
        Mode::Merged,
        &json!({"image": "a", "stopGracePeriod": "${GRACE:-10s}"}),
    );
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert!(merged[0].message.contains("is not a duration"));
}

#[test]
fn errors_carry_file_line_column_object_and_field() {
    let report = run(&[(
        "a.yaml",
        "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata:\n  name: apps\nspec:\n  services: [web]\n  suspend: maybe\n",
    )]);
    let d = report.diagnostics().next().cloned().expect("an error");
    assert_eq!((d.file.as_str(), d.line, d.column), ("a.yaml", 7, 12));
    assert_eq!(d.object.as_deref(), Some("stack/apps"));
    assert_eq!(d.path, "spec.suspend");
    assert_eq!(d.document, Some(0));
    assert_eq!(
        d.to_string(),
        "a.yaml:7:12: stack/apps: spec.suspend: expected true or false, got the string \"maybe\""
    );
}

#[test]
fn all_errors_of_all_documents_are_reported() {
    let text = "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: a}\nspec: {services: [], suspend: 1, rollback: never}\n---\nkind: Stack\nmetadata: {name: b}\nspec: {servics: []}\n";
    let report = run(&[("a.yaml", text)]);
    let all = messages(&report);
    assert_eq!(all.len(), 4, "{all:#?}");
    assert_eq!(report.summary().invalid, 2);
}

#[test]
fn yaml_errors_and_sound_documents_are_both_reported() {
    let text = "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: a}\nspec: {services: [], services: []}\n---\napiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: b}\nspec: {suspend: 1}\n";
    let report = run(&[("a.yaml", text)]);
    let all = messages(&report);
    assert!(
        all[0].starts_with("a.yaml:4:22: duplicate key \"services\""),
        "{all:?}"
    );
    assert!(all[1].contains("spec.suspend"), "{all:?}");
    let s = report.summary();
    assert_eq!((s.documents, s.invalid, s.unreadable), (1, 1, 1));
}

#[test]
fn references_are_checked_only_when_the_input_holds_the_kind() {
    let stack = "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: apps}\nspec: {services: [web, redis]}\n";
    assert!(
        run(&[("s.yaml", stack)]).is_valid(),
        "no Service in the input: not checked"
    );
    let other =
        "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {name: api}\nspec: {image: x}\n";
    let report = run(&[("s.yaml", stack), ("svc.yaml", other)]);
    let all = messages(&report);
    assert_eq!(all.len(), 1, "redis is a catalog entry: {all:?}");
    assert!(all[0].starts_with("s.yaml:4:"), "{all:?}");
    assert!(all[0].contains("service `web` is neither"), "{all:?}");
}

#[test]
fn stack_cycles_across_files_are_found_once() {
    let a = "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: a}\nspec: {dependsOn: [b]}\n";
    let b = "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: b}\nspec: {dependsOn: [c]}\n";
    let c = "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: c}\nspec: {dependsOn: [a]}\n";
    let report = run(&[("a.yaml", a), ("b.yaml", b), ("c.yaml", c)]);
    let all = messages(&report);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].contains("dependsOn cycle: a → b → c → a"), "{all:?}");
}

#[test]
fn a_long_dependency_chain_does_not_overflow() {
    let mut text = String::new();
    for i in 0..5000 {
        text.push_str(&format!(
            "---\napiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {{name: s{i}}}\nspec: {{dependsOn: [s{}]}}\n",
            (i + 1) % 5000
        ));
    }
    let report = run(&[("chain.yaml", &text)]);
    let all = messages(&report);
    assert_eq!(
        all.len(),
        1,
        "one cycle through all 5000: {:?}",
        all.first()
    );
}

#[test]
fn the_umbrella_schema_agrees_with_the_per_kind_schemas() {
    let schemas = schema_errors::schemas();
    let documents = [
        json!({"apiVersion": "kargo.dev/v1alpha1", "kind": "Service", "metadata": {"name": "a"}, "spec": {"image": "x", "ports": [{"target": 80}]}}),
        json!({"apiVersion": "kargo.dev/v1alpha1", "kind": "Service", "metadata": {"name": "a"}, "spec": {"imag": "x"}}),
        json!({"apiVersion": "kargo.dev/v1alpha1", "kind": "Stack", "metadata": {"name": "a"}, "spec": {"services": ["Web"]}}),
        json!({"apiVersion": "kargo.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "a"}, "spec": {"services": {"k": {"tag": 4.2}}}}),
        json!({"apiVersion": "kargo.dev/v1alpha1", "kind": "Configuration", "metadata": {"name": "a"}, "spec": {"defaults": "none"}}),
        json!({"apiVersion": "v1", "kind": "Configuration", "metadata": {"name": "a"}, "spec": {}}),
    ];
    for doc in &documents {
        let kind = doc["kind"]
            .as_str()
            .and_then(|k| k.parse::<Kind>().ok())
            .expect("kind");
        let one = schemas.document(kind, Mode::Stored).expect("schema");
        assert_eq!(
            schemas
                .umbrella()
                .expect("umbrella")
                .validator
                .is_valid(doc),
            one.validator.is_valid(doc),
            "{doc}"
        );
    }
}

#[test]
fn every_catalog_entry_is_valid_stored_and_merged() {
    for name in crate::manifest::defaults::names() {
        let text = crate::manifest::defaults::source(name).unwrap_or_default();
        let report = run(&[(name, text)]);
        assert!(report.is_valid(), "{name}: {:?}", messages(&report));
        let spec = &report.objects[0].spec;
        let merged: Vec<String> = validate_spec(Kind::Service, Mode::Merged, spec)
            .iter()
            .filter(|v| !v.message.contains("${"))
            .map(ToString::to_string)
            .collect();
        assert!(
            merged.iter().all(|m| !m.contains("missing required")),
            "{name} has no image: {merged:?}"
        );
    }
}

#[test]
fn the_check_on_the_fast_readers_tree_agrees_with_the_check_on_values() {
    use crate::manifest::yaml::fast_tests::{repository_yaml, variations};
    let schemas = schema_errors::schemas();
    let (mut compared, mut invalid) = (0, 0);
    for (_, text) in repository_yaml() {
        for variant in std::iter::once(text.clone()).chain(variations(&text)) {
            let Some(documents) = yaml::parse_fast_trees(variant.as_bytes(), &Limits::DEFAULT)
            else {
                continue;
            };
            for doc in &documents {
                let value = doc.tree.to_value();
                let Some(kind) = value
                    .get("kind")
                    .and_then(Value::as_str)
                    .and_then(|k| Kind::ALL.into_iter().find(|x| x.as_str() == k))
                else {
                    continue;
                };
                let on_values = schemas
                    .document(kind, Mode::Stored)
                    .expect("schema")
                    .validator
                    .is_valid(&value);
                let on_tree = schemas
                    .tree_document(kind)
                    .expect("schema")
                    .is_valid(TreeNode::root(&doc.tree));
                assert_eq!(on_tree, on_values, "the checks disagree on:\n{variant}");
                compared += 1;
                invalid += usize::from(!on_values);
            }
        }
    }
    assert!(compared > 5000, "only {compared} documents compared");
    assert!(
        invalid > 2000,
        "only {invalid} invalid documents among them"
    );
}

#[test]
fn the_fast_path_changes_no_report() {
    use crate::manifest::yaml::fast_tests::{repository_yaml, variations};
    let fast = Options {
        threads: 1,
        ..Options::default()
    };
    let full = Options {
        fast_path: false,
        ..fast
    };
    let mut compared = 0;
    for (name, text) in repository_yaml() {
        for variant in std::iter::once(text.clone()).chain(variations(&text)) {
            if yaml::parse_fast(variant.as_bytes(), &Limits::DEFAULT).is_none() {
                continue;
            }
            // Two copies, so the checks across objects have something to find.
            let sources = [("a.yaml", &variant), ("b.yaml", &variant)].map(|(n, t)| Source {
                name: n.to_string(),
                bytes: t.as_bytes().to_vec(),
            });
            let one = validate_sources(&sources, &fast);
            let other = validate_sources(&sources, &full);
            assert_eq!(
                render(&one, OutputFormat::Json, false),
                render(&other, OutputFormat::Json, false),
                "the fast path changes the report of a variant of {name}:\n{variant}"
            );
            let objects = |r: &Report| serde_json::to_value(&r.objects).ok();
            assert_eq!(objects(&one), objects(&other), "objects of {name}");
            compared += 1;
        }
    }
    assert!(compared > 3000, "only {compared} inputs compared");
}

/// The Environment of the "1 KB manifest exhausts memory" report.
fn doubling_environment() -> String {
    let mut text = String::from(
        "apiVersion: kargo.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: bomb\nspec:\n  variables:\n    V0: xxxxxxxxxxxxxxxx\n",
    );
    for i in 1..=40 {
        text.push_str(&format!("    V{i}: \"${{V{}}}${{V{}}}\"\n", i - 1, i - 1));
    }
    text
}

#[test]
fn an_interpolation_bomb_is_invalid_at_the_first_variable_past_500_kb() {
    for fast_path in [true, false] {
        let sources = [Source {
            name: "bomb.yaml".into(),
            bytes: doubling_environment().into_bytes(),
        }];
        let options = Options {
            fast_path,
            ..Options::default()
        };
        let report = validate_sources(&sources, &options);
        assert_eq!(
            messages(&report),
            vec![
                "bomb.yaml:22:10: environment/bomb: spec.variables.V15: the value would be more than 500 KB (512000 bytes) once ${V14} is substituted; one value may hold at most 500 KB (512000 bytes), Swarm's limit on a config or secret"
            ],
            "fast path {fast_path}"
        );
    }
}

#[test]
fn a_big_variable_under_the_bound_is_valid() {
    let text = format!(
        "apiVersion: kargo.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: big\nspec:\n  variables:\n    BIG: {}\n    TWICE: \"${{BIG}}${{BIG}}\"\n",
        "b".repeat(200 * 1024)
    );
    let report = run(&[("big.yaml", &text)]);
    assert!(report.is_valid(), "{:?}", messages(&report));
}

#[test]
fn quantities_past_64_bits_are_invalid_where_they_are_written() {
    for fast_path in [true, false] {
        let sources = [Source {
            name: "web.yaml".into(),
            bytes: b"apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata:\n  name: web\nspec:\n  image: busybox\n  healthcheck:\n    interval: 9999999999h\n  deploy:\n    resources:\n      limits:\n        memory: \"309485009821345068724781056T\"\n        cpus: \"99999999999\"\n      reservations:\n        memory: 8388607T\n".to_vec(),
        }];
        let options = Options {
            fast_path,
            ..Options::default()
        };
        let report = validate_sources(&sources, &options);
        assert_eq!(
            messages(&report),
            vec![
                "web.yaml:8:15: service/web: spec.healthcheck.interval: duration \"9999999999h\" is too large: at most 2562047h",
                "web.yaml:12:17: service/web: spec.deploy.resources.limits.memory: memory size \"309485009821345068724781056T\" is too large: at most 8388607T",
                "web.yaml:13:15: service/web: spec.deploy.resources.limits.cpus: CPU count \"99999999999\" is too large: at most 9223372036",
            ],
            "fast path {fast_path}"
        );
    }
}

#[test]
fn an_object_past_one_and_a_half_mib_is_invalid() {
    let mut text = String::from(
        "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata:\n  name: fat\nspec:\n  image: busybox\n  env:\n",
    );
    for i in 0..20 {
        text.push_str(&format!("    K{i}: {}\n", "v".repeat(100 * 1024)));
    }
    let report = run(&[("fat.yaml", &text)]);
    assert_eq!(
        messages(&report),
        vec![
            "fat.yaml:1:1: service/fat: the object is more than 1.5 MiB (1572864 bytes) as JSON; one object may be at most that (etcd's limit on a request)"
        ]
    );
}

#[test]
fn a_list_is_checked_item_by_item_at_the_items_places_and_keeps_no_store_fields() {
    let list = "apiVersion: kargo.dev/v1alpha1\nkind: List\nitems:\n- apiVersion: kargo.dev/v1alpha1\n  kind: Service\n  metadata:\n    name: web\n    uid: 0b7e\n    resourceVersion: '12'\n    generation: 3\n    creationTimestamp: 2024-01-01T00:00:00Z\n  spec:\n    image: web:1\n  status:\n    observedGeneration: 3\n- apiVersion: kargo.dev/v1alpha1\n  kind: Service\n  metadata: {name: db}\n  spec:\n    image: 7\n";
    let report = run(&[("list.yaml", list)]);
    assert_eq!(
        messages(&report),
        vec!["list.yaml:20:12: service/db: spec.image: expected a string, got the number 7; quote it: \"7\"".to_string()],
    );
    let fixed = list.replace("image: 7", "image: db:1");
    let report = run(&[("list.yaml", &fixed)]);
    assert!(report.is_valid(), "{:?}", messages(&report));
    let names: Vec<&str> = report
        .objects
        .iter()
        .map(|o| o.metadata.name.as_str())
        .collect();
    assert_eq!(names, ["web", "db"]);
    assert!(report.objects[0].status.is_none());
    assert!(report.objects[0].metadata.uid.is_none());
    assert_eq!(report.objects[0].metadata.resource_version, None);
}

#[test]
fn a_list_without_items_is_one_problem() {
    let report = run(&[("list.yaml", "apiVersion: v1\nkind: List\nitems: web\n")]);
    assert_eq!(
        messages(&report),
        vec!["list.yaml:1:1: items: a List needs `items`: a list of objects".to_string()],
    );
}

#[test]
fn interpolation_syntax_is_checked_offline_where_the_controller_interpolates() {
    let text = "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {name: loop}\nspec:\n  image: busybox\n  command: [sh, -c, 'i=$((i+1)); echo $i $$HOME']\n---\napiVersion: kargo.dev/v1alpha1\nkind: Configuration\nmetadata: {name: main}\nspec:\n  files:\n    raw.sh: {content: 'echo $(date)'}\n    tpl.sh: {content: 'echo $(date)', template: true}\n---\napiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: shell}\nspec: {services: [loop]}\n";
    let report = run(&[("shell.yaml", text)]);
    assert_eq!(
        messages(&report),
        [
            "shell.yaml:6:21: service/loop: spec.command[2]: invalid interpolation at byte 2: `$((` is not interpolation: write `$$((` so the command gets a literal `$((`",
            "shell.yaml:14:23: configuration/main: spec.files[\"tpl.sh\"].content: invalid interpolation at byte 5: `$(` is not interpolation: write `$$(` so the command gets a literal `$(`",
        ],
        "an unset `$i` is the controller's to report; a file that is no template is literal"
    );
    let full = validate_sources(
        &[Source {
            name: "shell.yaml".into(),
            bytes: text.as_bytes().to_vec(),
        }],
        &Options {
            fast_path: false,
            ..Options::default()
        },
    );
    assert_eq!(messages(&full), messages(&report), "both readers agree");
}
