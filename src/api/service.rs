//! The Service kind: one Swarm service, in the shape of the compose file's long syntax.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, Resource};

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
    /// Image reference, `name:tag` or `name@digest`; tags are strings, so quote `"4.2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
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
    /// Replicas, placement, resources and update policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
}

/// A published port (compose long syntax).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// The port inside the container.
    #[schemars(range(min = 1, max = 65535))]
    pub target: u16,
    /// The port on the hosts; left out, Swarm picks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
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
    /// Volume name (becomes `kargo-<stack>_<name>`) or host path; none for tmpfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Path inside the container.
    pub target: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
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
    /// Number of tasks for replicated modes (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
