//! The Stack kind: an ordered group of Services deployed together.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, ConfigFile, Resource};

/// A typed Stack object.
pub type Stack = Resource<StackSpec, StackStatus>;

/// Desired state of a Stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackSpec {
    /// Service names, in the order they start (user Services or default catalog entries).
    #[serde(default)]
    pub services: Vec<String>,
    /// Stacks that must be Ready before this one is deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// True removes the Stack's Swarm objects and keeps the kargo objects (`kargo remove`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// `manual` (default): a failed update waits for `kargo rollout undo`; `auto`: go back to the last Ready set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackMode>,
    /// Seconds an update may take to become Ready before it counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<u64>,
    /// The Stack's own networks (compose top-level `networks`): Swarm `kargo-<stack>_<name>` unless `name` is given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, StackNetwork>,
    /// The Stack's volume declarations (compose top-level `volumes`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, StackVolume>,
    /// Files owned by the Stack, mounted by its Services like the Configuration's files (which they hide for this Stack).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, ConfigFile>,
}

/// A network declared by a Stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackNetwork {
    /// The real Swarm network name, used as is (default `kargo-<stack>_<key>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The network exists already: kargo joins it and never creates or removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    /// No route outside the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    /// Standalone containers may join it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachable: Option<bool>,
    /// The network driver (default `overlay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Options of the driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// Labels on the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A volume declared by a Stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackVolume {
    /// The real volume name, used as is (default `kargo-<stack>_<key>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The volume exists already: mounted as is, with no creation options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    /// The volume driver (default `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Options of the driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// Labels on the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Who rolls a failed Stack back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RollbackMode {
    /// A person, with `kargo rollout undo stack NAME`.
    Manual,
    /// The controller, at once.
    Auto,
}

/// Observed state of a Stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackStatus {
    /// observedGeneration and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The Swarm stack name (`kargo-<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm_stack: Option<String>,
    /// Services Ready.
    #[serde(default)]
    pub services_ready: u64,
    /// Services in the Stack.
    #[serde(default)]
    pub services_total: u64,
    /// The history revision of the last set of specs that was Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ready_revision: Option<i64>,
    /// Rollout revision (1, 2, 3...): advances whenever what its services should run
    /// changes; the numbers `kargo rollout history` shows. The conditions are about it.
    #[serde(default, skip_serializing_if = "super::service::is_zero")]
    pub rollout_revision: u64,
    /// Hash over its services' desired specs at `rolloutRevision` (what `kargo rollout
    /// status` compares with the plan it computes, to wait for the current revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
}
