//! Sensitive values in the plan: sealed files and variables opened with the controller's
//! keys (in memory only), secret names, errors that never quote sensitive content, and
//! the places a sensitive variable may not be used.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use sha2::Digest;

use super::{Plan, Snapshot};
use crate::api::{Environment, Kind};
use crate::manifest::interpolate::InterpolationError;
use crate::manifest::validate::{View, escape, push_key};
use crate::secrets::Keyring;

use super::{PlannedFile, SEALED_NAME_SUFFIX};

/// The sensitive variables of an Environment, opened with `keys`; one that cannot be
/// opened (no keys: the CLI) is left out, one sealed for another key is an error.
pub(super) fn sensitive_variables(
    env: &Environment,
    keys: Option<&Keyring>,
    out: &mut Plan,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for (name, value) in &env.spec.sensitive_variables {
        match (value, keys) {
            (crate::api::SensitiveValue::Plain(p), _) => {
                vars.insert(name.clone(), p.clone());
            }
            (crate::api::SensitiveValue::Sealed(s), Some(k)) => {
                match k.open_text(&format!("variable {name}"), &s.sealed) {
                    Ok(p) => {
                        vars.insert(name.clone(), p);
                    }
                    Err(e) => out
                        .errors
                        .push(format!("Environment {:?}: {e}", env.name())),
                }
            }
            (crate::api::SensitiveValue::Sealed(_), None) => {}
        }
    }
    vars
}

