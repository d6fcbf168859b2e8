//! kargo's finalizer on Stacks and Services: added while they live, released once their
//! Swarm objects are gone, so a deleted object disappears only after its services.

use tracing::info;

use crate::api::{Kind, SWARM_FINALIZER};
use crate::store::StoreError;
use crate::swarm::LiveService;
use crate::swarm::names::OWNER_LABEL;

use super::ControllerError;
use super::reconcile::Reconciler;
use crate::plan::Snapshot;

impl Reconciler<'_> {
    /// Adds kargo's finalizer to a live Stack or Service that lacks it.
    pub(super) async fn ensure_finalizer(
        &self,
        snapshot: &Snapshot,
        kind: Kind,
        name: &str,
    ) -> Result<u64, ControllerError> {
        let meta = match kind {
            Kind::Stack => snapshot.stacks.get(name).map(|s| &s.metadata),
            Kind::Service => snapshot.services.get(name).map(|s| &s.metadata),
            _ => None,
        };
        let missing = meta.is_some_and(|m| {
            m.deletion_timestamp.is_none() && !m.finalizers.iter().any(|f| f == SWARM_FINALIZER)
        });
        if !missing {
            return Ok(0);
        }
        let w = self
            .store
            .modify(kind, name, self.fence, |o| {
                if o.metadata.deletion_timestamp.is_none()
                    && !o.metadata.finalizers.iter().any(|f| f == SWARM_FINALIZER)
                {
                    o.metadata.finalizers.push(SWARM_FINALIZER.to_string());
                }
            })
            .await;
        match w {
            Ok(w) => Ok(u64::from(w.changed)),
            Err(StoreError::NotFound { .. }) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops the finalizer of deleted Stacks and Services whose Swarm services are gone.
    pub(super) async fn release_finalizers(
        &self,
        snapshot: &Snapshot,
        live: &[LiveService],
    ) -> Result<u64, ControllerError> {
        let owners: Vec<(&str, &str)> = live
            .iter()
            .filter_map(|s| s.labels.get(OWNER_LABEL))
            .filter_map(|o| o.split_once('/'))
            .collect();
        let finalizing = |m: &crate::api::ObjectMeta| {
            m.deletion_timestamp.is_some() && m.finalizers.iter().any(|f| f == SWARM_FINALIZER)
        };
        let mut release = Vec::new();
        for (name, s) in &snapshot.stacks {
            if finalizing(&s.metadata) && !owners.iter().any(|(st, _)| st == name) {
                release.push((Kind::Stack, name.clone()));
            }
        }
        for (name, s) in &snapshot.services {
            if finalizing(&s.metadata) && !owners.iter().any(|(_, sv)| sv == name) {
                release.push((Kind::Service, name.clone()));
            }
        }
        let mut writes = 0;
        for (kind, name) in release {
            info!(%kind, %name, "Swarm objects removed; releasing finalizer");
            match self
                .store
                .modify(kind, &name, self.fence, |o| {
                    o.metadata.finalizers.retain(|f| f != SWARM_FINALIZER)
                })
                .await
            {
                Ok(w) => writes += u64::from(w.changed),
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(writes)
    }
}
