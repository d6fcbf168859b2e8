//! The live cache on the in-memory Swarm: what it serves from memory, what it asks
//! Docker again, and which keys each event queues.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::{Value, json};

use super::{CachedSwarm, Concerns, LiveCache};
use crate::registry::Credentials;
use crate::registry::resolve::Resolution;
use crate::swarm::names::{INSTALLATION_LABEL, OWNER_LABEL, STACK_NAMESPACE_LABEL};
use crate::swarm::{
    FakeSwarm, FileObject, LiveService, NetworkOptions, NodeInfo, Swarm, SwarmError, SwarmEvent,
    TaskInfo, WriteGuard, WriteKind,
};

const INSTALLATION: &str = "/kargo-live";

/// The fake, counting the reads that reach it.
#[derive(Clone)]
struct Counted {
    fake: FakeSwarm,
    reads: Arc<AtomicU64>,
}

impl Counted {
    fn read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Swarm for Counted {
    async fn list_services(&self, installation: &str) -> Result<Vec<LiveService>, SwarmError> {
        self.read();
        self.fake.list_services(installation).await
    }
    async fn inspect_service(&self, name: &str) -> Result<Option<LiveService>, SwarmError> {
        self.read();
        self.fake.inspect_service(name).await
    }
    async fn create_service(
        &self,
        name: &str,
        spec: &Value,
        auth: Option<&Credentials>,
    ) -> Result<String, SwarmError> {
        self.fake.create_service(name, spec, auth).await
    }
    async fn update_service(
        &self,
        id: &str,
        name: &str,
        version: u64,
        spec: &Value,
        auth: Option<&Credentials>,
    ) -> Result<(), SwarmError> {
        self.fake
            .update_service(id, name, version, spec, auth)
            .await
    }
    async fn resolve_image(&self, image: &str, auth: Option<&Credentials>) -> Resolution {
        self.fake.resolve_image(image, auth).await
    }
    async fn remove_service(&self, id: &str) -> Result<(), SwarmError> {
        self.fake.remove_service(id).await
    }
    async fn ensure_network(&self, name: &str, installation: &str) -> Result<String, SwarmError> {
        self.read();
        self.fake.ensure_network(name, installation).await
    }
    async fn ensure_network_with(
        &self,
        name: &str,
        installation: &str,
        options: &NetworkOptions,
    ) -> Result<(String, Vec<String>), SwarmError> {
        self.read();
        self.fake
            .ensure_network_with(name, installation, options)
            .await
    }
    async fn list_networks(&self, installation: &str) -> Result<Vec<(String, String)>, SwarmError> {
        self.read();
        self.fake.list_networks(installation).await
    }
    async fn remove_network(&self, id: &str) -> Result<(), SwarmError> {
        self.fake.remove_network(id).await
    }
    async fn tasks_of(
        &self,
        service_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<TaskInfo>>, SwarmError> {
        self.read();
        self.fake.tasks_of(service_ids).await
    }
    async fn list_files(
        &self,
        installation: &str,
        secret: bool,
    ) -> Result<Vec<FileObject>, SwarmError> {
        self.read();
        self.fake.list_files(installation, secret).await
    }
    async fn create_file(
        &self,
        name: &str,
        content: &[u8],
        labels: &BTreeMap<String, String>,
        secret: bool,
    ) -> Result<String, SwarmError> {
        self.fake.create_file(name, content, labels, secret).await
    }
    async fn remove_file(&self, id: &str, secret: bool) -> Result<(), SwarmError> {
        self.fake.remove_file(id, secret).await
    }
    async fn nodes(&self) -> Result<Vec<NodeInfo>, SwarmError> {
        self.read();
        self.fake.nodes().await
    }
    async fn set_node_labels(
        &self,
        id: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), SwarmError> {
        self.fake.set_node_labels(id, labels).await
    }
    fn events(&self) -> BoxStream<'static, Result<SwarmEvent, SwarmError>> {
        self.fake.events()
    }
    fn writes(&self) -> BTreeMap<WriteKind, u64> {
        self.fake.writes()
    }
    fn guarded(&self, guard: WriteGuard) -> Arc<dyn Swarm> {
        self.fake.guarded(guard)
    }
}

struct Fixture {
    fake: FakeSwarm,
    counted: Counted,
    cache: LiveCache,
    swarm: CachedSwarm,
}

impl Fixture {
    fn new() -> Self {
        let fake = FakeSwarm::new();
        let counted = Counted {
            fake: fake.clone(),
            reads: Arc::default(),
        };
        let cache = LiveCache::new(INSTALLATION);
        let swarm = CachedSwarm::new(Arc::new(counted.clone()), cache.clone());
        Fixture {
            fake,
            counted,
            cache,
            swarm,
        }
    }

