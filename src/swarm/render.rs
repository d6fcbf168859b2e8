//! Turning a merged Service spec into the Swarm ServiceSpec kargo sends (Docker API JSON).
//!
//! The result is plain JSON in the Engine API's shape, so `kargo render` can print it,
//! the controller can hash and compare it, and [`super::docker`] checks it against
//! bollard's model before sending. Networks, configs and secrets are named, not by ID:
//! the controller resolves IDs just before a write.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::api::quantity::{
    QuantityError, parse_duration_nanos, parse_memory_bytes, parse_nano_cpus,
};
use crate::api::{
    DeployMode, EndpointMode, PublishMode, ResourceAmounts, ServiceSpec, UpdatePolicy, VolumeType,
};

use super::names::{
    INSTALLATION_LABEL, MAX_SERVICE_NAME, OWNER_LABEL, SPEC_HASH_LABEL, STACK_NAMESPACE_LABEL,
    swarm_service, swarm_stack, swarm_volume,
};

/// The default real names of the logical networks.
pub const DEFAULT_FRONT_NETWORK: &str = "kargo-front";
/// The default real name of the `back` network.
pub const DEFAULT_BACK_NETWORK: &str = "kargo-back";

/// What rendering needs besides the service itself.
#[derive(Clone, Debug)]
pub struct RenderContext {
    /// The installation (etcd prefix) that labels everything kargo creates.
    pub installation: String,
    /// Real name of the `front` network.
    pub front_network: String,
    /// Real name of the `back` network.
    pub back_network: String,
    /// Swarm config/secret names of the Configuration's files, by file name.
    pub files: BTreeMap<String, String>,
}

impl RenderContext {
    /// A context with the default networks and no files.
    pub fn new(installation: &str) -> Self {
        RenderContext {
            installation: installation.to_string(),
            front_network: DEFAULT_FRONT_NETWORK.to_string(),
            back_network: DEFAULT_BACK_NETWORK.to_string(),
            files: BTreeMap::new(),
        }
    }

    /// The real name of a network as a spec names it (logical `front`/`back`, or real).
    pub fn network(&self, logical: &str) -> String {
        match logical {
            "front" => self.front_network.clone(),
            "back" => self.back_network.clone(),
            other => other.to_string(),
        }
    }
}

/// A service as kargo wants it in Swarm.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredService {
    /// The kargo Stack.
    pub stack: String,
    /// The kargo Service.
    pub service: String,
    /// The Swarm service name.
    pub name: String,
    /// The Engine API ServiceSpec, with network and file references by name.
    pub spec: Value,
    /// Hash of `spec` (without the hash label), over sorted canonical JSON.
    pub hash: String,
    /// Real names of the networks it joins.
    pub networks: Vec<String>,
    /// Scheduling mode.
    pub mode: DeployMode,
    /// Tasks wanted for replicated modes.
    pub replicas: u64,
}

/// Why a merged spec cannot become a Swarm service.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// No image after the merge.
    #[error(
        "service {service:?} has no image: set spec.image (or the Environment's services.{service}.image)"
    )]
    MissingImage {
        /// The service.
        service: String,
    },
    /// A quantity string that does not parse.
    #[error("service {service:?}: field {field}: {source}")]
    Quantity {
        /// The service.
        service: String,
        /// The field path.
        field: String,
        /// What is wrong.
        source: QuantityError,
    },
    /// The Swarm name would be too long.
    #[error("service {service:?} in stack {stack:?} makes the Swarm name {name:?} of {len} characters; Swarm allows {max}: shorten the stack or service name", len = name.len(), max = MAX_SERVICE_NAME)]
    NameTooLong {
        /// The stack.
        stack: String,
        /// The service.
        service: String,
        /// The Swarm name.
        name: String,
    },
    /// A config or secret names a file the Configuration does not have.
    #[error(
        "service {service:?} mounts file {file:?}, which the Configuration's files do not hold"
    )]
    UnknownFile {
        /// The service.
        service: String,
        /// The file.
        file: String,
    },
    /// A volume of type volume or bind without a source.
    #[error("service {service:?}: volume at {target:?} needs a source")]
    MissingVolumeSource {
        /// The service.
        service: String,
        /// The mount target.
        target: String,
    },
}

/// Forces a redeploy (`kargo rollout restart`): sets the task template's ForceUpdate
/// counter, which Swarm redeploys on when it changes, and recomputes the hash.
pub fn with_force_update(mut desired: DesiredService, counter: u64) -> DesiredService {
    if let Some(task) = desired
        .spec
        .get_mut("TaskTemplate")
        .and_then(Value::as_object_mut)
    {
        task.insert("ForceUpdate".into(), json!(counter));
    }
    if let Some(labels) = desired
        .spec
        .get_mut("Labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(SPEC_HASH_LABEL);
    }
    desired.hash = hash_json(&desired.spec);
    if let Some(labels) = desired
        .spec
        .get_mut("Labels")
        .and_then(Value::as_object_mut)
    {
        labels.insert(SPEC_HASH_LABEL.into(), json!(desired.hash));
    }
    desired
}

