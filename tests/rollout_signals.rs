//! The waits a script relies on (`rollout status`, `apply --wait`) against the real Swarm,
//! racing a real rolling update: they are about the rollout revision current when they
//! start, never an earlier one's Ready or failure, and they show progress.
//!
//! The race is made certain, not left to luck: the controller is frozen (SIGSTOP) while
//! the change is written and the wait starts, as a busy controller would be, then let go.

mod common;

use std::time::{Duration, Instant};

use common::process::ControllerProcess;
use common::{expect_code, kargo, text};
use kargo::swarm::SwarmClient;

/// Each wait's own bound; the whole file stays well under it.
const WAIT: &str = "90s";
/// How long the controller stays frozen while the wait starts.
const FROZEN: Duration = Duration::from_secs(2);

/// A service whose rolling update takes seconds: two replicas, one at a time, a delay.
fn service(name: &str, image: &str, extra_env: &str) -> String {
    format!(
        r#"apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {{name: {name}}}
spec:
  image: {image}
  command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
  env: {{ROLE: web{extra_env}}}
  endpointMode: dnsrr
  deploy:
    replicas: 2
    updateConfig: {{parallelism: 1, delay: 2s, order: stop-first, monitor: 1s}}
---
"#
    )
}

fn stack(name: &str, service: &str) -> String {
    format!(
        "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {{name: {name}}}\nspec:\n  services: [{service}]\n---\n"
    )
}

/// The Configuration `main` and its Environment deploying `stack`, with per-service settings.
fn environment(stack: &str, settings: &str) -> String {
    format!(
        r#"apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec: {{environment: {stack}env, defaults: none}}
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {{name: {stack}env}}
spec:
  stacks: [{stack}]
  services: {{{settings}}}
---
"#
    )
}

struct Installation {
    prefix: &'static str,
    store: kargo::store::Store,
    swarm: SwarmClient,
    controller: ControllerProcess,
}

impl Installation {
    async fn start(prefix: &'static str, port: u16) -> Installation {
        let store = common::etcd_store(prefix).await;
        let swarm = common::swarm().await;
        common::remove_installation(&swarm, prefix).await;
        let endpoints = common::etcd_endpoints().join(",");
        let controller =
            ControllerProcess::start(prefix, port, &endpoints, &["--resync-period", "2s"]);
        Installation {
            prefix,
            store,
            swarm,
            controller,
        }
    }

    fn kargo(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        kargo(self.prefix, args, stdin)
    }

    /// `what` must exit with `code`; the controller's log is shown when it does not.
    fn expect(&self, out: &std::process::Output, code: i32, what: &str) -> String {
        if out.status.code() != Some(code) {
            eprintln!("controller log:\n{}", self.controller.log());
        }
        expect_code(out, code, what)
    }

    /// Runs `change` with the controller frozen, starts `wait` at once, lets the
    /// controller go after [`FROZEN`]; returns the wait's output and how long it took.
    fn race(
        &self,
        change: &[&str],
        change_stdin: Option<&str>,
        wait: &[&str],
    ) -> (std::process::Output, Duration) {
        self.controller.signal("STOP");
        let out = self.kargo(change, change_stdin);
        if !out.status.success() {
            self.controller.signal("CONT");
        }
        self.expect(&out, 0, "the change");
        let prefix = self.prefix;
        let args: Vec<String> = wait.iter().map(|s| s.to_string()).collect();
        let waiter = std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let started = Instant::now();
            let out = kargo(prefix, &args, None);
            (out, started.elapsed())
        });
        std::thread::sleep(FROZEN);
        self.controller.signal("CONT");
        match waiter.join() {
            Ok(r) => r,
            Err(_) => panic!("the waiting thread panicked"),
        }
    }

    /// The Swarm service's tasks that should be running, with the image and ForceUpdate
    /// each runs, and the service's own.
    async fn tasks(&self, swarm_name: &str) -> (Vec<(String, String, u64)>, (String, u64)) {
        let live = self
            .swarm
            .inspect_service(swarm_name)
            .await
            .expect("inspect")
            .expect("the Swarm service exists");
        let of = |spec: &serde_json::Value| {
            (
                spec.pointer("/ContainerSpec/Image")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .split('@')
                    .next()
                    .unwrap_or("")
                    .to_string(),
                spec.get("ForceUpdate")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0),
            )
        };
        let wanted = of(live
            .spec
            .get("TaskTemplate")
            .unwrap_or(&serde_json::Value::Null));
        let tasks = self
            .swarm
            .tasks(&live.id)
            .await
            .expect("tasks")
            .into_iter()
            .filter(|t| t.desired_state == "running")
            .map(|t| {
                let (image, force) = of(&t.spec);
                (t.state, image, force)
            })
            .collect();
        (tasks, wanted)
    }

    /// Asserts that both replicas run the service's current spec (image and ForceUpdate).
    async fn assert_rolled_out(&self, swarm_name: &str, image: &str, what: &str) {
        let (tasks, wanted) = self.tasks(swarm_name).await;
        assert_eq!(wanted.0, image, "{what}: the Swarm service's image");
        let current = tasks
            .iter()
            .filter(|(state, img, force)| {
                state == "running" && *img == wanted.0 && *force == wanted.1
            })
            .count();
        assert!(
            current == 2 && tasks.len() == 2,
            "{what}: the wait ended while tasks still ran an older spec: {tasks:?} (want {wanted:?})"
        );
    }

    async fn finish(self) {
        let Installation {
            prefix,
            store,
            swarm,
            controller,
        } = self;
        drop(controller);
        common::remove_installation(&swarm, prefix).await;
        common::wipe_prefix(&store).await;
    }
}

