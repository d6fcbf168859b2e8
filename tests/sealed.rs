//! Sealed secrets against the real etcd and Swarm: `kargo keys create`, `apply` sealing
//! before it writes, only the controller with the private key opening sealed values (into
//! the container's /run/secrets), names that reveal nothing, rotation, redaction, and
//! errors that never quote sensitive content.

mod common;

use std::time::Duration;

use kargo::api::{Kind, ServiceStatus};
use kargo::controller::{Controller, ControllerOptions};
use kargo::secrets::Keyring;
use kargo::store::Store;
use kargo::swarm::SwarmClient;

const PREFIX: &str = "/kargo-test-sealed";
const TOKEN: &str = "t0ken-Zq8-plain";
const PASSWORD: &str = "Pa55-w0rd-Xk3";

fn manifests() -> String {
    let image = common::image("1.0");
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec:
  environment: sealed
  defaults: none
  files:
    token: {{content: "{TOKEN}", sensitive: true}}
    db.conf: {{content: "password=${{DB_PASSWORD}} cost=$$5", sensitive: true, template: true}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: sealed}}
spec:
  stacks: [sl]
  sensitiveVariables: {{DB_PASSWORD: "{PASSWORD}"}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: sl}}
spec: {{services: [reader]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: reader}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  endpointMode: dnsrr
  env: {{DB_PASSWORD_FILE: /run/secrets/db.conf}}
  secrets: [{{file: token}}, {{file: db.conf}}]
"#
    )
}

fn controller_with(store: &Store, swarm: &SwarmClient, keys: Option<Keyring>) -> Controller {
    let options = ControllerOptions {
        keys: keys.map(std::sync::Arc::new),
        ..ControllerOptions::default()
    };
    Controller::new(store.clone(), swarm.clone(), options)
}

