//! Events in etcd (docs/design.md, "Storage in etcd"): `<prefix>/events/<kind>/<name>/<time>` on a one-hour
//! lease, so `kargo describe` shows what the controller did and what failed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};
use tracing::{info, warn};

use crate::api::Kind;
use crate::store::{Event, Fence, Store};

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

/// How many distinct "once" events are remembered before the memory is cleared (a
/// cleared memory only means a condition still true is reported once more).
const ONCE_MEMORY: usize = 4096;

/// Writes events; a failure to record one is logged, never fatal.
#[derive(Clone)]
pub struct EventRecorder {
    store: Store,
    said: Arc<Mutex<HashSet<String>>>,
}

impl EventRecorder {
    /// A recorder writing under the store's prefix.
    pub fn new(store: Store) -> Self {
        EventRecorder {
            store,
            said: Arc::default(),
        }
    }

    /// Records an event unless this process already recorded the same one (same object,
    /// reason and message): for conditions every reconcile sees again, such as an
    /// unusable object, so a steady state costs no etcd write.
    pub async fn record_once(
        &self,
        kind: Kind,
        name: &str,
        type_: EventType,
        reason: &str,
        message: &str,
        fence: Option<&Fence>,
    ) {
        let id = format!("{kind}/{name}/{reason}/{message}");
        {
            let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
            if said.contains(&id) {
                return;
            }
            if said.len() >= ONCE_MEMORY {
                said.clear();
            }
            said.insert(id);
        }
        self.record(kind, name, type_, reason, message, fence).await;
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
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let type_word = match type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        match type_ {
            EventType::Normal => info!(%kind, %name, %reason, "{message}"),
            EventType::Warning => warn!(%kind, %name, %reason, "{message}"),
        }
        let event = Event {
            type_: type_word.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            time,
            count: 1,
        };
        if let Err(e) = self
            .store
            .put_event(kind, name, &event, EVENT_TTL_SECONDS, fence)
            .await
        {
            warn!(error = %e, "could not record an event");
        }
    }
}
