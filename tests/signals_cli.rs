//! Signals a person and a script can trust (issue 17, items 4, 6 and two of 10): `apply`
//! refuses what the controller would reject, `validate` catches what is known offline,
//! `diff` sees live drift and the file after `rollout undo`, update events name the fields
//! that changed, and an installation's networks go once nothing uses them. Against the
//! real etcd and the real one-node Swarm; every wait is bounded.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{expect_code, kargo, text};
use kargo::api::Kind;

const HEADER: &str = "apiVersion: kargo.dev/v1alpha1";

fn config(defaults: &str, stacks: &str) -> String {
    format!(
        "{HEADER}\nkind: Configuration\nmetadata: {{name: main}}\nspec: {{environment: prod, defaults: {defaults}}}\n---\n{HEADER}\nkind: Environment\nmetadata: {{name: prod}}\nspec: {{stacks: [{stacks}], variables: {{GREETING: hello}}}}\n"
    )
}

fn stack(name: &str, services: &str) -> String {
    format!("{HEADER}\nkind: Stack\nmetadata: {{name: {name}}}\nspec: {{services: [{services}]}}\n")
}

fn service(name: &str, image: &str, command: &str) -> String {
    format!(
        "{HEADER}\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  image: {image}\n  command: [\"sh\", \"-c\", {command:?}]\n"
    )
}

/// Runs `docker` with `args`; panics with its output when it fails.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Whether a unified diff removes (`-`) or adds (`+`) a line reading `text`.
fn changed_line(diff: &str, sign: char, text: &str) -> bool {
    diff.lines()
        .any(|l| l.starts_with(sign) && l[1..].trim() == text)
}

fn network_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["network", "inspect", name])
        .output()
        .expect("run docker")
        .status
        .success()
}

