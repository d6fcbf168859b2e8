//! The controller: watches etcd, reconciles Stacks onto Swarm, writes status back.

mod cache;
mod converge;
pub mod decide;
pub mod events;
mod execute;
mod finalizers;
mod live;
pub mod memory;
mod metrics;
mod ownership;
mod queue;
mod quorum;
mod reconcile;
mod revision;
mod run;
mod status;
mod swarm_objects;

pub use crate::plan::{Plan, PlannedService, PlannedStack, Snapshot, plan};
pub use cache::SnapshotCache;
pub use metrics::Metrics;
pub use queue::WorkQueue;
pub use quorum::NO_LEADER_REASON;
pub use reconcile::{Action, INSTALLATION_KEY, PassReport, Reconciler, StackOutcome};
pub use revision::stack_spec_hash;
pub use run::{Catalog, Controller, ControllerOptions, ElectionOptions};
pub use status::HasCommon;

use crate::store::StoreError;
use crate::swarm::SwarmError;

/// Why a reconcile pass failed; every variant is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// etcd failed or refused a write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Docker failed or refused a request.
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    /// A controller meant to run alone found another controller leading its prefix.
    #[error(
        "another controller ({identity}) leads the installation {prefix:?}: stop it first, or run every replica with --leader-elect (a controller killed without SIGTERM gives the lead up within its lease TTL)"
    )]
    AnotherLeader {
        /// The installation prefix.
        prefix: String,
        /// The leader's identity in the election.
        identity: String,
    },
    /// A kargo bug (e.g. a status that does not serialise).
    #[error("internal error: {0}")]
    Internal(String),
}
