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
    DeployMode, EndpointMode, PublishMode, ResourceAmounts, ServiceSpec, StackNetwork, StackSpec,
    StackVolume, UpdatePolicy, VolumeType,
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
    /// Swarm config/secret names of the Configuration's files (and the Stack's own, which
    /// hide them), by file name.
    pub files: BTreeMap<String, String>,
    /// The networks the Stack being rendered declares.
    pub stack_networks: BTreeMap<String, StackNetwork>,
    /// The volumes the Stack being rendered declares.
    pub stack_volumes: BTreeMap<String, StackVolume>,
}

impl RenderContext {
    /// A context with the default networks and no files.
    pub fn new(installation: &str) -> Self {
        RenderContext {
            installation: installation.to_string(),
            front_network: DEFAULT_FRONT_NETWORK.to_string(),
            back_network: DEFAULT_BACK_NETWORK.to_string(),
            files: BTreeMap::new(),
            stack_networks: BTreeMap::new(),
            stack_volumes: BTreeMap::new(),
        }
    }

    /// This context for the services of one Stack: its declared networks and volumes, and
    /// its own files (Swarm names by file name) over the Configuration's.
    pub fn for_stack(&self, stack: &StackSpec, stack_files: &BTreeMap<String, String>) -> Self {
        let mut ctx = self.clone();
        ctx.stack_networks = stack.networks.clone();
        ctx.stack_volumes = stack.volumes.clone();
        ctx.files
            .extend(stack_files.iter().map(|(k, v)| (k.clone(), v.clone())));
        ctx
    }

