//! Registry auth and pinned digests as the controller decides them, without Docker or
//! etcd: the real `Reconciler` over the in-memory store and `FakeSwarm`, whose registry
//! answers are set by each test (unreachable unless set, as on a machine without internet).
//! `tests/registry_swarm.rs` checks the same against a real registry and Swarm.

mod common;

use kargo::api::{Kind, ServiceStatus};
use kargo::controller::events::EventRecorder;
use kargo::controller::{PassReport, Reconciler};
use kargo::registry::RegistryState;
use kargo::registry::resolve::Resolution;
use kargo::store::Store;
use kargo::swarm::{FakeSwarm, LiveService, Swarm};
use serde_json::Value;

const APP: &str = "kargo-web_app";
const PRIVATE: &str = "127.0.0.1:5015/team/app:1";
const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

struct World {
    store: Store,
    swarm: FakeSwarm,
    events: EventRecorder,
    registries: RegistryState,
}

fn no_catalog(_: &str) -> Option<Value> {
    None
}

impl World {
    fn new() -> Self {
        let store = Store::in_memory();
        World {
            events: EventRecorder::new(store.clone()),
            store,
            swarm: FakeSwarm::new(),
            // Password files are read only under the temporary folder the tests write
            // them in, as a controller given --registry-secrets-dir reads them.
            registries: RegistryState::new(Some(std::env::temp_dir())),
        }
    }

    fn reconciler(&self) -> Reconciler<'_> {
        Reconciler {
            store: &self.store,
            cache: None,
            swarm: &self.swarm,
            configuration: "main",
            fence: None,
            catalog: &no_catalog,
            events: &self.events,
            metrics: None,
            keys: None,
            registries: &self.registries,
        }
    }

    async fn apply(&self, yaml: &str) {
        for o in common::objects(yaml) {
            self.store.apply(&o).await.expect("apply");
        }
    }

    async fn pass(&self) -> PassReport {
        self.reconciler().pass().await.expect("pass")
    }

    /// A few passes (the fake settles at once); the last one's report.
    async fn passes(&self, n: usize) -> PassReport {
        let mut last = PassReport::default();
        for _ in 0..n {
            last = self.pass().await;
        }
        last
    }

    async fn live(&self, name: &str) -> LiveService {
        self.swarm
            .inspect_service(name)
            .await
            .expect("inspect")
            .expect("live service")
    }

    async fn image(&self, name: &str) -> String {
        image_of(&self.live(name).await)
    }

    async fn status(&self, name: &str) -> ServiceStatus {
        let o = self.store.get(Kind::Service, name).await.expect("get");
        let o = o.expect("service");
        serde_json::from_value(o.status.unwrap_or_default()).unwrap_or_default()
    }

    /// (status, reason, message) of a Service's Ready condition.
    async fn ready(&self, name: &str) -> (String, String, String) {
        let o = self.store.get(Kind::Service, name).await.expect("get");
        let status = o.and_then(|o| o.status).unwrap_or_default();
        let c = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        (s("status"), s("reason"), s("message"))
    }

    /// (reason, message) of every event recorded for a Service.
    async fn events_of(&self, name: &str) -> Vec<(String, String)> {
        let prefix = format!("{}/events/service/{name}/", self.store.prefix());
        let (entries, _) = self.store.kv().range(&prefix).await.expect("range");
        entries
            .iter()
            .filter_map(|e| serde_json::from_slice::<Value>(&e.value).ok())
            .map(|v| {
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                (s("reason"), s("message"))
            })
            .collect()
    }
}

fn image_of(live: &LiveService) -> String {
    live.spec
        .pointer("/TaskTemplate/ContainerSpec/Image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Configuration `main`, Environment `prod` (with `env_extra` under its spec), Stack
/// `web` with the Services `apps` (name, image, extra lines of its spec).
fn manifests(env_extra: &str, apps: &[(&str, &str, &str)]) -> String {
    let names: Vec<&str> = apps.iter().map(|a| a.0).collect();
    let mut yaml = format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: prod, defaults: none}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: prod}}
