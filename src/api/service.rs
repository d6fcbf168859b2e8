//! The Service kind: one Swarm service, in the shape of the compose file's long syntax.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, DefaultsMode, Resource};

/// A typed Service object.
pub type Service = Resource<ServiceSpec, ServiceStatus>;

/// Pattern of a Go-style duration such as `30s`, `1m30s`, `500ms`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";
/// Pattern of a memory size such as `512M`, `1G`, `1024` (bytes).
pub const MEMORY_PATTERN: &str = r"^[0-9]+([kKmMgGtT][iI]?[bB]?|[bB])?$";
/// Pattern of a CPU count as a decimal string such as `0.5`, `2`.
pub const CPUS_PATTERN: &str = r"^[0-9]+(\.[0-9]{1,9})?$";

/// Desired state of one Swarm service. Every field is optional so a Service may overlay a default one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// The service's name inside its Stack: Swarm `kargo-<stack>_<serviceName>` and its network alias (default: the object's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub service_name: Option<String>,
    /// `none`: no catalog entry of the same name is merged under this Service; `builtin` (default): the Configuration decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<DefaultsMode>,
    /// Image reference, `name:tag` or `name@digest`; tags are strings, so quote `"4.2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How `kargo build` makes the image (compose `build`); Swarm never sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<super::Build>,
    /// Overrides the image's entrypoint (compose `entrypoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments to the entrypoint (compose `command`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Environment variables of the containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Published ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<Port>>,
    /// Named volumes, bind mounts and tmpfs mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    /// Configuration files mounted as Swarm configs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configs: Option<Vec<FileMount>>,
    /// Configuration files mounted as Swarm secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<FileMount>>,
    /// How Swarm checks the containers' health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Networks to join: logical `front`/`back` (mapped by the Environment) or real names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    /// Extra DNS aliases per network (the service name is always one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_aliases: Option<BTreeMap<String, Vec<String>>>,
    /// Labels on the Swarm service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Labels on the containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_labels: Option<BTreeMap<String, String>>,
    /// How other services reach this one: a virtual IP (default) or DNS round-robin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<EndpointMode>,
    /// Services of the same Stack that must be Ready before this one starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// Hostname inside the containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// User the command runs as (`uid`, `uid:gid` or a name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// How long Swarm waits after SIGTERM before killing a container, e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub stop_grace_period: Option<String>,
    /// Signal that stops the containers, e.g. `SIGQUIT` (default: the image's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Run an init process as PID 1 that forwards signals and reaps processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Mount the container's root filesystem read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Allocate a pseudo-TTY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Keep standard input open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    /// Kernel parameters, e.g. `net.core.somaxconn: "1024"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<BTreeMap<String, String>>,
    /// Resource limits by name, e.g. `nofile: {soft: 20000, hard: 40000}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ulimits: Option<BTreeMap<String, Ulimit>>,
    /// Kernel capabilities added, e.g. `NET_ADMIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_add: Option<Vec<String>>,
    /// Kernel capabilities dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_drop: Option<Vec<String>>,
    /// Extra `/etc/hosts` entries as `host:ip` (compose syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_hosts: Option<Vec<String>>,
    /// DNS servers of the containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<String>>,
    /// DNS search domains of the containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_search: Option<Vec<String>>,
    /// The log driver of the containers and its options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// Replicas, placement, resources and update policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
}

/// One resource limit (`ulimit`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ulimit {
    /// The soft limit.
    pub soft: i64,
    /// The hard limit.
    pub hard: i64,
}

/// A log driver (compose `logging`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Logging {
    /// The driver, e.g. `json-file`, `gelf`.
    pub driver: String,
    /// The driver's options, e.g. `max-size: 10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

/// A published port (compose long syntax).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// The port inside the container: a number, or a string such as `"${PORT:-8080}"`.
    #[serde(deserialize_with = "interpolated::port")]
    #[schemars(schema_with = "interpolated::port_schema")]
    pub target: u16,
    /// The port on the hosts, a number or a string such as `"${PORT:-8080}"`; left out, Swarm picks one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "interpolated::optional_port"
    )]
    #[schemars(schema_with = "interpolated::port_schema")]
    pub published: Option<u16>,
    /// `tcp` (default), `udp` or `sctp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// `ingress` (routing mesh, default) or `host` (only on the nodes running a task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PublishMode>,
}

