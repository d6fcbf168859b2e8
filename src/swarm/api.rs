//! The seam between deciding and doing: the Docker calls the controller makes, as a trait.
//!
//! [`SwarmClient`] implements it by delegation (the real engine); [`super::FakeSwarm`]
//! implements it in memory, so reconcile decisions are unit-testable without Docker. One
//! contract suite (`tests/common/swarm_contract.rs`) runs against both.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::registry::Credentials;
use crate::registry::resolve::Resolution;

use super::docker::{
    LiveService, SwarmClient, SwarmError, SwarmEvent, TaskInfo, WriteGuard, WriteKind,
};
use super::names::STACK_NAMESPACE_LABEL;
use super::objects::{FileObject, NetworkOptions, NodeInfo};

/// What the controller asks of a Swarm manager. Every write is counted by kind and asks
/// the write guard first, if there is one.
#[async_trait]
pub trait Swarm: Send + Sync {
    /// The services of one installation (by label), with their specs.
    async fn list_services(&self, installation: &str) -> Result<Vec<LiveService>, SwarmError>;

    /// The services of one Swarm stack (`namespace`) of an installation, with their specs.
    async fn list_stack_services(
        &self,
        installation: &str,
        namespace: &str,
    ) -> Result<Vec<LiveService>, SwarmError> {
        let mut services = self.list_services(installation).await?;
        services
            .retain(|s| s.labels.get(STACK_NAMESPACE_LABEL).map(String::as_str) == Some(namespace));
        Ok(services)
    }

    /// One service by name or ID; `None` when there is none.
    async fn inspect_service(&self, name: &str) -> Result<Option<LiveService>, SwarmError>;

    /// Creates a service from a rendered spec; returns its ID. A taken name is an `Api`
    /// error. `auth` goes to the engine as `X-Registry-Auth`, so every node can pull the
    /// image (what `docker stack deploy --with-registry-auth` sends).
    async fn create_service(
        &self,
        name: &str,
        spec: &Value,
        auth: Option<&Credentials>,
    ) -> Result<String, SwarmError>;

    /// Replaces a service's spec; `version` must be the one last read. `auth` as for
    /// [`Swarm::create_service`] (none: the engine keeps the auth it was given before).
    async fn update_service(
        &self,
        id: &str,
        name: &str,
        version: u64,
        spec: &Value,
        auth: Option<&Credentials>,
    ) -> Result<(), SwarmError>;

    /// The digest a tag points to in its registry now, asked through the engine (as
    /// `docker stack deploy --resolve-image` does), bounded by
    /// [`RESOLVE_TIMEOUT`](crate::registry::resolve::RESOLVE_TIMEOUT). Never an error:
    /// what could not be had is [`Resolution::Unresolved`].
    async fn resolve_image(&self, image: &str, auth: Option<&Credentials>) -> Resolution;

    /// Removes a service; one that is already gone counts as removed.
    async fn remove_service(&self, id: &str) -> Result<(), SwarmError>;

    /// Makes sure an attachable overlay network exists; returns its ID.
    async fn ensure_network(&self, name: &str, installation: &str) -> Result<String, SwarmError>;

    /// Makes sure a network exists, created with `options` when it does not; returns its
    /// ID and what an existing network has otherwise, for a person (never recreated: that
    /// would cut the services on it).
    async fn ensure_network_with(
        &self,
        name: &str,
        installation: &str,
        options: &NetworkOptions,
    ) -> Result<(String, Vec<String>), SwarmError>;

    /// The networks labelled as this installation's (those it created), as (ID, name).
    async fn list_networks(&self, installation: &str) -> Result<Vec<(String, String)>, SwarmError>;

    /// Removes a network; refused (an `Api` error) while a service or container uses it;
    /// one that is already gone counts as removed.
    async fn remove_network(&self, id: &str) -> Result<(), SwarmError>;

    /// The tasks of a service, newest first.
    async fn tasks(&self, service_id: &str) -> Result<Vec<TaskInfo>, SwarmError> {
        let mut by_service = self.tasks_of(&[service_id.to_string()]).await?;
        Ok(by_service.remove(service_id).unwrap_or_default())
    }

