//! Private registries and pinned digests against the real parts: the registry
//! scripts/setup.sh runs on 127.0.0.1:5015 (distribution 2.8, htpasswd auth), the real
//! Swarm, the real etcd, the `kargo` binary. Images are pushed with `docker login/push`
//! (under a Docker config of the test's own) and removed locally, so the node really pulls
//! them from the registry with the credentials the controller hands to Swarm.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{expect_code, kargo, text};
use kargo::api::{Kind, ServiceStatus};
use kargo::controller::Controller;
use kargo::swarm::SwarmClient;
use serde_json::Value;

const PREFIX: &str = "kargo-test-pin";
const REGISTRY: &str = "127.0.0.1:5015";
const PASSWORD_FILE: &str = "/var/tmp/kargo-run/registry/password";
const STACK: &str = "pinreg";
const SWARM_NAME: &str = "kargo-pinreg_app";
/// Bound of each wait for the Swarm.
const WAIT: Duration = Duration::from_secs(90);

/// The repository pushed to, unique to this test.
fn repository() -> String {
    format!("{REGISTRY}/kargo-test-pin-app")
}

/// Runs the docker CLI under the test's own Docker config (its login stays there).
fn docker(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("this test needs the docker CLI");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait for docker")
}

fn docker_ok(config: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = docker(config, args, stdin);
    assert!(
        out.status.success(),
        "docker {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Builds an image of its own (the local busybox plus a file holding `content`), pushes
/// it to `tag` and removes the local copy; returns the digest the registry took.
fn push_image(config: &Path, tag: &str, content: &str) -> String {
    let base = common::image("1.0");
    let dockerfile = format!("FROM {base}\nRUN echo {content} > /pin\n");
    docker_ok(config, &["build", "-q", "-t", tag, "-"], Some(&dockerfile));
    let pushed = docker_ok(config, &["push", tag], None);
    let digest = pushed
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in the push output:\n{pushed}"))
        .to_string();
    docker_ok(config, &["rmi", "-f", tag], None);
    digest
}

fn manifests(password_file: &str, env_value: &str) -> String {
    let repo = repository();
    format!(
        r#"apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: prod, defaults: none}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: prod}}
spec:
  stacks: [{STACK}]
  registries:
  - server: {REGISTRY}
    username: kargo
    passwordFrom: {{file: "{password_file}"}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: {STACK}}}
spec:
  services: [app]
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: app}}
spec:
  image: "{repo}:1"
  command: ["sh", "-c", "cat /pin; trap 'exit 0' TERM; while true; do sleep 1; done"]
  env: {{WHICH: "{env_value}"}}
  deploy:
    replicas: 1
"#
    )
}

struct Installation {
    store: kargo::store::Store,
    swarm: SwarmClient,
    controller: Controller,
    config: tempfile::TempDir,
    dir: PathBuf,
}

impl Installation {
    async fn start() -> Self {
        assert!(
            std::net::TcpStream::connect_timeout(
                &REGISTRY.parse().expect("address"),
                Duration::from_secs(2)
            )
            .is_ok(),
            "this test needs the registry on {REGISTRY}; scripts/setup.sh starts it"
        );
        let password = std::fs::read_to_string(PASSWORD_FILE).unwrap_or_else(|e| {
            panic!("this test needs {PASSWORD_FILE} ({e}); scripts/setup.sh writes it")
        });
        let store = common::etcd_store(PREFIX).await;
        let swarm = common::swarm().await;
        common::remove_installation(&swarm, PREFIX).await;
        let config = tempfile::tempdir().expect("tempdir");
        docker_ok(
            config.path(),
            &["login", REGISTRY, "-u", "kargo", "--password-stdin"],
            Some(password.trim_end()),
        );
        let dir = config.path().join("manifests");
        std::fs::create_dir_all(&dir).expect("mkdir");
        // The controller reads password files only inside the folder its operator names
        // (--registry-secrets-dir): this installation's own.
        std::fs::write(config.path().join("password"), &password).expect("write password");
        let options = kargo::controller::ControllerOptions {
            registry_secrets_dir: Some(config.path().to_path_buf()),
            ..Default::default()
        };
        Installation {
            controller: Controller::new(store.clone(), swarm.clone(), options),
            store,
            swarm,
            config,
            dir,
        }
    }

