//! The oracle for `kargo import compose`: each real stack file of
//! `tests/fixtures/compose-corpus/` is deployed once with `docker stack deploy
//! --resolve-image=never` and once with kargo (import, apply, controller passes), one after
//! the other, and the live ServiceSpecs are compared field by field after normalising
//! names. Any difference not listed in docs/compose.md ("Known differences") fails.
//! Images cannot be pulled here: specs are compared, tasks need not run.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kargo::import::compose::import_compose_file;
use serde_json::{Map, Value, json};

const PREFIX: &str = "/kargo-test-conformance";

/// The variables the corpus files read, given to `docker stack deploy` and to kargo alike.
const VARIABLES: &[(&str, &str)] = &[
    ("ADMIN_USER", "admin"),
    ("ADMIN_PASSWORD", "secret"),
    ("SLACK_URL", "https://hooks.example.com/x"),
    ("SLACK_CHANNEL", "alerts"),
    ("SLACK_USER", "alertmanager"),
    ("TOKEN", "t0ken"),
    ("HOSTNAME", "node-1"),
    ("DOMAIN", "example.com"),
    ("USERNAME", "ops"),
    ("HASHED_PASSWORD", "hashed"),
    ("EMAIL", "ops@example.com"),
];

/// Differences docs/compose.md lists, as (corpus file, service, field path prefix): none
/// left in this corpus beyond those the comparison normalises.
const KNOWN: &[(&str, &str, &str)] = &[];

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose-corpus")
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .envs(VARIABLES.iter().copied())
        .output()
        .expect("this test needs the docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Live specs of the services labelled with a stack namespace, by short service name.
fn live_specs(namespace: &str, prefix: &str) -> BTreeMap<String, Value> {
    let ids = docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.stack.namespace={namespace}"),
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return BTreeMap::new();
    }
    let mut args = vec!["service", "inspect"];
    args.extend(ids);
    let inspected: Vec<Value> = serde_json::from_str(&docker(&args)).expect("inspect json");
    inspected
        .into_iter()
        .filter_map(|s| {
            let spec = s.get("Spec")?.clone();
            let name = spec
                .get("Name")?
                .as_str()?
                .strip_prefix(prefix)?
                .to_string();
            Some((name, spec))
        })
        .collect()
}

/// Network IDs → names.
fn network_names() -> BTreeMap<String, String> {
    docker(&[
        "network",
        "ls",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Name}}",
    ])
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(id, name)| (id.to_string(), name.to_string()))
    .collect()
}

