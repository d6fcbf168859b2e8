//! `apply`: create an object, or bring a manifest's changes to it with a three-way merge
//! through the last-applied annotation (as kubectl's client-side apply does).
//!
//! The patch is computed once, against the object as first read ([`Store::prepare_apply`]).
//! When someone writes the object in between, the patch is replayed over their version
//! ([`Store::commit_apply`]): changes to other fields are kept, a change to a field the
//! patch also writes is a [`StoreError::ApplyConflict`] — never a silently lost update.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::api::{API_VERSION, DynamicObject, Kind};

use super::patch::Patch;
use super::{Store, StoreError};
use crate::api::annotations::LAST_APPLIED_ANNOTATION;

/// Shown (and stored in the last-applied annotation) in place of a sensitive file's content.
pub const REDACTED: &str = "<redacted>";

/// How many times a write that lost a race is replayed over a fresh read.
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

/// What an apply did or, for a dry run, would do.
#[derive(Clone, Debug, PartialEq)]
pub struct ApplyResult {
    /// Created, configured or unchanged.
    pub outcome: Applied,
    /// The object as stored now (for a dry run: as it would be stored).
    pub object: DynamicObject,
    /// The object as it was read before the write; `None` when it did not exist.
    pub previous: Option<DynamicObject>,
}

/// An apply computed against one read of the object and not written yet.
///
/// Holding one costs nothing in etcd; [`Store::commit_apply`] writes it, [`Self::preview`]
/// tells what it would write against the read it was computed from.
#[derive(Clone, Debug)]
pub struct PreparedApply {
    desired: DynamicObject,
    last_applied: String,
    base: Option<DynamicObject>,
    base_view: Value,
    patch: Option<Patch>,
}

impl PreparedApply {
    /// The kind of the object.
    pub fn kind(&self) -> Kind {
        self.desired.kind
    }

    /// The name of the object.
    pub fn name(&self) -> &str {
        &self.desired.metadata.name
    }

    /// The object as read when the apply was prepared; `None` when it did not exist.
    pub fn current(&self) -> Option<&DynamicObject> {
        self.base.as_ref()
    }

    /// What committing would do if nobody wrote the object since it was read (a dry run).
    pub fn preview(&self) -> Result<ApplyResult, StoreError> {
        let Some(base) = &self.base else {
            let mut object = self.desired.clone();
            object.metadata.generation = Some(1);
            return Ok(ApplyResult {
                outcome: Applied::Created,
                object,
                previous: None,
            });
        };
        let mut next = self.rebase(base)?;
        let same = next.spec == base.spec
            && next.metadata.labels == base.metadata.labels
            && next.metadata.annotations == base.metadata.annotations;
        if next.spec != base.spec {
            next.metadata.generation = Some(base.metadata.generation.unwrap_or(0) + 1);
        }
        Ok(ApplyResult {
            outcome: if same {
                Applied::Unchanged
            } else {
                Applied::Configured
            },
            object: next,
            previous: Some(base.clone()),
        })
    }

    /// The patch replayed over `current`, or the fields someone else changed under it.
    fn rebase(&self, current: &DynamicObject) -> Result<DynamicObject, StoreError> {
        let fresh_view = view(current);
        let mut next_view = fresh_view.clone();
        if let Some(patch) = &self.patch {
            let fields = patch.conflicts(Some(&self.base_view), Some(&fresh_view), "");
            if !fields.is_empty() {
                return Err(StoreError::ApplyConflict {
                    kind: self.kind(),
                    name: self.name().to_string(),
                    fields,
                });
            }
            patch.apply(&mut next_view);
        }
        let invalid = |e: serde_json::Error| StoreError::Invalid {
            kind: self.kind(),
            name: self.name().to_string(),
            message: format!("merged metadata: {e}"),
        };
        let mut next = current.clone();
        next.metadata.labels =
            serde_json::from_value(next_view["metadata"]["labels"].clone()).map_err(invalid)?;
        next.metadata.annotations =
            serde_json::from_value(next_view["metadata"]["annotations"].clone())
                .map_err(invalid)?;
        next.metadata.annotations.insert(
            LAST_APPLIED_ANNOTATION.to_string(),
            self.last_applied.clone(),
        );
        next.spec = next_view["spec"].take();
        Ok(next)
    }
}

