//! When Docker cannot act for the whole Swarm (no manager endpoint sees a leader), the
//! objects a reconcile was working on say so instead of keeping a stale Ready; nothing
//! is changed in Swarm until a leader is back, and the failed key is retried with
//! backoff, so work resumes by itself.

use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{ConfigurationStatus, Kind, StackStatus};

use super::reconcile::{INSTALLATION_KEY, Reconciler};
use super::status::{HasCommon, set_ready};

/// The Ready reason while the Swarm has no leader.
pub const NO_LEADER_REASON: &str = "SwarmNoLeader";

impl Reconciler<'_> {
    /// After a reconcile of `key` failed because the Swarm has no leader: its Stack (or,
    /// for the installation key, the Configuration in force) becomes `Ready=False` with
    /// reason [`NO_LEADER_REASON`]. A failed status write is only logged (etcd may be
    /// down too; the retry comes back here).
    pub(super) async fn mark_no_leader(&self, key: &str, message: &str) {
        let text = format!(
            "the Swarm has no leader (too few managers are up); nothing is changed until it has one again: {message}"
        );
        let written = if let Some(name) = key.strip_prefix("stack/") {
            self.mark_not_ready::<StackStatus>(Kind::Stack, name, &text)
                .await
        } else if key == INSTALLATION_KEY {
            self.mark_not_ready::<ConfigurationStatus>(
                Kind::Configuration,
                self.configuration,
                &text,
            )
            .await
        } else {
            Ok(())
        };
        if let Err(e) = written {
            tracing::warn!(%key, error = %e, "could not record the lost Swarm leader in the status");
        }
    }

    async fn mark_not_ready<S>(
        &self,
        kind: Kind,
        name: &str,
        text: &str,
    ) -> Result<(), crate::store::StoreError>
    where
        S: HasCommon + Serialize + DeserializeOwned + Default,
    {
        let now = Utc::now();
        let result = self
            .store
            .modify(kind, name, self.fence, |o| {
                let mut status: S = o
                    .status
                    .clone()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default();
                set_ready(
                    status.common_mut(),
                    false,
                    NO_LEADER_REASON,
                    text.to_string(),
                    now,
                );
                if let Ok(v) = serde_json::to_value(&status) {
                    o.status = Some(v);
                }
            })
            .await;
        match result {
            Ok(_) | Err(crate::store::StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
