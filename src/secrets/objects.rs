//! Sealing the sensitive values of a manifest: a sensitive file's `content` and an
//! Environment's `sensitiveVariables`, in place, on the object's JSON spec (so `seal`
//! prints the manifest as written, with only those values changed).

use serde_json::{Map, Value, json};

use crate::api::{DynamicObject, Kind};

use super::{Keyring, SecretsError, is_sealed, seal};
use age::x25519::Recipient;

/// One sensitive value of a spec, where it sits and in which shape.
enum Slot<'a> {
    /// A sensitive file (`files.<name>`).
    File(&'a str, &'a mut Map<String, Value>),
    /// A sensitive variable (`sensitiveVariables.<name>`).
    Variable(&'a str, &'a mut Value),
}

/// The sensitive values of a spec; `visit` gets (what, slot).
fn slots(kind: Kind, spec: &mut Value) -> Vec<Slot<'_>> {
    let mut out = Vec::new();
    match kind {
        Kind::Configuration => {
            if let Some(files) = spec.get_mut("files").and_then(Value::as_object_mut) {
                for (name, f) in files.iter_mut() {
                    if let Some(f) = f.as_object_mut()
                        && f.get("sensitive").and_then(Value::as_bool) == Some(true)
                    {
                        out.push(Slot::File(name, f));
                    }
                }
            }
        }
        Kind::Environment => {
            if let Some(vars) = spec
                .get_mut("sensitiveVariables")
                .and_then(Value::as_object_mut)
            {
                for (name, v) in vars.iter_mut() {
                    out.push(Slot::Variable(name, v));
                }
            }
        }
        _ => {}
    }
    out
}

/// The sealed text of a variable's value, if it is in the sealed shape.
fn sealed_of(v: &Value) -> Option<&str> {
    v.get("sealed").and_then(Value::as_str)
}

/// What a value is called in messages.
fn what(slot: &Slot<'_>) -> String {
    match slot {
        Slot::File(n, _) => format!("file {n}"),
        Slot::Variable(n, _) => format!("variable {n}"),
    }
}

/// The sensitive values of an object still in plaintext, as `file pw` / `variable X`.
pub fn has_plaintext(obj: &DynamicObject) -> Vec<String> {
    let mut spec = obj.spec.clone();
    slots(obj.kind, &mut spec)
        .iter()
        .filter(|s| match s {
            Slot::File(_, f) => f.get("sealed").is_none(),
            Slot::Variable(_, v) => sealed_of(v).is_none(),
        })
        .map(what)
        .collect()
}

/// Whether an object holds sealed values.
pub fn has_sealed(obj: &DynamicObject) -> bool {
    let mut spec = obj.spec.clone();
    slots(obj.kind, &mut spec).iter().any(|s| match s {
        Slot::File(_, f) => f.get("sealed").is_some(),
        Slot::Variable(_, v) => sealed_of(v).is_some(),
    })
}

/// Seals every plaintext sensitive value of `obj` to `recipient`; sealed ones are left as
/// they are (so a sealed manifest applies "unchanged"). Returns how many were sealed.
///
/// Errors: [`SecretsError::Shape`] for a value in both shapes, or whose `sealed` is not an
/// age armor; [`SecretsError::Seal`].
pub fn seal_object(obj: &mut DynamicObject, recipient: &Recipient) -> Result<usize, SecretsError> {
    transform(obj, &mut |what, plain, sealed| match (plain, sealed) {
        (Some(p), None) => seal(recipient, p.as_bytes()).map(Some),
        (None, Some(_)) => Ok(None),
        (Some(_), Some(_)) => Err(SecretsError::Shape(format!(
            "{what}: holds both a plaintext and a `sealed` value; keep one"
        ))),
        (None, None) => Err(SecretsError::Shape(format!("{what}: holds no value"))),
    })
}

/// Opens every sealed value of `obj` with `keys` and seals it again to `recipient`
/// (a rotation); plaintext values are sealed too. Returns how many were written.
pub fn reseal_object(
    obj: &mut DynamicObject,
    keys: &Keyring,
    recipient: &Recipient,
) -> Result<usize, SecretsError> {
    transform(obj, &mut |what, plain, sealed| {
        let plain = match (plain, sealed) {
            (_, Some(s)) => keys.open(what, s)?,
            (Some(p), None) => p.as_bytes().to_vec(),
            (None, None) => return Err(SecretsError::Shape(format!("{what}: holds no value"))),
        };
        seal(recipient, &plain).map(Some)
    })
}

