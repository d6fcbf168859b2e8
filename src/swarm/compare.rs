//! Deciding whether a live Swarm spec still matches the desired one.
//!
//! The engine adds defaults to what it stores (e.g. `Runtime`, `Isolation`) and knows
//! fields kargo never sets, so the live spec is compared over the desired one's fields
//! only: every value kargo sets must be there, equal; lists must match element by element.

use serde_json::Value;

/// Fields the engine returns under another name than bollard's model reads: the engine
/// accepts `HealthCheck` but answers `Healthcheck`, so bollard reads it back as absent.
/// These are compared through the spec-hash label only.
const UNREADABLE: &[&str] = &["/TaskTemplate/ContainerSpec/HealthCheck"];

/// The desired spec without the fields that cannot be read back from the engine.
pub fn comparable(desired: &Value) -> Value {
    let mut v = desired.clone();
    for path in UNREADABLE {
        if let Some((parent, key)) = path.rsplit_once('/')
            && let Some(obj) = v.pointer_mut(parent).and_then(Value::as_object_mut)
        {
            obj.remove(key);
        }
    }
    v
}

/// True when every field of `desired` is in `live` with an equal value (recursively).
pub fn covers(live: &Value, desired: &Value) -> bool {
    first_difference(live, desired, "").is_none()
}

/// The path of the first field of `desired` that `live` lacks or holds differently.
pub fn first_difference(live: &Value, desired: &Value, path: &str) -> Option<String> {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().find_map(|(k, dv)| {
            let p = format!("{path}/{k}");
            match l.get(k) {
                Some(lv) => first_difference(lv, dv, &p),
                None if is_empty(dv) => None,
                None => Some(p),
            }
        }),
        (Value::Array(d), Value::Array(l)) => {
            if d.len() != l.len() {
                return Some(path.to_string());
            }
            d.iter()
                .zip(l)
                .enumerate()
                .find_map(|(i, (dv, lv))| first_difference(lv, dv, &format!("{path}/{i}")))
        }
        (d, l) if d == l || same_image(path, d, l) => None,
        _ => Some(path.to_string()),
    }
}

/// A live image pinned by the controller (`name:tag@sha256:…`) is the desired `name:tag`:
/// the digest is added only to what is sent to the engine, never to what is compared
/// (docs/images.md). A desired reference with a digest of its own is compared whole.
fn same_image(path: &str, desired: &Value, live: &Value) -> bool {
    if !path.ends_with("/ContainerSpec/Image") {
        return false;
    }
    match (desired.as_str(), live.as_str()) {
        (Some(d), Some(l)) => !d.contains('@') && crate::registry::resolve::without_digest(l) == d,
        _ => false,
    }
}

/// Every field of `desired` that `live` lacks or holds differently, as JSON pointers (a
/// list of another length counts as one difference, at the list).
pub fn differences(live: &Value, desired: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect(live, desired, "", &mut out);
    out
}

fn collect(live: &Value, desired: &Value, path: &str, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                let p = format!("{path}/{k}");
                match l.get(k) {
                    Some(lv) => collect(lv, dv, &p, out),
                    None if is_empty(dv) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            for (i, (dv, lv)) in d.iter().zip(l).enumerate() {
                collect(lv, dv, &format!("{path}/{i}"), out);
            }
        }
        (d, l) if d == l || same_image(path, d, l) => {}
        _ => out.push(path.to_string()),
    }
}

/// Most fields an update event names; the rest are counted.
const NAMED_FIELDS: usize = 5;

/// Which fields of the Swarm spec an update of `live` to `desired` changes, for events and
/// logs: `TaskTemplate.ContainerSpec.Image, Mode.Replicated.Replicas changed`. The spec-hash label
/// is left out (it only says that something changed); when nothing else differs, the
/// change is in what the engine does not read back (the healthcheck) or in a field the
/// new spec no longer sets, and the text says so.
pub fn changed_fields(live: &Value, desired: &Value) -> String {
    let hash = format!(
        "/Labels/{}",
        super::names::SPEC_HASH_LABEL
            .replace('~', "~0")
            .replace('/', "~1")
    );
    let fields: Vec<String> = differences(live, &comparable(desired))
        .into_iter()
        .filter(|p| *p != hash)
        .map(|p| dotted(&p))
        .collect();
    if fields.is_empty() {
        let healthcheck = desired
            .pointer(UNREADABLE.first().copied().unwrap_or_default())
            .is_some();
        return if healthcheck {
            "the healthcheck changed (the engine does not read it back) or a field was removed"
                .to_string()
        } else {
            "a field was removed".to_string()
        };
    }
    let more = fields.len().saturating_sub(NAMED_FIELDS);
    let mut text = fields
        .into_iter()
        .take(NAMED_FIELDS)
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text.push_str(" changed");
    text
}

