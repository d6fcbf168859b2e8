//! The one wrapper through which kargo talks to Docker: it counts every write by kind.
//!
//! Docker writes cannot be fenced like etcd writes; they are idempotent at the level of
//! a reconcile and may happen at least once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{NetworkCreateRequest, ServiceSpec, TaskState};
use bollard::query_parameters::{
    ListNetworksOptions, ListServicesOptions, ListTasksOptions, UpdateServiceOptions,
};
use serde_json::Value;

use super::compare::first_difference;
use super::names::INSTALLATION_LABEL;

/// Failures talking to Docker.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The daemon cannot be reached (retryable).
    #[error("Docker at {host} is unreachable: {message}")]
    Unavailable {
        /// Where we looked.
        host: String,
        /// What failed.
        message: String,
    },
    /// The daemon refused a request.
    #[error("Docker refused to {operation}: {message}")]
    Api {
        /// What kargo tried.
        operation: String,
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// The daemon's message.
        message: String,
    },
    /// The write guard refused a write (this replica is not, or may no longer be, the leader).
    #[error("refused to {operation}: {reason}")]
    Refused {
        /// The write.
        operation: String,
        /// Why.
        reason: String,
    },
    /// A rendered spec that bollard's model rejects (a kargo bug, not user input).
    #[error("the rendered spec of {name} does not fit the Engine API: {message}")]
    InvalidSpec {
        /// The Swarm object.
        name: String,
        /// What does not fit.
        message: String,
    },
}

impl SwarmError {
    /// True when the object is gone already (removal is then done).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            SwarmError::Api {
                status: Some(404),
                ..
            }
        )
    }
}

/// The kinds of Docker writes, for the write counter and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WriteKind {
    /// `POST /services/create`.
    ServiceCreate,
    /// `POST /services/{id}/update`.
    ServiceUpdate,
    /// `DELETE /services/{id}`.
    ServiceRemove,
    /// `POST /networks/create`.
    NetworkCreate,
    /// `POST /configs/create`.
    ConfigCreate,
    /// `DELETE /configs/{id}`.
    ConfigRemove,
    /// `POST /secrets/create`.
    SecretCreate,
    /// `DELETE /secrets/{id}`.
    SecretRemove,
    /// `POST /nodes/{id}/update`.
    NodeUpdate,
}

impl WriteKind {
    /// The metric label of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::ServiceCreate => "service_create",
            WriteKind::ServiceUpdate => "service_update",
            WriteKind::ServiceRemove => "service_remove",
            WriteKind::NetworkCreate => "network_create",
            WriteKind::ConfigCreate => "config_create",
            WriteKind::ConfigRemove => "config_remove",
            WriteKind::SecretCreate => "secret_create",
            WriteKind::SecretRemove => "secret_remove",
            WriteKind::NodeUpdate => "node_update",
        }
    }
}

/// A Swarm service as it is now.
#[derive(Clone, Debug)]
pub struct LiveService {
    /// Swarm ID.
    pub id: String,
    /// Swarm name.
    pub name: String,
    /// Version index, sent back with an update.
    pub version: u64,
    /// The spec, as Engine API JSON.
    pub spec: Value,
    /// The service labels.
    pub labels: BTreeMap<String, String>,
    /// Swarm's update state, if an update ever ran.
    pub update_state: Option<String>,
    /// Swarm's update message.
    pub update_message: Option<String>,
}

/// A task of a service.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    /// Task ID.
    pub id: String,
    /// Replica slot (replicated services).
    pub slot: Option<i64>,
    /// Node the task is on.
    pub node_id: Option<String>,
    /// What Swarm wants the task to be.
    pub desired_state: String,
    /// What the task is.
    pub state: String,
    /// Error reported for the task.
    pub error: Option<String>,
    /// Status message.
    pub message: Option<String>,
    /// Status time, RFC 3339.
    pub timestamp: Option<String>,
    /// The task's spec (from the service spec it was made for), as Engine API JSON.
    pub spec: Value,
}

/// Decides whether a Docker write may happen now (the leader's own-clock lease check).
pub type WriteGuard = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A change Docker reports on an object kargo cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmEvent {
    /// `service`, `network`, `config`, `secret` or `node`.
    pub kind: String,
    /// What happened (`create`, `update`, `remove`...).
    pub action: String,
    /// The object's name, when Docker gives it.
    pub name: Option<String>,
}

/// A connection to the Docker daemon of a Swarm manager.
#[derive(Clone)]
pub struct SwarmClient {
    pub(super) docker: Docker,
    host: String,
    writes: Arc<Mutex<BTreeMap<WriteKind, u64>>>,
    guard: Option<WriteGuard>,
}

