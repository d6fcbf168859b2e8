//! The CLI's edges, through the real binary: Lists round-trip through apply, a closed
//! stdout ends quietly, dynamic completion, logs and `get all` as kubectl/docker show them,
//! the messages of an unreachable etcd, `delete --dry-run`.

mod common;

use common::{expect_code, kargo, text};
use kargo::api::Kind;
use serde_json::json;

const SHOP: &str = r#"
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {name: shop}
spec: {services: [web, db]}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata:
  name: web
  labels: {tier: front}
spec:
  image: "kargo-busybox:1.0"
  env: {A: "1"}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {name: db}
spec:
  image: "kargo-busybox:1.1"
"#;

#[tokio::test]
async fn get_output_applies_back_unchanged_as_a_list() {
    let prefix = "/kargo-test-cli-edges-list";
    let store = common::etcd_store(prefix).await;
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(SHOP)),
        0,
        "apply",
    );
    // A status, as the controller writes it: the List carries it and apply ignores it.
    let web = store
        .get(Kind::Service, "web")
        .await
        .expect("get")
        .expect("web");
    let status = json!({"observedGeneration": web.metadata.generation, "runningTasks": 1});
    store
        .update_status(Kind::Service, "web", &status, None)
        .await
        .expect("status");
    for format in ["yaml", "json"] {
        let shown = expect_code(
            &kargo(prefix, &["get", "stacks,services", "-o", format], None),
            0,
            "get",
        );
        assert!(
            shown.contains("List") && shown.contains("resourceVersion"),
            "{shown}"
        );
        assert!(shown.contains("runningTasks"), "{shown}");
        let out = kargo(prefix, &["apply", "-f", "-"], Some(&shown));
        assert_eq!(
            expect_code(&out, 0, &format!("apply of get -o {format}")),
            "stack/shop unchanged\nservice/db unchanged\nservice/web unchanged\n",
        );
        let out = kargo(prefix, &["diff", "-f", "-"], Some(&shown));
        assert_eq!(expect_code(&out, 0, "diff of the list"), "");
        let out = kargo(prefix, &["validate", "-f", "-"], Some(&shown));
        expect_code(&out, 0, "validate of the list");
    }
    // A change made in the List is applied; an error inside an item names its place.
    let shown = expect_code(
        &kargo(prefix, &["get", "svc", "-o", "yaml"], None),
        0,
        "get",
    );
    let changed = shown.replace("image: kargo-busybox:1.1", "image: kargo-busybox:1.0");
    let out = kargo(prefix, &["apply", "-f", "-"], Some(&changed));
    assert_eq!(
        expect_code(&out, 0, "apply of an edited list"),
        "service/db configured\nservice/web unchanged\n"
    );
    let line = changed
        .lines()
        .position(|l| l.contains("image: kargo-busybox:1.0"))
        .expect("an image line")
        + 1;
    let broken = changed.replacen("image: kargo-busybox:1.0", "image: 7", 1);
    let out = kargo(prefix, &["apply", "-f", "-"], Some(&broken));
    expect_code(&out, 1, "apply of a broken list");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("-:{line}:")) && err.contains("service/db: spec.image"),
        "{err}"
    );
    // delete -f takes the List too.
    let out = kargo(prefix, &["delete", "-f", "-"], Some(&shown));
    let deleted = expect_code(&out, 0, "delete of the list");
    assert!(
        deleted.contains("service \"web\" deleted") && deleted.contains("service \"db\" deleted"),
        "{deleted}"
    );
}

/// Runs kargo with its stdout a pipe whose reading end is already closed.
fn with_closed_stdout(prefix: &str, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(args)
        .env("KARGO_PREFIX", prefix)
        .env("KARGO_ETCD_ENDPOINTS", common::etcd_endpoints().join(","))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run kargo")
}

