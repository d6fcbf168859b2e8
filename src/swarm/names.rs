//! Swarm names and labels (docs/design.md, "Swarm naming"), compatible with Kargo and `docker stack`.

use sha2::{Digest, Sha256};

/// Label `docker stack` uses to group a stack's objects; kept so `docker stack ls` shows ours.
pub const STACK_NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// Label naming the kargo installation (its etcd prefix) that owns an object.
pub const INSTALLATION_LABEL: &str = "dev.kargo.installation";
/// Label naming the `<Stack>/<Service>` that wants an object.
pub const OWNER_LABEL: &str = "dev.kargo.owner";
/// Label holding the hash of the desired spec last pushed.
pub const SPEC_HASH_LABEL: &str = "dev.kargo.spec-hash";

/// Prefix of the node label in which an installation records the node labels it set
/// (`dev.kargo.labels.<hash of the installation>` = their keys, comma-separated): kargo
/// removes only those, never a label set by hand or by another installation.
pub const NODE_LABELS_RECORD_PREFIX: &str = "dev.kargo.labels.";

/// The node label recording which labels `installation` set on a node.
pub fn node_labels_record(installation: &str) -> String {
    let hash = super::render::hash_json(&serde_json::Value::String(installation.to_string()));
    format!("{NODE_LABELS_RECORD_PREFIX}{hash}")
}

/// Swarm name of the config holding a Configuration file: `<file>-<first 10 hex of
/// sha256(installation, NUL, content)>`. A change of content makes a new object, and two
/// installations shipping the same content get configs of their own.
pub fn config_name(installation: &str, file: &str, content: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(installation.as_bytes());
    hasher.update([0]);
    hasher.update(content.as_bytes());
    format!("{file}-{}", &hex::encode(hasher.finalize())[..10])
}

/// The name kargo gave configs and secrets before [`config_name`]: `<file>-<first 10 hex
/// of sha256(content)>`. Services still mounting a config by this name keep it until its
/// content changes, so upgrading kargo rolls no service.
pub fn content_name(file: &str, content: &str) -> String {
    format!(
        "{file}-{}",
        &hex::encode(Sha256::digest(content.as_bytes()))[..10]
    )
}

/// The longest Swarm service name.
pub const MAX_SERVICE_NAME: usize = 63;

/// The Swarm stack of a kargo Stack: `kargo-<stack>`.
pub fn swarm_stack(stack: &str) -> String {
    format!("kargo-{stack}")
}

/// The Swarm service of a Service in a Stack: `kargo-<stack>_<service>`.
pub fn swarm_service(stack: &str, service: &str) -> String {
    format!("kargo-{stack}_{service}")
}

/// The Swarm volume of a named volume in a Stack: `kargo-<stack>_<volume>` (docker stack's naming).
pub fn swarm_volume(stack: &str, volume: &str) -> String {
    format!("kargo-{stack}_{volume}")
}

/// Splits `kargo-<stack>_<service>` back into its parts.
pub fn parse_swarm_service(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("kargo-")?.split_once('_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_like_docker_stack() {
        assert_eq!(swarm_service("dbs", "mongodb"), "kargo-dbs_mongodb");
        assert_eq!(
            parse_swarm_service("kargo-dbs_mongodb"),
            Some(("dbs", "mongodb"))
        );
        assert_eq!(parse_swarm_service("other_x"), None);
        assert_eq!(swarm_volume("dbs", "data"), "kargo-dbs_data");
    }

    #[test]
    fn config_names_differ_between_installations_and_keep_the_old_rule_apart() {
        let a = config_name("/kargo", "app.conf", "x=1");
        assert_ne!(a, config_name("/other", "app.conf", "x=1"));
        assert_ne!(a, config_name("/kargo", "app.conf", "x=2"));
        assert!(a.starts_with("app.conf-") && a.len() == "app.conf-".len() + 10);
        // The rule of earlier releases, which services deployed by them still mount.
        assert_eq!(content_name("app.conf", "x=1"), "app.conf-1f206b11c2");
        assert_ne!(a, content_name("app.conf", "x=1"));
    }
}
