//! etcd options of every command against etcd processes started here: one serving TLS
//! with client-certificate auth, one with user auth and a one-second token TTL (so the
//! token expires under a long-running client and must be refreshed).

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{expect_code, text};
use futures::StreamExt;
use kargo::store::{EtcdConfig, EtcdKv, Kv, Precondition};

/// An etcd process of the test's own; killed (and its data dir removed) when dropped.
struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    fn start(dir: tempfile::TempDir, client_url: &str, peer_port: u16, extra: &[String]) -> Etcd {
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new("etcd")
            .args(["--name", "secure", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", client_url])
            .args(["--advertise-client-urls", client_url])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("secure={peer}")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd on the PATH (scripts/setup.sh installs it)");
        Etcd { child, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("etcd.log")).unwrap_or_default()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        text(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=kargo-test-ca",
    ]);
    openssl(dir, &ca);
    for (name, cn, usage) in [
        ("server", "127.0.0.1", "serverAuth,clientAuth"),
        ("client", "root", "clientAuth"),
    ] {
        let mut req = vec!["req"];
        req.extend(ec);
        let key = format!("{name}-key.pem");
        let csr = format!("{name}.csr");
        let subj = format!("/CN={cn}");
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n"),
        )
        .expect("ext file");
        let cert = format!("{name}.pem");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

fn kargo(endpoint: &str, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut all = vec!["--etcd-endpoints", endpoint];
    all.extend(args);
    common::kargo_with_env("/kargo-test-secure", &all, stdin, env)
}

fn eventually_ok(
    what: &str,
    mut attempt: impl FnMut() -> Output,
    log: impl Fn() -> String,
) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = attempt();
        if out.status.success() {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never worked: {}\netcd log:\n{}",
            text(&out.stderr),
            log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

const WEB: &str = "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec: {image: \"kargo-busybox:1.0\"}\n";

#[test]
fn tls_with_a_client_certificate_from_flags_or_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().to_path_buf();
    make_certs(&certs);
    let p = |f: &str| -> String { certs.join(f).to_string_lossy().into_owned() };
    let endpoint = "https://127.0.0.1:24101";
    let etcd = Etcd::start(
        tempfile::tempdir().expect("data dir"),
        endpoint,
        24102,
        &[
            "--cert-file".into(),
            p("server.pem"),
            "--key-file".into(),
            p("server-key.pem"),
            "--trusted-ca-file".into(),
            p("ca.pem"),
            "--client-cert-auth".into(),
        ],
    );
    let (ca, cert, key) = (p("ca.pem"), p("client.pem"), p("client-key.pem"));
    let tls = [
        "--etcd-cacert",
        &ca,
        "--etcd-cert",
        &cert,
        "--etcd-key",
        &key,
    ];
    let mut apply: Vec<&str> = tls.to_vec();
    apply.extend(["apply", "-f", "-"]);
    let out = eventually_ok(
        "apply over TLS",
        || kargo(endpoint, &apply, Some(WEB), &[]),
        || etcd.log(),
    );
    assert_eq!(text(&out.stdout), "service/web created\n");

    // The same through environment variables, and with host:port (TLS implies https).
    let env = [
        ("KARGO_ETCD_CACERT", ca.as_str()),
        ("KARGO_ETCD_CERT", cert.as_str()),
        ("KARGO_ETCD_KEY", key.as_str()),
    ];
    let out = kargo("127.0.0.1:24101", &["get", "svc", "-o", "name"], None, &env);
    assert_eq!(expect_code(&out, 0, "get with env vars"), "service/web\n");

    // Without the client certificate, or without TLS at all: refused, exit 2, fast.
    let started = Instant::now();
    let out = kargo(endpoint, &["--etcd-cacert", &ca, "get", "svc"], None, &[]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "no client certificate must fail"
    );
    let out = kargo("127.0.0.1:24101", &["get", "svc"], None, &[]);
    expect_code(&out, 2, "plain HTTP against TLS");
    assert!(started.elapsed() < Duration::from_secs(20));
    let out = kargo(
        endpoint,
        &["--etcd-cacert", "/nonexistent/ca.pem", "get", "svc"],
        None,
        &[],
    );
    expect_code(&out, 2, "unreadable CA file");
    assert!(
        text(&out.stderr).contains("/nonexistent/ca.pem"),
        "{}",
        text(&out.stderr)
    );
    let out = kargo(endpoint, &["--etcd-cert", &cert, "get", "svc"], None, &[]);
    expect_code(&out, 2, "a certificate without its key");
}

fn etcdctl(endpoint: &str, args: &[&str]) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(args)
        .output()
        .expect("etcdctl on the PATH");
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        text(&out.stderr)
    );
}