#[tokio::test]
async fn a_closed_stdout_ends_quietly() {
    let prefix = "/kargo-test-cli-edges-pipe";
    let _store = common::etcd_store(prefix).await;
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(SHOP)),
        0,
        "apply",
    );
    for args in [
        &["completion", "bash"][..],
        &["completion", "zsh"],
        &["completion", "fish"],
        &["get", "all"],
        &["get", "svc", "-o", "yaml"],
        &["explain", "service", "--recursive"],
        &["schema"],
        &["defaults", "list"],
        &["--help"],
    ] {
        let out = with_closed_stdout(prefix, args);
        assert_eq!(
            (out.status.code(), text(&out.stderr)),
            (Some(0), String::new()),
            "{args:?}"
        );
    }
}

/// Asks kargo for the completions of `line` as fish does (the last word is the one completed).
fn complete(prefix: &str, endpoints: &str, line: &[&str]) -> (Vec<String>, std::time::Duration) {
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
        .arg("--")
        .args(line)
        .env("KARGO_COMPLETE", "fish")
        .env("KARGO_PREFIX", prefix)
        .env("KARGO_ETCD_ENDPOINTS", endpoints)
        .output()
        .expect("run kargo");
    let shown = expect_code(&out, 0, &format!("completing {line:?}"));
    assert_eq!(text(&out.stderr), "", "completing {line:?}");
    let words = shown
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect();
    (words, started.elapsed())
}

#[tokio::test]
async fn completion_offers_kinds_names_from_etcd_and_flag_values() {
    let prefix = "/kargo-test-cli-edges-complete";
    let _store = common::etcd_store(prefix).await;
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(SHOP)),
        0,
        "apply",
    );
    let etcd = common::etcd_endpoints().join(",");
    let words = |line: &[&str]| complete(prefix, &etcd, line).0;
    assert_eq!(words(&["kargo", "get", "s"]), ["stack", "service"]);
    assert_eq!(words(&["kargo", "get", "service", "w"]), ["web"]);
    assert_eq!(words(&["kargo", "describe", "svc", "d"]), ["db"]);
    assert_eq!(
        words(&["kargo", "delete", "service/"]),
        ["service/db", "service/web"]
    );
    assert_eq!(words(&["kargo", "logs", "w"]), ["web"]);
    assert_eq!(words(&["kargo", "deploy", ""])[..2], ["shop", "all"]);
    assert_eq!(words(&["kargo", "get", "stack", "-o", "ya"]), ["yaml"]);
    // Another installation's prefix, given on the line being completed.
    let other = [
        "kargo",
        "--prefix",
        "/kargo-test-cli-edges-none",
        "get",
        "svc",
        "w",
    ];
    assert!(words(&other).is_empty(), "{:?}", words(&other));
    // No etcd: kinds still, names quietly none, and soon.
    let (none, took) = complete(prefix, "127.0.0.1:1", &["kargo", "get", "svc", "w"]);
    assert!(none.is_empty(), "{none:?}");
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
    let (kinds, _) = complete(prefix, "127.0.0.1:1", &["kargo", "get", "st"]);
    assert_eq!(kinds, ["stack"]);
}

