//! The commands that read Docker (ps, logs, describe's tasks, diff's Swarm part) and the
//! whole loop with a running controller (apply --wait, rollout status, scale, delete --wait),
//! against the real etcd and one-node Swarm.

mod common;

use std::time::{Duration, Instant};

use common::{expect_code, kargo, text};
use kargo::api::ServiceSpec;
use kargo::swarm::{RenderContext, render_service};
use serde_json::json;

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<String>) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test]
async fn ps_logs_and_describe_read_the_tasks_from_docker() {
    let prefix = "/kargo-test-cli-tasks";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;

    // A Swarm service of this installation, made as the controller would render it.
    let spec_json = json!({
        "image": common::image("1.0"),
        "command": ["sh", "-c", "echo hello-from-kargo; echo oops-on-stderr >&2; while true; do sleep 1; done"],
        "deploy": {"replicas": 1},
    });
    let object = format!(
        "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {{name: echo}}\nspec: {spec_json}\n"
    );
    expect_code(
        &kargo(prefix, &["apply", "-f", "-"], Some(&object)),
        0,
        "apply",
    );
    let spec: ServiceSpec = serde_json::from_value(spec_json).expect("spec");
    let desired =
        render_service(&RenderContext::new(prefix), "clitasks", "echo", &spec).expect("render");
    let id = swarm
        .create_service(&desired.name, &desired.spec, None)
        .await
        .expect("create the Swarm service");
    let started = Instant::now();
    loop {
        let tasks = swarm.tasks(&id).await.expect("tasks");
        if tasks.iter().any(|t| t.state == "running") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "task never ran: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let table = expect_code(
        &kargo(prefix, &["ps", "service", "echo"], None),
        0,
        "ps service",
    );
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("kargo-clitasks_echo.1") && table.contains("running"),
        "{table}"
    );
    assert!(table.contains("kargo-busybox:1.0"), "{table}");
    let table = expect_code(
        &kargo(prefix, &["ps", "stack/clitasks", "--all"], None),
        0,
        "ps stack",
    );
    assert!(table.contains("kargo-clitasks_echo.1"), "{table}");
    expect_code(
        &kargo(prefix, &["ps", "service", "nope"], None),
        1,
        "nothing in Swarm",
    );
    expect_code(
        &kargo(prefix, &["ps", "environment", "x"], None),
        2,
        "no tasks",
    );

    let (stdout, stderr) = {
        let out = wait_until("the logs", Duration::from_secs(20), || {
            let out = kargo(prefix, &["logs", "service", "echo"], None);
            let (o, e) = (text(&out.stdout), text(&out.stderr));
            (out.status.success() && o.contains("hello-from-kargo")).then(|| format!("{o}\u{0}{e}"))
        });
        let (o, e) = out.split_once('\u{0}').unwrap_or_default();
        (o.to_string(), e.to_string())
    };
    assert!(stdout.contains("hello-from-kargo"), "{stdout}");
    assert!(
        stderr.contains("oops-on-stderr") && !stdout.contains("oops"),
        "{stderr}"
    );

    // -f streams until stopped.
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(["logs", "service/echo", "-f", "--tail", "5"])
        .env("KARGO_PREFIX", prefix)
        .env("KARGO_ETCD_ENDPOINTS", common::etcd_endpoints().join(","))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn logs -f");
    let out = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("a followed line");
    assert!(line.contains("hello-from-kargo"), "{line}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        follow.try_wait().expect("poll").is_none(),
        "-f keeps running"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    let out = kargo(
        prefix,
        &[
            "logs",
            "service",
            "echo",
            "--docker-host",
            "tcp://127.0.0.1:1",
        ],
        None,
    );
    expect_code(&out, 2, "unreachable Docker");

    let shown = expect_code(
        &kargo(prefix, &["describe", "service", "echo"], None),
        0,
        "describe",
    );
    assert!(
        shown.contains("Tasks:") && shown.contains("running"),
        "{shown}"
    );
    let out = kargo(
        prefix,
        &[
            "describe",
            "service",
            "echo",
            "--docker-host",
            "tcp://127.0.0.1:1",
        ],
        None,
    );
    let shown = expect_code(&out, 0, "describe without Docker");
    assert!(
        shown.contains("Tasks:") && shown.contains("not shown"),
        "{shown}"
    );

    common::remove_installation(&swarm, prefix).await;
    common::wipe_prefix(&store).await;
}

const E2E: &str = r#"
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {name: clie2e}
spec: {services: [clie2e-loop]}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {name: clie2e-loop}
spec:
  image: "IMAGE"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  networks: [back]
  endpointMode: dnsrr
  deploy:
    replicas: 1
    updateConfig: {parallelism: 0, order: stop-first}
"#;

#[tokio::test]
async fn apply_wait_rollout_scale_diff_and_delete_with_a_running_controller() {
    let prefix = "/kargo-test-cli-e2e";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;
    let endpoints = common::etcd_endpoints().join(",");
    let controller = common::process::ControllerProcess::start(
        prefix,
        19481,
        &endpoints,
        &["--resync-period", "2s"],
    );
    let manifest = E2E.replace("IMAGE", &common::image("1.0"));

    let out = kargo(
        prefix,
        &["apply", "-f", "-", "--wait", "--timeout", "90s"],
        Some(&manifest),
    );
    assert!(
        out.status.success(),
        "apply --wait: {}\ncontroller log:\n{}",
        text(&out.stderr),
        controller.log()
    );
    let out = kargo(
        prefix,
        &["rollout", "status", "stack", "clie2e", "--timeout", "30s"],
        None,
    );
    expect_code(&out, 0, "rollout status");

    // diff shows the Swarm spec change a replica change would make.
    let scaled = manifest.replace("replicas: 1", "replicas: 2");
    let out = kargo(prefix, &["diff", "-f", "-"], Some(&scaled));
    let shown = expect_code(&out, 1, "diff");
    assert!(
        shown.contains("swarm/kargo-clie2e_clie2e-loop (live)"),
        "{shown}"
    );
    assert!(
        shown.contains("-    Replicas: 1") && shown.contains("+    Replicas: 2"),
        "{shown}"
    );

    let out = kargo(
        prefix,
        &["scale", "service", "clie2e-loop", "--replicas", "2"],
        None,
    );
    expect_code(&out, 0, "scale");
    let out = kargo(
        prefix,
        &[
            "rollout",
            "status",
            "service/clie2e-loop",
            "--timeout",
            "60s",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "rollout status after scale: {}\ncontroller log:\n{}",
        text(&out.stderr),
        controller.log()
    );
    let table = expect_code(
        &kargo(prefix, &["ps", "service", "clie2e-loop"], None),
        0,
        "ps",
    );
    assert!(
        table.contains("kargo-clie2e_clie2e-loop.1")
            && table.contains("kargo-clie2e_clie2e-loop.2"),
        "{table}"
    );

    let out = kargo(
        prefix,
        &["delete", "stack", "clie2e", "service/clie2e-loop"],
        None,
    );
    expect_code(&out, 2, "mixed forms");
    let out = kargo(
        prefix,
        &[
            "delete",
            "stack/clie2e",
            "service/clie2e-loop",
            "--wait",
            "--timeout",
            "60s",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "delete --wait: {}\ncontroller log:\n{}",
        text(&out.stderr),
        controller.log()
    );
    let left = swarm.list_services(prefix).await.expect("list");
    assert!(left.is_empty(), "Swarm services left: {left:?}");
    drop(controller);
    common::remove_installation(&swarm, prefix).await;
    common::wipe_prefix(&store).await;
}