/// The part of an object apply manages: labels, annotations (but last-applied) and spec.
fn view(obj: &DynamicObject) -> Value {
    view_of(
        &obj.metadata.labels,
        &obj.metadata.annotations,
        obj.spec.clone(),
    )
}

fn view_of(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    spec: Value,
) -> Value {
    let annotations: BTreeMap<&String, &String> = annotations
        .iter()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED_ANNOTATION)
        .collect();
    json!({"metadata": {"labels": labels, "annotations": annotations}, "spec": spec})
}

/// The view recorded in a last-applied annotation; `None` when absent or unreadable.
fn last_applied_view(obj: &DynamicObject) -> Option<Value> {
    let text = obj.metadata.annotations.get(LAST_APPLIED_ANNOTATION)?;
    let doc: Value = serde_json::from_str(text).ok()?;
    let meta = doc.get("metadata");
    let map = |field: &str| -> BTreeMap<String, String> {
        meta.and_then(|m| m.get(field))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    Some(view_of(
        &map("labels"),
        &map("annotations"),
        doc.get("spec").cloned().unwrap_or_else(|| json!({})),
    ))
}

/// A spec with sensitive plaintext replaced by [`REDACTED`]: a sensitive file's `content`
/// and an Environment's plaintext `sensitiveVariables`. Sealed values are shown as they are
/// (only the controller's key opens them).
pub fn redact_spec(kind: Kind, spec: &Value) -> Value {
    let mut spec = spec.clone();
    if kind == Kind::Configuration
        && let Some(files) = spec.get_mut("files").and_then(Value::as_object_mut)
    {
        for file in files.values_mut() {
            if file.get("sensitive").and_then(Value::as_bool) == Some(true)
                && let Some(c) = file.get_mut("content")
            {
                *c = json!(REDACTED);
            }
        }
    }
    if kind == Kind::Environment
        && let Some(vars) = spec
            .get_mut("sensitiveVariables")
            .and_then(Value::as_object_mut)
    {
        for v in vars.values_mut() {
            if v.is_string() {
                *v = json!(REDACTED);
            }
        }
    }
    spec
}

/// The sensitive files whose content is the literal [`REDACTED`] (a `get` output applied back).
fn redacted_files(kind: Kind, spec: &Value) -> Vec<String> {
    if kind != Kind::Configuration {
        return Vec::new();
    }
    spec.get("files")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, f)| f.get("content").and_then(Value::as_str) == Some(REDACTED))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The last-applied annotation of a manifest: compact JSON, sensitive contents redacted.
fn last_applied_text(desired: &DynamicObject) -> String {
    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), json!(desired.metadata.name));
    if !desired.metadata.labels.is_empty() {
        metadata.insert("labels".into(), json!(desired.metadata.labels));
    }
    let annotations: BTreeMap<&String, &String> = desired
        .metadata
        .annotations
        .iter()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED_ANNOTATION)
        .collect();
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), json!(annotations));
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": desired.kind,
        "metadata": metadata,
        "spec": redact_spec(desired.kind, &desired.spec),
    })
    .to_string()
}

impl Store {
    /// Creates the object, or brings the manifest's changes to it (see the module docs);
    /// status, finalizers and store-owned metadata stay as stored.
    ///
    /// Errors: [`StoreError::ApplyConflict`] when someone else changed a field this apply
    /// writes while it ran; [`StoreError::Conflict`] when races went on past the retries.
    pub async fn apply(&self, desired: &DynamicObject) -> Result<Applied, StoreError> {
        Ok(self.apply_object(desired).await?.outcome)
    }