/// Waits until the etcd at `endpoint` answers (without auth: before it is enabled).
fn wait_started(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoint, "endpoint", "health"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the auth etcd did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn auth_with_user_and_password_and_an_expiring_token() {
    let endpoint = "http://127.0.0.1:24103";
    let _etcd = Etcd::start(
        tempfile::tempdir().expect("data dir"),
        endpoint,
        24104,
        &["--auth-token-ttl".into(), "1".into()],
    );
    wait_started(endpoint);
    etcdctl(endpoint, &["user", "add", "root:s3cret"]);
    etcdctl(endpoint, &["auth", "enable"]);

    let creds = ["--etcd-user", "root", "--etcd-password", "s3cret"];
    let mut apply: Vec<&str> = creds.to_vec();
    apply.extend(["apply", "-f", "-"]);
    let out = kargo(endpoint, &apply, Some(WEB), &[]);
    assert_eq!(
        expect_code(&out, 0, "apply with auth"),
        "service/web created\n"
    );
    let env = [
        ("KARGO_ETCD_USER", "root"),
        ("KARGO_ETCD_PASSWORD", "s3cret"),
    ];
    let out = kargo(endpoint, &["get", "svc", "-o", "name"], None, &env);
    assert_eq!(expect_code(&out, 0, "get with env vars"), "service/web\n");
    let out = kargo(
        endpoint,
        &[
            "--etcd-user",
            "root",
            "--etcd-password",
            "wrong",
            "get",
            "svc",
        ],
        None,
        &[],
    );
    assert_ne!(out.status.code(), Some(0), "a wrong password must fail");
    assert!(!text(&out.stderr).contains("s3cret"));
    let out = kargo(endpoint, &["get", "svc"], None, &[]);
    assert_ne!(out.status.code(), Some(0), "no credentials must fail");

    // A long-running client: its token expires after a second idle; reads, writes and
    // a new watch still work.
    let mut config = EtcdConfig::new(vec![endpoint.to_string()]);
    config.credentials = Some(("root".into(), "s3cret".into()));
    let kv = EtcdKv::connect(&config, "/kargo-test-secure")
        .await
        .expect("connect with auth");
    kv.get("/kargo-test-secure/x").await.expect("first read");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    kv.get("/kargo-test-secure/x")
        .await
        .expect("read after the token expired");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut watch = kv
        .watch("/kargo-test-secure/w/", 0)
        .await
        .expect("watch after expiry");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    kv.put(
        "/kargo-test-secure/w/k",
        b"v".to_vec(),
        Precondition::Any,
        None,
    )
    .await
    .expect("write after the token expired");
    let event = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a watch event");
    assert!(matches!(event, Some(Ok(_))), "{event:?}");
}

#[test]
fn a_role_limited_to_the_installation_prefix_is_enough() {
    let endpoint = "http://127.0.0.1:24105";
    let etcd = Etcd::start(tempfile::tempdir().expect("data dir"), endpoint, 24106, &[]);
    wait_started(endpoint);
    for args in [
        &["user", "add", "root:s3cret"][..],
        &["role", "add", "kargo-limited"],
        &[
            "role",
            "grant-permission",
            "kargo-limited",
            "--prefix=true",
            "readwrite",
            "/kargo-test-limited/",
        ],
        &["user", "add", "limited:pw"],
        &["user", "grant-role", "limited", "kargo-limited"],
        &["auth", "enable"],
    ] {
        etcdctl(endpoint, args);
    }
    let limited = |prefix: &str, args: &[&str], stdin: Option<&str>| {
        let mut all = vec![
            "--etcd-user",
            "limited",
            "--etcd-password",
            "pw",
            "--prefix",
            prefix,
        ];
        all.extend(args);
        kargo(endpoint, &all, stdin, &[])
    };
    let out = limited("/kargo-test-limited", &["apply", "-f", "-"], Some(WEB));
    assert_eq!(
        expect_code(
            &out,
            0,
            &format!("apply inside the role's prefix\netcd log:\n{}", etcd.log())
        ),
        "service/web created\n"
    );
    let out = limited("/kargo-test-limited", &["get", "svc", "-o", "name"], None);
    assert_eq!(
        expect_code(&out, 0, "get inside the role's prefix"),
        "service/web\n"
    );
    // Outside the prefix the role does not reach: refused, with etcd's reason.
    let out = limited("/kargo-test-elsewhere", &["get", "svc"], None);
    assert_ne!(out.status.code(), Some(0), "get outside the role's prefix");
    assert!(
        text(&out.stderr).contains("permission denied"),
        "{}",
        text(&out.stderr)
    );
}
