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
