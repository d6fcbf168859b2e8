//! The one wrapper through which kargo talks to Docker: it counts every write by kind.
//!
//! Docker writes cannot be fenced like etcd writes; they are idempotent at the level of
//! a reconcile and may happen at least once.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::{NetworkCreateRequest, ServiceSpec, TaskState};
use bollard::query_parameters::{
    ListNetworksOptions, ListServicesOptions, ListTasksOptions, UpdateServiceOptions,
};
use bollard::{ClientVersion, Docker};
use serde_json::Value;

use crate::registry::Credentials;
use crate::registry::resolve::{RESOLVE_TIMEOUT, Resolution, classify_error};

use super::compare::first_difference;
use super::names::{INSTALLATION_LABEL, STACK_NAMESPACE_LABEL};
use super::objects::NetworkOptions;

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
    /// Every manager endpoint answered, but the Swarm has no leader (quorum lost): nothing
    /// can be read or changed until enough managers return (retryable).
    #[error("the Swarm has no leader (Docker at {host}: {message})")]
    NoLeader {
        /// The manager that said so.
        host: String,
        /// The daemon's message.
        message: String,
    },
    /// The endpoint is a Swarm worker (or not in a Swarm): it cannot run Swarm requests.
    #[error("Docker at {host} is not a Swarm manager: {message}")]
    NotManager {
        /// The endpoint.
        host: String,
        /// The daemon's message.
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
    /// True when another manager endpoint may answer where this one did not: the
    /// endpoint is unreachable, not a manager, or sees no leader.
    pub fn is_endpoint_failure(&self) -> bool {
        matches!(
            self,
            SwarmError::Unavailable { .. }
                | SwarmError::NoLeader { .. }
                | SwarmError::NotManager { .. }
        )
    }

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
    /// `DELETE /networks/{id}`.
    NetworkRemove,
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
            WriteKind::NetworkRemove => "network_remove",
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
    /// `service`, `network`, `config`, `secret`, `node` or `container`.
    pub kind: String,
    /// What happened (`create`, `update`, `remove`...).
    pub action: String,
    /// The object's name, when Docker gives it.
    pub name: Option<String>,
    /// The object's ID, when Docker gives it.
    pub id: Option<String>,
    /// The Swarm service a container event's task belongs to (engine API 1.41 gives a
    /// service event no labels, but a task's container carries its service's ID).
    pub service: Option<String>,
}

/// How long one request may take before the endpoint counts as unreachable: a manager
/// cut off by the network fails over within this long (bollard's own default is 120 s).
const REQUEST_TIMEOUT_SECS: u64 = 15;

/// How to reach a Swarm's managers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerConfig {
    /// Manager endpoints in order of preference: `unix:///path`, `tcp://host:port`
    /// (`https://` too). Empty: `DOCKER_HOST`, else the local socket.
    pub hosts: Vec<String>,
    /// Directory holding `ca.pem`, `cert.pem` and `key.pem` (the names `DOCKER_CERT_PATH`
    /// uses): `tcp://` endpoints then speak TLS and verify the daemon against `ca.pem`.
    pub tls: Option<PathBuf>,
}

impl DockerConfig {
    /// One endpoint, without TLS.
    pub fn single(host: &str) -> Self {
        DockerConfig {
            hosts: vec![host.to_string()],
            tls: None,
        }
    }

    /// The endpoints to use: the configured ones, else `DOCKER_HOST` (one address, as the
    /// docker CLI reads it), else the local socket.
    fn resolved_hosts(&self) -> Vec<String> {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect();
        if !hosts.is_empty() {
            return hosts;
        }
        vec![
            std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.trim().is_empty())
                .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string()),
        ]
    }
}

/// One manager endpoint; its bollard client is opened when first used (a socket that is
/// missing at start-up may appear later).
struct Endpoint {
    address: String,
    docker: Mutex<Option<Docker>>,
}

/// The endpoints of one client and the one in use, shared by every clone.
struct Endpoints {
    list: Vec<Endpoint>,
    tls: Option<PathBuf>,
    /// The API version negotiated at connect; every endpoint speaks it (managers of one
    /// Swarm run the same engine, give or take an upgrade in progress).
    version: ClientVersion,
    current: AtomicUsize,
    switches: AtomicU64,
}

