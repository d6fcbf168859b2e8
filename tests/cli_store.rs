//! The kubectl-grade commands of the real binary against the real etcd: apply (three-way
//! merge, dry runs, prune, concurrency), get, describe, diff, delete, wait, scale,
//! rollout, help and completion, with their exit codes.

mod common;

use std::time::{Duration, Instant};

use common::{expect_code, kargo, text};
use kargo::api::{DynamicObject, Kind};
use kargo::store::Store;
use serde_json::{Value, json};

const WEB: &str = r#"
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {name: shop}
spec: {services: [web]}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata:
  name: web
  labels: {tier: front}
spec:
  image: "kargo-busybox:1.0"
  env: {A: "1", B: "2"}
  deploy: {replicas: 1}
"#;

async fn annotation(store: &Store, service: &str, key: &str) -> String {
    store
        .get(Kind::Service, service)
        .await
        .expect("get")
        .and_then(|o| o.metadata.annotations.get(key).cloned())
        .unwrap_or_default()
}

async fn spec_of(store: &Store, kind: Kind, name: &str) -> Value {
    store
        .get(kind, name)
        .await
        .expect("get")
        .map(|o| o.spec)
        .unwrap_or(Value::Null)
}

/// Writes a status as the controller would: observed the current generation, Ready as given.
/// The spec hash the plan asks of a Stack or Service now (what a controller's status
/// carries once it has taken the stored objects): what `wait` and `rollout status` compare.
async fn asked_hash(store: &Store, kind: Kind, name: &str) -> Option<String> {
    let list = store.list_all().await.expect("list");
    let snapshot = kargo::controller::Snapshot::from_list(&list);
    let plan = kargo::controller::plan(
        &snapshot,
        "main",
        store.prefix(),
        &kargo::manifest::catalog_spec,
    );
    match kind {
        Kind::Stack => plan
            .stacks
            .iter()
            .find(|s| s.name == name)
            .and_then(kargo::controller::stack_spec_hash),
        _ => plan
            .stacks
            .iter()
            .flat_map(|s| &s.services)
            .find(|p| p.name == name)
            .and_then(|p| p.desired.as_ref().ok())
            .map(|d| d.hash.clone()),
    }
}

/// Writes a status as a controller that has taken the stored objects would.
async fn set_ready(store: &Store, kind: Kind, name: &str, ready: &str, reason: &str) {
    let obj = store.get(kind, name).await.expect("get").expect("exists");
    let status = json!({
        "observedGeneration": obj.metadata.generation,
        "conditions": [{"type": "Ready", "status": ready, "reason": reason,
                        "message": format!("{reason} for the test"),
                        "lastTransitionTime": "2024-01-01T00:00:00Z"}],
        "runningTasks": 1, "desiredTasks": 1, "stack": "shop",
        "specHash": asked_hash(store, kind, name).await,
        "rolloutRevision": 200,
    });
    store
        .update_status(kind, name, &status, None)
        .await
        .expect("status");
}

