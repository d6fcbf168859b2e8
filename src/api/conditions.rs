//! The condition types and reasons kargo writes into statuses, in one place, so the
//! controller, `kargo wait` and `kargo describe` cannot drift apart on a spelling.

/// The condition types every kind may carry.
pub mod types {
    /// The object is what was asked for, working.
    pub const READY: &str = "Ready";
    /// A change is being carried out.
    pub const PROGRESSING: &str = "Progressing";
    /// Something failed and needs a person.
    pub const DEGRADED: &str = "Degraded";
}

/// CamelCase reasons of those conditions.
pub mod reasons {
    /// Everything asked for is in place.
    pub const CONVERGED: &str = "Converged";
    /// Work is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// A Stack waits for the Stacks it depends on (or the previous one in rollout order).
    pub const WAITING_FOR_STACK: &str = "WaitingForStack";
    /// A service waits for the services it depends on.
    pub const WAITING_FOR_SERVICE: &str = "WaitingForService";
    /// The update of a service failed (rolled back or past its deadline).
    pub const UPDATE_FAILED: &str = "UpdateFailed";
    /// A service's merged spec does not interpolate, validate or render.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A Stack lists what cannot be deployed.
    pub const INVALID_STACK: &str = "InvalidStack";
    /// The Configuration in force has a problem of its own.
    pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";
    /// A stored object is undecodable or fails its schema (doubt).
    pub const INVALID_OBJECT: &str = "InvalidObject";
    /// The Environment the Configuration names does not exist (doubt).
    pub const ENVIRONMENT_NOT_FOUND: &str = "EnvironmentNotFound";
    /// The Configuration in force is gone after the installation had it (doubt).
    pub const CONFIGURATION_NOT_FOUND: &str = "ConfigurationNotFound";
    /// The Environment lists a Stack that does not exist (doubt).
    pub const STACK_NOT_FOUND: &str = "StackNotFound";
    /// A Stack lists a Service that does not exist (doubt).
    pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
    /// Two Stacks list the same Service (doubt).
    pub const SERVICE_CLAIMED_TWICE: &str = "ServiceClaimedTwice";
    /// Two Services of one Stack have the same Swarm name (`serviceName`) (doubt).
    pub const SERVICE_NAME_TAKEN: &str = "ServiceNameTaken";
    /// A reconcile of the Stack panicked (a kargo bug).
    pub const RECONCILE_PANICKED: &str = "ReconcilePanicked";
    /// The Stack is suspended: its Swarm objects are removed.
    pub const SUSPENDED: &str = "Suspended";
    /// No deployed Stack (or Environment) includes the object.
    pub const NOT_DEPLOYED: &str = "NotDeployed";
    /// Another Configuration is in force.
    pub const NOT_IN_FORCE: &str = "NotInForce";
    /// The policy of the Configuration in force refuses a service's merged spec: nothing
    /// of it is deployed; a running one is kept as it is, not updated, until it is mended
    /// or exempted.
    pub const POLICY_VIOLATION: &str = "PolicyViolation";
    /// A same-named Swarm object belongs to another kargo installation (another prefix).
    pub const OWNED_BY_ANOTHER_INSTALLATION: &str = "OwnedByAnotherInstallation";
    /// A same-named Swarm service exists that kargo does not own.
    pub const NOT_ADOPTED: &str = "NotAdopted";
    /// The installation holds sealed values and the controller has no private key.
    pub const SECRET_KEY_MISSING: &str = "SecretKeyMissing";
    /// The stored public key is not the controller's (or is missing while values are sealed).
    pub const SECRET_KEY_MISMATCH: &str = "SecretKeyMismatch";
    /// Every variable of an Environment resolves.
    pub const RESOLVED: &str = "Resolved";
    /// Some variables of an Environment do not resolve.
    pub const UNRESOLVED_VARIABLES: &str = "UnresolvedVariables";
    /// Swarm paused a service's update after a failure.
    pub const UPDATE_PAUSED: &str = "UpdatePaused";
    /// Swarm rolled a service's update back (or kargo rolled a Stack back: an event).
    pub const ROLLED_BACK: &str = "RolledBack";
    /// A service was not Ready within its Stack's progress deadline.
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// Tasks of a service fail.
    pub const TASKS_FAILING: &str = "TasksFailing";
    /// Tasks of a service are not all running yet.
    pub const TASKS_PENDING: &str = "TasksPending";
    /// The Swarm service disappeared right after kargo wrote it.
    pub const MISSING: &str = "Missing";
    /// The credentials of the image's registry could not be had (a variable, file or
    /// environment variable missing): the service is not pushed, what runs stays.
    pub const REGISTRY_CREDENTIALS_UNAVAILABLE: &str = "RegistryCredentialsUnavailable";
    /// The image's registry refused the credentials kargo gave it: the service is not
    /// pushed, what runs stays.
    pub const REGISTRY_CREDENTIALS_REFUSED: &str = "RegistryCredentialsRefused";
}

/// Reasons of events the controller records about what it did.
pub mod events {
    /// A Swarm service, config or secret was created.
    pub const CREATED: &str = "Created";
    /// A Swarm service's spec was replaced.
    pub const UPDATED: &str = "Updated";
    /// A same-named Swarm service kargo did not own was taken over.
    pub const ADOPTED: &str = "Adopted";
    /// A Swarm service nobody wants was removed.
    pub const REMOVED: &str = "Removed";
    /// A Swarm service was left running without kargo's labels (`--cascade=orphan`).
    pub const ORPHANED: &str = "Orphaned";
    /// A Stack's network exists with other settings than it declares (a warning: it is
    /// not recreated, which would cut the services on it).
    pub const NETWORK_DIFFERS: &str = "NetworkDiffers";
    /// An image tag could not be resolved to its digest (a warning: the service is
    /// deployed unpinned, each node pulls the tag itself).
    pub const IMAGE_UNRESOLVED: &str = "ImageUnresolved";
}
