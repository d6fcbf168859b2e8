//! Shared set-up for integration tests: the real etcd and the real Swarm.
//!
//! A missing etcd or Docker fails the test loudly (never a skip): the README's test
//! command starts both, so their absence is a broken set-up that CI must see.
#![allow(dead_code)]

pub mod dockerd;
pub mod etcd_cluster;
pub mod process;
pub mod store_conformance;
pub mod swarm_contract;

use std::time::{Duration, Instant};

use kargo::api::DynamicObject;
use kargo::controller::{Controller, ControllerOptions, PassReport};
use kargo::store::{EtcdConfig, Store};
use kargo::swarm::SwarmClient;

/// The etcd endpoints tests use (`KARGO_ETCD_ENDPOINTS`, default 127.0.0.1:2379).
pub fn etcd_endpoints() -> Vec<String> {
    std::env::var("KARGO_ETCD_ENDPOINTS")
        .unwrap_or_else(|_| "127.0.0.1:2379".into())
        .split(',')
        .map(str::to_string)
        .collect()
}

/// A store under a prefix of the test's own, emptied first.
pub async fn etcd_store(prefix: &str) -> Store {
    let config = EtcdConfig::new(etcd_endpoints());
    let store = match Store::connect(&config, prefix).await {
        Ok(s) => s,
        Err(e) => panic!(
            "this test needs a real etcd ({e}); run it through scripts/test.sh, which starts one"
        ),
    };
    wipe_prefix(&store).await;
    store
}

/// Deletes every key under the store's prefix.
pub async fn wipe_prefix(store: &Store) {
    let prefix = format!("{}/", store.prefix());
    let (entries, _) = store.kv().range(&prefix).await.expect("range");
    for e in entries {
        store
            .kv()
            .delete(&e.key, kargo::store::Precondition::Any, None)
            .await
            .expect("delete");
    }
}

/// A Docker client for the local Swarm.
pub async fn swarm() -> SwarmClient {
    match SwarmClient::connect(None).await {
        Ok(s) => s,
        Err(e) => panic!(
            "this test needs a real Docker Swarm ({e}); run it through scripts/test.sh, which starts one"
        ),
    }
}

/// Removes every Swarm service of an installation (the test's prefix).
pub async fn remove_installation(swarm: &SwarmClient, installation: &str) {
    for s in swarm
        .list_services(installation)
        .await
        .expect("list services")
    {
        swarm.remove_service(&s.id).await.expect("remove service");
    }
    // Its configs and secrets too (a run cut short leaves them); in use until the removed
    // services' tasks are gone, so a few bounded tries.
    for _ in 0..40 {
        let mut left = 0;
        for secret in [false, true] {
            let files = swarm
                .list_files(installation, secret)
                .await
                .expect("list files");
            for f in files {
                if swarm.remove_file(&f.id, secret).await.is_err() {
                    left += 1;
                }
            }
        }
        if left == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The local test image with a tag (scripts/setup.sh builds 1.0 and 1.1).
pub fn image(tag: &str) -> String {
    let name = std::env::var("KARGO_TEST_IMAGE").unwrap_or_else(|_| "kargo-busybox".into());
    format!("{name}:{tag}")
}

/// Parses YAML documents into objects, as `kargo apply` does.
pub fn objects(yaml: &str) -> Vec<DynamicObject> {
    let source = kargo::manifest::load::Source {
        name: "test.yaml".into(),
        bytes: yaml.as_bytes().to_vec(),
    };
    kargo::manifest::load::parse_objects(std::slice::from_ref(&source))
        .expect("valid test manifests")
}

/// A controller for the test's installation, using the Configuration `main`.
pub fn controller(store: &Store, swarm: SwarmClient) -> Controller {
    Controller::new(store.clone(), swarm, ControllerOptions::default())
}

/// Runs passes until everything deployed is Ready; panics with the last report on timeout.
pub async fn converge(controller: &Controller, timeout: Duration) -> PassReport {
    let deadline = Instant::now() + timeout;
    loop {
        let report = controller.pass().await.expect("reconcile pass");
        if report.all_ready {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "not Ready within {timeout:?}: last pass {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs the real `kargo` binary on the test etcd under `prefix`, feeding `stdin` if given.
pub fn kargo(prefix: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    kargo_with_env(prefix, args, stdin, &[])
}

/// [`kargo`] with extra environment variables.
pub fn kargo_with_env(
    prefix: &str,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kargo"));
    cmd.args(args)
        .env("KARGO_PREFIX", prefix)
        .env("KARGO_ETCD_ENDPOINTS", etcd_endpoints().join(","))
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kargo");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait for kargo")
}

/// A process's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Panics with the command's stderr unless it exited with `code`; returns its stdout.
pub fn expect_code(out: &std::process::Output, code: i32, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}