    fn reads(&self) -> u64 {
        self.counted.reads.load(Ordering::SeqCst)
    }

    /// Creates a service of `stack` behind the cache's back (as another writer would).
    async fn service(&self, stack: &str, name: &str, installation: &str) -> String {
        self.fake
            .create_service(
                &swarm_name(stack, name),
                &spec(stack, name, installation, 1),
                None,
            )
            .await
            .expect("create")
    }

    async fn stack(&self, stack: &str) -> Vec<LiveService> {
        self.swarm
            .list_stack_services(INSTALLATION, &format!("kargo-{stack}"))
            .await
            .expect("list")
    }
}

fn swarm_name(stack: &str, name: &str) -> String {
    format!("kargo-{stack}_{name}")
}

fn spec(stack: &str, name: &str, installation: &str, replicas: u64) -> Value {
    json!({
        "Name": swarm_name(stack, name),
        "Labels": {
            STACK_NAMESPACE_LABEL: format!("kargo-{stack}"),
            INSTALLATION_LABEL: installation,
            OWNER_LABEL: format!("{stack}/{name}"),
        },
        "TaskTemplate": {"ContainerSpec": {"Image": "kargo-busybox:1.0"}},
        "Mode": {"Replicated": {"Replicas": replicas}},
    })
}

fn event(kind: &str, action: &str, name: &str, id: Option<&str>) -> SwarmEvent {
    SwarmEvent {
        kind: kind.into(),
        action: action.into(),
        name: Some(name.into()),
        id: id.map(str::to_string),
        service: None,
    }
}

fn concerns(installation: bool, stacks: &[&str], inspect: Option<&str>) -> Concerns {
    Concerns {
        installation,
        stacks: stacks.iter().map(|s| s.to_string()).collect(),
        inspect: inspect.map(str::to_string),
    }
}

#[tokio::test]
async fn until_synced_every_read_goes_to_docker() {
    let f = Fixture::new();
    f.service("web", "api", INSTALLATION).await;
    assert_eq!(f.stack("web").await.len(), 1);
    assert_eq!(f.reads(), 1);
    assert_eq!(f.stack("web").await.len(), 1);
    assert_eq!(f.reads(), 2);
}

#[tokio::test]
async fn a_synced_cache_serves_a_converged_stack_without_docker() {
    let f = Fixture::new();
    let api = f.service("web", "api", INSTALLATION).await;
    f.service("web", "db", INSTALLATION).await;
    f.service("other", "x", INSTALLATION).await;
    f.service("web", "foreign", "/someone-else").await;
    f.cache.sync(&f.counted).await.expect("sync");
    assert!(f.cache.is_synced());
    let before = f.reads();

    let live = f.stack("web").await;
    let mut names: Vec<&str> = live.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["kargo-web_api", "kargo-web_db"]);
    let tasks = f
        .swarm
        .tasks_of(std::slice::from_ref(&api))
        .await
        .expect("tasks");
    assert_eq!(tasks[&api].len(), 1);
    assert_eq!(
        f.swarm
            .list_services(INSTALLATION)
            .await
            .expect("list")
            .len(),
        3
    );
    assert_eq!(f.reads(), before, "no Docker read for a converged stack");
}

#[tokio::test]
async fn an_own_write_is_read_again_before_it_is_judged() {
    let f = Fixture::new();
    let api = f.service("web", "api", INSTALLATION).await;
    f.cache.sync(&f.counted).await.expect("sync");
    let seen = f.stack("web").await.remove(0);
    f.swarm
        .update_service(
            &api,
            &seen.name,
            seen.version,
            &spec("web", "api", INSTALLATION, 2),
            None,
        )
        .await
        .expect("update");
    let before = f.reads();
    let now = f.stack("web").await.remove(0);
    assert!(now.version > seen.version, "the cache served the old spec");
    assert_eq!(
        now.spec.pointer("/Mode/Replicated/Replicas"),
        Some(&json!(2))
    );
    let tasks = f
        .swarm
        .tasks_of(std::slice::from_ref(&api))
        .await
        .expect("tasks");
    assert_eq!(tasks[&api].len(), 2);
    assert_eq!(f.reads(), before + 2, "one inspect, one task list");

    // Created through the cache: known at once, read on first use.
    let id = f
        .swarm
        .create_service("kargo-web_new", &spec("web", "new", INSTALLATION, 1), None)
        .await
        .expect("create");
    assert!(f.stack("web").await.iter().any(|s| s.id == id));
    f.swarm.remove_service(&id).await.expect("remove");
    assert!(!f.stack("web").await.iter().any(|s| s.id == id));
}