    /// The tasks of several services, by service ID, newest first.
    async fn tasks_of(
        &self,
        service_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<TaskInfo>>, SwarmError>;

    /// The configs (or secrets, with `secret`) of an installation.
    async fn list_files(
        &self,
        installation: &str,
        secret: bool,
    ) -> Result<Vec<FileObject>, SwarmError>;

    /// Creates a config or secret; returns its ID.
    async fn create_file(
        &self,
        name: &str,
        content: &[u8],
        labels: &BTreeMap<String, String>,
        secret: bool,
    ) -> Result<String, SwarmError>;

    /// Removes a config or secret; refused (an `Api` error) while a service uses it.
    async fn remove_file(&self, id: &str, secret: bool) -> Result<(), SwarmError>;

    /// The Swarm's nodes with their labels.
    async fn nodes(&self) -> Result<Vec<NodeInfo>, SwarmError>;

    /// Sets a node's labels to exactly `labels`.
    async fn set_node_labels(
        &self,
        id: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), SwarmError>;

    /// Changes on services, networks, configs, secrets, nodes and containers, from now on.
    fn events(&self) -> BoxStream<'static, Result<SwarmEvent, SwarmError>>;

    /// Writes made so far, by kind (shared by every guarded view of the same Swarm).
    fn writes(&self) -> BTreeMap<WriteKind, u64>;

    /// All writes made so far.
    fn total_writes(&self) -> u64 {
        self.writes().values().sum()
    }

    /// The same Swarm, whose writes first ask `guard`: a refusal fails the write with
    /// [`SwarmError::Refused`] before anything changes or is counted.
    fn guarded(&self, guard: WriteGuard) -> Arc<dyn Swarm>;
}

#[async_trait]
impl Swarm for SwarmClient {
    async fn list_services(&self, installation: &str) -> Result<Vec<LiveService>, SwarmError> {
        SwarmClient::list_services(self, installation).await
    }

    async fn list_stack_services(
        &self,
        installation: &str,
        namespace: &str,
    ) -> Result<Vec<LiveService>, SwarmError> {
        SwarmClient::list_stack_services(self, installation, namespace).await
    }

    async fn inspect_service(&self, name: &str) -> Result<Option<LiveService>, SwarmError> {
        SwarmClient::inspect_service(self, name).await
    }

    async fn create_service(
        &self,
        name: &str,
        spec: &Value,
        auth: Option<&Credentials>,
    ) -> Result<String, SwarmError> {
        SwarmClient::create_service(self, name, spec, auth).await
    }

    async fn update_service(
        &self,
        id: &str,
        name: &str,
        version: u64,
        spec: &Value,
        auth: Option<&Credentials>,
    ) -> Result<(), SwarmError> {
        SwarmClient::update_service(self, id, name, version, spec, auth).await
    }

    async fn resolve_image(&self, image: &str, auth: Option<&Credentials>) -> Resolution {
        SwarmClient::resolve_image(self, image, auth).await
    }

    async fn remove_service(&self, id: &str) -> Result<(), SwarmError> {
        SwarmClient::remove_service(self, id).await
    }

    async fn ensure_network(&self, name: &str, installation: &str) -> Result<String, SwarmError> {
        SwarmClient::ensure_network(self, name, installation).await
    }

    async fn ensure_network_with(
        &self,
        name: &str,
        installation: &str,
        options: &NetworkOptions,
    ) -> Result<(String, Vec<String>), SwarmError> {
        SwarmClient::ensure_network_with(self, name, installation, options).await
    }

    async fn list_networks(&self, installation: &str) -> Result<Vec<(String, String)>, SwarmError> {
        SwarmClient::list_networks(self, installation).await
    }

    async fn remove_network(&self, id: &str) -> Result<(), SwarmError> {
        SwarmClient::remove_network(self, id).await
    }

    async fn tasks(&self, service_id: &str) -> Result<Vec<TaskInfo>, SwarmError> {
        SwarmClient::tasks(self, service_id).await
    }

    async fn tasks_of(
        &self,
        service_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<TaskInfo>>, SwarmError> {
        SwarmClient::tasks_of(self, service_ids).await
    }

    async fn list_files(
        &self,
        installation: &str,
        secret: bool,
    ) -> Result<Vec<FileObject>, SwarmError> {
        SwarmClient::list_files(self, installation, secret).await
    }

    async fn create_file(
        &self,
        name: &str,
        content: &[u8],
        labels: &BTreeMap<String, String>,
        secret: bool,
    ) -> Result<String, SwarmError> {
        SwarmClient::create_file(self, name, content, labels, secret).await
    }

    async fn remove_file(&self, id: &str, secret: bool) -> Result<(), SwarmError> {
        SwarmClient::remove_file(self, id, secret).await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, SwarmError> {
        SwarmClient::nodes(self).await
    }

    async fn set_node_labels(
        &self,
        id: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), SwarmError> {
        SwarmClient::set_node_labels(self, id, labels).await
    }

    fn events(&self) -> BoxStream<'static, Result<SwarmEvent, SwarmError>> {
        SwarmClient::events(self)
    }

    fn writes(&self) -> BTreeMap<WriteKind, u64> {
        SwarmClient::writes(self)
    }

    fn guarded(&self, guard: WriteGuard) -> Arc<dyn Swarm> {
        Arc::new(self.with_write_guard(guard))
    }
}
