//! Events in etcd (DESIGN.md §4): `<prefix>/events/<kind>/<name>/<time>` on a one-hour
//! lease, so `kargo describe` shows what the controller did and what failed.

use chrono::{SecondsFormat, Utc};
use serde_json::json;
use tracing::{info, warn};

use crate::api::Kind;
use crate::store::{Fence, Precondition, Store};

/// How long events live.
pub const EVENT_TTL_SECONDS: i64 = 3600;

/// Whether an event reports routine work or a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Routine work.
    Normal,
    /// A problem.
    Warning,
}

/// Writes events; a failure to record one is logged, never fatal.
#[derive(Clone)]
pub struct EventRecorder {
    store: Store,
}

impl EventRecorder {
    /// A recorder writing under the store's prefix.
    pub fn new(store: Store) -> Self {
        EventRecorder { store }
    }

    /// Records one event about an object (fenced like every leader write).
    pub async fn record(
        &self,
        kind: Kind,
        name: &str,
        type_: EventType,
        reason: &str,
        message: &str,
        fence: Option<&Fence>,
    ) {
        let now = Utc::now();
        let time = now.to_rfc3339_opts(SecondsFormat::Nanos, true);
        let key = format!(
            "{}/events/{}/{}/{}",
            self.store.prefix(),
            kind.singular(),
            name,
            time
        );
        let type_word = match type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let value = json!({"type": type_word, "reason": reason, "message": message, "time": time, "count": 1});
        match type_ {
            EventType::Normal => info!(%kind, %name, %reason, "{message}"),
            EventType::Warning => warn!(%kind, %name, %reason, "{message}"),
        }
        let bytes = value.to_string().into_bytes();
        if let Err(e) = self
            .store
            .kv()
            .put_with_ttl(&key, bytes, EVENT_TTL_SECONDS, Precondition::Any, fence)
            .await
        {
            warn!(error = %e, "could not record an event");
        }
    }
}
