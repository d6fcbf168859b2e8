//! The default configuration: the catalog of preconfigured Services in `defaults/`,
//! compiled into the binary (docs/design.md, "The three configurations").
//!
//! Each entry is one `kind: Service` manifest, `defaults/<name>.yaml`. Under
//! `defaults: builtin` the controller layers a user Service of the same name over the
//! entry's spec (JSON Merge Patch), so users change one setting without copying the file.
//! String values hold `${VAR}` references to the Environment's variables; they are
//! interpolated after the merge, never here.

/// Every catalog entry: its name and its YAML text, sorted by name.
const CATALOG: &[(&str, &str)] = &[
    ("adminer", include_str!("../../defaults/adminer.yaml")),
    (
        "alertmanager",
        include_str!("../../defaults/alertmanager.yaml"),
    ),
    ("cadvisor", include_str!("../../defaults/cadvisor.yaml")),
    (
        "express-gateway",
        include_str!("../../defaults/express-gateway.yaml"),
    ),
    ("grafana", include_str!("../../defaults/grafana.yaml")),
    ("kano", include_str!("../../defaults/kano.yaml")),
    ("logspout", include_str!("../../defaults/logspout.yaml")),
    ("loki", include_str!("../../defaults/loki.yaml")),
    ("mapcache", include_str!("../../defaults/mapcache.yaml")),
    ("mapserver", include_str!("../../defaults/mapserver.yaml")),
    ("maputnik", include_str!("../../defaults/maputnik.yaml")),
    ("mariadb", include_str!("../../defaults/mariadb.yaml")),
    (
        "mongo-express",
        include_str!("../../defaults/mongo-express.yaml"),
    ),
    ("mongodb", include_str!("../../defaults/mongodb.yaml")),
    (
        "node-exporter",
        include_str!("../../defaults/node-exporter.yaml"),
    ),
    ("postgis", include_str!("../../defaults/postgis.yaml")),
    ("prometheus", include_str!("../../defaults/prometheus.yaml")),
    ("promtail", include_str!("../../defaults/promtail.yaml")),
    ("redis", include_str!("../../defaults/redis.yaml")),
    (
        "redis-commander",
        include_str!("../../defaults/redis-commander.yaml"),
    ),
    ("registry", include_str!("../../defaults/registry.yaml")),
    ("thredds", include_str!("../../defaults/thredds.yaml")),
    (
        "tileservergl",
        include_str!("../../defaults/tileservergl.yaml"),
    ),
    ("traefik", include_str!("../../defaults/traefik.yaml")),
    ("weacast", include_str!("../../defaults/weacast.yaml")),
];

/// A catalog entry whose password is a Swarm secret: the file `file`, whose content is the
/// Environment's sensitive variable `variable`, mounted at `/run/secrets/<file>` and read
/// through the image's `*_FILE` variable. The entry in `defaults/` has that form.
#[derive(Clone, Copy, Debug)]
pub struct SecretPassword {
    /// The catalog entry.
    pub entry: &'static str,
    /// The Environment variable holding the password.
    pub variable: &'static str,
    /// The built-in sensitive file, planned when `variable` is a sensitive variable.
    pub file: &'static str,
    /// A merge patch over the entry giving back the form it had before passwords became
    /// secrets (password in `env`), byte for byte: used while `variable` is not a sensitive
    /// variable, so upgrading kargo rolls no running service (docs/security.md, "The catalog").
    pub plain: &'static str,
}

