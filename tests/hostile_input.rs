//! Hostile input through the real binary: the interpolation bomb, a quantity past 64 bits,
//! endless files, symlink loops and zero periods each get a clear error (or are walked
//! safely) in bounded time, never an abort, a hang or a panic.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{etcd_endpoints, etcd_store, kargo, text};
use kargo::api::Kind;

/// Runs kargo with `args` (etcd at `endpoints`) and `stdin`, killing it if it is still
/// running after `limit`: a hang fails the test instead of wedging it. Output is read while
/// it runs, and kargo may stop reading its input early (a broken pipe here is no error).
fn kargo_within(args: &[&str], endpoints: &str, stdin: &[u8], limit: Duration) -> Output {
    use std::io::{Read, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(args)
        .env("KARGO_ETCD_ENDPOINTS", endpoints)
        .env("KARGO_PREFIX", "hostile-input-offline")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kargo");
    let input = stdin.to_vec();
    let mut pipe = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let drain = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = from.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll kargo") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    let out = Output {
        status: status.unwrap_or_else(|| child.wait().expect("wait")),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    assert!(
        status.is_some(),
        "kargo {args:?} still running after {limit:?}\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// [`kargo_within`] with no etcd at all (nothing listens on port 1).
fn offline(args: &[&str]) -> Output {
    kargo_within(args, "127.0.0.1:1", b"", Duration::from_secs(10))
}

fn all_output(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// The Environment of the "1 KB manifest exhausts memory" report: `V0` of 16 bytes and
/// each next variable twice the one before, 40 times.
fn bomb() -> String {
    let mut text = String::from(
        "apiVersion: kargo.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: bomb\nspec:\n  stacks: [s]\n  variables:\n    V0: xxxxxxxxxxxxxxxx\n",
    );
    for i in 1..=40 {
        text.push_str(&format!("    V{i}: \"${{V{}}}${{V{}}}\"\n", i - 1, i - 1));
    }
    text
}

/// A workspace (Configuration, Environment with `variables`, a Stack, a Service using
/// `${TWICE}`) for render to work on offline.
fn workspace(variables: &str) -> String {
    format!(
        "apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: e}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: e}}
spec:
  stacks: [s]
  variables:
{variables}
---
apiVersion: kargo.dev/v1alpha1
kind: Stack
metadata: {{name: s}}
spec: {{services: [web]}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: web}}
spec:
  image: busybox
  env: {{BIG: \"${{TWICE}}\"}}
"
    )
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[test]
fn the_interpolation_bomb_is_invalid_and_render_reports_it_instead_of_aborting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "bomb.yaml", &bomb());
    let started = Instant::now();
    let out = offline(&["validate", "-f", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("bomb.yaml:23:10: environment/bomb: spec.variables.V15: the value would be more than 500 KB (512000 bytes) once ${V14} is substituted"),
        "{shown}"
    );
    let out = offline(&["render", "-f", &file]);
    // An exit code (not a signal): render reports the bound instead of aborting.
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        text(&out.stderr).contains("spec.variables.V15") && text(&out.stderr).contains("500 KB"),
        "{}",
        all_output(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn apply_refuses_the_bomb_and_writes_nothing() {
    let prefix = "hostile-input-apply-bomb";
    let store = etcd_store(prefix).await;
    let out = kargo(prefix, &["apply", "-f", "-"], Some(&bomb()));
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        text(&out.stderr).contains("spec.variables.V15") && text(&out.stderr).contains("500 KB"),
        "{}",
        all_output(&out)
    );
    let stored = store.get(Kind::Environment, "bomb").await.expect("get");
    assert!(stored.is_none(), "the bomb was written");
}

#[test]
fn a_variable_just_under_the_bound_still_renders() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 2 × 200 KiB: under the 500 KB of one value.
    let variables = format!(
        "    BIG: {}\n    TWICE: \"${{BIG}}${{BIG}}\"\n",
        "b".repeat(200 * 1024)
    );
    let file = write(dir.path(), "big.yaml", &workspace(&variables));
    let out = offline(&["validate", "-f", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let out = offline(&["render", "-f", &file, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let rendered: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let env = &rendered["stacks"][0]["services"][0]["merged"]["env"]["BIG"];
    assert_eq!(env.as_str().map(str::len), Some(400 * 1024));
}

#[test]
fn a_memory_size_past_64_bits_is_invalid_not_no_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "web.yaml",
        "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata:\n  name: web\nspec:\n  image: busybox\n  deploy:\n    resources:\n      limits:\n        memory: \"309485009821345068724781056T\"\n",
    );
    let out = offline(&["validate", "-f", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        text(&out.stdout).contains("web.yaml:10:17: service/web: spec.deploy.resources.limits.memory: memory size \"309485009821345068724781056T\" is too large: at most 8388607T"),
        "{}",
        all_output(&out)
    );
}

#[tokio::test]
async fn apply_of_dev_zero_stops_at_8_mib_and_writes_nothing() {
    let prefix = "hostile-input-dev-zero";
    let store = etcd_store(prefix).await;
    let started = Instant::now();
    let out = kargo_within(
        &["--prefix", prefix, "apply", "-f", "/dev/zero"],
        &etcd_endpoints().join(","),
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(
        text(&out.stderr)
            .contains("/dev/zero: the file is larger than 8 MiB: the limit is 8388608 bytes"),
        "{}",
        all_output(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let (entries, _) = store
        .kv()
        .range(&format!("{prefix}/"))
        .await
        .expect("range");
    assert!(entries.is_empty(), "apply wrote {} keys", entries.len());

    // validate says the same of it, and of endless stdin.
    let out = offline(&["validate", "-f", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(text(&out.stdout).contains("larger than 8 MiB"));
    let huge = vec![b'#'; 9 * 1024 * 1024];
    let out = kargo_within(
        &["validate", "-f", "-"],
        "127.0.0.1:1",
        &huge,
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(
        text(&out.stdout).contains("-:1:1: cannot read: the input is larger than 8 MiB"),
        "{}",
        all_output(&out)
    );
}

#[test]
fn validate_recursive_walks_a_symlink_loop_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("apps/more")).expect("mkdir");
    write(
        &root.join("apps"),
        "stack.yaml",
        "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: s}\nspec: {services: [redis]}\n",
    );
    std::os::unix::fs::symlink("..", root.join("apps/more/up")).expect("symlink");
    std::os::unix::fs::symlink(root, root.join("apps/more/top")).expect("symlink");
    let out = offline(&[
        "validate",
        "-R",
        "-f",
        &root.display().to_string(),
        "--summary",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(
        text(&out.stdout).contains("1 document in 1 file: 1 valid"),
        "{}",
        all_output(&out)
    );
}

#[test]
fn zero_periods_are_usage_errors() {
    for flag in ["--resync-period", "--lease-ttl"] {
        let out = offline(&["controller", flag, "0s"]);
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", all_output(&out));
        assert!(
            text(&out.stderr).contains("must be greater than 0"),
            "{flag}: {}",
            all_output(&out)
        );
    }
}

#[tokio::test]
async fn wait_with_a_zero_timeout_checks_once() {
    let prefix = "hostile-input-wait-zero";
    let _store = etcd_store(prefix).await;
    let stack = "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: never}\nspec: {services: [redis]}\n";
    let out = kargo(prefix, &["apply", "-f", "-"], Some(stack));
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let started = Instant::now();
    // No controller runs: the Stack is not Ready, and one look says so.
    let out = kargo(prefix, &["wait", "stack/never", "--timeout", "0"], None);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        text(&out.stderr).contains("timed out after 0s"),
        "{}",
        all_output(&out)
    );
    // What already holds is met at once.
    let out = kargo(
        prefix,
        &["wait", "stack/gone", "--for=delete", "--timeout", "0"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(started.elapsed() < Duration::from_secs(5));
}
