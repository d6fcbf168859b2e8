//! Fencing that acts, with real controller processes on the real etcd: a leader whose key
//! is deleted while its lease lives steps down at once (two controllers never both act),
//! and a controller meant to run alone refuses a prefix another controller leads.

mod common;

use std::time::{Duration, Instant};

use common::process::ControllerProcess;
use kargo::store::Precondition;

const PREFIX: &str = "/kargo-test-fencing";
const PORTS: [u16; 3] = [19491, 19492, 19493];

fn leading(c: &ControllerProcess) -> Option<bool> {
    c.metric("kargo_leader").map(|v| v == 1.0)
}

async fn wait_for(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_deleted_leader_key_makes_the_leader_step_down() {
    let store = common::etcd_store(PREFIX).await;
    let endpoints = common::etcd_endpoints().join(",");
    let args = [
        "--leader-elect",
        "--lease-ttl",
        "3s",
        "--resync-period",
        "5s",
    ];
    let ctls: Vec<ControllerProcess> = PORTS[..2]
        .iter()
        .map(|p| ControllerProcess::start(PREFIX, *p, &endpoints, &args))
        .collect();
    wait_for(Duration::from_secs(20), "one leader", || {
        ctls.iter().filter(|c| leading(c) == Some(true)).count() == 1
    })
    .await;
    let first = ctls
        .iter()
        .position(|c| leading(c) == Some(true))
        .expect("a leader");

    // Delete the leader's key by hand; its lease lives on.
    let (keys, _) = store
        .kv()
        .range(&format!("{PREFIX}/leader/"))
        .await
        .expect("range");
    let key = keys
        .iter()
        .min_by_key(|e| e.create_revision)
        .expect("a leader key")
        .key
        .clone();
    store
        .kv()
        .delete(&key, Precondition::Any, None)
        .await
        .expect("delete leader key");
    let deleted = Instant::now();

    // The other replica now holds the lowest key and leads; the deposed one must stop
    // within one keep-alive period (TTL/3) plus a margin — never both for long.
    let other = 1 - first;
    wait_for(Duration::from_secs(10), "the other replica leads", || {
        leading(&ctls[other]) == Some(true)
    })
    .await;
    wait_for(
        Duration::from_secs(3),
        "the deposed leader steps down",
        || leading(&ctls[first]) == Some(false),
    )
    .await;
    let stepped = deleted.elapsed();
    println!("leader key deleted → old leader stepped down in {stepped:?}");
    assert!(
        ctls[first].log().contains("stepping down"),
        "the deposed leader says why:\n{}",
        ctls[first].log()
    );
    // Stays that way: exactly one leader over the next seconds.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let n = ctls.iter().filter(|c| leading(c) == Some(true)).count();
        assert!(n <= 1, "two controllers lead at once");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in &ctls {
        c.signal("TERM");
    }
    drop(ctls);
    common::wipe_prefix(&store).await;
}

#[tokio::test]
async fn a_lone_controller_refuses_a_prefix_another_leads() {
    const LONE: &str = "/kargo-test-fencing-lone";
    let store = common::etcd_store(LONE).await;
    let endpoints = common::etcd_endpoints().join(",");
    let first = ControllerProcess::start(LONE, PORTS[2], &endpoints, &["--resync-period", "5s"]);
    wait_for(
        Duration::from_secs(20),
        "the first controller leads",
        || leading(&first) == Some(true),
    )
    .await;
    let out = common::kargo(LONE, &["controller", "--resync-period", "5s"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a second lone controller must exit 2\nstderr:\n{}",
        common::text(&out.stderr)
    );
    let stderr = common::text(&out.stderr);
    assert!(
        stderr.contains("another controller") && stderr.contains("--leader-elect"),
        "{stderr}"
    );
    assert_eq!(leading(&first), Some(true), "the first one goes on leading");
    first.signal("TERM");
    drop(first);
    common::wipe_prefix(&store).await;
}
