//! kargo on a real three-node Swarm: `scripts/multinode.sh` starts three more dockerd,
//! each in its own network namespace, beside the machine's main one (which the rest of the
//! suite uses and this binary never touches). Only this binary starts that Swarm, and its
//! drop guard takes it down again, also when a scenario fails.
//!
//! The scenarios share one Swarm and run one after the other (they drain and kill nodes),
//! each under its own etcd prefix; every failure is collected and reported at the end.
//! Not covered, because this kernel has no IPVS: VIP endpoint mode and the ingress routing
//! mesh (services here use `endpointMode: dnsrr`).

mod common;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use futures::FutureExt;
use kargo::api::{CommonStatus, Kind};
use kargo::store::Store;
use kargo::swarm::{DockerConfig, SwarmClient};

use common::process::{ControllerProcess, eventually};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/multinode.sh");
const NODES: [&str; 3] = ["kmn1", "kmn2", "kmn3"];

/// The three-node Swarm; dropping it takes the Swarm down.
struct Cluster {
    hosts: Vec<String>,
}

fn script(args: &[&str]) -> Output {
    Command::new(SCRIPT)
        .args(args)
        .output()
        .expect("run scripts/multinode.sh")
}

fn script_ok(args: &[&str]) -> String {
    let out = script(args);
    assert!(
        out.status.success(),
        "scripts/multinode.sh {} failed:\n{}{}",
        args.join(" "),
        common::text(&out.stdout),
        common::text(&out.stderr)
    );
    common::text(&out.stdout)
}

impl Cluster {
    /// A fresh Swarm (whatever an earlier run left is removed first).
    fn up() -> Self {
        script_ok(&["down"]);
        script_ok(&["up"]);
        let hosts = script_ok(&["hosts"])
            .trim()
            .split(',')
            .map(str::to_string)
            .collect();
        Cluster { hosts }
    }

    /// The Docker socket of node `n` (1-based).
    fn host(&self, n: usize) -> &str {
        &self.hosts[n - 1]
    }

    /// A client given every node as an endpoint.
    async fn client(&self) -> SwarmClient {
        SwarmClient::connect_with(&DockerConfig {
            hosts: self.hosts.clone(),
            tls: None,
        })
        .await
        .expect("connect to the three-node Swarm")
    }

    /// Runs the docker CLI on node `n`; panics unless it succeeds.
    fn docker(&self, n: usize, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .args(["30", "docker", "-H", self.host(n)])
            .args(args)
            .output()
            .expect("docker CLI");
        assert!(
            out.status.success(),
            "docker -H {} {}: {}",
            self.host(n),
            args.join(" "),
            common::text(&out.stderr)
        );
        common::text(&out.stdout)
    }

    /// The labels of a node, as a manager that answers sees them.
    async fn node_labels(&self, swarm: &SwarmClient, hostname: &str) -> BTreeMap<String, String> {
        swarm
            .nodes()
            .await
            .expect("nodes")
            .into_iter()
            .find(|n| n.hostname == hostname)
            .map(|n| n.labels)
            .unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = script(&["down"]);
        if !out.status.success() {
            eprintln!(
                "scripts/multinode.sh down failed: {}",
                common::text(&out.stderr)
            );
        }
    }
}

/// The running tasks of a Swarm service, by node hostname.
async fn tasks_by_node(swarm: &SwarmClient, service: &str) -> BTreeMap<String, usize> {
    let names = swarm.node_names().await.expect("node names");
    let Some(live) = swarm.inspect_service(service).await.expect("inspect") else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for t in swarm.tasks(&live.id).await.expect("tasks") {
        if t.desired_state == "running" && t.state == "running" {
            let node = t.node_id.and_then(|id| names.get(&id).cloned());
            *out.entry(node.unwrap_or_default()).or_default() += 1;
        }
    }
    out
}

async fn apply(store: &Store, yaml: &str) {
    for o in common::objects(yaml) {
        store.apply(&o).await.expect("apply");
    }
}

/// The common status of an object, once it has one.
async fn status(store: &Store, kind: Kind, name: &str) -> Option<CommonStatus> {
    let o = store.get(kind, name).await.ok()??;
    serde_json::from_value(o.status?).ok()
}

/// Ready, for the object's current generation.
async fn is_ready(store: &Store, kind: Kind, name: &str) -> bool {
    let Ok(Some(o)) = store.get(kind, name).await else {
        return false;
    };
    let st: Option<CommonStatus> = o.status.and_then(|s| serde_json::from_value(s).ok());
    st.is_some_and(|s| s.is_ready() && s.observed_generation == o.metadata.generation)
}

