//! Objects as the store holds them (untyped spec) and as the controller reads them (typed).

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{API_VERSION, ObjectMeta};

/// The four kinds of kargo objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// Names the Environment in force, the default catalog and the files.
    Configuration,
    /// Variables, the stacks to deploy and per-service settings.
    Environment,
    /// An ordered group of Services deployed together.
    Stack,
    /// One Swarm service.
    Service,
}

impl Kind {
    /// Every kind, in the order they are applied (referenced before referencing).
    pub const ALL: [Kind; 4] = [
        Kind::Configuration,
        Kind::Environment,
        Kind::Stack,
        Kind::Service,
    ];

    /// The kind as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Configuration => "Configuration",
            Kind::Environment => "Environment",
            Kind::Stack => "Stack",
            Kind::Service => "Service",
        }
    }

    /// The lowercase plural used in etcd keys and on the command line.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Configuration => "configurations",
            Kind::Environment => "environments",
            Kind::Stack => "stacks",
            Kind::Service => "services",
        }
    }

    /// The lowercase singular used in `kind/name` references.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Configuration => "configuration",
            Kind::Environment => "environment",
            Kind::Stack => "stack",
            Kind::Service => "service",
        }
    }

    /// Short names accepted on the command line, as kubectl accepts `svc`.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Kind::Configuration => &["cfg", "config", "configs"],
            Kind::Environment => &["env", "envs"],
            Kind::Stack => &["st"],
            Kind::Service => &["svc"],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no kind.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown kind {0:?}: expected one of configuration, environment, stack, service (or their plurals)"
)]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|k| {
                lower == k.singular()
                    || lower == k.plural()
                    || k.aliases().contains(&lower.as_str())
            })
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// An object with its spec and status kept as JSON: what the store reads and writes.
///
/// The spec stays exactly as the user gave it (explicit `null`s included), because overlays
/// on default services delete fields with `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamicObject {
    /// Always `kargo.dev/v1alpha1`.
    pub api_version: String,
    /// One of the four kinds.
    pub kind: Kind,
    /// Name and bookkeeping.
    pub metadata: ObjectMeta,
    /// The desired state, as given.
    #[serde(default)]
    pub spec: Value,
    /// The observed state, written by the controller only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

impl DynamicObject {
    /// A new object with an empty status, as a user would write it.
    pub fn new(kind: Kind, name: &str, spec: Value) -> Self {
        DynamicObject {
            api_version: API_VERSION.to_string(),
            kind,
            metadata: ObjectMeta {
                name: name.to_string(),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }

    /// `kind/name`, as the CLI prints it.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.singular(), self.metadata.name)
    }

    /// Reads the spec and status into the kind's types.
    pub fn typed<S: DeserializeOwned, T: DeserializeOwned + Default>(
        &self,
    ) -> Result<Resource<S, T>, serde_json::Error> {
        Ok(Resource {
            metadata: self.metadata.clone(),
            spec: serde_json::from_value(self.spec.clone())?,
            status: match &self.status {
                Some(v) => serde_json::from_value(v.clone())?,
                None => T::default(),
            },
        })
    }
}

/// A typed object: metadata, spec and status of one kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource<S, T> {
    /// Name and bookkeeping.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: S,
    /// The observed state (default when none was written yet).
    pub status: T,
}

impl<S, T> Resource<S, T> {
    /// The object's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

/// The schema of one whole document of a kind: apiVersion, kind, metadata, spec, status.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document<S, T> {
    /// Must be `kargo.dev/v1alpha1`.
    pub api_version: String,
    /// The kind of object.
    pub kind: String,
    /// Name, labels and annotations (the rest is set by the store).
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: S,
    /// The observed state, written by the controller; leave it out of manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<T>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_cli_words() {
        assert_eq!("svc".parse::<Kind>().ok(), Some(Kind::Service));
        assert_eq!("Stacks".parse::<Kind>().ok(), Some(Kind::Stack));
        assert_eq!("environment".parse::<Kind>().ok(), Some(Kind::Environment));
        assert!("pods".parse::<Kind>().is_err());
    }
}