/// The catalog entries whose passwords are Swarm secrets once their variable is sensitive.
pub const SECRET_PASSWORDS: &[SecretPassword] = &[
    SecretPassword {
        entry: "grafana",
        variable: "GRAFANA_ADMIN_PASSWORD",
        file: "grafana_admin_password",
        plain: r#"{"secrets": null, "env": {"GF_SECURITY_ADMIN_PASSWORD__FILE": null,
            "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD (as a sensitive variable, it stays out of the service's env)}"}}"#,
    },
    SecretPassword {
        entry: "mariadb",
        variable: "MARIADB_ROOT_PASSWORD",
        file: "mariadb_root_password",
        plain: r#"{"secrets": null, "env": {"MYSQL_ROOT_PASSWORD_FILE": null,
            "MYSQL_ROOT_PASSWORD": "${MARIADB_ROOT_PASSWORD:?set MARIADB_ROOT_PASSWORD (as a sensitive variable, it stays out of the service's env)}"},
            "healthcheck": {"test": ["CMD-SHELL", "mysqladmin ping --silent -uroot -p\"$${MYSQL_ROOT_PASSWORD}\""]}}"#,
    },
    SecretPassword {
        entry: "mongodb",
        variable: "MONGODB_ROOT_PASSWORD",
        file: "mongodb_root_password",
        plain: r#"{"secrets": null, "env": null}"#,
    },
    SecretPassword {
        entry: "postgis",
        variable: "POSTGIS_PASSWORD",
        file: "postgis_password",
        plain: r#"{"secrets": null, "env": {"POSTGRES_PASSWORD_FILE": null,
            "POSTGRES_PASSWORD": "${POSTGIS_PASSWORD:?set POSTGIS_PASSWORD (as a sensitive variable, it stays out of the service's env)}"}}"#,
    },
];

/// The catalog spec `spec` of the entry `name` for an Environment whose sensitive variables
/// `is_sensitive` tells: an entry whose password variable is not sensitive gets its earlier
/// form back (password in `env`, see [`SecretPassword::plain`]). A spec that does not mount
/// the entry's secret (a test's own catalog) is left as it is.
pub fn for_environment(
    name: &str,
    spec: serde_json::Value,
    is_sensitive: &dyn Fn(&str) -> bool,
) -> serde_json::Value {
    let Some(rule) = SECRET_PASSWORDS.iter().find(|r| r.entry == name) else {
        return spec;
    };
    let mounts_it = spec
        .get("secrets")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|l| {
            l.iter()
                .any(|m| m.get("file").and_then(serde_json::Value::as_str) == Some(rule.file))
        });
    if !mounts_it || is_sensitive(rule.variable) {
        return spec;
    }
    match serde_json::from_str::<serde_json::Value>(rule.plain) {
        Ok(patch) => crate::manifest::merge::merge_layers([&spec, &patch]),
        // A constant checked by the unit tests; never reached.
        Err(_) => spec,
    }
}

/// A catalog entry that does not read (a bug in kargo's build, caught by the unit tests).
#[derive(Debug, thiserror::Error)]
pub enum DefaultsError {
    /// The entry is not valid YAML.
    #[error("default service {name}: invalid YAML: {source}")]
    Parse {
        /// The catalog entry.
        name: String,
        /// The parser's error.
        source: serde_yaml::Error,
    },
    /// The entry has no `spec` map.
    #[error("default service {name}: the manifest has no spec")]
    MissingSpec {
        /// The catalog entry.
        name: String,
    },
}

/// The names of the catalog's Services, sorted.
pub fn names() -> Vec<&'static str> {
    CATALOG.iter().map(|(name, _)| *name).collect()
}

/// Whether the catalog has a Service of that name.
pub fn contains(name: &str) -> bool {
    CATALOG.iter().any(|(n, _)| *n == name)
}

/// The YAML text of a catalog entry (a whole `kind: Service` manifest), as shipped.
pub fn source(name: &str) -> Option<&'static str> {
    CATALOG
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// A catalog entry as a whole document (apiVersion, kind, metadata, spec) in JSON.
pub fn document(name: &str) -> Option<Result<serde_json::Value, DefaultsError>> {
    let text = source(name)?;
    Some(
        serde_yaml::from_str::<serde_json::Value>(text).map_err(|source| DefaultsError::Parse {
            name: name.to_string(),
            source,
        }),
    )
}

