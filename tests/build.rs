//! `kargo build` against the real engine and the real registry of scripts/setup.sh
//! (distribution on 127.0.0.1:5015, htpasswd user `kargo`). A missing Docker or registry
//! fails the tests; every command is bounded by `timeout`.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

const REGISTRY: &str = "127.0.0.1:5015";
const PASSWORD_FILE: &str = "/var/tmp/kargo-run/registry/password";
/// Seconds any one command of these tests may take.
const BOUND: &str = "180";

fn run(
    program: &str,
    args: &[&str],
    dir: &Path,
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write;
    let mut child = Command::new("timeout")
        .arg(BOUND)
        .arg(program)
        .args(args)
        .current_dir(dir)
        .env("KARGO_ETCD_ENDPOINTS", common::etcd_endpoints().join(","))
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

fn kargo(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    run(env!("CARGO_BIN_EXE_kargo"), args, dir, env, None)
}

fn docker(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let out = run("docker", args, dir, env, None);
    assert_ne!(out.status.code(), Some(124), "docker {args:?} timed out");
    out
}

/// The registry must answer (401 without credentials): fail loudly otherwise.
fn registry_up() {
    let out = Command::new("timeout")
        .args(["10", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{REGISTRY}/v2/"))
        .output()
        .expect("curl");
    assert_eq!(
        common::text(&out.stdout),
        "401",
        "the registry of scripts/setup.sh is not answering on {REGISTRY}"
    );
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Removes local images at the end, even when an assertion failed.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for i in &self.0 {
            let _ = Command::new("timeout")
                .args(["60", "docker", "rmi", "-f", i])
                .output();
        }
    }
}

/// A workspace: two contexts and a manifest file naming the registry with `password_file`.
fn workspace(dir: &Path, name: &str, password_file: &str) -> (String, String) {
    let web = format!("{REGISTRY}/kargo-test-build-{name}-web:1");
    let api = format!("{REGISTRY}/kargo-test-build-{name}-api:1");
    write(
        dir,
        "web/Dockerfile",
        &format!(
            "FROM {}\nARG GREETING=none-{name}\nCOPY app.txt /app/app.txt\nCOPY . /ctx/\nRUN echo \"$GREETING\" > /app/greeting\n",
            common::image("1.0")
        ),
    );
    write(dir, "web/app.txt", "hello from the context\n");
    // Unique per test, so no two tests' builds share an image (one test's cleanup must
    // not remove what another is about to run).
    write(dir, "web/id.txt", name);
    write(dir, "web/secret.txt", "must not be sent\n");
    write(dir, "web/.dockerignore", "secret.txt\n");
    write(
        dir,
        "api/Dockerfile",
        &format!(
            "FROM {}\nRUN echo api > /api && echo {name} > /id\n",
            common::image("1.0")
        ),
    );
    write(
        dir,
        "manifests/services.yaml",
        &format!(
            "apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: main}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: main}}
spec:
  registries:
  - server: {REGISTRY}
    username: kargo
    passwordFrom: {{file: {password_file}}}
  services:
    web: {{buildArgs: {{GREETING: bonjour}}}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: web}}
spec:
  image: {web}
  build: {{context: ../web, args: {{GREETING: hi}}}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: api}}
spec:
  image: {api}
  build: {{context: ../api}}
"
        ),
    );
    (web, api)
}