spec:
  stacks: [web]
{env_extra}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: web}}
spec:
  services: [{}]
"#,
        names.join(", ")
    );
    for (name, image, extra) in apps {
        yaml.push_str(&format!(
            r#"---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: {name}}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
{extra}
"#
        ));
    }
    yaml
}

fn app(image: &str, extra: &str) -> String {
    manifests("", &[("app", image, extra)])
}

#[tokio::test]
async fn a_pushed_tag_is_pinned_and_a_resync_never_asks_the_registry_again() {
    let w = World::new();
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D1.into()));
    w.apply(&app(PRIVATE, "")).await;
    w.passes(2).await;
    assert_eq!(w.image(APP).await, format!("{PRIVATE}@{D1}"));
    assert_eq!(w.status("app").await.image_digest.as_deref(), Some(D1));
    assert_eq!(w.status("app").await.image.as_deref(), Some(PRIVATE));
    assert_eq!(w.swarm.resolved_images(), vec![PRIVATE.to_string()]);
    // The tag moves in the registry: resyncs neither ask nor roll anything.
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D2.into()));
    let r = w.passes(3).await;
    assert!(r.all_ready, "{r:?}");
    assert_eq!((r.docker_writes, r.etcd_writes), (0, 0), "{r:?}");
    assert_eq!(w.swarm.resolved_images().len(), 1);
    assert_eq!(w.image(APP).await, format!("{PRIVATE}@{D1}"));
}

#[tokio::test]
async fn upgrading_kargo_rolls_nothing_a_live_unpinned_service_is_left_alone() {
    let w = World::new();
    // Deployed as an earlier kargo did: unpinned (here, the registry did not answer).
    w.apply(&app(PRIVATE, "")).await;
    w.passes(2).await;
    assert_eq!(w.image(APP).await, PRIVATE);
    assert_eq!(w.status("app").await.image_digest, None);
    // The new kargo's controller starts (remembering no failed registry); the registry answers.
    *w.registries.memory.lock().expect("memory") =
        kargo::registry::resolve::FailureMemory::default();
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D1.into()));
    let asked = w.swarm.resolved_images().len();
    let r = w.passes(3).await;
    assert_eq!(r.docker_writes, 0, "{r:?}");
    assert_eq!(w.swarm.resolved_images().len(), asked);
    assert_eq!(w.image(APP).await, PRIVATE);
    // Pinning starts with the service's next change.
    w.apply(&app(PRIVATE, "  env: {A: '1'}")).await;
    w.passes(2).await;
    assert_eq!(w.image(APP).await, format!("{PRIVATE}@{D1}"));
}

#[tokio::test]
async fn resolve_image_always_takes_the_moved_tag_on_the_next_change() {
    let w = World::new();
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D1.into()));
    w.apply(&app(PRIVATE, "")).await;
    w.passes(2).await;
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D2.into()));
    w.apply(&app(PRIVATE, "  env: {A: '1'}")).await;
    w.passes(2).await;
    assert_eq!(w.image(APP).await, format!("{PRIVATE}@{D2}"));
    assert_eq!(w.status("app").await.image_digest.as_deref(), Some(D2));
    let updated = w
        .events_of("app")
        .await
        .into_iter()
        .find(|(r, _)| r == "Updated")
        .expect("an Updated event");
    assert!(updated.1.contains(D2), "{updated:?}");
}

#[tokio::test]
async fn resolve_image_never_sends_the_tag_as_written() {
    let w = World::new();
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D1.into()));
    w.apply(&manifests("  resolveImage: never", &[("app", PRIVATE, "")]))
        .await;
    w.passes(2).await;
    assert_eq!(w.image(APP).await, PRIVATE);
    assert!(w.swarm.resolved_images().is_empty());
    assert_eq!(w.status("app").await.image_digest, None);
    assert!(
        !w.events_of("app")
            .await
            .iter()
            .any(|(r, _)| r == "ImageUnresolved")
    );
}