impl SwarmClient {
    /// Connects to `host` (or `DOCKER_HOST`, or the local socket), negotiates the API
    /// version (engines here speak 1.41) and pings, failing fast when there is no daemon.
    pub async fn connect(host: Option<&str>) -> Result<Self, SwarmError> {
        let host_name = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let unavailable = |message: String| SwarmError::Unavailable {
            host: host_name.clone(),
            message,
        };
        let docker =
            Docker::connect_with_host(&host_name).map_err(|e| unavailable(e.to_string()))?;
        let docker = tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
            .await
            .map_err(|_| unavailable("no answer within 5s".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        tokio::time::timeout(Duration::from_secs(5), docker.ping())
            .await
            .map_err(|_| unavailable("no answer within 5s".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(SwarmClient {
            docker,
            host: host_name,
            writes: Arc::default(),
            guard: None,
        })
    }

    /// A client whose writes first ask `guard` (e.g. "is my leader lease still valid by my
    /// own clock?"); a refusal fails the write with [`SwarmError::Refused`] before any request.
    pub fn with_write_guard(&self, guard: WriteGuard) -> Self {
        SwarmClient {
            guard: Some(guard),
            ..self.clone()
        }
    }

    /// Docker events on services, networks, configs, secrets and nodes, from now on.
    /// The stream ends when the daemon goes away; the caller reconnects.
    pub fn events(&self) -> futures::stream::BoxStream<'static, Result<SwarmEvent, SwarmError>> {
        use futures::StreamExt;
        let filters = HashMap::from([(
            "type".to_string(),
            ["service", "network", "config", "secret", "node"]
                .map(str::to_string)
                .to_vec(),
        )]);
        let options = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let host = self.host.clone();
        self.docker
            .events(Some(options))
            .map(move |r| match r {
                Ok(m) => {
                    let kind = m
                        .typ
                        .and_then(|t| serde_json::to_value(t).ok())
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    let name = m
                        .actor
                        .and_then(|a| a.attributes)
                        .and_then(|mut a| a.remove("name"));
                    Ok(SwarmEvent {
                        kind,
                        action: m.action.unwrap_or_default(),
                        name,
                    })
                }
                Err(e) => Err(SwarmError::Unavailable {
                    host: host.clone(),
                    message: format!("event stream: {e}"),
                }),
            })
            .boxed()
    }

    /// Docker writes made through this client so far, by kind.
    pub fn writes(&self) -> BTreeMap<WriteKind, u64> {
        self.writes.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// All Docker writes made through this client so far.
    pub fn total_writes(&self) -> u64 {
        self.writes().values().sum()
    }

    /// Asks the guard, then counts the write. Every Docker write goes through here.
    pub(super) fn count(&self, kind: WriteKind) -> Result<(), SwarmError> {
        if let Some(guard) = &self.guard {
            guard().map_err(|reason| SwarmError::Refused {
                operation: kind.as_str().to_string(),
                reason,
            })?;
        }
        if let Ok(mut w) = self.writes.lock() {
            *w.entry(kind).or_default() += 1;
        }
        Ok(())
    }

    pub(super) fn api_error(&self, operation: String, e: bollard::errors::Error) -> SwarmError {
        match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            } => SwarmError::Api {
                operation,
                status: Some(status_code),
                message,
            },
            bollard::errors::Error::IOError { err } => SwarmError::Unavailable {
                host: self.host.clone(),
                message: err.to_string(),
            },
            bollard::errors::Error::HyperResponseError { err } => SwarmError::Unavailable {
                host: self.host.clone(),
                message: err.to_string(),
            },
            other => SwarmError::Api {
                operation,
                status: None,
                message: other.to_string(),
            },
        }
    }

    /// Types a rendered spec, refusing one that bollard's model would silently cut
    /// (its models ignore unknown fields, so a misspelt field would vanish on the wire).
    pub(super) fn to_model(name: &str, spec: &Value) -> Result<ServiceSpec, SwarmError> {
        let invalid = |message: String| SwarmError::InvalidSpec {
            name: name.to_string(),
            message,
        };
        let model: ServiceSpec =
            serde_json::from_value(spec.clone()).map_err(|e| invalid(e.to_string()))?;
        let back = serde_json::to_value(&model).map_err(|e| invalid(e.to_string()))?;
        match first_difference(&back, spec, "") {
            Some(path) => Err(invalid(format!(
                "field {path} is not in the Engine API model"
            ))),
            None => Ok(model),
        }
    }

    /// The services of one installation (by label), with their specs.
    pub async fn list_services(&self, installation: &str) -> Result<Vec<LiveService>, SwarmError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{INSTALLATION_LABEL}={installation}")],
        )]);
        let options = ListServicesOptions {
            filters: Some(filters),
            status: Some(true),
        };
        let services = self
            .docker
            .list_services(Some(options))
            .await
            .map_err(|e| self.api_error("list services".into(), e))?;
        Ok(services.into_iter().filter_map(live_service).collect())
    }

    /// One service by name or ID; `None` when there is none.
    pub async fn inspect_service(&self, name: &str) -> Result<Option<LiveService>, SwarmError> {
        match self.docker.inspect_service(name, None).await {
            Ok(s) => Ok(live_service(s)),
            Err(e) => {
                let err = self.api_error(format!("inspect service {name}"), e);
                if err.is_not_found() {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Creates a service from a rendered spec; returns its ID.
    pub async fn create_service(&self, name: &str, spec: &Value) -> Result<String, SwarmError> {
        let model = Self::to_model(name, spec)?;
        self.count(WriteKind::ServiceCreate)?;
        let resp = self
            .docker
            .create_service(model, None)
            .await
            .map_err(|e| self.api_error(format!("create service {name}"), e))?;
        Ok(resp.id.unwrap_or_default())
    }

    /// Replaces a service's spec; `version` must be the one last read (else "update out of sequence").
    pub async fn update_service(
        &self,
        id: &str,
        name: &str,
        version: u64,
        spec: &Value,
    ) -> Result<(), SwarmError> {
        let model = Self::to_model(name, spec)?;
        let version = i32::try_from(version).map_err(|_| SwarmError::Api {
            operation: format!("update service {name}"),
            status: None,
            message: format!("version index {version} is out of range"),
        })?;
        let options = UpdateServiceOptions {
            version,
            ..UpdateServiceOptions::default()
        };
        self.count(WriteKind::ServiceUpdate)?;
        self.docker
            .update_service(id, model, options, None)
            .await
            .map_err(|e| self.api_error(format!("update service {name}"), e))?;
        Ok(())
    }

    /// Removes a service; one that is already gone counts as removed.
    pub async fn remove_service(&self, id: &str) -> Result<(), SwarmError> {
        self.count(WriteKind::ServiceRemove)?;
        match self.docker.delete_service(id).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = self.api_error(format!("remove service {id}"), e);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
        }
    }

    /// The ID of a network by exact name; `None` when there is none.
    pub async fn network_id(&self, name: &str) -> Result<Option<String>, SwarmError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| self.api_error("list networks".into(), e))?;
        Ok(networks
            .into_iter()
            .find(|n| n.name.as_deref() == Some(name))
            .and_then(|n| n.id))
    }

    /// Makes sure an attachable overlay network exists; returns its ID.
    pub async fn ensure_network(
        &self,
        name: &str,
        installation: &str,
    ) -> Result<String, SwarmError> {
        if let Some(id) = self.network_id(name).await? {
            return Ok(id);
        }
        self.count(WriteKind::NetworkCreate)?;
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("overlay".into()),
            attachable: Some(true),
            labels: Some(HashMap::from([(
                INSTALLATION_LABEL.to_string(),
                installation.to_string(),
            )])),
            ..NetworkCreateRequest::default()
        };
        match self.docker.create_network(request).await {
            Ok(r) => Ok(r.id),
            Err(e) => {
                let err = self.api_error(format!("create network {name}"), e);
                // Another writer may have created it meanwhile: take theirs.
                match self.network_id(name).await? {
                    Some(id) => Ok(id),
                    None => Err(err),
                }
            }
        }
    }

    /// The tasks of a service, newest first.
    pub async fn tasks(&self, service_id: &str) -> Result<Vec<TaskInfo>, SwarmError> {
        let mut by_service = self.tasks_of(&[service_id.to_string()]).await?;
        Ok(by_service.remove(service_id).unwrap_or_default())
    }

    /// The tasks of several services in one request, by service ID, newest first.
    pub async fn tasks_of(
        &self,
        service_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<TaskInfo>>, SwarmError> {
        let mut out: BTreeMap<String, Vec<TaskInfo>> = BTreeMap::new();
        if service_ids.is_empty() {
            return Ok(out);
        }
        // Values of one filter key are OR'ed by the engine.
        let filters = HashMap::from([("service".to_string(), service_ids.to_vec())]);
        let tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| self.api_error("list tasks".to_string(), e))?;
        for t in tasks {
            let status = t.status.unwrap_or_default();
            let service = t.service_id.unwrap_or_default();
            out.entry(service).or_default().push(TaskInfo {
                id: t.id.unwrap_or_default(),
                slot: t.slot,
                node_id: t.node_id,
                desired_state: t.desired_state.map(state_name).unwrap_or_default(),
                state: status.state.map(state_name).unwrap_or_default(),
                error: status.err.filter(|e| !e.is_empty()),
                message: status.message,
                timestamp: status.timestamp.map(|t| t.to_string()),
                spec: t
                    .spec
                    .and_then(|s| serde_json::to_value(s).ok())
                    .unwrap_or_default(),
            });
        }
        for list in out.values_mut() {
            list.sort_by(|a, b| b.timestamp.cmp(&a.timestamp));
        }
        Ok(out)
    }
}