#[tokio::test]
async fn logs_prefix_each_line_with_its_task_and_a_bare_name_is_a_service() {
    use kargo::api::ServiceSpec;
    use kargo::swarm::{RenderContext, render_service};
    let prefix = "/kargo-test-cli-edges-logs";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;
    let spec_json = json!({
        "image": common::image("1.0"),
        "command": ["sh", "-c", "echo hello-from-$(hostname); while true; do sleep 1; done"],
        "deploy": {"replicas": 2},
    });
    let spec: ServiceSpec = serde_json::from_value(spec_json).expect("spec");
    let desired =
        render_service(&RenderContext::new(prefix), "edgelogs", "talk", &spec).expect("render");
    let id = swarm
        .create_service(&desired.name, &desired.spec, None)
        .await
        .expect("create the Swarm service");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let shown = loop {
        let out = kargo(prefix, &["logs", "talk"], None);
        let shown = text(&out.stdout);
        if out.status.success() && shown.matches("hello-from-").count() >= 2 {
            break shown;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two tasks never logged: {shown}\n{}",
            text(&out.stderr)
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let tasks = swarm.tasks(&id).await.expect("tasks");
    for line in shown.lines() {
        let (label, message) = line.split_once(" | ").expect("a prefix");
        let (task, node) = label.trim_end().split_once('@').expect("a node");
        assert!(!node.is_empty(), "{line}");
        let rest = task
            .strip_prefix(&format!("{}.", desired.name))
            .unwrap_or_else(|| panic!("{line}"));
        let (slot, short) = rest.split_once('.').expect("slot and task");
        assert!(slot == "1" || slot == "2", "{line}");
        let t = tasks
            .iter()
            .find(|t| t.id.starts_with(short))
            .unwrap_or_else(|| panic!("no task {short}: {line}"));
        assert_eq!(t.slot.map(|s| s.to_string()).as_deref(), Some(slot));
        assert!(message.starts_with("hello-from-"), "{line}");
    }
    let raw = expect_code(
        &kargo(prefix, &["logs", "service/talk", "--raw"], None),
        0,
        "raw",
    );
    assert!(raw.lines().all(|l| l.starts_with("hello-from-")), "{raw}");
    common::remove_installation(&swarm, prefix).await;
    common::wipe_prefix(&store).await;
}

#[test]
fn a_bare_command_group_prints_its_help_on_stdout_and_succeeds() {
    for (args, usage) in [
        (&[][..], "Usage: kargo [OPTIONS] <COMMAND>"),
        (&["rollout"], "Usage: kargo rollout [OPTIONS] <COMMAND>"),
        (&["defaults"], "Usage: kargo defaults [OPTIONS] <COMMAND>"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
            .args(args)
            .env("KARGO_ETCD_ENDPOINTS", "127.0.0.1:1")
            .output()
            .expect("run kargo");
        let help = expect_code(&out, 0, &format!("{args:?}"));
        assert!(help.contains(usage), "{args:?}: {help}");
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
    // A missing argument is still a usage error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
        .arg("get")
        .output()
        .expect("run kargo");
    expect_code(&out, 2, "get without a kind");
}

#[tokio::test]
async fn get_all_names_objects_kind_slash_name_in_a_table_per_kind() {
    let prefix = "/kargo-test-cli-edges-getall";
    let _store = common::etcd_store(prefix).await;
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(SHOP)),
        0,
        "apply",
    );
    let shown = expect_code(&kargo(prefix, &["get", "all"], None), 0, "get all");
    let tables: Vec<&str> = shown.split("\n\n").collect();
    assert_eq!(tables.len(), 2, "{shown}");
    assert!(
        tables[0].starts_with("NAME") && tables[0].contains("\nstack/shop "),
        "{shown}"
    );
    assert!(
        tables[1].starts_with("NAME") && tables[1].contains("\nservice/db "),
        "{shown}"
    );
    assert!(tables[1].contains("\nservice/web "), "{shown}");
    let shown = expect_code(
        &kargo(prefix, &["get", "service/web"], None),
        0,
        "KIND/NAME",
    );
    assert!(shown.contains("\nservice/web "), "{shown}");
    let shown = expect_code(&kargo(prefix, &["get", "services"], None), 0, "one kind");
    assert!(
        shown.contains("\nweb ") && !shown.contains("service/"),
        "{shown}"
    );
}

/// Serves gRPC with no services on a free port (a gRPC server that is not etcd); returns
/// its address and the task to abort.
async fn grpc_server_that_is_not_etcd() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let incoming = tokio_stream_of(listener);
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::default())
            .serve_with_incoming(incoming)
            .await;
    });
    (address, task)
}

fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, _)| s);
        Some((next, l))
    })
}