/// What a test service runs unless told otherwise: it idles and stops at once.
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// The Configuration, the Environment (with `nodes`) and one Stack of `services`:
/// (name, extra spec lines); a service named `server` answers on port 8080.
fn installation(env_nodes: &str, stack: &str, services: &[(&str, &str)]) -> String {
    let image = common::image("1.0");
    let names: Vec<&str> = services.iter().map(|(n, _)| *n).collect();
    let mut yaml = format!(
        "apiVersion: kargo.dev/v1alpha1\nkind: Configuration\nmetadata: {{name: main}}\nspec: {{environment: mn, defaults: none}}\n---\napiVersion: kargo.dev/v1alpha1\nkind: Environment\nmetadata: {{name: mn}}\nspec:\n  stacks: [{stack}]\n  nodes:{env_nodes}\n---\napiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {{name: {stack}}}\nspec: {{services: [{}]}}\n",
        names.join(", ")
    );
    for (name, extra) in services {
        let command = if *name == "server" {
            "while true; do echo hello-from-$$(hostname) | nc -l -p 8080; done"
        } else {
            IDLE
        };
        yaml.push_str(&format!(
            "---\napiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  image: \"{image}\"\n  command: [\"sh\", \"-c\", {command:?}]\n  endpointMode: dnsrr\n  stopGracePeriod: 1s\n{extra}\n"
        ));
    }
    yaml
}

/// Node labels set, changed and removed from the Environment (a hand-set one survives);
/// constraints, spread preferences, max replicas per node and a global service across the
/// three nodes; a service that cannot be placed says why.
async fn placement_and_node_labels(c: &Cluster) {
    const PREFIX: &str = "/kargo-test-mn-place";
    let store = common::etcd_store(PREFIX).await;
    let swarm = c.client().await;
    c.docker(
        1,
        &["node", "update", "--label-add", "handmade=yes", "kmn2"],
    );
    let services = [
        (
            "pinned",
            "  deploy: {replicas: 2, placement: {constraints: [\"node.labels.tier==db\"]}}",
        ),
        (
            "spread",
            "  deploy: {replicas: 4, placement: {preferences: [{spread: node.labels.zone}]}}",
        ),
        (
            "capped",
            "  deploy: {replicas: 3, placement: {maxReplicasPerNode: 1}}",
        ),
        ("everywhere", "  deploy: {mode: global}"),
    ];
    let nodes = "\n    kmn1: {labels: {zone: a}}\n    kmn2: {labels: {zone: a, tier: db}}\n    kmn3: {labels: {zone: b}}";
    apply(&store, &installation(nodes, "place", &services)).await;
    let ctl = common::controller(&store, swarm.clone());
    common::converge(&ctl, Duration::from_secs(90)).await;

    let kmn2 = c.node_labels(&swarm, "kmn2").await;
    assert_eq!(kmn2.get("tier").map(String::as_str), Some("db"));
    assert_eq!(kmn2.get("zone").map(String::as_str), Some("a"));
    assert_eq!(kmn2.get("handmade").map(String::as_str), Some("yes"));
    assert_eq!(
        tasks_by_node(&swarm, "kargo-place_pinned").await,
        BTreeMap::from([("kmn2".to_string(), 2)]),
        "the constrained service runs only where tier=db"
    );
    let spread = tasks_by_node(&swarm, "kargo-place_spread").await;
    assert_eq!(
        spread.get("kmn3"),
        Some(&2),
        "spread over zones: half the tasks in zone b (kmn3 alone): {spread:?}"
    );
    let capped = tasks_by_node(&swarm, "kargo-place_capped").await;
    assert_eq!(capped.len(), 3, "one task per node: {capped:?}");
    assert!(capped.values().all(|n| *n == 1), "{capped:?}");
    let global = tasks_by_node(&swarm, "kargo-place_everywhere").await;
    assert_eq!(
        global.keys().map(String::as_str).collect::<Vec<_>>(),
        NODES.to_vec()
    );
    assert!(is_ready(&store, Kind::Service, "everywhere").await);

    // Labels changed and removed: kmn2 loses tier (its hand-set label stays), kmn3's zone
    // changes, kmn1 is no longer named and loses what kargo set there.
    let nodes = "\n    kmn2: {labels: {zone: a}}\n    kmn3: {labels: {zone: c}}";
    apply(&store, &installation(nodes, "place", &services)).await;
    ctl.pass().await.expect("pass");
    let kmn2 = c.node_labels(&swarm, "kmn2").await;
    assert_eq!(kmn2.get("tier"), None, "{kmn2:?}");
    assert_eq!(kmn2.get("handmade").map(String::as_str), Some("yes"));
    let kmn3 = c.node_labels(&swarm, "kmn3").await;
    assert_eq!(kmn3.get("zone").map(String::as_str), Some("c"));
    let kmn1 = c.node_labels(&swarm, "kmn1").await;
    assert!(kmn1.is_empty(), "kmn1 keeps no label kargo set: {kmn1:?}");

    // Four tasks at most one per node on three nodes: not Ready, and the status says why.
    let services = [(
        "capped",
        "  deploy: {replicas: 4, placement: {maxReplicasPerNode: 1}}",
    )];
    apply(&store, &installation(nodes, "place", &services)).await;
    let message = eventually(Duration::from_secs(30), "capped says why", async || {
        let _ = ctl.pass().await;
        let st = status(&store, Kind::Service, "capped").await?;
        let ready = st.condition("Ready")?;
        (ready.message.contains("no suitable node")).then(|| ready.message.clone())
    })
    .await;
    assert!(
        !is_ready(&store, Kind::Service, "capped").await,
        "{message}"
    );

    common::wipe_prefix(&store).await;
    common::remove_installation(&swarm, PREFIX).await;
    c.docker(1, &["node", "update", "--label-rm", "handmade", "kmn2"]);
}

