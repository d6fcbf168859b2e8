//! `kargo import kargo`: Kalisio's Kargo sample workspace (tests/fixtures/kargo-sample)
//! becomes one kargo workspace that renders every service of its `STACKS` once the secrets
//! it asks for are given, and whose services are created on the real Swarm (the images
//! cannot be pulled here: created, not Ready).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kargo::import::kargo::{KargoImport, import_kargo_workspace};
use serde_json::{Value, json};

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kargo-sample")
}

/// The services of the sample's `STACKS`, as Swarm names them.
const SWARM_NAMES: [&str; 8] = [
    "kargo-dbs_mongodb",
    "kargo-dbs_postgis",
    "kargo-services_redis",
    "kargo-apps_kano",
    "kargo-apps_weacast",
    "kargo-apps_tileservergl",
    "kargo-apps_maputnik",
    "kargo-apps_thredds",
];

fn of_kind<'a>(r: &'a KargoImport, kind: &str) -> Vec<&'a Value> {
    r.documents.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(r: &'a KargoImport, kind: &str, name: &str) -> &'a Value {
    of_kind(r, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The import with the secrets it asks for given, as a user would add them.
fn with_secrets(r: &KargoImport) -> String {
    let mut docs = r.documents.clone();
    for d in &mut docs {
        if d["kind"] == "Environment" {
            for s in &r.secrets {
                d["spec"]["variables"][s] = json!(format!("given-{}", s.to_lowercase()));
            }
        }
    }
    docs.iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).expect("yaml")))
        .collect()
}

#[test]
fn the_sample_becomes_one_workspace_naming_what_it_leaves_out() {
    let r = import_kargo_workspace(&sample()).expect("import");
    let kinds: Vec<&str> = r
        .documents
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    assert_eq!(
        &kinds[..5],
        ["Configuration", "Environment", "Stack", "Stack", "Stack"]
    );
    let configuration = named(&r, "Configuration", "main");
    assert_eq!(configuration["spec"]["environment"], "main");
    assert_eq!(
        configuration["spec"]["defaults"], "none",
        "every service comes from the workspace, nothing from the catalog"
    );
    assert!(
        configuration["spec"]["files"]["tileservergl_conf"]["content"]
            .as_str()
            .is_some_and(|c| c.contains("OpenMapTiles/osm.mbtiles"))
    );
    // The services that bind-mount host folders, and only they, are granted `hostPath`.
    let exemptions = &configuration["spec"]["policy"]["exemptions"];
    assert_eq!(exemptions["tileservergl"]["allow"], json!(["hostPath"]));
    assert!(exemptions.get("kano").is_none(), "{exemptions}");
    let env = named(&r, "Environment", "main");
    assert_eq!(env["spec"]["unsetVariables"], "empty");
    assert_eq!(env["spec"]["stacks"], json!(["dbs", "services", "apps"]));
    assert_eq!(
        named(&r, "Stack", "apps")["spec"]["services"],
        json!(["kano", "weacast", "tileservergl", "maputnik", "thredds"])
    );
    assert_eq!(of_kind(&r, "Service").len(), 8);

    // Docker's YAML reads `\'` in double quotes as a quote (deploy/mongodb.yml).
    let mongodb = named(&r, "Service", "mongodb");
    assert_eq!(
        mongodb["spec"]["healthcheck"]["test"][2],
        "'db.runCommand(\"ping\").ok'"
    );
    // `replicas: ${KANO_REPLICAS}` is kept for the Environment to fill.
    assert_eq!(
        named(&r, "Service", "kano")["spec"]["deploy"]["replicas"],
        "${KANO_REPLICAS}"
    );
    // `${TILESERVERGL_DATA_PATH}:/mbtiles` with a host path as value is a bind mount.
    let mounts = &named(&r, "Service", "tileservergl")["spec"]["volumes"];
    assert_eq!(mounts[1]["source"], "${TILESERVERGL_DATA_PATH}");
    assert_eq!(mounts[1]["type"], "bind");

    // Kargo's build/maputnik/dockerfile and build/maputnik.sh become maputnik's build.
    let build = &named(&r, "Service", "maputnik")["spec"]["build"];
    assert!(
        build["context"]
            .as_str()
            .is_some_and(|c| c.starts_with('/') && c.ends_with("kargo-sample/build/maputnik")),
        "{build}"
    );
    assert_eq!(build["dockerfile"], "dockerfile");
    assert_eq!(build["args"], json!({"TAG": "${MAPUTNIK_TAG}"}));
    assert!(named(&r, "Service", "kano")["spec"].get("build").is_none());
    assert!(
        r.warnings.iter().any(|w| w.starts_with(
            "build/maputnik: carried over as service maputnik's build (kargo build maputnik, args TAG)"
        )),
        "{:?}",
        r.warnings
    );
    assert_eq!(
        r.not_carried,
        ["deploy/mongors.yml.tpl", "deploy/postgis_before.sh"]
    );
    assert_eq!(
        r.secrets,
        [
            "AUTH_PASSWORD",
            "KANO_APP_SECRET",
            "KANO_CESIUM_TOKEN",
            "SECRET"
        ]
    );
    assert!(
        r.unset.contains(&"KANO_DB_URL".to_string()),
        "{:?}",
        r.unset
    );
}

