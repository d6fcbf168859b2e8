//! The CLI against a 3-member etcd cluster with one member dead: every command, given
//! all three endpoints, goes on to a live member (a dead member, wherever it is in the
//! list, and a dead leader, whose loss makes the others answer "leader changed").

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::etcd_cluster::EtcdCluster;
use common::text;

/// Client ports 24300, 24302, 24304 (peers one above); no other test uses them.
const BASE_PORT: u16 = 24300;
const PREFIX: &str = "/kargo-test-members";

fn web(tag: &str) -> String {
    format!(
        "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {{name: web}}\nspec: {{image: \"kargo-busybox:{tag}\"}}\n"
    )
}

/// The client endpoints with the member `dead` at `position` of the list.
fn endpoints(cluster: &EtcdCluster, dead: usize, position: usize) -> String {
    let all: Vec<String> = cluster.endpoints().split(',').map(str::to_string).collect();
    let mut list: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != dead)
        .map(|(_, e)| e.clone())
        .collect();
    list.insert(position.min(list.len()), all[dead].clone());
    list.join(",")
}

/// The index of the member that leads now, as `etcdctl endpoint status` reports it.
fn leader(cluster: &EtcdCluster) -> usize {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &cluster.endpoints()])
        .args(["endpoint", "status", "-w", "json"])
        .output()
        .expect("etcdctl on the PATH");
    let status: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("endpoint status as JSON");
    let statuses = status.as_array().expect("one status per endpoint");
    let position = statuses.iter().position(|s| {
        let s = &s["Status"];
        s["leader"].as_u64().is_some() && s["leader"] == s["header"]["member_id"]
    });
    let endpoint = position
        .and_then(|p| statuses[p]["Endpoint"].as_str())
        .unwrap_or_else(|| panic!("no leader in {status}"));
    cluster
        .members
        .iter()
        .position(|m| {
            m.client.trim_start_matches("http://") == endpoint.trim_start_matches("http://")
        })
        .unwrap_or_else(|| panic!("leader {endpoint} is not a member"))
}

/// Call `n` of the mix: get, apply (alternating the image, so it writes), diff, wait.
fn call(n: usize, endpoints: &str, manifest: &std::path::Path) -> (String, Output) {
    let file = manifest.to_string_lossy().into_owned();
    let args: Vec<&str> = match n % 4 {
        0 => vec!["get", "services"],
        1 => vec!["apply", "-f", &file],
        2 => vec!["diff", "-f", &file],
        _ => vec![
            "wait",
            "service/web",
            "--for=jsonpath={.metadata.name}=web",
            "--timeout",
            "5s",
        ],
    };
    let what = args.join(" ");
    let mut all = vec!["--etcd-endpoints", endpoints];
    all.extend(args);
    if n % 4 == 1 {
        let tag = if n % 8 == 1 { "1.1" } else { "1.0" };
        std::fs::write(manifest, web(tag)).expect("write manifest");
    }
    (what, common::kargo_with_env(PREFIX, &all, None, &[]))
}

fn succeeded(n: usize, out: &Output) -> bool {
    // diff's 1 means "differs": a success too.
    out.status.code() == Some(0) || (n % 4 == 2 && out.status.code() == Some(1))
}

/// Runs `count` calls from `first` with the member `dead` at every position in turn;
/// returns the failures as text.
fn run_calls(
    cluster: &EtcdCluster,
    dead: usize,
    first: usize,
    count: usize,
    manifest: &std::path::Path,
) -> Vec<String> {
    let mut failures = Vec::new();
    for n in first..first + count {
        let eps = endpoints(cluster, dead, n % 3);
        let (what, out) = call(n, &eps, manifest);
        if !succeeded(n, &out) {
            failures.push(format!(
                "kargo {what} --etcd-endpoints {eps}: exit {:?}: {}",
                out.status.code(),
                text(&out.stderr).trim()
            ));
        }
    }
    failures
}

#[test]
fn the_cli_survives_a_dead_member_and_a_dead_leader() {
    let started = Instant::now();
    let mut cluster = EtcdCluster::start(3, BASE_PORT);
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("web.yaml");
    std::fs::write(&manifest, web("1.0")).expect("write manifest");
    let out = common::kargo_with_env(
        PREFIX,
        &[
            "--etcd-endpoints",
            &cluster.endpoints(),
            "apply",
            "-f",
            &manifest.to_string_lossy(),
        ],
        None,
        &[],
    );
    common::expect_code(&out, 0, "apply with every member alive");

    // A follower dies: 30 calls, the dead member first, in the middle and last.
    let leading = leader(&cluster);
    let dead = (leading + 1) % 3;
    cluster.kill(dead);
    let failures = run_calls(&cluster, dead, 0, 30, &manifest);
    eprintln!("dead follower: {}/30 calls succeeded", 30 - failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The leader dies: the calls right after meet the election ("leader changed",
    // "no leader") on the live members.
    cluster.restart(dead);
    cluster.wait_healthy(Duration::from_secs(20));
    let leading = leader(&cluster);
    cluster.kill(leading);
    let failures = run_calls(&cluster, leading, 30, 12, &manifest);
    eprintln!("dead leader: {}/12 calls succeeded", 12 - failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "took {:?}",
        started.elapsed()
    );
}
