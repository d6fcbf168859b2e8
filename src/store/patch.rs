//! The three-way merge behind `kargo apply` (docs/design.md, "Storage in etcd", kubectl's last-applied model).
//!
//! A [`Patch`] is a JSON Merge Patch (RFC 7396: maps merge key by key, lists and scalars
//! replace whole) whose deletion is an operation of its own rather than `null`: stored
//! specs keep explicit `null`s (an overlay deletes a default field with one), so `null`
//! must stay writable as a value.
//!
//! The patch of an apply holds what the user changed in the file since the last apply
//! (last-applied → file), and, where the file has no last-applied counterpart, what the
//! file sets that the live object does not hold. Everything else in the live object —
//! a `kargo scale`, a restart annotation, fields nobody's file names — is left alone.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A change to a JSON document, computed once and applicable to a newer version of it.
#[derive(Clone, Debug, PartialEq)]
pub enum Patch {
    /// Put this value here (possibly `null`).
    Set(Value),
    /// Remove this key.
    Delete,
    /// Change some keys of the map here (a non-map here becomes an empty map first).
    Merge(BTreeMap<String, Patch>),
}

impl Patch {
    /// The patch that brings the file's changes to `live`.
    ///
    /// `last` is the configuration applied last time (`None` when unknown: then nothing
    /// is deleted and every field of `new` that `live` lacks or holds differently is set),
    /// `new` the configuration applied now. A field equal in `last` and `new` is left as
    /// `live` has it; a field in `last` but not in `new` is deleted. `None`: no change.
    pub fn three_way(last: Option<&Value>, new: &Value, live: Option<&Value>) -> Option<Patch> {
        if last == Some(new) {
            return None;
        }
        match (new, live) {
            (Value::Object(n), Some(Value::Object(c))) => {
                let l = last.and_then(Value::as_object);
                let mut ops = BTreeMap::new();
                for (k, nv) in n {
                    if let Some(p) = Patch::three_way(l.and_then(|l| l.get(k)), nv, c.get(k)) {
                        ops.insert(k.clone(), p);
                    }
                }
                for k in l.into_iter().flat_map(Map::keys) {
                    if !n.contains_key(k) && c.contains_key(k) {
                        ops.insert(k.clone(), Patch::Delete);
                    }
                }
                (!ops.is_empty()).then_some(Patch::Merge(ops))
            }
            _ if live == Some(new) => None,
            _ => Some(Patch::Set(new.clone())),
        }
    }

    /// Applies the patch to a document in place. A top-level [`Patch::Delete`] makes it `null`.
    pub fn apply(&self, target: &mut Value) {
        match self {
            Patch::Set(v) => *target = v.clone(),
            Patch::Delete => *target = Value::Null,
            Patch::Merge(ops) => {
                if !target.is_object() {
                    *target = Value::Object(Map::new());
                }
                if let Value::Object(map) = target {
                    for (k, p) in ops {
                        match p {
                            Patch::Delete => {
                                map.remove(k);
                            }
                            Patch::Set(v) => {
                                map.insert(k.clone(), v.clone());
                            }
                            Patch::Merge(_) => p.apply(map.entry(k.clone()).or_insert(Value::Null)),
                        }
                    }
                }
            }
        }
    }

    /// The fields this patch writes that someone else changed meanwhile: their value in
    /// `fresh` differs both from `base` (what the patch was computed against) and from
    /// what the patch writes. Writing over them would silently lose that change.
    /// Paths are dotted from `path` (e.g. `spec.deploy.replicas`).
    pub fn conflicts(
        &self,
        base: Option<&Value>,
        fresh: Option<&Value>,
        path: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_conflicts(base, fresh, path, &mut out);
        out
    }

    fn collect_conflicts(
        &self,
        base: Option<&Value>,
        fresh: Option<&Value>,
        path: &str,
        out: &mut Vec<String>,
    ) {
        match self {
            Patch::Set(v) => {
                if fresh != base && fresh != Some(v) {
                    out.push(path.to_string());
                }
            }
            Patch::Delete => {
                if fresh != base && fresh.is_some() {
                    out.push(path.to_string());
                }
            }
            Patch::Merge(ops) => {
                for (k, p) in ops {
                    p.collect_conflicts(
                        base.and_then(|b| b.get(k)),
                        fresh.and_then(|f| f.get(k)),
                        &join_path(path, k),
                        out,
                    );
                }
            }
        }
    }
}

