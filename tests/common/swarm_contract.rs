//! Behaviour every `Swarm` must show, as far as kargo relies on it; run against the
//! in-memory `FakeSwarm` by unit tests and against the real Swarm by
//! `tests/swarm_contract.rs`.
//!
//! Where the two differ, the contract asserts only what kargo relies on:
//! - timing: the fake settles tasks at once, the engine within seconds (every wait here
//!   is bounded, and readiness is judged by kargo's own `assess`);
//! - error statuses: a stale version, a taken name, a config in use are `Api` errors on
//!   both; the HTTP status is not part of the contract (the engine answers 500 to some);
//! - a rolled-back update: the engine passes through `rollback_started`, the fake lands on
//!   `rollback_completed`; kargo reads both as `RolledBack`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kargo::api::DeployMode;
use kargo::swarm::names::{INSTALLATION_LABEL, OWNER_LABEL, STACK_NAMESPACE_LABEL};
use kargo::swarm::{NetworkOptions, Swarm, SwarmError, WriteKind, assess, comparable, covers};
use serde_json::{Value, json};

/// The Swarm under test and what the contract needs to know about it.
pub struct Subject<'a> {
    /// The client under test.
    pub swarm: &'a dyn Swarm,
    /// The installation label the contract's objects carry (cleaned up by the caller).
    pub installation: &'a str,
    /// A short word unique to this run, in every object name (Swarm names are global).
    pub tag: &'a str,
    /// An image every node has.
    pub image: String,
    /// Another image every node has.
    pub other_image: String,
    /// An image no node has (the fake is told so; the engine cannot pull).
    pub missing_image: String,
    /// How long tasks may take to settle.
    pub settle: Duration,
}

impl Subject<'_> {
    fn name(&self, what: &str) -> String {
        format!("kargo-{}_{what}", self.tag)
    }

    /// A spec as kargo renders one: labels, a looping container, replicas, dnsrr.
    fn spec(&self, what: &str, image: &str, replicas: u64) -> Value {
        json!({
            "Name": self.name(what),
            "Labels": {
                STACK_NAMESPACE_LABEL: format!("kargo-{}", self.tag),
                INSTALLATION_LABEL: self.installation,
                OWNER_LABEL: format!("{}/{what}", self.tag),
            },
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": image,
                    "Command": ["sh", "-c", "while true; do sleep 1; done"],
                    "StopGracePeriod": 1_000_000_000u64,
                },
                "RestartPolicy": {"Condition": "any", "Delay": 500_000_000u64},
            },
            "Mode": {"Replicated": {"Replicas": replicas}},
            "UpdateConfig": {"Parallelism": 0, "Order": "stop-first", "FailureAction": "pause"},
            "EndpointSpec": {"Mode": "dnsrr"},
        })
    }

    fn writes(&self, kind: WriteKind) -> u64 {
        self.swarm.writes().get(&kind).copied().unwrap_or(0)
    }

    /// A service that must exist.
    async fn existing(&self, id: &str) -> kargo::swarm::LiveService {
        let live = self.swarm.inspect_service(id).await.expect("inspect");
        live.expect("the service exists")
    }

    /// Polls `check` until it gives a value, at most `bound`.
    async fn eventually<T>(
        &self,
        bound: Duration,
        what: &str,
        mut check: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until kargo's `assess` calls the service Ready for `spec`.
    async fn ready(&self, id: &str, spec: &Value, replicas: u64) {
        self.eventually(self.settle, "service Ready", async || {
            let live = self.swarm.inspect_service(id).await.ok()??;
            let tasks = self.swarm.tasks(id).await.ok()?;
            let c = assess(
                &live,
                spec,
                &tasks,
                DeployMode::Replicated,
                replicas,
                chrono::Utc::now(),
            );
            c.ready.then_some(())
        })
        .await;
    }
}

