//! Swarm: rendering ServiceSpecs, the Docker client wrapper, and convergence.
//!
//! Only this module touches bollard; its types are turned into kargo's here.

mod api;
mod compare;
mod convergence;
mod docker;
pub(crate) use docker::open as open_docker;
mod fake;
pub mod names;
mod objects;
mod placement;
mod render;

pub use objects::{FileObject, NetworkOptions, NodeInfo};
pub use placement::node_trouble;

pub use api::Swarm;
pub use fake::{FAKE_NODE_HOSTNAME, FAKE_NODE_ID, FakeSwarm};

pub use compare::{changed_fields, comparable, covers, first_difference};
pub use convergence::{Convergence, assess};
pub use docker::{
    DockerConfig, LiveService, SwarmClient, SwarmError, SwarmEvent, TaskInfo, WriteGuard, WriteKind,
};
pub use docker::{LogChunk, LogOptions};
pub use render::{
    DEFAULT_BACK_NETWORK, DEFAULT_FRONT_NETWORK, DesiredService, RenderContext, RenderError,
    hash_json, render_service, with_force_update,
};