/// Opens every sealed value of `obj` in place (for tests and `keys` checks; never stored).
pub fn open_object(obj: &mut DynamicObject, keys: &Keyring) -> Result<(), SecretsError> {
    let kind = obj.kind;
    for slot in slots(kind, &mut obj.spec) {
        let w = what(&slot);
        match slot {
            Slot::File(_, f) => {
                if let Some(s) = f
                    .remove("sealed")
                    .and_then(|v| v.as_str().map(str::to_string))
                {
                    f.insert("content".into(), json!(keys.open_text(&w, &s)?));
                }
            }
            Slot::Variable(_, v) => {
                if let Some(s) = sealed_of(v).map(str::to_string) {
                    *v = json!(keys.open_text(&w, &s)?);
                }
            }
        }
    }
    Ok(())
}

/// What [`transform`] calls on each value: (what, plaintext, sealed) → the new sealed text.
type Transform<'a> =
    dyn FnMut(&str, Option<&str>, Option<&str>) -> Result<Option<String>, SecretsError> + 'a;

/// Calls `f(what, plaintext, sealed)` on each sensitive value; `Some(text)` replaces it
/// by the sealed shape holding `text`. Returns how many were replaced.
fn transform(obj: &mut DynamicObject, f: &mut Transform<'_>) -> Result<usize, SecretsError> {
    let kind = obj.kind;
    let mut n = 0;
    for slot in slots(kind, &mut obj.spec) {
        let w = what(&slot);
        match slot {
            Slot::File(_, file) => {
                let plain = file.get("content").and_then(Value::as_str);
                let sealed = file.get("sealed").and_then(Value::as_str);
                if let Some(s) = sealed
                    && !is_sealed(s)
                {
                    return Err(SecretsError::Shape(format!(
                        "{w}: `sealed` is not a sealed value (made by `kargo seal`)"
                    )));
                }
                let plain = match (plain, sealed) {
                    // An empty content beside a sealed value is the schema's default.
                    (Some(""), Some(_)) => None,
                    (p, _) => p,
                };
                if let Some(text) = f(&w, plain, sealed)? {
                    file.remove("content");
                    file.insert("sealed".into(), json!(text));
                    n += 1;
                }
            }
            Slot::Variable(_, v) => {
                let sealed = sealed_of(v);
                if let Some(s) = sealed
                    && !is_sealed(s)
                {
                    return Err(SecretsError::Shape(format!(
                        "{w}: `sealed` is not a sealed value (made by `kargo seal`)"
                    )));
                }
                let plain = v.as_str();
                if let Some(text) = f(&w, plain, sealed)? {
                    *v = json!({ "sealed": text });
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectMeta;

    fn object(kind: Kind, spec: Value) -> DynamicObject {
        DynamicObject {
            api_version: crate::api::API_VERSION.into(),
            kind,
            metadata: ObjectMeta {
                name: "main".into(),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }

    #[test]
    fn sealing_replaces_plaintext_only_and_keeps_sealed_values() {
        let keys = Keyring::generate();
        let mut cfg = object(
            Kind::Configuration,
            json!({"files": {"pw": {"content": "hunter2", "sensitive": true}, "c": {"content": "plain"}}}),
        );
        assert_eq!(has_plaintext(&cfg), vec!["file pw".to_string()]);
        assert_eq!(seal_object(&mut cfg, &keys.public()).unwrap(), 1);
        assert!(!cfg.spec.to_string().contains("hunter2"));
        assert_eq!(cfg.spec["files"]["c"]["content"], "plain");
        assert!(has_plaintext(&cfg).is_empty() && has_sealed(&cfg));
        let again = cfg.clone();
        assert_eq!(seal_object(&mut cfg, &keys.public()).unwrap(), 0);
        assert_eq!(cfg, again);

        let mut env = object(
            Kind::Environment,
            json!({"sensitiveVariables": {"DB": "s3cret"}}),
        );
        seal_object(&mut env, &keys.public()).unwrap();
        assert!(!env.spec.to_string().contains("s3cret"));
        let rotated = keys.rotated();
        reseal_object(&mut env, &rotated, &rotated.public()).unwrap();
        open_object(&mut env, &rotated.without_old()).unwrap();
        assert_eq!(env.spec["sensitiveVariables"]["DB"], "s3cret");
    }
}