fn state_name(s: TaskState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn live_service(s: bollard::models::Service) -> Option<LiveService> {
    let spec = s.spec?;
    let labels = spec
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let update = s.update_status.unwrap_or_default();
    Some(LiveService {
        id: s.id?,
        name: spec.name.clone().unwrap_or_default(),
        version: s.version.and_then(|v| v.index).unwrap_or_default(),
        spec: serde_json::to_value(&spec).ok()?,
        labels,
        update_state: update
            .state
            .and_then(|st| serde_json::to_value(st).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .filter(|s| !s.is_empty()),
        update_message: update.message,
    })
}

/// One chunk of a service's logs, from its tasks' stdout or stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogChunk {
    /// Written to the containers' stdout.
    Stdout(Vec<u8>),
    /// Written to the containers' stderr.
    Stderr(Vec<u8>),
}

/// Which logs of a service to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new lines until the stream is dropped or the service goes.
    pub follow: bool,
    /// Only the last lines of each task (all when `None`).
    pub tail: Option<u64>,
    /// Only lines since this Unix time, in seconds.
    pub since: Option<i64>,
    /// Prefix each line with the daemon's timestamp.
    pub timestamps: bool,
}

/// The Engine API's query for the logs of a service or a task.
fn logs_query(options: &LogOptions) -> bollard::query_parameters::LogsOptions {
    bollard::query_parameters::LogsOptions {
        follow: options.follow,
        stdout: true,
        stderr: true,
        since: options
            .since
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(0),
        until: 0,
        timestamps: options.timestamps,
        tail: options
            .tail
            .map(|t| t.to_string())
            .unwrap_or_else(|| "all".into()),
    }
}