/// Removes what differs by naming only (docs/compose.md), sorts what the engine keeps in
/// the order given, and drops empty values.
fn normalise(spec: &Value, scope: &str, networks: &BTreeMap<String, String>) -> Value {
    let unscope = |s: &str| s.strip_prefix(scope).unwrap_or(s).to_string();
    let mut v = spec.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("Name");
    }
    for labels in ["/Labels", "/TaskTemplate/ContainerSpec/Labels"] {
        if let Some(l) = v.pointer_mut(labels).and_then(Value::as_object_mut) {
            l.retain(|k, _| {
                k != "com.docker.stack.namespace"
                    && k != "com.docker.stack.image"
                    && !k.starts_with("dev.kargo.")
            });
        }
    }
    if let Some(nets) = v
        .pointer_mut("/TaskTemplate/Networks")
        .and_then(Value::as_array_mut)
    {
        for n in nets.iter_mut() {
            let target = n["Target"].as_str().unwrap_or_default().to_string();
            let name = networks.get(&target).cloned().unwrap_or(target);
            n["Target"] = json!(unscope(&name));
            if let Some(a) = n.get_mut("Aliases").and_then(Value::as_array_mut) {
                a.sort_by_key(|x| x.to_string());
            }
        }
        nets.sort_by_key(|n| n["Target"].to_string());
    }
    if let Some(mounts) = v
        .pointer_mut("/TaskTemplate/ContainerSpec/Mounts")
        .and_then(Value::as_array_mut)
    {
        for m in mounts.iter_mut() {
            if m["Type"] == "volume"
                && let Some(s) = m["Source"].as_str()
            {
                m["Source"] = json!(unscope(s));
            }
            if let Some(l) = m
                .pointer_mut("/VolumeOptions/Labels")
                .and_then(Value::as_object_mut)
            {
                l.remove("com.docker.stack.namespace");
            }
        }
    }
    for (list, key, id) in [
        (
            "/TaskTemplate/ContainerSpec/Configs",
            "ConfigName",
            "ConfigID",
        ),
        (
            "/TaskTemplate/ContainerSpec/Secrets",
            "SecretName",
            "SecretID",
        ),
    ] {
        if let Some(refs) = v.pointer_mut(list).and_then(Value::as_array_mut) {
            for r in refs.iter_mut() {
                if let Some(o) = r.as_object_mut() {
                    o.remove(id);
                    let name = o[key].as_str().unwrap_or_default();
                    // kargo: `<file>-<10 hex>`; Docker: `<stack>_<name>`.
                    let name = match name.rsplit_once('-') {
                        Some((file, hash))
                            if hash.len() == 10 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
                        {
                            file.to_string()
                        }
                        _ => unscope(name),
                    };
                    o.insert(key.into(), json!(name));
                }
            }
            refs.sort_by_key(|r| r[key].to_string());
        }
    }
    for list in ["/EndpointSpec/Ports", "/TaskTemplate/ContainerSpec/Env"] {
        if let Some(a) = v.pointer_mut(list).and_then(Value::as_array_mut) {
            a.sort_by_key(|x| x.to_string());
        }
    }
    drop_empty(&mut v);
    v
}

fn drop_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                drop_empty(x);
            }
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

/// The engine and the CLI treat a `false` flag as absent (Docker sends
/// `Privileges.NoNewPrivileges: false`, kargo sends nothing).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Leaf paths → values.
fn flatten(v: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(x, format!("{path}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(x, format!("{path}/{i}"), out);
            }
        }
        other => {
            out.insert(path, other.clone());
        }
    }
}