/// A transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// How a port is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// Through Swarm's routing mesh, on every node.
    Ingress,
    /// Directly on the node running the task.
    Host,
}

/// A mount into the containers (compose long syntax).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// `volume` (named, kept across redeploys), `bind` (a host path) or `tmpfs`.
    #[serde(rename = "type")]
    pub type_: VolumeType,
    /// Volume name (becomes `kargo-<stack>_<name>` unless the Stack declares it) or host path; none for tmpfs or an anonymous volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Path inside the container.
    pub target: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Options of a bind mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Options of a named volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// Options of a tmpfs mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
}

/// Options of a bind mount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindOptions {
    /// Mount propagation: `private`, `rprivate`, `shared`, `rshared`, `slave` or `rslave`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^r?(private|shared|slave)$"))]
    pub propagation: Option<String>,
}

/// Options of a named volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeOptions {
    /// Do not copy the image's files into a new volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nocopy: Option<bool>,
}

/// Options of a tmpfs mount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TmpfsOptions {
    /// Size such as `64M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = MEMORY_PATTERN))]
    pub size: Option<String>,
    /// File mode as an octal string, e.g. `"1777"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^0?[0-7]{3,4}$"))]
    pub mode: Option<String>,
}

/// The type of a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    /// A named volume.
    Volume,
    /// A host path.
    Bind,
    /// A memory filesystem.
    Tmpfs,
}

impl VolumeType {
    /// Docker's rule for a short-syntax source (`SOURCE:TARGET`), applied to the source
    /// once interpolated: a host path (`/…`, `./…`, `../…`, `~…`, `.`, or a Windows drive
    /// path `C:\…`) is a bind mount, anything else names a volume. docker/cli's compose
    /// loader decides the same way, after interpolating the file.
    pub fn for_source(source: &str) -> VolumeType {
        if is_host_path(source) {
            VolumeType::Bind
        } else {
            VolumeType::Volume
        }
    }
}

/// Whether a mount source is a host path rather than a volume name (see
/// [`VolumeType::for_source`]).
pub fn is_host_path(source: &str) -> bool {
    let b = source.as_bytes();
    let windows_drive = b.len() >= 3
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && (b[2] == b'\\' || b[2] == b'/');
    source.starts_with(['/', '.', '~']) || windows_drive
}

/// A Configuration file mounted into the containers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileMount {
    /// Name of a file in the Configuration's `files`.
    pub file: String,
    /// Path inside the container (configs) or file name under /run/secrets (secrets); default: the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// File mode as an octal string, e.g. `"0440"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = "^0?[0-7]{3}$"))]
    pub mode: Option<String>,
    /// Owner of the file (default `0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Group of the file (default `0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// True: `file` names an existing Swarm config (or secret), used as is; kargo neither creates nor removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
}

/// A health check (compose `healthcheck`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Healthcheck {
    /// The test, e.g. `["CMD", "redis-cli", "ping"]` or `["CMD-SHELL", "curl -f localhost"]`; `["NONE"]` disables.
    pub test: Vec<String>,
    /// Time between checks, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub interval: Option<String>,
    /// Time a check may take, e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Consecutive failures that make a container unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Grace time after start during which failures do not count, e.g. `40s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub start_period: Option<String>,
}

/// How other services reach a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// A virtual IP balanced by IPVS (the default).
    Vip,
    /// DNS round-robin over the tasks' addresses.
    Dnsrr,
}

/// Deployment settings (compose `deploy`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deploy {
    /// `replicated` (default), `global`, `replicated-job` or `global-job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DeployMode>,
    /// Number of tasks for replicated modes (default 1): a number, or a string such as `"${REPLICAS}"`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "interpolated::optional_count"
    )]
    #[schemars(schema_with = "interpolated::count_schema")]
    pub replicas: Option<u64>,
    /// Where tasks may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// CPU and memory limits and reservations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// When Swarm restarts a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// How an update rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdatePolicy>,
    /// How a rollback rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdatePolicy>,
}