/// Create, list by installation, inspect by name and ID, update with the version last
/// read (a stale one and a taken name are refused), remove (twice is fine).
pub async fn services_are_listed_inspected_and_versioned(s: &Subject<'_>) {
    let spec = s.spec("crud", &s.image, 1);
    let created_before = s.writes(WriteKind::ServiceCreate);
    let id = s
        .swarm
        .create_service(&s.name("crud"), &spec, None)
        .await
        .expect("create");
    assert_eq!(s.writes(WriteKind::ServiceCreate), created_before + 1);
    let listed = s.swarm.list_services(s.installation).await.expect("list");
    let live = listed
        .iter()
        .find(|l| l.id == id)
        .expect("listed under its installation");
    assert_eq!(live.name, s.name("crud"));
    assert_eq!(
        live.labels.get(OWNER_LABEL).map(String::as_str),
        Some(format!("{}/crud", s.tag).as_str())
    );
    assert!(
        covers(&live.spec, &comparable(&spec)),
        "the live spec holds every field sent (engine defaults aside): {}",
        live.spec
    );
    let other = s
        .swarm
        .list_services("/kargo-contract-nobody")
        .await
        .expect("list");
    assert!(
        other.iter().all(|l| l.id != id),
        "listed under another installation"
    );
    let by_name = s
        .swarm
        .inspect_service(&s.name("crud"))
        .await
        .expect("inspect")
        .expect("found by name");
    let by_id = s
        .swarm
        .inspect_service(&id)
        .await
        .expect("inspect")
        .expect("found by ID");
    assert_eq!(
        (by_name.id.as_str(), by_id.version),
        (id.as_str(), by_name.version)
    );

    let taken = s.swarm.create_service(&s.name("crud"), &spec, None).await;
    assert!(matches!(taken, Err(SwarmError::Api { .. })), "{taken:?}");

    let scaled = s.spec("crud", &s.image, 2);
    s.swarm
        .update_service(&id, &s.name("crud"), by_id.version, &scaled, None)
        .await
        .expect("update with the version last read");
    let after = s.existing(&id).await;
    assert!(after.version > by_id.version, "an update bumps the version");
    assert_eq!(after.id, id, "updated in place");
    assert_eq!(
        after.spec.pointer("/Mode/Replicated/Replicas"),
        Some(&json!(2))
    );
    let stale = s
        .swarm
        .update_service(&id, &s.name("crud"), by_id.version, &spec, None)
        .await;
    assert!(matches!(stale, Err(SwarmError::Api { .. })), "{stale:?}");

    s.swarm.remove_service(&id).await.expect("remove");
    assert!(
        s.swarm
            .inspect_service(&id)
            .await
            .expect("inspect")
            .is_none()
    );
    s.swarm
        .remove_service(&id)
        .await
        .expect("removing a removed service is done");
    assert!(
        s.swarm
            .inspect_service(&s.name("never-was"))
            .await
            .expect("inspect")
            .is_none()
    );
}