/// One Configuration file as planned, or why it cannot be (never quoting sensitive content).
pub(super) fn plan_file(
    configuration: &str,
    file: &str,
    spec: &crate::api::ConfigFile,
    variables: &BTreeMap<String, String>,
    sensitive_vars: Option<&BTreeMap<String, String>>,
    keys: Option<&Keyring>,
    recorded: Option<&crate::api::SealedFileRecord>,
) -> Result<PlannedFile, String> {
    let path = format!("/spec/files/{file}/content");
    let sealed_digest = spec
        .sealed
        .as_ref()
        .map(|s| hex::encode(sha2::Sha256::digest(s.as_bytes())));
    let (raw, sealed) = match (&spec.sealed, keys) {
        (Some(_), _) if !spec.sensitive => {
            return Err(format!(
                "Configuration {configuration:?}: file {file}: `sealed` needs `sensitive: true`"
            ));
        }
        (Some(s), Some(k)) => (
            k.open_text(&format!("file {file}"), s)
                .map_err(|e| format!("Configuration {configuration:?}: {e}"))?,
            true,
        ),
        (Some(_), None) => {
            let swarm_name = recorded
                .filter(|r| Some(&r.sealed_digest) == sealed_digest.as_ref())
                .map_or_else(
                    || format!("{file}-{SEALED_NAME_SUFFIX}"),
                    |r| r.swarm_name.clone(),
                );
            return Ok(PlannedFile {
                swarm_name,
                previous_name: None,
                content: String::new(),
                sensitive: true,
                unopened: true,
                sealed_digest,
            });
        }
        (None, _) => (spec.content.clone(), false),
    };
    let content = if spec.template {
        let mut vars = variables.clone();
        if spec.sensitive {
            // Only a sensitive file's content may read sensitive variables.
            vars.extend(
                sensitive_vars
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        match crate::manifest::interpolate::interpolate_str(&raw, &vars, &path) {
            Ok(c) => c,
            Err(errors) => {
                let list: Vec<String> = if spec.sensitive {
                    errors.iter().map(sensitive_error).collect()
                } else {
                    errors.iter().map(ToString::to_string).collect()
                };
                return Err(format!(
                    "Configuration {configuration:?}: {}",
                    list.join("; ")
                ));
            }
        }
    } else {
        raw
    };
    let swarm_name = match (sealed, keys) {
        (true, Some(k)) => k.secret_name(file, content.as_bytes()),
        _ => {
            let digest = sha2::Sha256::digest(content.as_bytes());
            format!("{file}-{}", &hex::encode(digest)[..10])
        }
    };
    Ok(PlannedFile {
        swarm_name,
        previous_name: None,
        content,
        sensitive: spec.sensitive,
        unopened: false,
        sealed_digest,
    })
}

/// An interpolation error of sensitive content, told without any of the content (no
/// variable name, no message, no excerpt: each may be a piece of the secret).
fn sensitive_error(e: &InterpolationError) -> String {
    let what = match e {
        InterpolationError::Unset { path, .. } | InterpolationError::Required { path, .. } => {
            format!("{path}: references a variable that is not set")
        }
        InterpolationError::Syntax { path, offset, .. } => {
            format!("{path}: invalid interpolation at byte {offset} (write `$$` for a literal `$`)")
        }
        InterpolationError::TooLarge { path, .. } => format!("{path}: too large once interpolated"),
        InterpolationError::Cycle { .. } | InterpolationError::UnresolvedReference { .. } => {
            "variables reference each other in a way that does not resolve".to_string()
        }
    };
    format!("{what} (sensitive content: names and excerpts are not shown)")
}

/// Why a sensitive variable may not appear where it was found (shared by the plan and
/// `kargo validate`).
pub(crate) const MISUSE: &str = "which may feed only a sensitive file's content (mount that file as a secret and point a *_FILE variable at /run/secrets/<file>)";

/// Where an Environment's sensitive variables are used outside a sensitive file's content
/// (service env, labels, any service field, a plain variable or a plain file): each is a
/// validation error, since `docker service inspect` or `get` would show the value.
pub fn sensitive_misuse(snapshot: &Snapshot, env: &Environment) -> Vec<String> {
    let names = &env.spec.sensitive_variables;
    if names.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if env.spec.variables.keys().any(|k| names.contains_key(k)) {
        out.push(format!(
            "Environment {:?}: a variable is both plain and sensitive",
            env.name()
        ));
    }
    let mut check = |object: String, kind: Kind, spec: &Value| {
        restricted_strings(kind, spec, &mut |_, path, text| {
            for n in mentioned_variables(text) {
                if names.contains_key(n) {
                    out.push(format!(
                        "{object} {path}: references the sensitive variable {n}, {MISUSE}"
                    ));
                }
            }
        });
    };
    let env_spec = serde_json::json!({
        "variables": env.spec.variables,
        "services": env.spec.services,
    });
    check(
        format!("Environment {:?}", env.name()),
        Kind::Environment,
        &env_spec,
    );
    for (name, spec) in &snapshot.service_specs {
        check(format!("Service {name:?}"), Kind::Service, spec);
    }
    for (name, cfg) in &snapshot.configurations {
        if let Ok(spec) = serde_json::to_value(&cfg.spec) {
            check(
                format!("Configuration {name:?}"),
                Kind::Configuration,
                &spec,
            );
        }
    }
    out
}

/// The strings of an object's spec where a sensitive variable may not appear, each given
/// to `visit` with its JSON pointer and display path: every string of a Service, an
/// Environment's plain variables and service settings, a Configuration's non-sensitive
/// template files.
pub(crate) fn restricted_strings<'a, V: View<'a>>(
    kind: Kind,
    spec: V,
    visit: &mut dyn FnMut(&str, &str, &'a str),
) {
    match kind {
        Kind::Service => walk(spec, "/spec".into(), "spec".into(), visit),
        Kind::Environment => {
            for key in ["variables", "services"] {
                if let Some(node) = spec.get(key) {
                    walk(node, format!("/spec/{key}"), format!("spec.{key}"), visit);
                }
            }
        }
        Kind::Configuration => {
            for (file, f) in spec.get("files").map(View::members).unwrap_or_default() {
                let (Some(file), Some(content)) = (file, f.get("content").and_then(View::as_str))
                else {
                    continue;
                };
                let sensitive = f.get("sensitive").is_some_and(View::is_true);
                if f.get("template").is_some_and(View::is_true) && !sensitive {
                    let mut path = "spec.files".to_string();
                    push_key(&mut path, file);
                    path.push_str(".content");
                    visit(
                        &format!("/spec/files/{}/content", escape(file)),
                        &path,
                        content,
                    );
                }
            }
        }
        Kind::Stack => {}
    }
}

/// Every string under `node`, with its pointer and display path.
fn walk<'a, V: View<'a>>(
    node: V,
    pointer: String,
    path: String,
    visit: &mut dyn FnMut(&str, &str, &'a str),
) {
    if let Some(text) = node.as_str() {
        // Only a `$` can start a reference: most strings are passed over at once.
        if text.contains('$') {
            visit(&pointer, &path, text);
        }
        return;
    }
    for (i, (key, child)) in node.members().into_iter().enumerate() {
        let (p, d) = match key {
            Some(k) => (format!("{pointer}/{}", escape(k)), {
                let mut d = path.clone();
                push_key(&mut d, k);
                d
            }),
            None => (format!("{pointer}/{i}"), format!("{path}[{i}]")),
        };
        walk(child, p, d, visit);
    }
}

/// The variable names `text` references: `${NAME}`, `${NAME:-…}`, `${NAME-…}`,
/// `${NAME?…}`, `${NAME:?…}` and a bare `$NAME` (not the escaped `$$NAME`).
pub(crate) fn mentioned_variables(text: &str) -> BTreeSet<&str> {
    let bytes = text.as_bytes();
    let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices('$') {
        let braced = bytes.get(i + 1) == Some(&b'{');
        let start = if braced { i + 2 } else { i + 1 };
        let end = start
            + bytes
                .get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(|c| is_name(**c))
                .count();
        if end == start {
            continue;
        }
        let counts = if braced {
            matches!(bytes.get(end), Some(b'}' | b':' | b'-' | b'?'))
        } else {
            !(i > 0 && bytes[i - 1] == b'$')
        };
        if counts {
            out.insert(&text[start..end]);
        }
    }
    out
}

/// The built-in sensitive file of a catalog entry whose password is a Swarm secret: its
/// content is the sensitive variable itself, named as a sealed file is (an HMAC with the
/// keys; without them, the name the controller recorded for the same sealed value, else a
/// stand-in), or as a sensitive file stored in plaintext when the variable is plaintext.
pub(super) fn catalog_file(
    env: &Environment,
    rule: &crate::manifest::defaults::SecretPassword,
    keys: Option<&Keyring>,
    recorded: Option<&crate::api::SealedFileRecord>,
) -> Result<PlannedFile, String> {
    let file = rule.file;
    match env.spec.sensitive_variables.get(rule.variable) {
        Some(crate::api::SensitiveValue::Plain(p)) => {
            let digest = sha2::Sha256::digest(p.as_bytes());
            Ok(PlannedFile {
                swarm_name: format!("{file}-{}", &hex::encode(digest)[..10]),
                previous_name: None,
                content: p.clone(),
                sensitive: true,
                unopened: false,
                sealed_digest: None,
            })
        }
        Some(crate::api::SensitiveValue::Sealed(s)) => {
            let sealed_digest = Some(hex::encode(sha2::Sha256::digest(s.sealed.as_bytes())));
            match keys {
                Some(k) => {
                    let content = k
                        .open_text(&format!("variable {}", rule.variable), &s.sealed)
                        .map_err(|e| format!("Environment {:?}: {e}", env.name()))?;
                    Ok(PlannedFile {
                        swarm_name: k.secret_name(file, content.as_bytes()),
                        previous_name: None,
                        content,
                        sensitive: true,
                        unopened: false,
                        sealed_digest,
                    })
                }
                None => Ok(PlannedFile {
                    swarm_name: recorded
                        .filter(|r| Some(&r.sealed_digest) == sealed_digest.as_ref())
                        .map_or_else(
                            || format!("{file}-{SEALED_NAME_SUFFIX}"),
                            |r| r.swarm_name.clone(),
                        ),
                    previous_name: None,
                    content: String::new(),
                    sensitive: true,
                    unopened: true,
                    sealed_digest,
                }),
            }
        }
        None => Err(format!(
            "Environment {:?}: the catalog's file {file} needs the sensitive variable {}",
            env.name(),
            rule.variable
        )),
    }
}