#[tokio::test]
async fn apply_merges_three_ways_keeping_scale_and_status() {
    let prefix = "/kargo-test-cli-merge";
    let store = common::etcd_store(prefix).await;
    let out = kargo(prefix, &["apply", "-f", "-"], Some(WEB));
    assert_eq!(
        expect_code(&out, 0, "first apply"),
        "stack/shop created\nservice/web created\n"
    );
    set_ready(&store, Kind::Service, "web", "True", "Converged").await;
    let out = kargo(
        prefix,
        &["scale", "service", "web", "--replicas", "4"],
        None,
    );
    assert_eq!(expect_code(&out, 0, "scale"), "service/web scaled\n");

    // Re-applying the same file: the scale and the status survive.
    let out = kargo(prefix, &["apply", "-f", "-"], Some(WEB));
    assert_eq!(
        expect_code(&out, 0, "re-apply"),
        "stack/shop unchanged\nservice/web unchanged\n"
    );
    let web = store
        .get(Kind::Service, "web")
        .await
        .expect("get")
        .expect("web");
    assert_eq!(web.spec["deploy"]["replicas"], 4);
    assert!(web.status.is_some(), "status kept");

    // A field removed from the file is removed; a field changed is changed; scale stays.
    let changed = WEB
        .replace("env: {A: \"1\", B: \"2\"}", "env: {A: \"1\"}")
        .replace("kargo-busybox:1.0", "kargo-busybox:1.1");
    let out = kargo(prefix, &["apply", "-f", "-"], Some(&changed));
    assert_eq!(
        expect_code(&out, 0, "changed apply"),
        "stack/shop unchanged\nservice/web configured\n"
    );
    assert_eq!(
        spec_of(&store, Kind::Service, "web").await,
        json!({"image": "kargo-busybox:1.1", "env": {"A": "1"}, "deploy": {"replicas": 4}})
    );
    let web = store
        .get(Kind::Service, "web")
        .await
        .expect("get")
        .expect("web");
    let annotation = &web.metadata.annotations["kargo.dev/last-applied-configuration"];
    assert!(annotation.contains("kargo-busybox:1.1"), "{annotation}");

    // Invalid input writes nothing and exits 1; unreadable input exits 2.
    let out = kargo(
        prefix,
        &["apply", "-f", "-"],
        Some(
            "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {name: bad}\nspec: {imag: x}\n",
        ),
    );
    expect_code(&out, 1, "invalid manifest");
    let out = kargo(prefix, &["apply", "-f", "/nonexistent/kargo.yaml"], None);
    expect_code(&out, 2, "missing file");
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn dry_runs_write_nothing_and_server_checks_the_merge() {
    let prefix = "/kargo-test-cli-dryrun";
    let store = common::etcd_store(prefix).await;
    expect_code(&kargo(prefix, &["apply", "-f", "-"], Some(WEB)), 0, "apply");
    let before = store.list_all().await.expect("list");

    let changed = WEB.replace("replicas: 1", "replicas: 2");
    let out = kargo(
        prefix,
        &["apply", "-f", "-", "--dry-run=client"],
        Some(&changed),
    );
    assert_eq!(
        expect_code(&out, 0, "client dry run"),
        "stack/shop unchanged (dry run)\nservice/web configured (dry run)\n"
    );
    let out = kargo(
        prefix,
        &[
            "apply",
            "-f",
            "-",
            "--dry-run=server",
            "-o",
            "jsonpath={.items[1].spec.deploy.replicas}",
        ],
        Some(&changed),
    );
    assert_eq!(expect_code(&out, 0, "server dry run"), "2");

    // The merged configuration is checked as the controller would: no image anywhere.
    let no_image = WEB.replace("image: \"kargo-busybox:1.0\"", "command: [\"true\"]");
    let out = kargo(
        prefix,
        &["apply", "-f", "-", "--dry-run=server"],
        Some(&no_image),
    );
    expect_code(&out, 1, "server dry run of an invalid merge");
    assert!(text(&out.stderr).contains("image"), "{}", text(&out.stderr));
    let out = kargo(
        prefix,
        &["apply", "-f", "-", "--dry-run=client"],
        Some(&no_image),
    );
    expect_code(&out, 0, "client dry run does not merge");

    let after = store.list_all().await.expect("list");
    assert_eq!(before.items, after.items, "a dry run writes nothing");
    common::wipe_prefix(&store).await;
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{image: \"kargo-busybox:1.0\"}}\n---\n"
    )
}

#[tokio::test]
async fn apply_prune_removes_exactly_the_objects_dropped_from_the_set() {
    let prefix = "/kargo-test-cli-prune";
    let store = common::etcd_store(prefix).await;
    let stack = "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: s}\nspec: {services: [a]}\n---\n";
    let full = format!("{stack}{}{}{}", service("a"), service("b"), service("c"));
    let out = kargo(
        prefix,
        &["apply", "-f", "-", "--prune", "--applyset", "one"],
        Some(&full),
    );
    expect_code(&out, 0, "first apply of the set");
    // Objects outside the set: applied by hand, and by another set.
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(&service("x"))),
        0,
        "x",
    );
    let out = kargo(
        prefix,
        &["apply", "-f", "-", "--prune", "--applyset", "two"],
        Some(&service("y")),
    );
    expect_code(&out, 0, "other set");

    let smaller = format!("{stack}{}", service("a"));
    let out = kargo(
        prefix,
        &[
            "apply",
            "-f",
            "-",
            "--prune",
            "--applyset",
            "one",
            "--dry-run",
        ],
        Some(&smaller),
    );
    let shown = expect_code(&out, 0, "dry-run prune");
    assert!(shown.contains("service/b pruned (dry run)"), "{shown}");
    assert_eq!(
        store.list(Kind::Service).await.expect("list").items.len(),
        5
    );

    let out = kargo(
        prefix,
        &["apply", "-f", "-", "--prune", "--applyset", "one"],
        Some(&smaller),
    );
    let shown = expect_code(&out, 0, "prune");
    assert_eq!(
        shown,
        "stack/s unchanged\nservice/a unchanged\nservice/b pruned\nservice/c pruned\n"
    );
    let names: Vec<String> = store
        .list_all()
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|o| o.reference())
        .collect();
    assert_eq!(names, ["stack/s", "service/a", "service/x", "service/y"]);
    let (set, _) = store.applyset("one").await.expect("read").expect("set");
    let members: Vec<String> = set.members.iter().map(ToString::to_string).collect();
    assert_eq!(members, ["stack/s", "service/a"]);

    // --prune needs --applyset; a bad set name is a usage error.
    expect_code(
        &kargo(prefix, &["apply", "-f", "-", "--prune"], Some(&smaller)),
        2,
        "no set",
    );
    let out = kargo(
        prefix,
        &["apply", "-f", "-", "--applyset", "Bad/Name"],
        Some(&smaller),
    );
    expect_code(&out, 2, "bad set name");
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn concurrent_apply_and_scale_never_lose_an_update() {
    let prefix = "/kargo-test-cli-race";
    let store = common::etcd_store(prefix).await;
    expect_code(&kargo(prefix, &["apply", "-f", "-"], Some(WEB)), 0, "base");
    let bin = env!("CARGO_BIN_EXE_kargo");
    let endpoints = common::etcd_endpoints().join(",");
    for round in 0..8u32 {
        let file = WEB.replace("A: \"1\"", &format!("A: \"round-{round}\""));
        let replicas = (round + 2).to_string();
        let mut apply = std::process::Command::new(bin);
        apply
            .args(["apply", "-f", "-"])
            .env("KARGO_PREFIX", prefix)
            .env("KARGO_ETCD_ENDPOINTS", &endpoints)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut scale = std::process::Command::new(bin);
        scale
            .args(["scale", "service", "web", "--replicas", &replicas])
            .env("KARGO_PREFIX", prefix)
            .env("KARGO_ETCD_ENDPOINTS", &endpoints)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut a = apply.spawn().expect("spawn apply");
        let s = scale.spawn().expect("spawn scale");
        {
            use std::io::Write;
            let mut stdin = a.stdin.take().expect("stdin");
            stdin.write_all(file.as_bytes()).expect("write");
        }
        let a = a.wait_with_output().expect("apply");
        let s = s.wait_with_output().expect("scale");
        let spec = spec_of(&store, Kind::Service, "web").await;
        let conflict = |o: &std::process::Output| {
            o.status.code() == Some(1) && text(&o.stderr).contains("someone else")
        };
        assert!(
            a.status.success() || conflict(&a),
            "apply: {}",
            text(&a.stderr)
        );
        assert!(
            s.status.success() || conflict(&s),
            "scale: {}",
            text(&s.stderr)
        );
        if a.status.success() {
            assert_eq!(
                spec["env"]["A"],
                format!("round-{round}"),
                "round {round}: apply lost"
            );
        }
        if s.status.success() {
            assert_eq!(
                spec["deploy"]["replicas"],
                round + 2,
                "round {round}: scale lost"
            );
        }
    }
    common::wipe_prefix(&store).await;
}