/// A drained node's tasks move away and a global service stays Ready; reactivated, the
/// global service is back on all three nodes. A worker's dockerd killed: the service
/// pinned to it says it cannot be placed; started again, it is Ready again.
async fn drain_and_node_loss(c: &Cluster) {
    const PREFIX: &str = "/kargo-test-mn-drain";
    let store = common::etcd_store(PREFIX).await;
    let swarm = c.client().await;
    let services = [
        ("global", "  deploy: {mode: global}"),
        ("many", "  deploy: {replicas: 3}"),
        (
            "onkmn3",
            "  deploy: {placement: {constraints: [\"node.hostname==kmn3\"]}}",
        ),
    ];
    apply(&store, &installation(" {}", "drain", &services)).await;
    let ctl = common::controller(&store, swarm.clone());
    common::converge(&ctl, Duration::from_secs(60)).await;

    c.docker(1, &["node", "update", "--availability", "drain", "kmn2"]);
    eventually(Duration::from_secs(30), "tasks off kmn2", async || {
        let many = tasks_by_node(&swarm, "kargo-drain_many").await;
        let global = tasks_by_node(&swarm, "kargo-drain_global").await;
        (!many.contains_key("kmn2")
            && many.values().sum::<usize>() == 3
            && !global.contains_key("kmn2"))
        .then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "global Ready on 2 nodes",
        async || {
            let _ = ctl.pass().await;
            is_ready(&store, Kind::Service, "global")
                .await
                .then_some(())
        },
    )
    .await;
    c.docker(1, &["node", "update", "--availability", "active", "kmn2"]);
    eventually(Duration::from_secs(30), "global back on kmn2", async || {
        let global = tasks_by_node(&swarm, "kargo-drain_global").await;
        (global.len() == 3).then_some(())
    })
    .await;

    // A worker's dockerd dies: Swarm sees the node down and cannot place onkmn3 anywhere.
    script_ok(&["kill-node", "3"]);
    let why = eventually(
        Duration::from_secs(60),
        "onkmn3 not Ready, naming kmn3",
        async || {
            let _ = ctl.pass().await;
            let st = status(&store, Kind::Service, "onkmn3").await?;
            let ready = st.condition("Ready")?;
            (ready.status == kargo::api::ConditionStatus::False
                && ready.message.contains("no suitable node")
                && ready.message.contains("kmn3 is "))
            .then(|| ready.message.clone())
        },
    )
    .await;
    eprintln!("onkmn3 while kmn3 is down: {why}");
    assert!(
        why.contains("kmn3 is down"),
        "the status names the node: {why}"
    );
    // `kargo ps` shows each task's node and that node's state.
    let hosts = c.hosts.join(",");
    let ps = common::kargo_with_env(
        PREFIX,
        &["ps", "service", "onkmn3", "--all"],
        None,
        &[("KARGO_DOCKER_HOSTS", hosts.as_str())],
    );
    let table = common::expect_code(&ps, 0, "kargo ps");
    assert!(
        table.contains("NODE STATE")
            && table
                .lines()
                .any(|l| l.contains("kmn3") && l.contains("down")),
        "{table}"
    );
    script_ok(&["start-node", "3"]);
    eventually(Duration::from_secs(60), "onkmn3 Ready again", async || {
        let _ = ctl.pass().await;
        is_ready(&store, Kind::Service, "onkmn3")
            .await
            .then_some(())
    })
    .await;

    common::wipe_prefix(&store).await;
    common::remove_installation(&swarm, PREFIX).await;
}

/// Two services on different nodes talk over kargo's overlay network by service name
/// (dnsrr) and by `tasks.<name>`.
async fn overlay_across_nodes(c: &Cluster) {
    const PREFIX: &str = "/kargo-test-mn-net";
    let store = common::etcd_store(PREFIX).await;
    let swarm = c.client().await;
    let services = [
        (
            "server",
            "  networks: [back]\n  deploy: {placement: {constraints: [\"node.hostname==kmn3\"]}}",
        ),
        (
            "client",
            "  networks: [back]\n  deploy: {placement: {constraints: [\"node.hostname==kmn2\"]}}",
        ),
    ];
    let yaml = installation(" {}", "net", &services);
    apply(&store, &yaml).await;
    let ctl = common::controller(&store, swarm.clone());
    common::converge(&ctl, Duration::from_secs(60)).await;
    let container = c.docker(2, &["ps", "-q", "--filter", "name=kargo-net_client"]);
    let container = container.trim().to_string();
    assert!(!container.is_empty(), "the client runs on kmn2");
    for target in ["server", "tasks.server"] {
        let answer = eventually(
            Duration::from_secs(20),
            &format!("an answer from {target}"),
            async || {
                let out = Command::new("docker")
                    .args(["-H", c.host(2), "exec", &container])
                    .args(["nc", "-w", "3", target, "8080"])
                    .output()
                    .ok()?;
                let text = common::text(&out.stdout);
                text.starts_with("hello-from-").then_some(text)
            },
        )
        .await;
        assert!(answer.starts_with("hello-from-"), "{answer}");
    }
    common::wipe_prefix(&store).await;
    common::remove_installation(&swarm, PREFIX).await;
}

/// TLS endpoints (`tcp://` with `ca.pem`, `cert.pem`, `key.pem`): the first given is a
/// worker ("not a swarm manager"), so the client moves to the manager and reads the Swarm
/// there. The nodes' addresses are reachable only inside their network namespaces, so the
/// client runs on a thread that has entered node 1's.
async fn tls_endpoints(_c: &Cluster) {
    let out = script_ok(&["tls"]);
    let mut lines = out.lines();
    let cert_dir = lines.next().expect("the TLS directory").to_string();
    let tls_hosts: Vec<String> = lines
        .next()
        .expect("the TLS endpoints")
        .split(',')
        .map(str::to_string)
        .collect();
    let (worker, manager) = (tls_hosts[1].clone(), tls_hosts[0].clone());
    let seen = std::thread::spawn(move || {
        let ns = std::fs::File::open("/run/netns/kmn1").expect("node 1's network namespace");
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd changes only this thread's network namespace.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let config = DockerConfig {
                hosts: vec![worker, manager],
                tls: Some(cert_dir.into()),
            };
            let swarm = SwarmClient::connect_with(&config)
                .await
                .expect("connect over TLS");
            let names = swarm.node_names().await.expect("nodes over TLS");
            (names.len(), swarm.endpoint(), swarm.endpoint_switches())
        })
    })
    .join()
    .expect("the TLS thread");
    assert_eq!(seen.0, 3, "three nodes seen over TLS");
    assert_eq!(seen.1, tls_hosts[0], "moved from the worker to the manager");
    assert_eq!(seen.2, 1);
}

