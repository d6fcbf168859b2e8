//! Status of what no stack reconcile covers (undeployed Services and Stacks,
//! Environments, Configurations), and the one place statuses are written.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::api::conditions::{reasons, types};
use crate::api::{
    CommonStatus, ConditionStatus, ConfigurationStatus, EnvironmentStatus, Kind, ServiceStatus,
    StackStatus,
};
use crate::store::StoreError;

use super::ControllerError;
use super::reconcile::Reconciler;
use crate::plan::{Plan, Snapshot};

/// Status writes of one installation-wide pass in flight at once.
const STATUS_WRITES_AT_ONCE: usize = 16;

/// One status to write: (name, generation, stored status, decided status).
pub(super) type StatusWrite<'s, T> = (&'s str, Option<i64>, &'s T, T);

/// The statuses of what no stack reconcile covers, decided.
#[derive(Default)]
pub(super) struct InstallationStatuses<'s> {
    pub(super) services: Vec<StatusWrite<'s, ServiceStatus>>,
    pub(super) stacks: Vec<StatusWrite<'s, StackStatus>>,
    pub(super) environments: Vec<StatusWrite<'s, EnvironmentStatus>>,
    pub(super) configurations: Vec<StatusWrite<'s, ConfigurationStatus>>,
}

impl Reconciler<'_> {
    /// Status of what no stack reconcile covers: undeployed Services and Stacks, the
    /// Environments and the Configurations.
    pub(super) async fn write_installation_statuses(
        &self,
        snapshot: &Snapshot,
        plan: &Plan,
        is_ready: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<u64, ControllerError> {
        let InstallationStatuses {
            services,
            stacks,
            environments,
            configurations,
        } = installation_statuses(snapshot, plan, is_ready, Utc::now());
        // Stacks first: they are what a person and `kargo wait` look at; the writes go
        // out a few at a time (thousands of them at a first start).
        let mut writes = self.put_statuses(Kind::Stack, stacks).await?;
        writes += self
            .put_statuses(Kind::Configuration, configurations)
            .await?;
        writes += self.put_statuses(Kind::Environment, environments).await?;
        writes += self.put_statuses(Kind::Service, services).await?;
        Ok(writes)
    }
}