/// The Ready condition's reason and message of the Configuration `main`.
async fn config_ready(store: &Store) -> (String, String) {
    let o = store
        .get(Kind::Configuration, "main")
        .await
        .expect("get")
        .expect("main");
    let status = o.status.unwrap_or_default();
    let ready = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap_or_default();
    (
        ready["reason"].as_str().unwrap_or_default().to_string(),
        ready["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// Every key and value under the prefix, as one text.
async fn whole_prefix(store: &Store) -> String {
    let (entries, _) = store.kv().range(PREFIX).await.expect("range");
    entries
        .iter()
        .map(|e| format!("{} {}\n", e.key, String::from_utf8_lossy(&e.value)))
        .collect()
}

/// What the running task of `service` reads at `path`.
fn read_in_container(service: &str, path: &str) -> String {
    let ps = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ])
        .output()
        .expect("docker ps");
    let id = common::text(&ps.stdout);
    let id = id.lines().next().expect("a running task");
    let out = std::process::Command::new("docker")
        .args(["exec", id, "cat", path])
        .output()
        .expect("docker exec");
    common::text(&out.stdout)
}

async fn secret_names(swarm: &SwarmClient) -> Vec<String> {
    let mut names: Vec<String> = swarm
        .list_files(PREFIX, true)
        .await
        .expect("secrets")
        .into_iter()
        .map(|f| f.name)
        .collect();
    names.sort();
    names
}

fn assert_clean(text: &str, what: &str) {
    for plain in [TOKEN, PASSWORD] {
        assert!(
            !text.contains(plain),
            "{what} shows a sensitive value: {text}"
        );
    }
}

#[tokio::test]
async fn sealed_secrets_reach_the_container_and_nothing_else() {
    let store = common::etcd_store(PREFIX).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, PREFIX).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("secret.key");
    let key_arg = key.to_str().expect("utf-8 path");
    let plain_file = dir.path().join("plain.yaml");
    std::fs::write(&plain_file, manifests()).expect("write");
    let plain_arg = plain_file.to_str().expect("utf-8 path");

    // Without keys: refused, with how to create them, and nothing written.
    let out = common::kargo(PREFIX, &["apply", "-f", plain_arg], None);
    let err = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("kargo keys create"), "{err}");
    assert!(store.list_all().await.expect("list").items.is_empty());

    // Keys: the public one in etcd, the private one in a 0600 file.
    common::expect_code(
        &common::kargo(PREFIX, &["keys", "create", "--out", key_arg], None),
        0,
        "keys create",
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let keys = Keyring::read(&key).expect("key file");
    common::expect_code(
        &common::kargo(PREFIX, &["keys", "create", "--out", key_arg], None),
        1,
        "a second keys create is refused",
    );

    // Apply seals before it writes: no byte of a sensitive value anywhere under the prefix.
    let applied = common::expect_code(
        &common::kargo(PREFIX, &["apply", "-f", plain_arg], None),
        0,
        "apply",
    );
    assert!(applied.contains("configuration/main created"), "{applied}");
    assert_clean(&whole_prefix(&store).await, "etcd");

    // A controller without the key says so and changes nothing in Swarm.
    let report = controller_with(&store, &swarm, None)
        .pass()
        .await
        .expect("pass");
    assert_eq!(report.docker_writes, 0);
    assert_eq!(config_ready(&store).await.0, "SecretKeyMissing");
    // Nor does one with another installation's key.
    let wrong = controller_with(&store, &swarm, Some(Keyring::generate()));
    assert_eq!(wrong.pass().await.expect("pass").docker_writes, 0);
    let (reason, message) = config_ready(&store).await;
    assert_eq!(reason, "SecretKeyMismatch", "{message}");
    assert!(
        swarm
            .list_files(PREFIX, true)
            .await
            .expect("secrets")
            .is_empty()
    );

    // The controller with the key: the container reads the plaintext at /run/secrets.
    let controller = controller_with(&store, &swarm, Some(keys.clone()));
    common::converge(&controller, Duration::from_secs(90)).await;
    let service = kargo::swarm::names::swarm_service("sl", "reader");
    assert_eq!(read_in_container(&service, "/run/secrets/token"), TOKEN);
    assert_eq!(
        read_in_container(&service, "/run/secrets/db.conf"),
        format!("password={PASSWORD} cost=$5")
    );
    // Names reveal nothing: an HMAC with the controller's naming key, not a bare hash.
    let names = secret_names(&swarm).await;
    assert!(
        names.contains(&keys.secret_name("token", TOKEN.as_bytes())),
        "{names:?}"
    );
    use sha2::Digest;
    let bare = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    assert!(names.iter().all(|n| !n.contains(&bare[..10])), "{names:?}");

    // `seal` prints sealed manifests; applying them twice is "unchanged" the second time,
    // and the same plaintext keeps its secret name (no roll).
    let sealed = common::expect_code(
        &common::kargo(PREFIX, &["seal", "-f", plain_arg], None),
        0,
        "seal",
    );
    assert_clean(&sealed, "seal");
    assert!(sealed.contains("BEGIN AGE ENCRYPTED FILE"), "{sealed}");
    let sealed_file = dir.path().join("sealed.yaml");
    std::fs::write(&sealed_file, &sealed).expect("write");
    let sealed_arg = sealed_file.to_str().expect("utf-8 path");
    common::expect_code(
        &common::kargo(PREFIX, &["apply", "-f", sealed_arg], None),
        0,
        "apply sealed",
    );
    let again = common::expect_code(
        &common::kargo(PREFIX, &["apply", "-f", sealed_arg], None),
        0,
        "apply sealed again",
    );
    assert!(again.contains("configuration/main unchanged"), "{again}");
    assert!(again.contains("environment/sealed unchanged"), "{again}");
    // `diff` has no key, yet finds nothing to change: the controller recorded which
    // secret each sealed value became.
    common::converge(&controller, Duration::from_secs(90)).await;
    let out = common::kargo(PREFIX, &["diff", "-f", sealed_arg], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        common::text(&out.stdout),
        common::text(&out.stderr)
    );
    let plain_again = common::expect_code(
        &common::kargo(PREFIX, &["apply", "-f", plain_arg], None),
        0,
        "apply plaintext again",
    );
    assert!(
        plain_again.contains("configuration/main configured"),
        "{plain_again}"
    );
    common::converge(&controller, Duration::from_secs(90)).await;
    controller.pass().await.expect("pass collects");
    assert_eq!(
        secret_names(&swarm).await,
        names,
        "same content, same secrets"
    );

    // Redaction everywhere a person looks.
    let get = common::expect_code(
        &common::kargo(
            PREFIX,
            &["get", "configuration", "main", "-o", "yaml"],
            None,
        ),
        0,
        "get",
    );
    assert!(get.contains("sealed:"), "get shows the sealed form: {get}");
    for args in [
        vec!["get", "environment", "sealed", "-o", "json"],
        vec!["describe", "configuration", "main"],
        vec!["describe", "environment", "sealed"],
        vec!["render"],
        vec!["render", "-f", plain_arg],
        vec!["diff", "-f", plain_arg],
    ] {
        let out = common::kargo(PREFIX, &args, None);
        assert_clean(&common::text(&out.stdout), &args.join(" "));
        assert_clean(&common::text(&out.stderr), &args.join(" "));
    }
    assert_clean(&whole_prefix(&store).await, "etcd after the re-applies");

    // A sealed variable may not feed plain env: a validation error.
    let leaky = manifests().replace(
        "DB_PASSWORD_FILE: /run/secrets/db.conf",
        "DB_PASSWORD: \"${DB_PASSWORD}\"",
    );
    let out = common::kargo(
        PREFIX,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&leaky),
    );
    let err = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("sensitive variable DB_PASSWORD"), "{err}");
    assert_clean(&err, "the refusal");

    // Errors never quote sensitive content: `$` and `${` in a sealed template.
    let bad = manifests().replace(
        "password=${DB_PASSWORD} cost=$$5",
        "pw=${Zsecret_part} a=$ b=${",
    );
    // `apply` refuses it before sealing, without quoting it...
    let refused = common::kargo(PREFIX, &["apply", "-f", "-"], Some(&bad));
    let err = common::text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("sensitive file"), "{err}");
    for piece in ["Zsecret_part", "pw=", "a=$", "b=${"] {
        assert!(!err.contains(piece), "the refusal quotes {piece}: {err}");
    }
    // ...and the controller says the same of it sealed (what reaches etcd without apply's check).
    // (an unset variable: the offline check cannot see it, the controller can)
    let unset = manifests().replace("password=${DB_PASSWORD} cost=$$5", "pw=${Zsecret_part}");
    let sealed_bad = common::kargo(PREFIX, &["seal", "-f", "-"], Some(&unset));
    let sealed_bad = common::expect_code(&sealed_bad, 0, "seal a bad template");
    common::expect_code(
        &common::kargo(PREFIX, &["apply", "-f", "-"], Some(&sealed_bad)),
        0,
        "apply a bad sealed template",
    );
    let before = secret_names(&swarm).await;
    controller.pass().await.expect("pass");
    let (_, message) = config_ready(&store).await;
    assert!(message.contains("db.conf"), "{message}");
    for piece in ["Zsecret_part", "pw="] {
        assert!(
            !whole_prefix(&store).await.contains(piece),
            "etcd quotes {piece}"
        );
    }
    assert_eq!(secret_names(&swarm).await, before);

    // Rotation: a new key, everything resealed, names kept; the old key no longer fits.
    common::expect_code(
        &common::kargo(PREFIX, &["apply", "-f", plain_arg], None),
        0,
        "apply good again",
    );
    common::expect_code(
        &common::kargo(
            PREFIX,
            &["keys", "rotate", "--key-file", key_arg, "--drop-old"],
            None,
        ),
        0,
        "rotate",
    );
    let rotated = Keyring::read(&key).expect("rotated key file");
    assert_ne!(rotated.public().to_string(), keys.public().to_string());
    let stale = controller_with(&store, &swarm, Some(keys.clone()));
    assert_eq!(stale.pass().await.expect("pass").docker_writes, 0);
    assert_eq!(config_ready(&store).await.0, "SecretKeyMismatch");
    let controller = controller_with(&store, &swarm, Some(rotated));
    common::converge(&controller, Duration::from_secs(90)).await;
    assert_eq!(
        secret_names(&swarm).await,
        names,
        "rotation renames nothing"
    );
    assert_eq!(read_in_container(&service, "/run/secrets/token"), TOKEN);
    assert_clean(&whole_prefix(&store).await, "etcd after the rotation");
    let st: ServiceStatus = serde_json::from_value(
        store
            .get(Kind::Service, "reader")
            .await
            .expect("get")
            .expect("reader")
            .status
            .expect("status"),
    )
    .expect("status");
    assert!(st.service_id.is_some());

    common::wipe_prefix(&store).await;
    common::remove_installation(&swarm, PREFIX).await;
    for f in swarm.list_files(PREFIX, true).await.expect("files") {
        let _ = swarm.remove_file(&f.id, true).await;
    }
    common::wipe_prefix(&store).await;
}