#[tokio::test]
async fn resolve_image_changed_keeps_the_live_digest_until_the_reference_changes() {
    let w = World::new();
    let env = "  resolveImage: changed";
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D1.into()));
    w.apply(&manifests(env, &[("app", PRIVATE, "")])).await;
    w.passes(2).await;
    assert_eq!(w.image(APP).await, format!("{PRIVATE}@{D1}"));
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D2.into()));
    w.apply(&manifests(env, &[("app", PRIVATE, "  env: {A: '1'}")]))
        .await;
    w.passes(2).await;
    assert_eq!(w.image(APP).await, format!("{PRIVATE}@{D1}"), "kept");
    assert_eq!(w.swarm.resolved_images().len(), 1);
    let two = "127.0.0.1:5015/team/app:2";
    w.swarm.registry_answers(two, Resolution::Digest(D2.into()));
    w.apply(&manifests(env, &[("app", two, "  env: {A: '1'}")]))
        .await;
    w.passes(2).await;
    assert_eq!(w.image(APP).await, format!("{two}@{D2}"));
}

#[tokio::test]
async fn an_unreachable_registry_deploys_unpinned_with_one_warning_and_is_remembered() {
    let w = World::new();
    let local = "kargo-busybox:1.0";
    w.apply(&manifests(
        "",
        &[("app", local, ""), ("api", local, ""), ("db", local, "")],
    ))
    .await;
    let r = w.passes(2).await;
    assert!(r.all_ready, "{r:?}");
    for name in ["kargo-web_app", "kargo-web_api", "kargo-web_db"] {
        assert_eq!(w.image(name).await, local, "{name} unpinned");
    }
    assert_eq!(
        w.swarm.resolved_images(),
        vec![local.to_string()],
        "one lookup"
    );
    let mut warnings = Vec::new();
    for name in ["app", "api", "db"] {
        warnings.extend(
            w.events_of(name)
                .await
                .into_iter()
                .filter(|(r, _)| r == "ImageUnresolved"),
        );
    }
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let message = &warnings[0].1;
    assert!(
        message.contains("image kargo-busybox:1.0 could not be resolved on registry docker.io")
            && message.contains("deployed unpinned, each node pulls the tag itself"),
        "{message}"
    );
    // Remembered: a change within the next minutes asks nothing.
    w.apply(&manifests(
        "",
        &[
            ("app", local, "  env: {A: '1'}"),
            ("api", local, ""),
            ("db", local, ""),
        ],
    ))
    .await;
    w.passes(2).await;
    assert_eq!(w.swarm.resolved_images().len(), 1);
}

fn registry_env(password_file: &str) -> String {
    format!(
        "  registries:\n  - server: 127.0.0.1:5015\n    username: kargo\n    passwordFrom: {{file: \"{password_file}\"}}"
    )
}

#[tokio::test]
async fn every_write_carries_the_registry_auth_of_its_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret\n").expect("write");
    let env = registry_env(&file.display().to_string());
    {
        let w = World::new();
        w.swarm
            .registry_answers(PRIVATE, Resolution::Digest(D1.into()));
        w.apply(&manifests(
            &env,
            &[("app", PRIVATE, ""), ("local", "kargo-busybox:1.0", "")],
        ))
        .await;
        w.passes(2).await;
        let auths = w.swarm.registry_auths();
        let of = |name: &str| {
            auths
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| c.clone())
                .expect("written")
        };
        let creds = of(APP).expect("credentials for the private image");
        assert_eq!(
            (
                creds.server.as_str(),
                creds.username.as_str(),
                creds.password.as_str()
            ),
            ("127.0.0.1:5015", "kargo", "s3cret")
        );
        assert_eq!(of("kargo-web_local"), None, "another registry gets none");
    }
}