/// Decides the statuses of undeployed Services and Stacks (`Suspended`, `NotDeployed`, or
/// the doubt that keeps them running), the Environments and the Configurations. Pure,
/// like [`super::decide`].
pub(super) fn installation_statuses<'s>(
    snapshot: &'s Snapshot,
    plan: &Plan,
    is_ready: &(dyn Fn(&str) -> bool + Sync),
    now: DateTime<Utc>,
) -> InstallationStatuses<'s> {
    let mut services = Vec::new();
    let mut stacks = Vec::new();
    let mut environments = Vec::new();
    let mut configurations = Vec::new();
    for (name, svc) in &snapshot.services {
        if svc.metadata.deletion_timestamp.is_some() || plan.stack_of(name).is_some() {
            continue;
        }
        let mut status = ServiceStatus {
            common: svc.status.common.clone(),
            rollout_revision: svc.status.rollout_revision,
            ..ServiceStatus::default()
        };
        let (reason, message) = match &plan.doubt {
            Some(d) => (
                d.reason,
                format!("{}; its Swarm service, if any, keeps running", d.message),
            ),
            None => (
                reasons::NOT_DEPLOYED,
                "no deployed Stack lists this Service".to_string(),
            ),
        };
        set_ready(&mut status.common, false, reason, message, now);
        status.common.conditions.retain(|c| c.type_ == types::READY);
        services.push((name.as_str(), svc.metadata.generation, &svc.status, status));
    }
    for (name, st) in &snapshot.stacks {
        if st.metadata.deletion_timestamp.is_some() || plan.stacks.iter().any(|p| &p.name == name) {
            continue;
        }
        let mut status = StackStatus {
            common: st.status.common.clone(),
            last_ready_revision: st.status.last_ready_revision,
            rollout_revision: st.status.rollout_revision,
            services_total: st.spec.services.len() as u64,
            ..StackStatus::default()
        };
        let (reason, msg) = if st.spec.suspend {
            (
                reasons::SUSPENDED,
                "suspended: its Swarm objects are removed".to_string(),
            )
        } else if let Some(d) = &plan.doubt {
            (
                d.reason,
                format!(
                    "{}; its Swarm services keep running as they are (nothing is removed while in doubt)",
                    d.message
                ),
            )
        } else {
            (
                reasons::NOT_DEPLOYED,
                "the Environment in force does not list this Stack".to_string(),
            )
        };
        set_ready(&mut status.common, false, reason, msg, now);
        status.common.conditions.retain(|c| c.type_ == types::READY);
        stacks.push((name.as_str(), st.metadata.generation, &st.status, status));
    }
    for (name, env) in &snapshot.environments {
        let mut status = EnvironmentStatus {
            common: env.status.common.clone(),
            ..EnvironmentStatus::default()
        };
        match crate::manifest::resolve_environment(&env.spec.variables) {
            Ok(n) => {
                status.variables_resolved = n;
                set_ready(
                    &mut status.common,
                    true,
                    reasons::RESOLVED,
                    "every variable resolves".into(),
                    now,
                );
            }
            Err(unresolved) => {
                status.variables_resolved = (env.spec.variables.len()
                    - unresolved.len().min(env.spec.variables.len()))
                    as u64;
                set_ready(
                    &mut status.common,
                    false,
                    reasons::UNRESOLVED_VARIABLES,
                    unresolved.join("; "),
                    now,
                );
                status.unresolved = unresolved;
            }
        }
        environments.push((name.as_str(), env.metadata.generation, &env.status, status));
    }
    for (name, cfg) in &snapshot.configurations {
        let mut status = ConfigurationStatus {
            common: cfg.status.common.clone(),
            digest: cfg.status.digest.clone(),
            ..ConfigurationStatus::default()
        };
        if plan.configuration.as_deref() == Some(name.as_str()) {
            status.sealed_files = sealed_files(plan);
            status.stacks = plan.stacks.iter().map(|s| s.name.clone()).collect();
            status.services = plan
                .stacks
                .iter()
                .flat_map(|s| {
                    s.services
                        .iter()
                        .map(move |p| format!("{}/{}", s.name, p.name))
                })
                .collect();
            let digest_input: Vec<(&str, &str)> = plan
                .stacks
                .iter()
                .flat_map(|s| {
                    s.services
                        .iter()
                        .filter_map(|p| p.desired.as_ref().ok())
                        .map(|d| (d.name.as_str(), d.hash.as_str()))
                })
                .collect();
            status.digest = Some(crate::swarm::hash_json(&serde_json::json!(digest_input)));
            let not_ready: Vec<&str> = plan
                .stacks
                .iter()
                .map(|s| s.name.as_str())
                .filter(|s| !is_ready(s))
                .collect();
            let (ok, reason, msg) = if let Some(d) = &plan.doubt {
                (
                    false,
                    d.reason,
                    format!(
                        "{}; nothing is removed from Swarm until this is mended",
                        plan.errors.join("; ")
                    ),
                )
            } else if !plan.errors.is_empty() {
                (
                    false,
                    reasons::INVALID_CONFIGURATION,
                    plan.errors.join("; "),
                )
            } else if not_ready.is_empty() {
                (
                    true,
                    reasons::CONVERGED,
                    format!("{} stacks Ready", plan.stacks.len()),
                )
            } else {
                (
                    false,
                    reasons::PROGRESSING,
                    format!("stacks not Ready: {}", not_ready.join(", ")),
                )
            };
            set_ready(&mut status.common, ok, reason, msg, now);
        } else {
            set_ready(
                &mut status.common,
                false,
                reasons::NOT_IN_FORCE,
                "another Configuration is in force".into(),
                now,
            );
        }
        configurations.push((name.as_str(), cfg.metadata.generation, &cfg.status, status));
    }
    InstallationStatuses {
        services,
        stacks,
        environments,
        configurations,
    }
}

