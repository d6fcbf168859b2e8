//! The Docker daemon restarted under a running controller: it reconnects (API and event
//! stream) and everything converges again. In its own test binary, since it stops the
//! daemon every Docker test shares.

mod common;

use std::time::Duration;

use common::process::{ControllerProcess, eventually};
use kargo::api::Kind;

const PREFIX: &str = "/kargo-test-dockerd";

#[tokio::test]
async fn controller_converges_again_after_a_daemon_restart() {
    let store = common::etcd_store(PREFIX).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, PREFIX).await;
    let yaml = format!(
        "apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {{name: dr}}\nspec: {{services: [tick]}}\n---\napiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {{name: tick}}\nspec:\n  image: \"{}\"\n  command: [\"sh\", \"-c\", \"while true; do sleep 1; done\"]\n  endpointMode: dnsrr\n",
        common::image("1.0")
    );
    for o in common::objects(&yaml) {
        store.apply(&o).await.expect("apply");
    }
    let endpoints = common::etcd_endpoints().join(",");
    let ctl = ControllerProcess::start(PREFIX, 19481, &endpoints, &["--resync-period", "3s"]);
    let ready = async || {
        let o = store.get(Kind::Stack, "dr").await.ok()??;
        let st: kargo::api::CommonStatus = serde_json::from_value(o.status?).ok()?;
        (st.is_ready() && st.observed_generation == o.metadata.generation).then_some(())
    };
    eventually(Duration::from_secs(60), "the stack Ready", ready).await;

    // Stop the daemon and start it again the way the test command does.
    let _restore = common::dockerd::Restore;
    common::dockerd::stop(Duration::from_secs(90));
    common::dockerd::start();

    // A change made after the restart is carried out: the controller talks to the new daemon.
    let mut o = store
        .get(Kind::Service, "tick")
        .await
        .expect("get")
        .expect("tick");
    o.spec["deploy"] = serde_json::json!({"replicas": 2});
    store.update(&o, None).await.expect("update");
    let swarm = common::swarm().await;
    eventually(
        Duration::from_secs(120),
        "scaled to 2 after the restart",
        async || {
            let s = swarm.inspect_service("kargo-dr_tick").await.ok()??;
            (s.spec.pointer("/Mode/Replicated/Replicas")?.as_u64()? == 2).then_some(())
        },
    )
    .await;
    eventually(Duration::from_secs(120), "Ready again", ready).await;
    assert!(
        ctl.log().contains("reconnecting") || ctl.log().contains("reconcile failed"),
        "the restart was seen:\n{}",
        ctl.log()
    );
    drop(ctl);
    common::remove_installation(&swarm, PREFIX).await;
    common::wipe_prefix(&store).await;
}