/// `spec` + `image` → `spec.image`; keys with dots or slashes are bracketed (`labels["a.b/c"]`).
fn join_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn merged(last: Option<Value>, new: Value, live: Value) -> Value {
        let mut out = live.clone();
        if let Some(p) = Patch::three_way(last.as_ref(), &new, Some(&live)) {
            p.apply(&mut out);
        }
        out
    }

    #[test]
    fn a_field_set_by_someone_else_survives_reapplying_the_same_file() {
        let file = json!({"image": "a", "deploy": {"replicas": 1}});
        let live = json!({"image": "a", "deploy": {"replicas": 5}});
        assert_eq!(
            Patch::three_way(Some(&file), &file, Some(&live)),
            None,
            "nothing changed in the file"
        );
        let changed = json!({"image": "b", "deploy": {"replicas": 1}});
        assert_eq!(
            merged(Some(file), changed, live),
            json!({"image": "b", "deploy": {"replicas": 5}})
        );
    }

    #[test]
    fn a_field_removed_from_the_file_is_removed_and_others_stay() {
        let last = json!({"env": {"A": "1", "B": "2"}});
        let new = json!({"env": {"A": "1"}});
        let live = json!({"env": {"A": "1", "B": "2", "C": "by-hand"}});
        assert_eq!(
            merged(Some(last), new, live),
            json!({"env": {"A": "1", "C": "by-hand"}})
        );
    }

    #[test]
    fn explicit_nulls_are_values_not_deletions() {
        let new = json!({"env": {"B": null}, "image": "a"});
        let live = json!({"env": {"B": "2"}, "image": "a"});
        assert_eq!(merged(None, new.clone(), live), new);
    }

    #[test]
    fn without_last_applied_nothing_is_deleted() {
        let new = json!({"image": "b"});
        let live = json!({"image": "a", "command": ["x"]});
        assert_eq!(
            merged(None, new, live),
            json!({"image": "b", "command": ["x"]})
        );
    }

    #[test]
    fn lists_replace_whole() {
        let last = json!({"ports": [{"target": 1}]});
        let new = json!({"ports": [{"target": 2}]});
        let live = json!({"ports": [{"target": 1}, {"target": 3}]});
        assert_eq!(merged(Some(last), new.clone(), live), new);
    }

    #[test]
    fn a_concurrent_change_to_another_field_is_no_conflict() {
        let base = json!({"image": "a", "env": {"A": "1"}});
        let new = json!({"image": "b", "env": {"A": "1"}});
        let p = Patch::three_way(Some(&base), &new, Some(&base)).expect("a change");
        let fresh = json!({"image": "a", "env": {"A": "1", "B": "2"}});
        assert!(p.conflicts(Some(&base), Some(&fresh), "spec").is_empty());
        let mut out = fresh;
        p.apply(&mut out);
        assert_eq!(out, json!({"image": "b", "env": {"A": "1", "B": "2"}}));
    }

    #[test]
    fn a_concurrent_change_to_the_same_field_is_a_conflict() {
        let base = json!({"image": "a"});
        let p =
            Patch::three_way(Some(&base), &json!({"image": "b"}), Some(&base)).expect("a change");
        let fresh = json!({"image": "c"});
        assert_eq!(
            p.conflicts(Some(&base), Some(&fresh), "spec"),
            vec!["spec.image".to_string()]
        );
        let same = json!({"image": "b"});
        assert!(p.conflicts(Some(&base), Some(&same), "spec").is_empty());
    }

    #[test]
    fn paths_bracket_keys_with_dots() {
        assert_eq!(
            join_path("metadata.labels", "a.b/c"),
            "metadata.labels[\"a.b/c\"]"
        );
        assert_eq!(join_path("", "spec"), "spec");
    }
}
