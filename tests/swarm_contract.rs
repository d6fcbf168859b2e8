//! The Swarm contract against the real engine (the same checks run on the in-memory
//! `FakeSwarm` in the library's unit tests): what the fake models, the engine does.

mod common;

use std::time::Duration;

use kargo::swarm::{Swarm, SwarmClient};

use common::swarm_contract as contract;

const INSTALLATION: &str = "/kargo-test-contract";

macro_rules! on_engine {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let swarm = common::swarm().await;
            // Each check has names of its own: Swarm names are global, checks run at once.
            let name = stringify!($name);
            let tag = format!("kc{}{}", name.len(), name[..6].replace('_', ""));
            let installation = format!("{INSTALLATION}/{tag}");
            let subject = contract::Subject {
                swarm: &swarm,
                installation: &installation,
                tag: &tag,
                image: common::image("1.0"),
                other_image: common::image("1.1"),
                missing_image: common::image("missing"),
                settle: Duration::from_secs(60),
            };
            clean_installation(&swarm, &installation).await;
            contract::$name(&subject).await;
            clean_installation(&swarm, &installation).await;
            for net in ["net", "usednet"] {
                let _ = std::process::Command::new("docker")
                    .args(["network", "rm", &format!("kargo-{tag}-{net}")])
                    .output();
            }
        }
    )*};
}

/// Removes what a check may have left (a failed run): services, configs, secrets.
async fn clean_installation(swarm: &SwarmClient, installation: &str) {
    common::remove_installation(swarm, installation).await;
    for secret in [false, true] {
        for f in swarm
            .list_files(installation, secret)
            .await
            .unwrap_or_default()
        {
            let _ = Swarm::remove_file(swarm, &f.id, secret).await;
        }
    }
}

on_engine!(
    services_are_listed_inspected_and_versioned,
    tasks_run_the_current_spec,
    a_missing_image_is_rejected,
    a_failed_update_rolls_back,
    networks_are_ensured_once,
    a_network_is_created_as_declared_and_never_recreated,
    networks_in_use_are_not_removed,
    files_in_use_are_not_removed,
    node_labels_are_set_exactly,
    events_report_service_changes,
    a_refused_write_changes_nothing,
    an_unknown_field_is_refused_before_any_write,
);