/// Hash of a JSON value over its canonical form (serde_json's maps are sorted).
pub fn hash_json(value: &Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    hex::encode(&digest[..8])
}

/// Renders one service of a stack. Pure: no I/O; the same input gives the same output.
pub fn render_service(
    ctx: &RenderContext,
    stack: &str,
    service: &str,
    spec: &ServiceSpec,
) -> Result<DesiredService, RenderError> {
    let name = swarm_service(stack, service);
    if name.len() > MAX_SERVICE_NAME {
        return Err(RenderError::NameTooLong {
            stack: stack.to_string(),
            service: service.to_string(),
            name,
        });
    }
    let r = Renderer { service };
    let image = spec
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| RenderError::MissingImage {
            service: service.to_string(),
        })?;
    let namespace = swarm_stack(stack);

    let mut container = Map::new();
    container.insert("Image".into(), json!(image));
    if let Some(cmd) = &spec.command {
        container.insert("Command".into(), json!(cmd));
    }
    if let Some(args) = &spec.args {
        container.insert("Args".into(), json!(args));
    }
    if let Some(env) = spec.env.as_ref().filter(|e| !e.is_empty()) {
        let list: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        container.insert("Env".into(), json!(list));
    }
    let mut container_labels = spec.container_labels.clone().unwrap_or_default();
    container_labels.insert(STACK_NAMESPACE_LABEL.into(), namespace.clone());
    container.insert("Labels".into(), json!(container_labels));
    for (field, key) in [
        (&spec.hostname, "Hostname"),
        (&spec.user, "User"),
        (&spec.working_dir, "Dir"),
    ] {
        if let Some(v) = field {
            container.insert(key.into(), json!(v));
        }
    }
    if let Some(v) = &spec.stop_grace_period {
        container.insert(
            "StopGracePeriod".into(),
            json!(r.duration("stopGracePeriod", v)?),
        );
    }
    if let Some(hc) = &spec.healthcheck {
        let mut h = Map::new();
        h.insert("Test".into(), json!(hc.test));
        for (field, key, v) in [
            ("healthcheck.interval", "Interval", &hc.interval),
            ("healthcheck.timeout", "Timeout", &hc.timeout),
            ("healthcheck.startPeriod", "StartPeriod", &hc.start_period),
        ] {
            if let Some(v) = v {
                h.insert(key.into(), json!(r.duration(field, v)?));
            }
        }
        if let Some(n) = hc.retries {
            h.insert("Retries".into(), json!(n));
        }
        container.insert("HealthCheck".into(), Value::Object(h));
    }
    if let Some(volumes) = spec.volumes.as_ref().filter(|v| !v.is_empty()) {
        let mounts = volumes
            .iter()
            .map(|v| {
                let mut m = Map::new();
                m.insert("Target".into(), json!(v.target));
                let need_source = || RenderError::MissingVolumeSource {
                    service: service.to_string(),
                    target: v.target.clone(),
                };
                match v.type_ {
                    VolumeType::Volume => {
                        let src = v.source.as_deref().ok_or_else(need_source)?;
                        m.insert("Type".into(), json!("volume"));
                        m.insert("Source".into(), json!(swarm_volume(stack, src)));
                        m.insert(
                            "VolumeOptions".into(),
                            json!({"Labels": {STACK_NAMESPACE_LABEL: namespace}}),
                        );
                    }
                    VolumeType::Bind => {
                        let src = v.source.as_deref().ok_or_else(need_source)?;
                        m.insert("Type".into(), json!("bind"));
                        m.insert("Source".into(), json!(src));
                    }
                    VolumeType::Tmpfs => {
                        m.insert("Type".into(), json!("tmpfs"));
                    }
                }
                if v.read_only == Some(true) {
                    m.insert("ReadOnly".into(), json!(true));
                }
                Ok(Value::Object(m))
            })
            .collect::<Result<Vec<_>, RenderError>>()?;
        container.insert("Mounts".into(), json!(mounts));
    }
    for (list, key, is_secret) in [
        (&spec.configs, "Configs", false),
        (&spec.secrets, "Secrets", true),
    ] {
        let Some(list) = list.as_ref().filter(|l| !l.is_empty()) else {
            continue;
        };
        let refs = list
            .iter()
            .map(|f| {
                let swarm_name =
                    ctx.files
                        .get(&f.file)
                        .ok_or_else(|| RenderError::UnknownFile {
                            service: service.to_string(),
                            file: f.file.clone(),
                        })?;
                let target = f.target.clone().unwrap_or_else(|| f.file.clone());
                let mode = f
                    .mode
                    .as_deref()
                    .and_then(|m| u32::from_str_radix(m, 8).ok())
                    .unwrap_or(0o444);
                let name_key = if is_secret {
                    "SecretName"
                } else {
                    "ConfigName"
                };
                Ok(json!({
                    name_key: swarm_name,
                    "File": {"Name": target, "UID": "0", "GID": "0", "Mode": mode},
                }))
            })
            .collect::<Result<Vec<_>, RenderError>>()?;
        container.insert(key.into(), json!(refs));
    }

    let networks: Vec<String> = spec
        .networks
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|n| ctx.network(n))
        .collect();
    let mut task = Map::new();
    task.insert("ContainerSpec".into(), Value::Object(container));
    if !networks.is_empty() {
        let attach: Vec<Value> = networks
            .iter()
            .map(|n| json!({"Target": n, "Aliases": [service]}))
            .collect();
        task.insert("Networks".into(), json!(attach));
    }
    let deploy = spec.deploy.clone().unwrap_or_default();
    if let Some(p) = &deploy.placement {
        let mut pl = Map::new();
        if let Some(c) = p.constraints.as_ref().filter(|c| !c.is_empty()) {
            pl.insert("Constraints".into(), json!(c));
        }
        if let Some(prefs) = p.preferences.as_ref().filter(|c| !c.is_empty()) {
            let list: Vec<Value> = prefs
                .iter()
                .map(|p| json!({"Spread": {"SpreadDescriptor": p.spread}}))
                .collect();
            pl.insert("Preferences".into(), json!(list));
        }
        if let Some(m) = p.max_replicas_per_node.filter(|m| *m > 0) {
            pl.insert("MaxReplicas".into(), json!(m));
        }
        if !pl.is_empty() {
            task.insert("Placement".into(), Value::Object(pl));
        }
    }
    if let Some(res) = &deploy.resources {
        let mut out = Map::new();
        for (key, field, amounts) in [
            ("Limits", "deploy.resources.limits", &res.limits),
            (
                "Reservations",
                "deploy.resources.reservations",
                &res.reservations,
            ),
        ] {
            if let Some(a) = amounts {
                out.insert(key.into(), r.amounts(field, a)?);
            }
        }
        task.insert("Resources".into(), Value::Object(out));
    }
    if let Some(rp) = &deploy.restart_policy {
        let mut out = Map::new();
        if let Some(c) = rp.condition {
            out.insert(
                "Condition".into(),
                serde_json::to_value(c).unwrap_or_default(),
            );
        }
        if let Some(d) = &rp.delay {
            out.insert(
                "Delay".into(),
                json!(r.duration("deploy.restartPolicy.delay", d)?),
            );
        }
        if let Some(n) = rp.max_attempts {
            out.insert("MaxAttempts".into(), json!(n));
        }
        if let Some(w) = &rp.window {
            out.insert(
                "Window".into(),
                json!(r.duration("deploy.restartPolicy.window", w)?),
            );
        }
        task.insert("RestartPolicy".into(), Value::Object(out));
    }

    let mode = deploy.mode.unwrap_or(DeployMode::Replicated);
    let replicas = deploy.replicas.unwrap_or(1);
    let mode_json = match mode {
        DeployMode::Replicated => json!({"Replicated": {"Replicas": replicas}}),
        DeployMode::Global => json!({"Global": {}}),
        DeployMode::ReplicatedJob => {
            json!({"ReplicatedJob": {"MaxConcurrent": replicas, "TotalCompletions": replicas}})
        }
        DeployMode::GlobalJob => json!({"GlobalJob": {}}),
    };

    let mut labels = spec.labels.clone().unwrap_or_default();
    labels.insert(STACK_NAMESPACE_LABEL.into(), namespace);
    labels.insert(INSTALLATION_LABEL.into(), ctx.installation.clone());
    labels.insert(OWNER_LABEL.into(), format!("{stack}/{service}"));

    let mut out = Map::new();
    out.insert("Name".into(), json!(name));
    out.insert("Labels".into(), json!(labels));
    out.insert("TaskTemplate".into(), Value::Object(task));
    out.insert("Mode".into(), mode_json);
    if let Some(u) = &deploy.update_config {
        out.insert(
            "UpdateConfig".into(),
            r.update_policy("deploy.updateConfig", u)?,
        );
    }
    if let Some(u) = &deploy.rollback_config {
        out.insert(
            "RollbackConfig".into(),
            r.update_policy("deploy.rollbackConfig", u)?,
        );
    }
    let mut endpoint = Map::new();
    let endpoint_mode = spec.endpoint_mode.unwrap_or(EndpointMode::Vip);
    endpoint.insert(
        "Mode".into(),
        serde_json::to_value(endpoint_mode).unwrap_or_default(),
    );
    if let Some(ports) = spec.ports.as_ref().filter(|p| !p.is_empty()) {
        let list: Vec<Value> = ports
            .iter()
            .map(|p| {
                let mut m = Map::new();
                let protocol = p
                    .protocol
                    .map(|p| serde_json::to_value(p).unwrap_or_default());
                m.insert("Protocol".into(), protocol.unwrap_or(json!("tcp")));
                m.insert("TargetPort".into(), json!(p.target));
                if let Some(pp) = p.published {
                    m.insert("PublishedPort".into(), json!(pp));
                }
                let mode = p.mode.unwrap_or(PublishMode::Ingress);
                m.insert(
                    "PublishMode".into(),
                    serde_json::to_value(mode).unwrap_or_default(),
                );
                Value::Object(m)
            })
            .collect();
        endpoint.insert("Ports".into(), json!(list));
    }
    out.insert("EndpointSpec".into(), Value::Object(endpoint));

    let mut spec_json = Value::Object(out);
    let hash = hash_json(&spec_json);
    if let Some(l) = spec_json.get_mut("Labels").and_then(Value::as_object_mut) {
        l.insert(SPEC_HASH_LABEL.into(), json!(hash));
    }
    Ok(DesiredService {
        stack: stack.to_string(),
        service: service.to_string(),
        name,
        spec: spec_json,
        hash,
        networks,
        mode,
        replicas,
    })
}