#[tokio::test]
async fn apply_refuses_what_the_controller_would_reject_and_writes_nothing() {
    let prefix = "/kargo-test-signals-apply";
    let store = common::etcd_store(prefix).await;
    expect_code(
        &kargo(
            prefix,
            &["apply", "-f", "-"],
            Some(&config("none", "sigapps")),
        ),
        0,
        "configuration and environment",
    );

    // A catalog service under `defaults: none`: the controller would say "not found".
    let out = kargo(
        prefix,
        &["apply", "-f", "-"],
        Some(&stack("sigapps", "redis")),
    );
    expect_code(&out, 1, "a catalog service under defaults: none");
    let err = text(&out.stderr);
    assert!(
        err.contains(r#"service "redis" not found"#) && err.contains("defaults: none"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert!(
        store
            .get(Kind::Stack, "sigapps")
            .await
            .expect("get")
            .is_none(),
        "the refused Stack was written"
    );

    // `$((i+1)); echo $i`, escaped for the arithmetic but not for `$i`: the controller's
    // InvalidSpec "variable i is not set", refused by apply with the same words.
    let command = "i=0; while true; do i=$$((i+1)); echo $i; sleep 1; done";
    let both = format!(
        "{}---\n{}",
        stack("sigapps", "sigloop"),
        service("sigloop", "kargo-busybox:1.0", command)
    );
    let out = kargo(prefix, &["apply", "-f", "-"], Some(&both));
    expect_code(&out, 1, "an unset variable");
    let err = text(&out.stderr);
    assert!(
        err.contains(r#"service "sigloop": /spec/command/2: variable i is not set"#),
        "{err}"
    );
    for (kind, name) in [(Kind::Stack, "sigapps"), (Kind::Service, "sigloop")] {
        assert!(
            store.get(kind, name).await.expect("get").is_none(),
            "{kind}/{name} was written"
        );
    }

    // The unescaped `$((` is known without etcd: the manifest check says how to write it.
    let raw = both.replace("$$((", "$((");
    let out = kargo(prefix, &["apply", "-f", "-"], Some(&raw));
    expect_code(&out, 1, "an unescaped $((");
    assert!(
        text(&out.stderr).contains("write `$$((`"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        store
            .get(Kind::Service, "sigloop")
            .await
            .expect("get")
            .is_none()
    );

    // A reference to an object not applied yet is a warning: files apply in any order.
    let out = kargo(
        prefix,
        &["apply", "-f", "-"],
        Some(&stack("sigapps", "siglater")),
    );
    expect_code(&out, 0, "a Stack before its Service");
    assert!(
        text(&out.stderr).contains(r#"service "siglater" not found"#)
            && text(&out.stderr).contains("warning:"),
        "{}",
        text(&out.stderr)
    );
    let fixed = service(
        "siglater",
        "kargo-busybox:1.0",
        "echo ${GREETING}; sleep 1000",
    );
    let out = kargo(prefix, &["apply", "-f", "-"], Some(&fixed));
    assert_eq!(
        expect_code(&out, 0, "the Service after"),
        "service/siglater created\n"
    );
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    common::wipe_prefix(&store).await;
}

#[test]
fn validate_offline_says_to_escape_shell_arithmetic() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("loop.yaml");
    std::fs::write(
        &file,
        service("loop", "busybox:1", "i=0; i=$((i+1)); echo $$i"),
    )
    .expect("write");
    let path = file.to_string_lossy().into_owned();
    // No etcd is named: validate never needs one.
    let out = Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(["validate", "-f", &path])
        .env("KARGO_ETCD_ENDPOINTS", "127.0.0.1:1")
        .output()
        .expect("run kargo");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("loop.yaml:6:") && shown.contains("spec.command[2]"),
        "{shown}"
    );
    assert!(shown.contains("write `$$((`"), "{shown}");
    std::fs::write(
        &file,
        service("loop", "busybox:1", "i=0; i=$$((i+1)); echo $$i"),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(["validate", "-f", &path])
        .output()
        .expect("run kargo");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[tokio::test]
async fn diff_shows_live_drift_after_a_hand_update() {
    let prefix = "/kargo-test-signals-drift";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("drift.yaml");
    let manifest = format!(
        "{}---\n{}",
        stack("sigdrift", "web"),
        service("web", &common::image("1.0"), "sleep 1000")
    );
    std::fs::write(&file, &manifest).expect("write");
    let path = file.to_string_lossy().into_owned();
    expect_code(&kargo(prefix, &["apply", "-f", &path], None), 0, "apply");
    let controller = common::controller(&store, swarm.clone());
    common::converge(&controller, Duration::from_secs(90)).await;
    let out = kargo(prefix, &["diff", "-f", &path], None);
    assert_eq!(expect_code(&out, 0, "diff once deployed"), "");

    docker(&[
        "service",
        "update",
        "--detach",
        "--image",
        &common::image("1.1"),
        "kargo-sigdrift_web",
    ]);
    let out = kargo(prefix, &["diff", "-f", &path], None);
    let shown = expect_code(&out, 1, "diff after a hand update");
    assert!(
        shown.contains("swarm/kargo-sigdrift_web (live)")
            && shown.contains("swarm/kargo-sigdrift_web (stored)"),
        "{shown}"
    );
    assert!(
        changed_line(&shown, '-', &format!("Image: {}", common::image("1.1")))
            && changed_line(&shown, '+', &format!("Image: {}", common::image("1.0"))),
        "{shown}"
    );
    assert!(
        !shown.contains("service/web"),
        "the stored objects match the file: {shown}"
    );
    common::remove_installation(&swarm, prefix).await;
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn after_rollout_undo_diff_and_apply_see_the_file_and_events_name_the_change() {
    let prefix = "/kargo-test-signals-undo";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("undo.yaml");
    let path = file.to_string_lossy().into_owned();
    let manifest = |tag: &str| {
        format!(
            "{}---\n{}",
            stack("sigundo", "api"),
            service("api", &common::image(tag), "sleep 1000")
        )
    };
    let controller = common::controller(&store, swarm.clone());
    std::fs::write(&file, manifest("1.0")).expect("write");
    expect_code(
        &kargo(prefix, &["apply", "-f", &path], None),
        0,
        "apply 1.0",
    );
    common::converge(&controller, Duration::from_secs(90)).await;
    std::fs::write(&file, manifest("1.1")).expect("write");
    expect_code(
        &kargo(prefix, &["apply", "-f", &path], None),
        0,
        "apply 1.1",
    );
    common::converge(&controller, Duration::from_secs(90)).await;

    // The update event says what changed, not that the hash label differed.
    let events = store.events(Kind::Service, "api").await.expect("events");
    let updated: Vec<&str> = events
        .iter()
        .filter(|e| e.reason == "Updated")
        .map(|e| e.message.as_str())
        .collect();
    assert!(
        updated
            .iter()
            .any(|m| m.contains("TaskTemplate.ContainerSpec.Image changed")),
        "{updated:?}"
    );
    assert!(
        updated.iter().all(|m| !m.contains("spec-hash")),
        "{updated:?}"
    );

    let out = kargo(prefix, &["rollout", "undo", "service", "api"], None);
    expect_code(&out, 0, "rollout undo");
    let stored = store
        .get(Kind::Service, "api")
        .await
        .expect("get")
        .expect("api");
    assert_eq!(stored.spec["image"], common::image("1.0"));

    // The file still says 1.1: diff shows it and apply brings it back.
    let out = kargo(prefix, &["diff", "-f", &path], None);
    let shown = expect_code(&out, 1, "diff after undo");
    assert!(
        changed_line(&shown, '-', &format!("image: {}", common::image("1.0")))
            && changed_line(&shown, '+', &format!("image: {}", common::image("1.1"))),
        "{shown}"
    );
    let out = kargo(prefix, &["apply", "-f", &path], None);
    let shown = expect_code(&out, 0, "apply after undo");
    assert!(shown.contains("service/api configured"), "{shown}");
    let stored = store
        .get(Kind::Service, "api")
        .await
        .expect("get")
        .expect("api");
    assert_eq!(stored.spec["image"], common::image("1.1"));
    common::remove_installation(&swarm, prefix).await;
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn networks_go_after_the_last_stack_and_stay_while_used() {
    let prefix = "/kargo-test-signals-net";
    let network = "kargo-test-signals-net";
    let hand = "kargo-test-signals-hand";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;
    let _ = Command::new("docker")
        .args(["service", "rm", hand])
        .output();
    let _ = Command::new("docker")
        .args(["network", "rm", network])
        .output();

    let manifest = format!(
        "{}---\n{HEADER}\nkind: Service\nmetadata: {{name: netweb}}\nspec:\n  image: {}\n  command: [sleep, \"1000\"]\n  networks: [{network}]\n",
        stack("signet", "netweb"),
        common::image("1.0")
    );
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(&manifest)),
        0,
        "apply",
    );
    let controller = common::controller(&store, swarm.clone());
    common::converge(&controller, Duration::from_secs(90)).await;
    assert!(network_exists(network), "the controller made the network");

    // Something besides kargo attaches to it: deleting the last Stack keeps it.
    docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        hand,
        "--network",
        network,
        &common::image("1.0"),
        "sleep",
        "1000",
    ]);
    expect_code(
        &kargo(prefix, &["delete", "stack", "signet"], None),
        0,
        "delete the stack",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        controller.pass().await.expect("pass");
        if swarm.list_services(prefix).await.expect("list").is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the stack's service stayed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for _ in 0..4 {
        controller.pass().await.expect("pass");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(network_exists(network), "a network in use was removed");

    // Once nothing uses it, it goes, as `docker stack rm` removes a stack's networks.
    docker(&["service", "rm", hand]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while network_exists(network) {
        assert!(
            Instant::now() < deadline,
            "the installation's unused network stayed"
        );
        controller.pass().await.expect("pass");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    common::wipe_prefix(&store).await;
}