/// The scheduling mode of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeployMode {
    /// A fixed number of long-running tasks.
    Replicated,
    /// One long-running task per eligible node.
    Global,
    /// A fixed number of tasks that run to completion.
    ReplicatedJob,
    /// One task per eligible node that runs to completion.
    GlobalJob,
}

/// Placement rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Constraints such as `node.role==manager` or `node.labels.mongodb==true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<String>>,
    /// Spread tasks evenly over the values of a node label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<Vec<PlacementPreference>>,
    /// At most this many tasks of the service on one node (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u64>,
}

/// One placement preference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementPreference {
    /// The node attribute to spread over, e.g. `node.labels.zone`.
    pub spread: String,
}

/// Limits and reservations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// At most this much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
    /// Schedule only where this much is free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<ResourceAmounts>,
}

/// Amounts of CPU and memory, as exact strings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceAmounts {
    /// CPUs as a decimal string, e.g. `"0.5"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = CPUS_PATTERN))]
    pub cpus: Option<String>,
    /// Memory such as `512M` or `1G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = MEMORY_PATTERN))]
    pub memory: Option<String>,
}

/// When Swarm restarts a task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartPolicy {
    /// `none`, `on-failure` or `any` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<RestartCondition>,
    /// Wait between restarts, e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub delay: Option<String>,
    /// Give up after this many restarts (0: never give up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    /// How long to wait to decide whether a restart worked, e.g. `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub window: Option<String>,
}

/// Restart condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    /// Never restart.
    None,
    /// Restart when the container exits non-zero.
    OnFailure,
    /// Always restart.
    Any,
}

/// How updates (or rollbacks) roll out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePolicy {
    /// Tasks updated at once (0: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u64>,
    /// Wait between batches, e.g. `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub delay: Option<String>,
    /// On failure: `pause` (default), `continue` or `rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<FailureAction>,
    /// How long a task is watched for failure after it is updated, e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub monitor: Option<String>,
    /// Tolerated share of failed tasks, as a decimal string such as `"0.1"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = r"^(0(\.[0-9]+)?|1(\.0+)?)$"))]
    pub max_failure_ratio: Option<String>,
    /// `stop-first` (default) or `start-first`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<UpdateOrder>,
}

/// What to do when an update fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// Stop the update and wait for a person.
    Pause,
    /// Carry on.
    Continue,
    /// Go back to the previous spec.
    Rollback,
}

/// Order of stopping old and starting new tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// Stop the old task, then start the new one.
    StopFirst,
    /// Start the new task, then stop the old one.
    StartFirst,
}

/// Observed state of a Service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// observedGeneration and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The Stack that deploys this Service, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The image deployed (after the merge and interpolation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Digest the image's tag was pinned to (`sha256:…`) when the spec was last pushed;
    /// absent when it was deployed unpinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// Name of the Swarm service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm_name: Option<String>,
    /// ID of the Swarm service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// Swarm version index of the service spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Tasks running the current spec.
    #[serde(default)]
    pub running_tasks: u64,
    /// Tasks wanted.
    #[serde(default)]
    pub desired_tasks: u64,
    /// Slots (nodes, for global services) running a task of the current spec (completed,
    /// for jobs): the numerator of READY, as `kubectl get deployments` shows it.
    #[serde(default)]
    pub ready_replicas: u64,
    /// Slots with a task of the current spec that is not being shut down, running or not
    /// yet: UP-TO-DATE.
    #[serde(default)]
    pub updated_replicas: u64,
    /// Slots serving now with a task of any spec (an old task still running during a
    /// restart or a paused update counts): AVAILABLE.
    #[serde(default)]
    pub available_replicas: u64,
    /// Swarm's update state (`updating`, `paused`, `completed`, `rollback_completed`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_state: Option<String>,
    /// Recent task errors, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_errors: Vec<String>,
    /// Hash of the desired Swarm spec last pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// Hash of a spec that failed (rolled back by Swarm, or past the progress deadline):
    /// it is not pushed again until the spec changes or a rollout restart asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_spec_hash: Option<String>,
    /// When kargo last created or updated the Swarm service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Rollout revision (1, 2, 3...): advances with every change that rolls the service
    /// (spec, `rollout restart`, `rollout undo`, a new configuration file); the conditions
    /// are about this revision, whose spec is `specHash`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rollout_revision: u64,
}

