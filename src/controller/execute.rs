//! Doing what [`super::decide`] decided for one Stack: the Docker writes, then the events,
//! the statuses, the Ready set and `rollback: auto`. The only place a Stack's reconcile
//! writes; it decides nothing itself.

use std::collections::BTreeMap;

use crate::api::Kind;
use crate::api::conditions::reasons;
use crate::plan::Snapshot;
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
        loop {
            let decision = decide(desired, &observed);
            if !decision.pushes.is_empty() {
                for push in &decision.pushes {
                    self.push(push, &mut observed).await?;
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

    /// Makes one Docker write, records its event, and observes the service as it is now.
    async fn push(&self, push: &Push, observed: &mut Observed) -> Result<(), ControllerError> {
        let id = match &push.operation {
            Operation::Create { name, spec } => self.swarm.create_service(name, spec).await?,
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
                self.swarm.update_service(id, name, *version, spec).await?;
                id.clone()
            }
        };
        self.record(&push.event).await;
        let name = push.operation.name().to_string();
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