#[tokio::test]
async fn rollout_status_after_a_restart_waits_for_the_new_tasks_and_shows_progress() {
    let i = Installation::start("/kargo-test-signals-restart", 19611).await;
    let manifest = format!(
        "{}{}",
        stack("sigrst", "sigrstweb"),
        service("sigrstweb", &common::image("1.0"), "")
    );
    let out = i.kargo(
        &["apply", "-f", "-", "--wait", "--timeout", WAIT],
        Some(&manifest),
    );
    i.expect(&out, 0, "apply --wait");

    let (out, took) = i.race(
        &["rollout", "restart", "service", "sigrstweb"],
        None,
        &[
            "rollout",
            "status",
            "service",
            "sigrstweb",
            "--timeout",
            WAIT,
        ],
    );
    let shown = i.expect(&out, 0, "rollout status after a restart");
    assert!(
        took >= FROZEN,
        "rollout status answered in {took:?}, before the controller had even seen the restart: {shown}"
    );
    assert_eq!(
        shown,
        "service \"sigrstweb\" successfully rolled out (revision 2)\n"
    );
    i.assert_rolled_out("kargo-sigrst_sigrstweb", &common::image("1.0"), "restart")
        .await;
    // Not on a terminal: one line per change, each naming the revision and the tasks.
    let progress = text(&out.stderr);
    assert!(
        progress.contains("service/sigrstweb (revision 2): ") && progress.contains("/2 tasks"),
        "{progress}"
    );
    assert!(
        progress
            .lines()
            .filter(|l| l.starts_with("service/sigrstweb (revision 2)"))
            .count()
            >= 2,
        "a line per change: {progress}"
    );

    // -q: nothing but the exit code.
    let (out, _) = i.race(
        &["rollout", "restart", "stack", "sigrst"],
        None,
        &[
            "rollout",
            "status",
            "stack",
            "sigrst",
            "-q",
            "--timeout",
            WAIT,
        ],
    );
    assert_eq!(i.expect(&out, 0, "rollout status -q"), "");
    assert_eq!(text(&out.stderr), "");
    i.assert_rolled_out(
        "kargo-sigrst_sigrstweb",
        &common::image("1.0"),
        "restart -q",
    )
    .await;

    // The history numbers are the rollout revisions (each restart is one).
    let table = i.expect(
        &i.kargo(&["rollout", "history", "stack", "sigrst"], None),
        0,
        "history",
    );
    let revisions: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2", "3"], "{table}");
    assert!(
        table.lines().last().is_some_and(|l| l.ends_with('*')),
        "{table}"
    );
    i.finish().await;
}

#[tokio::test]
async fn a_fix_is_not_judged_by_the_failure_before_it() {
    let i = Installation::start("/kargo-test-signals-fix", 19612).await;
    let base = format!(
        "{}{}",
        stack("sigfix", "sigfixweb"),
        service("sigfixweb", &common::image("1.0"), "")
    );
    let image = common::image("1.0");
    let (name, _) = image.split_once(':').unwrap_or((&image, ""));
    let env = |tag: &str| {
        environment(
            "sigfix",
            &format!("sigfixweb: {{image: {name}, tag: \"{tag}\"}}"),
        )
    };
    let out = i.kargo(
        &["apply", "-f", "-", "--wait", "--timeout", WAIT],
        Some(&format!("{}{base}", env("1.0"))),
    );
    i.expect(&out, 0, "apply --wait");

    // A tag that does not exist: the rollout of that revision fails, with the cause.
    i.expect(
        &i.kargo(&["apply", "-f", "-"], Some(&env("9.9"))),
        0,
        "apply 9.9",
    );
    let out = i.kargo(
        &[
            "rollout",
            "status",
            "service",
            "sigfixweb",
            "--timeout",
            WAIT,
        ],
        None,
    );
    i.expect(&out, 1, "rollout status of a missing image");
    let failure = text(&out.stderr);
    assert!(
        failure.contains("rollout failed") && failure.contains("9.9"),
        "{failure}"
    );

    // The fix comes through the Environment (the Service's generation does not move):
    // the wait is for the fixed revision, not the failure still in the status.
    let (out, took) = i.race(
        &["apply", "-f", "-"],
        Some(&env("1.1")),
        &[
            "rollout",
            "status",
            "service",
            "sigfixweb",
            "--timeout",
            WAIT,
        ],
    );
    let shown = i.expect(&out, 0, "rollout status after the fix");
    assert!(took >= FROZEN, "answered in {took:?}: {shown}");
    assert!(
        !text(&out.stderr).contains("rollout failed"),
        "{}",
        text(&out.stderr)
    );
    i.assert_rolled_out("kargo-sigfix_sigfixweb", &common::image("1.1"), "fix")
        .await;
    i.finish().await;
}