struct Renderer<'a> {
    service: &'a str,
}

impl Renderer<'_> {
    fn quantity<T>(&self, field: &str, r: Result<T, QuantityError>) -> Result<T, RenderError> {
        r.map_err(|source| RenderError::Quantity {
            service: self.service.to_string(),
            field: field.to_string(),
            source,
        })
    }

    fn duration(&self, field: &str, v: &str) -> Result<i64, RenderError> {
        self.quantity(field, parse_duration_nanos(v))
    }

    fn amounts(&self, field: &str, a: &ResourceAmounts) -> Result<Value, RenderError> {
        let mut m = Map::new();
        if let Some(c) = &a.cpus {
            m.insert(
                "NanoCPUs".into(),
                json!(self.quantity(&format!("{field}.cpus"), parse_nano_cpus(c))?),
            );
        }
        if let Some(mem) = &a.memory {
            m.insert(
                "MemoryBytes".into(),
                json!(self.quantity(&format!("{field}.memory"), parse_memory_bytes(mem))?),
            );
        }
        Ok(Value::Object(m))
    }

    fn update_policy(&self, field: &str, u: &UpdatePolicy) -> Result<Value, RenderError> {
        let mut m = Map::new();
        if let Some(p) = u.parallelism {
            m.insert("Parallelism".into(), json!(p));
        }
        if let Some(d) = &u.delay {
            m.insert(
                "Delay".into(),
                json!(self.duration(&format!("{field}.delay"), d)?),
            );
        }
        if let Some(a) = u.failure_action {
            m.insert(
                "FailureAction".into(),
                serde_json::to_value(a).unwrap_or_default(),
            );
        }
        if let Some(d) = &u.monitor {
            m.insert(
                "Monitor".into(),
                json!(self.duration(&format!("{field}.monitor"), d)?),
            );
        }
        if let Some(r) = &u.max_failure_ratio {
            // The Engine API takes a float here; the manifest keeps the exact decimal.
            let v: f64 = r.parse().map_err(|_| RenderError::Quantity {
                service: self.service.to_string(),
                field: format!("{field}.maxFailureRatio"),
                source: QuantityError::Invalid {
                    value: r.clone(),
                    what: "ratio",
                    expected: "a decimal between 0 and 1, e.g. \"0.1\"",
                },
            })?;
            m.insert("MaxFailureRatio".into(), json!(v));
        }
        if let Some(o) = u.order {
            m.insert("Order".into(), serde_json::to_value(o).unwrap_or_default());
        }
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_limit_past_64_bits_is_an_error_not_no_limit() {
        let spec: ServiceSpec = serde_json::from_value(json!({
            "image": "busybox",
            "deploy": {"resources": {"limits": {"memory": "309485009821345068724781056T"}}}
        }))
        .unwrap_or_default();
        let error = render_service(&RenderContext::new("kargo"), "apps", "web", &spec)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "service \"web\": field deploy.resources.limits.memory: memory size \"309485009821345068724781056T\" is too large: at most 8388607T"
            )
        );
    }
}