    /// The CLI, reading the stored Environment's password files in this installation's
    /// folder only (KARGO_REGISTRY_SECRETS_DIR), as the controller does.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        let dir = self.config.path().display().to_string();
        common::kargo_with_env(
            PREFIX,
            args,
            None,
            &[("KARGO_REGISTRY_SECRETS_DIR", dir.as_str())],
        )
    }

    /// Writes the manifests to a file and applies them with the CLI; returns the file.
    fn apply(&self, yaml: &str) -> String {
        let file = self.dir.join("app.yaml");
        std::fs::write(&file, yaml).expect("write manifests");
        let file = file.display().to_string();
        expect_code(&kargo(PREFIX, &["apply", "-f", &file], None), 0, "apply");
        file
    }

    async fn live_image(&self) -> (String, u64) {
        let live = self
            .swarm
            .inspect_service(SWARM_NAME)
            .await
            .expect("inspect")
            .expect("the service exists");
        let image = live
            .spec
            .pointer("/TaskTemplate/ContainerSpec/Image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        (image, live.version)
    }

    async fn status(&self) -> ServiceStatus {
        let o = self.store.get(Kind::Service, "app").await.expect("get");
        serde_json::from_value(o.expect("service").status.unwrap_or_default()).unwrap_or_default()
    }

    /// Passes until the live service runs `image` and everything is Ready.
    async fn converge_to(&self, image: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let report = self.controller.pass().await.expect("pass");
            let (live, _) = self.live_image().await;
            if report.all_ready && live == image {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not Ready on {image} within {WAIT:?}: live {live}, {report:?}, status {:?}",
                self.status().await
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn clean(self) {
        common::remove_installation(&self.swarm, PREFIX).await;
        common::wipe_prefix(&self.store).await;
        let _ = docker(self.config.path(), &["logout", REGISTRY], None);
        // The images the node pulled for the service, once its containers are gone.
        for _ in 0..40 {
            let listed = docker(self.config.path(), &["images", "-q", &repository()], None);
            let ids = text(&listed.stdout);
            if ids.trim().is_empty() {
                return;
            }
            for id in ids.split_whitespace() {
                let _ = docker(self.config.path(), &["rmi", "-f", id], None);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test]
async fn a_private_image_is_pulled_with_the_environments_credentials_and_pinned() {
    let w = Installation::start().await;
    let tag = format!("{}:1", repository());
    let nonce = std::process::id();
    let first = push_image(w.config.path(), &tag, &format!("one-{nonce}"));
    let gone = docker(w.config.path(), &["image", "inspect", &tag], None);
    assert!(!gone.status.success(), "the local copy must be gone");

    // Deployed from the registry: the node pulls it with the credentials kargo gave Swarm.
    let password = w.config.path().join("password").display().to_string();
    let file = w.apply(&manifests(&password, "a"));
    w.converge_to(&format!("{tag}@{first}")).await;
    assert_eq!(
        w.status().await.image_digest.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(w.status().await.image.as_deref(), Some(tag.as_str()));
    let describe = expect_code(&w.cli(&["describe", "service", "app"]), 0, "describe");
    assert!(describe.contains(&first), "{describe}");
    expect_code(&w.cli(&["diff", "-f", &file]), 0, "diff, nothing moved");

    // The tag moves in the registry: diff says so, nothing running changes on resyncs.
    let second = push_image(w.config.path(), &tag, &format!("two-{nonce}"));
    assert_ne!(first, second);
    let diff = w.cli(&["diff", "-f", &file]);
    let shown = expect_code(&diff, 1, "diff after the tag moved");
    assert!(
        shown.contains(&format!(
            "image {tag}: the registry's tag now points to {second}; running {first}"
        )),
        "{shown}"
    );
    let describe = expect_code(&w.cli(&["describe", "service", "app"]), 0, "describe");
    assert!(
        describe.contains(&format!("the registry's tag now points to {second}")),
        "{describe}"
    );
    let (_, version) = w.live_image().await;
    for _ in 0..3 {
        let r = w.controller.pass().await.expect("pass");
        assert_eq!(r.docker_writes, 0, "a resync rolled something: {r:?}");
    }
    assert_eq!(w.live_image().await, (format!("{tag}@{first}"), version));

    // `kargo rollout restart` takes the new digest.
    expect_code(
        &kargo(PREFIX, &["rollout", "restart", "service", "app"], None),
        0,
        "rollout restart",
    );
    w.converge_to(&format!("{tag}@{second}")).await;
    assert_eq!(
        w.status().await.image_digest.as_deref(),
        Some(second.as_str())
    );

    // Wrong credentials on a spec change: said on the Service, naming the registry; the
    // running service keeps its spec.
    let wrong = w.dir.join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").expect("write");
    w.apply(&manifests(&wrong.display().to_string(), "b"));
    let (before, version) = w.live_image().await;
    let deadline = Instant::now() + WAIT;
    let message = loop {
        w.controller.pass().await.expect("pass");
        let st = w.status().await;
        let ready = st.common.condition("Ready").cloned();
        if let Some(c) = ready.filter(|c| c.reason == "RegistryCredentialsRefused") {
            break c.message;
        }
        assert!(
            Instant::now() < deadline,
            "no refusal within {WAIT:?}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        message.contains(&format!("registry {REGISTRY} refused the credentials")),
        "{message}"
    );
    assert_eq!(
        w.live_image().await,
        (before, version),
        "nothing running changed"
    );
    let live = w
        .swarm
        .inspect_service(SWARM_NAME)
        .await
        .expect("inspect")
        .expect("live");
    let env = live
        .spec
        .pointer("/TaskTemplate/ContainerSpec/Env")
        .cloned()
        .unwrap_or_default();
    assert!(env.to_string().contains("WHICH=a"), "{env}");
    w.clean().await;
}