impl Reconciler<'_> {
    /// [`Self::put_status`] for many objects of one kind, a bounded number at once.
    async fn put_statuses<T: Serialize + PartialEq + HasCommon + Send + Sync>(
        &self,
        kind: Kind,
        items: Vec<(&str, Option<i64>, &T, T)>,
    ) -> Result<u64, ControllerError> {
        use futures::{StreamExt, TryStreamExt};
        type Write<'f> = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<u64, ControllerError>> + Send + 'f>,
        >;
        let mut writes: Vec<Write<'_>> = Vec::with_capacity(items.len());
        for (name, generation, stored, next) in items {
            writes.push(Box::pin(
                self.put_status(kind, name, generation, stored, next),
            ));
        }
        futures::stream::iter(writes)
            .buffer_unordered(STATUS_WRITES_AT_ONCE)
            .try_fold(0, |total, n| async move { Ok(total + n) })
            .await
    }

    /// Writes a status when it differs from the stored one; returns the number of writes.
    pub(super) async fn put_status<T: Serialize + PartialEq + HasCommon>(
        &self,
        kind: Kind,
        name: &str,
        generation: Option<i64>,
        stored: &T,
        mut next: T,
    ) -> Result<u64, ControllerError> {
        next.common_mut().observed_generation = generation;
        if &next == stored {
            return Ok(0);
        }
        let value =
            serde_json::to_value(&next).map_err(|e| ControllerError::Internal(e.to_string()))?;
        match self
            .store
            .update_status(kind, name, &value, self.fence)
            .await
        {
            Ok(w) => Ok(u64::from(w.changed)),
            Err(StoreError::NotFound { .. }) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

/// The Swarm secret of each sealed file the plan opened (names only: HMACs).
fn sealed_files(plan: &Plan) -> BTreeMap<String, crate::api::SealedFileRecord> {
    plan.files
        .iter()
        .filter(|(_, f)| !f.unopened)
        .filter_map(|(name, f)| {
            Some((
                name.clone(),
                crate::api::SealedFileRecord {
                    sealed_digest: f.sealed_digest.clone()?,
                    swarm_name: f.swarm_name.clone(),
                },
            ))
        })
        .collect()
}

pub(super) fn set_ready(
    common: &mut CommonStatus,
    ready: bool,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) {
    let s = if ready {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    common.set_condition(types::READY, s, reason, message, now);
}

/// Status types that carry the common fields.
pub trait HasCommon {
    /// The common fields.
    fn common_mut(&mut self) -> &mut CommonStatus;
}

macro_rules! has_common {
    ($($t:ty),*) => {$(
        impl HasCommon for $t {
            fn common_mut(&mut self) -> &mut CommonStatus { &mut self.common }
        }
    )*};
}
has_common!(
    ServiceStatus,
    StackStatus,
    EnvironmentStatus,
    ConfigurationStatus
);

impl Reconciler<'_> {
    /// After a reconcile of `key` panicked: the Stack says so (Degraded, not Ready), so a
    /// kargo bug is visible where the user looks, and the other Stacks go on.
    pub(super) async fn mark_panicked(&self, key: &str, message: &str) {
        let Some(name) = key.strip_prefix("stack/") else {
            return;
        };
        let now = Utc::now();
        let text = format!("the controller failed while reconciling this Stack: {message}");
        let written = self
            .store
            .modify(Kind::Stack, name, self.fence, |o| {
                let mut status: StackStatus = o
                    .status
                    .clone()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default();
                set_ready(
                    &mut status.common,
                    false,
                    reasons::RECONCILE_PANICKED,
                    text.clone(),
                    now,
                );
                status.common.set_condition(
                    types::DEGRADED,
                    ConditionStatus::True,
                    reasons::RECONCILE_PANICKED,
                    text.clone(),
                    now,
                );
                if let Ok(v) = serde_json::to_value(&status) {
                    o.status = Some(v);
                }
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(%key, error = %e, "could not record the panic in the Stack's status");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::DynamicObject;
    use crate::plan::plan;

    #[test]
    fn a_suspended_stack_says_so_and_its_services_are_not_deployed() {
        let objects = [
            DynamicObject::new(
                Kind::Configuration,
                "main",
                json!({"environment": "prod", "defaults": "none"}),
            ),
            DynamicObject::new(Kind::Environment, "prod", json!({"stacks": ["web"]})),
            DynamicObject::new(
                Kind::Stack,
                "web",
                json!({"services": ["app"], "suspend": true}),
            ),
            DynamicObject::new(Kind::Service, "app", json!({"image": "kargo-busybox:1.0"})),
        ];
        let snapshot = Snapshot::from_objects(&objects);
        let p = plan(&snapshot, "main", "/kargo", &|_| None);
        let decided = installation_statuses(&snapshot, &p, &|_| false, Utc::now());
        let (_, _, _, stack) = &decided.stacks[0];
        let ready = stack.common.condition(types::READY).expect("Ready");
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (ConditionStatus::False, reasons::SUSPENDED)
        );
        assert_eq!((stack.services_ready, stack.services_total), (0, 1));
        let (_, _, _, app) = &decided.services[0];
        let ready = app.common.condition(types::READY).expect("Ready");
        assert_eq!(ready.reason, reasons::NOT_DEPLOYED);
    }
}