#[tokio::test]
async fn an_unreachable_or_foreign_etcd_is_one_clear_line_and_exit_2() {
    let prefix = "/kargo-test-cli-edges-unreachable";
    let run = |endpoint: &str| {
        let out = common::kargo_with_env(
            prefix,
            &["get", "services"],
            None,
            &[("KARGO_ETCD_ENDPOINTS", endpoint)],
        );
        expect_code(&out, 2, endpoint);
        text(&out.stderr)
    };
    let err = run("127.0.0.1:1");
    assert_eq!(
        err,
        "error: etcd at 127.0.0.1:1 is unreachable: connection refused\n"
    );
    let (address, server) = grpc_server_that_is_not_etcd().await;
    let err = run(&address);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: etcd at {address} ")),
        "{err}"
    );
    assert!(!err.contains("tonic") && !err.contains("source:"), "{err}");
    server.abort();
    // Something that is not gRPC at all (an HTTP/1 server).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { break };
            let mut buffer = [0u8; 1024];
            let _ = s.read(&mut buffer);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let err = run(&address);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("tonic") && !err.contains("source:"), "{err}");
}

#[tokio::test]
async fn the_controller_log_starts_with_a_line_and_has_no_colours_off_a_terminal() {
    let prefix = "/kargo-test-cli-edges-ctl-log";
    let _store = common::etcd_store(prefix).await;
    let log = tempfile::NamedTempFile::new().expect("log file");
    let file = log.reopen().expect("log file");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(["controller", "--configuration", "edges"])
        .env("KARGO_PREFIX", prefix)
        .env("KARGO_ETCD_ENDPOINTS", common::etcd_endpoints().join(","))
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start kargo controller");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let shown = loop {
        let shown = std::fs::read_to_string(log.path()).unwrap_or_default();
        if shown.contains("elected leader") || std::time::Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let first = shown.lines().next().unwrap_or_default();
    assert!(first.contains("kargo controller starting"), "{shown}");
    for part in [
        &format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))[..],
        &format!("prefix={prefix}"),
        "etcd=",
        "configuration=edges",
    ] {
        assert!(first.contains(part), "{part} missing: {first}");
    }
    assert!(
        !shown.contains('\u{1b}'),
        "ANSI escapes in a log file:\n{shown:?}"
    );
}

#[tokio::test]
async fn delete_dry_runs_say_what_would_go_and_delete_nothing() {
    let prefix = "/kargo-test-cli-edges-delete-dry";
    let store = common::etcd_store(prefix).await;
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(SHOP)),
        0,
        "apply",
    );
    for (how, said) in [("client", "dry run"), ("server", "server dry run")] {
        let flag = format!("--dry-run={how}");
        let out = kargo(prefix, &["delete", "service", "web", "db", &flag], None);
        assert_eq!(
            expect_code(&out, 0, &flag),
            format!("service \"web\" deleted ({said})\nservice \"db\" deleted ({said})\n")
        );
        let out = kargo(prefix, &["delete", "-f", "-", &flag], Some(SHOP));
        let shown = expect_code(&out, 0, &flag);
        assert!(
            shown.contains(&format!("stack \"shop\" deleted ({said})")),
            "{shown}"
        );
        let out = kargo(prefix, &["delete", "service", "nope", &flag], None);
        expect_code(&out, 1, "a missing object");
        assert_eq!(text(&out.stderr), "error: Service \"nope\" not found\n");
    }
    let out = kargo(prefix, &["delete", "stack/shop", "--dry-run"], None);
    assert_eq!(
        expect_code(&out, 0, "--dry-run alone"),
        "stack \"shop\" deleted (dry run)\n"
    );
    for (kind, name) in [
        (Kind::Stack, "shop"),
        (Kind::Service, "web"),
        (Kind::Service, "db"),
    ] {
        assert!(
            store.get(kind, name).await.expect("get").is_some(),
            "{kind} {name} was deleted by a dry run"
        );
    }
}