#[test]
fn build_push_and_pull_back_from_the_registry() {
    registry_up();
    let dir = tempfile::tempdir().expect("dir");
    let name = format!("ok{}", std::process::id());
    let (web, api) = workspace(dir.path(), &name, PASSWORD_FILE);
    let _cleanup = Images(vec![web.clone(), api.clone()]);
    // From another folder: the contexts are relative to the manifest's folder.
    let out = kargo(
        &[
            "build",
            "-f",
            "manifests/services.yaml",
            "--push",
            "--parallel",
            "2",
        ],
        dir.path(),
        &[],
    );
    let stdout = common::expect_code(&out, 0, "kargo build --push");
    let stderr = common::text(&out.stderr);
    // The line protocol: steps per service, then the push with its digest.
    for line in [
        format!("web: Step 1/5 : FROM {}", common::image("1.0")),
        "web: Step 3/5 : COPY app.txt /app/app.txt".to_string(),
        "api: Step 2/2 : RUN echo api > /api".to_string(),
        "web: sent the context".to_string(),
        format!("web: pushed {web}@sha256:"),
        format!("api: pushed {api}@sha256:"),
    ] {
        assert!(stderr.contains(&line), "{line:?} missing from:\n{stderr}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("{web}@sha256:"))),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    // The image holds the copied file, the Environment's build arg, not the ignored file.
    let check = |what: &str| {
        let out = docker(
            &[
                "run",
                "--rm",
                &web,
                "sh",
                "-c",
                "cat /app/app.txt /app/greeting; ls -a /ctx",
            ],
            dir.path(),
            &[],
        );
        let text = common::expect_code(&out, 0, what);
        assert!(text.contains("hello from the context"), "{what}: {text}");
        assert!(
            text.contains("bonjour"),
            "{what}: the Environment's buildArgs win: {text}"
        );
        assert!(
            !text.contains("secret.txt"),
            "{what}: .dockerignore honoured: {text}"
        );
        assert!(
            text.contains("Dockerfile") && text.contains(".dockerignore"),
            "{text}"
        );
    };
    check("run the built image");

    // Removed locally, pulled back from the registry with the same credentials.
    common::expect_code(&docker(&["rmi", "-f", &web], dir.path(), &[]), 0, "rmi");
    let config = dir.path().join("docker-config");
    std::fs::create_dir_all(&config).expect("config dir");
    let env = [("DOCKER_CONFIG", config.to_str().expect("utf-8"))];
    let password = std::fs::read_to_string(PASSWORD_FILE).expect("password file");
    let login = run(
        "docker",
        &["login", REGISTRY, "-u", "kargo", "--password-stdin"],
        dir.path(),
        &env,
        Some(password.trim()),
    );
    common::expect_code(&login, 0, "docker login");
    common::expect_code(&docker(&["pull", &web], dir.path(), &env), 0, "docker pull");
    check("run the image pulled from the registry");
}

#[test]
fn wrong_credentials_fail_naming_the_registry() {
    registry_up();
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("wrong-password");
    std::fs::write(&bad, "not-the-password\n").expect("write");
    let name = format!("bad{}", std::process::id());
    let (web, api) = workspace(dir.path(), &name, bad.to_str().expect("utf-8"));
    let _cleanup = Images(vec![web.clone(), api.clone()]);
    let out = kargo(
        &[
            "build",
            "web",
            "-f",
            "manifests/services.yaml",
            "--push",
            "-q",
        ],
        dir.path(),
        &[],
    );
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "service web: registry {REGISTRY} refused the credentials of user \"kargo\""
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    assert!(!stderr.contains("Step "), "-q silences progress: {stderr}");
}

#[test]
fn a_failing_step_is_named_and_unknown_services_are_usage_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let name = format!("fail{}", std::process::id());
    let (web, api) = workspace(dir.path(), &name, PASSWORD_FILE);
    let _cleanup = Images(vec![web, api]);
    write(
        dir.path(),
        "api/Dockerfile",
        &format!("FROM {}\nRUN exit 3\n", common::image("1.0")),
    );
    let out = kargo(
        &["build", "api", "-f", "manifests/services.yaml"],
        dir.path(),
        &[],
    );
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: service api: Step 2/2 : RUN exit 3: "),
        "{stderr}"
    );
    let out = kargo(
        &["build", "nope", "-f", "manifests/services.yaml"],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out.stderr));
}

