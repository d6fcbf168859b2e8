//! Facts about the installation itself, outside the registry: `<prefix>/state/…`.

use super::{Fence, Precondition, Store, StoreError, TxnResult};

impl Store {
    /// The key recording that the installation has had its Configuration in force.
    pub fn configured_key(&self) -> String {
        format!("{}/state/configured", self.prefix())
    }

    /// True once the controller has seen the Configuration in force: from then on a
    /// missing Configuration is an accident (doubt), not a first run.
    pub async fn configured_before(&self) -> Result<bool, StoreError> {
        Ok(self.kv().get(&self.configured_key()).await?.is_some())
    }

    /// Records that the Configuration `name` has been in force (idempotent, fenced).
    pub async fn mark_configured(
        &self,
        name: &str,
        fence: Option<&Fence>,
    ) -> Result<(), StoreError> {
        let value = serde_json::json!({
            "configuration": name,
            "since": chrono::Utc::now().to_rfc3339(),
        });
        let bytes = value.to_string().into_bytes();
        match self
            .kv()
            .put(&self.configured_key(), bytes, Precondition::Absent, fence)
            .await?
        {
            TxnResult::Written(_) | TxnResult::PreconditionFailed => Ok(()),
            TxnResult::Fenced => Err(StoreError::Fenced),
        }
    }
}
