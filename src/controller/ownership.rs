//! Installations stay apart: a Swarm object labelled by another installation (another
//! etcd prefix) is never adopted, updated or removed. Updates and removals only ever see
//! the installation's own objects (every list filters on its label); this is the check
//! for the one path that looks a service up by name, adoption.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::api::conditions::{reasons, types};
use crate::api::{Kind, ServiceStatus};
use crate::swarm::DesiredService;
use crate::swarm::names::INSTALLATION_LABEL;

use super::decide::{Conditions, Event, set_conditions};
use super::events::EventType;

/// The other installation named by an object's labels, if one other than `installation` is.
pub(super) fn other_installation<'a>(
    labels: &'a BTreeMap<String, String>,
    installation: &str,
) -> Option<&'a str> {
    labels
        .get(INSTALLATION_LABEL)
        .map(String::as_str)
        .filter(|owner| *owner != installation)
}

/// Leaves a same-named service of installation `owner` as it is, whatever `adopt` says:
/// the status not Ready with a condition naming the owner, and a Warning event when that
/// is news.
pub(super) fn refuse_other_installation(
    desired: &DesiredService,
    mut status: ServiceStatus,
    owner: &str,
    now: DateTime<Utc>,
) -> (ServiceStatus, Vec<Event>) {
    let reason = reasons::OWNED_BY_ANOTHER_INSTALLATION;
    let msg = format!(
        "Swarm service {} belongs to the kargo installation {owner:?}; it is never adopted, updated or removed from here (rename the Stack or Service, or remove it from that installation)",
        desired.name
    );
    let said = status
        .common
        .condition(types::READY)
        .map(|c| c.reason.as_str());
    let mut events = Vec::new();
    if said != Some(reason) {
        events.push(Event::new(
            Kind::Service,
            &desired.service,
            EventType::Warning,
            reason,
            msg.clone(),
        ));
    }
    set_conditions(&mut status.common, Conditions::failing(reason, msg), now);
    (status, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_another_installations_label_is_foreign() {
        let labels = |v: &str| BTreeMap::from([(INSTALLATION_LABEL.to_string(), v.to_string())]);
        assert_eq!(
            other_installation(&labels("/other"), "/kargo"),
            Some("/other")
        );
        assert_eq!(other_installation(&labels("/kargo"), "/kargo"), None);
        // Left by Kargo or `docker stack deploy`: no installation label, adoption may take it.
        assert_eq!(other_installation(&BTreeMap::new(), "/kargo"), None);
    }
}