/// A JSON pointer as a person reads a field: `/TaskTemplate/Env/2` → `TaskTemplate.Env[2]`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    out
}

/// The engine drops empty values and `false` flags; their absence is no difference.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn daemon_defaults_are_ignored() {
        let desired = json!({"TaskTemplate": {"ContainerSpec": {"Image": "a"}}});
        let live = json!({"TaskTemplate": {"ContainerSpec": {"Image": "a", "Isolation": "default"}, "Runtime": "container"}});
        assert!(covers(&live, &desired));
    }

    #[test]
    fn hand_scaling_is_a_difference() {
        let desired = json!({"Mode": {"Replicated": {"Replicas": 2}}});
        let live = json!({"Mode": {"Replicated": {"Replicas": 5}}});
        assert_eq!(
            first_difference(&live, &desired, "").as_deref(),
            Some("/Mode/Replicated/Replicas")
        );
    }

    #[test]
    fn an_added_list_element_is_a_difference() {
        let desired = json!({"Env": ["A=1"]});
        let live = json!({"Env": ["A=1", "B=2"]});
        assert!(!covers(&live, &desired));
    }

    #[test]
    fn an_update_names_the_fields_that_changed_not_the_hash_label() {
        let live = json!({"Labels": {"dev.kargo.spec-hash": "old"},
                          "TaskTemplate": {"ContainerSpec": {"Image": "a:1", "Env": ["A=1"]}},
                          "Mode": {"Replicated": {"Replicas": 1}}});
        let desired = json!({"Labels": {"dev.kargo.spec-hash": "new"},
                             "TaskTemplate": {"ContainerSpec": {"Image": "a:2", "Env": ["A=1"]}},
                             "Mode": {"Replicated": {"Replicas": 3}}});
        assert_eq!(
            changed_fields(&live, &desired),
            "Mode.Replicated.Replicas, TaskTemplate.ContainerSpec.Image changed"
        );
        let healthcheck = json!({"Labels": {"dev.kargo.spec-hash": "new"},
                                 "TaskTemplate": {"ContainerSpec": {"Image": "a:1", "Env": ["A=1"],
                                     "HealthCheck": {"Test": ["CMD", "true"]}}},
                                 "Mode": {"Replicated": {"Replicas": 1}}});
        assert!(changed_fields(&live, &healthcheck).starts_with("the healthcheck"));
        assert_eq!(
            dotted("/TaskTemplate/ContainerSpec/Env/2"),
            "TaskTemplate.ContainerSpec.Env[2]"
        );
    }

    #[test]
    fn a_pinned_live_image_is_its_tag_and_a_desired_digest_is_compared_whole() {
        let desired = json!({"TaskTemplate": {"ContainerSpec": {"Image": "r:5000/a:1"}}});
        let pinned = json!({"TaskTemplate": {"ContainerSpec": {"Image": "r:5000/a:1@sha256:ab"}}});
        assert!(covers(&pinned, &desired));
        assert!(differences(&pinned, &desired).is_empty());
        let other = json!({"TaskTemplate": {"ContainerSpec": {"Image": "r:5000/a:2@sha256:ab"}}});
        assert!(!covers(&other, &desired));
        let own = json!({"TaskTemplate": {"ContainerSpec": {"Image": "r:5000/a:1@sha256:cd"}}});
        assert!(!covers(&pinned, &own));
        // Only the image is read this way.
        let env = json!({"Env": ["A=1"]});
        assert!(!covers(&json!({"Env": ["A=1@x"]}), &env));
    }

    #[test]
    fn dropped_false_flags_are_no_difference() {
        let desired = json!({"Mounts": [{"ReadOnly": false, "Target": "/d"}]});
        let live = json!({"Mounts": [{"Target": "/d"}]});
        assert!(covers(&live, &desired));
    }
}