#[tokio::test]
async fn service_events_are_ours_only_by_cached_id() {
    let f = Fixture::new();
    let api = f.service("web", "api", INSTALLATION).await;
    f.cache.sync(&f.counted).await.expect("sync");

    // Ours: its Stack and the installation; the entry is read again next time.
    let c = f
        .cache
        .apply(&event("service", "update", "kargo-web_api", Some(&api)));
    assert_eq!(c, concerns(true, &["web"], None));
    let before = f.reads();
    f.stack("web").await;
    assert_eq!(f.reads(), before + 1);

    // Unknown ID: inspected once; a foreign service queues only the Stack its name
    // would take (NameTaken), never the installation.
    let other = f.service("zzz", "x", "/someone-else").await;
    let c = f
        .cache
        .apply(&event("service", "create", "kargo-zzz_x", Some(&other)));
    assert_eq!(c, concerns(false, &["zzz"], Some(&other)));
    let started = f.cache.seq();
    let svc = f.fake.inspect_service(&other).await.unwrap().unwrap();
    assert_eq!(f.cache.learn(started, &svc), None);
    // Not a kargo name at all: nothing.
    let c = f
        .cache
        .apply(&event("service", "update", "nginx", Some("abc")));
    assert_eq!(c, concerns(false, &[], Some("abc")));

    // One of ours created by another writer: learnt, then served from memory.
    let late = f.service("late", "x", INSTALLATION).await;
    let started = f.cache.seq();
    let svc = f.fake.inspect_service(&late).await.unwrap().unwrap();
    assert_eq!(f.cache.learn(started, &svc).as_deref(), Some("late"));
    let before = f.reads();
    assert_eq!(f.stack("late").await.len(), 1);
    assert_eq!(f.reads(), before);

    // Removed: gone from reads, its Stack queued.
    f.fake.remove_service(&api).await.expect("remove");
    let c = f
        .cache
        .apply(&event("service", "remove", "kargo-web_api", Some(&api)));
    assert_eq!(c, concerns(true, &["web"], None));
    assert!(f.stack("web").await.is_empty());
}

#[tokio::test]
async fn a_task_event_marks_only_that_services_tasks() {
    let f = Fixture::new();
    let api = f.service("web", "api", INSTALLATION).await;
    let db = f.service("web", "db", INSTALLATION).await;
    f.cache.sync(&f.counted).await.expect("sync");
    let mut events = f.fake.events();
    f.fake.fail_tasks(&api, "OOM");
    let die = futures::StreamExt::next(&mut events)
        .await
        .expect("an event")
        .expect("ok");
    assert_eq!(
        (die.kind.as_str(), die.action.as_str()),
        ("container", "die")
    );
    assert_eq!(f.cache.apply(&die), concerns(false, &["web"], None));
    let health = SwarmEvent {
        action: "exec_start: sh -c true".into(),
        ..die.clone()
    };
    assert_eq!(f.cache.apply(&health), Concerns::default());

    let before = f.reads();
    let tasks = f
        .swarm
        .tasks_of(&[api.clone(), db.clone()])
        .await
        .expect("tasks");
    assert_eq!(
        f.reads(),
        before + 1,
        "one task list, for the failed service only"
    );
    assert_eq!(tasks[&api][0].state, "failed");
    assert_eq!(tasks[&db][0].state, "running");
}

#[tokio::test]
async fn tasks_still_moving_are_read_afresh() {
    let f = Fixture::new();
    f.fake.hold_tasks(true);
    let api = f.service("web", "api", INSTALLATION).await;
    f.cache.sync(&f.counted).await.expect("sync");
    let before = f.reads();
    let pending = f
        .swarm
        .tasks_of(std::slice::from_ref(&api))
        .await
        .expect("tasks");
    assert_eq!(pending[&api][0].state, "pending");
    f.fake.hold_tasks(false);
    let running = f
        .swarm
        .tasks_of(std::slice::from_ref(&api))
        .await
        .expect("tasks");
    assert_eq!(running[&api][0].state, "running");
    assert_eq!(f.reads(), before + 2);
    f.swarm
        .tasks_of(std::slice::from_ref(&api))
        .await
        .expect("tasks");
    assert_eq!(f.reads(), before + 2, "settled: from memory");
}

