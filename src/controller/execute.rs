//! Doing what [`super::decide`] decided for one Stack: the Docker writes, then the events,
//! the statuses, the Ready set and `rollback: auto`. The only place a Stack's reconcile
//! writes; it decides nothing itself.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use crate::api::conditions::{events, reasons};
use crate::api::{EnvironmentSpec, Kind, SensitiveValue};
use crate::plan::Snapshot;
use crate::registry::Credentials;
use crate::registry::registry_of;
use crate::registry::resolve::{
    Pinning, REMEMBER_FAILURE, Resolution, digest_of, is_unreachable, pinned, pinning,
};
use crate::store::{RollbackBy, RollbackStep, roll_back};

use super::ControllerError;
use super::decide::{Decision, Desired, Event, Observed, Operation, Push, decide};
use super::events::EventType;
use super::reconcile::Reconciler;

impl Reconciler<'_> {
    /// Decides the Stack, makes the pushes it asks for, observes the pushed services
    /// anew and decides again, until a decision asks for no push; returns that last
    /// decision (its statuses and events are still to be written). Each service is pushed
    /// at most once, so this ends after at most one round per service.
    ///
    /// Errors: a Docker failure ends it; the writes made before stay (the next reconcile
    /// sees them).
    pub(super) async fn converge_stack(
        &self,
        desired: &Desired<'_>,
        mut observed: Observed,
    ) -> Result<Decision, ControllerError> {
        // Opened once per reconcile, not once per push: a Stack may push many services.
        let mut env: Option<Option<EnvironmentSpec>> = None;
        loop {
            let decision = decide(desired, &observed);
            if !decision.pushes.is_empty() {
                let env = env.get_or_insert_with(|| environment_in_force(desired, self.keys));
                for push in &decision.pushes {
                    self.push(env.as_ref(), push, &mut observed).await?;
                }
                continue;
            }
            if decision.needs_nodes && observed.nodes.is_none() {
                // Only to name a node to blame: a failure to list them is no reason to stop.
                observed.nodes = Some(self.swarm.nodes().await.unwrap_or_default());
                continue;
            }
            return Ok(decision);
        }
    }

    /// Makes one Docker write with the registry auth of its image (the image pinned to
    /// its digest as the Environment's `resolveImage` says), records its events, and
    /// observes the service as it is now. A push whose registry credentials cannot be had
    /// or are refused is not made: the service is marked blocked, what runs stays.
    async fn push(
        &self,
        env: Option<&EnvironmentSpec>,
        push: &Push,
        observed: &mut Observed,
    ) -> Result<(), ControllerError> {
        let name = push.operation.name().to_string();
        let mut operation = push.operation.clone();
        let mut event = push.event.clone();
        let mut warnings = Vec::new();
        let mut auth = None;
        if let Some(image) = image_of(&operation) {
            let live = match &operation {
                Operation::Create { .. } => None,
                Operation::Update { .. } => observed.live.get(&name),
                Operation::Adopt { .. } => observed.foreign.get(&name),
            }
            .and_then(|l| l.spec.pointer(IMAGE_POINTER))
            .and_then(Value::as_str);
            match self.pin(&push.service, env, &image, live).await {
                Pinned::Blocked(reason, message) => {
                    observed.blocked.insert(name, (reason, message));
                    return Ok(());
                }
                Pinned::Send {
                    image: sent,
                    credentials,
                    warning,
                } => {
                    if let Some(digest) = digest_of(&sent).filter(|_| sent != image) {
                        event
                            .message
                            .push_str(&format!(" (image pinned to {digest})"));
                    }
                    set_image(&mut operation, sent);
                    warnings.extend(warning);
                    auth = credentials;
                }
            }
        }
        let id = match &operation {
            Operation::Create { name, spec } => {
                self.swarm.create_service(name, spec, auth.as_ref()).await?
            }
            Operation::Update {
                id,
                name,
                version,
                spec,
            }
            | Operation::Adopt {
                id,
                name,
                version,
                spec,
            } => {
                self.swarm
                    .update_service(id, name, *version, spec, auth.as_ref())
                    .await?;
                id.clone()
            }
        };
        self.record(&event).await;
        for w in &warnings {
            self.record(w).await;
        }
        match self.swarm.inspect_service(&id).await? {
            Some(now) => {
                observed.live.insert(name.clone(), now);
            }
            None => {
                observed.live.remove(&name);
            }
        }
        observed
            .tasks
            .insert(id.clone(), self.swarm.tasks(&id).await?);
        observed.pushed.insert(name, id);
        Ok(())
    }

    /// The image reference and the registry auth a push of `service` sends: the
    /// Environment's credentials for the image's registry, and the tag resolved to its
    /// digest when `resolveImage` asks for it (docs/images.md). An unreachable registry
    /// is remembered for [`REMEMBER_FAILURE`] and not asked again meanwhile.
    async fn pin(
        &self,
        service: &str,
        env: Option<&EnvironmentSpec>,
        image: &str,
        live: Option<&str>,
    ) -> Pinned {
        let default_env = EnvironmentSpec::default();
        let env = env.unwrap_or(&default_env);
        let credentials = match crate::registry::credentials_for(env, image, &self.registries.rules)
        {
            Ok(c) => c,
            Err(e) => {
                return Pinned::Blocked(
                    reasons::REGISTRY_CREDENTIALS_UNAVAILABLE,
                    format!("{e}; the service is not pushed, what runs is unchanged"),
                );
            }
        };
        let send = |image: String, warning: Option<Event>, credentials| Pinned::Send {
            image,
            credentials,
            warning,
        };
        match pinning(env.resolve_image.unwrap_or_default(), image, live) {
            Pinning::AsWritten => return send(image.to_string(), None, credentials),
            Pinning::Keep(live) => return send(live, None, credentials),
            Pinning::Resolve => {}
        }
        let registry = registry_of(image).to_string();
        let remembered = self
            .registries
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recent(&registry, Instant::now())
            .is_some();
        if remembered {
            // Warned about when it failed; asked again once the memory expires.
            return send(image.to_string(), None, credentials);
        }
        let refused_before = credentials.as_ref().and_then(|c| {
            self.registries
                .memory
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .refusal(c, Instant::now())
                .map(str::to_string)
        });
        let answer = match refused_before {
            // The same credentials again would only be refused again (and count against
            // the account); changed ones are offered at once.
            Some(why) => Resolution::CredentialsRefused(why),
            None => self.swarm.resolve_image(image, credentials.as_ref()).await,
        };
        let mut memory = self
            .registries
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match answer {
            Resolution::Digest(digest) => {
                memory.answered(&registry);
                send(pinned(image, &digest), None, credentials)
            }
            Resolution::CredentialsRefused(why) => {
                if let Some(c) = &credentials {
                    memory.refused(c, &why, Instant::now());
                }
                let user = credentials
                    .as_ref()
                    .map(|c| c.username.as_str())
                    .unwrap_or_default();
                Pinned::Blocked(
                    reasons::REGISTRY_CREDENTIALS_REFUSED,
                    format!(
                        "registry {registry} refused the credentials of user {user:?} for image {image}: {why}; the service is not pushed, what runs is unchanged"
                    ),
                )
            }
            Resolution::Unresolved(why) => {
                let mut message = format!(
                    "image {image} could not be resolved on registry {registry}: {why}; deployed unpinned, each node pulls the tag itself"
                );
                if is_unreachable(&why) {
                    memory.failed(&registry, &why, Instant::now());
                    message.push_str(&format!(
                        " (registry {registry} is not asked again for {} minutes)",
                        REMEMBER_FAILURE.as_secs() / 60
                    ));
                }
                let warning = Event::new(
                    Kind::Service,
                    service,
                    EventType::Warning,
                    events::IMAGE_UNRESOLVED,
                    message,
                );
                send(image.to_string(), Some(warning), credentials)
            }
        }
    }

    /// Records one decided event.
    pub(super) async fn record(&self, e: &Event) {
        self.events
            .record(e.kind, &e.name, e.type_, e.reason, &e.message, self.fence)
            .await;
    }

    /// Writes what a Stack's final decision says: its events, the statuses of its stored
    /// Services, the Ready set when Ready, the rollback when asked, the Stack's status.
    /// Returns the number of etcd writes.
    pub(super) async fn write_stack(
        &self,
        snapshot: &Snapshot,
        stack: &str,
        decision: Decision,
    ) -> Result<u64, ControllerError> {
        let mut etcd_writes = 0;
        for e in &decision.events {
            self.record(e).await;
        }
        for s in decision.services {
            if let Some(svc) = snapshot.services.get(&s.name) {
                etcd_writes += self
                    .put_status(
                        Kind::Service,
                        &s.name,
                        svc.metadata.generation,
                        &svc.status,
                        s.status,
                    )
                    .await?;
            }
        }
        let (Some(stack_obj), Some(mut status)) =
            (snapshot.stacks.get(stack), decision.stack.status)
        else {
            return Ok(etcd_writes);
        };
        // History is numbered by the Stack's rollout revision (what `rollout history`
        // lists and `--to-revision` takes).
        let revision = i64::try_from(status.rollout_revision).unwrap_or(i64::MAX);
        if let Some(specs) = decision.stack.record_ready
            && let Some(rev) = self
                .store
                .record_ready(stack, specs, revision, self.fence)
                .await?
        {
            status.last_ready_revision = Some(rev);
            etcd_writes += 1;
        }
        if decision.stack.roll_back {
            etcd_writes += self.auto_rollback(stack).await?;
        }
        etcd_writes += self
            .put_status(
                Kind::Stack,
                stack,
                stack_obj.metadata.generation,
                &stack_obj.status,
                status,
            )
            .await?;
        Ok(etcd_writes)
    }

    /// `rollback: auto`: writes the last Ready set of specs back as the Services' specs
    /// (the rollback `kargo rollout undo` uses; a Service deleted since stays deleted).
    async fn auto_rollback(&self, stack: &str) -> Result<u64, ControllerError> {
        let records = self.store.history(stack).await?;
        let Some(last) = records.last() else {
            return Ok(0);
        };
        let steps = roll_back(
            self.store,
            last,
            None,
            RollbackBy::Controller,
            false,
            self.fence,
        )
        .await?;
        let mut writes = 0;
        let mut left_deleted = Vec::new();
        for (name, step) in steps {
            match step? {
                RollbackStep::Restored { .. } | RollbackStep::Recreated { .. } => writes += 1,
                RollbackStep::LeftDeleted => left_deleted.push(name),
                RollbackStep::Unchanged => {}
            }
        }
        if writes > 0 {
            let mut message = format!(
                "update failed; rolled back to the specs Ready at revision {}",
                last.revision
            );
            if !left_deleted.is_empty() {
                message.push_str(&format!(
                    " ({} deleted since: left deleted)",
                    left_deleted.join(", ")
                ));
            }
            self.record(&Event::new(
                Kind::Stack,
                stack,
                EventType::Warning,
                reasons::ROLLED_BACK,
                message,
            ))
            .await;
        }
        Ok(writes)
    }

    /// Same-named services kargo does not own, for the desired services of a Stack that
    /// may deploy and have no live service (adoption, or `NotAdopted`).
    pub(super) async fn observe_foreign(
        &self,
        desired: &Desired<'_>,
        observed: &mut Observed,
    ) -> Result<(), ControllerError> {
        if !desired.waiting.is_empty() {
            return Ok(());
        }
        let mut foreign = BTreeMap::new();
        for d in desired
            .stack
            .services
            .iter()
            .filter_map(|p| p.desired.as_ref().ok())
        {
            if observed.live.contains_key(&d.name) {
                continue;
            }
            if let Some(f) = self.swarm.inspect_service(&d.name).await? {
                foreign.insert(d.name.clone(), f);
            }
        }
        observed.foreign = foreign;
        Ok(())
    }
}