#[test]
fn the_cli_prints_the_documents_and_lists_hooks_and_secrets_on_stderr() {
    let dir = sample();
    let out = common::kargo(
        "/kargo-test-import-kargo-cli",
        &["import", "kargo", dir.to_str().expect("utf-8 path")],
        None,
    );
    let stdout = common::expect_code(&out, 0, "import kargo");
    let stderr = common::text(&out.stderr);
    assert_eq!(common::objects(&stdout).len(), 13, "{stdout}");
    assert!(
        stderr.contains("not carried over: deploy/postgis_before.sh"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not carried over: deploy/mongors.yml.tpl"),
        "{stderr}"
    );
    assert!(
        stderr.contains("secrets to give (set them in environment/main's variables): AUTH_PASSWORD KANO_APP_SECRET KANO_CESIUM_TOKEN SECRET"),
        "{stderr}"
    );
}

#[test]
fn every_service_of_the_sample_renders_once_the_secrets_are_given() {
    let r = import_kargo_workspace(&sample()).expect("import");
    let dir = std::env::temp_dir().join(format!("kargo-import-kargo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("workspace.yaml");
    std::fs::write(&file, with_secrets(&r)).expect("write");
    let out = common::kargo(
        "/kargo-test-import-kargo-render",
        &["render", "-f", file.to_str().expect("utf-8"), "-o", "json"],
        None,
    );
    let _ = std::fs::remove_dir_all(&dir);
    let rendered = common::expect_code(&out, 0, "render");
    for name in SWARM_NAMES {
        assert!(
            rendered.contains(&format!("\"Name\": \"{name}\"")),
            "{name} not rendered: {rendered}"
        );
    }
    assert!(rendered.contains("\"Image\": \"kalisio/kano:1.0.0-prod\""));
    assert!(rendered.contains("APP_SECRET=given-kano_app_secret"));
}

#[tokio::test]
async fn the_samples_services_are_created_on_the_swarm() {
    let prefix = "/kargo-test-import-kargo";
    let store = common::etcd_store(prefix).await;
    let swarm = common::swarm().await;
    common::remove_installation(&swarm, prefix).await;
    let r = import_kargo_workspace(&sample()).expect("import");
    for o in common::objects(&with_secrets(&r)) {
        store.apply(&o).await.expect("apply");
    }
    let controller = common::controller(&store, swarm.clone());
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<&str> = SWARM_NAMES.to_vec();
    while !missing.is_empty() {
        assert!(
            Instant::now() < deadline,
            "not created within 90 s: {missing:?}"
        );
        controller.pass().await.expect("reconcile pass");
        let mut still = Vec::new();
        for name in missing {
            if swarm
                .inspect_service(name)
                .await
                .expect("inspect")
                .is_none()
            {
                still.push(name);
            }
        }
        missing = still;
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let kano = swarm
        .inspect_service("kargo-apps_kano")
        .await
        .expect("inspect")
        .expect("kano created");
    assert_eq!(
        kano.spec
            .pointer("/Mode/Replicated/Replicas")
            .and_then(Value::as_u64),
        Some(1),
        "replicas from ${{KANO_REPLICAS}}"
    );
    let env = kano
        .spec
        .pointer("/TaskTemplate/ContainerSpec/Env")
        .cloned()
        .unwrap_or_default();
    assert!(
        env.as_array()
            .is_some_and(|e| e.contains(&json!("APP_SECRET=given-kano_app_secret"))),
        "{env}"
    );
    let tiles = swarm
        .inspect_service("kargo-apps_tileservergl")
        .await
        .expect("inspect")
        .expect("tileservergl created");
    let mounts = tiles
        .spec
        .pointer("/TaskTemplate/ContainerSpec/Mounts")
        .cloned()
        .unwrap_or_default();
    assert!(
        mounts.as_array().is_some_and(|m| m
            .iter()
            .any(|m| m["Type"] == "bind" && m["Source"] == "/mnt/data0/tileservergl_data")),
        "{mounts}"
    );

    common::wipe_prefix(&store).await;
    common::remove_installation(&swarm, prefix).await;
    for f in swarm.list_files(prefix, false).await.unwrap_or_default() {
        let _ = swarm.remove_file(&f.id, false).await;
    }
    common::wipe_prefix(&store).await;
}