    /// The real name of a network a service names: the Stack's own first, then the
    /// logical `front`/`back`, then a real name as is (docs/compose.md, "A Stack's own networks").
    pub fn network(&self, stack: &str, name: &str) -> String {
        if let Some(declared) = self.stack_networks.get(name) {
            return declared
                .name
                .clone()
                .unwrap_or_else(|| format!("{}_{name}", swarm_stack(stack)));
        }
        match name {
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
    /// A combination Swarm refuses (Docker refuses it at deploy).
    #[error("service {service:?}: {reason}")]
    Refused {
        /// The service.
        service: String,
        /// What Swarm refuses, and what to do.
        reason: String,
    },
    /// A bind mount without a source.
    #[error("service {service:?}: bind mount at {target:?} needs a source (a host path)")]
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
    let short = spec.service_name.as_deref().unwrap_or(service);
    let name = swarm_service(stack, short);
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
    container_extras(spec, &mut container);
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
                // A volume whose source is a host path is a bind mount, as in Docker.
                let host_path = v.type_ == VolumeType::Volume
                    && v.source.as_deref().is_some_and(|s| s.starts_with('/'));
                match v.type_ {
                    VolumeType::Volume if !host_path => {
                        m.insert("Type".into(), json!("volume"));
                        let nocopy = v.volume.as_ref().and_then(|o| o.nocopy);
                        match v.source.as_deref() {
                            // Anonymous: Docker sends only the nocopy option.
                            None => {
                                if let Some(n) = nocopy {
                                    m.insert("VolumeOptions".into(), json!({"NoCopy": n}));
                                }
                            }
                            Some(src) => {
                                let declared = ctx.stack_volumes.get(src);
                                let real = declared
                                    .and_then(|d| d.name.clone())
                                    .unwrap_or_else(|| swarm_volume(stack, src));
                                m.insert("Source".into(), json!(real));
                                let mut opts = Map::new();
                                if let Some(n) = nocopy {
                                    opts.insert("NoCopy".into(), json!(n));
                                }
                                if declared.and_then(|d| d.external) != Some(true) {
                                    let mut labels =
                                        declared.and_then(|d| d.labels.clone()).unwrap_or_default();
                                    labels.insert(STACK_NAMESPACE_LABEL.into(), namespace.clone());
                                    opts.insert("Labels".into(), json!(labels));
                                    if let Some(d) = declared
                                        .filter(|d| d.driver.is_some() || d.driver_opts.is_some())
                                    {
                                        let mut driver = Map::new();
                                        if let Some(n) = &d.driver {
                                            driver.insert("Name".into(), json!(n));
                                        }
                                        if let Some(o) = &d.driver_opts {
                                            driver.insert("Options".into(), json!(o));
                                        }
                                        opts.insert("DriverConfig".into(), Value::Object(driver));
                                    }
                                }
                                if !opts.is_empty() {
                                    m.insert("VolumeOptions".into(), Value::Object(opts));
                                }
                            }
                        }
                    }
                    VolumeType::Volume | VolumeType::Bind => {
                        let src = v.source.as_deref().ok_or_else(need_source)?;
                        m.insert("Type".into(), json!("bind"));
                        m.insert("Source".into(), json!(src));
                        if let Some(p) = v.bind.as_ref().and_then(|b| b.propagation.as_ref()) {
                            m.insert("BindOptions".into(), json!({"Propagation": p}));
                        }
                    }
                    VolumeType::Tmpfs => {
                        m.insert("Type".into(), json!("tmpfs"));
                        if let Some(t) = &v.tmpfs {
                            let mut opts = Map::new();
                            if let Some(size) = &t.size {
                                opts.insert(
                                    "SizeBytes".into(),
                                    json!(r.quantity(
                                        "volumes.tmpfs.size",
                                        parse_memory_bytes(size)
                                    )?),
                                );
                            }
                            if let Some(mode) = t
                                .mode
                                .as_deref()
                                .and_then(|m| u32::from_str_radix(m, 8).ok())
                            {
                                opts.insert("Mode".into(), json!(mode));
                            }
                            if !opts.is_empty() {
                                m.insert("TmpfsOptions".into(), Value::Object(opts));
                            }
                        }
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
                let swarm_name = if f.external == Some(true) {
                    &f.file
                } else {
                    ctx.files
                        .get(&f.file)
                        .ok_or_else(|| RenderError::UnknownFile {
                            service: service.to_string(),
                            file: f.file.clone(),
                        })?
                };
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
                    "File": {
                        "Name": target,
                        "UID": f.uid.as_deref().unwrap_or("0"),
                        "GID": f.gid.as_deref().unwrap_or("0"),
                        "Mode": mode,
                    },
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
        .map(|n| ctx.network(stack, n))
        .collect();
    let mut task = Map::new();
    task.insert("ContainerSpec".into(), Value::Object(container));
    if let Some(logging) = &spec.logging {
        let mut driver = Map::new();
        driver.insert("Name".into(), json!(logging.driver));
        if let Some(o) = logging.options.as_ref().filter(|o| !o.is_empty()) {
            driver.insert("Options".into(), json!(o));
        }
        task.insert("LogDriver".into(), Value::Object(driver));
    }
    if !networks.is_empty() {
        let extra = spec.network_aliases.clone().unwrap_or_default();
        let attach: Vec<Value> = spec
            .networks
            .iter()
            .flatten()
            .zip(&networks)
            .map(|(logical, real)| {
                // Docker's order: the extra aliases, then the service's own name.
                let mut aliases = extra.get(logical).cloned().unwrap_or_default();
                aliases.push(short.to_string());
                json!({"Target": real, "Aliases": aliases})
            })
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
    if matches!(mode, DeployMode::Global | DeployMode::GlobalJob) && deploy.replicas.is_some() {
        return Err(RenderError::Refused {
            service: service.to_string(),
            reason: "deploy.replicas is for replicated modes: a global service runs one task per node (remove replicas)".into(),
        });
    }
    if spec.endpoint_mode == Some(EndpointMode::Dnsrr)
        && spec
            .ports
            .iter()
            .flatten()
            .any(|p| p.mode.unwrap_or(PublishMode::Ingress) == PublishMode::Ingress)
    {
        return Err(RenderError::Refused {
            service: service.to_string(),
            reason: "endpointMode dnsrr cannot publish through the ingress routing mesh: publish with mode: host, or use vip".into(),
        });
    }
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

/// The container settings compose carries one to one (ContainerSpec fields).
fn container_extras(spec: &ServiceSpec, container: &mut Map<String, Value>) {
    if let Some(v) = &spec.stop_signal {
        container.insert("StopSignal".into(), json!(v));
    }
    for (field, key) in [
        (spec.init, "Init"),
        (spec.read_only, "ReadOnly"),
        (spec.tty, "TTY"),
        (spec.stdin_open, "OpenStdin"),
    ] {
        if let Some(v) = field {
            container.insert(key.into(), json!(v));
        }
    }
    if let Some(v) = spec.sysctls.as_ref().filter(|v| !v.is_empty()) {
        container.insert("Sysctls".into(), json!(v));
    }
    if let Some(v) = spec.ulimits.as_ref().filter(|v| !v.is_empty()) {
        let list: Vec<Value> = v
            .iter()
            .map(|(name, u)| json!({"Name": name, "Soft": u.soft, "Hard": u.hard}))
            .collect();
        container.insert("Ulimits".into(), json!(list));
    }
    for (field, key) in [
        (&spec.cap_add, "CapabilityAdd"),
        (&spec.cap_drop, "CapabilityDrop"),
    ] {
        if let Some(v) = field.as_ref().filter(|v| !v.is_empty()) {
            container.insert(key.into(), json!(v));
        }
    }
    if let Some(v) = spec.extra_hosts.as_ref().filter(|v| !v.is_empty()) {
        // Swarm's notation is `IP host`; compose writes `host:IP`.
        let hosts: Vec<String> = v
            .iter()
            .filter_map(|h| h.split_once(':').map(|(host, ip)| format!("{ip} {host}")))
            .collect();
        container.insert("Hosts".into(), json!(hosts));
    }
    let mut dns = Map::new();
    if let Some(v) = spec.dns.as_ref().filter(|v| !v.is_empty()) {
        dns.insert("Nameservers".into(), json!(v));
    }
    if let Some(v) = spec.dns_search.as_ref().filter(|v| !v.is_empty()) {
        dns.insert("Search".into(), json!(v));
    }
    if !dns.is_empty() {
        container.insert("DNSConfig".into(), Value::Object(dns));
    }
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

    #[test]
    fn a_stack_network_called_front_stays_the_stacks_own() {
        let spec: ServiceSpec = serde_json::from_value(json!({
            "image": "redis:7",
            "serviceName": "redis",
            "networks": ["front", "default"],
            "networkAliases": {"front": ["cache"]},
        }))
        .unwrap_or_default();
        let stack: StackSpec = serde_json::from_value(json!({
            "networks": {"front": {"internal": true}, "default": {}},
        }))
        .unwrap_or_default();
        let ctx = RenderContext::new("kargo").for_stack(&stack, &BTreeMap::new());
        let d = render_service(&ctx, "vote", "vote-redis", &spec).map_err(|e| e.to_string());
        let d = d.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            d.name, "kargo-vote_redis",
            "scoped by the Stack, as Docker does"
        );
        assert_eq!(
            d.spec["TaskTemplate"]["Networks"],
            json!([
                {"Target": "kargo-vote_front", "Aliases": ["cache", "redis"]},
                {"Target": "kargo-vote_default", "Aliases": ["redis"]},
            ])
        );
    }

    #[test]
    fn global_with_replicas_is_refused() {
        let spec: ServiceSpec = serde_json::from_value(json!({
            "image": "busybox", "deploy": {"mode": "global", "replicas": 2}
        }))
        .unwrap_or_default();
        let r = render_service(&RenderContext::new("kargo"), "apps", "web", &spec);
        assert!(matches!(r, Err(RenderError::Refused { .. })), "{r:?}");
    }
}
