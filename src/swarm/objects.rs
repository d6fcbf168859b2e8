//! Swarm configs, secrets and node labels: the objects besides services that kargo keeps.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use bollard::models::{ConfigSpec, SecretSpec};
use bollard::query_parameters::{ListConfigsOptions, ListSecretsOptions, UpdateNodeOptions};

use super::docker::{SwarmClient, SwarmError, WriteKind};
use super::names::INSTALLATION_LABEL;

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
            self.docker
                .list_secrets(Some(ListSecretsOptions { filters }))
                .await
                .map_err(|e| self.api_error("list secrets".into(), e))?
                .into_iter()
                .map(|s| (s.id, s.spec.and_then(|sp| sp.name)))
                .collect()
        } else {
            self.docker
                .list_configs(Some(ListConfigsOptions { filters }))
                .await
                .map_err(|e| self.api_error("list configs".into(), e))?
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
        let resp = if secret {
            self.count(WriteKind::SecretCreate)?;
            self.docker
                .create_secret(SecretSpec {
                    name: Some(name.to_string()),
                    labels,
                    data,
                    ..SecretSpec::default()
                })
                .await
        } else {
            self.count(WriteKind::ConfigCreate)?;
            self.docker
                .create_config(ConfigSpec {
                    name: Some(name.to_string()),
                    labels,
                    data,
                    ..ConfigSpec::default()
                })
                .await
        };
        resp.map(|r| r.id)
            .map_err(|e| self.api_error(format!("create {what} {name}"), e))
    }

    /// Removes a config or secret; Swarm refuses while a service uses it (an `Api` error).
    pub async fn remove_file(&self, id: &str, secret: bool) -> Result<(), SwarmError> {
        let r = if secret {
            self.count(WriteKind::SecretRemove)?;
            self.docker.delete_secret(id).await
        } else {
            self.count(WriteKind::ConfigRemove)?;
            self.docker.delete_config(id).await
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = self.api_error(format!("remove {id}"), e);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
        }
    }

    /// The Swarm's nodes with their labels.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, SwarmError> {
        let nodes = self
            .docker
            .list_nodes(None)
            .await
            .map_err(|e| self.api_error("list nodes".into(), e))?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| {
                Some(NodeInfo {
                    id: n.id?,
                    hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                    labels: n
                        .spec
                        .and_then(|s| s.labels)
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
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
            .docker
            .inspect_node(id)
            .await
            .map_err(|e| self.api_error(format!("inspect node {id}"), e))?;
        let version = node.version.and_then(|v| v.index).unwrap_or_default();
        let mut spec = node.spec.unwrap_or_default();
        spec.labels = Some(labels.clone().into_iter().collect());
        self.count(WriteKind::NodeUpdate)?;
        self.docker
            .update_node(
                id,
                spec,
                UpdateNodeOptions {
                    version: i64::try_from(version).unwrap_or(0),
                },
            )
            .await
            .map_err(|e| self.api_error(format!("update node {id}"), e))
    }
}
