//! The Configuration kind: which Environment is in force, the default catalog, and files.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, Resource};

/// A typed Configuration object.
pub type Configuration = Resource<ConfigurationSpec, ConfigurationStatus>;

/// Desired state of a Configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigurationSpec {
    /// Name of the Environment in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// `builtin` (default): layer the built-in catalog under user Services; `none`: user Services only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<DefaultsMode>,
    /// Files that Services mount as Swarm configs or secrets, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, ConfigFile>,
    /// What a Service may do to the nodes it runs on (Kubernetes Pod Security Standards'
    /// levels); left out, the `baseline` level with no allowed host path and no exemption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySpec>,
}

/// The policy on what Services may do to the nodes, checked by `validate`, `apply` and the
/// controller alike.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// `privileged` (nothing checked), `baseline` (default: no host path outside
    /// `allowedHostPaths`, never the Docker socket, no host network) or `restricted`
    /// (baseline, plus a non-root `user`, read-only bind mounts and no host-mode port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<PolicyLevel>,
    /// Host folders that bind mounts may use (each with what is below it), e.g. `/srv/data`.
    /// Never a way to the Docker socket: a folder holding it still needs an exemption.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_host_paths: Vec<String>,
    /// Rules waived for one Service, by Service name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exemptions: BTreeMap<String, PolicyExemption>,
}

/// A level of the policy, after the Kubernetes Pod Security Standards.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PolicyLevel {
    /// Unrestricted: a Service may do anything Swarm allows, root on the nodes included.
    Privileged,
    /// Known ways to take over a node are refused.
    #[default]
    Baseline,
    /// Baseline, and the hardening best practices: non-root, read-only host paths.
    Restricted,
}

/// Rules waived for one Service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyExemption {
    /// The image repository the exemption holds for (`gcr.io/cadvisor/cadvisor`, any tag or
    /// digest); left out, it holds whatever image the Service runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The rules waived.
    pub allow: Vec<PolicyRule>,
    /// When given, `hostPath` and `dockerSocket` are waived only for these host paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_paths: Vec<String>,
}

/// One rule of the policy, as exemptions name it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum PolicyRule {
    /// A bind mount of a host path outside `allowedHostPaths` (baseline).
    HostPath,
    /// A bind mount of the Docker socket or a folder holding it: root on the node (baseline).
    DockerSocket,
    /// Joining the `host` network (baseline).
    HostNetwork,
    /// A bind mount that is not read-only (restricted).
    WritableHostPath,
    /// No `user`, or a root one (`0`, `root`) (restricted).
    RunAsRoot,
    /// A port published in `host` mode (restricted).
    HostPort,
}

/// Whether the built-in catalog is layered under user Services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DefaultsMode {
    /// Use the catalog compiled into kargo.
    Builtin,
    /// Use only the user's Services.
    None,
}

/// One configuration file: its `content`, or (sensitive) its `sealed` content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("if" = {"required": ["sealed"]}, "else" = {"required": ["content"]}))]
pub struct ConfigFile {
    /// The file's content (plaintext). A sensitive file holds `sealed` instead once
    /// applied or sealed (`kargo seal`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content: String,
    /// The content of a sensitive file sealed with the installation's public key (an age
    /// ASCII armor, made by `kargo seal` or `kargo apply`); only the controller opens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// Interpolate `${VAR}` in the content with the Environment's variables.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
    /// Make a Swarm secret instead of a config; the content is never printed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// Observed state of a Configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStatus {
    /// observedGeneration and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// sha256 of the merged configuration deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Stacks deployed, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<String>,
    /// Services deployed, as `stack/service`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// The Swarm secret each sealed file became, by file name: what `render` and `diff`
    /// (which have no key) show while the sealed value stays the same.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sealed_files: BTreeMap<String, SealedFileRecord>,
}

/// The Swarm secret a sealed file became, and which sealed value it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedFileRecord {
    /// sha256 of the sealed text (of the ciphertext: it says nothing of the content).
    pub sealed_digest: String,
    /// The Swarm secret's name.
    pub swarm_name: String,
}
