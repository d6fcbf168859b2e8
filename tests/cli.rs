//! The real binary against the real etcd: output, exit codes, failing fast.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn kargo(prefix: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kargo"));
    cmd.args(args)
        .env("KARGO_PREFIX", prefix)
        .env("KARGO_ETCD_ENDPOINTS", common::etcd_endpoints().join(","));
    if let Some(input) = stdin {
        use std::io::Write;
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kargo");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        return child.wait_with_output().expect("wait kargo");
    }
    cmd.output().expect("run kargo")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const MANIFEST: &str = r#"
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {name: cli1}
spec: {services: [web]}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  image: "kargo-busybox:1.0"
  deploy: {replicas: 2}
"#;

#[tokio::test]
async fn apply_reports_created_configured_unchanged() {
    let prefix = "/kargo-test-cli-apply";
    let store = common::etcd_store(prefix).await;
    let out = kargo(prefix, &["apply", "-f", "-"], Some(MANIFEST));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "stack/cli1 created\nservice/web created\n"
    );

    let out = kargo(prefix, &["apply", "-f", "-"], Some(MANIFEST));
    assert_eq!(
        text(&out.stdout),
        "stack/cli1 unchanged\nservice/web unchanged\n"
    );

    let changed = MANIFEST.replace("replicas: 2", "replicas: 3");
    let out = kargo(prefix, &["apply", "-f", "-"], Some(&changed));
    assert_eq!(
        text(&out.stdout),
        "stack/cli1 unchanged\nservice/web configured\n"
    );

    let out = kargo(prefix, &["get", "services"], None);
    assert!(out.status.success());
    let table = text(&out.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("STACK") && table.contains("UP-TO-DATE") && table.contains("READY"),
        "{table}"
    );
    assert!(
        table.contains("web") && table.contains("kargo-busybox:1.0"),
        "{table}"
    );

    let out = kargo(prefix, &["get", "service", "web", "-o", "json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["spec"]["deploy"]["replicas"], 3);
    assert_eq!(v["metadata"]["generation"], 2);

    let out = kargo(prefix, &["get", "service", "nope"], None);
    assert_eq!(out.status.code(), Some(1));

    let out = kargo(prefix, &["delete", "service", "web"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        store
            .get(kargo::api::Kind::Service, "web")
            .await
            .expect("get")
            .is_none()
    );
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn an_invalid_document_writes_nothing() {
    let prefix = "/kargo-test-cli-invalid";
    let store = common::etcd_store(prefix).await;
    let bad = format!(
        "{MANIFEST}---\napiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {{name: bad}}\nspec: {{imag: x}}\n"
    );
    let out = kargo(prefix, &["apply", "-f", "-"], Some(&bad));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("imag"), "{}", text(&out.stderr));
    let list = store.list_all().await.expect("list");
    assert!(
        list.items.is_empty(),
        "nothing may be written: {:?}",
        list.items
    );
}

#[test]
fn unreachable_etcd_fails_fast_naming_the_endpoint() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(["get", "stacks", "--etcd-endpoints", "127.0.0.1:1"])
        .output()
        .expect("run kargo");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}