const CATALOG_PREFIX: &str = "/kargo-test-sealed-catalog";
const CATALOG_PASSWORD: &str = "Pg-pa55-Qv7";

/// The catalog's postgis with its password a sensitive variable; the overlay only swaps
/// what cannot run here (no image can be pulled): the image, its command and healthcheck,
/// the placement, the volume and the networks.
fn catalog_manifests() -> String {
    let image = common::image("1.0");
    format!(
        r#"
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: cat}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: cat}}
spec:
  stacks: [scat]
  sensitiveVariables: {{POSTGIS_PASSWORD: "{CATALOG_PASSWORD}"}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: scat}}
spec: {{services: [postgis]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: postgis}}
spec:
  image: "{image}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  healthcheck: null
  volumes: null
  networks: null
  deploy: {{placement: null}}
"#
    )
}

#[tokio::test]
async fn a_catalog_password_reaches_run_secrets_and_no_env() {
    let store = common::etcd_store(CATALOG_PREFIX).await;
    let swarm = common::swarm().await;
    remove_catalog_installation(&swarm).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("secret.key");
    let key_arg = key.to_str().expect("utf-8 path");
    common::expect_code(
        &common::kargo(CATALOG_PREFIX, &["keys", "create", "--out", key_arg], None),
        0,
        "keys create",
    );
    let keys = Keyring::read(&key).expect("key file");
    common::expect_code(
        &common::kargo(
            CATALOG_PREFIX,
            &["apply", "-f", "-"],
            Some(&catalog_manifests()),
        ),
        0,
        "apply",
    );

    // `render` (no keys) shows the *_FILE variable and the mount, never the password.
    let render = common::expect_code(
        &common::kargo(CATALOG_PREFIX, &["render"], None),
        0,
        "render",
    );
    assert!(
        render.contains("POSTGRES_PASSWORD_FILE=/run/secrets/postgis_password"),
        "{render}"
    );
    assert!(!render.contains(CATALOG_PASSWORD), "{render}");

    let controller = controller_with(&store, &swarm, Some(keys.clone()));
    common::converge(&controller, Duration::from_secs(90)).await;
    let service = kargo::swarm::names::swarm_service("scat", "postgis");
    let inspect = std::process::Command::new("docker")
        .args(["service", "inspect", &service])
        .output()
        .expect("docker service inspect");
    let inspect = common::text(&inspect.stdout);
    assert!(
        inspect.contains("POSTGRES_PASSWORD_FILE=/run/secrets/postgis_password"),
        "{inspect}"
    );
    assert!(!inspect.contains(CATALOG_PASSWORD), "{inspect}");
    assert!(!inspect.contains("POSTGRES_PASSWORD="), "{inspect}");
    // The secret the controller created, named by an HMAC, holds the password.
    let names: Vec<String> = swarm
        .list_files(CATALOG_PREFIX, true)
        .await
        .expect("secrets")
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        names,
        vec![keys.secret_name("postgis_password", CATALOG_PASSWORD.as_bytes())]
    );
    let ps = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ])
        .output()
        .expect("docker ps");
    let id = common::text(&ps.stdout);
    let id = id.lines().next().expect("a running task");
    let read = std::process::Command::new("docker")
        .args(["exec", id, "cat", "/run/secrets/postgis_password"])
        .output()
        .expect("docker exec");
    assert_eq!(common::text(&read.stdout), CATALOG_PASSWORD);
    let (entries, _) = store.kv().range(CATALOG_PREFIX).await.expect("range");
    for e in &entries {
        assert!(
            !String::from_utf8_lossy(&e.value).contains(CATALOG_PASSWORD),
            "{} holds the password",
            e.key
        );
    }
    remove_catalog_installation(&swarm).await;
    common::wipe_prefix(&store).await;
}

/// The catalog test's services, then its secrets (which a running service would hold).
async fn remove_catalog_installation(swarm: &SwarmClient) {
    common::remove_installation(swarm, CATALOG_PREFIX).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let files = swarm.list_files(CATALOG_PREFIX, true).await.expect("files");
        if files.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        for f in files {
            let _ = swarm.remove_file(&f.id, true).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