#[test]
fn stored_services_build_with_contexts_relative_to_the_working_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let prefix = format!("/kargo-test-build-{}", std::process::id());
    let name = format!("stored{}", std::process::id());
    let (web, api) = workspace(dir.path(), &name, PASSWORD_FILE);
    let _cleanup = Images(vec![web.clone(), api.clone()]);
    let env = [("KARGO_PREFIX", prefix.as_str())];
    let applied = kargo(
        &["apply", "-f", "manifests/services.yaml"],
        dir.path(),
        &env,
    );
    common::expect_code(&applied, 0, "apply");
    // Stored, `../web` is read from the working directory: run from manifests/. It is
    // outside that folder, so it is refused (a stored path is chosen by whoever can write
    // to etcd) until --context-root takes in the parent.
    let out = kargo(&["build", "web"], &dir.path().join("manifests"), &env);
    common::expect_code(&out, 2, "a stored context outside the working directory");
    let stderr = common::text(&out.stderr);
    assert!(
        stderr.contains("is outside") && stderr.contains("--context-root"),
        "{stderr}"
    );
    let out = kargo(
        &["build", "web", "--context-root", ".."],
        &dir.path().join("manifests"),
        &env,
    );
    let stdout = common::expect_code(&out, 0, "kargo build from the store");
    assert_eq!(stdout.trim(), web);
    let out = docker(
        &["run", "--rm", &web, "cat", "/app/greeting"],
        dir.path(),
        &[],
    );
    assert_eq!(common::expect_code(&out, 0, "run").trim(), "bonjour");
    let _ = kargo(
        &["delete", "-f", "manifests/services.yaml", "--force"],
        dir.path(),
        &env,
    );
}

#[test]
fn validate_reports_a_missing_build_context_at_its_line() {
    let dir = tempfile::tempdir().expect("dir");
    workspace(dir.path(), "validate", PASSWORD_FILE);
    let out = kargo(
        &["validate", "-f", "manifests/services.yaml"],
        dir.path(),
        &[],
    );
    common::expect_code(&out, 0, "valid with the contexts present");
    std::fs::remove_dir_all(dir.path().join("api")).expect("rm");
    let out = kargo(
        &["validate", "-f", "manifests/services.yaml"],
        dir.path(),
        &[],
    );
    let stdout = common::text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("manifests/services.yaml:29:20:")
            && stdout.contains("service/api: spec.build.context: the build context")
            && stdout.contains("does not exist"),
        "{stdout}"
    );
}

#[test]
fn a_private_base_image_is_pulled_with_the_environments_credentials() {
    registry_up();
    let dir = tempfile::tempdir().expect("dir");
    let base = format!("{REGISTRY}/kargo-test-build-base{}:1", std::process::id());
    let child = format!("{REGISTRY}/kargo-test-build-child{}:1", std::process::id());
    let _cleanup = Images(vec![base.clone(), child.clone()]);
    // The base image is in the registry only: pushed with docker's own login, then
    // removed locally and the login forgotten.
    let config = dir.path().join("docker-config");
    let cfg = [("DOCKER_CONFIG", config.to_str().expect("utf-8"))];
    let password = std::fs::read_to_string(PASSWORD_FILE).expect("registry password");
    let login = run(
        "docker",
        &["login", "-u", "kargo", "--password-stdin", REGISTRY],
        dir.path(),
        &cfg,
        Some(password.trim_end()),
    );
    assert!(login.status.success(), "{}", common::text(&login.stderr));
    let tag = docker(&["tag", &common::image("1.0"), &base], dir.path(), &cfg);
    assert!(tag.status.success(), "{}", common::text(&tag.stderr));
    let push = docker(&["push", &base], dir.path(), &cfg);
    assert!(push.status.success(), "{}", common::text(&push.stderr));
    let rmi = docker(&["rmi", &base], dir.path(), &cfg);
    assert!(rmi.status.success(), "{}", common::text(&rmi.stderr));
    write(
        dir.path(),
        "child/Dockerfile",
        &format!("FROM {base}\nRUN echo child > /child\n"),
    );
    write(
        dir.path(),
        "services.yaml",
        &format!(
            "apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: main}}
spec:
  registries:
  - server: {REGISTRY}
    username: kargo
    passwordFrom: {{file: {PASSWORD_FILE}}}
---
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: main}}
---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: child}}
spec:
  image: {child}
  build: {{context: child}}