/// Two applies read the same version, then write one after the other (the interleaving
/// two processes can have): different fields both land; the same field is a conflict.
#[tokio::test]
async fn interleaved_applies_on_etcd_merge_or_conflict() {
    let store = common::etcd_store("/kargo-test-cli-interleave").await;
    let web = |spec: Value| DynamicObject::new(Kind::Service, "web", spec);
    store
        .apply(&web(json!({"image": "a", "env": {"A": "1"}})))
        .await
        .expect("base");
    let one = store
        .prepare_apply(&web(json!({"image": "b", "env": {"A": "1"}})))
        .await
        .expect("prepare one");
    let two = store
        .prepare_apply(&web(json!({"image": "a", "env": {"A": "2"}})))
        .await
        .expect("prepare two");
    let three = store
        .prepare_apply(&web(json!({"image": "c", "env": {"A": "1"}})))
        .await
        .expect("prepare three");
    store.commit_apply(&one).await.expect("commit one");
    store.commit_apply(&two).await.expect("commit two");
    assert_eq!(
        spec_of(&store, Kind::Service, "web").await,
        json!({"image": "b", "env": {"A": "2"}})
    );
    let err = store.commit_apply(&three).await.expect_err("same field");
    assert!(err.to_string().contains("spec.image"), "{err}");
    assert_eq!(spec_of(&store, Kind::Service, "web").await["image"], "b");
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn get_formats_selectors_and_watch() {
    let prefix = "/kargo-test-cli-get";
    let store = common::etcd_store(prefix).await;
    let two = format!("{WEB}---\n{}", service("db").trim_end_matches("---\n"));
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(&two)),
        0,
        "apply",
    );
    set_ready(&store, Kind::Service, "web", "True", "Converged").await;

    let out = kargo(prefix, &["get", "svc", "-o", "name"], None);
    assert_eq!(expect_code(&out, 0, "names"), "service/db\nservice/web\n");
    let out = kargo(
        prefix,
        &["get", "services", "-l", "tier=front", "-o", "name"],
        None,
    );
    assert_eq!(expect_code(&out, 0, "selector"), "service/web\n");
    let out = kargo(
        prefix,
        &["get", "services", "-l", "tier notin (front)", "-o", "name"],
        None,
    );
    assert_eq!(expect_code(&out, 0, "set selector"), "service/db\n");
    let out = kargo(
        prefix,
        &[
            "get",
            "svc",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.spec.image}{"\n"}{end}"#,
        ],
        None,
    );
    assert_eq!(
        expect_code(&out, 0, "jsonpath"),
        "db=kargo-busybox:1.0\nweb=kargo-busybox:1.0\n"
    );
    let out = kargo(
        prefix,
        &[
            "get",
            "service/web",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}",
        ],
        None,
    );
    assert_eq!(expect_code(&out, 0, "filter"), "Converged");
    let table = expect_code(
        &kargo(prefix, &["get", "svc", "-o", "wide", "--show-labels"], None),
        0,
        "wide",
    );
    let header = table.lines().next().unwrap_or_default();
    for col in [
        "NAME",
        "STACK",
        "IMAGE",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "STATUS",
        "AGE",
        "MESSAGE",
        "LABELS",
    ] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table.contains("1/1") && table.contains("tier=front"),
        "{table}"
    );
    let table = expect_code(&kargo(prefix, &["get", "stacks"], None), 0, "stacks");
    assert!(
        table.starts_with("NAME") && table.contains("SERVICES") && table.contains("0/1"),
        "{table}"
    );
    // Several kinds: in the order asked, a table per kind, or one List.
    let out = kargo(prefix, &["get", "stacks,services", "-o", "name"], None);
    assert_eq!(
        expect_code(&out, 0, "two kinds"),
        "stack/shop\nservice/db\nservice/web\n"
    );
    let out = kargo(prefix, &["get", "all", "-o", "name"], None);
    assert_eq!(
        expect_code(&out, 0, "all"),
        "stack/shop\nservice/db\nservice/web\n"
    );
    let tables = expect_code(&kargo(prefix, &["get", "svc,st"], None), 0, "tables");
    assert_eq!(
        tables.lines().filter(|l| l.starts_with("NAME")).count(),
        2,
        "{tables}"
    );
    assert!(
        tables.contains("\n\nNAME") && tables.contains("SERVICES"),
        "{tables}"
    );
    let out = kargo(
        prefix,
        &["get", "service/web", "stack/shop", "-o", "json"],
        None,
    );
    let list: Value = serde_json::from_str(&expect_code(&out, 0, "across kinds")).expect("json");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|o| o["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["Service", "Stack"], "{list}");
    expect_code(
        &kargo(prefix, &["get", "svc,st", "web"], None),
        2,
        "names need KIND/NAME with several kinds",
    );
    let out = kargo(prefix, &["get", "svc", "web", "nope"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("web") && text(&out.stderr).contains("nope"));
    expect_code(
        &kargo(prefix, &["get", "svc", "nope", "--ignore-not-found"], None),
        0,
        "ignore",
    );
    expect_code(&kargo(prefix, &["get", "pods"], None), 2, "unknown kind");
    expect_code(
        &kargo(prefix, &["get", "svc", "-o", "xml"], None),
        2,
        "bad format",
    );
    expect_code(
        &kargo(prefix, &["get", "svc", "-o", "jsonpath={.a"], None),
        2,
        "bad jsonpath",
    );

    // -w prints the current objects, then one line per change.
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(["get", "services", "-w", "-o", "name"])
        .env("KARGO_PREFIX", prefix)
        .env("KARGO_ETCD_ENDPOINTS", common::etcd_endpoints().join(","))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn watch");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |rx: &std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a watch line")
    };
    assert_eq!(next(&rx), "service/db");
    assert_eq!(next(&rx), "service/web");
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(&service("cache"))),
        0,
        "apply cache",
    );
    assert_eq!(next(&rx), "service/cache");
    let _ = watch.kill();
    let _ = watch.wait();
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn describe_shows_spec_conditions_and_events() {
    let prefix = "/kargo-test-cli-describe";
    let store = common::etcd_store(prefix).await;
    expect_code(&kargo(prefix, &["apply", "-f", "-"], Some(WEB)), 0, "apply");
    set_ready(&store, Kind::Service, "web", "False", "TasksFailing").await;
    for (i, reason) in ["Created", "TasksFailing"].iter().enumerate() {
        let time = format!("2024-01-01T00:00:0{i}.000000000Z");
        let key = format!("{prefix}/events/service/web/{time}");
        let value = json!({"type": if i == 0 {"Normal"} else {"Warning"}, "reason": reason,
                           "message": format!("{reason} happened"), "time": time, "count": 1});
        store
            .kv()
            .put(
                &key,
                value.to_string().into_bytes(),
                kargo::store::Precondition::Any,
                None,
            )
            .await
            .expect("event");
    }
    let out = kargo(prefix, &["describe", "service", "web"], None);
    let shown = expect_code(&out, 0, "describe");
    for part in [
        "Name:",
        "web",
        "Labels:",
        "tier=front",
        "Image:",
        "kargo-busybox:1.0",
        "Replicas:",
        "Conditions:",
        "TasksFailing",
        "Tasks:",
        "Events:",
        "Created happened",
    ] {
        assert!(shown.contains(part), "missing {part:?} in\n{shown}");
    }
    assert!(
        shown.find("Created happened") < shown.find("TasksFailing happened"),
        "events newest last:\n{shown}"
    );
    assert!(!shown.contains("last-applied"), "{shown}");
    let shown = expect_code(
        &kargo(prefix, &["describe", "stack/shop"], None),
        0,
        "stack",
    );
    assert!(
        shown.contains("Services:") && shown.contains("web"),
        "{shown}"
    );
    expect_code(
        &kargo(prefix, &["describe", "service", "nope"], None),
        1,
        "not found",
    );
    expect_code(&kargo(prefix, &["describe", "service"], None), 2, "no name");
    common::wipe_prefix(&store).await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[tokio::test]
async fn diff_exit_codes_and_output_on_the_example_workspace() {
    let prefix = "/kargo-test-cli-diff";
    let store = common::etcd_store(prefix).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    copy_dir(&workspace, dir.path());
    let path = dir.path().to_string_lossy().into_owned();

    // Nothing stored yet: everything differs.
    let out = kargo(prefix, &["diff", "-f", &path], None);
    let shown = expect_code(&out, 1, "diff before apply");
    assert!(shown.contains("+++ merged/service/web"), "{shown}");
    expect_code(&kargo(prefix, &["apply", "-f", &path], None), 0, "apply");
    let out = kargo(prefix, &["diff", "-f", &path], None);
    assert_eq!(expect_code(&out, 0, "diff after apply"), "");

    // One change: the object's diff, then the Swarm service spec it would change.
    let services = dir.path().join("services.yaml");
    let text_before = std::fs::read_to_string(&services).expect("read");
    let changed = text_before.replacen(
        "replicas: 1\n    restartPolicy",
        "replicas: 3\n    restartPolicy",
        1,
    );
    assert_ne!(
        changed, text_before,
        "the example's web service sets replicas: 1"
    );
    std::fs::write(&services, changed).expect("write");
    let out = kargo(prefix, &["diff", "-f", &path], None);
    let shown = expect_code(&out, 1, "diff with a change");
    assert!(shown.contains("--- live/service/web"), "{shown}");
    assert!(
        shown.contains("-    replicas: 1") && shown.contains("+    replicas: 3"),
        "{shown}"
    );
    assert!(
        !shown.contains("service/queue"),
        "unchanged objects are not shown: {shown}"
    );
    assert!(
        shown.contains("swarm/kargo-frontend_web (after apply)"),
        "{shown}"
    );
    assert!(shown.contains("Replicas: 3"), "{shown}");

    // Docker unreachable: the store part still, and a note instead of the Swarm part.
    let out = kargo(
        prefix,
        &["diff", "-f", &path, "--docker-host", "tcp://127.0.0.1:1"],
        None,
    );
    let shown = expect_code(&out, 1, "diff without Docker");
    assert!(
        shown.contains("+    replicas: 3") && !shown.contains("swarm/"),
        "{shown}"
    );
    assert!(
        text(&out.stderr).contains("Swarm part is not shown"),
        "{}",
        text(&out.stderr)
    );

    // Errors are above 1: an invalid manifest, an unreachable etcd.
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: kargo.dev/v1alpha1\nkind: Nope\n",
    )
    .expect("write");
    expect_code(
        &kargo(prefix, &["diff", "-f", &path], None),
        2,
        "invalid manifest",
    );
    std::fs::remove_file(dir.path().join("bad.yaml")).expect("remove");
    let out = kargo(
        prefix,
        &["diff", "-f", &path, "--etcd-endpoints", "127.0.0.1:1"],
        None,
    );
    expect_code(&out, 2, "unreachable etcd");
    common::wipe_prefix(&store).await;
}

