//! Going back to a recorded set of Service specs: the one rollback that `rollback: auto`
//! (the controller) and `kargo rollout undo` (a person) share.
//!
//! The rule they differ on: a Service deleted since the set was recorded is left deleted by
//! the controller (deletion is intent), while a person's undo recreates it and says so.

use serde_json::{Value, json};

use super::{Fence, HistoryRecord, Store, StoreError};
use crate::api::annotations::LAST_APPLIED_ANNOTATION;
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

/// Records in the object's last-applied annotation (when it has one) the fields a
/// rollback to `to` changes, as if `to` had been applied: the three-way merge of a later
/// `kargo apply` or `kargo diff` then sees that the file differs from what runs (without
/// this, the file's unchanged fields read as "unchanged" while the spec went back). Fields
/// the rollback leaves alone (a `kargo scale`) are left alone in the annotation too.
fn carry_into_last_applied(obj: &mut DynamicObject, to: &Value) {
    let Some(text) = obj.metadata.annotations.get(LAST_APPLIED_ANNOTATION) else {
        return;
    };
    let Ok(mut doc) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Some(map) = doc.as_object_mut() else {
        return;
    };
    let last = map.entry("spec").or_insert_with(|| json!({}));
    carry(last, &obj.spec, to);
    obj.metadata
        .annotations
        .insert(LAST_APPLIED_ANNOTATION.to_string(), doc.to_string());
}

/// Brings into `last` every change from `from` to `to`: a changed value is set, a removed
/// one removed; maps are followed key by key, anything else is replaced whole.
fn carry(last: &mut Value, from: &Value, to: &Value) {
    if from == to {
        return;
    }
    let (Value::Object(f), Value::Object(t)) = (from, to) else {
        *last = to.clone();
        return;
    };
    if !last.is_object() {
        *last = json!({});
    }
    let Some(l) = last.as_object_mut() else {
        return;
    };
    let keys: std::collections::BTreeSet<&String> = f.keys().chain(t.keys()).collect();
    for k in keys {
        match (f.get(k), t.get(k)) {
            (a, b) if a == b => {}
            (_, None) => {
                l.remove(k);
            }
            (Some(a @ Value::Object(_)), Some(b @ Value::Object(_))) => {
                carry(l.entry(k.clone()).or_insert_with(|| json!({})), a, b);
            }
            (_, Some(b)) => {
                l.insert(k.clone(), b.clone());
            }
        }
    }
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
                        .modify(Kind::Service, name, fence, |obj| {
                            carry_into_last_applied(obj, &to);
                            obj.spec = to.clone();
                        })
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
    async fn an_undo_leaves_the_file_applied_since_different_from_the_stored_spec() {
        let store = Store::in_memory();
        let applied = DynamicObject::new(
            Kind::Service,
            "web",
            json!({"image": "web:2.0", "env": {"A": "1"}}),
        );
        store.apply(&applied).await.expect("apply");
        // A `kargo scale` the file does not name survives both the undo and the re-apply.
        store
            .modify(Kind::Service, "web", None, |o| {
                o.spec["deploy"] = json!({"replicas": 3})
            })
            .await
            .expect("scale");
        let record = HistoryRecord {
            stack: "apps".into(),
            revision: 1,
            time: String::new(),
            services: BTreeMap::from([(
                "web".to_string(),
                json!({"image": "web:1.0", "deploy": {"replicas": 3}}),
            )]),
        };
        roll_back(&store, &record, None, RollbackBy::Person, false, None)
            .await
            .expect("undo");
        let prepared = store.prepare_apply(&applied).await.expect("prepare");
        let preview = prepared.preview().expect("preview");
        assert_eq!(preview.outcome, crate::store::Applied::Configured);
        assert_eq!(
            preview.object.spec,
            json!({"image": "web:2.0", "env": {"A": "1"}, "deploy": {"replicas": 3}})
        );
    }

    #[test]
    fn carrying_a_rollback_sets_changed_and_removes_dropped_fields_only() {
        let mut last = json!({"image": "a:2", "env": {"A": "1", "B": "2"}, "args": ["x"]});
        let from = json!({"image": "a:2", "env": {"A": "1", "B": "2"}, "args": ["x"], "deploy": {"replicas": 3}});
        let to =
            json!({"image": "a:1", "env": {"A": "1"}, "args": ["x"], "deploy": {"replicas": 3}});
        carry(&mut last, &from, &to);
        assert_eq!(
            last,
            json!({"image": "a:1", "env": {"A": "1"}, "args": ["x"]})
        );
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