/// Where a Swarm spec names its image.
const IMAGE_POINTER: &str = "/TaskTemplate/ContainerSpec/Image";

/// What a push sends for its image, or why it is not made.
enum Pinned {
    /// Push with this image reference and registry auth; record the warning, if any.
    Send {
        image: String,
        credentials: Option<Credentials>,
        warning: Option<Event>,
    },
    /// Do not push: (reason, message naming the registry).
    Blocked(&'static str, String),
}

/// The image reference of a write's spec.
fn image_of(operation: &Operation) -> Option<String> {
    spec_of(operation)
        .pointer(IMAGE_POINTER)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Replaces the image reference of a write's spec (only what is sent: the spec-hash
/// label and every comparison keep the unpinned one).
fn set_image(operation: &mut Operation, image: String) {
    let spec = match operation {
        Operation::Create { spec, .. }
        | Operation::Update { spec, .. }
        | Operation::Adopt { spec, .. } => spec,
    };
    if let Some(slot) = spec.pointer_mut(IMAGE_POINTER) {
        *slot = Value::String(image);
    }
}

/// The spec a write sends.
fn spec_of(operation: &Operation) -> &Value {
    match operation {
        Operation::Create { spec, .. }
        | Operation::Update { spec, .. }
        | Operation::Adopt { spec, .. } => spec,
    }
}

/// The Environment in force for a Stack's reconcile, with the sealed variables its
/// registries take their passwords from opened with the controller's keys (in memory
/// only; one that cannot be opened stays sealed and its registry says so).
fn environment_in_force(
    desired: &Desired<'_>,
    keys: Option<&crate::secrets::Keyring>,
) -> Option<EnvironmentSpec> {
    let name = desired.plan.environment.as_ref()?;
    let mut env = desired.snapshot.environments.get(name)?.spec.clone();
    let Some(keys) = keys else {
        return Some(env);
    };
    for registry in &env.registries {
        let Some(var) = &registry.password_from.variable else {
            continue;
        };
        if let Some(SensitiveValue::Sealed(sealed)) = env.sensitive_variables.get(var)
            && let Ok(text) = keys.open_text(&format!("variable {var}"), &sealed.sealed)
        {
            env.sensitive_variables
                .insert(var.clone(), SensitiveValue::Plain(text));
        }
    }
    Some(env)
}