// Multi-threaded: a task writes to etcd while the test blocks on the CLI process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_guards_what_is_in_force_orphans_and_waits() {
    let prefix = "/kargo-test-cli-delete";
    let store = common::etcd_store(prefix).await;
    let cfg = "apiVersion: kargo.dev/v1alpha1\nkind: Configuration\nmetadata: {name: main}\nspec: {environment: prod}\n---\napiVersion: kargo.dev/v1alpha1\nkind: Environment\nmetadata: {name: prod}\nspec: {stacks: [shop]}\n---\n";
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(&format!("{cfg}{WEB}"))),
        0,
        "apply",
    );

    let out = kargo(prefix, &["delete", "environment", "prod"], None);
    expect_code(&out, 1, "environment in force");
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    expect_code(
        &kargo(prefix, &["delete", "configuration/main"], None),
        1,
        "configuration in force",
    );
    let out = kargo(prefix, &["delete", "environment", "prod", "--force"], None);
    assert_eq!(
        expect_code(&out, 0, "forced"),
        "environment \"prod\" deleted\n"
    );

    // Orphan: the annotation is on the object before it is deleted.
    store
        .modify(Kind::Service, "web", None, |o| {
            o.metadata.finalizers = vec!["kargo.dev/swarm".into()]
        })
        .await
        .expect("finalizer");
    let out = kargo(
        prefix,
        &[
            "delete",
            "service",
            "web",
            "--cascade=orphan",
            "--wait",
            "--timeout",
            "1s",
        ],
        None,
    );
    expect_code(&out, 1, "wait times out while the finalizer stays");
    let web = store
        .get(Kind::Service, "web")
        .await
        .expect("get")
        .expect("finalizing");
    assert_eq!(
        web.metadata
            .annotations
            .get("kargo.dev/cascade")
            .map(String::as_str),
        Some("orphan")
    );
    assert!(web.metadata.deletion_timestamp.is_some());
    let releaser = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            store
                .modify(Kind::Service, "web", None, |o| {
                    o.metadata.finalizers.clear()
                })
                .await
        })
    };
    let started = Instant::now();
    let out = kargo(
        prefix,
        &["delete", "service", "web", "--wait", "--timeout", "20s"],
        None,
    );
    expect_code(&out, 0, "wait until gone");
    assert!(started.elapsed() < Duration::from_secs(10));
    let _ = releaser.await;
    assert!(
        store
            .get(Kind::Service, "web")
            .await
            .expect("get")
            .is_none()
    );

    expect_code(
        &kargo(prefix, &["delete", "service", "web"], None),
        1,
        "not found",
    );
    expect_code(
        &kargo(
            prefix,
            &["delete", "service", "web", "--ignore-not-found"],
            None,
        ),
        0,
        "ignored",
    );
    let out = kargo(
        prefix,
        &["delete", "-f", "-"],
        Some("apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: shop}\nspec: {}\n"),
    );
    assert_eq!(
        expect_code(&out, 0, "delete -f"),
        "stack \"shop\" deleted\n"
    );
    expect_code(&kargo(prefix, &["delete", "service"], None), 2, "no names");
    common::wipe_prefix(&store).await;
}