impl Endpoints {
    /// The client of endpoint `i`, opening it on first use.
    fn docker(&self, i: usize) -> Result<Docker, SwarmError> {
        let endpoint = &self.list[i];
        let mut slot = endpoint.docker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let d = open(
            &endpoint.address,
            self.tls.as_deref(),
            &self.version,
            REQUEST_TIMEOUT_SECS,
        )
        .map_err(|e| SwarmError::Unavailable {
            host: endpoint.address.clone(),
            message: e.to_string(),
        })?;
        *slot = Some(d.clone());
        Ok(d)
    }

    /// Moves from endpoint `from` to the next one, unless another request already moved.
    fn advance(&self, from: usize, why: &SwarmError) {
        let n = self.list.len();
        if n < 2 {
            return;
        }
        let next = (from + 1) % n;
        if self
            .current
            .compare_exchange(from, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.switches.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                from = %self.list[from].address,
                to = %self.list[next].address,
                error = %why,
                "Docker endpoint failed; using the next manager endpoint"
            );
        }
    }
}

/// A bollard client for one address (no I/O yet, except that a unix socket must exist),
/// whose requests time out after `timeout` seconds (builds need far longer than Swarm calls).
pub(crate) fn open(
    address: &str,
    tls: Option<&std::path::Path>,
    version: &ClientVersion,
    timeout: u64,
) -> Result<Docker, String> {
    let result = if address.starts_with("unix://") {
        Docker::connect_with_unix(address, timeout, version)
    } else if address.starts_with('/') {
        Docker::connect_with_unix(&format!("unix://{address}"), timeout, version)
    } else if address.starts_with("tcp://")
        || address.starts_with("http://")
        || address.starts_with("https://")
    {
        match tls {
            Some(dir) => Docker::connect_with_ssl(
                address,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                timeout,
                version,
            ),
            None if address.starts_with("https://") => {
                return Err(
                    "an https:// endpoint needs TLS files (--docker-tls-verify, DOCKER_CERT_PATH)"
                        .into(),
                );
            }
            None => Docker::connect_with_http(address, timeout, version),
        }
    } else {
        return Err("not a Docker address: use unix:///path or tcp://host:port".into());
    };
    result.map_err(|e| e.to_string())
}

/// A connection to the Docker daemons of a Swarm's managers: it talks to one endpoint at
/// a time and moves to the next when that one is unreachable, is not a manager, or sees
/// no leader. Clones share the endpoint in use and the write counter.
#[derive(Clone)]
pub struct SwarmClient {
    endpoints: Arc<Endpoints>,
    writes: Arc<Mutex<BTreeMap<WriteKind, u64>>>,
    guard: Option<WriteGuard>,
}

impl SwarmClient {
    /// Connects to `host` (or `DOCKER_HOST`, or the local socket); see [`Self::connect_with`].
    pub async fn connect(host: Option<&str>) -> Result<Self, SwarmError> {
        let config = host.map(DockerConfig::single).unwrap_or_default();
        Self::connect_with(&config).await
    }

    /// Connects to the endpoints of `config`: every one is asked at once (version
    /// negotiation and a ping, 5 s each); the first in the list that answers is used.
    /// Fails fast, naming every endpoint, when none answers. Endpoints that do not
    /// answer now are kept for failover.
    pub async fn connect_with(config: &DockerConfig) -> Result<Self, SwarmError> {
        let hosts = config.resolved_hosts();
        let probes = hosts.iter().map(|h| probe(h, config.tls.as_deref()));
        let answers = futures::future::join_all(probes).await;
        let Some(first) = answers.iter().position(Result::is_ok) else {
            let mut errors: Vec<SwarmError> = answers.into_iter().filter_map(Result::err).collect();
            return Err(if errors.len() == 1 {
                errors.remove(0)
            } else {
                SwarmError::Unavailable {
                    host: hosts.join(","),
                    message: errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            });
        };
        let version = answers[first]
            .as_ref()
            .map(Docker::client_version)
            .unwrap_or_else(|_| *bollard::API_DEFAULT_VERSION);
        let list = hosts
            .iter()
            .zip(answers)
            .map(|(address, answer)| Endpoint {
                address: address.clone(),
                docker: Mutex::new(answer.ok()),
            })
            .collect();
        Ok(SwarmClient {
            endpoints: Arc::new(Endpoints {
                list,
                tls: config.tls.clone(),
                version,
                current: AtomicUsize::new(first),
                switches: AtomicU64::new(0),
            }),
            writes: Arc::default(),
            guard: None,
        })
    }

    /// The endpoint requests go to now.
    pub fn endpoint(&self) -> String {
        let i = self.endpoints.current.load(Ordering::SeqCst);
        self.endpoints.list[i].address.clone()
    }

    /// Every configured endpoint, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints
            .list
            .iter()
            .map(|e| e.address.clone())
            .collect()
    }