#[tokio::test]
async fn other_events_queue_only_the_stacks_they_concern() {
    let f = Fixture::new();
    let n1 = f.fake.ensure_network("front", INSTALLATION).await.unwrap();
    let labels = BTreeMap::from([(INSTALLATION_LABEL.to_string(), INSTALLATION.to_string())]);
    let c1 = f.fake.create_file("c", b"x", &labels, false).await.unwrap();
    let mut attached = spec("web", "api", INSTALLATION, 1);
    attached["TaskTemplate"]["Networks"] = json!([{"Target": n1}]);
    attached["TaskTemplate"]["ContainerSpec"]["Configs"] = json!([{
        "ConfigID": c1, "ConfigName": "c",
        "File": {"Name": "/c", "UID": "0", "GID": "0", "Mode": 292}
    }]);
    f.fake
        .create_service("kargo-web_api", &attached, None)
        .await
        .expect("create");
    f.service("jobs", "x", INSTALLATION).await;
    f.cache.sync(&f.counted).await.expect("sync");
    let connect = event("network", "connect", "front", Some(&n1));
    assert_eq!(f.cache.apply(&connect), Concerns::default());
    let destroy = event("network", "destroy", "front", Some(&n1));
    assert_eq!(f.cache.apply(&destroy), concerns(false, &["web"], None));
    let unrelated = event("network", "destroy", "someone-elses", Some("n9"));
    assert_eq!(f.cache.apply(&unrelated), Concerns::default());
    let config = event("config", "remove", "c", Some(&c1));
    assert_eq!(f.cache.apply(&config), concerns(true, &["web"], None));
    // No service mounts it: only the installation (garbage collection).
    let config = event("config", "create", "d", Some("c2"));
    assert_eq!(f.cache.apply(&config), concerns(true, &[], None));
    let node = event("node", "update", "node-1", Some("x"));
    assert_eq!(f.cache.apply(&node), concerns(true, &["jobs", "web"], None));
}

#[tokio::test]
async fn networks_files_and_nodes_are_read_once_until_an_event() {
    let f = Fixture::new();
    f.cache.sync(&f.counted).await.expect("sync");
    let before = f.reads();
    let id = f.swarm.ensure_network("front", INSTALLATION).await.unwrap();
    assert_eq!(
        f.swarm.ensure_network("front", INSTALLATION).await.unwrap(),
        id
    );
    f.swarm.nodes().await.unwrap();
    f.swarm.nodes().await.unwrap();
    f.swarm.list_files(INSTALLATION, false).await.unwrap();
    f.swarm.list_files(INSTALLATION, false).await.unwrap();
    assert_eq!(f.reads(), before + 3);
    f.cache
        .apply(&event("network", "destroy", "front", Some(&id)));
    f.cache.apply(&event("node", "update", "n", Some("n")));
    f.cache.apply(&event("config", "remove", "c", Some("c")));
    f.swarm.ensure_network("front", INSTALLATION).await.unwrap();
    f.swarm.nodes().await.unwrap();
    f.swarm.list_files(INSTALLATION, false).await.unwrap();
    assert_eq!(f.reads(), before + 6);
}

#[tokio::test]
async fn no_removal_on_the_word_of_an_old_entry() {
    let f = Fixture::new();
    let api = f.service("web", "api", INSTALLATION).await;
    f.cache.sync(&f.counted).await.expect("sync");
    let seen = f.stack("web").await.remove(0);
    // Orphaned by hand (kargo's labels removed); no event seen yet.
    let mut bare = seen.spec.clone();
    bare["Labels"] = json!({});
    f.fake
        .client()
        .update_service(&api, &seen.name, seen.version, &bare, None)
        .await
        .expect("orphan");
    let refused = f.swarm.remove_service(&api).await;
    assert!(
        matches!(refused, Err(SwarmError::Api { .. })),
        "{refused:?}"
    );
    assert!(f.fake.inspect_service(&api).await.unwrap().is_some());
    assert_eq!(f.fake.writes().get(&WriteKind::ServiceRemove), None);
    // The fresh read replaced the entry: it is no longer this installation's.
    assert!(f.stack("web").await.is_empty());
}

#[tokio::test]
async fn a_read_older_than_a_change_does_not_overwrite_it() {
    let f = Fixture::new();
    let api = f.service("web", "api", INSTALLATION).await;
    f.cache.sync(&f.counted).await.expect("sync");
    let old = f.stack("web").await.remove(0);
    let started = f.cache.seq();
    f.cache.changed(&api);
    f.cache.store(started, &api, Some(&old));
    let before = f.reads();
    f.stack("web").await;
    assert_eq!(f.reads(), before + 1, "still stale: read again");
}

#[tokio::test]
async fn a_lost_stream_sends_reads_to_docker_until_the_next_sync() {
    let f = Fixture::new();
    f.service("web", "api", INSTALLATION).await;
    f.cache.sync(&f.counted).await.expect("sync");
    f.cache.unsync();
    // The periodic relist does not resync a cache the watcher has not mended.
    f.cache.refresh(&f.counted).await.expect("refresh");
    assert!(!f.cache.is_synced());
    let before = f.reads();
    f.stack("web").await;
    assert_eq!(f.reads(), before + 1);
    f.cache.sync(&f.counted).await.expect("sync");
    let before = f.reads();
    f.stack("web").await;
    assert_eq!(f.reads(), before);
}