/// Tasks of the current spec run, one per replica; after an update only the new spec's
/// tasks count; scaling down leaves the right number.
pub async fn tasks_run_the_current_spec(s: &Subject<'_>) {
    let spec = s.spec("tasks", &s.image, 2);
    let id = s
        .swarm
        .create_service(&s.name("tasks"), &spec, None)
        .await
        .expect("create");
    s.ready(&id, &spec, 2).await;
    let by_service = s
        .swarm
        .tasks_of(std::slice::from_ref(&id))
        .await
        .expect("tasks");
    let tasks = by_service.get(&id).expect("tasks by service ID");
    assert!(tasks.iter().all(|t| t.node_id.is_some()));

    let live = s.existing(&id).await;
    let newer = s.spec("tasks", &s.other_image, 2);
    s.swarm
        .update_service(&id, &s.name("tasks"), live.version, &newer, None)
        .await
        .expect("update");
    s.ready(&id, &newer, 2).await;
    let live = s.existing(&id).await;
    let tasks = s.swarm.tasks(&id).await.expect("tasks");
    let old = assess(
        &live,
        &spec,
        &tasks,
        DeployMode::Replicated,
        2,
        chrono::Utc::now(),
    );
    assert_eq!(old.running, 0, "tasks of the old spec still count: {old:?}");
    assert!(
        tasks.windows(2).all(|w| w[0].timestamp >= w[1].timestamp),
        "newest first"
    );

    let one = s.spec("tasks", &s.other_image, 1);
    s.swarm
        .update_service(&id, &s.name("tasks"), live.version, &one, None)
        .await
        .expect("scale down");
    s.ready(&id, &one, 1).await;
    s.eventually(
        s.settle,
        "one task running after the scale-down",
        async || {
            let tasks = s.swarm.tasks(&id).await.ok()?;
            let running = tasks
                .iter()
                .filter(|t| t.desired_state == "running" && t.state == "running")
                .count();
            (running == 1).then_some(())
        },
    )
    .await;
    s.swarm.remove_service(&id).await.expect("remove");
}

/// An image no node has: its tasks are rejected with "No such image", and kargo's
/// assessment says the tasks fail (the message kargo shows in the Service's status).
pub async fn a_missing_image_is_rejected(s: &Subject<'_>) {
    let spec = s.spec("noimage", &s.missing_image, 1);
    let id = s
        .swarm
        .create_service(&s.name("noimage"), &spec, None)
        .await
        .expect("create (the engine accepts it; its tasks fail)");
    let message = s
        .eventually(s.settle, "a task error", async || {
            let live = s.swarm.inspect_service(&id).await.ok()??;
            let tasks = s.swarm.tasks(&id).await.ok()?;
            let c = assess(
                &live,
                &spec,
                &tasks,
                DeployMode::Replicated,
                1,
                chrono::Utc::now(),
            );
            (!c.errors.is_empty()).then_some((c.ready, c.message))
        })
        .await;
    assert!(!message.0, "a service whose image is missing is not Ready");
    assert!(message.1.contains("No such image"), "{}", message.1);
    s.swarm.remove_service(&id).await.expect("remove");
}