#[tokio::test]
async fn a_password_file_outside_the_secrets_folder_is_never_read() {
    // The applier names a file of the controller's host (here: one outside the folder the
    // controller reads passwords from) hoping it is sent to a registry of theirs.
    let dir = tempfile::tempdir().expect("tempdir");
    let allowed = dir.path().join("registry-secrets");
    std::fs::create_dir(&allowed).expect("mkdir");
    let outside = dir.path().join("secret.key");
    std::fs::write(&outside, "AGE-SECRET-KEY-1…").expect("write");
    let mut w = World::new();
    w.registries = RegistryState::new(Some(allowed));
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D1.into()));
    let env = registry_env(&outside.display().to_string());
    w.apply(&manifests(&env, &[("app", PRIVATE, "")])).await;
    let r = w.passes(2).await;
    assert_eq!(r.docker_writes, 0, "{r:?}");
    assert!(
        w.swarm.resolved_images().is_empty(),
        "the registry was asked"
    );
    let (status, reason, message) = w.ready("app").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "RegistryCredentialsUnavailable")
    );
    assert!(
        message.contains("is not read") && message.contains("the only folder"),
        "{message}"
    );
    // A variable of the controller's environment: only KARGO_REGISTRY_* ones.
    let env = "  registries:\n  - server: 127.0.0.1:5015\n    username: kargo\n    passwordFrom: {env: HOME}";
    w.apply(&manifests(env, &[("app", PRIVATE, "")])).await;
    w.passes(2).await;
    let (_, reason, message) = w.ready("app").await;
    assert_eq!(reason, "RegistryCredentialsUnavailable");
    assert!(message.contains("KARGO_REGISTRY_"), "{message}");
}

#[tokio::test]
async fn missing_credentials_leave_what_runs_and_say_which_registry() {
    let w = World::new();
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D1.into()));
    w.apply(&app(PRIVATE, "")).await;
    w.passes(2).await;
    let before = w.live(APP).await;
    let env = registry_env("/nonexistent/kargo-test-password");
    w.apply(&manifests(&env, &[("app", PRIVATE, "  env: {A: '1'}")]))
        .await;
    let r = w.passes(3).await;
    assert!(!r.all_ready);
    assert_eq!(r.docker_writes, 0, "{r:?}");
    let after = w.live(APP).await;
    assert_eq!(after.version, before.version, "nothing running changed");
    let (status, reason, message) = w.ready("app").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "RegistryCredentialsUnavailable")
    );
    assert!(
        message.contains("registry 127.0.0.1:5015")
            && message.contains("/nonexistent/kargo-test-password"),
        "{message}"
    );
    let warned = w
        .events_of("app")
        .await
        .into_iter()
        .filter(|(r, _)| r == "RegistryCredentialsUnavailable")
        .count();
    assert_eq!(warned, 1, "said once");
}

#[tokio::test]
async fn refused_credentials_leave_what_runs_and_say_which_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pw");
    std::fs::write(&file, "wrong").expect("write");
    let env = registry_env(&file.display().to_string());
    let w = World::new();
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D1.into()));
    w.apply(&manifests(&env, &[("app", PRIVATE, "")])).await;
    w.passes(2).await;
    let before = w.live(APP).await;
    w.swarm.registry_answers(
        PRIVATE,
        Resolution::CredentialsRefused("unauthorized: authentication required".into()),
    );
    w.apply(&manifests(&env, &[("app", PRIVATE, "  env: {A: '1'}")]))
        .await;
    let r = w.passes(2).await;
    assert_eq!(r.docker_writes, 0, "{r:?}");
    assert_eq!(w.live(APP).await.version, before.version);
    let (status, reason, message) = w.ready("app").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "RegistryCredentialsRefused")
    );
    assert!(
        message.contains("registry 127.0.0.1:5015 refused the credentials of user \"kargo\""),
        "{message}"
    );
    // The same credentials are not offered again on the next passes (registries lock
    // accounts after repeated failures)...
    let asked = w.swarm.resolved_images().len();
    w.swarm
        .registry_answers(PRIVATE, Resolution::Digest(D2.into()));
    let r = w.passes(3).await;
    assert_eq!(r.docker_writes, 0, "{r:?}");
    assert_eq!(
        w.swarm.resolved_images().len(),
        asked,
        "refused credentials offered again"
    );
    // ...mended (the password file now holds another password): offered at once, pushed, pinned.
    std::fs::write(&file, "right").expect("write");
    let r = w.passes(2).await;
    assert!(r.all_ready, "{r:?}");
    assert_eq!(w.image(APP).await, format!("{PRIVATE}@{D2}"));
}