// Multi-threaded: a task writes to etcd while the test blocks on the CLI process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_exit_codes() {
    let prefix = "/kargo-test-cli-wait";
    let store = common::etcd_store(prefix).await;
    expect_code(&kargo(prefix, &["apply", "-f", "-"], Some(WEB)), 0, "apply");

    let started = Instant::now();
    let out = kargo(prefix, &["wait", "service/web", "--timeout", "1s"], None);
    expect_code(&out, 1, "no status: times out");
    assert!(
        text(&out.stderr).contains("timed out"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    // The status arrives while waiting.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            set_ready(&store, Kind::Service, "web", "True", "Converged").await;
        })
    };
    let out = kargo(
        prefix,
        &[
            "wait",
            "service",
            "web",
            "--for=condition=Ready",
            "--timeout",
            "20s",
        ],
        None,
    );
    assert_eq!(expect_code(&out, 0, "met"), "service/web condition met\n");
    let _ = writer.await;
    let out = kargo(
        prefix,
        &[
            "wait",
            "service/web",
            "--for=jsonpath={.status.runningTasks}=1",
        ],
        None,
    );
    expect_code(&out, 0, "jsonpath met");
    let out = kargo(
        prefix,
        &[
            "wait",
            "service/web",
            "--for=jsonpath={.status.runningTasks}=7",
            "--timeout=1s",
        ],
        None,
    );
    expect_code(&out, 1, "jsonpath not met");

    // A new generation makes the old Ready stale.
    expect_code(
        &kargo(
            prefix,
            &["apply", "-f", "-"],
            Some(&WEB.replace("replicas: 1", "replicas: 2")),
        ),
        0,
        "new generation",
    );
    expect_code(
        &kargo(prefix, &["wait", "service/web", "--timeout", "1s"], None),
        1,
        "stale Ready",
    );
    expect_code(
        &kargo(prefix, &["wait", "service/nope", "--timeout", "1s"], None),
        1,
        "not found",
    );
    expect_code(
        &kargo(prefix, &["wait", "service/nope", "--for=delete"], None),
        0,
        "already gone",
    );
    expect_code(
        &kargo(prefix, &["wait", "service/web", "--for=ready"], None),
        2,
        "bad --for",
    );
    expect_code(
        &kargo(prefix, &["wait", "service"], None),
        2,
        "nothing named",
    );
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn scale_writes_the_layer_that_decides() {
    let prefix = "/kargo-test-cli-scale";
    let store = common::etcd_store(prefix).await;
    let env = "apiVersion: kargo.dev/v1alpha1\nkind: Configuration\nmetadata: {name: main}\nspec: {environment: prod}\n---\napiVersion: kargo.dev/v1alpha1\nkind: Environment\nmetadata: {name: prod}\nspec:\n  stacks: [shop]\n  services:\n    worker: {replicas: 2}\n---\n";
    let all = format!("{env}{WEB}---\n{}", service("worker"));
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(&all)),
        0,
        "apply",
    );

    let out = kargo(
        prefix,
        &["scale", "service", "worker", "--replicas", "5"],
        None,
    );
    assert_eq!(
        expect_code(&out, 0, "env decides"),
        "service/worker scaled (environment/prod: services.worker.replicas=5)\n"
    );
    assert_eq!(
        spec_of(&store, Kind::Environment, "prod").await["services"]["worker"]["replicas"],
        5
    );
    assert_eq!(
        spec_of(&store, Kind::Service, "worker").await.get("deploy"),
        None
    );
    let out = kargo(prefix, &["scale", "service/web", "--replicas", "3"], None);
    assert_eq!(
        expect_code(&out, 0, "service decides"),
        "service/web scaled\n"
    );
    assert_eq!(
        spec_of(&store, Kind::Service, "web").await["deploy"]["replicas"],
        3
    );
    // Re-applying the unchanged files keeps both.
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(&all)),
        0,
        "re-apply",
    );
    assert_eq!(
        spec_of(&store, Kind::Environment, "prod").await["services"]["worker"]["replicas"],
        5
    );
    assert_eq!(
        spec_of(&store, Kind::Service, "web").await["deploy"]["replicas"],
        3
    );

    let out = kargo(
        prefix,
        &[
            "scale",
            "service",
            "nope",
            "--replicas",
            "1",
            "--configuration",
            "none",
        ],
        None,
    );
    expect_code(&out, 1, "not found");
    expect_code(
        &kargo(prefix, &["scale", "stack", "shop", "--replicas", "1"], None),
        2,
        "not a service",
    );
    expect_code(
        &kargo(prefix, &["scale", "service", "web"], None),
        2,
        "no --replicas",
    );
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn rollout_restart_status_history_and_undo() {
    let prefix = "/kargo-test-cli-rollout";
    let store = common::etcd_store(prefix).await;
    let two = format!("{WEB}---\n{}", service("db").trim_end_matches("---\n"));
    let two = two.replace("services: [web]", "services: [web, db]");
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(&two)),
        0,
        "apply",
    );

    let out = kargo(prefix, &["rollout", "restart", "stack", "shop"], None);
    assert_eq!(
        expect_code(&out, 0, "restart"),
        "service/web restarted\nservice/db restarted\n"
    );
    let web = store
        .get(Kind::Service, "web")
        .await
        .expect("get")
        .expect("web");
    let at = web
        .metadata
        .annotations
        .get("kargo.dev/restartedAt")
        .cloned()
        .unwrap_or_default();
    assert!(chrono::DateTime::parse_from_rfc3339(&at).is_ok(), "{at:?}");
    // A second restart right away is a second restart (a new annotation value).
    expect_code(
        &kargo(prefix, &["rollout", "restart", "service", "web"], None),
        0,
        "restart again",
    );
    let again = annotation(&store, "web", "kargo.dev/restartedAt").await;
    assert_ne!(again, at, "two restarts within a second must differ");

    // History as the controller records it: revision 100 (image 1.0), 200 (image 1.1).
    let old_web = spec_of(&store, Kind::Service, "web").await;
    let db = spec_of(&store, Kind::Service, "db").await;
    let mut new_web = old_web.clone();
    new_web["image"] = json!("kargo-busybox:1.1");
    for (rev, web_spec) in [(100, &old_web), (200, &new_web)] {
        let record = json!({"stack": "shop", "revision": rev, "time": "2024-01-01T00:00:00Z",
                            "services": {"web": web_spec, "db": db}});
        let key = format!("{prefix}/history/stacks/shop/{rev:020}");
        store
            .kv()
            .put(
                &key,
                record.to_string().into_bytes(),
                kargo::store::Precondition::Any,
                None,
            )
            .await
            .expect("history");
    }
    store
        .modify(Kind::Service, "web", None, |o| o.spec = new_web.clone())
        .await
        .expect("update to 1.1");
    // The Stack is at rollout revision 200: CURRENT marks it.
    set_ready(&store, Kind::Stack, "shop", "True", "Converged").await;
    let table = expect_code(
        &kargo(prefix, &["rollout", "history", "stack", "shop"], None),
        0,
        "history",
    );
    assert!(
        table.contains("REVISION") && table.contains("100") && table.contains("200"),
        "{table}"
    );
    let current_line = table
        .lines()
        .find(|l| l.starts_with("200"))
        .unwrap_or_default();
    assert!(current_line.ends_with('*'), "{table}");

    let out = kargo(
        prefix,
        &["rollout", "undo", "stack", "shop", "--dry-run"],
        None,
    );
    assert!(expect_code(&out, 0, "undo dry run").contains("+image: kargo-busybox:1.0"));
    assert_eq!(
        spec_of(&store, Kind::Service, "web").await["image"],
        "kargo-busybox:1.1"
    );
    let out = kargo(prefix, &["rollout", "undo", "stack", "shop"], None);
    assert_eq!(
        expect_code(&out, 0, "undo"),
        "service/web rolled back to revision 100 of stack/shop\n"
    );
    assert_eq!(spec_of(&store, Kind::Service, "web").await, old_web);
    // Undo of one service goes to the newest record that differs from it: 200 now.
    let out = kargo(prefix, &["rollout", "undo", "service", "web"], None);
    assert_eq!(
        expect_code(&out, 0, "undo service"),
        "service/web rolled back to revision 200 of stack/shop\n"
    );
    assert_eq!(spec_of(&store, Kind::Service, "web").await, new_web);
    let out = kargo(
        prefix,
        &["rollout", "undo", "stack", "shop", "--to-revision", "7"],
        None,
    );
    expect_code(&out, 1, "no such revision");

    // status: rolled out, failed, timed out.
    set_ready(&store, Kind::Stack, "shop", "True", "Converged").await;
    let out = kargo(prefix, &["rollout", "status", "stack", "shop"], None);
    assert_eq!(
        expect_code(&out, 0, "status"),
        "stack \"shop\" successfully rolled out (revision 200)\n"
    );
    set_ready(&store, Kind::Stack, "shop", "False", "RolledBack").await;
    let out = kargo(
        prefix,
        &["rollout", "status", "stack/shop", "--timeout", "20s"],
        None,
    );
    expect_code(&out, 1, "rolled back fails fast");
    assert!(
        text(&out.stderr).contains("RolledBack"),
        "{}",
        text(&out.stderr)
    );
    set_ready(&store, Kind::Stack, "shop", "False", "Progressing").await;
    let out = kargo(
        prefix,
        &["rollout", "status", "stack/shop", "--timeout", "1s"],
        None,
    );
    expect_code(&out, 1, "times out");
    expect_code(
        &kargo(prefix, &["rollout", "restart", "stack", "nope"], None),
        1,
        "not found",
    );
    expect_code(
        &kargo(prefix, &["rollout", "undo", "environment", "x"], None),
        2,
        "no rollout",
    );
    common::wipe_prefix(&store).await;
}