/// A catalog entry's spec in JSON: what user Services are merged over.
pub fn spec(name: &str) -> Option<Result<serde_json::Value, DefaultsError>> {
    let doc = match document(name)? {
        Ok(doc) => doc,
        Err(e) => return Some(Err(e)),
    };
    Some(match doc.get("spec") {
        Some(spec @ serde_json::Value::Object(_)) => Ok(spec.clone()),
        _ => Err(DefaultsError::MissingSpec {
            name: name.to_string(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DeployMode, Document, PublishMode, ServiceSpec, ServiceStatus, VolumeType};
    use std::collections::BTreeMap;

    fn typed(name: &str) -> ServiceSpec {
        let spec = spec(name)
            .unwrap_or_else(|| panic!("{name} is not in the catalog"))
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_value(spec).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn every_entry_is_a_service_document_that_deserializes() {
        for name in names() {
            let doc = document(name)
                .unwrap_or_else(|| panic!("{name} missing"))
                .unwrap_or_else(|e| panic!("{e}"));
            let parsed: Document<ServiceSpec, ServiceStatus> =
                serde_json::from_value(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed.api_version, crate::api::API_VERSION, "{name}");
            assert_eq!(parsed.kind, "Service", "{name}");
            assert_eq!(parsed.metadata.name, name, "metadata.name of {name}.yaml");
            assert!(parsed.status.is_none(), "{name} must not carry a status");
            let image = parsed.spec.image.unwrap_or_default();
            assert!(image.contains(':'), "{name}: image {image:?} has no tag");
        }
    }

    #[test]
    fn every_entry_starts_with_the_schema_modeline_and_quotes_its_image() {
        for name in names() {
            let text = source(name).unwrap_or_default();
            assert_eq!(
                text.lines().next(),
                Some("# yaml-language-server: $schema=../schemas/kargo.json"),
                "{name}"
            );
            assert!(
                text.lines().any(|l| l.starts_with("  image: \"")),
                "{name}: the image must be a quoted string"
            );
            assert_eq!(
                text.matches("\n---").count(),
                0,
                "{name}: one document only"
            );
        }
    }

    #[test]
    fn the_manifest_reader_reads_every_entry_as_serde_yaml_does() {
        for name in names() {
            let text = source(name).unwrap_or_default();
            let docs = crate::manifest::yaml::parse_documents(text.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(docs.len(), 1, "{name}");
            let expected = document(name).and_then(Result::ok);
            assert_eq!(Some(&docs[0].value), expected.as_ref(), "{name}");
        }
    }

    #[test]
    fn names_are_sorted_and_match_the_files_in_defaults() {
        let listed = names();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(listed, sorted);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("defaults");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|f| f.strip_suffix(".yaml"))
                    .map(str::to_string)
            })
            .collect();
        files.sort();
        assert_eq!(listed, files, "CATALOG and defaults/ disagree");
    }

    #[test]
    fn catalog_covers_kargos_default_services() {
        for name in [
            "traefik",
            "mongodb",
            "postgis",
            "mariadb",
            "redis",
            "prometheus",
            "alertmanager",
            "node-exporter",
            "cadvisor",
            "grafana",
            "loki",
            "promtail",
            "logspout",
            "registry",
            "express-gateway",
            "tileservergl",
            "mapserver",
            "mapcache",
            "thredds",
            "maputnik",
            "kano",
            "weacast",
            "adminer",
            "mongo-express",
            "redis-commander",
        ] {
            assert!(contains(name), "{name}");
        }
        assert!(source("nope").is_none());
        assert!(spec("nope").is_none());
    }

    #[test]
    fn every_interpolation_in_the_catalog_is_well_formed() {
        use crate::manifest::interpolate::{interpolate_value, referenced_variables};
        for name in names() {
            let spec = spec(name)
                .unwrap_or_else(|| panic!("{name}"))
                .unwrap_or_else(|e| panic!("{e}"));
            let text = serde_json::to_string(&spec).unwrap_or_default();
            let vars: BTreeMap<String, String> = referenced_variables(&text)
                .into_iter()
                .map(|v| (v, "x".to_string()))
                .collect();
            if let Err(errors) = interpolate_value(&spec, &vars, "/spec") {
                panic!("{name}: {errors:?}");
            }
        }
    }

    #[test]
    fn every_entry_passes_the_schema_as_stored_and_once_interpolated() {
        use crate::api::Kind;
        use crate::api::schema::Mode;
        use crate::manifest::interpolate::{interpolate_value, referenced_variables};
        use crate::manifest::validate::validate_spec;
        for name in names() {
            let spec = spec(name)
                .unwrap_or_else(|| panic!("{name}"))
                .unwrap_or_else(|e| panic!("{e}"));
            let stored = validate_spec(Kind::Service, Mode::Stored, &spec);
            assert!(stored.is_empty(), "{name}: {stored:?}");
            let vars: BTreeMap<String, String> =
                referenced_variables(&serde_json::to_string(&spec).unwrap_or_default())
                    .into_iter()
                    .map(|v| (v, "x".to_string()))
                    .collect();
            let merged = interpolate_value(&spec, &vars, "/spec").unwrap_or_default();
            let violations = validate_spec(Kind::Service, Mode::Merged, &merged);
            assert!(violations.is_empty(), "{name}: {violations:?}");
        }
    }

    #[test]
    fn entries_keep_kargos_placement_and_ports() {
        let traefik = typed("traefik");
        assert_eq!(traefik.image.as_deref(), Some("traefik:1.7-alpine"));
        let ports = traefik.ports.clone().unwrap_or_default();
        assert_eq!(
            ports
                .iter()
                .map(|p| (p.target, p.published, p.mode))
                .collect::<Vec<_>>(),
            vec![
                (80, Some(80), Some(PublishMode::Host)),
                (443, Some(443), Some(PublishMode::Host))
            ]
        );
        let constraints = |s: &ServiceSpec| {
            s.deploy
                .as_ref()
                .and_then(|d| d.placement.as_ref())
                .and_then(|p| p.constraints.clone())
                .unwrap_or_default()
        };
        assert_eq!(constraints(&traefik), vec!["node.role==manager"]);

        for global in ["node-exporter", "cadvisor", "promtail", "logspout"] {
            let mode = typed(global).deploy.and_then(|d| d.mode);
            assert_eq!(mode, Some(DeployMode::Global), "{global}");
        }

        let mongodb = typed("mongodb");
        assert_eq!(mongodb.image.as_deref(), Some("mongo:4.2"));
        assert_eq!(constraints(&mongodb), vec!["node.labels.mongodb==true"]);
        let volume = mongodb.volumes.unwrap_or_default().remove(0);
        assert_eq!(
            (
                volume.type_,
                volume.source.as_deref(),
                volume.target.as_str()
            ),
            (VolumeType::Volume, Some("mongodb_data"), "/data/db")
        );

        let redis = typed("redis");
        assert_eq!(redis.image.as_deref(), Some("redis:5"));
        assert_eq!(
            redis
                .healthcheck
                .clone()
                .map(|h| h.test)
                .unwrap_or_default(),
            vec!["CMD", "redis-cli", "ping"]
        );
        assert_eq!(constraints(&redis), vec!["node.role==manager"]);
        assert_eq!(redis.volumes.unwrap_or_default()[0].target, "/data");

        let published = |name: &str| {
            typed(name)
                .ports
                .unwrap_or_default()
                .first()
                .and_then(|p| p.published)
        };
        assert_eq!(published("kano"), Some(10001));
        assert_eq!(published("weacast"), Some(10000));

        let mapcache = typed("mapcache").deploy.unwrap_or_default();
        assert_eq!(mapcache.replicas, Some(2));
        assert_eq!(
            mapcache.placement.and_then(|p| p.max_replicas_per_node),
            Some(1)
        );

        for app in ["kano", "weacast", "maputnik", "adminer", "mongo-express"] {
            assert_eq!(constraints(&typed(app)), vec!["node.role==worker"], "{app}");
        }
    }

    /// The entries as they were before passwords became Swarm secrets.
    const ENV_PASSWORD_ENTRIES: &[(&str, &str)] = &[
        (
            "grafana",
            include_str!("../../tests/fixtures/catalog-env-passwords/grafana.yaml"),
        ),
        (
            "mariadb",
            include_str!("../../tests/fixtures/catalog-env-passwords/mariadb.yaml"),
        ),
        (
            "mongodb",
            include_str!("../../tests/fixtures/catalog-env-passwords/mongodb.yaml"),
        ),
        (
            "postgis",
            include_str!("../../tests/fixtures/catalog-env-passwords/postgis.yaml"),
        ),
    ];

    #[test]
    fn a_plain_password_variable_keeps_the_earlier_entry_exactly() {
        use crate::manifest::interpolate::{interpolate_value, referenced_variables};
        // What a running service was deployed with must not move on upgrade.
        assert_eq!(SECRET_PASSWORDS.len(), ENV_PASSWORD_ENTRIES.len());
        for (name, text) in ENV_PASSWORD_ENTRIES {
            let before: serde_json::Value =
                serde_yaml::from_str::<serde_json::Value>(text).unwrap()["spec"].clone();
            let now = spec(name).unwrap().unwrap();
            assert_ne!(now, before, "{name}: the entry moved its password");
            let plain = for_environment(name, now, &|_| false);
            // The same spec once interpolated: only an error message (never rendered) moved.
            let vars: BTreeMap<String, String> =
                referenced_variables(&serde_json::to_string(&before).unwrap())
                    .into_iter()
                    .map(|v| (v, "x".to_string()))
                    .collect();
            assert_eq!(
                interpolate_value(&plain, &vars, "/spec").unwrap(),
                interpolate_value(&before, &vars, "/spec").unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_sensitive_password_variable_reaches_the_image_through_a_secret_file() {
        use crate::manifest::interpolate::referenced_variables;
        for rule in SECRET_PASSWORDS {
            let spec = for_environment(rule.entry, spec(rule.entry).unwrap().unwrap(), &|v| {
                v == rule.variable
            });
            let text = serde_json::to_string(&spec).unwrap();
            assert!(
                !referenced_variables(&text)
                    .iter()
                    .any(|v| v == rule.variable),
                "{}: {text}",
                rule.entry
            );
            let target = format!("/run/secrets/{}", rule.file);
            let env = spec["env"].as_object().unwrap();
            assert!(
                env.iter()
                    .any(|(k, v)| k.ends_with("_FILE") && v.as_str() == Some(target.as_str())),
                "{}: {env:?}",
                rule.entry
            );
            assert_eq!(spec["secrets"], serde_json::json!([{"file": rule.file}]));
            // A healthcheck never reads the password from the environment.
            assert!(
                !spec["healthcheck"].to_string().contains("PASSWORD}"),
                "{}",
                rule.entry
            );
        }
        let mariadb = spec("mariadb").unwrap().unwrap();
        assert!(
            mariadb["healthcheck"]["test"][1]
                .as_str()
                .unwrap()
                .contains("$$(cat /run/secrets/mariadb_root_password)")
        );
        // Another catalog's spec of the same name, without the mount, is left alone.
        let own = serde_json::json!({"image": "postgres:13"});
        assert_eq!(for_environment("postgis", own.clone(), &|_| false), own);
    }

    #[test]
    fn networks_are_the_logical_front_and_back() {
        for name in names() {
            for network in typed(name).networks.unwrap_or_default() {
                assert!(network == "front" || network == "back", "{name}: {network}");
            }
        }
    }
}