fn wait_gone(namespace: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !live_specs(namespace, "").is_empty() {
        assert!(Instant::now() < deadline, "{namespace} not removed in time");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Deploys `file` with docker, then with kargo; returns both normalised spec sets.
async fn both(
    file: &Path,
    stack: &str,
    store: &kargo::store::Store,
    swarm: &kargo::swarm::SwarmClient,
) -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let path = file.to_string_lossy().to_string();
    docker(&[
        "stack",
        "deploy",
        "--resolve-image=never",
        "-c",
        &path,
        stack,
    ]);
    let scope = format!("{stack}_");
    let networks = network_names();
    let theirs: BTreeMap<String, Value> = live_specs(stack, &scope)
        .iter()
        .map(|(k, s)| (k.clone(), normalise(s, &scope, &networks)))
        .collect();
    // Removing the stack's network may race its tasks' shutdown: retried at the end.
    let _ = Command::new("docker").args(["stack", "rm", stack]).output();
    wait_gone(stack);

    let imported = import_compose_file(file, stack).expect("import");
    let mut docs: Vec<Value> = vec![imported.stack.clone()];
    for mut s in imported.services {
        // Docker ignores depends_on; kargo would wait for Ready tasks, which cannot run here.
        if let Some(spec) = s["spec"].as_object_mut() {
            spec.remove("dependsOn");
        }
        docs.push(s);
    }
    let variables: Map<String, Value> = VARIABLES
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    docs.push(json!({
        "apiVersion": "kargo.dev/v1alpha1", "kind": "Environment",
        "metadata": {"name": "conformance"},
        "spec": {"variables": variables, "stacks": [stack], "rollout": "parallel"},
    }));
    // (An importer that writes a Configuration fragment gets its files kept.)
    let files = imported
        .configuration
        .as_ref()
        .map(|c| c["spec"]["files"].clone())
        .unwrap_or(json!({}));
    docs.push(json!({
        "apiVersion": "kargo.dev/v1alpha1", "kind": "Configuration",
        "metadata": {"name": "main"},
        // docker stack deploy has no policy: the comparison is of the conversion alone.
        "spec": {"environment": "conformance", "defaults": "builtin", "files": files,
                 "policy": {"level": "privileged"}},
    }));
    let yaml: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).expect("yaml")))
        .collect();
    for o in common::objects(&yaml) {
        store.apply(&o).await.expect("apply");
    }
    let controller = common::controller(store, swarm.clone());
    let namespace = format!("kargo-{stack}");
    let kscope = format!("kargo-{stack}_");
    let want = theirs.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ours = BTreeMap::new();
    while Instant::now() < deadline {
        let report = controller.pass().await.expect("pass");
        ours = live_specs(&namespace, &kscope);
        if ours.len() >= want {
            break;
        }
        eprintln!(
            "{stack}: {} of {want} services so far: {report:?}",
            ours.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let networks = network_names();
    let ours = ours
        .iter()
        .map(|(k, s)| (k.clone(), normalise(s, &kscope, &networks)))
        .collect();
    common::wipe_prefix(store).await;
    common::remove_installation(swarm, PREFIX).await;
    for secret in [false, true] {
        for f in swarm.list_files(PREFIX, secret).await.unwrap_or_default() {
            let _ = swarm.remove_file(&f.id, secret).await;
        }
    }
    wait_gone(&namespace);
    (theirs, ours)
}

#[tokio::test]
async fn stack_files_deploy_as_docker_stack_deploy_deploys_them() {
    let started = Instant::now();
    let store = common::etcd_store(PREFIX).await;
    common::wipe_prefix(&store).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, PREFIX).await;
    // The corpus's one external network.
    let _ = Command::new("docker")
        .args([
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            "traefik-public",
        ])
        .output();
    let docs =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/compose.md"))
            .expect("docs/compose.md");

    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus holds {} files", files.len());

    let (mut services, mut identical, mut fields, mut equal) = (0, 0, 0, 0);
    let mut unexplained = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let stack = format!("cc{i:02}");
        let (theirs, ours) = both(file, &stack, &store, &swarm).await;
        for (svc, their) in &theirs {
            services += 1;
            let mut a = BTreeMap::new();
            flatten(their, String::new(), &mut a);
            let mut b = BTreeMap::new();
            if let Some(our) = ours.get(svc) {
                flatten(our, String::new(), &mut b);
            }
            let paths: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            let mut same = true;
            for p in paths {
                fields += 1;
                if a.get(p) == b.get(p) {
                    equal += 1;
                    continue;
                }
                same = false;
                let known = KNOWN
                    .iter()
                    .any(|(f, s, prefix)| *f == name && s == svc && p.starts_with(prefix));
                if !known {
                    unexplained.push(format!(
                        "{name} {svc} {p}: docker {:?}, kargo {:?}",
                        a.get(p),
                        b.get(p)
                    ));
                }
            }
            if same {
                identical += 1;
            }
        }
    }
    for i in 0..files.len() {
        let _ = Command::new("docker")
            .args(["stack", "rm", &format!("cc{i:02}")])
            .output();
    }
    let _ = Command::new("docker")
        .args(["network", "rm", "traefik-public"])
        .output();
    println!(
        "compose conformance: {identical}/{services} services identical, {:.1}% of fields equal ({equal}/{fields}), in {:?}",
        100.0 * equal as f64 / fields.max(1) as f64,
        started.elapsed()
    );
    for d in &unexplained {
        println!("DIFF {d}");
    }
    for (_, _, path) in KNOWN {
        assert!(
            docs.contains(path.trim_start_matches('/')),
            "docs/compose.md must list {path} with its reason"
        );
    }
    assert!(
        unexplained.is_empty(),
        "differences from docker stack deploy not listed in docs/compose.md:\n{}",
        unexplained.join("\n")
    );
}
