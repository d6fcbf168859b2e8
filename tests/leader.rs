//! Several operators, one truth: three controller processes against a real 3-member
//! etcd cluster and the real Swarm. Exactly one leads; kill -9 of the leader five times
//! during a rollout of 20 services hands over within the bound and creates nothing
//! twice; a paused leader's writes are refused; etcd member loss and a full etcd
//! outage are survived without restarting the controllers.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::etcd_cluster::EtcdCluster;
use common::process::{ControllerProcess, eventually};
use kargo::api::Kind;
use kargo::store::{EtcdConfig, Fence, Store, StoreError};

const PREFIX: &str = "/kargo-test-leader";
const TTL_SECS: u64 = 2;
const PORTS: [u16; 3] = [19471, 19472, 19473];
const SERVICES: usize = 20;

fn workspace() -> String {
    let image = common::image("1.0");
    let names: Vec<String> = (0..SERVICES).map(|i| format!("ld{i}")).collect();
    let mut out = format!(
        "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {{name: lead}}\nspec:\n  services: [{}]\n",
        names.join(", ")
    );
    for n in &names {
        out.push_str(&format!(
            "---\napiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {{name: {n}}}\nspec:\n  image: \"{image}\"\n  command: [\"sh\", \"-c\", \"while true; do sleep 1; done\"]\n  endpointMode: dnsrr\n  deploy: {{replicas: 1}}\n"
        ));
    }
    out
}

fn start(i: usize, endpoints: &str) -> ControllerProcess {
    let ttl = format!("{TTL_SECS}s");
    let id = format!("replica-{i}");
    ControllerProcess::start(
        PREFIX,
        PORTS[i],
        endpoints,
        &[
            "--leader-elect",
            "--lease-ttl",
            &ttl,
            "--identity",
            &id,
            "--resync-period",
            "5s",
        ],
    )
}

/// Which replicas say they lead (by their metrics).
fn leaders(ctls: &[ControllerProcess]) -> Vec<usize> {
    ctls.iter()
        .enumerate()
        .filter(|(_, c)| c.metric("kargo_leader") == Some(1.0))
        .map(|(i, _)| i)
        .collect()
}

/// The leader's key in etcd: (key, create revision, value).
async fn election_keys(store: &Store) -> Vec<(String, i64, String)> {
    let (entries, _) = store
        .kv()
        .range(&format!("{PREFIX}/leader/"))
        .await
        .unwrap_or_default();
    let mut keys: Vec<(String, i64, String)> = entries
        .into_iter()
        .map(|e| {
            (
                e.key,
                e.create_revision,
                String::from_utf8_lossy(&e.value).into_owned(),
            )
        })
        .collect();
    keys.sort_by_key(|k| k.1);
    keys
}

