//! `kargo build`: a Service's image built from its `build` section through the Docker API
//! (the context packed as a tar honouring `.dockerignore`), tagged with the Service's
//! merged `image`, and pushed to its registry with the Environment's credentials.
//!
//! Builds talk to one engine with a client of their own: a build may run for many
//! minutes, past the short request timeout of the Swarm client, and needs no manager.

pub mod context;
pub mod ignore;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;
use futures::StreamExt;
use serde_json::Value;

use crate::api::Build;
use crate::manifest::merge::{merge_layers, settings_patch};
use crate::plan::{Plan, Snapshot};
use crate::registry::{Credentials, RegistryError, registry_of};
use crate::swarm::DockerConfig;

/// How long one build or push may take, end to end.
const BUILD_TIMEOUT_SECS: u64 = 3600;

/// The size of the pieces the context is sent in (the upload progress moves by them).
const CHUNK: usize = 64 * 1024;

/// Why a build or a push failed; each message says what (the step, the registry).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The context folder, or a file in it, cannot be read.
    #[error("build context {}: {source}", .path.display())]
    Context {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `.dockerignore` has a line Docker refuses.
    #[error("{}: {source}", .path.display())]
    Ignore {
        /// The file.
        path: PathBuf,
        /// The line and why.
        source: ignore::IgnoreError,
    },
    /// The Dockerfile is not in the context.
    #[error("no Dockerfile at {}", .path.display())]
    NoDockerfile {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The engine cannot be reached.
    #[error("Docker at {host} is unreachable: {message}")]
    Unavailable {
        /// The endpoint.
        host: String,
        /// Why.
        message: String,
    },
    /// A step of the Dockerfile failed (or the engine refused the build).
    #[error("{}{message}", .step.as_ref().map(|s| format!("{s}: ")).unwrap_or_default())]
    Step {
        /// The step that failed (`Step 3/4 : RUN make`), when one had started.
        step: Option<String>,
        /// The engine's message.
        message: String,
    },
    /// The image's tag cannot be built or pushed as written.
    #[error("image {image:?}: {message}")]
    Image {
        /// The image.
        image: String,
        /// Why.
        message: String,
    },
    /// The registry's credentials could not be had.
    #[error(transparent)]
    Credentials(#[from] RegistryError),
    /// The registry refused the credentials (or asked for some and was given none).
    #[error("registry {server} refused the credentials{}: {message}", .username.as_ref().map(|u| format!(" of user {u:?}")).unwrap_or_else(|| " (none given: name it in the Environment's registries)".into()))]
    Refused {
        /// The registry.
        server: String,
        /// The user name sent, if any.
        username: Option<String>,
        /// The registry's answer.
        message: String,
    },
    /// The push failed otherwise.
    #[error("push to registry {server} failed: {message}")]
    Push {
        /// The registry.
        server: String,
        /// Why.
        message: String,
    },
}

/// One Service to build: its merged `image` and `build`, and the folder its context is
/// read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The Service.
    pub service: String,
    /// The tag to give the image (the merged `image`).
    pub image: String,
    /// The merged `build` (the Environment's `buildArgs` over the Service's).
    pub build: Build,
    /// The context folder, resolved.
    pub context: PathBuf,
}

/// How `docker build` would be asked to build: the flags Kargo's build scripts passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildFlags {
    /// Pull newer versions of the base images first (`docker build --pull`).
    pub pull: bool,
    /// Build every step again (`docker build --no-cache`).
    pub no_cache: bool,
}

/// What a build or push reports as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Bytes of the context sent so far, of the total.
    Upload {
        /// Sent.
        sent: u64,
        /// Total.
        total: u64,
    },
    /// A step began (`Step 2/4 : COPY app.txt /app.txt`).
    Step(String),
    /// A line of a step's output.
    Output(String),
    /// The image was built and tagged.
    Built {
        /// The tag.
        image: String,
    },
    /// The push began.
    Pushing {
        /// The tag.
        image: String,
    },
    /// The image is in the registry.
    Pushed {
        /// The tag.
        image: String,
        /// Its digest (`sha256:…`).
        digest: String,
    },
}

/// Receives a service's events; called from the build's task, so it must be cheap.
pub type Reporter = Arc<dyn Fn(&str, Event) + Send + Sync>;