"
        ),
    );
    // With no credentials for the registry the engine cannot pull the base.
    let anonymous = tempfile::tempdir().expect("dir");
    write(
        anonymous.path(),
        "services.yaml",
        &std::fs::read_to_string(dir.path().join("services.yaml"))
            .expect("read")
            .replace(
                &format!("passwordFrom: {{file: {PASSWORD_FILE}}}"),
                "passwordFrom: {env: KARGO_TEST_NO_SUCH_VARIABLE}",
            ),
    );
    std::fs::create_dir_all(anonymous.path().join("child")).expect("mkdir");
    std::fs::copy(
        dir.path().join("child/Dockerfile"),
        anonymous.path().join("child/Dockerfile"),
    )
    .expect("copy");
    let refused = kargo(
        &["build", "child", "-f", "services.yaml", "-q"],
        anonymous.path(),
        &[],
    );
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}",
        common::text(&refused.stderr)
    );
    let out = kargo(
        &["build", "child", "-f", "services.yaml", "--pull"],
        dir.path(),
        &cfg,
    );
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("child: Step 1/2 : FROM {base}")),
        "{stderr}"
    );
    let ran = docker(&["run", "--rm", &child, "cat", "/child"], dir.path(), &cfg);
    assert_eq!(common::text(&ran.stdout).trim(), "child");
}

#[test]
fn on_a_terminal_the_upload_is_a_bar_and_steps_are_lines() {
    let dir = tempfile::tempdir().expect("dir");
    let name = format!("tty{}", std::process::id());
    let (web, api) = workspace(dir.path(), &name, PASSWORD_FILE);
    let _cleanup = Images(vec![web, api]);
    // Several chunks of upload, so the bar is drawn between its start and its end.
    write(dir.path(), "web/big.bin", &"x".repeat(600 * 1024));
    // `script` gives kargo a pseudo-terminal and copies what it drew to stdout.
    let command = format!(
        "{} build web -f manifests/services.yaml",
        env!("CARGO_BIN_EXE_kargo")
    );
    let out = run(
        "script",
        &["-qfec", &command, "/dev/null"],
        dir.path(),
        &[],
        None,
    );
    let screen = common::text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("web: sending the context [....................] 0 B/")
            && screen.contains("web: sending the context [##########.........."),
        "no upload bar in:\n{screen:?}"
    );
    assert!(
        screen.contains("\r\x1b[K"),
        "the bar is not redrawn in place: {screen:?}"
    );
    assert!(
        screen.contains(&format!("web: Step 1/5 : FROM {}", common::image("1.0"))),
        "{screen:?}"
    );
    assert!(screen.contains("web: sent the context (60"), "{screen:?}");
}

#[test]
fn a_second_build_uses_the_cache_unless_no_cache_is_given() {
    let dir = tempfile::tempdir().expect("dir");
    let name = format!("cache{}", std::process::id());
    let (web, api) = workspace(dir.path(), &name, PASSWORD_FILE);
    let _cleanup = Images(vec![web, api]);
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "api", "-f", "manifests/services.yaml"];
        args.extend_from_slice(extra);
        let out = kargo(&args, dir.path(), &[]);
        common::expect_code(&out, 0, "kargo build");
        common::text(&out.stderr)
    };
    build(&[]);
    let cached = build(&[]);
    assert!(cached.contains("---> Using cache"), "{cached}");
    let fresh = build(&["--no-cache"]);
    assert!(!fresh.contains("Using cache"), "{fresh}");
    assert!(
        fresh.contains("api: Step 2/2 : RUN echo api > /api"),
        "{fresh}"
    );
}
