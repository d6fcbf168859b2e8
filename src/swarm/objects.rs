//! Swarm configs, secrets and node labels: the objects besides services that kargo keeps.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use bollard::models::{ConfigSpec, SecretSpec};
use bollard::query_parameters::{ListConfigsOptions, ListSecretsOptions, UpdateNodeOptions};

use super::docker::{SwarmClient, SwarmError, WriteKind};
use super::names::INSTALLATION_LABEL;

/// How a network kargo creates is made: a Stack's declaration of its own network
/// (docs/compose.md); the default is kargo's attachable overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkOptions {
    /// The driver; `None` is `overlay`.
    pub driver: Option<String>,
    /// No route outside the network.
    pub internal: bool,
    /// Standalone containers may join it.
    pub attachable: bool,
    /// Options of the driver.
    pub driver_opts: BTreeMap<String, String>,
    /// Labels besides kargo's installation label.
    pub labels: BTreeMap<String, String>,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            driver: None,
            internal: false,
            // kargo's networks have always been attachable (one-off containers may join).
            attachable: true,
            driver_opts: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }
}

impl NetworkOptions {
    /// The driver to create with.
    pub fn driver(&self) -> &str {
        self.driver.as_deref().unwrap_or("overlay")
    }

    /// What an existing network with these settings has otherwise, for a person
    /// (`internal: false, declared true`); driver options it has besides are not counted.
    pub fn differences(
        &self,
        driver: &str,
        internal: bool,
        attachable: bool,
        driver_opts: &BTreeMap<String, String>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if driver != self.driver() {
            out.push(format!("driver: {driver}, declared {}", self.driver()));
        }
        if internal != self.internal {
            out.push(format!("internal: {internal}, declared {}", self.internal));
        }
        if attachable != self.attachable {
            out.push(format!(
                "attachable: {attachable}, declared {}",
                self.attachable
            ));
        }
        for (k, v) in &self.driver_opts {
            let has = driver_opts.get(k);
            if has != Some(v) {
                out.push(format!(
                    "driver option {k}: {}, declared {v}",
                    has.map_or("unset", String::as_str)
                ));
            }
        }
        out
    }
}

/// A Swarm config or secret of an installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileObject {
    /// Swarm ID.
    pub id: String,
    /// Swarm name (`<file>-<hash>`).
    pub name: String,
}

/// A Swarm node's identity and labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Swarm ID.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// Labels now.
    pub labels: BTreeMap<String, String>,
    /// `ready`, `down`, `disconnected` or `unknown`, as the managers see it.
    pub state: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `manager` or `worker`.
    pub role: String,
}

impl NodeInfo {
    /// Whether Swarm may place new tasks here (ready and active).
    pub fn takes_tasks(&self) -> bool {
        self.state == "ready" && self.availability == "active"
    }

    /// The node's state for a person: `ready`, `down`, `ready, drained`, `ready, paused`.
    pub fn describe_state(&self) -> String {
        match self.availability.as_str() {
            "drain" => format!("{}, drained", self.state),
            "pause" => format!("{}, paused", self.state),
            _ => self.state.clone(),
        }
    }
}

/// An engine enum as the word the API uses.
fn word<T: serde::Serialize>(v: Option<T>) -> String {
    v.and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn installation_filter(installation: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{INSTALLATION_LABEL}={installation}")],
    )])
}

impl SwarmClient {
    /// The configs (or secrets, with `secret`) of an installation.
    pub async fn list_files(
        &self,
        installation: &str,
        secret: bool,
    ) -> Result<Vec<FileObject>, SwarmError> {
        let filters = Some(installation_filter(installation));
        let pairs: Vec<(Option<String>, Option<String>)> = if secret {
            let filters = &filters;
            self.call("list secrets", move |d| async move {
                d.list_secrets(Some(ListSecretsOptions {
                    filters: filters.clone(),
                }))
                .await
            })
            .await?
            .into_iter()
            .map(|s| (s.id, s.spec.and_then(|sp| sp.name)))
            .collect()
        } else {
            let filters = &filters;
            self.call("list configs", move |d| async move {
                d.list_configs(Some(ListConfigsOptions {
                    filters: filters.clone(),
                }))
                .await
            })
            .await?
            .into_iter()
            .map(|s| (s.id, s.spec.and_then(|sp| sp.name)))
            .collect()
        };
        Ok(pairs
            .into_iter()
            .filter_map(|(id, name)| {
                Some(FileObject {
                    id: id?,
                    name: name?,
                })
            })
            .collect())
    }

    /// Creates a config or secret; the content never appears in errors or logs.
    pub async fn create_file(
        &self,
        name: &str,
        content: &[u8],
        labels: &BTreeMap<String, String>,
        secret: bool,
    ) -> Result<String, SwarmError> {
        let data = Some(base64::engine::general_purpose::STANDARD.encode(content));
        let labels = Some(labels.clone().into_iter().collect());
        let what = if secret { "secret" } else { "config" };
        let (labels, data) = (&labels, &data);
        let operation = format!("create {what} {name}");
        let resp = if secret {
            self.count(WriteKind::SecretCreate)?;
            self.call(&operation, move |d| async move {
                d.create_secret(SecretSpec {
                    name: Some(name.to_string()),
                    labels: labels.clone(),
                    data: data.clone(),
                    ..SecretSpec::default()
                })
                .await
            })
            .await
        } else {
            self.count(WriteKind::ConfigCreate)?;
            self.call(&operation, move |d| async move {
                d.create_config(ConfigSpec {
                    name: Some(name.to_string()),
                    labels: labels.clone(),
                    data: data.clone(),
                    ..ConfigSpec::default()
                })
                .await
            })
            .await
        };
        resp.map(|r| r.id)
    }

    /// Removes a config or secret; Swarm refuses while a service uses it (an `Api` error).
    pub async fn remove_file(&self, id: &str, secret: bool) -> Result<(), SwarmError> {
        let operation = format!("remove {id}");
        let r = if secret {
            self.count(WriteKind::SecretRemove)?;
            self.call(
                &operation,
                move |d| async move { d.delete_secret(id).await },
            )
            .await
        } else {
            self.count(WriteKind::ConfigRemove)?;
            self.call(
                &operation,
                move |d| async move { d.delete_config(id).await },
            )
            .await
        };
        match r {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// The Swarm's nodes with their labels.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, SwarmError> {
        let nodes = self
            .call("list nodes", |d| async move { d.list_nodes(None).await })
            .await?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| {
                let spec = n.spec.unwrap_or_default();
                Some(NodeInfo {
                    id: n.id?,
                    hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                    labels: spec.labels.unwrap_or_default().into_iter().collect(),
                    state: word(n.status.and_then(|s| s.state)),
                    availability: word(spec.availability),
                    role: word(spec.role),
                })
            })
            .collect())
    }

    /// Sets a node's labels to exactly `labels`, sending its full spec and version.
    pub async fn set_node_labels(
        &self,
        id: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), SwarmError> {
        let node = self
            .call(&format!("inspect node {id}"), move |d| async move {
                d.inspect_node(id).await
            })
            .await?;
        let version = node.version.and_then(|v| v.index).unwrap_or_default();
        let mut spec = node.spec.unwrap_or_default();
        spec.labels = Some(labels.clone().into_iter().collect());
        self.count(WriteKind::NodeUpdate)?;
        let spec = &spec;
        self.call(&format!("update node {id}"), move |d| async move {
            d.update_node(
                id,
                spec.clone(),
                UpdateNodeOptions {
                    version: i64::try_from(version).unwrap_or(0),
                },
            )
            .await
        })
        .await
    }
}
