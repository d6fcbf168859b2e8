//! Commands that work without etcd or Docker: render, defaults, env import, import compose.

use std::process::Command;

fn kargo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(args)
        // Nothing listens here: these commands must not need etcd.
        .env("KARGO_ETCD_ENDPOINTS", "127.0.0.1:1")
        .output()
        .expect("run kargo");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

#[test]
fn render_the_example_offline_shows_merge_and_swarm_specs() {
    let (code, out, err) = kargo(&["render", "-f", "manifests/", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let worker = v["stacks"][1]["services"][1].clone();
    assert_eq!(worker["name"], "worker");
    // The Environment's `services.worker.replicas: 2` is layered over the Service's 1.
    assert_eq!(worker["merged"]["deploy"]["replicas"], 2);
    assert_eq!(worker["swarm"]["Mode"]["Replicated"]["Replicas"], 2);
    assert_eq!(worker["swarm"]["Name"], "kargo-frontend_worker");
    assert_eq!(
        worker["swarm"]["Labels"]["com.docker.stack.namespace"],
        "kargo-frontend"
    );
}

#[test]
fn render_names_the_object_field_and_variable_that_do_not_resolve() {
    let dir = tempfile::tempdir().expect("dir");
    let f = write(
        dir.path(),
        "w.yaml",
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {name: main}
spec:
  environment: e
  files:
    key: {content: "very-secret", sensitive: true}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {name: e}
spec: {stacks: [s], variables: {A: "1"}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {name: s}
spec: {services: [web]}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  image: "busybox:1"
  env: {URL: "http://${HOST}/"}
  secrets: [{file: key}]
"#,
    );
    let (code, out, _) = kargo(&["render", "-f", &f]);
    assert_eq!(code, 1);
    assert!(
        out.contains("web") && out.contains("/spec/env/URL") && out.contains("HOST"),
        "{out}"
    );
    assert!(
        !out.contains("very-secret"),
        "a sensitive file never prints: {out}"
    );
    assert!(out.contains("<redacted>"), "{out}");
}

#[test]
fn defaults_are_listed_and_shown() {
    let (code, out, _) = kargo(&["defaults", "list"]);
    assert_eq!(code, 0);
    for name in ["traefik", "mongodb", "redis", "kano", "weacast", "grafana"] {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
    let (code, out, _) = kargo(&["defaults", "show", "redis"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("kind: Service") && out.contains("redis"),
        "{out}"
    );
    let (code, _, err) = kargo(&["defaults", "show", "nope"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn env_import_maps_kargo_env_files_and_warns_by_line() {
    let dir = tempfile::tempdir().expect("dir");
    let d = write(
        dir.path(),
        ".env.default",
        "DOMAIN=example.org\nSTACKS=\"dbs\"\nDBS_STACK=\"mongodb\"\n",
    );
    let e = write(
        dir.path(),
        ".env",
        "DOMAIN=kalisio.xyz\nSUBDOMAIN=kargo.$DOMAIN\nSTACKS=\"dbs apps\"\nAPPS_STACK=\"kano\"\nKANO_REPLICAS=2\nKANO_TAG=1.2\nKANO_EXTENSION=extra.yml\nNOW=$(date)\n",
    );
    let (code, out, err) = kargo(&["env", "import", &d, &e, "--name", "production"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("name: production"));
    assert!(out.contains("SUBDOMAIN: kargo.${DOMAIN}"), "{out}");
    assert!(
        out.contains("DOMAIN: kalisio.xyz"),
        "later files win: {out}"
    );
    assert!(
        out.contains("replicas: 2") && out.contains("tag: '1.2'"),
        "{out}"
    );
    assert!(
        err.contains(":7:") && err.contains("KANO_EXTENSION"),
        "{err}"
    );
    assert!(err.contains(":8:"), "command substitution warned: {err}");
}

#[test]
fn compose_import_maps_services_and_warns_by_key() {
    let dir = tempfile::tempdir().expect("dir");
    let f = write(
        dir.path(),
        "docker-compose.yml",
        r#"
version: "3.8"
services:
  web:
    image: nginx:1.25
    build: .
    container_name: web
    ports: ["8080:80"]
    environment: [A=1]
    deploy: {replicas: 2}
"#,
    );
    let (code, out, err) = kargo(&["import", "compose", &f, "--stack", "site"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kind: Stack") && out.contains("name: site"),
        "{out}"
    );
    assert!(
        out.contains("image: nginx:1.25") && out.contains("published: 8080"),
        "{out}"
    );
    assert!(err.contains("services.web.container_name"), "{err}");
    assert!(
        !err.contains("services.web.build"),
        "build is carried over: {err}"
    );
    assert!(
        out.contains("build:") && out.contains("context: /"),
        "{out}"
    );
}
