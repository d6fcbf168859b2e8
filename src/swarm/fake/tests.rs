//! The Swarm contract, on the in-memory fake (the same checks run on the engine in tests/).

#[path = "../../../tests/common/swarm_contract.rs"]
mod contract;

use std::time::Duration;

use super::FakeSwarm;

const MISSING: &str = "kargo-busybox:missing";

macro_rules! on_fake {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let fake = FakeSwarm::new();
            fake.missing_image(MISSING);
            let subject = contract::Subject {
                swarm: &fake,
                installation: "/kargo-contract-fake",
                tag: "kcfake",
                image: "kargo-busybox:1.0".into(),
                other_image: "kargo-busybox:1.1".into(),
                missing_image: MISSING.into(),
                settle: Duration::from_secs(2),
            };
            contract::$name(&subject).await;
        }
    )*};
}

on_fake!(
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
