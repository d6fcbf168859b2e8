//! The annotations kargo reads and writes on objects, in one place, so the CLI, the store
//! and the controller cannot drift apart on a spelling.

/// The manifest as last applied (JSON), for three-way merges as kubectl's.
pub const LAST_APPLIED_ANNOTATION: &str = "kargo.dev/last-applied-configuration";

/// Set by `kargo rollout restart`; a new value forces a redeploy.
pub const RESTARTED_AT_ANNOTATION: &str = "kargo.dev/restartedAt";

/// Set by `kargo delete --cascade=orphan`: the Swarm objects stay, unlabelled.
pub const CASCADE_ANNOTATION: &str = "kargo.dev/cascade";
