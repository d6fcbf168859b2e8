//! `apply`: create an object or update it to what a manifest says, retrying conflicts.

use crate::api::DynamicObject;

use super::{Store, StoreError};

/// How many times a conflicting write is retried after re-reading.
const CONFLICT_RETRIES: usize = 5;

/// What apply did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist.
    Created,
    /// It existed and changed.
    Configured,
    /// It existed and was the same: nothing was written.
    Unchanged,
}

impl Applied {
    /// The word kubectl prints.
    pub fn word(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

impl Store {
    /// Creates the object, or sets its spec, labels and annotations to the given ones
    /// (status, finalizers and store-owned metadata stay). A conflict with a concurrent
    /// writer is retried by re-reading, at most a few times; then it is returned.
    pub async fn apply(&self, desired: &DynamicObject) -> Result<Applied, StoreError> {
        let mut attempt = 1;
        loop {
            match self.apply_once(desired).await {
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. })
                    if attempt < CONFLICT_RETRIES =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn apply_once(&self, desired: &DynamicObject) -> Result<Applied, StoreError> {
        let Some(current) = self.get(desired.kind, &desired.metadata.name).await? else {
            self.create(desired, None).await?;
            return Ok(Applied::Created);
        };
        let mut next = current;
        next.spec = desired.spec.clone();
        next.metadata.labels = desired.metadata.labels.clone();
        next.metadata.annotations = desired.metadata.annotations.clone();
        let written = self.update(&next, None).await?;
        Ok(if written.changed {
            Applied::Configured
        } else {
            Applied::Unchanged
        })
    }
}