#[test]
fn every_command_has_help_with_an_example_without_touching_anything() {
    // Every command and sub-command the binary lists, found from its own help, so a new
    // command without an example fails here. etcd and Docker point nowhere: help must
    // not touch them (nor files).
    let help_of = |cmd: &[String]| -> String {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
            .args(cmd)
            .arg("--help")
            .env("KARGO_ETCD_ENDPOINTS", "127.0.0.1:1")
            .env("DOCKER_HOST", "tcp://127.0.0.1:1")
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run kargo");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{cmd:?} --help was slow"
        );
        expect_code(&out, 0, &format!("{cmd:?} --help"))
    };
    let subcommands = |help: &str| -> Vec<String> {
        help.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            // A command's name stands at two spaces; wrapped descriptions are deeper.
            .filter(|l| !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .filter(|c| c != "help")
            .collect()
    };
    let mut todo: Vec<Vec<String>> = subcommands(&help_of(&[]))
        .into_iter()
        .map(|c| vec![c])
        .collect();
    assert!(todo.len() >= 14, "commands found: {todo:?}");
    let mut checked = 0;
    let mut without_example = Vec::new();
    while let Some(cmd) = todo.pop() {
        let help = help_of(&cmd);
        if !help.contains("Example") {
            without_example.push(cmd.join(" "));
        }
        for sub in subcommands(&help) {
            let mut deeper = cmd.clone();
            deeper.push(sub);
            todo.push(deeper);
        }
        checked += 1;
    }
    assert!(checked >= 18, "only {checked} commands checked");
    assert!(
        without_example.is_empty(),
        "commands whose --help has no example: {without_example:?}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
        .arg("--help")
        .output()
        .expect("run kargo");
    let help = expect_code(&out, 0, "kargo --help");
    for flag in [
        "--etcd-cacert",
        "--etcd-cert",
        "--etcd-key",
        "--etcd-user",
        "--docker-host",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
            .args(["completion", shell])
            .env("KARGO_ETCD_ENDPOINTS", "127.0.0.1:1")
            .output()
            .expect("run kargo");
        let script = expect_code(&out, 0, shell);
        assert!(
            script.contains("kargo") && script.contains("KARGO_COMPLETE"),
            "{shell}: {script}"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(["completion", "powershell"])
        .output()
        .expect("run kargo");
    assert_eq!(out.status.code(), Some(2));
}