/// Three managers; the controller is given all three. The one it uses is killed: it
/// moves to the next, says so (metric, event), and the next change lands. Two of three
/// down: no quorum, the Stack says the Swarm has no leader; a manager back: the change
/// made meanwhile lands by itself.
async fn manager_failover(c: &Cluster) {
    const PREFIX: &str = "/kargo-test-mn-failover";
    let store = common::etcd_store(PREFIX).await;
    script_ok(&["promote"]);
    let services = [("tick", "  env: {ROUND: \"1\"}")];
    apply(&store, &installation(" {}", "fo", &services)).await;
    let hosts = c.hosts.join(",");
    let endpoints = common::etcd_endpoints().join(",");
    let ctl = ControllerProcess::start(
        PREFIX,
        19571,
        &endpoints,
        &["--docker-host", &hosts, "--resync-period", "2s"],
    );
    eventually(Duration::from_secs(60), "the stack Ready", async || {
        is_ready(&store, Kind::Stack, "fo").await.then_some(())
    })
    .await;
    let in_use = |n: usize| format!("kargo_docker_endpoint{{endpoint=\"{}\"}}", c.host(n));
    assert_eq!(ctl.metric(&in_use(1)), Some(1.0), "{}", ctl.log());

    let env_of = async |swarm: &SwarmClient| {
        swarm
            .inspect_service("kargo-fo_tick")
            .await
            .ok()
            .flatten()
            .and_then(|s| s.spec.pointer("/TaskTemplate/ContainerSpec/Env").cloned())
            .map(|v| v.to_string())
            .unwrap_or_default()
    };

    // The manager in use dies; the next change lands through another one.
    script_ok(&["kill-node", "1"]);
    let killed = Instant::now();
    apply(
        &store,
        &installation(" {}", "fo", &[("tick", "  env: {ROUND: \"2\"}")]),
    )
    .await;
    let observer = SwarmClient::connect_with(&DockerConfig {
        hosts: vec![c.host(2).to_string(), c.host(3).to_string()],
        tls: None,
    })
    .await
    .expect("the other managers answer");
    eventually(Duration::from_secs(60), "ROUND=2 in Swarm", async || {
        env_of(&observer).await.contains("ROUND=2").then_some(())
    })
    .await;
    eprintln!(
        "failover: the change landed {:?} after the manager in use was killed",
        killed.elapsed()
    );
    assert_eq!(ctl.metric(&in_use(1)), Some(0.0));
    assert!(
        ctl.metric("kargo_docker_endpoint_switches_total")
            .unwrap_or(0.0)
            >= 1.0,
        "{}",
        ctl.log()
    );
    // Written when the reconcile that first used the new endpoint ends, which can be a
    // moment after its push reached Swarm.
    eventually(
        Duration::from_secs(15),
        "an event names the endpoint now in use",
        async || {
            let (events, _) = store.kv().range(&format!("{PREFIX}/events/")).await.ok()?;
            events
                .iter()
                .any(|e| String::from_utf8_lossy(&e.value).contains("DockerEndpointChanged"))
                .then_some(())
        },
    )
    .await;

    // A second manager down: no quorum. The Stack says so; a change waits.
    let survivor = if ctl.metric(&in_use(2)) == Some(1.0) {
        3
    } else {
        2
    };
    let other = 5 - survivor;
    script_ok(&["kill-node", &other.to_string()]);
    apply(
        &store,
        &installation(" {}", "fo", &[("tick", "  env: {ROUND: \"3\"}")]),
    )
    .await;
    let message = eventually(
        Duration::from_secs(60),
        "the Stack says the Swarm has no leader",
        async || {
            let st = status(&store, Kind::Stack, "fo").await?;
            let ready = st.condition("Ready")?;
            (ready.reason == kargo::controller::NO_LEADER_REASON).then(|| ready.message.clone())
        },
    )
    .await;
    assert!(message.contains("no leader"), "{message}");

    // A manager returns: quorum is back, the change made meanwhile lands by itself.
    script_ok(&["start-node", &other.to_string()]);
    eventually(Duration::from_secs(90), "ROUND=3 in Swarm", async || {
        env_of(&observer).await.contains("ROUND=3").then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "the stack Ready again",
        async || is_ready(&store, Kind::Stack, "fo").await.then_some(()),
    )
    .await;
    drop(ctl);
    script_ok(&["start-node", "1"]);
    common::wipe_prefix(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_swarm() {
    let started = Instant::now();
    let cluster = Cluster::up();
    eprintln!("three-node Swarm up in {:?}", started.elapsed());
    let mut failures = Vec::new();
    // KARGO_MULTINODE_ONLY=name,name runs only those scenarios (while working on one).
    let only = std::env::var("KARGO_MULTINODE_ONLY").unwrap_or_default();
    macro_rules! scenario {
        ($f:ident) => {
            let t = Instant::now();
            if !only.is_empty() && !only.split(',').any(|o| o == stringify!($f)) {
                eprintln!("{} skipped (KARGO_MULTINODE_ONLY)", stringify!($f));
            } else {
                match AssertUnwindSafe($f(&cluster)).catch_unwind().await {
                    Ok(()) => eprintln!("{} passed in {:?}", stringify!($f), t.elapsed()),
                    Err(_) => failures.push(stringify!($f)),
                }
            }
        };
    }
    scenario!(placement_and_node_labels);
    scenario!(drain_and_node_loss);
    scenario!(overlay_across_nodes);
    scenario!(tls_endpoints);
    scenario!(manager_failover);
    drop(cluster);
    eprintln!("multi-node tests took {:?}", started.elapsed());
    assert!(failures.is_empty(), "failed scenarios: {failures:?}");
}