/// Serde's skip test for a counter that has not started.
pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Numbers that may be written as strings to interpolate (`replicas: ${REPLICAS}`,
/// `published: "${PORT:-8080}"`), as compose files write them (docs/design.md,
/// "Interpolation").
///
/// Interpolation works on strings and happens after the merge, so the typed spec reads a
/// number, or a string holding a decimal number (what interpolation leaves). A string that
/// still holds a `$` is a stored object not yet interpolated: it reads as unset (a port as
/// 0), a placeholder that never reaches Swarm, since the controller deploys only the
/// interpolated result, read again. Any other string is an error naming it.
pub mod interpolated {
    use std::str::FromStr;

    use schemars::{Schema, SchemaGenerator, json_schema};
    use serde::{Deserialize, Deserializer, de::Error};

    /// A number as written: a JSON number or a string.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(u64),
        Text(String),
    }

    /// Reads a number, a decimal string, or (`None`) a string still to interpolate.
    fn read<'de, D: Deserializer<'de>, T: FromStr + TryFrom<u64>>(
        d: D,
        what: &str,
    ) -> Result<Option<T>, D::Error> {
        match Written::deserialize(d)? {
            Written::Number(n) => T::try_from(n)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{n} is out of range for {what}"))),
            Written::Text(s) => match s.trim().parse::<T>() {
                Ok(n) => Ok(Some(n)),
                Err(_) if s.contains('$') => Ok(None),
                Err(_) => Err(D::Error::custom(format!(
                    "{s:?} is not {what}: write a number, or a string with a ${{VAR}} reference"
                ))),
            },
        }
    }

    /// `replicas`: a count.
    pub fn optional_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        read(d, "a count")
    }

    /// `published`: a port number.
    pub fn optional_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        read(d, "a port (1-65535)")
    }

    /// `target`: a port number; 0 until interpolated.
    pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        Ok(read(d, "a port (1-65535)")?.unwrap_or(0))
    }

    /// Schema of a count: an integer, or a string of digits or with a `${VAR}` reference.
    pub fn count_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*[0-9]+\\s*$|\\$"}
            ]
        })
    }

    /// Schema of a port: 1-65535, or a string of digits or with a `${VAR}` reference.
    pub fn port_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": "^\\s*[0-9]{1,5}\\s*$|\\$"}
            ]
        })
    }
}

#[cfg(test)]
mod interpolated_tests {
    use super::*;
    use serde_json::json;

    fn deploy(v: serde_json::Value) -> Result<Deploy, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn replicas_take_a_number_or_a_string_of_digits() {
        assert_eq!(
            deploy(json!({"replicas": 3})).ok().and_then(|d| d.replicas),
            Some(3)
        );
        assert_eq!(
            deploy(json!({"replicas": " 2 "}))
                .ok()
                .and_then(|d| d.replicas),
            Some(2)
        );
        // Not yet interpolated (a stored object): unset until merged and interpolated.
        assert_eq!(
            deploy(json!({"replicas": "${KANO_REPLICAS}"}))
                .map(|d| d.replicas)
                .ok(),
            Some(None)
        );
        let e = deploy(json!({"replicas": "three"}))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("\"three\" is not a count")));
    }

    #[test]
    fn ports_take_a_number_or_an_interpolated_string() {
        let p: Port = serde_json::from_value(json!({"target": "80", "published": "8080"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.target, p.published), (80, Some(8080)));
        let p: Port = serde_json::from_value(json!({"target": 80, "published": "${PORT:-8080}"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.published, None);
        assert!(serde_json::from_value::<Port>(json!({"target": "70000"})).is_err());
        assert!(serde_json::from_value::<Port>(json!({"target": 70000})).is_err());
    }

    #[test]
    fn a_host_path_source_is_a_bind_mount_anything_else_a_volume() {
        for bind in [
            "/mnt/data0",
            "./configs",
            "../x",
            "~/data",
            ".",
            "C:\\data",
            "d:/x",
        ] {
            assert_eq!(VolumeType::for_source(bind), VolumeType::Bind, "{bind}");
        }
        for volume in ["mongodb_data", "data", "", "kargo-dbs_data"] {
            assert_eq!(
                VolumeType::for_source(volume),
                VolumeType::Volume,
                "{volume}"
            );
        }
    }
}
