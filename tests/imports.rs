//! Imports from the tools users come from: a realistic Kargo `.env`, and a compose file
//! whose result deploys onto the real Swarm and becomes Ready.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use kargo::import::compose::import_compose_file;
use kargo::import::envfile::import_env_files;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn a_kargo_env_becomes_an_environment_and_stacks() {
    let r = import_env_files(&[fixture("kargo.env")], "production").expect("import");
    let env = &r.environment;
    assert_eq!(env["metadata"]["name"], "production");
    let spec = &env["spec"];
    assert_eq!(
        spec["stacks"],
        serde_json::json!(["dbs", "services", "apps"])
    );
    assert_eq!(
        spec["variables"]["SUBDOMAIN"], "kargo.${DOMAIN}",
        "references kept for the Environment to resolve"
    );
    assert_eq!(spec["services"]["kano"]["image"], "kalisio/kano");
    assert_eq!(spec["services"]["kano"]["tag"], "1.2.0");
    assert_eq!(spec["services"]["kano"]["replicas"], 2);
    assert_eq!(
        spec["services"]["kano"]["constraints"],
        serde_json::json!(["node.role==worker", "node.labels.kano==true"])
    );
    assert_eq!(
        spec["services"]["mongodb"]["tag"], "4.2",
        "a tag stays a string"
    );
    assert_eq!(spec["nodes"]["worker-0"]["labels"]["mongodb"], "true");
    assert_eq!(spec["nodes"]["manager"]["labels"]["traefik"], "true");
    assert_eq!(spec["networks"]["front"], "kargo-front");
    let stacks: Vec<&str> = r
        .stacks
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .collect();
    assert_eq!(stacks, ["dbs", "services", "apps"]);
    assert_eq!(
        r.stacks[0]["spec"]["services"],
        serde_json::json!(["mongodb", "postgis"])
    );
    let warned: Vec<usize> = r.warnings.iter().map(|w| w.line).collect();
    assert!(
        warned.contains(&21),
        "KANO_EXTENSION warned at its line: {:?}",
        r.warnings
    );
    assert!(
        warned.contains(&26),
        "command substitution warned at its line: {:?}",
        r.warnings
    );
    // The resolved variables are what Kargo's bash would have computed.
    let vars: std::collections::BTreeMap<String, String> =
        serde_json::from_value(spec["variables"].clone()).expect("variables");
    let resolved = kargo::manifest::interpolate::resolve_variables(&vars).expect("resolves");
    assert_eq!(resolved["SUBDOMAIN"], "kargo.kalisio.xyz");
    assert_eq!(resolved["CONTACT"], "ops@kalisio.xyz");
    assert_eq!(
        resolved["AUTH_PASSWORD"], "pa$$word",
        "single quotes keep dollars literal"
    );
}

#[tokio::test]
async fn an_imported_compose_file_deploys_and_becomes_ready() {
    let prefix = "/kargo-test-compose";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;
    let r = import_compose_file(&fixture("compose.yml"), "imported").expect("import");
    assert!(
        r.warnings.iter().any(|w| w.path.contains("depends_on")),
        "{:?}",
        r.warnings
    );
    let docs: Vec<serde_json::Value> = r
        .configuration
        .into_iter()
        .chain([r.stack])
        .chain(r.services)
        .collect();
    let yaml: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).expect("yaml")))
        .collect();
    for o in common::objects(&yaml) {
        store.apply(&o).await.expect("apply");
    }
    let controller = common::controller(&store, swarm.clone());
    common::converge(&controller, Duration::from_secs(120)).await;
    let api = swarm
        .inspect_service("kargo-imported_api")
        .await
        .expect("inspect")
        .expect("api deployed");
    assert_eq!(
        api.spec
            .pointer("/Mode/Replicated/Replicas")
            .and_then(|v| v.as_u64()),
        Some(2)
    );
    assert!(
        swarm
            .list_files(prefix, false)
            .await
            .expect("configs")
            .iter()
            .any(|c| c.name.starts_with("api_conf-"))
    );
    common::wipe_prefix(&store).await;
    common::remove_installation(&swarm, prefix).await;
    for f in swarm.list_files(prefix, false).await.unwrap_or_default() {
        let _ = swarm.remove_file(&f.id, false).await;
    }
    common::wipe_prefix(&store).await;
}