    /// [`Store::apply`], returning the object as stored.
    pub async fn apply_object(&self, desired: &DynamicObject) -> Result<ApplyResult, StoreError> {
        let prepared = self.prepare_apply(desired).await?;
        self.commit_apply(&prepared).await
    }

    /// Reads the object and computes the apply against it, writing nothing.
    ///
    /// Errors: [`StoreError::Invalid`] for a sensitive file whose content is the literal
    /// `<redacted>` (output of `get` applied back), or when etcd fails.
    pub async fn prepare_apply(
        &self,
        desired: &DynamicObject,
    ) -> Result<PreparedApply, StoreError> {
        let redacted = redacted_files(desired.kind, &desired.spec);
        if !redacted.is_empty() {
            return Err(StoreError::Invalid {
                kind: desired.kind,
                name: desired.metadata.name.clone(),
                message: format!(
                    "file(s) {} hold the literal {REDACTED:?}, which is what `get` prints for sensitive content: put the real content in the manifest",
                    redacted.join(", ")
                ),
            });
        }
        let base = self.get(desired.kind, &desired.metadata.name).await?;
        let last_applied = last_applied_text(desired);
        let mut clean = desired.clone();
        clean.metadata = crate::api::ObjectMeta {
            name: desired.metadata.name.clone(),
            labels: desired.metadata.labels.clone(),
            annotations: desired.metadata.annotations.clone(),
            ..crate::api::ObjectMeta::default()
        };
        clean.status = None;
        clean
            .metadata
            .annotations
            .insert(LAST_APPLIED_ANNOTATION.to_string(), last_applied.clone());
        let new_view = view(&clean);
        let (base_view, last) = match &base {
            Some(b) => (view(b), last_applied_view(b)),
            None => (view_of(&BTreeMap::new(), &BTreeMap::new(), json!({})), None),
        };
        let patch = Patch::three_way(last.as_ref(), &new_view, Some(&base_view));
        Ok(PreparedApply {
            desired: clean,
            last_applied,
            base,
            base_view,
            patch,
        })
    }

