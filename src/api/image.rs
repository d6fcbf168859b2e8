//! Images: how a Service's image is built, which registries kargo authenticates to, and
//! whether the controller pins a tag to its digest.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How `kargo build` makes the Service's image (compose's `build` section); the image is
/// tagged with the Service's merged `image`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Build {
    /// Folder sent to Docker as the build context: in a file given to `kargo build -f`,
    /// relative to that file's folder; stored in etcd, absolute or relative to the
    /// working directory of `kargo build`.
    pub context: String,
    /// Dockerfile, relative to the context (default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Build arguments (`ARG`s of the Dockerfile); the Environment's `buildArgs` are merged over them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Stage of a multi-stage Dockerfile to build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Labels put on the built image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Images whose layers the build may reuse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
}

/// A registry kargo authenticates to: `kargo build --push` pushes with these credentials
/// and the controller hands them to Swarm so every node can pull (what
/// `docker stack deploy --with-registry-auth` does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registry {
    /// Host and port as image names begin with them, e.g. `registry.example.com:5000`
    /// (`docker.io` for Docker Hub).
    #[schemars(length(min = 1))]
    pub server: String,
    /// User name.
    #[schemars(length(min = 1))]
    pub username: String,
    /// Where the password comes from; it is never stored in plaintext.
    pub password_from: PasswordFrom,
}

/// The source of a registry password: exactly one of the three fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct PasswordFrom {
    /// A `sensitiveVariables` entry of this Environment, sealed: the controller opens it
    /// (and `kargo build --push` given the secret key file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
    /// A file holding the password, read by the process that needs it; stored in etcd, only
    /// inside the folder that process is given with `--registry-secrets-dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// An environment variable of the process that needs it; stored in etcd, only one named
    /// `KARGO_REGISTRY_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// Where a password comes from, once [`PasswordFrom`] is known to name exactly one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordSource<'a> {
    /// A sensitive variable of the Environment.
    Variable(&'a str),
    /// A file.
    File(&'a str),
    /// An environment variable of the process.
    Env(&'a str),
}

impl PasswordFrom {
    /// The one source named, or `None` when none or several are (the schema refuses both;
    /// the controller re-checks what reached etcd without it).
    pub fn source(&self) -> Option<PasswordSource<'_>> {
        match (&self.variable, &self.file, &self.env) {
            (Some(v), None, None) => Some(PasswordSource::Variable(v)),
            (None, Some(f), None) => Some(PasswordSource::File(f)),
            (None, None, Some(e)) => Some(PasswordSource::Env(e)),
            _ => None,
        }
    }
}

/// When the controller resolves an image tag to its digest, as
/// `docker stack deploy --resolve-image` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResolveImage {
    /// Every time a service is created or its spec changes (or a rollout restart asks).
    #[default]
    Always,
    /// Only when the image reference itself changed.
    Changed,
    /// Never: nodes pull the tag as written.
    Never,
}
