//! Going back to a recorded set of Service specs: the one rollback that `rollback: auto`
//! (the controller) and `kargo rollout undo` (a person) share.
//!
//! The rule they differ on: a Service deleted since the set was recorded is left deleted by
//! the controller (deletion is intent), while a person's undo recreates it and says so.

use serde_json::{Value, json};

use super::{Fence, HistoryRecord, Store, StoreError};
use crate::api::{DynamicObject, Kind};

/// Who asks for the rollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackBy {
    /// The controller, after a failed update of a Stack with `rollback: auto`.
    Controller,
    /// A person (`kargo rollout undo`): may recreate what was deleted since.
    Person,
}

/// What the rollback does (or, in a dry run, would do) to one Service.
#[derive(Clone, Debug, PartialEq)]
pub enum RollbackStep {
    /// The stored spec already is the recorded one.
    Unchanged,
    /// The stored spec goes back to the recorded one.
    Restored {
        /// The spec as stored before.
        from: Value,
        /// The recorded spec written back.
        to: Value,
    },
    /// The Service was deleted since; a manual undo creates it again with the recorded spec.
    Recreated {
        /// The recorded spec.
        to: Value,
    },
    /// The Service was deleted (or is being deleted) since: an automatic rollback leaves it so.
    LeftDeleted,
}

/// A recorded spec compared with a stored one: `null` (catalog only) matches no object
/// or an empty overlay.
pub fn same_spec(recorded: &Value, stored: &Value) -> bool {
    recorded == stored || (recorded.is_null() && stored.as_object().is_some_and(|m| m.is_empty()))
}

/// Writes `record` back as the specs of its Services (or of `only`), unless `dry_run`.
/// Returns each Service's step, or why it failed; an unreachable store fails the whole call.
pub async fn roll_back(
    store: &Store,
    record: &HistoryRecord,
    only: Option<&str>,
    by: RollbackBy,
    dry_run: bool,
    fence: Option<&Fence>,
) -> Result<Vec<(String, Result<RollbackStep, StoreError>)>, StoreError> {
    let mut out = Vec::new();
    for (name, recorded) in &record.services {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let target = if recorded.is_null() {
            json!({})
        } else {
            recorded.clone()
        };
        let current = store.get(Kind::Service, name).await?;
        let step = match current {
            Some(o) if o.metadata.deletion_timestamp.is_none() => {
                if same_spec(recorded, &o.spec) {
                    Ok(RollbackStep::Unchanged)
                } else if dry_run {
                    Ok(RollbackStep::Restored {
                        from: o.spec.clone(),
                        to: target,
                    })
                } else {
                    let to = target.clone();
                    match store
                        .modify(Kind::Service, name, fence, |obj| obj.spec = to.clone())
                        .await
                    {
                        Ok(_) => Ok(RollbackStep::Restored {
                            from: o.spec.clone(),
                            to: target,
                        }),
                        Err(e @ StoreError::Kv(_)) => return Err(e),
                        Err(e) => Err(e),
                    }
                }
            }
            _ if by == RollbackBy::Controller => Ok(RollbackStep::LeftDeleted),
            Some(_) => Err(StoreError::BeingDeleted {
                kind: Kind::Service,
                name: name.clone(),
            }),
            None if dry_run => Ok(RollbackStep::Recreated { to: target }),
            None => {
                let obj = DynamicObject::new(Kind::Service, name, target.clone());
                match store.create(&obj, fence).await {
                    Ok(_) => Ok(RollbackStep::Recreated { to: target }),
                    Err(e @ StoreError::Kv(_)) => return Err(e),
                    Err(e) => Err(e),
                }
            }
        };
        out.push((name.clone(), step));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn record() -> HistoryRecord {
        HistoryRecord {
            stack: "apps".into(),
            revision: 7,
            time: String::new(),
            services: BTreeMap::from([
                ("web".to_string(), json!({"image": "web:1.0"})),
                ("gone".to_string(), json!({"image": "gone:1.0"})),
            ]),
        }
    }

    async fn store_with_web(image: &str) -> Store {
        let store = Store::in_memory();
        let obj = DynamicObject::new(Kind::Service, "web", json!({"image": image}));
        store.create(&obj, None).await.expect("create");
        store
    }

    #[tokio::test]
    async fn the_controller_restores_specs_but_leaves_deleted_services_deleted() {
        let store = store_with_web("web:2.0").await;
        let steps = roll_back(&store, &record(), None, RollbackBy::Controller, false, None)
            .await
            .expect("rollback");
        let steps: BTreeMap<String, RollbackStep> = steps
            .into_iter()
            .map(|(n, s)| (n, s.expect("step")))
            .collect();
        assert_eq!(steps["gone"], RollbackStep::LeftDeleted);
        assert!(matches!(steps["web"], RollbackStep::Restored { .. }));
        assert!(
            store
                .get(Kind::Service, "gone")
                .await
                .expect("get")
                .is_none()
        );
        let web = store
            .get(Kind::Service, "web")
            .await
            .expect("get")
            .expect("web");
        assert_eq!(web.spec, json!({"image": "web:1.0"}));
    }

    #[tokio::test]
    async fn a_person_recreates_what_was_deleted_and_a_dry_run_writes_nothing() {
        let store = store_with_web("web:2.0").await;
        let dry = roll_back(&store, &record(), None, RollbackBy::Person, true, None)
            .await
            .expect("dry run");
        assert!(dry.iter().all(|(_, s)| s.is_ok()));
        assert!(
            store
                .get(Kind::Service, "gone")
                .await
                .expect("get")
                .is_none()
        );
        let web = store
            .get(Kind::Service, "web")
            .await
            .expect("get")
            .expect("web");
        assert_eq!(web.spec, json!({"image": "web:2.0"}), "a dry run wrote");

        let steps = roll_back(&store, &record(), None, RollbackBy::Person, false, None)
            .await
            .expect("undo");
        let gone = steps.iter().find(|(n, _)| n == "gone").expect("gone");
        assert!(matches!(gone.1, Ok(RollbackStep::Recreated { .. })));
        assert!(
            store
                .get(Kind::Service, "gone")
                .await
                .expect("get")
                .is_some()
        );
        // Undoing again changes nothing.
        let again = roll_back(&store, &record(), None, RollbackBy::Person, false, None)
            .await
            .expect("undo");
        assert!(
            again
                .iter()
                .all(|(_, s)| matches!(s, Ok(RollbackStep::Unchanged)))
        );
    }
}