#[tokio::test]
async fn apply_wait_and_undo_wait_for_the_rolling_update_they_asked_for() {
    let i = Installation::start("/kargo-test-signals-apply", 19613).await;
    let base = format!(
        "{}{}",
        stack("sigapw", "sigapwweb"),
        service("sigapwweb", &common::image("1.0"), "")
    );
    let out = i.kargo(
        &["apply", "-f", "-", "--wait", "--timeout", WAIT],
        Some(&format!("{}{base}", environment("sigapw", ""))),
    );
    i.expect(&out, 0, "apply --wait");

    // Only the Environment changes: it is Ready at once, the update takes seconds.
    let image = common::image("1.1");
    let (name, tag) = image.split_once(':').unwrap_or((&image, ""));
    let env = environment(
        "sigapw",
        &format!("sigapwweb: {{image: {name}, tag: \"{tag}\"}}"),
    );
    let started = Instant::now();
    let out = i.kargo(
        &["apply", "-f", "-", "--wait", "--timeout", WAIT],
        Some(&env),
    );
    i.expect(&out, 0, "apply --wait of the Environment");
    let took = started.elapsed();
    let said = text(&out.stderr);
    assert!(
        took >= Duration::from_secs(2),
        "apply --wait returned in {took:?}, before a 2-replica update with a 2 s delay could finish: {said}"
    );
    i.assert_rolled_out("kargo-sigapw_sigapwweb", &image, "apply --wait")
        .await;
    assert!(
        said.contains("stack/sigapw (revision 2)")
            && said.contains("all applied objects are Ready"),
        "{said}"
    );

    // A spec change, then undo: the wait is for the undo's revision.
    let changed = format!(
        "{}{}",
        stack("sigapw", "sigapwweb"),
        service("sigapwweb", &common::image("1.0"), ", EXTRA: \"1\"")
    );
    let out = i.kargo(
        &["apply", "-f", "-", "--wait", "-q", "--timeout", WAIT],
        Some(&changed),
    );
    i.expect(&out, 0, "apply --wait -q");
    assert!(
        !text(&out.stderr).contains("revision"),
        "{}",
        text(&out.stderr)
    );
    let (out, _) = i.race(
        &["rollout", "undo", "service", "sigapwweb"],
        None,
        &["rollout", "status", "stack", "sigapw", "--timeout", WAIT],
    );
    let shown = i.expect(&out, 0, "rollout status after undo");
    assert_eq!(
        shown,
        "stack \"sigapw\" successfully rolled out (revision 4)\n"
    );
    let spec = i
        .swarm
        .inspect_service("kargo-sigapw_sigapwweb")
        .await
        .expect("inspect")
        .expect("exists")
        .spec;
    let env_list = spec
        .pointer("/TaskTemplate/ContainerSpec/Env")
        .cloned()
        .unwrap_or_default();
    assert!(!env_list.to_string().contains("EXTRA"), "{env_list}");
    i.assert_rolled_out("kargo-sigapw_sigapwweb", &image, "undo")
        .await;

    // History lists revisions 1..4 (3 and 4 differ by EXTRA) and --to-revision takes them.
    let table = i.expect(
        &i.kargo(&["rollout", "history", "service", "sigapwweb"], None),
        0,
        "history",
    );
    let revisions: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2", "3", "4"], "{table}");
    let out = i.kargo(
        &[
            "rollout",
            "undo",
            "stack",
            "sigapw",
            "--to-revision",
            "3",
            "--dry-run",
        ],
        None,
    );
    assert!(
        i.expect(&out, 0, "undo --to-revision 3 --dry-run")
            .contains("would be rolled back to revision 3"),
        "{}",
        text(&out.stdout)
    );
    i.finish().await;
}