/// The merged spec of every Service of `snapshot`: the plan's (the controller's merge) for
/// those a deployed Stack holds, else the Service ⊕ the Environment's settings in force,
/// interpolated with its variables where they are set.
pub fn merged_services(snapshot: &Snapshot, plan: &Plan) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = plan
        .stacks
        .iter()
        .flat_map(|s| s.services.iter())
        .filter_map(|p| p.merged.clone().map(|m| (p.name.clone(), m)))
        .collect();
    let env = plan
        .environment
        .as_ref()
        .and_then(|e| snapshot.environments.get(e));
    let variables = env
        .map(|e| crate::manifest::interpolate::resolve_variables_partial(&e.spec.variables).0)
        .unwrap_or_default();
    for (name, raw) in &snapshot.service_specs {
        if out.contains_key(name) {
            continue;
        }
        let below = merge_layers([raw]);
        let merged = match env.and_then(|e| e.spec.services.get(name)) {
            Some(settings) => merge_layers([&below, &settings_patch(settings, &below)]),
            None => below,
        };
        let merged = crate::manifest::interpolate::interpolate_value(&merged, &variables, "/spec")
            .unwrap_or(merged);
        out.insert(name.clone(), crate::manifest::load::strip_nulls(&merged));
    }
    out
}

/// The build target of a merged Service spec; `base` is the folder a relative context is
/// read from. `Ok(None)`: the Service has no `build`.
pub fn target_of(service: &str, merged: &Value, base: &Path) -> Result<Option<Target>, String> {
    let Some(raw) = merged.get("build") else {
        return Ok(None);
    };
    let build: Build = serde_json::from_value(raw.clone())
        .map_err(|e| format!("service {service:?}: build: {e}"))?;
    let image = merged
        .get("image")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| format!("service {service:?} has a build but no image to tag"))?;
    if image.contains('@') {
        return Err(format!(
            "service {service:?}: the image {image:?} is pinned to a digest: a build cannot be tagged so"
        ));
    }
    Ok(Some(Target {
        service: service.to_string(),
        image: image.to_string(),
        context: base.join(&build.context),
        build,
    }))
}

/// A Docker client for builds: the first configured endpoint (or `DOCKER_HOST`, or the
/// local socket), with a timeout long enough for a build.
pub fn connect(config: &DockerConfig) -> Result<Docker, BuildError> {
    let host = config
        .hosts
        .iter()
        .map(|h| h.trim())
        .find(|h| !h.is_empty())
        .map(str::to_string)
        .or_else(|| {
            std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.trim().is_empty())
        })
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
    crate::swarm::open_docker(
        &host,
        config.tls.as_deref(),
        bollard::API_DEFAULT_VERSION,
        BUILD_TIMEOUT_SECS,
    )
    .map_err(|message| BuildError::Unavailable { host, message })
}

/// Builds `target` from its context and tags it; reports the upload, each step and its
/// output. The tar is written by a blocking thread as it is sent, a chunk at a time, so a
/// large context is never held whole. Cancel-safe: dropping it abandons the build (the
/// engine finishes or stops it on its own; the writer stops at its next chunk).
pub async fn build(
    docker: &Docker,
    target: &Target,
    context: context::Selection,
    flags: BuildFlags,
    pull_credentials: &[Credentials],
    report: &Reporter,
) -> Result<(), BuildError> {
    let b = &target.build;
    let options = bollard::query_parameters::BuildImageOptions {
        dockerfile: b.dockerfile.clone().unwrap_or_else(|| "Dockerfile".into()),
        t: Some(target.image.clone()),
        buildargs: Some(b.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        labels: Some(
            b.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ),
        target: b.target.clone().unwrap_or_default(),
        cachefrom: (!b.cache_from.is_empty()).then(|| b.cache_from.clone()),
        rm: true,
        forcerm: true,
        pull: flags.pull.then(|| "1".to_string()),
        nocache: flags.no_cache,
        ..Default::default()
    };
    let total = context.estimated_bytes.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let writer = tokio::task::spawn_blocking(move || {
        context
            .write_to(ChunkWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            })
            .and_then(|w| {
                w.finish().map_err(|source| BuildError::Context {
                    path: PathBuf::from("(the context tar)"),
                    source,
                })
            })
    });
    let sent = Arc::new(AtomicU64::new(0));
    let (service, upload) = (target.service.clone(), report.clone());
    let (done_service, done_upload, done_sent) =
        (target.service.clone(), report.clone(), sent.clone());
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let body = chunks
        .map(move |chunk| {
            let now = sent.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            // The size is an estimate: the bar stays short of full until the end.
            let shown = now.min(total - 1);
            upload(&service, Event::Upload { sent: shown, total });
            chunk
        })
        .chain(
            futures::stream::once(async move {
                let all = done_sent.load(Ordering::Relaxed);
                done_upload(
                    &done_service,
                    Event::Upload {
                        sent: all,
                        total: all,
                    },
                );
            })
            .filter_map(|()| async { None::<bytes::Bytes> }),
        );
    report(&target.service, Event::Upload { sent: 0, total });
    let result = run_build(docker, target, options, body, pull_credentials, report).await;
    // The request (and so the channel's receiver) is gone: the writer ends at its next
    // chunk if it has not already. A context that could not be read is the cause of
    // whatever the engine said about the truncated tar.
    match writer.await {
        Ok(Err(e @ BuildError::Context { .. })) if !is_broken_pipe(&e) => Err(e),
        Ok(Err(e @ BuildError::Ignore { .. })) => Err(e),
        Err(e) => Err(BuildError::Step {
            step: None,
            message: format!("writing the context stopped: {e}"),
        }),
        _ => result,
    }
}

