//! The policy on what a Service may do to the nodes it runs on, after the Kubernetes Pod
//! Security Standards: the Configuration chooses a level (`privileged`, `baseline` — the
//! default —, `restricted`), host folders that bind mounts may use, and exemptions per
//! Service. Pure: `validate`, `apply` and the controller's plan call these same rules, so
//! they refuse the same Services with the same words (docs/security.md, "Policy").
//!
//! What the Swarm API and the Service type can express is checked: bind mounts (any host
//! path outside the allow-list; the Docker or containerd socket, or a folder holding it,
//! always), the `host` network, and under `restricted` a root or unset `user`, writable
//! bind mounts and ports published in `host` mode. Swarm has no privileged mode, added
//! capabilities or host PID namespace for services, and the Service type has no field for
//! them, so there is nothing there to refuse.
//!
//! A host path is judged by its text after lexical normalisation (`.`, `..`, repeated and
//! trailing slashes): a symbolic link on the node to the socket is beyond what a manifest
//! shows, so the allow-list should name folders whose content the operators control.

pub mod manifests;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::api::{
    PolicyExemption, PolicyLevel, PolicyRule, PolicySpec, PublishMode, ServiceSpec, VolumeType,
};

/// Annotation of a catalog entry (defaults/) naming the rules its own spec needs waived
/// (comma-separated rule names): the entry's exemption holds for its own image repository
/// and exactly its own host paths, so overriding the image or adding a host path drops it.
pub const CATALOG_EXEMPTION_ANNOTATION: &str = "kargo.dev/policy-exemption";

/// Sockets that give root on the node to whoever can reach them.
const ROOT_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
];

/// One thing a Service does that the policy refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule broken (the name an exemption waives it by).
    pub rule: PolicyRule,
    /// JSON pointer of the field in the merged spec, e.g. `/spec/volumes/0/source`.
    pub pointer: String,
    /// The field as a person reads it, e.g. `spec.volumes[0].source`.
    pub field: String,
    /// What is refused and why.
    pub message: String,
}

/// The level a policy sets (`baseline` when none is given).
pub fn level(policy: Option<&PolicySpec>) -> PolicyLevel {
    policy.and_then(|p| p.level).unwrap_or_default()
}

/// The word for a level, as manifests write it.
pub fn level_name(level: PolicyLevel) -> &'static str {
    match level {
        PolicyLevel::Privileged => "privileged",
        PolicyLevel::Baseline => "baseline",
        PolicyLevel::Restricted => "restricted",
    }
}

/// The word for a rule, as exemptions write it.
pub fn rule_name(rule: PolicyRule) -> &'static str {
    match rule {
        PolicyRule::HostPath => "hostPath",
        PolicyRule::DockerSocket => "dockerSocket",
        PolicyRule::HostNetwork => "hostNetwork",
        PolicyRule::WritableHostPath => "writableHostPath",
        PolicyRule::RunAsRoot => "runAsRoot",
        PolicyRule::HostPort => "hostPort",
    }
}