async fn service_ids(swarm: &kargo::swarm::SwarmClient) -> BTreeMap<String, String> {
    swarm
        .list_services(PREFIX)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, s.id))
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::test]
async fn one_leader_fast_failover_fencing_and_etcd_faults() {
    let mut cluster = EtcdCluster::start(3, 23800);
    let endpoints = cluster.endpoints();
    let config = EtcdConfig::new(endpoints.split(',').map(str::to_string).collect());
    let store = Store::connect(&config, PREFIX)
        .await
        .expect("store on the cluster");
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, PREFIX).await;
    for o in common::objects(&workspace()) {
        store.apply(&o).await.expect("apply");
    }
    let mut ctls: Vec<ControllerProcess> = (0..3).map(|i| start(i, &endpoints)).collect();

    // Exactly one leader, and it is the one the election key names.
    let first = eventually(Duration::from_secs(30), "a leader", async || {
        let l = leaders(&ctls);
        (l.len() == 1).then(|| l[0])
    })
    .await;
    let keys = election_keys(&store).await;
    assert_eq!(
        keys.first().map(|k| k.2.clone()),
        Some(format!("replica-{first}"))
    );

    // kill -9 the leader five times during the rollout.
    let mut seen_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut failovers = Vec::new();
    for round in 0..5 {
        let leader = eventually(Duration::from_secs(30), "one leader", async || {
            let l = leaders(&ctls);
            assert!(l.len() <= 1, "two leaders at once: {l:?}");
            (l.len() == 1).then(|| l[0])
        })
        .await;
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        ctls[leader].signal("KILL");
        let killed_at = Instant::now();
        let _ = ctls[leader].wait_exit(Duration::from_secs(5));
        let next = eventually(Duration::from_secs(30), "a new leader", async || {
            let l: Vec<usize> = leaders(&ctls)
                .into_iter()
                .filter(|i| *i != leader)
                .collect();
            assert!(l.len() <= 1, "two leaders at once: {l:?}");
            l.first().copied()
        })
        .await;
        let took = killed_at.elapsed().as_secs_f64();
        failovers.push(took);
        // A sanity bound only (a loaded CI machine is slow); the figures are printed above
        // the end of the test and measured in the issue note.
        assert!(took < (2 * TTL_SECS + 3) as f64, "failover took {took:.2}s");
        assert_ne!(next, leader);
        for (name, id) in service_ids(&swarm).await {
            if let Some(old) = seen_ids.insert(name.clone(), id.clone()) {
                assert_eq!(old, id, "service {name} was created twice");
            }
        }
        ctls[leader] = start(leader, &endpoints);
    }
    let worst = failovers.iter().cloned().fold(0.0, f64::max);
    println!(
        "failover after kill -9 (lease TTL {TTL_SECS}s): runs {:?} median {:.2}s worst {:.2}s",
        failovers
            .iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>(),
        median(&mut failovers.clone()),
        worst
    );

    // The rollout completes; every service exists exactly once, never re-created.
    eventually(
        Duration::from_secs(180),
        "the 20-service stack Ready",
        async || {
            let o = store.get(Kind::Stack, "lead").await.ok()??;
            let st: kargo::api::CommonStatus = serde_json::from_value(o.status?).ok()?;
            (st.is_ready() && st.observed_generation == o.metadata.generation).then_some(())
        },
    )
    .await;
    let ids = service_ids(&swarm).await;
    assert_eq!(ids.len(), SERVICES);
    for (name, id) in &ids {
        if let Some(old) = seen_ids.get(name) {
            assert_eq!(old, id, "service {name} was created twice");
        }
    }

    // SIGSTOP the leader past its lease: another leads; the paused one's fence is dead.
    let paused = eventually(Duration::from_secs(30), "one leader", async || {
        let l = leaders(&ctls);
        (l.len() == 1).then(|| l[0])
    })
    .await;
    let (key, rev, _) = election_keys(&store)
        .await
        .into_iter()
        .find(|k| k.2 == format!("replica-{paused}"))
        .expect("the paused leader's election key");
    let stale = Fence {
        key,
        create_revision: rev,
    };
    ctls[paused].signal("STOP");
    eventually(
        Duration::from_secs(30),
        "another leader while one is paused",
        async || {
            let l: Vec<usize> = leaders(&ctls)
                .into_iter()
                .filter(|i| *i != paused)
                .collect();
            (l.len() == 1).then_some(())
        },
    )
    .await;
    let refused = store
        .update_status(
            Kind::Service,
            "ld0",
            &serde_json::json!({"from": "deposed"}),
            Some(&stale),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
    ctls[paused].signal("CONT");
    eventually(
        Duration::from_secs(10),
        "the resumed replica to know it does not lead",
        async || (ctls[paused].metric("kargo_leader") == Some(0.0)).then_some(()),
    )
    .await;
    let status = store
        .get(Kind::Service, "ld0")
        .await
        .expect("get")
        .expect("ld0")
        .status;
    assert_ne!(status, Some(serde_json::json!({"from": "deposed"})));
    assert_eq!(
        leaders(&ctls).len(),
        1,
        "exactly one leader after the resume"
    );

    // One etcd member lost: work goes on.
    cluster.kill(2);
    let mut o = store
        .get(Kind::Service, "ld1")
        .await
        .expect("get")
        .expect("ld1");
    o.spec["deploy"]["replicas"] = serde_json::json!(2);
    store
        .update(&o, None)
        .await
        .expect("update with a member down");
    eventually(
        Duration::from_secs(60),
        "ld1 scaled with a member down",
        async || {
            let s = swarm.inspect_service("kargo-lead_ld1").await.ok()??;
            (s.spec.pointer("/Mode/Replicated/Replicas")?.as_u64()? == 2).then_some(())
        },
    )
    .await;
    cluster.restart(2);
    cluster.wait_healthy(Duration::from_secs(30));

    // Every member down, then back: the controllers recover by themselves.
    for i in 0..3 {
        cluster.kill(i);
    }
    eventually(
        Duration::from_secs(30),
        "not ready while etcd is down",
        async || {
            ctls.iter()
                .any(|c| c.get("/readyz").map(|r| r.0) == Some(503))
                .then_some(())
        },
    )
    .await;
    for i in 0..3 {
        cluster.restart(i);
    }
    cluster.wait_healthy(Duration::from_secs(30));
    let store = Store::connect(&config, PREFIX).await.expect("reconnect");
    let mut o = store
        .get(Kind::Service, "ld2")
        .await
        .expect("get")
        .expect("ld2");
    o.spec["deploy"]["replicas"] = serde_json::json!(2);
    store
        .update(&o, None)
        .await
        .expect("update after the outage");
    eventually(
        Duration::from_secs(90),
        "ld2 scaled after etcd came back",
        async || {
            let s = swarm.inspect_service("kargo-lead_ld2").await.ok()??;
            (s.spec.pointer("/Mode/Replicated/Replicas")?.as_u64()? == 2).then_some(())
        },
    )
    .await;
    // Followers relist on their own backoff (at most 10 s between tries), so
    // they may turn ready a little after the leader has already acted.
    eventually(
        Duration::from_secs(45),
        "every controller ready again after the outage",
        async || {
            ctls.iter()
                .all(|c| c.get("/readyz").map(|r| r.0) == Some(200))
                .then_some(())
        },
    )
    .await;

    for c in &ctls {
        c.signal("TERM");
    }
    drop(ctls);
    common::remove_installation(&swarm, PREFIX).await;
}
