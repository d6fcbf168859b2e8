//! The Environment kind: Kargo's `.env` as a typed object.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, Resource};

/// A typed Environment object.
pub type Environment = Resource<EnvironmentSpec, EnvironmentStatus>;

/// Desired state of an Environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// Variables for `${VAR}` interpolation; values may reference each other.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Variables whose values are secrets: plaintext (sealed by `kargo apply`) or
    /// `{sealed: …}` (made by `kargo seal`). They may feed only a sensitive file's content
    /// (mounted as a Swarm secret, read through a `*_FILE` variable), never env or labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sensitive_variables: BTreeMap<String, SensitiveValue>,
    /// Stack names to deploy, in order (Kargo's `STACKS`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<String>,
    /// `ordered` (default): each Stack starts once the previous one is Ready; `parallel`: all at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Per-service settings layered over the Services (Kargo's `<S>_IMAGE`, `_TAG`, `_REPLICAS`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, ServiceSettings>,
    /// Labels kept on Swarm nodes, by hostname (Kargo's `<HOST>_LABELS`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, NodeSettings>,
    /// Real names of the logical networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<NetworkNames>,
    /// Take over same-named Swarm services left by a Kargo install.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
    /// What a `${VAR}` naming a variable that is not set becomes: `error` (default), or
    /// `empty`, an empty string with a warning, as Docker and Kargo substitute it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unset_variables: Option<UnsetVariables>,
    /// Registries kargo authenticates to, for `kargo build --push` and for nodes pulling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<super::Registry>,
    /// When the controller pins an image tag to its digest: `always` (default), `changed`, `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_image: Option<super::ResolveImage>,
}

/// How a reference to a variable that is not set is treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnsetVariables {
    /// An error naming the variable: the Service is not deployed.
    #[default]
    Error,
    /// An empty string and a warning naming the variable, as `docker stack deploy` does.
    Empty,
}

/// A sensitive variable's value: plaintext (sealed before it is stored) or sealed.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SensitiveValue {
    /// Sealed with the installation's public key.
    Sealed(SealedText),
    /// Plaintext, as written in a manifest before `kargo seal` or `kargo apply` seals it.
    Plain(String),
}

impl std::fmt::Debug for SensitiveValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SensitiveValue::Sealed(_) => f.write_str("Sealed(..)"),
            SensitiveValue::Plain(_) => f.write_str("Plain(<redacted>)"),
        }
    }
}

/// The sealed shape of a sensitive value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SealedText {
    /// An age ASCII armor sealed to the installation's public key.
    pub sealed: String,
}

/// How Stacks roll out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Rollout {
    /// One after the other, each gated on the previous one's Ready.
    Ordered,
    /// All at once.
    Parallel,
}

/// Settings of one service, layered last.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSettings {
    /// Image name without tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image tag; a string, so quote `"4.2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Number of tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    /// Placement constraints, replacing the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<String>>,
    /// Environment variables merged over the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Service labels merged over the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Build arguments merged over the Service's `build.args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_args: Option<BTreeMap<String, String>>,
}

/// Labels of one Swarm node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSettings {
    /// Labels kept on the node; one dropped here is removed if this installation set it
    /// (labels set by hand or by another installation are left alone).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Real names of the logical networks `front` and `back`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkNames {
    /// The network behind `front` (default `kargo-front`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front: Option<String>,
    /// The network behind `back` (default `kargo-back`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back: Option<String>,
}

/// Observed state of an Environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// observedGeneration and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Number of variables that resolved.
    #[serde(default)]
    pub variables_resolved: u64,
    /// References that did not resolve, as `VAR` or `VAR (in OTHER)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<String>,
}
