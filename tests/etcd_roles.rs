//! Least privilege (docs/security.md, "etcd roles"): against an etcd of the test's own with
//! auth on and the three roles as the page creates them, a writer applies, a viewer can
//! `get` but not `apply`, and the controller deploys to the real Swarm and reports with its
//! role alone. Its metrics endpoint, given a port alone, listens on loopback only.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{expect_code, text};

const PREFIX: &str = "/kargo-test-roles";
const ENDPOINT: &str = "http://127.0.0.1:24111";
const METRICS_PORT: u16 = 24119;

/// A child process killed (and waited for) when dropped.
struct Killed {
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_etcd() -> Killed {
    let dir = tempfile::tempdir().expect("data dir");
    let peer = "http://127.0.0.1:24112";
    let child = Command::new("etcd")
        .args(["--name", "roles", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", ENDPOINT])
        .args(["--advertise-client-urls", ENDPOINT])
        .args(["--listen-peer-urls", peer])
        .args(["--initial-advertise-peer-urls", peer])
        .args(["--initial-cluster", &format!("roles={peer}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd on the PATH (scripts/setup.sh installs it)");
    let etcd = Killed {
        child,
        _dir: Some(dir),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", ENDPOINT, "endpoint", "health"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(Instant::now() < deadline, "the test etcd did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    etcd
}

/// The roles and users exactly as docs/security.md creates them.
fn create_roles() {
    let p = PREFIX;
    let steps: Vec<Vec<String>> = [
        "user add root --new-user-password s3cret".to_string(),
        "role add kargo-writer".into(),
        format!("role grant-permission kargo-writer --prefix=true read {p}/"),
        format!("role grant-permission kargo-writer --prefix=true readwrite {p}/registry/"),
        format!("role grant-permission kargo-writer --prefix=true readwrite {p}/applysets/"),
        "role add kargo-viewer".into(),
        format!("role grant-permission kargo-viewer --prefix=true read {p}/"),
        "role add kargo-controller".into(),
        format!("role grant-permission kargo-controller --prefix=true read {p}/"),
        format!("role grant-permission kargo-controller --prefix=true readwrite {p}/registry/"),
        format!("role grant-permission kargo-controller --prefix=true readwrite {p}/events/"),
        format!("role grant-permission kargo-controller --prefix=true readwrite {p}/history/"),
        format!("role grant-permission kargo-controller --prefix=true readwrite {p}/state/"),
        format!("role grant-permission kargo-controller --prefix=true readwrite {p}/leader"),
        "user add writer --new-user-password w-pw".into(),
        "user grant-role writer kargo-writer".into(),
        "user add viewer --new-user-password v-pw".into(),
        "user grant-role viewer kargo-viewer".into(),
        "user add controller --new-user-password c-pw".into(),
        "user grant-role controller kargo-controller".into(),
        "auth enable".into(),
    ]
    .iter()
    .map(|s| s.split(' ').map(str::to_string).collect())
    .collect();
    // Every step runs before `auth enable`, the last one, so none needs credentials.
    for step in steps {
        let args: Vec<&str> = step.iter().map(String::as_str).collect();
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", ENDPOINT])
            .args(&args)
            .output()
            .expect("etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            text(&out.stderr)
        );
    }
}

fn kargo_as(
    user: &str,
    password: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut all = vec!["--etcd-user", user, "--etcd-password", password];
    all.extend(args);
    common::kargo_with_env(PREFIX, &all, stdin, &[("KARGO_ETCD_ENDPOINTS", ENDPOINT)])
}

fn workspace() -> String {
    format!(
        r#"apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: roles, defaults: none}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: roles}}
spec: {{stacks: [roles]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: roles}}
spec: {{services: [web]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: web}}
spec:
  image: "{}"
  command: ["sh", "-c", "while true; do sleep 1; done"]
  endpointMode: dnsrr
"#,
        common::image("1.0")
    )
}

/// The host's first address that is not loopback (from `hostname -I`).
fn outside_address() -> String {
    let out = Command::new("hostname")
        .arg("-I")
        .output()
        .expect("hostname -I");
    text(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("a non-loopback IPv4 address on this host")
        .to_string()
}

#[tokio::test]
async fn each_role_does_what_it_needs_and_no_more() {
    let _etcd = start_etcd();
    create_roles();
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, PREFIX).await;

    // The writer applies.
    let out = kargo_as("writer", "w-pw", &["apply", "-f", "-"], Some(&workspace()));
    expect_code(&out, 0, "apply as the writer");

    // The viewer reads, and cannot write.
    let out = kargo_as("viewer", "v-pw", &["get", "services", "-o", "name"], None);
    assert_eq!(expect_code(&out, 0, "get as the viewer"), "service/web\n");
    let out = kargo_as(
        "viewer",
        "v-pw",
        &["apply", "-f", "-"],
        Some(&workspace().replace("sleep 1", "sleep 2")),
    );
    assert_ne!(out.status.code(), Some(0), "apply as the viewer must fail");
    assert!(
        text(&out.stderr).contains("permission denied"),
        "{}",
        text(&out.stderr)
    );

    // The controller deploys with its role alone; its metrics port is loopback only.
    let log = tempfile::NamedTempFile::new().expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(["controller", "--metrics-addr", &METRICS_PORT.to_string()])
        .args(["--etcd-user", "controller", "--etcd-password", "c-pw"])
        .env("KARGO_PREFIX", PREFIX)
        .env("KARGO_ETCD_ENDPOINTS", ENDPOINT)
        .env("RUST_LOG", "kargo=info")
        .stdin(Stdio::null())
        .stdout(log.reopen().expect("log"))
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("start kargo controller");
    let _controller = Killed { child, _dir: None };
    let out = kargo_as(
        "viewer",
        "v-pw",
        &[
            "wait",
            "stack/roles",
            "--for=condition=Ready",
            "--timeout=90s",
        ],
        None,
    );
    expect_code(
        &out,
        0,
        &format!(
            "the controller with its role alone\ncontroller log:\n{}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        ),
    );
    assert!(
        swarm
            .inspect_service("kargo-roles_web")
            .await
            .expect("inspect")
            .is_some()
    );
    let local = common::process::http_get(&format!("127.0.0.1:{METRICS_PORT}"), "/healthz");
    assert_eq!(
        local.map(|(code, _)| code),
        Some(200),
        "metrics on loopback"
    );
    let outside = format!("{}:{METRICS_PORT}", outside_address());
    assert!(
        std::net::TcpStream::connect_timeout(
            &outside.parse().expect("address"),
            Duration::from_secs(2)
        )
        .is_err(),
        "the metrics endpoint must not answer on {outside}"
    );

    common::remove_installation(&swarm, PREFIX).await;
}