/// An update to a missing image with `FailureAction: rollback` is rolled back by Swarm:
/// the live spec is the previous one again and kargo's assessment says `RolledBack`.
pub async fn a_failed_update_rolls_back(s: &Subject<'_>) {
    let with_rollback = |image: &str| {
        let mut spec = s.spec("rollback", image, 1);
        spec["UpdateConfig"] = json!({
            "Parallelism": 1, "Order": "stop-first", "FailureAction": "rollback",
            "Monitor": 2_000_000_000u64, "MaxFailureRatio": 0.0,
        });
        spec["RollbackConfig"] = json!({"Parallelism": 0, "Order": "stop-first"});
        spec
    };
    let good = with_rollback(&s.image);
    let id = s
        .swarm
        .create_service(&s.name("rollback"), &good, None)
        .await
        .expect("create");
    s.ready(&id, &good, 1).await;
    let live = s.existing(&id).await;
    let bad = with_rollback(&s.missing_image);
    s.swarm
        .update_service(&id, &s.name("rollback"), live.version, &bad, None)
        .await
        .expect("update");
    let reason = s
        .eventually(s.settle * 2, "Swarm rolls the update back", async || {
            let live = s.swarm.inspect_service(&id).await.ok()??;
            let tasks = s.swarm.tasks(&id).await.ok()?;
            let c = assess(
                &live,
                &bad,
                &tasks,
                DeployMode::Replicated,
                1,
                chrono::Utc::now(),
            );
            (c.reason == "RolledBack").then_some(live)
        })
        .await;
    assert!(
        reason
            .update_state
            .as_deref()
            .is_some_and(|u| u.starts_with("rollback")),
        "{:?}",
        reason.update_state
    );
    s.eventually(s.settle * 2, "the previous image back", async || {
        let live = s.swarm.inspect_service(&id).await.ok()??;
        let image = live
            .spec
            .pointer("/TaskTemplate/ContainerSpec/Image")?
            .as_str()?;
        image.starts_with(s.image.as_str()).then_some(())
    })
    .await;
    // Swarm's word stays until the next update: the previous spec, running again, is
    // still reported as rolled back (kargo reads it so; see the decision tests).
    s.eventually(s.settle * 2, "the rollback completed", async || {
        let live = s.swarm.inspect_service(&id).await.ok()??;
        (live.update_state.as_deref() == Some("rollback_completed")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = s.existing(&id).await;
    assert_eq!(live.update_state.as_deref(), Some("rollback_completed"));
    s.swarm.remove_service(&id).await.expect("remove");
}

/// `ensure_network` creates a network once; a second call finds it (no write).
pub async fn networks_are_ensured_once(s: &Subject<'_>) {
    let name = format!("kargo-{}-net", s.tag);
    let first = s
        .swarm
        .ensure_network(&name, s.installation)
        .await
        .expect("ensure");
    let creates = s.writes(WriteKind::NetworkCreate);
    let second = s
        .swarm
        .ensure_network(&name, s.installation)
        .await
        .expect("ensure again");
    assert_eq!(first, second);
    assert_eq!(
        s.writes(WriteKind::NetworkCreate),
        creates,
        "found, not created"
    );
}

/// `ensure_network_with` creates a network with the options a Stack declares
/// (`internal: true` is what the engine then reports); met again with other options, the
/// network is kept as it is and the differences are said.
pub async fn a_network_is_created_as_declared_and_never_recreated(s: &Subject<'_>) {
    // A name of its own: the engine may still list the one of an earlier run being removed.
    let name = format!("kargo-{}-net{}", s.tag, fastrand::u32(..));
    let internal = NetworkOptions {
        internal: true,
        labels: BTreeMap::from([("team".to_string(), "ops".to_string())]),
        ..NetworkOptions::default()
    };
    let (id, differs) = s
        .swarm
        .ensure_network_with(&name, s.installation, &internal)
        .await
        .expect("ensure");
    assert!(differs.is_empty(), "{differs:?}");
    let (again, differs) = s
        .swarm
        .ensure_network_with(&name, s.installation, &internal)
        .await
        .expect("ensure again");
    assert_eq!(again, id);
    assert!(differs.is_empty(), "met again as declared: {differs:?}");
    let creates = s.writes(WriteKind::NetworkCreate);
    // The engine may show a network's settings a moment after creating it (until then
    // nothing is said to differ): bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (kept, differs) = loop {
        let (kept, differs) = s
            .swarm
            .ensure_network_with(&name, s.installation, &NetworkOptions::default())
            .await
            .expect("ensure with other options");
        if !differs.is_empty() || Instant::now() > deadline {
            break (kept, differs);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(kept, id, "not recreated");
    assert_eq!(differs, ["internal: true, declared false"]);
    assert_eq!(s.writes(WriteKind::NetworkCreate), creates);
    s.swarm.remove_network(&id).await.expect("remove");
}

/// The installation's networks are listed by its label; one a service attaches is refused
/// removal (kargo collects it on a later pass), then removed once unused (twice is fine).
pub async fn networks_in_use_are_not_removed(s: &Subject<'_>) {
    let name = format!("kargo-{}-usednet", s.tag);
    let id = s
        .swarm
        .ensure_network(&name, s.installation)
        .await
        .expect("ensure");
    let listed = |installation: &'static str| async move {
        s.swarm
            .list_networks(if installation.is_empty() {
                s.installation
            } else {
                installation
            })
            .await
            .expect("list networks")
    };
    assert!(
        listed("").await.iter().any(|(i, n)| *i == id && *n == name),
        "the installation's network is listed"
    );
    assert!(
        listed("/another-installation")
            .await
            .iter()
            .all(|(i, _)| *i != id),
        "listed for another installation"
    );
    let mut spec = s.spec("netuser", &s.image, 1);
    spec["TaskTemplate"]["Networks"] = json!([{"Target": id}]);
    let svc = s
        .swarm
        .create_service(&s.name("netuser"), &spec, None)
        .await
        .expect("create a service on the network");
    let refused = s.swarm.remove_network(&id).await;
    assert!(
        matches!(refused, Err(SwarmError::Api { .. })),
        "{refused:?}"
    );
    assert!(
        listed("").await.iter().any(|(i, _)| *i == id),
        "a network in use was removed"
    );
    s.swarm.remove_service(&svc).await.expect("remove service");
    s.eventually(s.settle, "the network removable once unused", async || {
        s.swarm.remove_network(&id).await.ok()
    })
    .await;
    s.swarm
        .remove_network(&id)
        .await
        .expect("removing a removed network is done");
    assert!(listed("").await.iter().all(|(i, _)| *i != id));
}

/// Configs and secrets: listed by installation, each in its own list; one in use by a
/// service is refused removal (kargo collects it on a later pass), then removed.
pub async fn files_in_use_are_not_removed(s: &Subject<'_>) {
    let labels = BTreeMap::from([(INSTALLATION_LABEL.to_string(), s.installation.to_string())]);
    let config_name = format!("{}-app.conf-0123456789", s.tag);
    let secret_name = format!("{}-token-0123456789", s.tag);
    let config = s
        .swarm
        .create_file(&config_name, b"greeting=hi", &labels, false)
        .await
        .expect("create config");
    let secret = s
        .swarm
        .create_file(&secret_name, b"s3cr3t", &labels, true)
        .await
        .expect("create secret");
    let configs = s
        .swarm
        .list_files(s.installation, false)
        .await
        .expect("list");
    let secrets = s
        .swarm
        .list_files(s.installation, true)
        .await
        .expect("list");
    assert!(
        configs
            .iter()
            .any(|f| f.id == config && f.name == config_name)
    );
    assert!(
        configs.iter().all(|f| f.id != secret),
        "a secret in the configs"
    );
    assert!(
        secrets
            .iter()
            .any(|f| f.id == secret && f.name == secret_name)
    );

    let mut spec = s.spec("files", &s.image, 1);
    spec["TaskTemplate"]["ContainerSpec"]["Configs"] = json!([{
        "ConfigID": config, "ConfigName": config_name,
        "File": {"Name": "/etc/app.conf", "UID": "0", "GID": "0", "Mode": 292},
    }]);
    let id = s
        .swarm
        .create_service(&s.name("files"), &spec, None)
        .await
        .expect("create a service mounting the config");
    let refused = s.swarm.remove_file(&config, false).await;
    assert!(
        matches!(refused, Err(SwarmError::Api { .. })),
        "{refused:?}"
    );
    assert!(
        s.swarm
            .list_files(s.installation, false)
            .await
            .expect("list")
            .iter()
            .any(|f| f.id == config),
        "a config in use was removed"
    );
    s.swarm.remove_service(&id).await.expect("remove service");
    s.eventually(s.settle, "the config removable once unused", async || {
        s.swarm.remove_file(&config, false).await.ok()
    })
    .await;
    s.swarm
        .remove_file(&config, false)
        .await
        .expect("removing a removed config is done");
    s.swarm
        .remove_file(&secret, true)
        .await
        .expect("remove secret");
    let left = s
        .swarm
        .list_files(s.installation, true)
        .await
        .expect("list");
    assert!(left.iter().all(|f| f.id != secret));
}

/// Node labels are set to exactly what is asked, and can be put back.
pub async fn node_labels_are_set_exactly(s: &Subject<'_>) {
    let node = s
        .swarm
        .nodes()
        .await
        .expect("nodes")
        .into_iter()
        .next()
        .expect("a node");
    assert!(!node.hostname.is_empty());
    let mut wanted = node.labels.clone();
    wanted.insert(format!("kargo-contract-{}", s.tag), "yes".into());
    let updates = s.writes(WriteKind::NodeUpdate);
    s.swarm
        .set_node_labels(&node.id, &wanted)
        .await
        .expect("set labels");
    assert_eq!(s.writes(WriteKind::NodeUpdate), updates + 1);
    let now = s.swarm.nodes().await.expect("nodes");
    assert_eq!(
        now.iter().find(|n| n.id == node.id).map(|n| &n.labels),
        Some(&wanted)
    );
    s.swarm
        .set_node_labels(&node.id, &node.labels)
        .await
        .expect("put labels back");
    let now = s.swarm.nodes().await.expect("nodes");
    assert_eq!(
        now.iter().find(|n| n.id == node.id).map(|n| &n.labels),
        Some(&node.labels)
    );
}

/// The event stream reports a service created after subscribing, by name. The engine's
/// stream starts when first polled (kargo's watcher polls at once), so it is polled
/// before the change.
pub async fn events_report_service_changes(s: &Subject<'_>) {
    let mut events = s.swarm.events();
    let name = s.name("events");
    let wanted = name.clone();
    let watcher = tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            let ev = ev.expect("event");
            if ev.kind == "service" && ev.name.as_deref() == Some(wanted.as_str()) {
                return Some(ev.action);
            }
        }
        None
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = s
        .swarm
        .create_service(&name, &s.spec("events", &s.image, 0), None)
        .await
        .expect("create");
    let seen = tokio::time::timeout(s.settle, watcher).await;
    assert_eq!(
        seen.ok().and_then(Result::ok).flatten().as_deref(),
        Some("create")
    );
    s.swarm.remove_service(&id).await.expect("remove");
}

/// A guard that refuses fails the write before anything changes or is counted; reads
/// still work, and the guarded view shares the counter.
pub async fn a_refused_write_changes_nothing(s: &Subject<'_>) {
    let guarded = s
        .swarm
        .guarded(Arc::new(|| Err("not the leader".to_string())));
    let before = s.swarm.total_writes();
    let refused = guarded
        .create_service(&s.name("refused"), &s.spec("refused", &s.image, 1), None)
        .await;
    assert!(
        matches!(refused, Err(SwarmError::Refused { .. })),
        "{refused:?}"
    );
    assert!(
        s.swarm
            .inspect_service(&s.name("refused"))
            .await
            .expect("inspect")
            .is_none()
    );
    assert_eq!(s.swarm.total_writes(), before);
    assert_eq!(guarded.total_writes(), before, "one counter for both views");
    guarded
        .list_services(s.installation)
        .await
        .expect("reads pass");

    let allowed = s.swarm.guarded(Arc::new(|| Ok(())));
    let id = allowed
        .create_service(&s.name("refused"), &s.spec("refused", &s.image, 0), None)
        .await
        .expect("an allowed write");
    assert_eq!(
        s.swarm.total_writes(),
        before + 1,
        "counted on the shared counter"
    );
    s.swarm.remove_service(&id).await.expect("remove");
}

/// A spec with a field the Engine API model lacks is refused before any write.
pub async fn an_unknown_field_is_refused_before_any_write(s: &Subject<'_>) {
    let mut spec = s.spec("bogus", &s.image, 1);
    spec["TaskTemplate"]["ContainerSpec"]["Imagee"] = json!("typo");
    let before = s.swarm.total_writes();
    let r = s.swarm.create_service(&s.name("bogus"), &spec, None).await;
    assert!(matches!(r, Err(SwarmError::InvalidSpec { .. })), "{r:?}");
    assert_eq!(s.swarm.total_writes(), before);
}