/// Read-only helpers for the CLI (`ps`, `logs`, `describe`): no write goes through here.
impl SwarmClient {
    /// The logs of a service (all its tasks), stdout and stderr apart. The stream ends
    /// when the daemon has sent everything (or, with `follow`, when the service goes);
    /// dropping it stops the request.
    pub fn service_logs(
        &self,
        service: &str,
        options: &LogOptions,
    ) -> futures::stream::BoxStream<'static, Result<LogChunk, SwarmError>> {
        let stream = self.docker.service_logs(service, Some(logs_query(options)));
        self.log_chunks(stream, format!("read the logs of {service}"))
    }

    /// The logs of one task (so each line can say which task wrote it, as `docker service
    /// logs` does), stdout and stderr apart; ends as [`SwarmClient::service_logs`] does.
    pub fn task_logs(
        &self,
        task: &str,
        options: &LogOptions,
    ) -> futures::stream::BoxStream<'static, Result<LogChunk, SwarmError>> {
        let stream = self.docker.task_logs(task, Some(logs_query(options)));
        self.log_chunks(stream, format!("read the logs of task {task}"))
    }

    /// Docker's log frames as [`LogChunk`]s, errors naming `operation`.
    fn log_chunks(
        &self,
        stream: impl futures::Stream<
            Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
        > + Send
        + 'static,
        operation: String,
    ) -> futures::stream::BoxStream<'static, Result<LogChunk, SwarmError>> {
        use futures::StreamExt;
        let this = self.clone();
        stream
            .map(move |r| match r {
                Ok(bollard::container::LogOutput::StdErr { message }) => {
                    Ok(LogChunk::Stderr(message.to_vec()))
                }
                Ok(
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message }
                    | bollard::container::LogOutput::StdIn { message },
                ) => Ok(LogChunk::Stdout(message.to_vec())),
                Err(e) => Err(this.api_error(operation.clone(), e)),
            })
            .boxed()
    }

    /// The hostnames of the Swarm's nodes, by node ID.
    pub async fn node_names(&self) -> Result<BTreeMap<String, String>, SwarmError> {
        let nodes = self
            .docker
            .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
            .await
            .map_err(|e| self.api_error("list nodes".into(), e))?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| {
                let host = n.description.and_then(|d| d.hostname)?;
                Some((n.id?, host))
            })
            .collect())
    }
}