/// Checks the merged spec of Service `service` against `policy` (none: `baseline`).
///
/// `network` maps a network as the spec names it (logical `front`/`back` or real) to the
/// real name, so a logical network mapped to `host` is seen. `builtin` is the exemption
/// the catalog entry the spec was merged over ships ([`catalog_exemption`]). Returns every
/// finding no exemption waives; empty means allowed.
pub fn check(
    policy: Option<&PolicySpec>,
    service: &str,
    spec: &ServiceSpec,
    network: &dyn Fn(&str) -> String,
    builtin: Option<&PolicyExemption>,
) -> Vec<Finding> {
    let level = level(policy);
    if level == PolicyLevel::Privileged {
        return Vec::new();
    }
    let image = spec.image.as_deref().map(image_repository);
    let exemptions: Vec<&PolicyExemption> = policy
        .and_then(|p| p.exemptions.get(service))
        .into_iter()
        .chain(builtin)
        .filter(|e| match (&e.image, &image) {
            (None, _) => true,
            (Some(want), Some(have)) => image_repository(want) == *have,
            (Some(_), None) => false,
        })
        .collect();
    let waived = |rule: PolicyRule, path: Option<&str>| {
        exemptions.iter().any(|e| {
            e.allow.contains(&rule)
                && (e.host_paths.is_empty()
                    || path.is_some_and(|p| {
                        e.host_paths
                            .iter()
                            .any(|h| normalize(h).as_deref() == Some(p))
                    }))
        })
    };
    let allowed: Vec<String> = policy
        .map(|p| {
            p.allowed_host_paths
                .iter()
                .filter_map(|h| normalize(h))
                .collect()
        })
        .unwrap_or_default();
    let restricted = level == PolicyLevel::Restricted;
    let mut out = Vec::new();
    let mut find = |rule: PolicyRule, pointer: String, field: String, what: String| {
        out.push(Finding {
            rule,
            pointer,
            field,
            message: format!(
                "{what}: refused by the {} policy (a Configuration may exempt Service {service:?} with spec.policy.exemptions.{service}.allow: [{}])",
                level_name(level),
                rule_name(rule)
            ),
        });
    };
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if v.type_ != VolumeType::Bind {
            continue;
        }
        let Some(source) = v.source.as_deref() else {
            continue;
        };
        // Not interpolated yet (offline `validate`): the controller judges the value.
        if source.contains('$') {
            continue;
        }
        let pointer = format!("/spec/volumes/{i}/source");
        let field = format!("spec.volumes[{i}].source");
        let Some(path) = normalize(source) else {
            find(
                PolicyRule::HostPath,
                pointer,
                field,
                format!("bind mount of {source:?}, which is not an absolute host path"),
            );
            continue;
        };
        if reaches_root_socket(&path) {
            if !waived(PolicyRule::DockerSocket, Some(&path)) {
                find(
                    PolicyRule::DockerSocket,
                    pointer.clone(),
                    field.clone(),
                    format!(
                        "bind mount of {source} reaches the Docker socket, which gives root on the node"
                    ),
                );
            }
        } else if !allowed.iter().any(|a| is_within(&path, a))
            && !waived(PolicyRule::HostPath, Some(&path))
        {
            find(
                PolicyRule::HostPath,
                pointer.clone(),
                field.clone(),
                format!("bind mount of host path {source}, outside the allowed host paths"),
            );
        }
        if restricted
            && v.read_only != Some(true)
            && !waived(PolicyRule::WritableHostPath, Some(&path))
        {
            find(
                PolicyRule::WritableHostPath,
                format!("/spec/volumes/{i}"),
                format!("spec.volumes[{i}]"),
                format!("bind mount of {source} is writable (set readOnly: true)"),
            );
        }
    }
    for (i, n) in spec.networks.iter().flatten().enumerate() {
        if network(n) == "host" && !waived(PolicyRule::HostNetwork, None) {
            find(
                PolicyRule::HostNetwork,
                format!("/spec/networks/{i}"),
                format!("spec.networks[{i}]"),
                format!("network {n:?} is the host's network"),
            );
        }
    }
    if restricted {
        let root = spec.user.as_deref().is_none_or(is_root_user);
        if root && !waived(PolicyRule::RunAsRoot, None) {
            let what = match &spec.user {
                Some(u) => format!("user {u:?} is root"),
                None => "no user is set, so the image's (often root) runs".to_string(),
            };
            find(
                PolicyRule::RunAsRoot,
                "/spec/user".into(),
                "spec.user".into(),
                what,
            );
        }
        for (i, p) in spec.ports.iter().flatten().enumerate() {
            if p.mode == Some(PublishMode::Host) && !waived(PolicyRule::HostPort, None) {
                find(
                    PolicyRule::HostPort,
                    format!("/spec/ports/{i}/mode"),
                    format!("spec.ports[{i}].mode"),
                    format!("port {} is published in host mode", p.target),
                );
            }
        }
    }
    out
}

/// The findings as one line: `policy baseline: service "x": field: what; …`.
pub fn describe(level: PolicyLevel, service: &str, findings: &[Finding]) -> String {
    let list: Vec<String> = findings
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect();
    format!(
        "policy {}: service {service:?}: {}",
        level_name(level),
        list.join("; ")
    )
}

/// The exemption the catalog entry `name` ships, if it names one: the rules of its
/// [`CATALOG_EXEMPTION_ANNOTATION`], for its own image repository and exactly its own
/// host paths (a path written with a `${VARIABLE}` is the user's: never covered).
pub fn catalog_exemption(name: &str) -> Option<&'static PolicyExemption> {
    static TABLE: OnceLock<BTreeMap<String, PolicyExemption>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            crate::manifest::defaults::names()
                .into_iter()
                .filter_map(|n| Some((n.to_string(), exemption_of(n)?)))
                .collect()
        })
        .get(name)
}

/// Reads one catalog entry's exemption (see [`catalog_exemption`]).
fn exemption_of(name: &str) -> Option<PolicyExemption> {
    let doc = crate::manifest::defaults::document(name)?.ok()?;
    let rules = doc
        .pointer("/metadata/annotations")?
        .get(CATALOG_EXEMPTION_ANNOTATION)?
        .as_str()?;
    let allow: Vec<PolicyRule> = rules
        .split(',')
        .filter_map(|r| serde_json::from_value(Value::String(r.trim().to_string())).ok())
        .collect();
    let spec: ServiceSpec = serde_json::from_value(doc.get("spec")?.clone()).ok()?;
    let host_paths = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.type_ == VolumeType::Bind)
        .filter_map(|v| v.source.clone())
        .filter(|s| !s.contains('$'))
        .collect();
    Some(PolicyExemption {
        image: Some(image_repository(spec.image.as_deref()?)),
        allow,
        host_paths,
    })
}

/// The repository of an image reference, without tag or digest, with Docker Hub's implied
/// parts written out: `traefik:1.7` → `docker.io/library/traefik`.
pub fn image_repository(image: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].find(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    };
    match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((host, _)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            name.to_string()
        }
        Some(_) => format!("docker.io/{name}"),
    }
}

/// An absolute path with `.`, `..` and repeated or trailing slashes resolved as text;
/// `None` when it is not absolute.
fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether `path` is `folder` or below it (both normalised).
fn is_within(path: &str, folder: &str) -> bool {
    folder == "/"
        || path == folder
        || path
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether mounting `path` (normalised) exposes a root socket: the socket or a folder holding it.
fn reaches_root_socket(path: &str) -> bool {
    ROOT_SOCKETS.iter().any(|s| is_within(s, path))
}

/// Whether a `user` value (`uid`, `uid:gid`, a name) is root.
fn is_root_user(user: &str) -> bool {
    let who = user.split(':').next().unwrap_or(user).trim();
    who.is_empty() || who == "root" || who.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests;