    /// How many times the client moved to another endpoint.
    pub fn endpoint_switches(&self) -> u64 {
        self.endpoints.switches.load(Ordering::Relaxed)
    }

    /// Runs one request on the endpoint in use; when that endpoint fails (unreachable,
    /// not a manager, no leader) moves to the next and tries again, at most once per
    /// endpoint. A request retried elsewhere may have reached the first daemon: callers
    /// only send requests that a reconcile may repeat. The error, when every endpoint
    /// failed, is "no leader" if any endpoint said so, else the last one.
    pub(super) async fn call<T, F, Fut>(&self, operation: &str, f: F) -> Result<T, SwarmError>
    where
        F: Fn(Docker) -> Fut,
        Fut: Future<Output = Result<T, bollard::errors::Error>>,
    {
        let n = self.endpoints.list.len();
        let mut failures: Vec<SwarmError> = Vec::new();
        for _ in 0..n {
            let i = self.endpoints.current.load(Ordering::SeqCst);
            let result = match self.endpoints.docker(i) {
                Ok(docker) => f(docker)
                    .await
                    .map_err(|e| self.api_error_at(i, operation.to_string(), e)),
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if e.is_endpoint_failure() && n > 1 => {
                    self.endpoints.advance(i, &e);
                    failures.push(e);
                }
                Err(e) => return Err(e),
            }
        }
        let no_leader = failures
            .iter()
            .position(|e| matches!(e, SwarmError::NoLeader { .. }));
        Err(match no_leader {
            Some(p) => failures.swap_remove(p),
            None => failures.pop().unwrap_or_else(|| SwarmError::Unavailable {
                host: self.endpoint(),
                message: "no endpoint configured".into(),
            }),
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

    /// Docker events on services, networks, configs, secrets, nodes and containers (a
    /// task's state shows as its container's), from now on. The stream ends when the
    /// daemon goes away; the caller reconnects.
    pub fn events(&self) -> futures::stream::BoxStream<'static, Result<SwarmEvent, SwarmError>> {
        use futures::StreamExt;
        let filters = HashMap::from([(
            "type".to_string(),
            [
                "service",
                "network",
                "config",
                "secret",
                "node",
                "container",
            ]
            .map(str::to_string)
            .to_vec(),
        )]);
        let options = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let endpoints = self.endpoints.clone();
        let i = endpoints.current.load(Ordering::SeqCst);
        let host = endpoints.list[i].address.clone();
        let docker = match endpoints.docker(i) {
            Ok(d) => d,
            Err(e) => {
                endpoints.advance(i, &e);
                return futures::stream::once(async move { Err(e) }).boxed();
            }
        };
        docker
            .events(Some(options))
            .map(move |r| match r {
                Ok(m) => {
                    let kind = m
                        .typ
                        .and_then(|t| serde_json::to_value(t).ok())
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    let actor = m.actor.unwrap_or_default();
                    let mut attributes = actor.attributes.unwrap_or_default();
                    Ok(SwarmEvent {
                        kind,
                        action: m.action.unwrap_or_default(),
                        name: attributes.remove("name"),
                        id: actor.id.filter(|i| !i.is_empty()),
                        service: attributes.remove("com.docker.swarm.service.id"),
                    })
                }
                Err(e) => {
                    let e = SwarmError::Unavailable {
                        host: host.clone(),
                        message: format!("event stream: {e}"),
                    };
                    // The stream ends here; its reconnection goes to the next manager.
                    endpoints.advance(i, &e);
                    Err(e)
                }
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

    /// Turns a bollard error from endpoint `i` into kargo's: unreachable, no leader, not
    /// a manager, or a refusal.
    fn api_error_at(&self, i: usize, operation: String, e: bollard::errors::Error) -> SwarmError {
        use bollard::errors::Error as E;
        let host = self.endpoints.list[i].address.clone();
        match e {
            E::DockerResponseServerError {
                status_code,
                message,
            } => {
                // "lost leader status": the manager was the leader when quorum went.
                if message.contains("does not have a leader")
                    || message.contains("lost leader status")
                {
                    SwarmError::NoLeader { host, message }
                } else if message.contains("is not a swarm manager") {
                    SwarmError::NotManager { host, message }
                } else {
                    SwarmError::Api {
                        operation,
                        status: Some(status_code),
                        message,
                    }
                }
            }
            E::IOError { .. }
            | E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_) => SwarmError::Unavailable {
                host,
                message: e.to_string(),
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
        self.services_labelled(vec![format!("{INSTALLATION_LABEL}={installation}")])
            .await
    }

    /// The services of one Swarm stack of an installation (both labels), with their specs.
    pub async fn list_stack_services(
        &self,
        installation: &str,
        namespace: &str,
    ) -> Result<Vec<LiveService>, SwarmError> {
        self.services_labelled(vec![
            format!("{INSTALLATION_LABEL}={installation}"),
            format!("{STACK_NAMESPACE_LABEL}={namespace}"),
        ])
        .await
    }

    /// The services carrying every one of `labels` (values of one filter key are AND'ed
    /// for labels), with their specs.
    async fn services_labelled(&self, labels: Vec<String>) -> Result<Vec<LiveService>, SwarmError> {
        let options = ListServicesOptions {
            filters: Some(HashMap::from([("label".to_string(), labels)])),
            status: Some(true),
        };
        let options = &options;
        let services = self
            .call("list services", move |d| async move {
                d.list_services(Some(options.clone())).await
            })
            .await?;
        Ok(services.into_iter().filter_map(live_service).collect())
    }

    /// One service by name or ID; `None` when there is none.
    pub async fn inspect_service(&self, name: &str) -> Result<Option<LiveService>, SwarmError> {
        let operation = format!("inspect service {name}");
        match self
            .call(&operation, move |d| async move {
                d.inspect_service(name, None).await
            })
            .await
        {
            Ok(s) => Ok(live_service(s)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a service from a rendered spec; returns its ID. `auth` is sent as
    /// `X-Registry-Auth` (the nodes pull with it).
    pub async fn create_service(
        &self,
        name: &str,
        spec: &Value,
        auth: Option<&Credentials>,
    ) -> Result<String, SwarmError> {
        let model = Self::to_model(name, spec)?;
        self.count(WriteKind::ServiceCreate)?;
        let (model, auth) = (&model, &auth.map(Credentials::to_docker));
        let resp = self
            .call(&format!("create service {name}"), move |d| async move {
                d.create_service(model.clone(), auth.clone()).await
            })
            .await?;
        Ok(resp.id.unwrap_or_default())
    }

    /// Replaces a service's spec; `version` must be the one last read (else "update out
    /// of sequence"). `auth` is sent as `X-Registry-Auth`; without it the engine keeps
    /// the auth the service was given before.
    pub async fn update_service(
        &self,
        id: &str,
        name: &str,
        version: u64,
        spec: &Value,
        auth: Option<&Credentials>,
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
        let (model, options, auth) = (&model, &options, &auth.map(Credentials::to_docker));
        self.call(&format!("update service {name}"), move |d| async move {
            d.update_service(id, model.clone(), options.clone(), auth.clone())
                .await
        })
        .await?;
        Ok(())
    }

    /// The digest `image`'s tag points to now, asked of its registry through the engine's
    /// distribution endpoint within [`RESOLVE_TIMEOUT`]; what could not be had (timeout,
    /// unreachable registry, unknown tag, refused credentials) is classified, never an error.
    pub async fn resolve_image(&self, image: &str, auth: Option<&Credentials>) -> Resolution {
        let had_credentials = auth.is_some();
        let auth = &auth.map(Credentials::to_docker);
        let operation = format!("resolve image {image}");
        let asked = self.call(&operation, move |d| async move {
            d.inspect_registry_image(image, auth.clone()).await
        });
        match tokio::time::timeout(RESOLVE_TIMEOUT, asked).await {
            Err(_) => {
                Resolution::Unresolved(format!("no answer within {}s", RESOLVE_TIMEOUT.as_secs()))
            }
            Ok(Ok(found)) => match found.descriptor.digest {
                Some(digest) if !digest.is_empty() => Resolution::Digest(digest),
                _ => Resolution::Unresolved("the registry answered no digest".into()),
            },
            Ok(Err(SwarmError::Api {
                status, message, ..
            })) => classify_error(status, &message, had_credentials),
            Ok(Err(other)) => Resolution::Unresolved(other.to_string()),
        }
    }

    /// Removes a service; one that is already gone counts as removed.
    pub async fn remove_service(&self, id: &str) -> Result<(), SwarmError> {
        self.count(WriteKind::ServiceRemove)?;
        match self
            .call(&format!("remove service {id}"), move |d| async move {
                d.delete_service(id).await
            })
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// The ID of a network by exact name; `None` when there is none.
    pub async fn network_id(&self, name: &str) -> Result<Option<String>, SwarmError> {
        Ok(self.network(name).await?.and_then(|n| n.id))
    }

    /// The network of this exact name, if any.
    async fn network(&self, name: &str) -> Result<Option<bollard::models::Network>, SwarmError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let filters = &filters;
        let networks = self
            .call("list networks", move |d| async move {
                d.list_networks(Some(ListNetworksOptions {
                    filters: Some(filters.clone()),
                }))
                .await
            })
            .await?;
        // A network being removed may still be listed beside its successor, without
        // settings: the one with a driver is the live one.
        let mut same: Vec<_> = networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .collect();
        same.sort_by_key(|n| n.driver.as_deref().is_none_or(str::is_empty));
        Ok(same.into_iter().next())
    }

    /// The networks labelled as this installation's (those it created), as (ID, name).
    pub async fn list_networks(
        &self,
        installation: &str,
    ) -> Result<Vec<(String, String)>, SwarmError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{INSTALLATION_LABEL}={installation}")],
        )]);
        let filters = &filters;
        let networks = self
            .call("list networks", move |d| async move {
                d.list_networks(Some(ListNetworksOptions {
                    filters: Some(filters.clone()),
                }))
                .await
            })
            .await?;
        Ok(networks
            .into_iter()
            .filter(|n| {
                n.labels
                    .as_ref()
                    .and_then(|l| l.get(INSTALLATION_LABEL))
                    .map(String::as_str)
                    == Some(installation)
            })
            .filter_map(|n| Some((n.id?, n.name?)))
            .collect())
    }

    /// Removes a network; the engine refuses while a service or container uses it; one
    /// that is already gone counts as removed.
    pub async fn remove_network(&self, id: &str) -> Result<(), SwarmError> {
        self.count(WriteKind::NetworkRemove)?;
        match self
            .call(&format!("remove network {id}"), move |d| async move {
                d.remove_network(id).await
            })
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Makes sure an attachable overlay network exists; returns its ID.
    pub async fn ensure_network(
        &self,
        name: &str,
        installation: &str,
    ) -> Result<String, SwarmError> {
        let options = NetworkOptions::default();
        let (id, _) = self
            .ensure_network_with(name, installation, &options)
            .await?;
        Ok(id)
    }

    /// Makes sure a network exists, created with `options` when it does not; returns its
    /// ID and the settings an existing network has otherwise (it is never recreated: that
    /// would cut the services on it).
    pub async fn ensure_network_with(
        &self,
        name: &str,
        installation: &str,
        options: &NetworkOptions,
    ) -> Result<(String, Vec<String>), SwarmError> {
        if let Some(id) = self.network_id(name).await? {
            // The listing may show a network just created without its settings: its
            // inspection has them.
            let target = id.as_str();
            let n = self
                .call(&format!("inspect network {name}"), move |d| async move {
                    d.inspect_network(target, None).await
                })
                .await?;
            // Still none (the engine has not settled it): nothing is known to differ.
            let differs = match n.driver.as_deref().filter(|d| !d.is_empty()) {
                Some(driver) => options.differences(
                    driver,
                    n.internal.unwrap_or_default(),
                    n.attachable.unwrap_or_default(),
                    &n.options.unwrap_or_default().into_iter().collect(),
                ),
                None => Vec::new(),
            };
            return Ok((id, differs));
        }
        self.count(WriteKind::NetworkCreate)?;
        let mut labels: HashMap<String, String> = options.labels.clone().into_iter().collect();
        labels.insert(INSTALLATION_LABEL.to_string(), installation.to_string());
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some(options.driver().to_string()),
            attachable: Some(options.attachable),
            internal: Some(options.internal),
            options: (!options.driver_opts.is_empty())
                .then(|| options.driver_opts.clone().into_iter().collect()),
            labels: Some(labels),
            ..NetworkCreateRequest::default()
        };
        let request = &request;
        match self
            .call(&format!("create network {name}"), move |d| async move {
                d.create_network(request.clone()).await
            })
            .await
        {
            Ok(r) => Ok((r.id, Vec::new())),
            Err(err) => {
                // Another writer may have created it meanwhile: take theirs.
                match self.network_id(name).await? {
                    Some(id) => Ok((id, Vec::new())),
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
        let filters = &filters;
        let tasks = self
            .call("list tasks", move |d| async move {
                d.list_tasks(Some(ListTasksOptions {
                    filters: Some(filters.clone()),
                }))
                .await
            })
            .await?;
        for t in tasks {
            let status = t.status.unwrap_or_default();
            let service = t.service_id.unwrap_or_default();
            out.entry(service).or_default().push(TaskInfo {
                id: t.id.unwrap_or_default(),
                slot: t.slot,
                node_id: t.node_id.filter(|n| !n.is_empty()),
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

/// Opens one endpoint, negotiates its API version and pings it (5 s each).
async fn probe(address: &str, tls: Option<&std::path::Path>) -> Result<Docker, SwarmError> {
    let unavailable = |message: String| SwarmError::Unavailable {
        host: address.to_string(),
        message,
    };
    let docker = open(
        address,
        tls,
        bollard::API_DEFAULT_VERSION,
        REQUEST_TIMEOUT_SECS,
    )
    .map_err(unavailable)?;
    let docker = tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
        .await
        .map_err(|_| unavailable("no answer within 5s".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::time::timeout(Duration::from_secs(5), docker.ping())
        .await
        .map_err(|_| unavailable("no answer within 5s".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(docker)
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
        let (i, docker) = match self.current_docker() {
            Ok(d) => d,
            Err(e) => return Box::pin(futures::stream::once(async move { Err(e) })),
        };
        let stream = docker.service_logs(service, Some(logs_query(options)));
        self.log_chunks(i, stream, format!("read the logs of {service}"))
    }

    /// The logs of one task (so each line can say which task wrote it, as `docker service
    /// logs` does), stdout and stderr apart; ends as [`SwarmClient::service_logs`] does.
    pub fn task_logs(
        &self,
        task: &str,
        options: &LogOptions,
    ) -> futures::stream::BoxStream<'static, Result<LogChunk, SwarmError>> {
        let (i, docker) = match self.current_docker() {
            Ok(d) => d,
            Err(e) => return Box::pin(futures::stream::once(async move { Err(e) })),
        };
        let stream = docker.task_logs(task, Some(logs_query(options)));
        self.log_chunks(i, stream, format!("read the logs of task {task}"))
    }

    /// The client of the manager endpoint in use (the CLI's read-only streams use it as is).
    fn current_docker(&self) -> Result<(usize, Docker), SwarmError> {
        let i = self.endpoints.current.load(Ordering::SeqCst);
        Ok((i, self.endpoints.docker(i)?))
    }

    /// Docker's log frames as [`LogChunk`]s, errors naming `operation` and endpoint `i`.
    fn log_chunks(
        &self,
        i: usize,
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
                Err(e) => Err(this.api_error_at(i, operation.clone(), e)),
            })
            .boxed()
    }

    /// The hostnames of the Swarm's nodes, by node ID.
    pub async fn node_names(&self) -> Result<BTreeMap<String, String>, SwarmError> {
        let nodes = self
            .call("list nodes", |d| async move {
                d.list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
                    .await
            })
            .await?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| {
                let host = n.description.and_then(|d| d.hostname)?;
                Some((n.id?, host))
            })
            .collect())
    }
}