    /// Writes a prepared apply. When the object changed since it was read, the patch is
    /// replayed over the new version (a bounded number of times); a field changed both
    /// there and by the patch fails with [`StoreError::ApplyConflict`], writing nothing.
    pub async fn commit_apply(&self, prepared: &PreparedApply) -> Result<ApplyResult, StoreError> {
        let (kind, name) = (prepared.kind(), prepared.name().to_string());
        for attempt in 0..CONFLICT_RETRIES {
            let current = if attempt == 0 {
                prepared.base.clone()
            } else {
                self.get(kind, &name).await?
            };
            let Some(current) = current else {
                match self.create(&prepared.desired, None).await {
                    Ok(object) => {
                        return Ok(ApplyResult {
                            outcome: Applied::Created,
                            object,
                            previous: None,
                        });
                    }
                    Err(StoreError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e),
                }
            };
            if current.metadata.deletion_timestamp.is_some() {
                return Err(StoreError::BeingDeleted { kind, name });
            }
            let next = prepared.rebase(&current)?;
            match self.update(&next, None).await {
                Ok(written) => {
                    return Ok(ApplyResult {
                        outcome: if written.changed {
                            Applied::Configured
                        } else {
                            Applied::Unchanged
                        },
                        object: written.object,
                        previous: Some(current),
                    });
                }
                Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict {
            kind,
            name,
            expected: "latest".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(spec: Value) -> DynamicObject {
        DynamicObject::new(Kind::Service, "web", spec)
    }

    #[tokio::test]
    async fn reapplying_keeps_a_scale_and_removes_dropped_fields() {
        let store = Store::in_memory();
        let file = service(json!({"image": "a", "env": {"A": "1", "B": "2"}}));
        assert_eq!(store.apply(&file).await.ok(), Some(Applied::Created));
        store
            .modify(Kind::Service, "web", None, |o| {
                o.spec["deploy"] = json!({"replicas": 5})
            })
            .await
            .expect("scale");
        assert_eq!(store.apply(&file).await.ok(), Some(Applied::Unchanged));
        let dropped = service(json!({"image": "a", "env": {"A": "1"}}));
        assert_eq!(store.apply(&dropped).await.ok(), Some(Applied::Configured));
        let stored = store.get(Kind::Service, "web").await.expect("get");
        let spec = stored.map(|o| o.spec).unwrap_or_default();
        assert_eq!(
            spec,
            json!({"image": "a", "env": {"A": "1"}, "deploy": {"replicas": 5}})
        );
    }

    #[tokio::test]
    async fn interleaved_applies_of_different_fields_both_land() {
        let store = Store::in_memory();
        store
            .apply(&service(json!({"image": "a", "env": {"A": "1"}})))
            .await
            .expect("base");
        let one = store
            .prepare_apply(&service(json!({"image": "b", "env": {"A": "1"}})))
            .await
            .expect("prepare one");
        let two = store
            .prepare_apply(&service(json!({"image": "a", "env": {"A": "2"}})))
            .await
            .expect("prepare two");
        store.commit_apply(&one).await.expect("commit one");
        store.commit_apply(&two).await.expect("commit two");
        let spec = store
            .get(Kind::Service, "web")
            .await
            .expect("get")
            .map(|o| o.spec);
        assert_eq!(spec, Some(json!({"image": "b", "env": {"A": "2"}})));
    }

    #[tokio::test]
    async fn interleaved_applies_of_one_field_report_a_conflict() {
        let store = Store::in_memory();
        store
            .apply(&service(json!({"image": "a"})))
            .await
            .expect("base");
        let one = store
            .prepare_apply(&service(json!({"image": "b"})))
            .await
            .expect("prepare one");
        let two = store
            .prepare_apply(&service(json!({"image": "c"})))
            .await
            .expect("prepare two");
        store.commit_apply(&one).await.expect("commit one");
        match store.commit_apply(&two).await {
            Err(StoreError::ApplyConflict { fields, .. }) => {
                assert_eq!(fields, vec!["spec.image".to_string()])
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn sensitive_content_is_redacted_in_last_applied_and_refused_back() {
        let store = Store::in_memory();
        let cfg = DynamicObject::new(
            Kind::Configuration,
            "main",
            json!({"files": {"pw": {"content": "hunter2", "sensitive": true}}}),
        );
        let result = store.apply_object(&cfg).await.expect("apply");
        let annotation = &result.object.metadata.annotations[LAST_APPLIED_ANNOTATION];
        assert!(!annotation.contains("hunter2"), "{annotation}");
        assert!(annotation.contains(REDACTED), "{annotation}");
        assert_eq!(store.apply(&cfg).await.ok(), Some(Applied::Unchanged));
        let back = DynamicObject::new(
            Kind::Configuration,
            "main",
            json!({"files": {"pw": {"content": REDACTED, "sensitive": true}}}),
        );
        assert!(matches!(
            store.apply(&back).await,
            Err(StoreError::Invalid { .. })
        ));
    }

    #[tokio::test]
    async fn preview_writes_nothing() {
        let store = Store::in_memory();
        store
            .apply(&service(json!({"image": "a"})))
            .await
            .expect("base");
        let prepared = store
            .prepare_apply(&service(json!({"image": "b"})))
            .await
            .expect("prepare");
        let preview = prepared.preview().expect("preview");
        assert_eq!(preview.outcome, Applied::Configured);
        assert_eq!(preview.object.spec, json!({"image": "b"}));
        let stored = store.get(Kind::Service, "web").await.expect("get");
        assert_eq!(stored.map(|o| o.spec), Some(json!({"image": "a"})));
    }
}