/// Whether a context error only says the engine stopped reading (the build failed first).
fn is_broken_pipe(e: &BuildError) -> bool {
    matches!(e, BuildError::Context { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Sends what the tar writer writes, in chunks of [`CHUNK`], to the upload.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the engine stopped reading the context",
            )
        })
    }

    /// Sends what is left.
    fn finish(mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends the build request with `body` as its context and follows its output.
async fn run_build(
    docker: &Docker,
    target: &Target,
    options: bollard::query_parameters::BuildImageOptions,
    body: impl futures::Stream<Item = bytes::Bytes> + Send + 'static,
    pull_credentials: &[Credentials],
    report: &Reporter,
) -> Result<(), BuildError> {
    // Every registry's credentials, so a `FROM` of a private image can be pulled.
    let registry_config = (!pull_credentials.is_empty()).then(|| {
        pull_credentials
            .iter()
            .map(|c| (c.server.clone(), c.to_docker()))
            .collect::<HashMap<_, _>>()
    });
    let mut stream = docker.build_image(options, registry_config, Some(bollard::body_stream(body)));
    let mut step: Option<String> = None;
    let mut partial = String::new();
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                return Err(BuildError::Step {
                    step,
                    message: engine_message(e),
                });
            }
        };
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(BuildError::Step {
                step,
                message: detail.trim().to_string(),
            });
        }
        let Some(text) = info.stream else {
            continue;
        };
        partial.push_str(&text);
        while let Some(at) = partial.find('\n') {
            let line: String = partial.drain(..=at).collect();
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if line.starts_with("Step ") {
                step = Some(line.to_string());
                report(&target.service, Event::Step(line.to_string()));
            } else {
                report(&target.service, Event::Output(line.to_string()));
            }
        }
    }
    report(
        &target.service,
        Event::Built {
            image: target.image.clone(),
        },
    );
    Ok(())
}

/// The text of a bollard error, without its Rust wrapping where it carries the engine's.
fn engine_message(e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        bollard::errors::Error::DockerStreamError { error } => error,
        other => other.to_string(),
    }
}

/// `registry:5000/app:1.2` → (`registry:5000/app`, `1.2`); no tag is `latest`.
pub fn split_tag(image: &str) -> (&str, &str) {
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

/// Pushes `image` to its registry with `credentials` (none: anonymously) and returns the
/// digest the registry gave it. A refusal of the credentials is [`BuildError::Refused`].
pub async fn push(
    docker: &Docker,
    service: &str,
    image: &str,
    credentials: Option<&Credentials>,
    report: &Reporter,
) -> Result<String, BuildError> {
    let server = registry_of(image).to_string();
    let (name, tag) = split_tag(image);
    report(
        service,
        Event::Pushing {
            image: image.to_string(),
        },
    );
    let options = bollard::query_parameters::PushImageOptions {
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    let mut stream =
        docker.push_image(name, Some(options), credentials.map(Credentials::to_docker));
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                let message = engine_message(e);
                return Err(push_error(&server, credentials, message));
            }
        };
        if let Some(status) = info.status.as_deref()
            && let Some((_, rest)) = status.split_once("digest: ")
        {
            digest = rest.split_whitespace().next().map(str::to_string);
        }
    }
    let digest = digest.ok_or_else(|| BuildError::Push {
        server: server.clone(),
        message: "the registry gave no digest".into(),
    })?;
    report(
        service,
        Event::Pushed {
            image: image.to_string(),
            digest: digest.clone(),
        },
    );
    Ok(digest)
}

/// A push failure, read: the registry's refusals of credentials are told apart.
fn push_error(server: &str, credentials: Option<&Credentials>, message: String) -> BuildError {
    let lower = message.to_lowercase();
    let refused = [
        "unauthorized",
        "authentication required",
        "denied",
        "no basic auth",
    ]
    .iter()
    .any(|w| lower.contains(w));
    if refused {
        BuildError::Refused {
            server: server.to_string(),
            username: credentials.map(|c| c.username.clone()),
            message,
        }
    } else {
        BuildError::Push {
            server: server.to_string(),
            message,
        }
    }
}

#[cfg(test)]
mod tests;
