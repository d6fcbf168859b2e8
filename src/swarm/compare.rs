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
        (d, l) if d == l => None,
        _ => Some(path.to_string()),
    }
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
    fn dropped_false_flags_are_no_difference() {
        let desired = json!({"Mounts": [{"ReadOnly": false, "Target": "/d"}]});
        let live = json!({"Mounts": [{"Target": "/d"}]});
        assert!(covers(&live, &desired));
    }
}
