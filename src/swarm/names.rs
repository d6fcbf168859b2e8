//! Swarm names and labels (docs/design.md, "Swarm naming"), compatible with Kargo and `docker stack`.

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
}
